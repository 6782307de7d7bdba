"""The guard between the head's prediction and the mix: confidence, fallback, engineer's ranges, timing.

A regression head predicts every setting inside its processor's *safe* range (``low + (high - low)
* sigmoid``): nothing stops it from pinning every track at a bound (hard left, +20 dB of EQ, width
6.7, a fully wet 800 ms delay) when its inputs are unlike its training items. This module decides,
per strip (track or bus) and per processor type, how far the prediction can be trusted, and hands
the mix only settings an engineer would use:

1. **Confidence** (:func:`strip_confidence`), each signal in [0, 1] (1: no sign of trouble), the
   weakest one deciding:

   * ``clips``: the head runs on up to N evenly spaced clips of its training length
     (:meth:`~mixrep.inference.StyleTransfer.predict_graph`); a setting whose clip predictions
     disagree is a guess. Signal ``1 - spread / SPREAD_LIMIT``, spread = mean over the type's raw
     parameters of their standard deviation across clips as a share of the parameter's safe range.
   * ``bound``: the share of the type's raw parameters (its dry/wet logit left out: always-on
     processors sit at "fully wet" by design) whose decoder logit lies beyond ``+-BOUND_LOGIT``
     *and* further from the head's starting logit (its ``centre``, the mean training parameters)
     than ``BOUND_LOGIT``: a setting squashed against a bound it was not trained at. Signal
     ``1 - share``.
   * ``identical``: the same setting on every track although the tracks differ (octave spectra
     more than ``DIFFERENT_TRACKS_DB`` apart on average): signal ``spread_across_tracks /
     IDENTICAL_LIMIT`` (capped at 1); needs 3 tracks or more.
   * ``reference``: the reference vector's distance from the head's training references, the
     largest ``|z|`` with the head's stored mean and spread (every head stores them): 1 up to
     ``Z_NEAR``, 0 from ``Z_FAR``, linear between. It applies to every setting.

2. **Fallback** (:func:`neutral_parameters`): a setting whose confidence is under ``threshold``
   takes its measured prior instead: fader 0 dB and pan centred (balance matching, which runs
   next, then sets every stem's level and stereo from the reference), EQ flat (0 dB), compressor
   and gate at ratio 1 (exactly transparent), width 1, delay and reverb dry.

3. **Engineer's ranges** (:data:`ENGINEER_RANGES`, :func:`clamp_to_ranges`): every remaining setting
   is clamped into the range an engineer uses; ``wide_ranges`` keeps only the processors' safe ranges.

4. **Timing**: delay and reverb stay only where their confidence reaches ``time_threshold`` and
   their send is audible (wet weight at least ``AUDIBLE_WET``); their wet weight is at most 0.5
   (the dry path is never quieter than the send), so every track keeps its timing.

5. **Selection** (after balance matching and refinement,
   :meth:`~mixrep.inference.StyleTransfer.select`): of the head's settings, the settings half-way
   from the measured prior (:func:`blend_consoles`) and balance matching alone, the one whose
   spectra sit closest to the reference's (:func:`spectral_distance_db`) is rendered; the head's
   or the half-way settings only when at least ``GuardConfig.margin`` closer than balance matching
   alone. The rule was chosen on calibration items, other songs, effects and styles than the
   evaluation's (``benchmarks/transfer_guard.py --calibration-items``, docs/results.md).

Thresholds (``GuardConfig`` defaults and the constants below) were chosen on songs of the synth's
*training* split in styles of seeds 99 and up (none of the evaluation's songs or styles) with the
default head (``benchmarks/transfer_guard.py --calibrate``, table in docs/results.md): there every
signal's 10 % quantile stays above ``threshold`` 0.5 and, for delay and reverb, above
``time_threshold`` 0.8, so in-distribution settings are kept (none fell back); ``IDENTICAL_LIMIT``
sits under the across-track spread of every strip seen there (the ``identical`` signal's 10 %
quantile is 1) and above that of the tiny test heads, whose outputs hardly depend on the track
(spread 3e-6); ``Z_NEAR`` / ``Z_FAR`` lie above the largest ``|z|`` seen there (4.0).

Shape:
    clip rows ``(clips, strips, size)``; tracks ``(K, 2, samples)``; reference stems ``(4, 2, samples)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torchaudio
from torch import Tensor

from mixrep.console import MixingConsole
from mixrep.console import functional as Fn
from mixrep.console.batch import strip_of_nodes
from mixrep.console.processors import DRY_WET, DRY_WET_RANGE
from mixrep.console.strips import StripLayout
from mixrep.constants import STEMS
from mixrep.console.spec import stem_groups
from mixrep.inference.balance import level_db, stereo_db

SPREAD_LIMIT = 0.15
"""Clip disagreement (std across clips, share of the safe range) at which the ``clips`` signal reaches 0."""
BOUND_LOGIT = 4.0
"""A decoder logit beyond this (and this far from the head's starting logit) sits at its bound."""
DIFFERENT_TRACKS_DB = 3.0
"""Tracks whose octave spectra differ by this much on average (dB) are different tracks."""
IDENTICAL_LIMIT = 1e-4
"""Spread of a setting across different tracks (share of the safe range) under which it counts as identical."""
Z_NEAR, Z_FAR = 6.0, 12.0
"""Largest reference ``|z|`` with full confidence, and with none."""
AUDIBLE_WET = 10.0 ** (-30.0 / 20.0)
"""Smallest wet weight of a delay or reverb send that counts as audible (-30 dB)."""
TIME_EFFECTS = ("delay", "reverb")
PAN_FLOOR = 0.3
"""Pan always allowed, whatever the reference stem's stereo extent."""

ENGINEER_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "gain_pan": {"gain_db": (-30.0, 12.0)},  # pan: within the reference stem's own stereo extent
    "eq": {"gain_db": (-12.0, 12.0)},
    "compressor": {"threshold_db": (-50.0, 0.0), "ratio": (1.0, 10.0)},
    "noisegate": {"threshold_db": (-100.0, -40.0), "ratio": (1.0, 10.0)},
    "imager": {"width": (0.0, 2.0)},
    "delay": {"wet": (0.0, 0.5)},
    "reverb": {"wet": (0.0, 0.5)},
}
"""Physical ranges an engineer uses, per processor type (docs/transfer.md explains each). Tracks
arrive at -20 dBFS RMS, so a compressor threshold down to -50 dB and a gate threshold up to -40 dB
cover every musical use; the echo sends stay at or below the dry level."""


@dataclass(frozen=True)
class GuardConfig:
    """Settings of the guard (see the module docstring for how the defaults were chosen).

    Attributes:
        enabled: False passes the prediction through untouched (today's head alone).
        threshold: a setting with a lower confidence falls back to its measured prior.
        time_threshold: delay and reverb need at least this confidence.
        wide_ranges: keep only the processors' safe ranges, not :data:`ENGINEER_RANGES`.
        select: after balance matching (and refinement), render whichever of the head's settings
            and the settings ``halfway`` from the measured prior to the head's has the spectra
            closest to the reference's (:func:`spectral_distance_db`) if it is at least ``margin``
            closer than balance matching alone, else balance matching alone; False keeps the head's
            settings (the comparison is still reported).
        halfway: share of the way from the measured prior to the head's settings of the middle candidate.
        margin: the head's or the half-way settings are rendered only when their spectral distance
            is at least this share under balance matching alone's.
    """

    enabled: bool = True
    threshold: float = 0.5
    time_threshold: float = 0.8
    wide_ranges: bool = False
    select: bool = True
    halfway: float = 0.5
    margin: float = 0.1


@dataclass
class GuardReport:
    """What the guard decided (plain builtins in ``as_dict``; ``params.json`` stores it).

    Attributes:
        confidence: ``{"tracks"|"buses": {strip: {type: confidence}}}``.
        signals: the same, each ``{signal: value}``.
        fell_back: ``{"tracks"|"buses": {strip: [types that took their prior]}}``.
        reference_max_z: largest ``|z|`` of the reference vector; reference_feature: its name.
        comparison: distances to the reference's features (:func:`compare_mixes`) and spectra
            (``spectra_db``, :func:`spectral_distance_db`), per candidate.
        selected: the candidate rendered (:data:`CANDIDATES`).
        warnings: lines for the terminal.
    """

    confidence: dict = field(default_factory=dict)
    signals: dict = field(default_factory=dict)
    fell_back: dict = field(default_factory=dict)
    reference_max_z: float = 0.0
    reference_feature: str = ""
    comparison: dict = field(default_factory=dict)
    selected: str = "head"
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"confidence": self.confidence, "signals": self.signals, "fell_back": self.fell_back,
                "reference_max_z": round(self.reference_max_z, 2), "reference_feature": self.reference_feature,
                "comparison": self.comparison, "selected": self.selected, "warnings": list(self.warnings)}


# ---------------------------------------------------------------------------------------------- features
OCTAVE_CENTRES_HZ = (63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)


def octave_bands_db(audio: Tensor, sample_rate: int) -> Tensor:
    """Energy per octave band in dB *relative to the signal's level* (its spectral shape).

    Shape:
        ``(n, 2, samples)`` -> ``(n, bands)`` (bands above Nyquist left out).
    """
    power = torch.fft.rfft(audio.double(), dim=-1).abs().pow(2).sum(-2)  # (n, bins)
    freqs = torch.fft.rfftfreq(audio.shape[-1], 1.0 / sample_rate).to(power.device)
    bands = []
    for centre in OCTAVE_CENTRES_HZ:
        if centre * math.sqrt(2) > sample_rate / 2:
            break
        inside = (freqs >= centre / math.sqrt(2)) & (freqs < centre * math.sqrt(2))
        bands.append(power[:, inside].sum(-1))
    bands_t = torch.stack(bands, -1) + 1e-20
    return (10.0 * torch.log10(bands_t / bands_t.sum(-1, keepdim=True))).float()


def width_db(audio: Tensor) -> Tensor:
    """Side-over-mid energy in dB of ``(n, 2, samples)`` -> ``(n,)``, within +-30 dB."""
    mid = (audio[:, 0] + audio[:, 1]).pow(2).mean(-1) + 1e-20
    side = (audio[:, 0] - audio[:, 1]).pow(2).mean(-1) + 1e-20
    return (10.0 * torch.log10(side / mid)).clamp(-30.0, 30.0)


def stereo_extent(stems: Tensor) -> Tensor:
    """The widest pan (0 centre .. 1 hard) a stem ``(n, 2, samples)`` shows: the larger of the pan
    its channel balance implies and the pan its side/mid ratio implies (a centred stem of tracks
    panned apart has a side channel), with the constant-power law of gain/panning. ``(n,)``."""
    energy = stems.double().pow(2).mean(-1) + 1e-20  # (n, 2)
    balance = (4.0 / math.pi) * torch.atan(torch.sqrt(energy[:, 1] / energy[:, 0])) - 1.0
    side_over_mid = torch.sqrt(10.0 ** (width_db(stems).double() / 10.0))
    spread = (4.0 / math.pi) * torch.atan(side_over_mid)
    return torch.maximum(balance.abs(), spread).clamp(0.0, 1.0).float()


def compare_mixes(stems: dict[str, Tensor], reference_stems: Tensor, sample_rate: int,
                  silent_db: float = -50.0) -> dict[str, dict[str, float]]:
    """Distance of each mix's stems to the reference's own features, per feature and overall.

    For the stem classes present in the mix and audible in the reference (more than ``silent_db``
    under its mix): ``loudness_db`` mean |difference| of each stem's level relative to its mix;
    ``spectrum_db`` mean |difference| of octave-band shapes (the stems' and the mix's);
    ``width_db`` of side/mid ratios; ``pan_db`` of right/left balances; ``distance`` their mean.

    Args:
        stems: ``{method: (4, 2, samples)}`` in STEMS order (zeros for absent classes).
        reference_stems: ``(4, 2, samples)``; the lengths may differ (features are averages).
    """
    ref = reference_stems.float().cpu()
    ref_rel = level_db(ref) - level_db(ref.sum(0, keepdim=True))
    out = {}
    for method, audio in stems.items():
        audio = audio.float().cpu()
        present = level_db(audio) > -150.0
        shared = [i for i in range(len(STEMS)) if bool(present[i]) and float(ref_rel[i]) > silent_db]
        if not shared:
            out[method] = {"loudness_db": float("nan"), "spectrum_db": float("nan"), "width_db": float("nan"),
                           "pan_db": float("nan"), "distance": float("nan")}
            continue
        rel = level_db(audio) - level_db(audio.sum(0, keepdim=True))
        a, r = audio[shared], ref[shared]
        loud = (rel[shared] - ref_rel[shared]).abs().mean() if len(shared) > 1 else torch.zeros(())
        spec_a = torch.cat([octave_bands_db(a, sample_rate), octave_bands_db(audio.sum(0, keepdim=True), sample_rate)])
        spec_r = torch.cat([octave_bands_db(r, sample_rate), octave_bands_db(ref.sum(0, keepdim=True), sample_rate)])
        values = {"loudness_db": float(loud), "spectrum_db": float((spec_a - spec_r).abs().mean()),
                  "width_db": float((width_db(a) - width_db(r)).abs().mean()),
                  "pan_db": float((stereo_db(a) - stereo_db(r)).abs().mean())}
        values["distance"] = sum(values.values()) / 4.0
        out[method] = {k: round(v, 3) for k, v in values.items()}
    return out


CANDIDATES = ("head", "half-way", "balance only")
"""The mixes the selection chooses from (:meth:`~mixrep.inference.StyleTransfer.select`), most of the head first."""
SPECTRUM_FFT, SPECTRUM_MELS = 2048, 32
"""Resolution of :func:`spectral_shape_db` (at 22.05 kHz a 93 ms window)."""
SIDE_FLOOR_DB = -80.0
"""Side bands further under the mid's total energy are taken as silent."""


def spectral_shape_db(audio: Tensor, sample_rate: int) -> Tensor:
    """Long-term mel spectra of the mid and the side channel in dB relative to the mid's total energy:
    the signal's tone and its width per band, whatever its level or its notes.

    Shape:
        ``(n, 2, samples)`` -> ``(n, 2, mels)`` (mid, side).
    """
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=SPECTRUM_FFT, hop_length=SPECTRUM_FFT // 4,
                                               n_mels=SPECTRUM_MELS, f_min=30.0, power=2.0).to(audio.device)
    views = torch.stack([(audio[:, 0] + audio[:, 1]) / 2, (audio[:, 0] - audio[:, 1]) / 2], 1).float()
    power = mel(views).mean(-1) + 1e-12  # (n, 2, mels), mean over frames
    shape = 10.0 * torch.log10(power / power[:, :1].sum(-1, keepdim=True))
    return shape.clamp(min=SIDE_FLOOR_DB)


def spectral_distance_db(stems: Tensor, reference_stems: Tensor, sample_rate: int, silent_db: float = -50.0) -> float:
    """Mean |dB| difference of :func:`spectral_shape_db` between a mix's stems and mix and the
    reference's, over the stem classes present in the mix and audible in the reference (more than
    ``silent_db`` under its mix); NaN when there is none.

    What the selection decides on: unlike :func:`compare_mixes`'s octave shapes and broadband
    width, it sees the tone and the width of every band, which is what the head's EQ, imager and
    echoes change; on the calibration items it tracks the audio loss against the target (the
    module docstring).

    Args:
        stems, reference_stems: ``(4, 2, samples)`` in STEMS order (lengths may differ).
    """
    ref = reference_stems.float()
    ref_rel = level_db(ref) - level_db(ref.sum(0, keepdim=True))
    present = level_db(stems.float()) > -150.0
    shared = [i for i in range(len(STEMS)) if bool(present[i]) and float(ref_rel[i]) > silent_db]
    if not shared:
        return float("nan")
    ours = spectral_shape_db(torch.cat([stems[shared], stems.sum(0, keepdim=True)]).float(), sample_rate)
    theirs = spectral_shape_db(torch.cat([ref[shared], ref.sum(0, keepdim=True)]).to(stems.device), sample_rate)
    return float((ours - theirs).abs().mean())


def envelope_lag_ms(mix: np.ndarray, plain: np.ndarray, sample_rate: int, max_lag_ms: float = 500.0) -> float:
    """Lag (ms) of the cross-correlation peak of ``mix``'s loudness envelope against ``plain``'s
    (10 ms RMS frames in dB, mean removed; positive: ``mix`` late). Both ``(2, samples)``: a mix
    that keeps the tracks' timing has lag 0."""
    hop = sample_rate // 100

    def envelope(x: np.ndarray) -> np.ndarray:
        frames = x.mean(0)[: x.shape[-1] // hop * hop].reshape(-1, hop).astype(np.float64)
        e = 10 * np.log10(np.mean(frames**2, -1) + 1e-10)
        return e - e.mean()

    a, b = envelope(mix), envelope(plain)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    lags = np.arange(-int(max_lag_ms / 10), int(max_lag_ms / 10) + 1)
    corr = [float(np.dot(a[max(0, k): n + min(0, k)], b[max(0, -k): n - max(0, k)])) for k in lags]
    return float(lags[int(np.argmax(corr))] * 10)


def plain_stems(tracks: Tensor, stems: list[str]) -> Tensor:
    """The plain sum of each stem class's tracks ``(K, 2, samples)`` -> ``(4, 2, samples)`` (STEMS order)."""
    out = tracks.new_zeros((len(STEMS), *tracks.shape[1:]))
    for track, stem in zip(tracks, stems):
        out[STEMS.index(stem)] += track
    return out


def timing_lag_ms(rendered: Tensor, plain: Tensor, sample_rate: int) -> float:
    """The largest |:func:`envelope_lag_ms`| over stem classes of rendered stems against the plain
    sums of the same tracks (both ``(4, 2, samples)``; silent stems skipped): how far the mix
    moved any stem's timing. Per stem, since balance moves between stems reshape the mix's
    envelope without moving anything in time."""
    lags = [abs(envelope_lag_ms(r.cpu().numpy(), p.cpu().numpy(), sample_rate))
            for r, p in zip(rendered, plain) if float(p.abs().max()) > 0.0 and float(r.abs().max()) > 0.0]
    return max(lags, default=0.0)


# ---------------------------------------------------------------------------------------------- confidence
def decoder_logits(rows: Tensor, layout: StripLayout) -> Tensor:
    """The range decoder's pre-sigmoid logits of raw rows ``(..., size)`` (its inverse; float32
    saturation kept finite)."""
    fraction = layout.normalise(rows.double()).clamp(1e-9, 1.0 - 1e-9)
    return torch.log(fraction / (1.0 - fraction)).float()


def strip_confidence(clip_rows: Tensor, layout: StripLayout, centre: Tensor | None, differ: bool,
                     reference_signal: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Confidence per strip and processor type, and every signal behind it.

    Args:
        clip_rows: ``(clips, strips, size)`` the head's raw rows on each clip.
        layout: the strip layout of the rows.
        centre: ``(size,)`` the decoder's starting logits (``None``: 0).
        differ: the strips' inputs differ (the ``identical`` signal applies).
        reference_signal: the ``reference`` signal (one value for every strip).

    Returns:
        ``(strips, types)`` confidence, and ``{signal: (strips, types)}``.
    """
    normalised = layout.normalise(clip_rows.double()).float()  # (C, S, size)
    median = clip_rows.median(0).values
    logits = decoder_logits(median, layout)  # (S, size)
    start = torch.zeros(logits.shape[-1]) if centre is None else centre.float().cpu()
    pinned = (logits.abs() > BOUND_LOGIT) & ((logits - start).abs() > BOUND_LOGIT)
    setting = torch.ones(logits.shape[-1], dtype=torch.bool)  # dry/wet logits sit at "fully wet" by design
    for e in layout.entries:
        if e.name == DRY_WET:
            setting[e.offset: e.offset + e.size] = False
    spread = normalised.std(0, unbiased=False) if clip_rows.shape[0] > 1 else torch.zeros_like(normalised[0])
    across = normalised.median(0).values.std(0, unbiased=False) if clip_rows.shape[1] > 1 else None
    strips, types = clip_rows.shape[1], layout.types
    signals = {name: torch.ones(strips, len(types)) for name in ("clips", "bound", "identical", "reference")}
    for j, (t, cols) in enumerate(layout.type_slices().items()):
        signals["clips"][:, j] = (1.0 - spread[:, cols].mean(-1) / SPREAD_LIMIT).clamp(0.0, 1.0)
        if bool(setting[cols].any()):
            signals["bound"][:, j] = 1.0 - pinned[:, cols][:, setting[cols]].float().mean(-1)
        if differ and across is not None:
            signals["identical"][:, j] = (across[cols].mean() / IDENTICAL_LIMIT).clamp(0.0, 1.0)
        signals["reference"][:, j] = reference_signal
    confidence = torch.stack(list(signals.values())).min(0).values
    return confidence, signals


def reference_signal(max_z: float) -> float:
    """The ``reference`` signal of a reference vector's largest ``|z|``."""
    return float(min(1.0, max(0.0, (Z_FAR - max_z) / (Z_FAR - Z_NEAR))))


def tracks_differ(tracks: Tensor, sample_rate: int) -> bool:
    """True when 3 or more audible tracks ``(K, 2, samples)`` have octave spectra more than
    :data:`DIFFERENT_TRACKS_DB` apart on average (mean |difference| from their mean shape)."""
    audible = tracks[level_db(tracks) > -150.0]
    if audible.shape[0] < 3:
        return False
    bands = octave_bands_db(audible, sample_rate)
    return float((bands - bands.mean(0)).abs().mean()) > DIFFERENT_TRACKS_DB


# ---------------------------------------------------------------------------------------------- settings
def neutral_parameters(node_type: str, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """The measured prior of one processor type's parameters ``{name: (nodes, *shape)}``: fader
    0 dB centred, EQ flat, dynamics at ratio 1, width 1, echo effects dry. Others unchanged."""
    out = {k: v.clone() for k, v in params.items()}
    if node_type == "gain_pan":
        out["log_gain"].zero_()
    elif node_type == "eq":
        out["log_magnitude"].zero_()
    elif node_type in ("compressor", "noisegate"):
        out["slope"].zero_()
    elif node_type == "imager":
        out["log_width"].zero_()
    elif node_type in TIME_EFFECTS:
        out[DRY_WET].fill_(DRY_WET_RANGE[0])
    return out


def blend_consoles(prior: MixingConsole, head: MixingConsole, share: float) -> MixingConsole:
    """A console on ``head``'s graph whose every raw parameter lies ``share`` of the way from
    ``prior``'s (same graph) to ``head``'s: 0 gives ``prior``'s settings, 1 ``head``'s."""
    if prior.graph.node_names != head.graph.node_names:
        raise ValueError("blending needs two consoles on the same graph")
    a, b = prior.parameter_dict(), head.parameter_dict()
    params = {t: {k: (a[t][k] + share * (b[t][k] - a[t][k])).detach() for k in b[t]} for t in b}
    return MixingConsole(head.graph, dict(head.processors), params, head.schedule)


def clamp_to_ranges(node_type: str, params: dict[str, Tensor], pan_limit: Tensor | None,
                    wide: bool = False) -> dict[str, Tensor]:
    """One processor type's raw parameters ``{name: (nodes, *shape)}`` clamped into
    :data:`ENGINEER_RANGES` (``wide``: unchanged), pan within ``pan_limit`` ``(nodes,)``.

    The echo sends' wet weight stays at most 0.5 even with ``wide`` (the dry path keeps the timing).
    """
    out = {k: v.clone() for k, v in params.items()}
    if node_type in TIME_EFFECTS:
        out[DRY_WET] = out[DRY_WET].clamp(max=0.0)  # logit 0: wet weight 0.5, the dry path never quieter
        return out
    if wide:
        return out
    ranges = ENGINEER_RANGES.get(node_type, {})
    if node_type == "gain_pan":
        physical = Fn.gain_pan_physical(out["log_gain"].clamp(*(g * Fn.LOG10_OVER_20 for g in Fn.GAIN_DB_RANGE)))
        gain = physical["gain_db"].clamp(*ranges["gain_db"])
        limit = torch.ones_like(gain) if pan_limit is None else pan_limit.to(gain)
        pan = torch.maximum(torch.minimum(physical["pan"], limit), -limit)
        changed = (gain != physical["gain_db"]) | (pan != physical["pan"])
        out["log_gain"] = torch.where(changed[..., None], Fn.pan_to_log_gain(gain, pan), out["log_gain"])
    elif node_type == "eq":
        low, high = (g * Fn.LOG10_OVER_20 for g in ranges["gain_db"])
        out["log_magnitude"] = out["log_magnitude"].clamp(low, high)
    elif node_type in ("compressor", "noisegate"):
        expander = node_type == "noisegate"
        low, high = ranges["threshold_db"]
        out["log_threshold"] = out["log_threshold"].clamp(low / Fn.ENERGY_NP_TO_DB, high / Fn.ENERGY_NP_TO_DB)
        max_slope = float(Fn.ratio_to_slope(torch.tensor(ranges["ratio"][1]), expander))
        out["slope"] = out["slope"].clamp(0.0, max_slope)
    elif node_type == "imager":
        out["log_width"] = out["log_width"].clamp(max=math.log(ranges["width"][1]))
    return out


def pan_limits(reference_stems: Tensor, stems: list[str]) -> dict[str, float]:
    """``{stem class: widest pan allowed}``: the reference stem's :func:`stereo_extent`, at least
    :data:`PAN_FLOOR`; a class silent in the reference (more than 50 dB under its mix) shows no
    stereo to follow and gets :data:`PAN_FLOOR`."""
    ref = reference_stems.float().cpu()
    rel = level_db(ref) - level_db(ref.sum(0, keepdim=True))
    extent = stereo_extent(ref)
    return {c: (max(PAN_FLOOR, float(extent[STEMS.index(c)])) if float(rel[STEMS.index(c)]) > -50.0 else PAN_FLOOR)
            for c in dict.fromkeys(stems)}


@torch.no_grad()
def track_pans(console: MixingConsole) -> Tensor:
    """``(K,)`` the pan (-1 .. 1) of every track strip's fader, in track order."""
    physical = Fn.gain_pan_physical(console.parameter_dict()["gain_pan"]["log_gain"].detach().cpu())
    ranks, owners = console.graph.type_rank(), strip_of_nodes(console.graph)
    pans = torch.zeros(len(console.track_names))
    for v in console.graph.nodes_of_type("gain_pan"):
        if owners[v] is not None and owners[v][0] == "track":
            pans[owners[v][1]] = physical["pan"][ranks[v]]
    return pans


def strip_names(console: MixingConsole, stems: list[str]) -> tuple[list[str], list[str]]:
    """Names of the console's track strips and bus strips (bus strips in mix-node order)."""
    return list(console.track_names), list(stem_groups(list(console.track_names), stems))


def _node_strips(console: MixingConsole, stems: list[str], node_type: str) -> list[tuple[str, int, str]]:
    """Per node of ``node_type`` (by rank): ``(kind, strip index, stem class)``."""
    graph = console.graph
    _, bus_names = strip_names(console, stems)
    owners = strip_of_nodes(graph)
    out = []
    for v in graph.nodes_of_type(node_type):
        kind, i = owners[v]
        out.append((kind, i, stems[i] if kind == "track" else bus_names[i]))
    return out


@torch.no_grad()
def clamp_console(console: MixingConsole, stems: list[str], reference_stems: Tensor, wide: bool = False,
                  pan: bool = True) -> None:
    """Clamp every setting of ``console`` into the engineer's ranges in place (pan within each
    stem's :func:`pan_limits`, unless ``pan`` is False: after balance matching, which set the
    stereo from the reference's own stems; ``wide``: the safe ranges, echo sends still at most
    half wet)."""
    limits = pan_limits(reference_stems, stems) if pan else {c: 1.0 for c in stems}
    for node_type, p in console.parameter_dict().items():
        current = {k: v.detach() for k, v in p.items()}
        device = next(iter(current.values())).device
        pan_limit = torch.tensor([limits[stem] for _, _, stem in _node_strips(console, stems, node_type)],
                                 device=device)
        for k, value in clamp_to_ranges(node_type, current, pan_limit, wide).items():
            p[k].copy_(value)


@torch.no_grad()
def apply_guard(console: MixingConsole, stems: list[str], confidence: dict[str, Tensor], layouts: dict[str, StripLayout],
                reference_stems: Tensor, config: GuardConfig) -> dict[str, dict[str, list[str]]]:
    """Fall back, then clamp (:func:`clamp_console`), in place on ``console``'s parameters.

    A setting falls back to :func:`neutral_parameters` when its confidence is under
    ``config.threshold`` (``config.time_threshold`` for delay and reverb, which also fall back
    when their send is inaudible).

    Args:
        confidence: ``{"track": (K, track types), "group": (G, group types)}`` for the console's
            strips (groups in mix-node order), types in the layouts' order.
        layouts: ``{"track": ..., "group": ...}``.

    Returns:
        ``{"tracks"|"buses": {strip name: [types that took their prior for low confidence]}}``
        (inaudible sends are set dry without being listed).
    """
    track_names, bus_names = strip_names(console, stems)
    fell_back: dict[str, dict[str, list[str]]] = {"tracks": {n: [] for n in track_names},
                                                  "buses": {n: [] for n in bus_names}}
    for node_type, p in console.parameter_dict().items():
        current = {k: v.detach() for k, v in p.items()}
        neutral = neutral_parameters(node_type, current)
        for rank, (kind, i, _) in enumerate(_node_strips(console, stems, node_type)):
            layout = layouts[kind]
            c = float(confidence[kind][i, layout.types.index(node_type)])
            timing = node_type in TIME_EFFECTS
            inaudible = timing and float(torch.sigmoid(current[DRY_WET][rank])) < AUDIBLE_WET
            low = c < (config.time_threshold if timing else config.threshold)
            if low or inaudible:
                for k in current:
                    p[k][rank] = neutral[k][rank]
            if low:
                strip = track_names[i] if kind == "track" else bus_names[i]
                fell_back["tracks" if kind == "track" else "buses"][strip].append(node_type)
    clamp_console(console, stems, reference_stems, config.wide_ranges)
    return fell_back


def format_guard_report(report: GuardReport) -> str:
    """The guard's decisions as text: confidence per strip and setting (``*``: fell back to the
    prior), the comparison with the plain sum and balance matching alone, and the warnings."""
    lines = []
    for key in ("tracks", "buses"):
        strips = report.confidence.get(key, {})
        if not strips:
            continue
        types = list(next(iter(strips.values())))
        lines.append(f"{key[:-1] if key == 'tracks' else 'bus':<12} " + " ".join(f"{t:>10}" for t in types))
        for strip, values in strips.items():
            fell = report.fell_back.get(key, {}).get(strip, [])
            lines.append(f"{strip:<12} " + " ".join(f"{values[t]:>9.2f}{'*' if t in fell else ' '}" for t in types))
    if lines:
        lines.insert(0, "confidence per setting (* fell back to the measured prior):")
    if report.comparison:
        features = ("loudness_db", "spectrum_db", "width_db", "pan_db", "distance", "spectra_db")
        lines.append(f"distance to the reference's own features (dB, lower is closer; rendered: {report.selected}):")
        lines.append(f"{'mix':<13} " + " ".join(f"{f:>12}" for f in features))
        for method, values in report.comparison.items():
            lines.append(f"{method:<13} " + " ".join(f"{values.get(f, float('nan')):>12.2f}" for f in features)
                         + ("  <- rendered" if method == report.selected else ""))
    lines += [f"WARNING: {w}" for w in report.warnings]
    return "\n".join(lines)

"""Conversions between the mixing-style settings (:class:`~mixrep.styles.mix_style.MixStyle`) and
the differentiable console's parameters, both ways, so every tool reports in the one vocabulary.

* :func:`console_from_style`: settings -> a :class:`~mixrep.console.console.MixingConsole`, exact
  where both have the processor (fader, pan, width, the EQ's magnitude at its bins), approximate
  where the console's processor differs (compressor detector and time constants, delay taps on the
  slot grid, the filtered-noise reverb fitted to Freeverb's impulse response), and a note for every
  setting with no console processor (saturation, limiter).
* :func:`style_from_console`: a console -> the nearest settings: each EQ curve fitted by a short
  torch fit to high-pass / low-pass + low shelf + peaks + high shelf, gain/pan inverted exactly to
  fader and pan, delay taps read as a delay bus and send, the reverb matched to the nearest Freeverb
  setting, bus (group) strips folded into their tracks. :func:`write_console_style` writes the result
  beside a console's graph JSON.

Both return the settings with a :class:`ConversionReport`: which settings did not convert and why,
which are approximate, and the EQ fit error in dB per strip.

How the two signal flows are matched. A style strip is ``HP/LP -> EQ -> compressor + make-up ->
saturation -> fader -> width -> pan -> post-fader sends``; a console strip (Lee et al.'s chain
``e c n s g d r``) is ``EQ -> compressor -> gate -> imager -> gain/pan -> delay -> reverb``, the
echo effects inline with dry/wet weights. The console's delay carries the dry path as its zero-lag
tap (so its output is the dry signal plus the echoes), and the reverb runs at dry/wet 0.5 with the
gain/pan raised by 6.02 dB, so the strip outputs ``dry + delay echoes + reverb`` as the style's sends
do (the reverb also hears the echoes: approximate). The style's master EQ and bus compressor go to
a single ``master`` group strip ``e c g``; its gain/pan carries the loudness gain when the tracks
are given. Make-up gain has no console processor: it is folded into the fader (and comes back as
fader, make-up 0).

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
    Dimitrios Giannoulis, Michael Massberg, Joshua D. Reiss, "Digital Dynamic Range Compressor Design -
    A Tutorial and Analysis", JAES 2012.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pedalboard
import scipy.ndimage
import torch
from torch import Tensor

from mixrep.audio.primitives import gain_to_db, rms_db
from mixrep.audio.stems import stem_index
from mixrep.console import functional as Fn
from mixrep.console.batch import GROUP, TRACK, strip_of_nodes
from mixrep.console.console import MixingConsole
from mixrep.console.graph import DEFAULT_CHAIN, INPUT, MIX, build_console
from mixrep.console.processors import DRY_WET, DRY_WET_RANGE, Processor, dry_wet_weight, make_processors
from mixrep.console.strips import strip_nodes
from mixrep.console.style_dsp import EQ_TOP_FRACTION, LOWPASS_TOP_FRACTION, butterworth_response, eq_band_response
from mixrep.constants import SAMPLE_RATE, STEMS
from mixrep.styles.mix_style import (
    ChannelStrip, CompressorSettings, DelayBus, EqBand, MasterBus, MixStyle, ReverbBus, integrated_loudness,
)
from mixrep.styles.style_file import write_style_json

NOMINAL_INPUT_RMS_DBFS = -20.0
"""Without the tracks, a style's relative compressor threshold is made absolute against an input
RMS of this level (and noted as approximate)."""
MASTER = "master"
"""Name of the group strip that carries the style's master bus."""
MASTER_CHAIN = "ecg"
"""The master strip's chain: EQ, bus compressor, gain (loudness)."""
EQ_FIT_LOW_HZ, EQ_FIT_HIGH_HZ = 20.0, 20000.0
"""The log-frequency grid of the EQ fit (its top is kept below the EQ bands' top, 0.45 of the rate)."""
EQ_FIT_POINTS = 192
ACTIVE = 1e-3
"""A processor whose effect (dry/wet weight, slope, echo level) is below this is treated as bypassed."""
ECHO_FLOOR_DB = -60.0
"""Delay taps and reverb returns below this level relative to the dry path are not read as sends."""
_MAX_LOGIT, _MIN_LOGIT = DRY_WET_RANGE[1], DRY_WET_RANGE[0]
_W_MAX = float(torch.sigmoid(torch.tensor(_MAX_LOGIT, dtype=torch.float64)))


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ConversionNote:
    """One setting that did not convert (``kind="untranslated"``) or converted only approximately."""

    where: str
    kind: str
    reason: str


@dataclass
class ConversionReport:
    """What a conversion could not carry over, and how close the EQ fits came.

    Attributes:
        notes: untranslated and approximate settings, each with its reason.
        eq_fit_error_db: weighted RMS error in dB of each strip's fitted EQ curve on the log-frequency
            grid (:func:`fit_eq_curves`), keyed by strip (track name, or ``master``); empty for
            :func:`console_from_style`, whose EQ is exact at the console's bins.
    """

    notes: list[ConversionNote] = field(default_factory=list)
    eq_fit_error_db: dict[str, float] = field(default_factory=dict)

    def note(self, where: str, kind: str, reason: str) -> None:
        self.notes.append(ConversionNote(where, kind, reason))

    @property
    def untranslated(self) -> list[ConversionNote]:
        return [n for n in self.notes if n.kind == "untranslated"]

    @property
    def approximate(self) -> list[ConversionNote]:
        return [n for n in self.notes if n.kind == "approximate"]

    def to_dict(self) -> dict:
        return {"untranslated": [dataclasses.asdict(n) for n in self.untranslated],
                "approximate": [dataclasses.asdict(n) for n in self.approximate],
                "eq_fit_error_db": {k: round(v, 4) for k, v in self.eq_fit_error_db.items()}}


@dataclass
class ConsoleFromStyle:
    """:func:`console_from_style`'s result: the console and what did not convert exactly."""

    console: MixingConsole
    report: ConversionReport


@dataclass
class StyleFromConsole:
    """:func:`style_from_console`'s result: the nearest settings and the conversion report."""

    style: MixStyle
    report: ConversionReport

    def to_dict(self) -> dict:
        """``{"style": MixStyle.to_dict(), "conversion": ConversionReport.to_dict()}`` (JSON-ready)."""
        return {"style": self.style.to_dict(), "conversion": self.report.to_dict()}


# ----------------------------------------------------------------------------- small helpers


def _logit(weight: float) -> float:
    return float(np.clip(math.log(weight / (1.0 - weight)), _MIN_LOGIT, _MAX_LOGIT))



def _strip_eq_response_db(strip: ChannelStrip | MasterBus, frequencies_hz: Tensor, sample_rate: int) -> Tensor:
    """Magnitude in dB of a strip's HP/LP and EQ bands (a master bus: its bands) at ``frequencies_hz``."""
    highpass = getattr(strip, "highpass_hz", None)
    lowpass = getattr(strip, "lowpass_hz", None)
    t = lambda v: torch.tensor(float(v), dtype=torch.float64)  # noqa: E731
    response = butterworth_response(None if highpass is None else t(highpass),
                                    None if lowpass is None else t(lowpass), frequencies_hz, sample_rate)
    db = 20.0 * torch.log10(response.abs().clamp(min=1e-12))
    for band in strip.eq:
        db = db + 20.0 * torch.log10(eq_band_response(band.kind, t(band.frequency_hz), t(band.gain_db), t(band.q),
                                                      frequencies_hz, sample_rate).abs().clamp(min=1e-12))
    return db


def _set_row(params: dict[str, Tensor], row: int, **values) -> None:
    for name, value in values.items():
        params[name][row] = torch.as_tensor(value, dtype=params[name].dtype)


# ----------------------------------------------------------------------------- reverb model


def _freeverb_ir(room_size: float, damping: float, width: float, sample_rate: int, samples: int) -> np.ndarray:
    """Impulse response ``(2, samples)`` of the style's reverb bus (Freeverb, wet 1/3, dry 0) to a
    left-channel impulse (JUCE's Freeverb sums its input to mono, so either channel gives it)."""
    impulse = np.zeros((2, samples), dtype=np.float32)
    impulse[0, 0] = 1.0
    plugin = pedalboard.Reverb(room_size=room_size, damping=damping, width=width, wet_level=1.0 / 3.0,
                               dry_level=0.0)
    return plugin(impulse, sample_rate)


def _mid_side_stft(ir: Tensor | np.ndarray, reverb: Processor) -> Tensor:
    """STFT ``(2 [mid, side], bins, frames)`` of a stereo IR ``(2, samples)`` with the reverb's frames."""
    x = torch.as_tensor(np.asarray(ir, dtype=np.float64))
    mid_side = torch.stack([(x[0] + x[1]) / 2.0, (x[0] - x[1]) / 2.0])
    window = torch.hann_window(reverb.n_fft, dtype=torch.float64)
    return torch.stft(mid_side, reverb.n_fft, reverb.hop_length, window=window, return_complex=True)


def _fit_decay(spectrum: Tensor) -> tuple[Tensor, Tensor]:
    """Per mid/side channel and bin of ``spectrum`` (:func:`_mid_side_stft`): the decay per frame
    (natural-log amplitude) read as a T20 reading of RT60 reads it, the least-squares slope of the
    bin's Schroeder energy decay curve from -5 to -25 dB, halved, then the median over 9 neighbouring
    bins; and the log-magnitude at frame 0
    of the line with that slope through the frames in that range. Both ``(2, bins)``."""
    energy = spectrum.abs().pow(2)  # (2, bins, frames)
    tail = energy.flip(-1).cumsum(-1).flip(-1).clamp(min=1e-30)
    edc_db = 10.0 * torch.log10(tail / tail[..., :1])
    frames = torch.arange(energy.shape[-1], dtype=torch.float64)
    weight = ((edc_db <= -5.0) & (edc_db >= -25.0)).to(torch.float64)
    count = weight.sum(-1).clamp(min=1.0)
    mean_t = (weight * frames).sum(-1) / count
    log_edc = torch.log(tail)
    mean_e = (weight * log_edc).sum(-1) / count
    cov = (weight * (frames - mean_t[..., None]) * (log_edc - mean_e[..., None])).sum(-1)
    var = (weight * (frames - mean_t[..., None]) ** 2).sum(-1).clamp(min=1e-9)
    slope = torch.where(count > 1.5, 0.5 * cov / var, torch.full_like(cov, -1.0))
    # Freeverb's combs make the per-bin spectrum ragged: the median over 9 neighbouring bins
    slope = torch.from_numpy(scipy.ndimage.median_filter(slope.numpy(), size=(1, 9), mode="nearest"))
    log_mag = torch.log(spectrum.abs().clamp(min=1e-12))
    mean_y = (weight * log_mag).sum(-1) / count
    return mean_y - slope * mean_t, slope


def freeverb_reverb_parameters(reverb: Processor, room_size: float, damping: float, width: float,
                               gain_db: float = 0.0) -> dict[str, Tensor]:
    """Raw parameters ``(2, bins)`` of the console's filtered-noise reverb fitted to the style's
    Freeverb bus (its wet path, raised by ``gain_db``).

    Per mid/side channel and STFT bin: the decay rate is read from Freeverb's Schroeder energy
    decay curve as a T20 reading of RT60 does (:func:`_fit_decay`), and the initial level is set so that the
    bin's energy over the impulse response equals Freeverb's (one calibration render), clamped
    into the processor's ranges.
    """
    target = _mid_side_stft(_freeverb_ir(room_size, damping, width, reverb.sample_rate, reverb.ir_samples), reverb)
    intercept, slope = _fit_decay(target)
    specs = reverb.parameter_specs()
    noise = torch.log(reverb.noise_frames.abs().to(torch.float64).clamp(min=1e-12)).mean(-2)
    decay = (-slope).clamp(min=1e-6)
    delta = (decay + torch.log(-torch.expm1(-decay))).clamp(specs["delta_log_magnitude"].low,
                                                            specs["delta_log_magnitude"].high)  # inverse softplus
    init = (intercept - noise).clamp(specs["init_log_magnitude"].low, specs["init_log_magnitude"].high)
    with torch.no_grad():
        ours = _mid_side_stft(reverb.impulse_response(init[None].float(), delta[None].float())[0].double(), reverb)
    ratio = target.abs().pow(2).sum(-1).clamp(min=1e-30) / ours.abs().pow(2).sum(-1).clamp(min=1e-30)
    init = init + 0.5 * torch.log(ratio) + gain_db * Fn.LOG10_OVER_20
    return {"init_log_magnitude": init.clamp(specs["init_log_magnitude"].low, specs["init_log_magnitude"].high),
            "delta_log_magnitude": delta}


_ROOM_GRID = tuple(float(x) for x in np.linspace(0.1, 0.95, 9))
_DAMPING_GRID = tuple(float(x) for x in np.linspace(0.1, 0.9, 7))


@lru_cache(maxsize=4)
def _reverb_table(sample_rate: int, n_fft: int, hop_length: int, ir_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`freeverb_reverb_parameters` (width 1, 0 dB) on a grid of room sizes x dampings:
    ``(settings, 2)`` room/damping and ``(settings, 2 [init, delta], 2 channels, bins)`` raw values
    (with the default noise seed: another seed's calibration differs by its noise's level per bin)."""
    from mixrep.console.processors import Reverb

    reverb = Reverb(sample_rate, ir_seconds=ir_samples / sample_rate, n_fft=n_fft, hop_length=hop_length)
    settings, features = [], []
    for room in _ROOM_GRID:
        for damping in _DAMPING_GRID:
            raw = freeverb_reverb_parameters(reverb, room, damping, 1.0)
            settings.append((room, damping))
            features.append(torch.stack([raw["init_log_magnitude"], raw["delta_log_magnitude"]]).numpy())
    return np.asarray(settings), np.stack(features)


# ----------------------------------------------------------------------------- settings -> console


def console_from_style(
    style: MixStyle, names: Sequence[str], stems: Sequence[str | int], tracks: Tensor | np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE, chain: str = DEFAULT_CHAIN, processor_options: dict[str, dict] | None = None,
) -> ConsoleFromStyle:
    """A console that mixes ``names`` as ``style`` does (see the module docstring for the flow).

    Exact: fader and pan (the style's constant-power law with unity centre is the console's
    :func:`~mixrep.console.functional.pan_to_log_gain`; per-channel gains equal), width (the
    imager, for widths the imager reaches: 0.0067 .. 7.4), the HP/LP and EQ bands' magnitude at
    the console EQ's bins (within its -40 .. +20 dB range; the console's EQ is zero-phase and
    Hann-windowed, so phase and narrow notches differ), the master EQ likewise, make-up folded
    into the fader. Approximate (noted in the report): the compressor (the style's plugin detects
    each channel's peak with separate attack and release; the console detects the mid channel's
    energy with one time constant, set to the geometric mean ``sqrt(attack * release)``, and
    the smallest knee), the delay (echoes ``k * delay`` at gains ``send * feedback^(k-1)`` as
    taps on the console's slot grid: an echo in an occupied slot or past the last is dropped and
    noted), the reverb (the filtered-noise reverb fitted per STFT bin to the level and decay of
    Freeverb's impulse response; it also hears the delay's echoes). Untranslated (noted):
    saturation, the limiter, and, without ``tracks``, the loudness target.

    The style's compressor thresholds are relative to the RMS of the compressor's input. With
    ``tracks`` that RMS is measured (rendering the console up to each compressor) and the
    threshold made absolute exactly as the style's renderer does; without them it is taken
    relative to :data:`NOMINAL_INPUT_RMS_DBFS` (noted as approximate).

    Args:
        style: the settings.
        names: track names (strips are looked up by name, then by stem class).
        stems: stem class of each track (name or index).
        tracks: the dry tracks ``(tracks, 2, samples)`` (optional; see above).
        sample_rate: the console's rate (Hz).
        chain: per-track chain letters (default Lee et al.'s ``ecnsgdr``); a style setting whose
            processor is not in it is noted as untranslated.
        processor_options: extra constructor arguments per processor type.

    Raises:
        ValueError: names and stem classes differ in number, a track without a strip, tracks of
            the wrong shape.
    """
    names = list(names)
    if len(names) != len(stems):
        raise ValueError(f"{len(names)} track names but {len(stems)} stem classes; give one stem class per track")
    strips = [style.strip_for(name, STEMS[stem_index(s)]) for name, s in zip(names, stems)]
    if tracks is not None:
        tracks = torch.as_tensor(np.asarray(tracks), dtype=torch.float32)
        if tracks.ndim != 3 or tracks.shape[0] != len(names) or tracks.shape[1] != 2:
            raise ValueError(f"expected tracks ({len(names)}, 2, samples) for {names}, got {tuple(tracks.shape)}")
    processors = make_processors(sample_rate, **(processor_options or {}))
    graph = build_console(names, {MASTER: names}, chain, MASTER_CHAIN)
    console = MixingConsole(graph, processors)
    report = ConversionReport()
    params = {t: {k: v.detach().clone() for k, v in p.items()} for t, p in console.parameter_dict().items()}
    nodes = strip_nodes(graph)
    ranks = graph.type_rank()

    def row(kind: str, index: int, node_type: str) -> int | None:
        v = nodes[kind][index].get(node_type)
        return None if v is None else ranks[v]

    _transparent(params, processors)
    for k, (name, strip) in enumerate(zip(names, strips)):
        _set_strip(params, processors, strip, style, name, {t: row(TRACK, k, t) for t in processors}, report)
    _set_master(params, processors, style.master, {t: row(GROUP, 0, t) for t in processors}, report)
    if style.master.eq or any(s.eq or s.highpass_hz is not None or s.lowpass_hz is not None for s in strips):
        report.note("eq", "approximate", "the console's EQ holds each curve exactly at its bins but is zero-phase "
                    "and renders through a Hann-windowed FIR, which smooths steep low-frequency slopes and narrow "
                    "peaks (docs/results.md, 'Settings <-> console conversion')")
    for name, strip in zip(names, strips):
        if strip.saturation_drive_db is not None:
            report.note(f"strips.{name}.saturation_drive_db", "untranslated",
                        "the console has no saturation (waveshaper) processor")
    if style.master.limiter is not None:
        report.note("master.limiter", "untranslated", "the console has no limiter processor")
    _load(console, params)
    _absolute_thresholds(console, params, processors, strips, style, names, tracks, report)
    return ConsoleFromStyle(console, report)


def _load(console: MixingConsole, params: dict[str, dict[str, Tensor]]) -> None:
    with torch.no_grad():
        for t, p in params.items():
            for k, v in p.items():
                console.params[t][k].copy_(v)


def _transparent(params: dict[str, dict[str, Tensor]], processors: dict[str, Processor]) -> None:
    """Every processor exactly (or to -80 dB) transparent: flat EQ, zero slopes, unit width and
    gain, a delay whose only audible tap is the zero-lag dry one, a silent reverb."""
    for t, p in params.items():
        n = p[DRY_WET].shape[0]
        if t == "eq":
            p["log_magnitude"].zero_()
            p[DRY_WET].fill_(_MAX_LOGIT)
        elif t in ("compressor", "noisegate"):
            p["slope"].zero_()
            p[DRY_WET].fill_(_MAX_LOGIT)
        elif t == "imager":
            p["log_width"].zero_()
            p[DRY_WET].fill_(_MAX_LOGIT)
        elif t == "gain_pan":
            p["log_gain"].zero_()
            p[DRY_WET].fill_(_MAX_LOGIT)
        elif t == "delay":
            proc = processors[t]
            p["log_magnitude"].fill_(proc.parameter_specs()["log_magnitude"].low)
            p["log_magnitude"][:, :, 0].zero_()  # tap 0 at lag 0, 0 dB: the dry path
            delay_ms = torch.zeros(n, 2, proc.taps, dtype=torch.float64)
            p["z_delay"].copy_(Fn.delay_raw(delay_ms, torch.full_like(delay_ms, proc.initial_radius),
                                            proc.slot_samples, proc.sample_rate))
            p[DRY_WET].fill_(_MIN_LOGIT)
        elif t == "reverb":
            specs = processors[t].parameter_specs()
            p["init_log_magnitude"].fill_(specs["init_log_magnitude"].low)
            p[DRY_WET].fill_(_MIN_LOGIT)


def _wet_for(target: Tensor, weight: float) -> Tensor:
    """The wet value whose dry/wet blend ``w * wet + (1 - w)`` equals ``target`` (linear gains)."""
    return (target - (1.0 - weight)) / weight


def _set_strip(params, processors, strip: ChannelStrip, style: MixStyle, name: str, rows: dict[str, int | None],
               report: ConversionReport) -> None:
    where = f"strips.{name}"

    def missing(setting: str, node_type: str) -> bool:
        if rows[node_type] is None:
            report.note(f"{where}.{setting}", "untranslated", f"the console chain has no {node_type} on this strip")
            return True
        return False

    if (strip.eq or strip.highpass_hz is not None or strip.lowpass_hz is not None) and not missing("eq", "eq"):
        _set_eq(params["eq"], rows["eq"], processors["eq"], strip, where, report)
    if strip.compressor is not None and not missing("compressor", "compressor"):
        _set_compressor(params["compressor"], rows["compressor"], processors["compressor"], strip.compressor,
                        f"{where}.compressor", "the plugin's per-channel peak detector", report)
    gain_db = strip.fader_db + (strip.compressor.makeup_db if strip.compressor is not None else 0.0)
    if strip.width is not None and not missing("width", "imager"):
        spec = processors["imager"].parameter_specs()["log_width"]
        wet = _wet_for(torch.tensor(float(strip.width), dtype=torch.float64), _W_MAX)
        lowest = math.exp(spec.low)
        if wet < lowest or wet > math.exp(spec.high):
            report.note(f"{where}.width", "approximate",
                        f"width {strip.width} outside the imager's {lowest:.4f} .. {math.exp(spec.high):.2f}")
        _set_row(params["imager"], rows["imager"],
                 log_width=torch.log(wet.clamp(min=lowest)).clamp(spec.low, spec.high)[None])
    delay_on = style.delay is not None and strip.delay_send_db is not None
    reverb_on = style.reverb is not None and strip.reverb_send_db is not None
    if delay_on and not missing("delay_send_db", "delay"):
        _set_delay(params["delay"], rows["delay"], processors["delay"], style.delay, strip.delay_send_db,
                   f"{where}.delay_send_db", report)
    if reverb_on and not missing("reverb_send_db", "reverb"):
        _set_reverb(params["reverb"], rows["reverb"], processors["reverb"], style.reverb, strip.reverb_send_db,
                    f"{where}.reverb_send_db", report)
    if rows["gain_pan"] is None:
        report.note(f"{where}.fader_db", "untranslated", "the console chain has no gain_pan on this strip")
        return
    dry_db = 0.0
    if rows["reverb"] is not None:  # the reverb's dry path (1 - w), made up here
        dry_db = gain_to_db(1.0 - float(dry_wet_weight(params["reverb"][DRY_WET][rows["reverb"]])))
    target = torch.exp(Fn.pan_to_log_gain(torch.tensor(gain_db - dry_db, dtype=torch.float64),
                                          torch.tensor(float(np.clip(strip.pan, -1.0, 1.0)), dtype=torch.float64)))
    spec = processors["gain_pan"].parameter_specs()["log_gain"]
    log_gain = torch.log(_wet_for(target, _W_MAX).clamp(min=math.exp(spec.low))).clamp(spec.low, spec.high)
    _set_row(params["gain_pan"], rows["gain_pan"], log_gain=log_gain)


def _set_compressor(p: dict[str, Tensor], row: int, proc: Processor, c: CompressorSettings, where: str,
                    detector: str, report: ConversionReport) -> None:
    """Ratio exact; one time constant ``sqrt(attack * release)``; the smallest knee; the threshold
    against :data:`NOMINAL_INPUT_RMS_DBFS` until the tracks make it absolute."""
    tau = math.sqrt(c.attack_ms * c.release_ms)
    raw = proc.from_physical({"time_constant_ms": torch.tensor([tau], dtype=torch.float64),
                              "threshold_db": torch.tensor([NOMINAL_INPUT_RMS_DBFS + c.threshold_db]),
                              "ratio": torch.tensor([c.ratio]), "knee_db": torch.tensor([1.0])})
    raw = proc.constrain({k: v.float() for k, v in raw.items()})
    raw["log_knee"] = torch.tensor([[proc.parameter_specs()["log_knee"].low]])
    _set_row(p, row, **{k: v[0] for k, v in raw.items()}, **{DRY_WET: torch.tensor(_MAX_LOGIT)})
    largest = float(Fn.slope_to_ratio(torch.tensor(proc.parameter_specs()["slope"].high), False))
    if c.ratio > largest:
        report.note(f"{where}.ratio", "approximate", f"ratio {c.ratio:.1f} above the console's largest, {largest:.0f}")
    report.note(where, "approximate",
                f"mid-channel energy detector with one time constant sqrt(attack x release) = {tau:.1f} ms and the "
                f"smallest knee, for {detector} with attack {c.attack_ms:.1f} ms / release {c.release_ms:.1f} ms "
                "and a hard knee")


def _set_eq(p: dict[str, Tensor], row: int, proc: Processor, strip: ChannelStrip | MasterBus, where: str,
            report: ConversionReport) -> None:
    spec = proc.parameter_specs()["log_magnitude"]
    frequencies = proc.frequencies_hz().to(torch.float64)
    target_db = _strip_eq_response_db(strip, frequencies, proc.sample_rate)
    floor_db, top_db = spec.low / Fn.LOG10_OVER_20, spec.high / Fn.LOG10_OVER_20
    target = torch.pow(10.0, target_db.clamp(floor_db, top_db) / 20.0)
    log_mag = torch.log(_wet_for(target, _W_MAX).clamp(min=1e-12)).clamp(spec.low, spec.high)
    _set_row(p, row, log_magnitude=log_mag)
    clipped = int(((target_db < floor_db - 0.01) | (target_db > top_db + 0.01)).sum())
    if clipped:
        report.note(f"{where}.eq", "approximate",
                    f"{clipped} of {len(frequencies)} bins outside the console EQ's {floor_db:.0f} .. +{top_db:.0f} dB "
                    "(filter stop bands) clamped")


def _set_delay(p: dict[str, Tensor], row: int, proc: Processor, bus: DelayBus, send_db: float, where: str,
               report: ConversionReport) -> None:
    """Echo ``k`` at ``k * delay`` with gain ``send * feedback^(k-1)`` on the slot grid; tap 0 the dry path."""
    spec = proc.parameter_specs()["log_magnitude"]
    floor_db = spec.low / Fn.LOG10_OVER_20
    step = int(round(bus.delay_seconds * proc.sample_rate))
    delay_ms = torch.zeros(proc.taps, dtype=torch.float64)
    level_db = torch.full((proc.taps,), floor_db, dtype=torch.float64)
    level_db[0] = 0.0
    dropped, k = [], 1
    while step > 0:
        gain_db = send_db + (k - 1) * gain_to_db(bus.feedback) if bus.feedback > 0 else (send_db if k == 1 else -math.inf)
        gain_db -= gain_to_db(_W_MAX)
        if gain_db < floor_db:
            break
        slot = (k * step) // proc.slot_samples
        if slot >= proc.taps:
            dropped.append(f"echo {k} onwards ({gain_db:.1f} dB and below) falls past the last of the console's "
                           f"{proc.taps} slots")
            break
        if level_db[slot] > floor_db:
            dropped.append(f"echo {k} ({gain_db:.1f} dB) shares slot {slot} with an earlier echo")
        else:
            delay_ms[slot] = k * step * 1000.0 / proc.sample_rate
            level_db[slot] = min(gain_db, 0.0)
        k += 1
    z = Fn.delay_raw(delay_ms, torch.full_like(delay_ms, proc.initial_radius), proc.slot_samples, proc.sample_rate)
    _set_row(p, row, z_delay=z[None].expand(2, -1, -1),
             log_magnitude=(level_db * Fn.LOG10_OVER_20)[None, :, None].expand(2, -1, p["log_magnitude"].shape[-1]),
             **{DRY_WET: torch.tensor(_MAX_LOGIT)})
    if dropped:
        report.note(where, "approximate", f"slots of {proc.slot_samples / proc.sample_rate * 1000:.0f} ms hold one "
                    "echo each; dropped: " + "; ".join(dropped))


def _set_reverb(p: dict[str, Tensor], row: int, proc: Processor, bus: ReverbBus, send_db: float, where: str,
                report: ConversionReport) -> None:
    raw = freeverb_reverb_parameters(proc, bus.room_size, bus.damping, bus.width, send_db)
    # dry/wet 0.5 and +6 dB on the gain/pan: the wet path at unity
    _set_row(p, row, **{k: v.float() for k, v in raw.items()}, **{DRY_WET: torch.tensor(0.0)})
    report.note(where, "approximate", "filtered-noise reverb fitted per STFT bin to Freeverb's level and decay "
                "(channel-wise, not Freeverb's mono-summed input; it also hears the delay's echoes)")


def _set_master(params, processors, master: MasterBus, rows: dict[str, int | None], report: ConversionReport) -> None:
    if master.eq:
        _set_eq(params["eq"], rows["eq"], processors["eq"], master, "master", report)
    if master.compressor is not None:
        c = master.compressor
        _set_compressor(params["compressor"], rows["compressor"], processors["compressor"], c, "master.compressor",
                        "the linked block-peak detector (make-up in the master gain)", report)
        makeup = torch.full((2,), 10.0 ** (c.makeup_db / 20.0), dtype=torch.float64)
        _set_row(params["gain_pan"], rows["gain_pan"], log_gain=torch.log(_wet_for(makeup, _W_MAX)))


@torch.no_grad()
def _absolute_thresholds(console: MixingConsole, params, processors, strips: list[ChannelStrip], style: MixStyle,
                         names: list[str], tracks: Tensor | None, report: ConversionReport) -> None:
    """With the tracks: every compressor threshold made absolute against its measured input RMS
    (tracks first, then the master), and the master gain set to reach the loudness target."""
    compressed = [(TRACK, k, s.compressor, f"strips.{names[k]}") for k, s in enumerate(strips)
                  if s.compressor is not None]
    if style.master.compressor is not None:
        compressed.append((GROUP, 0, style.master.compressor, "master"))
    if tracks is None:
        for _, _, _, where in compressed:
            report.note(f"{where}.compressor.threshold_db", "approximate",
                        f"relative to an assumed input RMS of {NOMINAL_INPUT_RMS_DBFS:.0f} dBFS (no tracks given)")
        report.note("loudness_lufs", "untranslated",
                    "the console has no loudness normalisation; with the tracks the master gain reaches the target")
        return
    graph = console.graph
    nodes, ranks, preds = strip_nodes(graph), graph.type_rank(), graph.predecessors()
    for stage in (TRACK, GROUP):
        todo = [c for c in compressed if c[0] == stage and "compressor" in nodes[stage][c[1]]]
        if not todo:
            continue
        outputs = console.render_graph(tracks, keep_nodes=True).node_outputs
        for kind, index, settings, _ in todo:
            v = nodes[kind][index]["compressor"]
            level = rms_db(sum(outputs[u] for u in preds[v]).numpy())
            if math.isfinite(level):
                value = (level + settings.threshold_db) / Fn.ENERGY_NP_TO_DB
                spec = processors["compressor"].parameter_specs()["log_threshold"]
                params["compressor"]["log_threshold"][ranks[v]] = float(np.clip(value, spec.low, spec.high))
        _load(console, params)
    if "gain_pan" not in nodes[GROUP][0]:
        report.note("loudness_lufs", "untranslated", "the master strip has no gain_pan")
        return
    mix = console.render(tracks).numpy()
    loudness = integrated_loudness(mix, console.sample_rate) if mix.shape[-1] >= 0.4 * console.sample_rate \
        else float("-inf")
    if not math.isfinite(loudness):
        report.note("loudness_lufs", "untranslated", "the tracks are silent or shorter than 0.4 s: no loudness")
        return
    params["gain_pan"]["log_gain"][ranks[nodes[GROUP][0]["gain_pan"]]] += (
        (style.loudness_lufs - loudness) * Fn.LOG10_OVER_20)
    _load(console, params)
    report.note("loudness_lufs", "approximate", "one master gain measured on these tracks (not per song)")


# ----------------------------------------------------------------------------- EQ curve fit


@dataclass
class EqFit:
    """:func:`fit_eq_curves`'s result, one entry per curve.

    Attributes:
        highpass_hz, lowpass_hz: the fitted cut-offs, ``None`` where the fit is better without.
        bands: low shelf, peaks, high shelf (bands under 0.05 dB left out).
        error_db: weighted RMS error in dB on the grid, of exactly these settings.
    """

    highpass_hz: list[float | None]
    lowpass_hz: list[float | None]
    bands: list[tuple[EqBand, ...]]
    error_db: list[float]


def eq_fit_grid(sample_rate: int) -> Tensor:
    """The fit's log-spaced frequencies ``(EQ_FIT_POINTS,)``: 20 Hz to 20 kHz, kept below the EQ bands' top."""
    top = min(EQ_FIT_HIGH_HZ, 0.98 * EQ_TOP_FRACTION * sample_rate)
    return torch.logspace(math.log10(EQ_FIT_LOW_HZ), math.log10(top), EQ_FIT_POINTS, dtype=torch.float64)


_FILTER_VARIANTS = ((False, False), (True, False), (False, True), (True, True))
"""(high-pass, low-pass) used by each of a curve's fits; the best one is kept."""


def _db_of(response: Tensor) -> Tensor:
    return 20.0 * torch.log10(response.abs().clamp(min=1e-12))


def fit_eq_curves(frequencies_hz: Tensor, curves_db: Tensor, sample_rate: int, peaks: int = 2,
                  filters: bool = True, floor_db: float = -40.0, steps: int = 200,
                  spectra_db: Tensor | None = None) -> EqFit:
    """Nearest HP/LP + low shelf + ``peaks`` peaks + high shelf to each curve (no broadband gain:
    that stays in the fader).

    The curves are read on :func:`eq_fit_grid`; points within 6 dB of ``floor_db`` (where the
    console's EQ clamps a filter's stop band) weigh 0.05, the rest 1; with ``spectra_db`` (the
    level of the signal each curve filters, on the same frequencies), a point also weighs
    ``1 + (level - peak level) / 60 dB`` (at least 0.05): the curve matters where there is signal.
    The error is the weighted RMS in dB. Every curve is fitted with
    and without each Butterworth filter (order 2, as the style's renderer; all variants in one
    batch), each from a greedy start (filters at the -3 dB points, shelves from the ends, peaks at
    the largest residuals), by Adam then L-BFGS over log frequencies, gains and log Q; a curve
    keeps the variant with the smallest error (a filter must lower it by 0.05 dB to be kept).

    Args:
        frequencies_hz: where the curves are sampled, ``(bins,)``.
        curves_db: ``(curves, bins)`` magnitudes in dB.
        filters: fit the HP/LP variants too (a master EQ has none).
        spectra_db: ``(curves, bins)`` levels in dB of the signals the curves filter (optional).

    Returns:
        One fitted setting and its RMS error per curve.
    """
    flat = curves_db.detach().abs().amax(-1) < 0.05
    if bool(flat.all()):
        count = curves_db.shape[0]
        return EqFit([None] * count, [None] * count, [()] * count, [0.0] * count)
    if bool(flat.any()):  # fit the others only
        fit = fit_eq_curves(frequencies_hz, curves_db[~flat], sample_rate, peaks, filters, floor_db, steps,
                            None if spectra_db is None else spectra_db[~flat])
        out, it = EqFit([], [], [], []), iter(range(int((~flat).sum())))
        for is_flat in flat.tolist():
            i = None if is_flat else next(it)
            out.highpass_hz.append(None if is_flat else fit.highpass_hz[i])
            out.lowpass_hz.append(None if is_flat else fit.lowpass_hz[i])
            out.bands.append(() if is_flat else fit.bands[i])
            out.error_db.append(0.0 if is_flat else fit.error_db[i])
        return out
    grid = eq_fit_grid(sample_rate)
    freqs = frequencies_hz.detach().double().cpu().numpy()
    curves = torch.from_numpy(np.stack([np.interp(grid.numpy(), freqs, c) for c in
                                        curves_db.detach().double().cpu().numpy()]))
    variants = _FILTER_VARIANTS if filters else _FILTER_VARIANTS[:1]
    count, v = curves.shape[0], len(variants)
    target = curves.repeat_interleave(v, 0)  # (curves * variants, points): curve-major
    hp_on = torch.tensor([a for a, _ in variants] * count)
    lp_on = torch.tensor([b for _, b in variants] * count)
    weight = torch.where(target > floor_db + 6.0, 1.0, 0.05).to(torch.float64)
    if spectra_db is not None:
        levels = torch.from_numpy(np.stack([np.interp(grid.numpy(), freqs, c) for c in
                                            spectra_db.detach().double().cpu().numpy()])).repeat_interleave(v, 0)
        weight = weight * (1.0 + (levels - levels.amax(-1, keepdim=True)) / 60.0).clamp(min=0.05)
    n, log_grid = target.shape[0], grid.log()
    top = 0.999 * EQ_TOP_FRACTION * sample_rate
    q_shelf = torch.tensor(0.7071, dtype=torch.float64)
    state = {"hp": torch.full((n,), math.log(40.0), dtype=torch.float64),
             "lp": torch.full((n,), math.log(0.4 * sample_rate), dtype=torch.float64),
             "shelf_hz": torch.tensor([[150.0, min(6000.0, 0.3 * sample_rate)]], dtype=torch.float64).log().repeat(n, 1),
             "shelf_db": torch.zeros(n, 2, dtype=torch.float64),
             "peak_hz": torch.zeros(n, peaks, dtype=torch.float64),
             "peak_db": torch.zeros(n, peaks, dtype=torch.float64),
             "peak_q": torch.zeros(n, peaks, dtype=torch.float64)}
    level = target[:, (grid > 200.0) & (grid < 5000.0)].median(-1).values[:, None]
    above = (target - level) > -3.0
    for i in range(n):
        where = torch.nonzero(above[i]).flatten()
        if len(where):
            state["hp"][i] = log_grid[int(where[0])].clamp(min=math.log(20.0))
            state["lp"][i] = log_grid[int(where[-1])].clamp(max=math.log(0.45 * sample_rate))

    def curve(s: dict[str, Tensor], peaks_used: int = peaks) -> Tensor:
        hp = s["hp"].exp().clamp(1.0, 0.2 * sample_rate)
        lp = s["lp"].exp().clamp(50.0, LOWPASS_TOP_FRACTION * sample_rate)
        db = torch.where(hp_on[:, None], _db_of(butterworth_response(hp, None, grid, sample_rate)), 0.0)
        db = db + torch.where(lp_on[:, None], _db_of(butterworth_response(None, lp, grid, sample_rate)), 0.0)
        for j, kind in enumerate(("low_shelf", "high_shelf")):
            db = db + _db_of(eq_band_response(kind, s["shelf_hz"][:, j:j + 1].exp().clamp(10.0, top),
                                              s["shelf_db"][:, j:j + 1], q_shelf, grid, sample_rate))[:, 0]
        for j in range(peaks_used):
            db = db + _db_of(eq_band_response("peak", s["peak_hz"][:, j:j + 1].exp().clamp(10.0, top),
                                              s["peak_db"][:, j:j + 1], s["peak_q"][:, j:j + 1].exp().clamp(0.1, 20.0),
                                              grid, sample_rate))[:, 0]
        return db

    with torch.no_grad():  # shelves from the residual at the ends, then peaks one by one where it is largest
        residual = target - curve(state, 0)
        low_end, high_end = grid < 120.0, grid > 0.8 * float(grid[-1])
        state["shelf_db"][:, 0] = residual[:, low_end].mean(-1).clamp(-15.0, 15.0)
        state["shelf_db"][:, 1] = residual[:, high_end].mean(-1).clamp(-15.0, 15.0)
        search = (grid > 80.0) & (grid < 0.8 * float(grid[-1]))
        for j in range(peaks):
            residual = (target - curve(state, j)) * weight
            residual[:, ~search] = 0.0
            k = residual.abs().argmax(-1)
            state["peak_hz"][:, j] = log_grid[k]
            state["peak_db"][:, j] = residual[torch.arange(n), k].clamp(-20.0, 20.0)
    leaves = {k: x.clone().requires_grad_(True) for k, x in state.items()}

    def losses() -> Tensor:
        return ((curve(leaves) - target) ** 2 * weight).sum(-1) / weight.sum(-1)

    adam = torch.optim.Adam(list(leaves.values()), lr=0.05)
    lbfgs = torch.optim.LBFGS(list(leaves.values()), lr=0.5, max_iter=60, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        lbfgs.zero_grad()
        value = losses().sum()
        value.backward()
        return value

    with torch.enable_grad():  # callers may hold no_grad
        for _ in range(steps):
            adam.zero_grad()
            losses().sum().backward()
            adam.step()
        before = {k: x.detach().clone() for k, x in leaves.items()}
        lbfgs.step(closure)
    with torch.no_grad():
        if not torch.isfinite(losses()).all():
            for k, x in leaves.items():
                x.copy_(before[k])
    fitted = [_eq_setting({k: x[i].detach() for k, x in leaves.items()}, bool(hp_on[i]), bool(lp_on[i]), sample_rate,
                          peaks) for i in range(n)]
    errors = [_fit_error(f, grid, target[i], weight[i], sample_rate, floor_db) for i, f in enumerate(fitted)]
    out = EqFit([], [], [], [])
    for c in range(count):
        rows = list(range(c * v, (c + 1) * v))
        filters_used = [int(hp_on[i]) + int(lp_on[i]) for i in rows]
        best = min(rows, key=lambda i: (errors[i] + 0.05 * filters_used[i - c * v], i))
        out.highpass_hz.append(fitted[best].highpass_hz)
        out.lowpass_hz.append(fitted[best].lowpass_hz)
        out.bands.append(fitted[best].eq)
        out.error_db.append(errors[best])
    return out


def _eq_setting(s: dict[str, Tensor], hp_on: bool, lp_on: bool, sample_rate: int, peaks: int) -> ChannelStrip:
    """One fitted row as settings (bands under 0.05 dB left out)."""
    top = 0.999 * EQ_TOP_FRACTION * sample_rate
    bands = [EqBand("low_shelf", float(s["shelf_hz"][0].exp().clamp(10.0, top)), float(s["shelf_db"][0]))]
    bands += [EqBand("peak", float(s["peak_hz"][j].exp().clamp(10.0, top)), float(s["peak_db"][j]),
                     float(s["peak_q"][j].exp().clamp(0.1, 20.0))) for j in range(peaks)]
    bands.append(EqBand("high_shelf", float(s["shelf_hz"][1].exp().clamp(10.0, top)), float(s["shelf_db"][1])))
    return ChannelStrip(highpass_hz=float(s["hp"].exp().clamp(1.0, 0.2 * sample_rate)) if hp_on else None,
                        lowpass_hz=float(s["lp"].exp().clamp(50.0, LOWPASS_TOP_FRACTION * sample_rate)) if lp_on
                        else None, eq=tuple(b for b in bands if abs(b.gain_db) >= 0.05))


def _fit_error(strip: ChannelStrip, grid: Tensor, target: Tensor, weight: Tensor, sample_rate: int,
               floor_db: float) -> float:
    """Weighted RMS dB error of ``strip``'s EQ as the style's renderer applies it (HP and LP as one
    band-pass when both are set), both sides floored at ``floor_db``."""
    fitted = _strip_eq_response_db(strip, grid, sample_rate).clamp(min=floor_db)
    return float((((fitted - target.clamp(min=floor_db)) ** 2 * weight).sum() / weight.sum()).sqrt())


# ----------------------------------------------------------------------------- console -> settings


@dataclass
class _Strip:
    """What one console strip does, in linear and dB terms, while strips are folded together."""

    gains: Tensor  # (2,) linear per channel, the dry path of the echo effects included
    curve_db: Tensor  # (bins,) at the console EQ's bins
    width: float | None = None
    compressor: CompressorSettings | None = None
    delay: tuple[float, float, float] | None = None  # delay_seconds, feedback, send_db
    reverb: tuple[float, float, float, float] | None = None  # room_size, damping, width, send_db


def style_from_console(console: MixingConsole, names: Sequence[str] | None = None,
                       tracks: Tensor | np.ndarray | None = None, peaks: int = 2, fit_steps: int = 250
                       ) -> StyleFromConsole:
    """The nearest :class:`MixStyle` to a console's parameters (a full console or a pruned graph).

    Per track strip: gain/pan -> fader and pan (the exact inverse of :func:`console_from_style`,
    the dry path of the delay and reverb included); imager ->
    width; the EQ's curve -> HP/LP + low shelf + ``peaks`` peaks + high shelf by
    :func:`fit_eq_curves` (RMS error per strip in the report); compressor -> ratio and threshold
    (relative to its input's RMS measured on ``tracks``, else to :data:`NOMINAL_INPUT_RMS_DBFS`),
    attack = release = its time constant, make-up 0; delay taps -> delay time, feedback and send
    from the first two echoes; reverb -> the nearest Freeverb room size / damping (a table of
    Freeverb's impulse responses read the same way), width and send. The style has one delay and
    one reverb bus: the loudest send's strip sets them (other strips' differing settings noted).

    Bus strips are folded into their tracks: gains multiply, EQ curves add in dB, widths multiply
    (exact for centred tracks). A single bus holding every track is the master: its EQ is fitted
    as the master EQ and its compressor becomes the master compressor. Bus compressors, gates and
    echo effects of partial buses and every noise gate have no style setting: noted, left out.
    With ``tracks`` the style's loudness target is the console's measured mix loudness.

    Args:
        console: the console (its dry/wet weights and mask are honoured).
        names: its track names (checked; default the console's).
        tracks: the dry tracks ``(tracks, 2, samples)`` (optional; see above).
        peaks: peaking bands per EQ fit.

    Raises:
        ValueError: names that are not the console's, tracks of the wrong shape, a graph that is
            not a console of strips.
    """
    names = console.track_names if names is None else list(names)
    if names != console.track_names:
        raise ValueError(f"track names {names} are not the console's {console.track_names}")
    if tracks is not None:
        tracks = torch.as_tensor(np.asarray(tracks), dtype=torch.float32)
        if tracks.ndim != 3 or tracks.shape[0] != len(names) or tracks.shape[1] != 2:
            raise ValueError(f"expected tracks ({len(names)}, 2, samples) for {names}, got {tuple(tracks.shape)}")
    report = ConversionReport()
    with torch.no_grad():
        return _style_from_console(console, names, tracks, peaks, fit_steps, report)


def _device(console: MixingConsole) -> torch.device:
    first = next(console.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def _effective(console: MixingConsole) -> tuple[dict[str, dict[str, Tensor]], list[float]]:
    """Physical parameters per type (float64, clamped as rendered) and every node's effective dry/wet weight."""
    params = console.parameter_dict()
    processors = dict(console.processors)
    physical = {t: processors[t].to_physical(**{k: v.detach().cpu().double() for k, v in p.items() if k != DRY_WET})
                for t, p in params.items()}
    ranks, graph = console.graph.type_rank(), console.graph
    weights = [float(dry_wet_weight(params[t][DRY_WET][ranks[v]].detach().cpu().double()) * graph.mask[v])
               if t in params else 0.0 for v, t in enumerate(graph.node_types)]
    return physical, weights


def _style_from_console(console: MixingConsole, names: list[str], tracks: Tensor | None, peaks: int, fit_steps: int,
                        report: ConversionReport) -> StyleFromConsole:
    graph, processors = console.graph, dict(console.processors)
    physical, weights = _effective(console)
    ranks, nodes, preds = graph.type_rank(), strip_nodes(graph), graph.predecessors()
    eq_proc = processors["eq"]
    bins = eq_proc.bins
    inputs = None
    if tracks is not None and any("compressor" in s for kind in (TRACK, GROUP) for s in nodes[kind]):
        outputs = console.render_graph(tracks.to(_device(console)), keep_nodes=True).node_outputs
        inputs = {v: sum(outputs[u] for u in preds[v]).cpu().numpy() for v in graph.nodes_of_type("compressor")}

    def read(kind: str, index: int, where: str) -> _Strip:
        strip = _Strip(torch.ones(2, dtype=torch.float64), torch.zeros(bins, dtype=torch.float64))
        for t, v in nodes[kind][index].items():
            w, p = weights[v], {k: x[ranks[v]] for k, x in physical[t].items()}
            if t == "gain_pan":
                strip.gains = strip.gains * (w * torch.pow(10.0, torch.stack([p["left_gain_db"], p["right_gain_db"]])
                                                           / 20.0) + 1.0 - w)
            elif t == "eq":
                strip.curve_db = 20.0 * torch.log10(w * torch.pow(10.0, p["gain_db"] / 20.0) + 1.0 - w)
            elif t == "imager":
                width = float(w * p["width"] + 1.0 - w)
                strip.width = None if abs(width - 1.0) < 1e-4 else width
            elif t == "compressor":
                strip.compressor = _read_compressor(p, w, inputs, v, where, report)
            elif t == "noisegate" and w * float(Fn.ratio_to_slope(p["ratio"], True)) > ACTIVE:
                report.note(f"{where}.noisegate", "untranslated", "the mixing-style space has no noise gate")
            elif t == "delay":
                dry, strip.delay = _read_delay(p, w, processors[t].sample_rate, where, report)
                strip.gains = strip.gains * dry
            elif t == "reverb":
                strip.gains = strip.gains * (1.0 - w)
                if w > ACTIVE:
                    reverb = _read_reverb(p, w, processors[t])
                    strip.reverb = reverb if reverb[3] >= ECHO_FLOOR_DB else None  # inaudible: no send
        return strip

    tracks_read = [read(TRACK, k, f"strips.{n}") for k, n in enumerate(names)]
    group_names = [graph.node_names[v] for v in graph.nodes_of_type(MIX)]
    members = _group_members(graph)
    master_group = len(group_names) == 1 and sorted(members[0]) == list(range(len(names)))
    master_compressor, master_curve = None, None
    for g, group in enumerate(group_names):
        where = f"buses.{group}"
        bus = read(GROUP, g, where)
        if master_group:
            master_compressor, master_curve = bus.compressor, bus.curve_db
        elif bus.compressor is not None:
            report.note(f"{where}.compressor", "untranslated",
                        "a compressor on a bus of some tracks has no setting in the mixing-style space")
        for what, value in (("delay", bus.delay), ("reverb", bus.reverb)):
            if value is not None:
                report.note(f"{where}.{what}", "untranslated", "echo effects on a bus are not folded into its tracks")
        if bus.width is not None and abs(bus.width - 1.0) > 0.01:
            report.note(f"{where}.width", "approximate", "bus width folded into its tracks' widths (exact when centred)")
        for k in members[g]:
            t = tracks_read[k]
            t.gains = t.gains * bus.gains
            if not master_group:
                t.curve_db = t.curve_db + bus.curve_db
            if bus.width is not None:
                t.width = bus.width * (1.0 if t.width is None else t.width)
    floor_db = eq_proc.parameter_specs()["log_magnitude"].low / Fn.LOG10_OVER_20
    curves = torch.stack([t.curve_db for t in tracks_read])
    spectra = master_spectrum = None
    if tracks is not None:  # the curves matter where the tracks (the mix, for the master) have energy
        spectra = _level_db(tracks, eq_proc)
        master_spectrum = _level_db(tracks.sum(0, keepdim=True), eq_proc)
    fit = fit_eq_curves(eq_proc.frequencies_hz(), curves, eq_proc.sample_rate, peaks, True, floor_db, fit_steps,
                        spectra)
    master_eq: tuple[EqBand, ...] = ()
    if master_curve is not None and float(master_curve.abs().max()) > 0.05:
        master_fit = fit_eq_curves(eq_proc.frequencies_hz(), master_curve[None], eq_proc.sample_rate, peaks, False,
                                   floor_db, fit_steps, master_spectrum)
        master_eq = master_fit.bands[0]
        report.eq_fit_error_db[MASTER] = master_fit.error_db[0]
    strips = {}
    for k, (name, t) in enumerate(zip(names, tracks_read)):
        phys = Fn.gain_pan_physical(torch.log(t.gains.clamp(min=1e-12)))
        report.eq_fit_error_db[name] = fit.error_db[k]
        strips[name] = ChannelStrip(
            fader_db=float(phys["gain_db"]), pan=float(phys["pan"]), width=t.width, highpass_hz=fit.highpass_hz[k],
            lowpass_hz=fit.lowpass_hz[k], eq=fit.bands[k], compressor=t.compressor,
            delay_send_db=None if t.delay is None else t.delay[2],
            reverb_send_db=None if t.reverb is None else t.reverb[3])
    delay_bus = _shared_bus([t.delay for t in tracks_read], names, "delay", report)
    reverb_bus = _shared_bus([t.reverb for t in tracks_read], names, "reverb", report)
    loudness = -14.0
    if tracks is not None:
        mix = console.render(tracks.to(_device(console))).cpu().numpy()
        measured = integrated_loudness(mix, console.sample_rate) if mix.shape[-1] >= 0.4 * console.sample_rate \
            else float("-inf")
        if math.isfinite(measured):
            loudness = measured
        else:
            report.note("loudness_lufs", "approximate", "-14 LUFS (the tracks are silent or shorter than 0.4 s)")
    else:
        report.note("loudness_lufs", "approximate", "-14 LUFS (no tracks given to measure the console's mix)")
    style = MixStyle(strips, None if delay_bus is None else DelayBus(*delay_bus),
                     None if reverb_bus is None else ReverbBus(*reverb_bus),
                     MasterBus(eq=master_eq, compressor=master_compressor), float(loudness))
    return StyleFromConsole(style, report)


def _level_db(tracks: Tensor, eq: Processor) -> Tensor:
    """Long-term level in dB of each track's mid channel at the EQ's bins (Welch average over Hann
    frames of the FIR's length). Shape: ``(tracks, 2, samples)`` -> ``(tracks, bins)``."""
    n_fft = 2 * eq.bins - 1
    mid = tracks.detach().double().cpu().mean(1)
    if mid.shape[-1] < n_fft:
        mid = torch.nn.functional.pad(mid, (0, n_fft - mid.shape[-1]))
    window = torch.hann_window(n_fft, dtype=torch.float64)
    power = torch.stft(mid, n_fft, n_fft // 2, window=window, return_complex=True, center=False).abs().pow(2).mean(-1)
    return 10.0 * torch.log10(power.clamp(min=1e-20))


def _group_members(graph) -> list[list[int]]:
    """Track indices feeding each mix node (in mix-node order)."""
    inputs = {v: k for k, v in enumerate(graph.nodes_of_type(INPUT))}
    owners = strip_of_nodes(graph)
    mixes = graph.nodes_of_type(MIX)
    preds = graph.predecessors()
    out = []
    for m in mixes:
        tracks = []
        for u in preds[m]:
            if u in inputs:
                tracks.append(inputs[u])
            elif owners[u] is not None and owners[u][0] == TRACK:
                tracks.append(owners[u][1])
        out.append(tracks)
    return out


def _read_compressor(p: dict[str, Tensor], w: float, inputs: dict | None, v: int, where: str,
                     report: ConversionReport) -> CompressorSettings | None:
    slope = w * float(Fn.ratio_to_slope(p["ratio"], False))
    if slope <= ACTIVE:
        return None
    level = rms_db(inputs[v]) if inputs is not None else NOMINAL_INPUT_RMS_DBFS
    if not math.isfinite(level):
        return None
    if inputs is None:
        report.note(f"{where}.compressor.threshold_db", "approximate",
                    f"relative to an assumed input RMS of {NOMINAL_INPUT_RMS_DBFS:.0f} dBFS (no tracks given)")
    tau = float(p["time_constant_ms"])
    if w < 1.0 - 1e-3:
        report.note(f"{where}.compressor.ratio", "approximate", f"dry/wet {w:.3f} read as the slope scaled by it")
    report.note(f"{where}.compressor", "approximate",
                f"one time constant {tau:.1f} ms read as attack = release; make-up 0 (in the fader)")
    return CompressorSettings(threshold_db=float(p["threshold_db"]) - level, ratio=1.0 / (1.0 - slope),
                              attack_ms=tau, release_ms=tau, makeup_db=0.0)


def _read_delay(p: dict[str, Tensor], w: float, sample_rate: int, where: str, report: ConversionReport
                ) -> tuple[Tensor, tuple[float, float, float] | None]:
    """The delay's per-channel dry gain ``(2,)`` (zero-lag taps and ``1 - w``) and, if it echoes,
    ``(delay_seconds, feedback, send_db)`` from its first echo and the echo nearest twice as late."""
    amplitude = w * torch.pow(10.0, p["tap_gain_db"] / 20.0)  # (2, taps)
    lag0 = p["delay_ms"] <= 0.0
    dry = (amplitude * lag0).sum(-1) + (1.0 - w)
    echo_amp = (amplitude * ~lag0).mean(0) / dry.mean()  # (taps,) averaged over the channels
    delay_ms = p["delay_ms"][amplitude.argmax(0), torch.arange(amplitude.shape[-1])]
    echoes = [(float(delay_ms[m]), float(echo_amp[m])) for m in range(len(echo_amp))
              if float(echo_amp[m]) > 10.0 ** (ECHO_FLOOR_DB / 20.0) and float(delay_ms[m]) > 0.0]
    if not echoes:
        return dry, None
    echoes.sort()
    first_ms, first = echoes[0]
    tolerance_ms = max(1.5, 2000.0 / sample_rate)
    second = [a for d, a in echoes[1:] if abs(d - 2.0 * first_ms) <= tolerance_ms]
    feedback = float(np.clip(second[0] / first, 0.0, 0.95)) if second else 0.0
    unexplained = [d for d, a in echoes[1:] if not _explained(d, a, first_ms, first, feedback, tolerance_ms)]
    if unexplained:
        report.note(f"{where}.delay", "approximate",
                    f"{len(echoes)} echoes read as one delay ({first_ms:.1f} ms) with feedback from the first two; "
                    f"echoes at {[round(d, 1) for d in unexplained]} ms do not follow it")
    return dry, (first_ms / 1000.0, feedback, gain_to_db(first))


def _explained(delay_ms: float, amplitude: float, first_ms: float, first: float, feedback: float,
               tolerance_ms: float) -> bool:
    """Whether an echo is the ``k``-th of a feedback delay (``k * first_ms``, ``first * feedback^(k-1)``) within
    ``tolerance_ms`` and 0.5 dB."""
    k = round(delay_ms / first_ms)
    if k < 1 or abs(delay_ms - k * first_ms) > k * tolerance_ms or feedback <= 0.0:
        return False
    return abs(gain_to_db(amplitude) - gain_to_db(first * feedback ** (k - 1))) <= 0.5


def _read_reverb(p: dict[str, Tensor], w: float, proc: Processor) -> tuple[float, float, float, float]:
    """Nearest Freeverb ``(room_size, damping, width, send_db)``: decay per bin matched (100 Hz to
    10 kHz, log RT60) against :func:`_reverb_table`, width and send from the levels."""
    settings, table = _reverb_table(proc.sample_rate, proc.n_fft, proc.hop_length, proc.ir_samples)
    raw = proc.from_physical({"initial_db": p["initial_db"], "rt60_seconds": p["rt60_seconds"]})
    init, decay = raw["init_log_magnitude"].numpy(), np.log(-Fn.reverb_decay(raw["delta_log_magnitude"]).numpy())
    table_decay = np.log(-Fn.reverb_decay(torch.from_numpy(table[:, 1])).numpy())  # (settings, 2, bins)
    freqs = proc.frequencies_hz().numpy()
    band = (freqs >= 100.0) & (freqs <= min(10000.0, 0.45 * proc.sample_rate))
    best = int(((table_decay[:, 0, band] - decay[0, band]) ** 2).mean(-1).argmin())
    level_mid = float((init[0, band] - table[best, 0, 0, band]).mean())
    level_side = float((init[1, band] - table[best, 0, 1, band]).mean())
    width = float(np.clip(math.exp(level_side - level_mid), 0.0, 1.0))
    send_db = level_mid / Fn.LOG10_OVER_20 + gain_to_db(w / max(1.0 - w, 1e-12))
    return float(settings[best, 0]), float(settings[best, 1]), width, send_db


def _shared_bus(per_strip: list, names: list[str], what: str, report: ConversionReport) -> tuple | None:
    """The one bus of the style: the settings (without the send) of the strip with the loudest send."""
    present = [(s[-1], k, s[:-1]) for k, s in enumerate(per_strip) if s is not None]
    if not present:
        return None
    _, loudest, settings = max(present)
    differ = [names[k] for _, k, s in present if not np.allclose(s, settings, rtol=0.02, atol=1e-3)]
    if differ:
        report.note(what, "approximate", f"one {what} bus for every strip: {names[loudest]}'s settings "
                    f"(the loudest send) also serve {differ}")
    return settings


# ----------------------------------------------------------------------------- writing


def write_console_style(path: str | os.PathLike, console: MixingConsole, stems: Sequence[str],
                        tracks: Tensor | np.ndarray | None = None, source: str = "mixrep console") -> StyleFromConsole:
    """Write :func:`style_from_console`'s result as a settings file (:mod:`mixrep.styles.style_file`,
    with its conversion report), atomically; returns it.

    Args:
        stems: each of the console's tracks' stem class.
        tracks: the dry tracks ``(tracks, 2, samples)`` (see :func:`style_from_console`).
        source: what made the console (kept in the file).
    """
    result = style_from_console(console, tracks=tracks)
    write_style_json(path, result.style, names=console.track_names, stems=stems, sample_rate=console.sample_rate,
                     source=source, conversion=result.report.to_dict())
    return result


def style_json_path(graph_json: str | os.PathLike) -> Path:
    """``parameters.json`` -> ``parameters.style.json``: where a graph JSON's settings go."""
    graph_json = Path(graph_json)
    return graph_json.with_name(f"{graph_json.stem}.style.json")

"""Style transfer: mix raw tracks like a reference (the Python API of ``mixrep mix``).

    >>> from mixrep.inference import StyleTransfer
    >>> transfer = StyleTransfer.from_checkpoint("outputs/regression/.../last.ckpt")
    >>> result = transfer.mix(tracks, reference_stems, names=["kick", "bass", "vox"])
    >>> result.mix, result.report                     # (2, samples) at the reference's loudness

Steps: the tracks are checked, upmixed if mono, and level-aligned (each to -20 dBFS RMS, as in
training); a silent reference is refused; the reference stems are embedded by the style encoder the
head was trained with (mean of clip embeddings); the head predicts every strip's and bus's
parameters at the console's (the model's) rate from clips of the middle of the song
(:func:`~mixrep.inference.output_stage.analysis_excerpt`); the guard (:mod:`mixrep.inference.guard`)
rates every setting's confidence, falls back to the measured prior where it is low and clamps the
rest into an engineer's ranges; the faders are then set so the stems sit
in the mix as the reference's do, in level and stereo (balance matching,
:mod:`mixrep.inference.balance`); with ``refine_steps`` the parameters are then optimised so that
every rendered stem's audio features move towards the reference stem's (the distance of the
rendered mix's style embedding to the reference's, through the differentiable front end, is a term
of the same objective, off by default); the guard's selection renders whichever of the head's
settings, settings half-way from the measured prior and balance matching alone sits closest to the
reference's spectra (:meth:`StyleTransfer.select`); the
console is rebuilt at the tracks' own rate (:func:`~mixrep.console.rate.console_at_rate`), renders the whole song in exact chunks at full band,
and the mix is set to the reference's loudness under a true-peak ceiling
(:mod:`mixrep.inference.output_stage`). Memory grows with the song only by the tracks read and the
mix written.

Shape:
    tracks ``(tracks, 2, samples)`` (or ``(tracks, samples)`` mono) at their rate; reference stems
    ``(4, 2, samples)``; the mix ``(2, samples)`` at the tracks' rate.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch import Tensor

from mixrep.inference.style_encoder import StyleEncoder, aggregate_clips, load_checkpoint
from mixrep.audio.io import MAX_SAMPLE_DBFS
from mixrep.audio.meters import chunked_loudness
from mixrep.console import ConsoleBatch, MixingConsole, rms, rms_normalise
from mixrep.console.audio_features import AudioFeatureLoss
from mixrep.console.batch import strip_of_nodes
from mixrep.console.rate import console_at_rate
from mixrep.constants import MIN_EMBED_SECONDS, STEMS
from mixrep.console.spec import REFERENCE_LUFS, SILENT_RMS, align_track_levels, level_gains, normalise_loudness
from mixrep.devices import resolve_device
from mixrep.errors import CheckpointError
from mixrep.inference.balance import BalanceMoves, audible_stems, console_stems, match_balance
from mixrep.models.checkpoint import HeadCheckpoint, read_head
from mixrep.inference.output_stage import (
    CHUNK_SAMPLES, SILENT_REFERENCE_LUFS, TRUE_PEAK_CEILING_DB, OutputLevels, analysis_excerpt, finish_levels,
    render_song, track_rms,
)
from mixrep.inference.guard import (
    GuardConfig, GuardReport, apply_guard, blend_consoles, clamp_console, compare_mixes, spectral_distance_db,
)
from mixrep.inference.guard import Z_NEAR, neutral_parameters, plain_stems, reference_signal, strip_confidence
from mixrep.inference.guard import tracks_differ
from mixrep.inference.report import physical_report

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """What :meth:`StyleTransfer.predict_graph` returns.

    Attributes:
        console: the full console with the predicted parameters (the median over clips).
        keep_probability: ``(V,)`` per node of its graph, the predicted probability that the
            processor is in the mix's graph (1 for inputs, mixes and the output), mean over clips.
        track_clip_rows: ``(clips, K, track_size)`` the raw strip rows predicted on each clip.
        group_clip_rows: ``(clips, G, group_size)`` the raw bus rows on each clip, for the
            console's buses (mix-node order).
    """

    console: MixingConsole
    keep_probability: Tensor
    track_clip_rows: Tensor
    group_clip_rows: Tensor

    def sparse(self, threshold: float = 0.5) -> MixingConsole:
        """The console without the processors predicted absent (probability below ``threshold``);
        gain/pan faders are always kept."""
        graph = self.console.graph
        remove = torch.tensor([t not in ("input", "mix", "output", "gain_pan") and float(p) < threshold
                               for t, p in zip(graph.node_types, self.keep_probability)])
        return self.console.pruned(remove) if bool(remove.any()) else self.console


@dataclass
class TransferResult:
    """What :meth:`StyleTransfer.mix` returns.

    Attributes:
        mix: ``(2, samples)`` float32 at the reference's integrated loudness (under the true-peak
            ceiling), at ``sample_rate``, the tracks' rate.
        console: the console with the final parameters at the tracks' rate, the one that rendered
            ``mix`` (``console.save_json`` writes them).
        report: the parameters in physical units (:func:`~mixrep.inference.report.physical_report`).
        sample_rate: Hz of ``mix``.
        refine_losses: the refinement objective per step (empty without refinement).
        keep_probability: ``(V,)`` the predicted graph's probabilities over the *full* console's
            nodes (:class:`Prediction`); with ``sparse`` the console holds only the kept ones.
        balance: what balance matching moved (level and stereo per stem class; ``None`` without it).
        levels: the written mix's rate, loudness, true peak and the gains that set them.
        track_gains: ``(tracks,)`` the linear level-alignment gain of every track.
        guard: what the guard decided (:class:`~mixrep.inference.guard.GuardReport`; ``None`` without it).
    """

    mix: np.ndarray
    console: MixingConsole
    report: dict
    sample_rate: int
    refine_losses: list[float] = field(default_factory=list)
    keep_probability: Tensor | None = None
    balance: BalanceMoves | None = None
    levels: OutputLevels | None = None
    track_gains: np.ndarray | None = None
    guard: GuardReport | None = None


def prepare_tracks(tracks, sample_rate: int, target_rate: int) -> Tensor:
    """Checked, upmixed, resampled tracks ``(K, 2, samples)`` float32 (not level-aligned).

    Raises:
        ValueError: no tracks, a bad shape, or non-finite samples.
    """
    tracks = torch.as_tensor(np.asarray(tracks, dtype=np.float32) if not isinstance(tracks, Tensor) else tracks).float()
    if tracks.ndim == 2:
        tracks = tracks[:, None]
    if tracks.ndim != 3 or tracks.shape[0] == 0 or tracks.shape[1] not in (1, 2):
        raise ValueError(f"tracks must be (tracks >= 1, 2 or 1 channels, samples), got shape {tuple(tracks.shape)}")
    if not bool(torch.isfinite(tracks).all()):
        raise ValueError("tracks contain NaN or infinite samples")
    if tracks.shape[1] == 1:
        tracks = tracks.expand(-1, 2, -1).contiguous()  # mono tracks are centred: L = R
    if sample_rate != target_rate:
        tracks = torchaudio.functional.resample(tracks, sample_rate, target_rate)
    return tracks


def checked_tracks(tracks, names: list[str] | None = None) -> np.ndarray:
    """Tracks ``(K, 2, samples)`` float32 as given (no copy for float32 stereo; mono is a broadcast
    view, L = R), checked chunk by chunk.

    Raises:
        ValueError: no tracks, a bad shape, non-finite samples, or a sample more than
            :data:`~mixrep.audio.io.MAX_SAMPLE_DBFS` above full scale (naming the track).
    """
    array = tracks.detach().cpu().numpy() if isinstance(tracks, Tensor) else np.asarray(tracks)
    array = array.astype(np.float32, copy=False)
    if array.ndim == 2:
        array = array[:, None]
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] not in (1, 2):
        raise ValueError(f"tracks must be (tracks >= 1, 2 or 1 channels, samples), got shape {tuple(array.shape)}")
    limit = 10.0 ** (MAX_SAMPLE_DBFS / 20.0)
    for start in range(0, array.shape[-1], CHUNK_SAMPLES):
        chunk = array[..., start: start + CHUNK_SAMPLES]
        if not np.isfinite(chunk).all():
            raise ValueError("tracks contain NaN or infinite samples")
        peaks = np.abs(chunk).max(axis=(1, 2))
        if (peaks > limit).any():
            i = int(np.argmax(peaks))
            name = names[i] if names is not None and i < len(names) else f"track {i + 1}"
            raise ValueError(f"{name} has a sample of {float(peaks[i]):.3g} ({20 * math.log10(float(peaks[i])):+.0f} "
                             f"dBFS), more than {MAX_SAMPLE_DBFS:.0f} dB above full scale: corrupt or mis-scaled "
                             f"audio; fix or remove that track")
    return np.broadcast_to(array, (array.shape[0], 2, array.shape[-1])) if array.shape[1] == 1 else array


def reference_loudness(reference: Tensor, sample_rate: int, where: str = "the reference") -> float:
    """Integrated loudness (LUFS) of the sum of reference stems ``(4, 2, samples)``.

    Raises:
        ValueError: a silent or near-silent reference (below :data:`~mixrep.inference.output_stage.
            SILENT_REFERENCE_LUFS`): it has no level or balance to match.
    """
    lufs = chunked_loudness(reference.sum(0).cpu().numpy(), sample_rate, CHUNK_SAMPLES)
    if not lufs >= SILENT_REFERENCE_LUFS:
        raise ValueError(f"{where} is silent or nearly ({lufs:.1f} LUFS, below {SILENT_REFERENCE_LUFS:.0f} LUFS): it "
                         f"has no level or balance to match; pass the stems of a real mix")
    return lufs


class StyleTransfer:
    """A trained regression head with its style encoder and console.

    Args:
        checkpoint: the head (:func:`~mixrep.models.checkpoint.read_head`).
        encoder: the style encoder it was trained against.
        device: where to run (``None``/``"auto"``: a GPU when present).
        data_config: the training data's settings (the head checkpoint's data-module
            hyperparameters: the parameter prior, clip length...), used by the evaluation.
    """

    def __init__(self, checkpoint: HeadCheckpoint, encoder: StyleEncoder, device=None,
                 data_config: dict | None = None) -> None:
        self.device = resolve_device(device)
        self.data_config = dict(data_config or {})
        self.spec = checkpoint.console
        self.head = checkpoint.head.to(self.device).eval()
        self.encoder = encoder
        self.processors = {k: v.to(self.device) for k, v in self.spec.processors().items()}
        self.track_layout, self.group_layout = self.spec.layouts(self.processors)
        self.sample_rate = self.spec.sample_rate
        if encoder.sample_rate != self.sample_rate:
            raise CheckpointError(f"the encoder runs at {encoder.sample_rate} Hz, the head's console at "
                                  f"{self.sample_rate} Hz")

    @classmethod
    def from_checkpoint(cls, path: str | Path, device=None, encoder_checkpoint: str | Path | None = None,
                        separator_weights: str | Path | None = None) -> StyleTransfer:
        """Load a head checkpoint; its own embedded encoder is used unless ``encoder_checkpoint`` is given.

        Like :meth:`StyleEncoder.from_checkpoint`, no pickled code runs and the checkpoints choose
        no file to load; ``separator_weights`` are local Demucs weights for separating mixtures.

        Raises:
            CheckpointError: not a head checkpoint, corrupt, or ``encoder_checkpoint`` holds another
                encoder than the one the head was trained against.
        """
        loaded = load_checkpoint(path)
        head = read_head(loaded, str(path))
        if encoder_checkpoint is None:
            encoder = StyleEncoder.from_loaded(loaded, path, device=device, separator_weights=separator_weights)
        else:
            encoder = StyleEncoder.from_checkpoint(encoder_checkpoint, device=device,
                                                   separator_weights=separator_weights)
            expected = head.trained_against_encoder if not head.finetuned_encoder else None
            if expected is not None and encoder.model_hash != expected:
                raise CheckpointError(
                    f"the head {path} was trained against encoder {expected}, but {encoder_checkpoint} holds encoder "
                    f"{encoder.model_hash}; use that encoder (or leave --encoder out: the head carries its own)")
        return cls(head, encoder, device, loaded.get("datamodule_hyper_parameters"))

    # ------------------------------------------------------------------ pieces
    def reference_embedding(self, reference_stems, sample_rate: int, max_clips: int = 8, normalise: bool = True) -> Tensor:
        """The head's reference vector ``(reference_dim,)`` of reference stems ``(4, 2, samples)``:
        the normalised mean of up to ``max_clips`` clip embeddings, followed (for heads trained with
        reference features) by the clips' mean front-end mix features. Each clip is first set to
        the references' loudness in training (:data:`~mixrep.console.spec.REFERENCE_LUFS`, every
        clip on its own, as training normalises every reference clip): the mix features hold
        absolute levels, and a reference at another loudness lay thousands of standard deviations
        from the training references (docs/transfer.md). ``normalise`` False skips that (the
        behaviour before, for comparison).

        Raises:
            ValueError: not four stereo stems, or shorter than the encoder's minimum.
        """
        stems = torch.as_tensor(np.asarray(reference_stems, dtype=np.float32))
        if stems.ndim != 3 or stems.shape[:2] != (len(STEMS), 2):
            raise ValueError(f"reference stems must be ({len(STEMS)}, 2, samples) in the order {', '.join(STEMS)}, "
                             f"got {tuple(stems.shape)}")
        seconds = stems.shape[-1] / sample_rate
        if seconds < MIN_EMBED_SECONDS:
            raise ValueError(f"the reference lasts {seconds:.2f} s; the encoder needs at least {MIN_EMBED_SECONDS} s")
        clip = min(self.encoder.clip_seconds, seconds)
        starts = self.encoder.clip_offsets(seconds, max_clips)
        clips = [stems[..., int(s * sample_rate): int(s * sample_rate) + int(clip * sample_rate)].numpy() for s in starts]
        clips = np.stack([normalise_loudness(c, sample_rate, REFERENCE_LUFS) if normalise else c for c in clips])
        embedding = torch.from_numpy(aggregate_clips(self.encoder.embed_stems(clips, sample_rate))).to(self.device)
        if not self.head.config.reference_features:
            return embedding
        features = torch.from_numpy(self.encoder.mix_features(clips, sample_rate).mean(0))
        return torch.cat([embedding, features.to(self.device)])

    def clip_starts(self, samples: int, max_clips: int = 8) -> list[tuple[int, int]]:
        """``(start, length)`` in samples of up to ``max_clips`` evenly spaced clips of the head's
        training length (``data_config["clip_seconds"]``, 3 s by default) over ``samples``; one
        clip of everything when shorter, or when ``max_clips`` is 0 (the whole song at once)."""
        length = int(round(float(self.data_config.get("clip_seconds", 3.0)) * self.sample_rate))
        if max_clips <= 0 or samples <= length:
            return [(0, samples)]
        clips = int(min(max_clips, samples // length))
        return [(int(round(a)), length) for a in np.linspace(0, samples - length, clips)]

    @torch.no_grad()
    def predict_graph(self, tracks: Tensor, names: list[str], stems: list[str], embedding: Tensor,
                      max_clips: int = 8) -> Prediction:
        """The full console with predicted parameters for level-aligned ``tracks`` ``(K, 2, samples)``,
        and the predicted probability that each of its processors is in the graph.

        The head was trained on clips of ``clip_seconds``: it runs on up to ``max_clips`` evenly
        spaced clips of that length (each clip's tracks level-aligned on their own, as in
        training; memory bounded by one clip, whatever the song's length), and every raw
        parameter is the median over clips (``max_clips`` 0: one pass over the whole song).
        """
        graph = self.spec.graph(names, stems)
        groups = torch.tensor([[STEMS.index(s) for s in stems]], device=self.device)
        mask = torch.ones(1, len(names), dtype=torch.bool, device=self.device)
        outs = []
        for start, length in self.clip_starts(tracks.shape[-1], max_clips):
            clip = align_track_levels(tracks[..., start: start + length].to(self.device))
            outs.append(self.head(clip[None], mask, groups, embedding[None].to(self.device)))
        track_clips = torch.cat([o.track_rows for o in outs])  # (C, K, size)
        group_mask = outs[0].group_mask
        group_clips = torch.cat([o.group_rows[:, group_mask[0]] for o in outs])  # (C, G, size)
        track_rows = track_clips.median(0).values[None]
        group_rows = torch.zeros_like(outs[0].group_rows)
        group_rows[:, group_mask[0]] = group_clips.median(0).values
        params = ConsoleBatch([graph]).params_from_strips(
            self.track_layout.unflatten(track_rows), self.group_layout.unflatten(group_rows), mask, group_mask)
        console = MixingConsole(graph, self.processors, params).to(self.device)
        track_p = torch.stack([torch.sigmoid(o.track_keep[0]) for o in outs]).mean(0).cpu()
        group_p = torch.stack([torch.sigmoid(o.group_keep[0][group_mask[0]]) for o in outs]).mean(0).cpu()
        keep = torch.ones(graph.num_nodes)
        for v, owner in enumerate(strip_of_nodes(graph)):
            if owner is not None:
                kind, i = owner
                layout, probabilities = (self.track_layout, track_p) if kind == "track" else (self.group_layout, group_p)
                keep[v] = probabilities[i, layout.types.index(graph.node_types[v])]
        return Prediction(console, keep, track_clips.cpu(), group_clips.cpu())

    def reference_z(self, embedding: Tensor) -> Tensor:
        """``(reference_dim,)`` z-scores of a reference vector against the head's training references
        (the head's stored mean and spread; inputs without training spread at 0, as the head takes them)."""
        return self.head.standardise_reference(embedding[None].to(self.device), clamp=False)[0].cpu()

    @torch.no_grad()
    def guard(self, prediction: Prediction, tracks: Tensor, stems: list[str], reference_stems: Tensor,
              embedding: Tensor, config: GuardConfig) -> GuardReport:
        """Confidence per strip and setting, fallback, engineer's ranges and timing
        (:mod:`mixrep.inference.guard`), in place on ``prediction.console``.

        Args:
            tracks: ``(K, 2, samples)`` level-aligned; reference_stems: ``(4, 2, samples)``.
        """
        z = self.reference_z(embedding)
        index = int(z.abs().argmax())
        names = list(self.head.config.feature_names)
        offset = self.head.config.reference_dim - len(names)
        report = GuardReport(reference_max_z=float(z.abs().max()),
                             reference_feature=names[index - offset] if index >= offset else f"embedding[{index}]")
        if not config.enabled:
            return report
        signal = reference_signal(report.reference_max_z)
        differ = tracks_differ(tracks, self.sample_rate)
        confidence, signals = {}, {}
        for kind, rows, layout, decoder in (("track", prediction.track_clip_rows, self.track_layout, self.head.track_decoder),
                                            ("group", prediction.group_clip_rows, self.group_layout, self.head.group_decoder)):
            confidence[kind], signals[kind] = strip_confidence(rows, layout, decoder.centre, differ and kind == "track",
                                                               signal)
        report.fell_back = apply_guard(prediction.console, stems, confidence,
                                       {"track": self.track_layout, "group": self.group_layout}, reference_stems, config)
        for kind, key, strips in (("track", "tracks", list(prediction.console.track_names)),
                                  ("group", "buses", list(report.fell_back["buses"]))):
            layout = self.track_layout if kind == "track" else self.group_layout
            report.confidence[key] = {s: {t: round(float(confidence[kind][i, j]), 3) for j, t in enumerate(layout.types)}
                                      for i, s in enumerate(strips)}
            report.signals[key] = {s: {t: {n: round(float(v[i, j]), 3) for n, v in signals[kind].items()}
                                       for j, t in enumerate(layout.types)} for i, s in enumerate(strips)}
        low = sorted({t for strips in report.fell_back.values() for types in strips.values() for t in types})
        if report.reference_max_z > Z_NEAR:
            report.warnings.append(f"the reference lies far from the head's training references (largest |z| "
                                   f"{report.reference_max_z:.1f}, {report.reference_feature})")
        if low:
            count = sum(len(types) for strips in report.fell_back.values() for types in strips.values())
            report.warnings.append(f"low confidence: {count} settings ({', '.join(low)}) fell back to the measured "
                                   f"prior (flat EQ, ratio 1, width 1, dry echoes, balance-matched faders)")
        return report

    @torch.no_grad()
    def balanced_prior(self, names: list[str], stems: list[str], tracks: Tensor, reference_stems: Tensor,
                       graph=None) -> MixingConsole:
        """Balance matching alone: the console (``graph``, default the full console of ``names``)
        at the measured prior (:func:`~mixrep.inference.guard.neutral_parameters`: flat EQ, ratio 1,
        width 1, dry echoes, faders 0 dB centred), its faders then moved to the reference's stem
        balance (:func:`~mixrep.inference.balance.match_balance`).

        Args:
            tracks: ``(K, 2, samples)`` level-aligned; reference_stems: ``(4, 2, samples)``.
        """
        graph = graph if graph is not None else self.spec.graph(list(names), list(stems))
        start = MixingConsole(graph, self.processors)
        console = MixingConsole(graph, self.processors,
                                {t: neutral_parameters(t, {k: v.detach() for k, v in p.items()})
                                 for t, p in start.parameter_dict().items()}).to(self.device)
        match_balance(console, tracks.to(self.device), stems, reference_stems.to(self.device))
        return console

    @torch.no_grad()
    def candidates(self, console: MixingConsole, tracks: Tensor, stems: list[str], reference_stems: Tensor,
                   halfway: float = 0.5) -> dict[str, MixingConsole]:
        """``{name: console}`` for :data:`~mixrep.inference.guard.CANDIDATES`: ``console`` itself, the
        console ``halfway`` from the measured prior to it (faders balance-matched again), and
        balance matching alone (:meth:`balanced_prior`).

        Args:
            tracks: ``(K, 2, samples)`` level-aligned; reference_stems: ``(4, 2, samples)``.
        """
        balanced = self.balanced_prior(console.track_names, stems, tracks, reference_stems, console.graph)
        between = blend_consoles(balanced, console, halfway)
        match_balance(between, tracks, stems, reference_stems)
        return {"head": console, "half-way": between, "balance only": balanced}

    @torch.no_grad()
    def select(self, console: MixingConsole, tracks: Tensor, stems: list[str], reference_stems: Tensor,
               report: GuardReport, config: GuardConfig, seconds: float = 10.0) -> MixingConsole:
        """After balance matching and refinement: clamp into the engineer's ranges again, then render
        whichever of three candidates sits closest to the reference's spectra, and report all of them.

        The candidates (:data:`~mixrep.inference.guard.CANDIDATES`): ``head``, the settings as they
        stand; ``half-way``, every raw parameter ``config.halfway`` of the way from the measured
        prior to the head's, faders balance-matched again; ``balance only``, the console at the
        measured prior with balance-matched faders (:meth:`balanced_prior`). Each is rendered on
        ``seconds`` from the middle of the song and scored by
        :func:`~mixrep.inference.guard.spectral_distance_db` against the reference stems (also
        :func:`~mixrep.inference.guard.compare_mixes`' features and the plain sum, for the report).
        With ``config.select`` the closer of ``head`` and ``half-way`` is returned when it is at least
        ``config.margin`` closer than balance matching alone, else balance matching alone; without
        it, ``console``.

        Args:
            tracks: ``(K, 2, samples)`` level-aligned; reference_stems: ``(4, 2, samples)``.
        """
        if config.enabled:  # refinement may have moved settings; the faders' stereo is balance matching's
            clamp_console(console, stems, reference_stems, config.wide_ranges, pan=False)
        length = min(tracks.shape[-1], int(seconds * self.sample_rate))
        start = (tracks.shape[-1] - length) // 2
        stretch = tracks[..., start: start + length]
        candidates = self.candidates(console, tracks, stems, reference_stems, config.halfway)
        rendered = {"plain sum": plain_stems(stretch, stems)}
        rendered.update({name: console_stems(c, stretch, stems) for name, c in candidates.items()})
        report.comparison = compare_mixes(rendered, reference_stems, self.sample_rate)
        for name, audio in rendered.items():
            report.comparison[name]["spectra_db"] = round(spectral_distance_db(audio, reference_stems, self.sample_rate), 3)
        scores = {name: report.comparison[name]["spectra_db"] for name in candidates}
        closest = min(("head", "half-way"), key=lambda name: (math.isnan(scores[name]), scores[name]))
        if not scores[closest] < (1.0 - config.margin) * scores["balance only"]:  # NaN: nothing to compare
            closest = "balance only"
        if config.select:
            report.selected = closest
        if closest != "head":
            report.warnings.append(f"the head's settings sit no closer to the reference's spectra than {closest} "
                                   f"(distance: head {scores['head']:.2f}, half-way {scores['half-way']:.2f}, balance "
                                   f"matching alone {scores['balance only']:.2f} dB); "
                                   + (f"rendering {closest}" if config.select else "kept as asked"))
        return candidates[report.selected]

    def predict(self, tracks: Tensor, names: list[str], stems: list[str], embedding: Tensor) -> MixingConsole:
        """The full console with predicted parameters (:meth:`predict_graph` without the graph)."""
        return self.predict_graph(tracks, names, stems, embedding).console

    def refine(self, console: MixingConsole, tracks: Tensor, stems: list[str], embedding: Tensor,
               reference_stems: Tensor, steps: int, lr: float = 0.003, embedding_weight: float = 0.0,
               feature_weight: float = 0.0, stem_feature_weight: float = 1.0, seed: int = 0) -> list[float]:
        """Optimise ``console``'s parameters in place for ``steps`` steps; returns the objective per step.

        Objective on a random clip per step, a weighted sum of: ``embedding_weight`` x ``1 -
        cos(embed(rendered stems), embedding)``; ``feature_weight`` x the audio-feature distance
        (:class:`AudioFeatureLoss`) between the rendered mix and a clip of the reference, both
        RMS-normalised; ``stem_feature_weight`` x the same distance stem by stem (each stem
        RMS-normalised, so it weighs the stems' tone, dynamics and width, not the balance that
        :func:`~mixrep.inference.balance.match_balance` set; stems silent in the reference or absent
        left out). Gradients reach the parameters through the console and, for the embedding term,
        the front end and the (frozen) encoder.

        The defaults are the per-stem features alone at ``lr`` 0.003: on the evaluation's console and
        pedalboard references (6 items each, one head, seed 1234) they lowered the audio loss after
        balance matching from 3.94 to 3.78 and from 4.51 to 4.35, while the embedding term raised it
        (4.63 and 5.23 with the previous objective, embedding + 0.1 x mix features at ``lr`` 0.01;
        3.85 and 4.39 with 0.1 x embedding added to the default). The README's table scores them on
        other items (``--seed``).
        """
        if steps <= 0:
            return []
        generator = torch.Generator().manual_seed(seed)
        clip = min(tracks.shape[-1], reference_stems.shape[-1], int(self.encoder.clip_seconds * self.sample_rate))
        features = AudioFeatureLoss(self.sample_rate).to(self.device)
        optimizer = torch.optim.Adam(console.parameters(), lr=lr)
        target = embedding[: self.encoder.embedding_dim].to(self.device)
        reference_stems = reference_stems.to(self.device)
        ref_mix = reference_stems.sum(0)
        shared = [STEMS.index(c) for c in audible_stems(reference_stems, stems)]
        if embedding_weight <= 0 and feature_weight <= 0 and not (stem_feature_weight > 0 and shared):
            log.warning("refinement skipped: the reference has none of the tracks' stem classes %s and the "
                        "objective has no other term", sorted(set(stems)))
            return []
        losses = []
        for _ in range(steps):
            a = int(torch.randint(0, tracks.shape[-1] - clip + 1, (1,), generator=generator))
            b = int(torch.randint(0, ref_mix.shape[-1] - clip + 1, (1,), generator=generator))
            rendered = console_stems(console, tracks[..., a: a + clip], stems)
            scale = rms(ref_mix[..., b: b + clip]) / rms(rendered.sum(0))
            rendered = rendered * scale
            loss = rendered.new_zeros(())
            if embedding_weight > 0:
                mel, feats = self.encoder.frontend(rendered[None])
                estimate = torch.nn.functional.normalize(self.encoder.model.embed(mel, feats), dim=-1)[0]
                loss = loss + embedding_weight * (1.0 - (estimate * target).sum())
            if feature_weight > 0:
                loss = loss + feature_weight * features(rendered.sum(0)[None], ref_mix[None, :, b: b + clip])
            if stem_feature_weight > 0 and shared:
                loss = loss + stem_feature_weight * features(rms_normalise(rendered[shared]),
                                                             rms_normalise(reference_stems[shared, :, b: b + clip]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            console.project_()
            losses.append(float(loss.detach()))
        return losses

    # ------------------------------------------------------------------ the whole job
    def mix(self, tracks, reference_stems, names: list[str] | None = None, stems: list[str] | None = None,
            sample_rate: int | None = None, reference_sample_rate: int | None = None, refine_steps: int = 0,
            refine_lr: float = 0.003, refine_embedding_weight: float = 0.0, sparse: bool = False,
            keep_threshold: float = 0.5, balance: bool = True, guard: GuardConfig | None = None,
            max_clips: int = 8, true_peak_db: float = TRUE_PEAK_CEILING_DB) -> TransferResult:
        """Mix ``tracks`` in the style of ``reference_stems`` (see the module docstring).

        Args:
            tracks: ``(K, 2, samples)`` or mono ``(K, samples)`` raw tracks at ``sample_rate``.
            reference_stems: ``(4, 2, samples)`` the reference's stems (drums, bass, other, vocals).
            names: one name per track (default ``track1``...); stems: stem class per track
                (default ``other``).
            sample_rate, reference_sample_rate: Hz of the inputs (default: the console's rate); the
                mix is rendered and returned at ``sample_rate``.
            refine_steps: inference-time optimisation steps after the prediction (:meth:`refine`);
                refine_lr, refine_embedding_weight: its learning rate and the weight of its
                style-embedding term.
            sparse: render only the processors the head predicts present (probability at least
                ``keep_threshold``; faders always stay).
            balance: after the prediction, move the faders so the stems sit in the mix as the
                reference's do, in level and stereo (:func:`~mixrep.inference.balance.match_balance`).
            guard: the guard's settings (:class:`~mixrep.inference.guard.GuardConfig`; default on).
            max_clips: the head runs on up to this many clips of its training length (:meth:`predict_graph`).
            true_peak_db: the written mix's true-peak ceiling, dBTP.

        Raises:
            ValueError: no tracks, names/stems that do not match the tracks, bad shapes, corrupt
                samples, a reference shorter than the encoder's minimum, a silent reference.
        """
        rate = int(sample_rate or self.sample_rate)
        raw = checked_tracks(tracks, names)
        k = raw.shape[0]
        names = list(names) if names is not None else [f"track{i + 1}" for i in range(k)]
        stems = list(stems) if stems is not None else ["other"] * k
        if len(names) != k or len(stems) != k:
            raise ValueError(f"{k} tracks but {len(names)} names and {len(stems)} stem classes")
        bad = [s for s in stems if s not in STEMS]
        if bad:
            raise ValueError(f"unknown stem classes {bad}; use {', '.join(STEMS)}")
        gains = self._level_gains(raw, names)
        reference = self._checked_reference(reference_stems, reference_sample_rate or self.sample_rate)
        target_lufs = reference_loudness(reference, self.sample_rate)
        aligned = analysis_excerpt(raw, gains, rate, self.sample_rate).to(self.device)
        embedding = self.reference_embedding(reference, self.sample_rate)
        prediction = self.predict_graph(aligned, names, stems, embedding, max_clips)
        guard = guard or GuardConfig()
        report = self.guard(prediction, aligned, stems, reference.to(self.device), embedding, guard)
        console = prediction.sparse(keep_threshold) if sparse else prediction.console
        moves = match_balance(console, aligned, stems, reference) if balance else None
        losses = self.refine(console, aligned, stems, embedding, reference.to(self.device), refine_steps, refine_lr,
                             embedding_weight=refine_embedding_weight)
        console = self.select(console, aligned, stems, reference.to(self.device), report, guard)
        final = console_at_rate(console, rate, self.spec.processor_options).to(self.device)
        mixed = render_song(final, raw, gains)
        levels = finish_levels(mixed, rate, target_lufs, true_peak_db)
        return TransferResult(mixed, final, physical_report(final), rate, losses, prediction.keep_probability, moves,
                              guard=report, levels=levels, track_gains=gains)

    @staticmethod
    def _level_gains(tracks: np.ndarray, names: list[str]) -> np.ndarray:
        """Level-alignment gains ``(K,)`` (:func:`~mixrep.console.spec.level_gains`); warns of silent tracks."""
        rms = track_rms(tracks)
        silent = [n for n, r in zip(names, rms) if r <= SILENT_RMS]
        if silent:
            log.warning("silent tracks %s (below -90 dBFS RMS): their strips are predicted but change nothing", silent)
        return level_gains(rms)

    def _checked_reference(self, reference_stems, reference_rate: int) -> Tensor:
        """Reference stems ``(4, 2, samples)`` float32 at the console's rate.

        Raises:
            ValueError: a bad shape, non-finite samples, shorter than the encoder's minimum.
        """
        reference = torch.as_tensor(np.asarray(reference_stems, dtype=np.float32))
        if reference.ndim != 3 or reference.shape[:2] != (len(STEMS), 2):
            raise ValueError(f"reference stems must be ({len(STEMS)}, 2, samples), got {tuple(reference.shape)}")
        if not bool(torch.isfinite(reference).all()):
            raise ValueError("the reference stems contain NaN or infinite samples")
        seconds = reference.shape[-1] / reference_rate
        if seconds < MIN_EMBED_SECONDS:
            raise ValueError(f"the reference lasts {seconds:.2f} s; the encoder needs at least {MIN_EMBED_SECONDS} s")
        if reference_rate != self.sample_rate:
            reference = torchaudio.functional.resample(reference, reference_rate, self.sample_rate)
        return reference

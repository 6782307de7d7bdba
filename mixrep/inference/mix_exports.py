"""The settings of a ``mixrep mix`` result in the one settings format, and the mix leaving mixrep.

The head predicts the differentiable console's parameters; :func:`mix_style_of` turns the final
console into the nearest :class:`~mixrep.styles.mix_style.MixStyle` for the *raw* tracks
(:func:`~mixrep.console.style_convert.style_from_console`, with each track's level-alignment gain
moved into its fader and the written mix's loudness as the target), so the settings file, the
pedalboard render and the DAW projects all start from the same settings:

* ``pedalboard``: the settings rendered with real plugins (:func:`~mixrep.styles.mix_style.render_mix`);
  its multi-resolution STFT distance to the console's render is reported next to the raw sum's, which
  gives the distance a scale;
* ``reaper``: a REAPER project (:func:`~mixrep.export.reaper.write_reaper_project`);
* ``dawproject``: a DAWproject file (:func:`~mixrep.export.dawproject.write_dawproject`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mixrep.audio.primitives import gain_to_db
from mixrep.console.loss import multi_resolution_stft_distance
from mixrep.console.spec import normalise_loudness
from mixrep.console.style_convert import StyleFromConsole, style_from_console
from mixrep.export.dawproject import write_dawproject
from mixrep.export.reaper import write_reaper_project
from mixrep.inference.output_stage import ANALYSIS_SECONDS, analysis_excerpt, middle_span
from mixrep.styles.mix_style import MixLevels, MixStyle, integrated_loudness, render_mix_levels

EXPORT_SUFFIXES: dict[str, str] = {"pedalboard": ".pedalboard.wav", "reaper": ".rpp", "dawproject": ".dawproject"}
"""Every ``--export`` target and the suffix its file gets beside the mix."""


def parse_exports(text: str | None) -> tuple[str, ...]:
    """``"pedalboard,reaper"`` -> ``("pedalboard", "reaper")`` (``None`` or ``""``: none).

    Raises:
        ValueError: an unknown target (the message lists the known ones).
    """
    targets = tuple(dict.fromkeys(t.strip() for t in (text or "").split(",") if t.strip()))
    unknown = [t for t in targets if t not in EXPORT_SUFFIXES]
    if unknown:
        raise ValueError(f"--export {text!r}: unknown {', '.join(unknown)}; use a comma-separated list of "
                         f"{', '.join(EXPORT_SUFFIXES)}")
    return targets


def mix_style_of(console, raw_tracks: np.ndarray, track_gains: np.ndarray, names: Sequence[str],
                 stems: Sequence[str], sample_rate: int, loudness_lufs: float) -> StyleFromConsole:
    """The nearest mix-style settings of a result's console, for the raw tracks.

    The console mixes level-aligned tracks (``raw * track_gains``): the conversion reads the
    aligned middle :data:`~mixrep.inference.output_stage.ANALYSIS_SECONDS` (the levels the relative
    compressor thresholds refer to), then every fader takes its track's alignment gain, so the
    style applies to the raw tracks as they are on disk. The faders are then mean-centred, as the
    mixing-style space draws them: the render is loudness-normalised and every level-dependent
    setting is relative, so a common offset changes nothing but the numbers a DAW shows.

    Args:
        console: the result's final console (at ``sample_rate``).
        raw_tracks: ``(tracks, 2, samples)`` as read; track_gains: ``(tracks,)`` linear.
        names, stems: each track's name and stem class.
        loudness_lufs: the written mix's loudness, the style's target (a silent mix keeps the default).
    """
    excerpt = analysis_excerpt(raw_tracks, track_gains, sample_rate, sample_rate)
    converted = style_from_console(console, names, tracks=excerpt)
    style = converted.style
    faders = {name: style.strip_for(name, stem).fader_db + gain_to_db(gain)
              for name, stem, gain in zip(names, stems, track_gains)}
    mean_db = float(np.mean(list(faders.values())))
    strips = {**style.strips, **{name: dataclasses.replace(style.strip_for(name, stem), fader_db=faders[name] - mean_db)
                                 for name, stem in zip(names, stems)}}
    style = dataclasses.replace(style, strips=strips,
                                loudness_lufs=loudness_lufs if math.isfinite(loudness_lufs) else style.loudness_lufs)
    return StyleFromConsole(style, converted.report)



def render_distance(estimate: np.ndarray, target: np.ndarray, sample_rate: int,
                    seconds: float = ANALYSIS_SECONDS) -> float:
    """Multi-resolution STFT distance of two renders of one song over its middle ``seconds``
    (:func:`~mixrep.console.loss.multi_resolution_stft_distance`). ``(2, samples)`` each."""
    start, stop = middle_span(min(estimate.shape[-1], target.shape[-1]), sample_rate, seconds)

    def middle(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x[..., start:stop], dtype=np.float32))

    return multi_resolution_stft_distance(middle(estimate), middle(target))


@dataclass(frozen=True)
class MixExport:
    """What the export writers need of one ``mixrep mix`` run.

    Attributes:
        style: the mix's settings for the raw tracks (:func:`mix_style_of`); conversion: its
            conversion report (:meth:`~mixrep.console.style_convert.ConversionReport.to_dict`).
        tracks: ``(tracks, 2, samples)`` raw, as read from ``files``; names, stems, files: per track.
        sample_rate: Hz of ``tracks``.
        pedalboard: the pedalboard render ``(2, samples)`` when it was asked for, else ``None``.
        levels: the levels the settings' relative values met in that render (what the DAW projects
            set their absolute thresholds from), when an export was asked for, else ``None``.
    """

    style: MixStyle
    conversion: dict
    tracks: np.ndarray
    names: list[str]
    stems: list[str]
    files: list[Path]
    sample_rate: int
    pedalboard: np.ndarray | None = None
    levels: MixLevels | None = None

    def write_project(self, target: str, path: Path) -> None:
        """Write the ``reaper`` or ``dawproject`` project to ``path``."""
        writer = {"reaper": write_reaper_project, "dawproject": write_dawproject}[target]
        writer(path, self.style, self.files, self.names, self.stems, self.sample_rate, self.tracks, levels=self.levels)


def mix_export(result, song, exports: Sequence[str]) -> MixExport:
    """The settings of a ``mixrep mix`` result and, when ``exports`` names any target, their one
    pedalboard render on the raw tracks: the ``pedalboard`` export's audio and the levels the
    projects' absolute settings come from.

    Args:
        result: the :class:`~mixrep.inference.style_transfer.TransferResult`.
        song: the :class:`~mixrep.datasets.song_folder.Song` it mixed.
    """
    converted = mix_style_of(result.console, song.tracks, result.track_gains, song.names, song.stems,
                             result.sample_rate, result.levels.lufs)
    rendered = levels = None
    if exports:
        stems, levels = render_mix_levels(song.tracks, converted.style, song.sample_rate, song.names, song.stems)
        rendered = stems.sum(axis=0) if "pedalboard" in exports else None
    return MixExport(converted.style, converted.report.to_dict(), song.tracks, list(song.names), list(song.stems),
                     list(song.files), song.sample_rate, rendered, levels)


def export_report(export: MixExport, result, exports: dict[str, Path]) -> dict:
    """What the report JSON of ``mixrep mix`` says of the settings and the exports: ``"style"``
    (:meth:`MixStyle.to_dict`), ``"conversion"`` (what is approximate or did not convert) and
    ``"exports"`` (each file; for ``pedalboard`` its multi-resolution STFT distance to the mix over
    the middle :data:`~mixrep.inference.output_stage.ANALYSIS_SECONDS`, next to the loudness-matched
    raw sum's, which gives the distance a scale)."""
    written: dict[str, dict] = {target: {"path": str(path)} for target, path in exports.items()}
    if export.pedalboard is not None and "pedalboard" in written:
        raw_sum = export.tracks.sum(axis=0)
        goal_lufs = integrated_loudness(result.mix, export.sample_rate)
        if math.isfinite(goal_lufs):
            raw_sum = normalise_loudness(raw_sum[None], export.sample_rate, goal_lufs)[0]
        written["pedalboard"].update(
            stft_distance_to_mix=round(render_distance(export.pedalboard, result.mix, export.sample_rate), 4),
            raw_sum_stft_distance_to_mix=round(render_distance(raw_sum, result.mix, export.sample_rate), 4))
    return {"style": export.style.to_dict(), "conversion": export.conversion, "exports": written}

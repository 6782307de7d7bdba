"""A mix style as a REAPER project (``.rpp``, plain text), and a reader that parses one back.

:func:`write_reaper_project` lays a song out the way an engineer would in REAPER:

- one folder track per stem class present (drums, bass, other, vocals), the raw tracks inside it
  as media items (each file from position 0; paths relative to the project's folder when the file
  lies under it, else absolute), each track's fader and pan in ``VOLPAN``;
- each track's FX chain from its strip: ReaEQ (high-pass, low-pass, shelves, peaks) then ReaComp
  (threshold made absolute from the track's own level, as the renderer measures it);
- a "Delay" bus (ReaDelay) and a "Reverb" bus (ReaVerbate) receiving post-fader sends
  (``AUXRECV`` at the send's dB);
- the master: ReaEQ (shelves), ReaComp, ReaLimit, and the loudness gain on the master fader.

Relative settings become absolute the way :func:`~mixrep.styles.mix_style.render_mix` applies
them: :func:`~mixrep.styles.mix_style.mix_levels` renders the song once and returns the levels
(each track's RMS after its EQ, the mix RMS at the master compressor, the peak at the limiter,
the loudness gain). Each plug-in is renamed with its settings in physical units; saturation and
stereo width are not set in REAPER (no stock plug-in whose project state could be checked here)
and the project notes list them. ``docs/export.md`` has the mapping and what is approximate.

:func:`read_reaper_project` parses a project this writer wrote back into tracks, sends and
plug-in settings in physical units, for tests and for checking a project before opening it.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixrep.audio.primitives import db_to_gain
from mixrep.audio.stems import stem_index
from mixrep.constants import STEMS
from mixrep.errors import MixrepError
from mixrep.export.reaper_plugins import (
    DECODERS,
    ENCODERS,
    PLUGINS,
    ReaCompSettings,
    ReaDelaySettings,
    ReaEqBand,
    ReaLimitSettings,
    ReaVerbateSettings,
    q_to_octaves,
    state_data,
    state_lines,
    vst_header_line,
)
from mixrep.export.rpp_text import Block, RppError, clean_name, parse, quote
from mixrep.files import atomic_write_text, check_output_file
from mixrep.styles.mix_style import ChannelStrip, CompressorSettings, EqBand, MixLevels, MixStyle, mix_levels
from mixrep.styles.style_file import StyleFile, check_style

BUTTERWORTH_Q = 1.0 / math.sqrt(2.0)
"""Q of the renderer's second-order Butterworth high- and low-pass (``BW = 1.90`` octaves in ReaEQ)."""

SOURCE_TYPES = {".wav": "WAVE", ".aif": "WAVE", ".aiff": "WAVE", ".flac": "FLAC", ".mp3": "MP3", ".ogg": "VORBIS"}
"""REAPER's media source type per file extension."""

DELAY_BUS, REVERB_BUS = "Delay", "Reverb"


# ----------------------------------------------------------------------------- the plug-ins of a strip


def eq_bands(bands: Sequence[EqBand], highpass_hz: float | None = None, lowpass_hz: float | None = None
             ) -> list[ReaEqBand]:
    """ReaEQ bands of a strip's filters and EQ (Q to octaves by :func:`q_to_octaves`)."""
    out = []
    if highpass_hz is not None:
        out.append(ReaEqBand("highpass", highpass_hz, 0.0, q_to_octaves(BUTTERWORTH_Q)))
    if lowpass_hz is not None:
        out.append(ReaEqBand("lowpass", lowpass_hz, 0.0, q_to_octaves(BUTTERWORTH_Q)))
    out += [ReaEqBand(b.kind, b.frequency_hz, b.gain_db, q_to_octaves(b.q)) for b in bands]
    return out


def compressor_settings(c: CompressorSettings, input_db: float) -> ReaCompSettings:
    """ReaComp settings of a compressor whose threshold is relative to an input at ``input_db`` RMS."""
    return ReaCompSettings(input_db + c.threshold_db, c.ratio, c.attack_ms, c.release_ms, c.makeup_db)


def _fmt(value: float) -> str:
    return f"{value:.10g}"


def _fx_lines(name: str, settings: Any, label: str) -> list[str]:
    plugin = PLUGINS[name]
    data = ENCODERS[name](settings)
    return ["BYPASS 0 0 0", vst_header_line(plugin, quote(clean_name(label))),
            *[f"  {line}" for line in state_lines(plugin, data)], ">", "WAK 0 0"]


def _eq_label(bands: list[ReaEqBand]) -> str:
    return "ReaEQ " + "; ".join(f"{b.kind} {b.frequency_hz:.0f} Hz {b.gain_db:+.1f} dB {b.octaves:.2f} oct"
                                for b in bands)


def _comp_label(c: ReaCompSettings) -> str:
    return (f"ReaComp {c.threshold_db:.1f} dBFS {c.ratio:.2f}:1 {c.attack_ms:.1f}/{c.release_ms:.0f} ms "
            f"makeup {c.makeup_db:+.1f} dB")


def _strip_fx(strip: ChannelStrip, input_db: float) -> list[str]:
    lines: list[str] = []
    bands = eq_bands(strip.eq, strip.highpass_hz, strip.lowpass_hz)
    if bands:
        lines += _fx_lines("ReaEQ", bands, _eq_label(bands))
    if strip.compressor is not None and math.isfinite(input_db):
        comp = compressor_settings(strip.compressor, input_db)
        lines += _fx_lines("ReaComp", comp, _comp_label(comp))
    return lines


def _block(tag: str, header: str, lines: list[str]) -> list[str]:
    return [f"<{tag}{' ' + header if header else ''}", *[f"  {line}" for line in lines], ">"]


def _track(name: str, volume_db: float, pan: float, isbus: tuple[int, int], fx: list[str],
           extra: Sequence[str] = ()) -> list[str]:
    lines = [f"NAME {quote(clean_name(name))}", f"VOLPAN {_fmt(db_to_gain(volume_db))} {_fmt(pan)} 1 -1 1",
             "MUTESOLO 0 0 0", f"ISBUS {isbus[0]} {isbus[1]}", "NCHAN 2", "MAINSEND 1 0", *extra]
    if fx:
        lines += _block("FXCHAIN", "", ["SHOW 0", "LASTSEL 0", "DOCKED 0", *fx])
    return lines


def _item(path: str, seconds: float, name: str, source_type: str) -> list[str]:
    return _block("ITEM", "", [
        "POSITION 0", f"LENGTH {_fmt(seconds)}", "LOOP 0", f"NAME {quote(clean_name(name))}", "VOLPAN 1 0 1 -1",
        *_block("SOURCE", source_type, [f"FILE {quote(path)}"])])


def _media_path(file: Path, project_dir: Path, relative: bool) -> str:
    file = file.resolve()
    if relative:
        try:
            return file.relative_to(project_dir.resolve()).as_posix()
        except ValueError:
            pass
    return str(file)


def unset_settings(names: Sequence[str], strips: Sequence[ChannelStrip]) -> list[str]:
    """One line per track whose saturation or stereo width a DAW export does not set (``kick: stereo width 0.50``)."""
    rows = []
    for name, strip in zip(names, strips):
        unset = []
        if strip.saturation_drive_db is not None:
            unset.append(f"saturation {strip.saturation_drive_db:.1f} dB drive")
        if strip.width is not None:
            unset.append(f"stereo width {strip.width:.2f}")
        if unset:
            rows.append(f"{name}: {', '.join(unset)}")
    return rows


def _notes(names: Sequence[str], strips: Sequence[ChannelStrip]) -> list[str]:
    """What REAPER does not get (saturation, width), as the project's notes."""
    rows = ["mixrep export: settings REAPER does not get from this project (docs/export.md):"]
    rows += [clean_name(row) for row in unset_settings(names, strips)] or ["none"]
    return _block("NOTES", "0 2", [f"|{row}" for row in rows])


# ----------------------------------------------------------------------------- write


def checked_project_song(style: MixStyle, track_files: Sequence[str | os.PathLike], names: Sequence[str],
                         stems: Sequence[str | int], sample_rate: int, tracks: np.ndarray) -> tuple[StyleFile, list[Path]]:
    """The style checked for the song (any track names: the writers escape them) and the track files,
    once there is one file and one audio track per name (what both project writers check first).

    Raises:
        StyleFileError: a setting outside the renderer's ranges, a track without a strip.
        ValueError: file, track and name counts that disagree.
    """
    checked = check_style(style, names, stems, sample_rate, where="mix style for this song", labels=False)
    files = [Path(f) for f in track_files]
    if len(files) != len(checked.names) or tracks.shape[0] != len(checked.names):
        raise ValueError(f"expected one file and one audio track per name: {len(files)} files, "
                         f"{tracks.shape[0]} tracks, {len(checked.names)} names")
    return checked, files


def write_reaper_project(path: str | os.PathLike, style: MixStyle, track_files: Sequence[str | os.PathLike],
                         names: Sequence[str], stems: Sequence[str | int], sample_rate: int, tracks: np.ndarray,
                         *, relative_paths: bool = True, levels: MixLevels | None = None) -> Path:
    """Write a REAPER project of a song's raw tracks mixed in ``style`` (see the module docstring).

    Args:
        path: the ``.rpp`` to write (atomically).
        style: the mix style (every track needs a strip: its name's, else its stem class's).
        track_files: each track's audio file (the items' sources).
        names, stems: each track's name and stem class.
        sample_rate: Hz of ``tracks`` (the project's rate).
        tracks: the tracks as read from ``track_files``, to measure the levels the relative
            settings refer to and the items' length.
        relative_paths: write item paths relative to the project's folder where the file lies
            under it (a project folder that moves stays whole); absolute otherwise.
        levels: :func:`~mixrep.styles.mix_style.mix_levels` of this style on ``tracks``, when the
            caller has rendered it already (otherwise the style is rendered here to measure them).

    Raises:
        StyleFileError: a setting outside the renderer's ranges, a track without a strip.
        RppError: a file path that an ``.rpp`` line cannot hold (a line break in it).
        MixrepError: an audio format REAPER's project sources are not written for here.
        OutputError: ``path`` cannot be written (checked before the levels are measured).

    Shape:
        tracks ``(tracks, channels=2, samples)``.
    """
    path = check_output_file(path, "REAPER project")
    checked, files = checked_project_song(style, track_files, names, stems, sample_rate, tracks)
    style, names, classes = checked.style, list(checked.names), list(checked.stems)
    for file in files:
        if file.suffix.lower() not in SOURCE_TYPES:
            raise MixrepError(f"{file}: a REAPER project is written here for {', '.join(SOURCE_TYPES)} files; "
                              f"convert it to .wav")
    media = [_media_path(f, path.parent, relative_paths) for f in files]
    for text in media:
        quote(text)  # refuse an unwritable path before the long work
    if levels is None:
        levels = mix_levels(tracks, style, sample_rate, names, classes)
    text = project_text(style, names, classes, media, sample_rate, tracks.shape[-1] / sample_rate, levels)
    return atomic_write_text(path, text)


def project_text(style: MixStyle, names: Sequence[str], stems: Sequence[str], media: Sequence[str],
                 sample_rate: int, seconds: float, levels: MixLevels) -> str:
    """The ``.rpp`` text of :func:`write_reaper_project` (levels already measured)."""
    strips = [style.strip_for(n, s) for n, s in zip(names, stems)]
    body: list[str] = [f"SAMPLERATE {int(sample_rate)} 1 0", *_notes(names, strips),
                       f"MASTER_VOLUME {_fmt(db_to_gain(levels.loudness_gain_db))} 0 -1 -1 1"]
    master_fx = _master_fx(style, levels)
    if master_fx:
        body += _block("MASTERFXLIST", "", ["SHOW 0", "LASTSEL 0", "DOCKED 0", *master_fx])
    sends: dict[str, list[tuple[int, float]]] = {DELAY_BUS: [], REVERB_BUS: []}
    index = 0
    for stem in STEMS:
        members = [i for i, s in enumerate(stems) if stem_index(s) == stem_index(stem)]
        if not members:
            continue
        body += _block("TRACK", "", _track(f"{stem} bus", 0.0, 0.0, (1, 1), []))
        index += 1
        for position, i in enumerate(members):
            strip = strips[i]
            last = position == len(members) - 1
            source = SOURCE_TYPES[Path(media[i]).suffix.lower()]
            body += _block("TRACK", "", _track(names[i], strip.fader_db, strip.pan, (2, -1) if last else (0, 0),
                                               _strip_fx(strip, levels.strip_input_db[i]),
                                               _item(media[i], seconds, names[i], source)))
            if style.delay is not None and strip.delay_send_db is not None:
                sends[DELAY_BUS].append((index, strip.delay_send_db))
            if style.reverb is not None and strip.reverb_send_db is not None:
                sends[REVERB_BUS].append((index, strip.reverb_send_db))
            index += 1
    if style.delay is not None:
        delay = ReaDelaySettings(1000.0 * style.delay.delay_seconds, style.delay.feedback, 0.0, float("-inf"))
        fx = _fx_lines("ReaDelay", delay, f"ReaDelay {delay.length_ms:.1f} ms feedback {delay.feedback:.3f}")
        body += _block("TRACK", "", _track(DELAY_BUS, 0.0, 0.0, (0, 0), fx, _receives(sends[DELAY_BUS])))
    if style.reverb is not None:
        r = style.reverb
        verb = ReaVerbateSettings(r.room_size, r.damping, r.width, 0.0, float("-inf"))
        fx = _fx_lines("ReaVerbate", verb, f"ReaVerbate room {r.room_size:.2f} damping {r.damping:.2f} "
                                           f"width {r.width:.2f}")
        body += _block("TRACK", "", _track(REVERB_BUS, 0.0, 0.0, (0, 0), fx, _receives(sends[REVERB_BUS])))
    return "\n".join(_block("REAPER_PROJECT", '0.1 "7.0/mixrep" 0', body)) + "\n"


def _receives(sends: list[tuple[int, float]]) -> list[str]:
    """``AUXRECV``: source track, post-fader (0), volume, pan 0, no mute / mono / phase, channels 1+2."""
    return [f"AUXRECV {source} 0 {_fmt(db_to_gain(send_db))} 0 0 0 0 0 0 -1 0 -1" for source, send_db in sends]


def _master_fx(style: MixStyle, levels: MixLevels) -> list[str]:
    master, lines = style.master, []
    if master.eq:
        bands = eq_bands(master.eq)
        lines += _fx_lines("ReaEQ", bands, _eq_label(bands))
    if master.compressor is not None and levels.master_input_db is not None and math.isfinite(levels.master_input_db):
        comp = compressor_settings(master.compressor, levels.master_input_db)
        lines += _fx_lines("ReaComp", comp, _comp_label(comp))
    peak = levels.limiter_input_peak_db
    if master.limiter is not None and peak is not None and math.isfinite(peak):
        # The renderer raises the mix's peak to ceiling + drive, then limits to the ceiling; ReaLimit
        # applies ceiling - threshold of gain, so threshold = peak - drive.
        limit = ReaLimitSettings(peak - master.limiter.drive_db, master.limiter.ceiling_db)
        lines += _fx_lines("ReaLimit", limit, f"ReaLimit threshold {limit.threshold_db:.1f} dB ceiling "
                                              f"{limit.ceiling_db:.1f} dB (release {master.limiter.release_ms:.0f} ms "
                                              f"not set)")
    return lines


# ----------------------------------------------------------------------------- read


@dataclass
class ReaperFx:
    """One plug-in of a chain: its kind (``ReaEQ``, ``ReaComp``...; ``None`` for others), the name
    shown in REAPER, and its decoded settings (ReaEQ: a list of :class:`ReaEqBand`)."""

    plugin: str | None
    name: str
    settings: Any


@dataclass
class ReaperTrack:
    name: str
    volume_db: float
    pan: float
    folder: int                     # ISBUS field 1: 0 track, 1 folder start, 2 last track of a folder
    items: list[str] = field(default_factory=list)       # source file paths
    item_seconds: list[float] = field(default_factory=list)
    fx: list[ReaperFx] = field(default_factory=list)
    receives: list[tuple[int, float]] = field(default_factory=list)   # (source track index, volume dB)


@dataclass
class ReaperProject:
    sample_rate: int | None
    master_volume_db: float
    master_fx: list[ReaperFx]
    tracks: list[ReaperTrack]
    notes: list[str]

    def track(self, name: str) -> ReaperTrack:
        found = [t for t in self.tracks if t.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} tracks named {name!r}")
        return found[0]

    def parent(self, index: int) -> ReaperTrack | None:
        """The folder track ``self.tracks[index]`` sits in, or None."""
        stack: list[ReaperTrack] = []
        for i, t in enumerate(self.tracks):
            if i == index:
                return stack[-1] if stack else None
            if t.folder == 1:
                stack.append(t)
            elif t.folder == 2 and stack:
                stack.pop()
        raise IndexError(index)


def _gain_db(text: str) -> float:
    value = float(text)
    return 20.0 * math.log10(value) if value > 0 else float("-inf")


def _chain(block: Block) -> list[ReaperFx]:
    out = []
    for child in block.children:
        if child.tag == "VST":
            display = child.args[0] if child.args else ""
            plugin = next((p for p in PLUGINS if display == f"VST: {p} (Cockos)"), None)
            label = child.args[3] if len(child.args) > 3 else ""
            settings = None
            if plugin is not None:
                settings = DECODERS[plugin](state_data(PLUGINS[plugin], child.raw))
            out.append(ReaperFx(plugin, label, settings))
        elif child.tag == "JS":
            out.append(ReaperFx(None, child.args[0] if child.args else "", [line for line in child.lines]))
    return out


def read_reaper_project(path: str | os.PathLike) -> ReaperProject:
    """Parse an ``.rpp`` into tracks, items, sends and Cockos plug-in settings (physical units).

    Raises:
        RppError: not a readable REAPER project (naming the file and the problem).
    """
    path = Path(path)
    try:
        root = parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise RppError(f"cannot read the REAPER project {path}: {e}") from e
    except RppError as e:
        raise RppError(f"{path}: {e}") from e
    if root.tag != "REAPER_PROJECT":
        raise RppError(f"{path} is not a REAPER project (it starts with <{root.tag})")
    try:
        rate = root.first("SAMPLERATE")
        master = root.first("MASTER_VOLUME")
        master_fx = [fx for b in root.blocks("MASTERFXLIST") for fx in _chain(b)]
        tracks = []
        for block in root.blocks("TRACK"):
            volpan = block.first("VOLPAN") or ["1", "0"]
            isbus = block.first("ISBUS") or ["0", "0"]
            track = ReaperTrack((block.first("NAME") or [""])[0], _gain_db(volpan[0]), float(volpan[1]), int(isbus[0]))
            for item in block.blocks("ITEM"):
                track.item_seconds.append(float((item.first("LENGTH") or ["0"])[0]))
                for source in item.blocks("SOURCE"):
                    if source.first("FILE"):
                        track.items.append(source.first("FILE")[0])
            track.fx = [fx for b in block.blocks("FXCHAIN") for fx in _chain(b)]
            track.receives = [(int(r[0]), _gain_db(r[2])) for r in block.all("AUXRECV")]
            tracks.append(track)
        notes = [line.lstrip("|") for b in root.blocks("NOTES") for line in b.raw]
    except (IndexError, ValueError, TypeError, struct.error) as e:
        raise RppError(f"{path}: a malformed line or plug-in state ({e})") from e
    return ReaperProject(int(rate[0]) if rate else None, _gain_db(master[0]) if master else 0.0, master_fx, tracks,
                         notes)

"""The song folder: one song's tracks as audio files in one folder, read by one reader everywhere.

Layout::

    song/
        kick.wav, bass.flac, vox.wav, ...    one file per track: mono or stereo, one sample rate
        groups.json                           optional: {"<group>": ["<track>", ...], ...}

A track is named by its file name without extension (``kick``); ``groups.json`` may name it either
way (``kick`` or ``kick.wav``). ``groups.json`` has one schema, ``{group: [track, ...]}``, the file
``mixrep console make-case`` writes, and two readers of it:

* the console (``mixrep console fit``, ``prune``, ``prune-dataset``, ``predict-graph``): each group
  is a bus of the console (make-case writes ``{"rhythm": [...], "music": [...]}``); without a
  groups file, one bus;
* stem classes (``mixrep mix``, :class:`TrackFolderSource`): a group named after a stem class
  (drums, bass, other, vocals) places its tracks in that class; every other track is classed by
  its name (:func:`stem_from_name`: ``kick`` -> drums, ``vox`` -> vocals), else ``other``. So the
  file make-case writes is read by ``mixrep mix`` too (its groups are buses, not classes).

The other form, ``{"<track>": "<stem class>"}``, is refused everywhere with the same file rewritten
as groups. Tracks (and a song's mix and buses) may differ in length by at most
:data:`~mixrep.audio.multitrack_files.LENGTH_TOLERANCE_SECONDS`; they are read to the shortest track.

Every check runs on the files' headers before anything is decoded; decoding then checks each file
for corrupt samples (:func:`~mixrep.audio.io.check_sample_range`). Errors name the file and what to do.

Shape:
    :attr:`Song.tracks` ``(tracks, 2, samples)`` float32 at :attr:`Song.sample_rate` (one array,
    filled track by track: no second full-length copy).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixrep.audio.io import audio_info, channels_remedy, check_sample_range, read_segment
from mixrep.audio.multitrack import InstrumentTrack
from mixrep.audio.stems import STEM_INDEX
from mixrep.constants import AUDIO_EXTENSIONS, SAMPLE_RATE
from mixrep.audio.multitrack_files import (
    DEFAULT_MIN_SECONDS,
    FOLDER_SPLITS,
    LENGTH_TOLERANCE_SECONDS,
    FileMultitrackSource,
    hash_split,
    is_audio_name,
    unique_names,
)
from mixrep.errors import AudioReadError, DatasetError

log = logging.getLogger(__name__)

GROUPS_FILE = "groups.json"
"""The optional groups file of a song folder (or of a dataset root, for every song under it)."""

NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"kick|snare|hi-?hats?|hh|toms?|cymbals?|overheads?|\boh\b|drums?|perc|clap|shaker|ride|crash"
     r"|bass.?drum|\bbd\b|808", "drums"),
    (r"bass", "bass"),
    (r"vox|vocals?|\bvoc\b|singer|choir|\bbvs?\b|backing|rap", "vocals"),
    (r"other|guitar|gtr|piano|keys|synth|pad|organ|strings?|brass|horns?|sax|flute|lead|chords?|arp|pluck", "other"),
)
"""Track-name patterns (searched in order, case-insensitive) that class a track no stem-class group lists."""


def stem_from_name(name: str) -> str | None:
    """Stem class a track name suggests (``Kick In`` -> drums, ``Bass DI`` -> bass), or None."""
    for pattern, stem in NAME_RULES:
        if re.search(pattern, name.lower()):
            return stem
    return None


# ----------------------------------------------------------------------------- groups.json

def read_groups(path: Path) -> dict[str, list[str]]:
    """``{group: [track, ...]}`` from a groups file (tracks as written: names or file names).

    Raises:
        DatasetError: a missing or unparsable file, a file that is not ``{group: [track, ...]}``
            (the ``{track: stem class}`` form gets the same file rewritten as groups), or a track
            listed twice.
    """
    if not path.is_file():
        raise DatasetError(f"groups file {path} {'is a folder' if path.exists() else 'does not exist'}; pass a "
                           f'JSON file {{"<group>": ["<track>", ...]}}')
    try:
        groups = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f'cannot parse {path}: {e}; it must be JSON {{"<group>": ["<track>", ...]}}') from e
    if isinstance(groups, dict) and groups and all(isinstance(v, str) for v in groups.values()):
        by_group: dict[str, list[str]] = {}
        for track, group in groups.items():
            by_group.setdefault(group, []).append(track)
        raise DatasetError(f"{path} maps tracks to groups ({{track: group}}); mixrep reads groups.json as "
                           f"{{group: [track, ...]}} (what mixrep console make-case writes): write "
                           f"{json.dumps(by_group)}")
    if not isinstance(groups, dict) or not all(
            isinstance(v, list) and all(isinstance(t, str) for t in v) for v in groups.values()):
        raise DatasetError(f'{path} must map group names to lists of track names: {{"drums": ["kick", "snare"], '
                           f'"bass": ["bass"]}} (a track is its file name, with or without the extension)')
    seen: dict[str, str] = {}
    for group, tracks in groups.items():
        for track in tracks:
            if track in seen:
                raise DatasetError(f"{path}: {track} is listed under both {seen[track]} and {group}; list it once")
            seen[track] = group
    return groups


def track_groups(groups: dict[str, list[str]], files: list[Path], names: list[str], where: Path,
                 strict: bool = True) -> dict[str, list[str]]:
    """``groups`` with every track given by its name (``kick.wav`` -> ``kick``), groups in file order.

    Args:
        groups: what :func:`read_groups` returned.
        files, names: the song's track files and their names, in one order.
        where: the groups file (for messages).
        strict: refuse tracks that are not in the song (a dataset root's groups file lists the
            tracks of many songs: not strict).

    Raises:
        DatasetError: (strict) a listed track that is not in the song, naming the song's tracks.
    """
    by_key = {**{f.name: n for f, n in zip(files, names)}, **{n: n for n in names}}
    if strict:
        missing = [t for tracks in groups.values() for t in tracks if t not in by_key]
        if missing:
            raise DatasetError(f"{where} names tracks that are not in {files[0].parent}: {missing}; tracks: {names}")
    return {g: [by_key[t] for t in tracks if t in by_key] for g, tracks in groups.items()}


def stem_classes(names: list[str], groups: dict[str, list[str]]) -> list[str | None]:
    """Each track's stem class: its stem-class group, else :func:`stem_from_name` (None: unknown).

    ``groups`` lists tracks by name (:func:`track_groups`); groups under other names (console
    buses) do not class their tracks.
    """
    listed = {t: g for g, tracks in groups.items() if g in STEM_INDEX for t in tracks}
    return [listed.get(n, stem_from_name(n)) for n in names]


# ----------------------------------------------------------------------------- many songs

class TrackFolderSource(FileMultitrackSource):
    """Song folders of track files (see the module docstring): a dataset of song folders.

    Every folder holding audio files is a song (``root`` itself when it holds them); its tracks
    are those files. A song's own ``groups.json`` is merged over the root's (group by group).

    Raises:
        DatasetError: no audio under ``root``, or a ``groups.json`` that is not ``{group: [track, ...]}``.
    """

    name = "tracks"

    def __init__(self, root: str | Path, sample_rate: int = SAMPLE_RATE, min_seconds: float = DEFAULT_MIN_SECONDS,
                 check_silence: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 length_tolerance_seconds: float = LENGTH_TOLERANCE_SECONDS) -> None:
        super().__init__(root, sample_rate, min_seconds, check_silence, length_tolerance_seconds, "folder of tracks")
        root_file = self.root / GROUPS_FILE
        root_groups = read_groups(root_file) if root_file.is_file() else {}
        songs: list[tuple[Path, list[Path]]] = []
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            files = sorted(Path(folder) / n for n in names if is_audio_name(n))
            if files:
                songs.append((Path(folder), files))
        if not songs:
            raise DatasetError(f"no audio files under {self.root}: expected <song>/<track>.wav folders of tracks")
        for folder, files in songs:
            own = folder / GROUPS_FILE
            groups = {**root_groups, **read_groups(own)} if folder != self.root and own.is_file() else root_groups
            names = unique_names([p.stem for p in files])
            classes = stem_classes(names, track_groups(groups, files, names, own, strict=False))
            tracks = [InstrumentTrack(name, path.stem, self._classified(path.stem, stem), path, is_drum=stem == "drums")
                      for path, name, stem in zip(files, names, classes)]
            rel = folder.relative_to(self.root).as_posix()
            split = FOLDER_SPLITS.get(rel.split("/")[0].lower()) if "/" in rel else None
            self._add_song(rel if rel != "." else folder.name, folder, tracks,
                           split or hash_split(rel, val_fraction, test_fraction), {"title": folder.name})
        self._finish(len(songs))


# ----------------------------------------------------------------------------- one song

@dataclass
class Song:
    """One song's tracks as :func:`read_song` returns them.

    Attributes:
        tracks: ``(tracks, 2, samples)`` float32 at ``sample_rate``.
        names, stems, files: per track, in the order of ``tracks`` (stems: stem classes).
        sample_rate: Hz (the files' own rate unless another was asked).
        groups: ``{group: [track name, ...]}`` of the groups file; ``None`` without one.
    """

    tracks: np.ndarray
    names: list[str]
    stems: list[str]
    files: list[Path]
    sample_rate: int
    groups: dict[str, list[str]] | None


def song_files(folder: Path, exclude: tuple[Path, ...] = ()) -> list[Path]:
    """The audio files directly in ``folder`` (one song's tracks), sorted, but those in ``exclude``.

    Raises:
        DatasetError: ``folder`` is missing or a file, holds no audio file (the message says the
            layout), or holds song folders instead of tracks.
    """
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DatasetError(f"tracks folder {folder} {problem}; pass the folder of one song's track files "
                           f"({folder}/kick.wav, {folder}/bass.wav, ...)")
    skip = {p.resolve() for p in exclude}
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_audio_name(p.name) and p.resolve() not in skip)
    if files:
        return files
    nested = sorted(p.name for p in folder.iterdir() if p.is_dir() and any(is_audio_name(q.name) for q in p.iterdir()))
    if nested:
        raise DatasetError(f"{folder} holds song folders ({', '.join(nested[:4])}), not track files; pass one song's "
                           f"folder, e.g. --tracks {folder / nested[0]}")
    raise DatasetError(f"no audio files in {folder}: mixrep reads one song's tracks as files in one folder "
                       f"({folder}/kick.wav, {folder}/bass.wav, ...; {', '.join(AUDIO_EXTENSIONS)})")


def check_channels(path: Path) -> tuple[float, int, int]:
    """``(seconds, sample_rate, channels)`` of ``path``'s header.

    Raises:
        AudioReadError: unreadable, or more than two channels (with the remedy).
    """
    seconds, rate, channels = audio_info(path)
    if channels > 2:
        raise AudioReadError(channels_remedy(path, channels))
    return seconds, rate, channels


class _OneSong(FileMultitrackSource):
    """One song folder's tracks, through the checks every multitrack reader makes."""

    def __init__(self, folder: Path, tracks: list[InstrumentTrack], sample_rate: int, min_seconds: float) -> None:
        super().__init__(folder, sample_rate, min_seconds, False, LENGTH_TOLERANCE_SECONDS, "song folder")
        self._add_song(folder.name, folder, tracks, "train", {"title": folder.name})
        self._finish(1)


def read_song(folder: Path, groups_path: Path | None = None, sample_rate: int | None = None,
              exclude: tuple[Path, ...] = (), min_seconds: float = 0.0) -> Song:
    """The one song in ``folder`` (see the module docstring).

    Args:
        folder: the song folder.
        groups_path: its groups file; ``None``: the folder's own ``groups.json`` if there is one.
        sample_rate: the rate to read at (Hz); ``None``: the files' own rate.
        exclude: files of the folder that are not tracks (a mix kept beside them).
        min_seconds: the shortest usable song.

    Raises:
        DatasetError: not a folder of one song's tracks; tracks that disagree in sample rate or
            length (naming the files); a groups file that is bad or names tracks that are not there.
        AudioReadError: a file that cannot be decoded, has more than two channels, or holds
            corrupt samples.
    """
    files = song_files(folder, exclude)
    native_rate = check_channels(files[0])[1]
    for path in files[1:]:
        check_channels(path)
    rate = native_rate if sample_rate is None else sample_rate
    names = unique_names([p.stem for p in files])
    if groups_path is None and (folder / GROUPS_FILE).is_file():
        groups_path = folder / GROUPS_FILE
    groups = None if groups_path is None else track_groups(read_groups(groups_path), files, names, groups_path)
    classes = [s or "other" for s in stem_classes(names, groups or {})]
    tracks = [InstrumentTrack(n, f.stem, s, f, is_drum=s == "drums") for f, n, s in zip(files, names, classes)]
    song = _OneSong(folder, tracks, rate, min_seconds)
    seconds = song.tracks()[0].duration_seconds
    audio = np.empty((len(files), 2, int(round(seconds * rate))), dtype=np.float32)
    for i, path in enumerate(files):
        audio[i] = read_segment(path, 0.0, seconds, rate)
        check_sample_range(audio[i], path, rate)
    return Song(audio, names, classes, files, rate, groups)


def read_song_and_mix(folder: Path, mix_path: Path, sample_rate: int, groups_path: Path | None = None
                      ) -> tuple[Song, np.ndarray]:
    """A song's tracks (:func:`read_song`) and its mix ``(2, samples)``, both zero-padded to the longer.

    Raises:
        DatasetError: a missing mix, or tracks and mix whose lengths differ by more than
            :data:`~mixrep.audio.multitrack_files.LENGTH_TOLERANCE_SECONDS`; the errors of :func:`read_song`.
    """
    if not mix_path.is_file():
        raise DatasetError(f"mix file {mix_path} {'is a folder' if mix_path.exists() else 'does not exist'}; "
                           "pass the target mix's audio file with --mix")
    song = read_song(folder, groups_path, sample_rate, exclude=(mix_path,))
    check_channels(mix_path)
    mix = read_segment(mix_path, 0.0, None, sample_rate)
    check_sample_range(mix, mix_path, sample_rate)
    seconds = song.tracks.shape[-1] / sample_rate, mix.shape[-1] / sample_rate
    if abs(seconds[0] - seconds[1]) > LENGTH_TOLERANCE_SECONDS:
        raise DatasetError(f"the tracks in {folder} last {seconds[0]:.2f} s but the mix {mix_path} lasts "
                           f"{seconds[1]:.2f} s: they must come from the same edit (trim or pad them to one length)")
    length = max(song.tracks.shape[-1], mix.shape[-1])
    song.tracks = np.pad(song.tracks, ((0, 0), (0, 0), (0, length - song.tracks.shape[-1])))
    return song, np.pad(mix, ((0, 0), (0, length - mix.shape[-1])))

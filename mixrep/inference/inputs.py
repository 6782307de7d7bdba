"""Reading what ``mixrep mix`` mixes: one song's tracks at their own rate, and the reference.

Every check that can fail runs on the files' headers before anything is decoded or a model runs:
the tracks folder holds one song's audio files directly, each mono or stereo, all at one sample
rate and one length; the reference (stems or mix) lasts at least the encoder's minimum. Decoding
then checks each file for corrupt samples (more than
:data:`~mixrep.audio.io.MAX_SAMPLE_DBFS` above full scale), and the reference's loudness (a silent
reference has nothing to match). Errors name the file and what to do.

Shape:
    tracks ``(tracks, 2, samples)`` float32 at the tracks' rate (one array, filled track by track:
    no second full-length copy); reference stems ``(4, 2, samples)`` float32 at the rate asked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixrep.audio.io import audio_info, channels_remedy, check_sample_range, read_segment
from mixrep.constants import AUDIO_EXTENSIONS, MIN_EMBED_SECONDS, STEMS
from mixrep.errors import AudioReadError, DatasetError
from mixrep.files import require_stem_files


@dataclass
class Song:
    """One song's tracks as :func:`read_song` returns them.

    Attributes:
        tracks: ``(tracks, 2, samples)`` float32 at ``sample_rate``.
        names, stems, files: per track, in the order of ``tracks``.
        sample_rate: the files' own rate, Hz.
    """

    tracks: np.ndarray
    names: list[str]
    stems: list[str]
    files: list[Path]
    sample_rate: int


def _is_audio(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def song_files(folder: Path) -> list[Path]:
    """The audio files directly in ``folder`` (one song's tracks), sorted.

    Raises:
        DatasetError: ``folder`` is missing or a file, holds no audio file (the message says the
            layout ``mixrep mix`` reads), or holds song folders instead of tracks.
    """
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DatasetError(f"tracks folder {folder} {problem}; pass the folder of one song's track files "
                           f"({folder}/kick.wav, {folder}/bass.wav, ...)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and _is_audio(p.name))
    if files:
        return files
    nested = sorted(p.name for p in folder.iterdir() if p.is_dir() and any(_is_audio(q.name) for q in p.iterdir()))
    if nested:
        raise DatasetError(f"{folder} holds song folders ({', '.join(nested[:4])}), not track files; pass one song's "
                           f"folder, e.g. --tracks {folder / nested[0]}")
    raise DatasetError(f"no audio files in {folder}: mixrep mix reads one song's tracks as files in one folder "
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


def read_song(folder: Path, groups_path: Path | None = None) -> Song:
    """The one song in ``folder`` at its own sample rate.

    Track names come from the file names; stem classes from ``groups_path``, the folder's
    ``groups.json`` or the names (:class:`~mixrep.data.multitrack_sources.TrackFolderSource`).

    Raises:
        DatasetError: not a folder of one song's tracks, tracks that disagree in rate or length,
            a groups file that is bad or names tracks that are not there.
        AudioReadError: a file that cannot be decoded, has more than two channels, or holds
            corrupt samples.
    """
    from mixrep.data.multitrack_sources import TrackFolderSource, _read_groups

    files = song_files(folder)
    rate = check_channels(files[0])[1]
    for path in files[1:]:
        check_channels(path)
    source = TrackFolderSource(folder, sample_rate=rate, min_seconds=1.0, val_fraction=0.0, test_fraction=0.0)
    songs = source.tracks()
    if len(songs) != 1:
        raise DatasetError(f"{folder} holds {len(songs)} songs ({', '.join(s.track_id for s in songs[:4])}...); "
                           f"pass the folder of one song's track files")
    song = source.multitrack(songs[0])
    names, stems = list(song.names), list(song.stems)
    if groups_path is not None:
        if not groups_path.is_file():
            raise DatasetError(f"groups file {groups_path} does not exist")
        groups = _read_groups(groups_path)
        by_file = {t.path.name: t.name for t in song.tracks}
        missing = [k for k in groups if k not in names and k not in by_file]
        if missing:
            raise DatasetError(f"{groups_path} names tracks that are not in {folder}: {missing}; tracks: {names}")
        for key, stem in groups.items():
            stems[names.index(by_file.get(key, key))] = stem
    seconds = songs[0].duration_seconds
    paths = [t.path for t in song.tracks]
    tracks = np.empty((len(paths), 2, int(round(seconds * rate))), dtype=np.float32)
    for i, path in enumerate(paths):
        tracks[i] = read_segment(path, 0.0, seconds, rate)
        check_sample_range(tracks[i], path, rate)
    return Song(tracks, names, stems, paths, rate)


def check_reference_files(paths: list[Path]) -> None:
    """Header checks of the reference's files: readable, mono or stereo, at least
    :data:`~mixrep.constants.MIN_EMBED_SECONDS` long.

    Raises:
        AudioReadError, DatasetError: naming the file.
    """
    for path in paths:
        seconds = check_channels(path)[0]
        if seconds < MIN_EMBED_SECONDS:
            raise DatasetError(f"the reference {path} lasts {seconds:.2f} s; the style encoder needs at least "
                               f"{MIN_EMBED_SECONDS:g} s: pass a longer reference")


def reference_stem_files(folder: Path) -> tuple[Path, ...]:
    """The reference's stem files in :data:`~mixrep.constants.STEMS` order, header-checked."""
    paths = require_stem_files(folder)
    check_reference_files(list(paths))
    return paths


def read_reference_stems(folder: Path, sample_rate: int) -> np.ndarray:
    """The reference stems in ``folder`` ``(4, 2, samples)`` float32 at ``sample_rate``, cut to the
    shortest stem."""
    paths = reference_stem_files(folder)
    seconds = min(audio_info(p)[0] for p in paths)
    stems = np.empty((len(STEMS), 2, int(round(seconds * sample_rate))), dtype=np.float32)
    for i, path in enumerate(paths):
        stems[i] = read_segment(path, 0.0, seconds, sample_rate)
        check_sample_range(stems[i], path, sample_rate)
    return stems


def read_reference_mix(path: Path, sample_rate: int) -> np.ndarray:
    """A reference mix ``(2, samples)`` float32 at ``sample_rate``, header-checked first."""
    check_reference_files([path])
    audio = read_segment(path, 0.0, None, sample_rate)
    check_sample_range(audio, path, sample_rate)
    return audio

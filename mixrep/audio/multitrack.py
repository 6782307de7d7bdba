"""Multitracks as a first-class notion: a song is K dry tracks plus their grouping into stems.

Each track has a name (unique within the song: ``kick``, ``bass``, ``piano-2``), an instrument
(the dataset's label or a General-MIDI program name) and a stem class (drums, bass, other or
vocals). A :class:`MultitrackSource` reads any span of a song's tracks; its ``read_stems`` sums
them into the four stems, so every consumer of stems keeps working:

    >>> song = source.multitrack(track)                        # Multitrack: names, instruments, stems
    >>> source.read_tracks(track, start_seconds, seconds)      # (tracks, channels=2, samples)
    >>> source.read_stems(track, start_seconds, seconds)       # (stems=4, channels=2, samples)

Implemented by the synthetic corpus, the soundfont corpus and the dataset readers of
:mod:`mixrep.datasets.multitrack_sources` (Slakh2100, MedleyDB, MoisesDB, folders of tracks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from mixrep.audio.stems import STEM_INDEX, stem_index
from mixrep.constants import CHANNELS
from mixrep.tracks import Source, Track


@dataclass(frozen=True)
class InstrumentTrack:
    """One dry track of a multitrack song.

    Attributes:
        name: unique within the song (also the key of its channel strip in a mix style).
        instrument: what plays (dataset label, GM program name, ``kick``...).
        stem: stem class, one of :data:`~mixrep.constants.STEMS`.
        path: the audio file, for file-based sources.
        channels: 1 (mono, read as ``L = R``) or 2.
        program: General-MIDI program (0-127) where known.
        is_drum: a percussion track.
    """

    name: str
    instrument: str
    stem: str
    path: Path | None = None
    channels: int = 2
    program: int | None = None
    is_drum: bool = False
    metadata: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        stem_index(self.stem)  # raises on an unknown stem class

    def to_dict(self) -> dict:
        return {"name": self.name, "instrument": self.instrument, "stem": self.stem,
                "path": None if self.path is None else str(self.path), "channels": self.channels,
                "program": self.program, "is_drum": self.is_drum, **({"metadata": self.metadata} if self.metadata else {})}


@dataclass(frozen=True)
class Multitrack:
    """A song's tracks and their stem grouping (``tracks[i]`` sums into ``stems[i]``)."""

    song_id: str
    tracks: tuple[InstrumentTrack, ...]

    def __post_init__(self) -> None:
        names = [t.name for t in self.tracks]
        if len(set(names)) != len(names):
            raise ValueError(f"track names of {self.song_id} must be unique, got {names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tracks)

    @property
    def stems(self) -> tuple[str, ...]:
        """Stem class of each track."""
        return tuple(t.stem for t in self.tracks)

    @property
    def grouping(self) -> tuple[int, ...]:
        """Stem index (STEMS order) of each track."""
        return tuple(STEM_INDEX[t.stem] for t in self.tracks)

    def __len__(self) -> int:
        return len(self.tracks)

    def to_dict(self) -> dict:
        return {"song_id": self.song_id, "tracks": [t.to_dict() for t in self.tracks]}


@runtime_checkable
class MultitrackSource(Source, Protocol):
    """A :class:`~mixrep.tracks.Source` whose songs are multitracks."""

    def multitrack(self, track: Track) -> Multitrack:
        """The tracks of a song of :meth:`tracks`."""
        ...

    def read_tracks(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        """``(tracks, channels=2, samples)`` float32 for the span at ``self.sample_rate``, in
        :meth:`multitrack` order, zero-padded past the end."""
        ...


def slice_span(audio: np.ndarray, start_seconds: float, duration_seconds: float, sample_rate: int) -> np.ndarray:
    """A zero-padded span of in-memory audio along the last axis.

    Shape:
        ``(..., samples)`` -> ``(..., round(duration_seconds * sample_rate))``.
    """
    if start_seconds < 0 or duration_seconds < 0:
        raise ValueError(f"start and duration must be >= 0, got {start_seconds}, {duration_seconds}")
    start = int(round(start_seconds * sample_rate))
    length = int(round(duration_seconds * sample_rate))
    out = np.zeros((*audio.shape[:-1], length), dtype=np.float32)
    piece = audio[..., start: start + length]
    out[..., : piece.shape[-1]] = piece
    return out


def check_tracks_shape(tracks: np.ndarray, song: Multitrack) -> np.ndarray:
    """Assert ``(len(song), 2, samples)``; returns the array."""
    if tracks.ndim != 3 or tracks.shape[:2] != (len(song), CHANNELS):
        raise ValueError(f"expected ({len(song)}, {CHANNELS}, samples) tracks for {song.song_id}, got {tracks.shape}")
    return tracks

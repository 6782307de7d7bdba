"""Stem classes and the grouping of a song's tracks into the four stems.

A multitrack song has K tracks (kick, snare, bass, piano, lead vocal...), each belonging to one
stem class of :data:`~mixrep.constants.STEMS`. Wherever four stems are needed, the tracks of a
class are summed (:func:`sum_to_stems`); a class without tracks is silence.

Shape:
    tracks ``(tracks, channels=2, samples)`` -> stems ``(stems=4, channels=2, samples)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixrep.constants import CHANNELS, STEMS

STEM_INDEX: dict[str, int] = {name: i for i, name in enumerate(STEMS)}
"""Position of each stem class in :data:`~mixrep.constants.STEMS` order."""


def stem_index(stem: str | int) -> int:
    """Index in STEMS order of a stem class given by name or index.

    Raises:
        ValueError: not one of drums, bass, other, vocals (or 0..3).
    """
    if isinstance(stem, (int, np.integer)) and 0 <= int(stem) < len(STEMS):
        return int(stem)
    if isinstance(stem, str) and stem in STEM_INDEX:
        return STEM_INDEX[stem]
    raise ValueError(f"unknown stem class {stem!r}; use one of {', '.join(STEMS)}")


def sum_to_stems(tracks: np.ndarray, stems: Sequence[str | int]) -> np.ndarray:
    """Sum each track into its stem class.

    Args:
        tracks: the song's tracks.
        stems: stem class (name or index) of each track.

    Returns:
        ``(stems=4, channels=2, samples)`` float32; a class without tracks is zeros.

    Raises:
        ValueError: shapes disagree or a stem class is unknown.

    Shape:
        ``(tracks, channels=2, samples)`` -> ``(4, 2, samples)``.
    """
    tracks = np.asarray(tracks, dtype=np.float32)
    if tracks.ndim != 3 or tracks.shape[1] != CHANNELS:
        raise ValueError(f"expected tracks of shape (tracks, {CHANNELS}, samples), got {tracks.shape}")
    if len(stems) != tracks.shape[0]:
        raise ValueError(f"{tracks.shape[0]} tracks but {len(stems)} stem classes")
    out = np.zeros((len(STEMS), CHANNELS, tracks.shape[-1]), dtype=np.float32)
    for track, stem in zip(tracks, stems):
        out[stem_index(stem)] += track
    return out

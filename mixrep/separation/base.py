"""Protocols of the separation layer.

A :class:`Separator` turns mixtures into stems; a :class:`TrackStems` reads the stems of any span
of a :class:`~mixrep.tracks.Track`, whether they come from files (:class:`OracleStems`) or from
a separator through the on-disk stem cache.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from mixrep.audio.io import read_segment
from mixrep.constants import SAMPLE_RATE, STEMS
from mixrep.tracks import Track
from mixrep.errors import DatasetError


@runtime_checkable
class Separator(Protocol):
    """Splits stereo mixtures into the four stems.

    Attributes:
        name: identifies the model and weights; part of every stem-cache key.
        sample_rate: rate in Hz the separator expects and returns.
    """

    name: str
    sample_rate: int

    def separate(self, mix: torch.Tensor) -> torch.Tensor:
        """Separate a batch of mixtures.

        Shape:
            mix: ``(batch, channels=2, samples)`` at ``sample_rate``.
            returns: ``(batch, stems=4, channels=2, samples)`` in :data:`~mixrep.constants.STEMS` order.
        """
        ...


@runtime_checkable
class TrackStems(Protocol):
    """Reads stems for a span of a track."""

    sample_rate: int

    def read(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        """``(stems=4, channels=2, samples)`` float32 for the span at ``sample_rate``."""
        ...


class OracleStems:
    """Ground-truth stems read from one file per stem (``track.stem_paths``, STEMS order).

    Each stem is read segment-wise with :func:`~mixrep.audio.io.read_segment`, so a crop decodes
    only the crop.
    """

    name = "oracle"

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate

    def read(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        if track.stem_paths is None or len(track.stem_paths) != len(STEMS):
            raise DatasetError(
                f"track {track.track_id} has no stem files; OracleStems needs one file per stem "
                f"({', '.join(STEMS)}). Use a separator for mixtures."
            )
        return np.stack(
            [read_segment(p, start_seconds, duration_seconds, self.sample_rate) for p in track.stem_paths]
        )

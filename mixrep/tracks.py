"""What a source yields: tracks, and a record of the tracks it had to skip.

These contracts sit at the bottom of the package (with the constants) because both the data
layer (sources) and the separation layer (stem readers) use them; see :mod:`mixrep`.

Every source (synthetic corpus, FMA, a folder of mixes, a folder of stems) lists
:class:`Track` records and reads stems for any span of a track:

    >>> source.tracks()                                   # list[Track]
    >>> source.read_stems(track, start_seconds, seconds)  # (stems=4, channels=2, samples) float32

Sources of mixtures (FMA, audio folders) obtain stems through a separator and the stem cache;
sources with stems read them directly.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

SPLITS = ("train", "val", "test")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Track:
    """One song of a source.

    Attributes:
        track_id: unique within the source (FMA id, relative path, song name, ``synth-0007``).
        duration_seconds: length of the track in seconds.
        split: ``"train"``, ``"val"`` or ``"test"``.
        audio_path: the mixture file, for sources of mixtures.
        stem_paths: one file per stem in :data:`mixrep.constants.STEMS` order, for stem sources.
        metadata: free-form fields for display (genre, title, tempo, key...).
    """

    track_id: str
    duration_seconds: float
    split: str = "train"
    audio_path: Path | None = None
    stem_paths: tuple[Path, ...] | None = None
    metadata: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class SkipLog:
    """Tracks a source skipped, with the reason, counted by kind of problem.

    Each skip is logged once at WARNING level; :meth:`summary` gives the counts.
    """

    entries: list[tuple[str, str, str]] = field(default_factory=list)  # (track, kind, reason)

    def skip(self, track: str | Path, kind: str, reason: str) -> None:
        """Record and log one skipped track. ``kind`` is a short tag: corrupt, silent, short..."""
        self.entries.append((str(track), kind, reason))
        log.warning("skipping %s (%s): %s", track, kind, reason)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(kind for _, kind, _ in self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    def summary(self) -> str:
        if not self.entries:
            return "no tracks skipped"
        parts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))
        return f"{len(self.entries)} tracks skipped ({parts})"


@runtime_checkable
class Source(Protocol):
    """A collection of songs that can be read as separated stems."""

    name: str
    sample_rate: int
    skipped: SkipLog

    def tracks(self, split: str | None = None) -> list[Track]:
        """The usable tracks, optionally of one split."""
        ...

    def read_stems(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        """``(stems=4, channels=2, samples)`` float32 for the span, at ``self.sample_rate``."""
        ...

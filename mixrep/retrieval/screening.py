"""Which files an index leaves out, and why: too short, silent, or failing to embed.

Every per-file problem of a build becomes a :class:`~mixrep.retrieval.store.SkippedFile` with a short
``kind`` (:func:`classify_failure`). Kinds about the file itself (``corrupt``, ``short``,
``silent``, ``invalid``) are final until the file changes; the :data:`RETRY_KINDS` say nothing
about the file (its permissions, the separator, an encoder error), so a rebuild tries those files
again.

Silence: a silent track (digital silence, or a level at or below
:data:`mixrep.constants.SILENCE_RMS_DB`, the triplet dataset's threshold) still gets a unit-norm
embedding, and that embedding is meaningless: it matches unrelated tracks at a high cosine. A
track is probed rather than decoded whole: :data:`PROBES` spans of :data:`PROBE_SECONDS` spread
evenly over it are read at the file's own rate (for stems, their sum: the mix), and it is silent
when every span is. Probing stops at the first audible span, so an ordinary track costs one short
read.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np

from mixrep.audio.io import audio_info, read_segment
from mixrep.audio.primitives import rms_db
from mixrep.constants import MIN_EMBED_SECONDS, SILENCE_RMS_DB
from mixrep.errors import AudioReadError, DatasetError, MixrepError, SeparationError

log = logging.getLogger(__name__)

UNUSABLE_KIND = "unusable"
"""Skip kind of a track whose stored embedding turned out zero or not finite (a damaged store row)."""
RETRY_KINDS: frozenset[str] = frozenset({"unreadable", "separation", "failed", UNUSABLE_KIND})
"""Skip kinds a rebuild retries even for unchanged files: the reason was not the file's content."""

PROBES = 8
PROBE_SECONDS = 1.0


class FileSkip(MixrepError):
    """A file left out on purpose (``kind`` ``short`` or ``silent``), with the reason as message."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def classify_failure(error: Exception) -> tuple[str, str]:
    """``(kind, reason)`` of a per-file failure (see the module docs for the kinds)."""
    if isinstance(error, FileSkip):
        return error.kind, str(error)
    if isinstance(error, AudioReadError):
        return "corrupt", str(error)
    if isinstance(error, SeparationError):
        return "separation", str(error)
    if isinstance(error, DatasetError):
        return "invalid", str(error)
    if isinstance(error, OSError):
        return "unreadable", f"{type(error).__name__}: {error}"
    return "failed", f"{type(error).__name__}: {error}"


def loudest_probe_db(files: Sequence[str | os.PathLike], stop_above_db: float = SILENCE_RMS_DB) -> float:
    """Loudest RMS level (dBFS) of the probed spans of a track, stopping once one exceeds ``stop_above_db``.

    Args:
        files: one audio file, or the stem files of one song (their sum, the mix, is measured).
        stop_above_db: return as soon as a span is louder than this.

    Raises:
        mixrep.errors.AudioReadError: a file cannot be opened or decoded.
    """
    infos = [audio_info(f) for f in files]
    seconds, sample_rate = min(i[0] for i in infos), infos[0][1]
    if seconds <= PROBES * PROBE_SECONDS:
        spans = [(0.0, seconds)]
    else:
        spans = [(float(s), PROBE_SECONDS) for s in np.linspace(0.0, seconds - PROBE_SECONDS, PROBES)]
    loudest = -np.inf
    for start, length in spans:
        loudest = max(loudest, rms_db(sum(read_segment(f, start, length, sample_rate) for f in files)))
        if loudest > stop_above_db:
            break
    return float(loudest)


def is_silent(files: Sequence[str | os.PathLike]) -> bool:
    """Whether every probed span of a track is at or below :data:`~mixrep.constants.SILENCE_RMS_DB`."""
    return loudest_probe_db(files) <= SILENCE_RMS_DB


SILENT_REASON = (f"silent (every probed span is at or below {SILENCE_RMS_DB:g} dBFS RMS): its embedding would "
                 f"match unrelated tracks")


def screen_track(files: Sequence[str | os.PathLike], min_seconds: float = MIN_EMBED_SECONDS,
                 include_silent: bool = False) -> float:
    """Check a track before embedding it; returns its duration in seconds (the shortest file's).

    Args:
        files: one audio file, or the stem files of one song.
        min_seconds: shorter tracks are refused (``short``).
        include_silent: keep silent tracks (with a warning) instead of refusing them (``silent``).

    Raises:
        FileSkip: the track is too short or silent.
        mixrep.errors.AudioReadError: a file cannot be opened or decoded.
    """
    seconds = min(audio_info(f)[0] for f in files)
    if seconds < min_seconds:
        raise FileSkip("short", f"{seconds:.2f} s is shorter than the {min_seconds:g} s an embedding needs")
    if is_silent(files):
        if not include_silent:
            raise FileSkip("silent", SILENT_REASON)
        log.warning("%s is %s; indexed anyway (include_silent)", files[0], SILENT_REASON)
    return seconds

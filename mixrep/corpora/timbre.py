"""Timbre jitter: a random static EQ per track that belongs to the song, not to its mix.

A soundfont's instruments, or a synth's oscillators, give every song a small set of timbres; an
encoder trained on them can learn to tell songs (or soundfonts) apart by timbre and call that
style. Jitter widens the set: each time a song's clips are read, every track goes through its own
random gentle EQ (low shelf, one peak, high shelf), the same for all clips read together and for
every style they are then mixed in. Within a triplet the anchor and its negative (one clip, two
styles) share that timbre and the positive (another song) has its own, so timbre is content that
a style embedding has to ignore, like the notes.

Shape:
    clips of ``(tracks, channels=2, samples)``; one EQ per track, shared by the clips.
"""

from __future__ import annotations

import numpy as np

from mixrep.styles.mix_style import EqRanges, equalise, sample_eq
from mixrep.styles.spaces import Clip


def timbre_ranges(jitter_db: float) -> EqRanges:
    """Shelves and one peak of gains uniform in ``+- jitter_db`` (broad Q, 0.5 to 2), always on."""
    if jitter_db < 0:
        raise ValueError(f"timbre jitter must be >= 0 dB, got {jitter_db}")
    return EqRanges(prob=1.0, shelf_gain_db=jitter_db, peaks=1, peak_gain_db=jitter_db, q_range=(0.5, 2.0))


def jitter_timbre(clips: list[Clip], ranges: EqRanges, rng: np.random.Generator, sample_rate: int) -> list[Clip]:
    """``clips`` of one song with one random EQ per track (drawn from ``ranges``) applied to all."""
    if not clips:
        return clips
    bands = [sample_eq(ranges, rng) for _ in clips[0].names]
    out = []
    for clip in clips:
        audio = np.stack([equalise(track, eq, sample_rate) if track.any() else track
                          for track, eq in zip(clip.audio, bands)])
        out.append(Clip(audio.astype(np.float32), clip.names, clip.stems))
    return out

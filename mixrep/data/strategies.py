"""How anchor / positive / negative stems are drawn: pluggable pair strategies.

A strategy gets the dataset's source, its track list, the index of the anchor track and a
seeded generator, and returns raw stems for the three sides. Two strategies exist:

- :class:`SameSongStrategy` (the prototype's): the positive is another, non-overlapping clip of
  the same song; the negative is the anchor's stems re-mixed by a random style chain. A model can
  satisfy it partly by recognising the song, since anchor and positive share its content.
- :class:`SameChainStrategy`: rules content out. Anchor and positive are clips of two *different*
  songs processed by one identical random chain; the negative is the anchor's clip under another
  chain. Only the mixing treatment is shared by the positive pair.

:class:`MixedStrategy` draws one of several strategies per item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mixrep.audio.augment import AugmentConfig, StyleAugmenter, apply_chain, sample_chain
from mixrep.tracks import Track


@dataclass
class TripletStems:
    """Raw stems of one triplet, each ``(stems=4, channels=2, samples)`` float32."""

    anchor: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    info: dict = field(default_factory=dict)


class ClipReader(Protocol):
    """Reads random clips of a track (the dataset provides it; it handles silence and retries)."""

    def __call__(self, track: Track, rng: np.random.Generator, count: int = 1) -> list[np.ndarray]:
        """``count`` (1 or 2) mutually non-overlapping clips, each ``(stems=4, channels=2, samples)``."""
        ...


class PairStrategy(Protocol):
    """Draws the raw stems of a triplet."""

    name: str

    def draw(self, tracks: list[Track], index: int, read_clip: ClipReader, rng: np.random.Generator,
             sample_rate: int) -> TripletStems:
        ...


def non_overlapping_starts(duration_seconds: float, clip_seconds: float, rng: np.random.Generator
                           ) -> tuple[float, float]:
    """Two clip starts whose clips do not overlap, uniformly over all such ordered pairs.

    Draws two points in ``[0, duration - 2 * clip]``, sorts them and shifts the later one by one
    clip length; the order of the pair is then randomised.

    Raises:
        ValueError: the track is shorter than two clips.
    """
    slack = duration_seconds - 2 * clip_seconds
    if slack < 0:
        raise ValueError(f"a {duration_seconds:.2f} s track cannot hold two {clip_seconds:.2f} s clips")
    first, second = sorted(rng.uniform(0.0, slack, size=2))
    starts = (float(first), float(second) + clip_seconds)
    return starts if rng.random() < 0.5 else starts[::-1]


class SameSongStrategy:
    """Positive: another non-overlapping clip of the same song; negative: the anchor re-mixed."""

    name = "same_song"

    def __init__(self, augment: AugmentConfig | None = None) -> None:
        self.augmenter = StyleAugmenter(augment or AugmentConfig())

    def draw(self, tracks, index, read_clip, rng, sample_rate):
        track = tracks[index]
        anchor, positive = read_clip(track, rng, count=2)
        negative, chain = self.augmenter(anchor, rng, sample_rate)
        return TripletStems(anchor, positive, negative,
                            {"strategy": self.name, "track": track.track_id, "negative_chain": chain.to_dict()})


class SameChainStrategy:
    """Positive: another song under the anchor's chain; negative: the anchor's clip under another chain."""

    name = "same_chain"

    def __init__(self, augment: AugmentConfig | None = None) -> None:
        self.config = augment or AugmentConfig()
        self.augmenter = StyleAugmenter(self.config)

    def draw(self, tracks, index, read_clip, rng, sample_rate):
        if len(tracks) < 2:
            raise ValueError("the same_chain strategy needs at least two songs")
        track = tracks[index]
        other_index = int(rng.integers(len(tracks) - 1))
        other = tracks[other_index + (other_index >= index)]
        (anchor_raw,) = read_clip(track, rng)
        (other_raw,) = read_clip(other, rng)
        chain = sample_chain(self.config, rng)
        anchor = apply_chain(anchor_raw, chain, sample_rate)
        positive = apply_chain(other_raw, chain, sample_rate)
        negative, negative_chain = self.augmenter(anchor_raw, rng, sample_rate)
        if np.allclose(negative, anchor, atol=1e-4):
            # The second chain happened to reproduce the first: push it off by a gain change.
            negative = negative * np.float32(10 ** (-6 / 20))
        return TripletStems(anchor, positive, negative, {
            "strategy": self.name, "track": track.track_id, "positive_track": other.track_id,
            "chain": chain.to_dict(), "negative_chain": negative_chain.to_dict(),
        })


class MixedStrategy:
    """Picks one strategy per item with the given probabilities."""

    name = "mixed"

    def __init__(self, strategies: list[PairStrategy], weights: list[float] | None = None) -> None:
        self.strategies = strategies
        weights = np.asarray(weights if weights is not None else [1.0] * len(strategies), dtype=float)
        self.probabilities = weights / weights.sum()

    def draw(self, tracks, index, read_clip, rng, sample_rate):
        choice = int(rng.choice(len(self.strategies), p=self.probabilities))
        return self.strategies[choice].draw(tracks, index, read_clip, rng, sample_rate)


STRATEGIES = ("same_song", "same_chain", "mixed")


def make_strategy(name: str, augment: AugmentConfig | None = None, same_chain_weight: float = 0.5) -> PairStrategy:
    """Build a strategy by name: ``same_song``, ``same_chain`` or ``mixed``."""
    if name == "same_song":
        return SameSongStrategy(augment)
    if name == "same_chain":
        return SameChainStrategy(augment)
    if name == "mixed":
        return MixedStrategy([SameSongStrategy(augment), SameChainStrategy(augment)],
                             [1.0 - same_chain_weight, same_chain_weight])
    raise ValueError(f"unknown pair strategy {name!r}; choose one of {', '.join(STRATEGIES)}")

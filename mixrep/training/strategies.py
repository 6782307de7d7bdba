"""How anchor / positive / negative stems are drawn: pluggable pair strategies.

A strategy gets the dataset's track list, the index of the anchor track, a clip reader and a
seeded generator, and returns raw stems for the three sides. Styles come from a style space
(:mod:`mixrep.styles.spaces`: the ``chains`` of :mod:`mixrep.styles.chains` or the ``mix_style``
space of :mod:`mixrep.styles.mix_style`). Two strategies exist:

- :class:`SameSongStrategy` (the prototype's): the positive is another, non-overlapping clip of
  the same song in the song's reference mix; the negative is the anchor's clip under another
  style. A model can satisfy it partly by recognising the song, since anchor and positive share
  its content.
- :class:`SameChainStrategy`: rules content out. Anchor and positive are clips of two *different*
  songs mixed in one identical drawn style; the negative is the anchor's clip under another
  style. Only the mixing treatment is shared by the positive pair.
- :class:`CrossedStrategy`: ``same_chain`` triplets two at a time. Two songs A, B crossed with two
  styles s, t give four mixes and two triplets, ``(A s, B s, A t)`` and ``(B t, A t, B s)``: two
  mixes per triplet instead of three, the costly part of a triplet on a CPU.

:class:`MixedStrategy` draws one of several strategies per item.

A strategy draws ``group_size`` triplets at once (1, or 2 for ``crossed``);
:class:`~mixrep.training.triplets.TripletDataset` gives each of them its own item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mixrep.styles.spaces import ChainStyles, Clip, StyleSpace, track_names
from mixrep.tracks import Track


@dataclass
class TripletStems:
    """Raw stems of one triplet, each ``(stems=4, channels=2, samples)`` float32."""

    anchor: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    info: dict = field(default_factory=dict)
    settings: tuple[tuple[np.ndarray, np.ndarray], ...] | None = None
    """Per side (anchor, positive, negative) the ``(values, mask)`` settings vectors of its style
    (:meth:`~mixrep.styles.spaces.StyleSpace.settings`); ``None`` where the style space has none."""


def side_settings(styles: StyleSpace, *sides: tuple[Clip, object]) -> tuple[tuple[np.ndarray, np.ndarray], ...] | None:
    """The settings vectors of ``(clip, style)`` per side, or ``None`` when the style space has none."""
    vectors = [styles.settings(clip, style) for clip, style in sides]
    return None if any(v is None for v in vectors) else tuple(vectors)


class ClipReader(Protocol):
    """Reads random clips of a track (the dataset provides it; it handles silence and retries)."""

    def __call__(self, track: Track, rng: np.random.Generator, count: int = 1) -> list[Clip]:
        """``count`` (1 or 2) mutually non-overlapping clips of one song."""
        ...


class PairStrategy(Protocol):
    """Draws the raw stems of a triplet.

    Attributes:
        name: the strategy's name.
        styles: the style space its styles come from (decides whether clips are read per track).
        group_size: triplets per :meth:`draw`.
    """

    name: str
    styles: StyleSpace
    group_size: int

    def draw(self, tracks: list[Track], index: int, read_clip: ClipReader, rng: np.random.Generator,
             sample_rate: int) -> list[TripletStems]:
        """``group_size`` triplets whose (first) anchor is ``tracks[index]``."""
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


def _distinct_negative(negative: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    if np.allclose(negative, anchor, atol=1e-4):
        # The second style happened to reproduce the first: push it off by a gain change.
        return negative * np.float32(10 ** (-6 / 20))
    return negative


class SameSongStrategy:
    """Positive: another non-overlapping clip of the same song (its reference mix); negative: the
    anchor's clip under another style."""

    name = "same_song"
    group_size = 1

    def __init__(self, styles: StyleSpace | None = None) -> None:
        self.styles = styles if styles is not None else ChainStyles()

    def draw(self, tracks, index, read_clip, rng, sample_rate):
        track = tracks[index]
        anchor_clip, positive_clip = read_clip(track, rng, count=2)
        reference = self.styles.reference(rng, anchor_clip.names)
        anchor = self.styles.apply(anchor_clip, reference, sample_rate)
        positive = self.styles.apply(positive_clip, reference, sample_rate)
        negative, negative_style = self.styles.restyle(anchor_clip, rng, sample_rate)
        return [TripletStems(anchor, positive, _distinct_negative(negative, anchor), {
            "strategy": self.name, "styles": self.styles.name, "track": track.track_id,
            "style": self.styles.describe(reference), "negative_style": self.styles.describe(negative_style)},
            side_settings(self.styles, (anchor_clip, reference), (positive_clip, reference),
                          (anchor_clip, negative_style)))]


class SameChainStrategy:
    """Positive: another song in the anchor's style; negative: the anchor's clip under another style."""

    name = "same_chain"
    group_size = 1

    def __init__(self, styles: StyleSpace | None = None) -> None:
        self.styles = styles if styles is not None else ChainStyles()

    def draw(self, tracks, index, read_clip, rng, sample_rate):
        track, other = tracks[index], _partner(tracks, index, rng, self.name)
        (anchor_clip,) = read_clip(track, rng)
        (other_clip,) = read_clip(other, rng)
        style = self.styles.draw(rng, track_names(anchor_clip, other_clip))
        anchor = self.styles.apply(anchor_clip, style, sample_rate)
        positive = self.styles.apply(other_clip, style, sample_rate)
        negative, negative_style = self.styles.restyle(anchor_clip, rng, sample_rate)
        return [TripletStems(anchor, positive, _distinct_negative(negative, anchor), {
            "strategy": self.name, "styles": self.styles.name, "track": track.track_id,
            "positive_track": other.track_id, "style": self.styles.describe(style),
            "negative_style": self.styles.describe(negative_style)},
            side_settings(self.styles, (anchor_clip, style), (other_clip, style), (anchor_clip, negative_style)))]


def _partner(tracks: list[Track], index: int, rng: np.random.Generator, strategy: str) -> Track:
    """A uniformly drawn song other than ``tracks[index]``."""
    if len(tracks) < 2:
        raise ValueError(f"the {strategy} strategy needs at least two songs")
    other_index = int(rng.integers(len(tracks) - 1))
    return tracks[other_index + (other_index >= index)]


class CrossedStrategy:
    """Two songs crossed with two styles: the ``same_chain`` triplets ``(A s, B s, A t)`` and
    ``(B t, A t, B s)`` from four mixes.

    Each triplet is a ``same_chain`` triplet (positive: the other song in the anchor's style;
    negative: the anchor's song in the other style); the second's anchor is the first's negative's
    partner. ``info["track"]`` is each triplet's anchor song.
    """

    name = "crossed"
    group_size = 2

    def __init__(self, styles: StyleSpace | None = None) -> None:
        self.styles = styles if styles is not None else ChainStyles()

    def draw(self, tracks, index, read_clip, rng, sample_rate):
        track, other = tracks[index], _partner(tracks, index, rng, self.name)
        (clip_a,) = read_clip(track, rng)
        (clip_b,) = read_clip(other, rng)
        names = track_names(clip_a, clip_b)
        s, t = self.styles.draw(rng, names), self.styles.draw(rng, names)
        a_s, b_s = self.styles.apply(clip_a, s, sample_rate), self.styles.apply(clip_b, s, sample_rate)
        a_t = _distinct_negative(self.styles.apply(clip_a, t, sample_rate), a_s)
        b_t = _distinct_negative(self.styles.apply(clip_b, t, sample_rate), b_s)
        common = {"strategy": self.name, "styles": self.styles.name}
        return [
            TripletStems(a_s, b_s, a_t, {**common, "track": track.track_id, "positive_track": other.track_id,
                                         "style": self.styles.describe(s), "negative_style": self.styles.describe(t)},
                         side_settings(self.styles, (clip_a, s), (clip_b, s), (clip_a, t))),
            TripletStems(b_t, a_t, b_s, {**common, "track": other.track_id, "positive_track": track.track_id,
                                         "style": self.styles.describe(t), "negative_style": self.styles.describe(s)},
                         side_settings(self.styles, (clip_b, t), (clip_a, t), (clip_b, s))),
        ]


class MixedStrategy:
    """Picks one strategy per item with the given probabilities (all share one style space)."""

    name = "mixed"

    def __init__(self, strategies: list[PairStrategy], weights: list[float] | None = None) -> None:
        if len({s.group_size for s in strategies}) != 1:
            raise ValueError("the strategies of a mixed strategy must draw as many triplets at once")
        self.strategies = strategies
        self.styles = strategies[0].styles
        self.group_size = strategies[0].group_size
        weights = np.asarray(weights if weights is not None else [1.0] * len(strategies), dtype=float)
        self.probabilities = weights / weights.sum()

    def draw(self, tracks, index, read_clip, rng, sample_rate):
        choice = int(rng.choice(len(self.strategies), p=self.probabilities))
        return self.strategies[choice].draw(tracks, index, read_clip, rng, sample_rate)


STRATEGIES = ("same_song", "same_chain", "crossed", "mixed")


def make_strategy(name: str, styles: StyleSpace | None = None, same_chain_weight: float = 0.5) -> PairStrategy:
    """Build a strategy by name: ``same_song``, ``same_chain``, ``crossed`` or ``mixed``, drawing styles from
    ``styles`` (default: :class:`~mixrep.styles.spaces.ChainStyles` with the default chains)."""
    styles = styles if styles is not None else ChainStyles()
    if name == "same_song":
        return SameSongStrategy(styles)
    if name == "same_chain":
        return SameChainStrategy(styles)
    if name == "crossed":
        return CrossedStrategy(styles)
    if name == "mixed":
        return MixedStrategy([SameSongStrategy(styles), SameChainStrategy(styles)],
                             [1.0 - same_chain_weight, same_chain_weight])
    raise ValueError(f"unknown pair strategy {name!r}; choose one of {', '.join(STRATEGIES)}")

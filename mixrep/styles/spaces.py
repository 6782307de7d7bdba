"""Where the mixing styles of training pairs and evaluation sets come from: a pluggable style space.

A *style space* draws a style once and applies it deterministically to any clip, so one style can
mix two different songs identically (a positive pair) and a second draw mixes the same song
differently (a negative). Two spaces exist, chosen by name (:func:`make_style_space`):

- ``chains`` (:class:`ChainStyles`): the per-stem effect chains of :mod:`mixrep.styles.chains`
  (:class:`~mixrep.styles.chains.AugmentConfig`), applied to the four stems; a song's own mix is
  its stems as they are.
- ``mix_style`` (:class:`MixStyles`): the mixing-style space of :mod:`mixrep.styles.mix_style`
  (:class:`~mixrep.styles.mix_style.MixStyleConfig`): a channel strip per *track* (kick, snare,
  bass, piano...), FX buses, a master bus and loudness normalisation. Multitrack sources are read
  track by track for it, so every track gets its own strip; a source of stems gives four tracks.
  Dry tracks have no mix of their own, so a song's reference mix is a drawn style too.

Clips. Whatever the source, a clip is a :class:`Clip`: ``(tracks, channels=2, samples)`` audio
with a name and a stem class per track (a clip of stems is four tracks named after the stems).

Shape:
    ``Clip.audio`` ``(tracks, channels=2, samples)``; every styled result ``(stems=4, channels=2,
    samples)`` float32 in :data:`~mixrep.constants.STEMS` order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mixrep.audio.multitrack import MultitrackSource
from mixrep.audio.stems import sum_to_stems
from mixrep.constants import CHANNELS, STEMS
from mixrep.styles.chains import AugmentConfig, StyleAugmenter, StyleChain, apply_chain, sample_chain
from mixrep.styles.mix_style import MixStyle, MixStyleConfig, render_mix, sample_mix_style
from mixrep.styles.settings_vector import settings_vector
from mixrep.tracks import Source, Track


@dataclass(frozen=True)
class Clip:
    """A span of one song: its tracks, each with a name (its channel strip) and a stem class.

    Attributes:
        audio: ``(tracks, channels=2, samples)`` float32.
        names: one per track, unique.
        stems: stem class of each track (one of :data:`~mixrep.constants.STEMS`).
    """

    audio: np.ndarray
    names: tuple[str, ...]
    stems: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.audio.ndim != 3 or self.audio.shape[1] != CHANNELS or not (
                len(self.names) == len(self.stems) == self.audio.shape[0]):
            raise ValueError(f"a clip is (tracks, {CHANNELS}, samples) audio with a name and a stem class per track; "
                             f"got {self.audio.shape}, {len(self.names)} names, {len(self.stems)} stem classes")

    @classmethod
    def of_stems(cls, stems: np.ndarray) -> Clip:
        """A clip of the four stems ``(4, 2, samples)``, each stem one track named after it."""
        return cls(np.asarray(stems, dtype=np.float32), STEMS, STEMS)

    def stem_audio(self) -> np.ndarray:
        """The tracks summed by stem class, ``(stems=4, channels=2, samples)``."""
        if self.names == STEMS and self.stems == STEMS:
            return self.audio
        return sum_to_stems(self.audio, self.stems)

    @property
    def num_samples(self) -> int:
        return int(self.audio.shape[-1])


def read_clip(source: Source, track: Track, start_seconds: float, duration_seconds: float,
              tracks: bool = True) -> Clip:
    """Read a span of ``track`` as a :class:`Clip`: per track from a multitrack source when
    ``tracks`` is on, else (or for a source of stems) as the four stems."""
    if tracks and isinstance(source, MultitrackSource):
        song = source.multitrack(track)
        audio = source.read_tracks(track, start_seconds, duration_seconds)
        return Clip(audio, song.names, song.stems)
    return Clip.of_stems(source.read_stems(track, start_seconds, duration_seconds))


class StyleSpace(Protocol):
    """Draws mixing styles and applies them to clips.

    Attributes:
        name: ``chains`` or ``mix_style``.
        reads_tracks: clips of multitrack sources should be read track by track (else as stems).
    """

    name: str
    reads_tracks: bool

    def draw(self, rng: np.random.Generator, names: Sequence[str]) -> Any:
        """A style for clips whose tracks are named ``names`` (the names of every clip it will mix)."""
        ...

    def reference(self, rng: np.random.Generator, names: Sequence[str]) -> Any:
        """The style of a song's own mix (``None``: the clip as it is)."""
        ...

    def apply(self, clip: Clip, style: Any, sample_rate: int) -> np.ndarray:
        """The clip mixed in ``style``, ``(stems=4, channels=2, samples)``."""
        ...

    def restyle(self, clip: Clip, rng: np.random.Generator, sample_rate: int) -> tuple[np.ndarray, Any]:
        """The clip under a freshly drawn style that audibly differs from its reference mix."""
        ...

    def describe(self, style: Any) -> dict | None:
        """The style as plain builtins (JSON), ``None`` for the reference ``None``."""
        ...

    def settings(self, clip: Clip, style: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """What a settings decoder learns of ``style`` applied to ``clip``: ``(values, mask)`` of
        :func:`~mixrep.styles.settings_vector.settings_vector`, or ``None`` where the space's styles
        have no settings vector."""
        ...


class ChainStyles:
    """Per-stem effect chains (:mod:`mixrep.styles.chains`) on the four stems.

    Args:
        config: probabilities and ranges of the chains.
    """

    name = "chains"
    reads_tracks = False

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config if config is not None else AugmentConfig()
        self.augmenter = StyleAugmenter(self.config)

    def draw(self, rng: np.random.Generator, names: Sequence[str] = STEMS) -> StyleChain:
        return sample_chain(self.config, rng)

    def reference(self, rng: np.random.Generator, names: Sequence[str] = STEMS) -> None:
        return None

    def apply(self, clip: Clip, style: StyleChain | None, sample_rate: int) -> np.ndarray:
        stems = clip.stem_audio()
        return stems if style is None else apply_chain(stems, style, sample_rate)

    def restyle(self, clip: Clip, rng: np.random.Generator, sample_rate: int) -> tuple[np.ndarray, StyleChain]:
        # StyleAugmenter forces a fader move when the drawn chain changed the stems too little.
        return self.augmenter(clip.stem_audio(), rng, sample_rate)

    def describe(self, style: StyleChain | None) -> dict | None:
        return None if style is None else style.to_dict()

    def settings(self, clip: Clip, style: StyleChain | None) -> None:
        return None  # chains are per-stem effect lists, not the settings vector's channel strips


class MixStyles:
    """The mixing-style space (:mod:`mixrep.styles.mix_style`): a strip per track, buses, master,
    loudness target.

    A style is drawn with a strip for every track name it will meet plus the four stem classes,
    so tracks of another song that have no strip of their own use their stem class's.

    Args:
        config: the ranges of the space.
    """

    name = "mix_style"
    reads_tracks = True

    def __init__(self, config: MixStyleConfig | None = None) -> None:
        self.config = config if config is not None else MixStyleConfig()

    def draw(self, rng: np.random.Generator, names: Sequence[str] = STEMS) -> MixStyle:
        return sample_mix_style(self.config, rng, names=(*names, *STEMS))

    def reference(self, rng: np.random.Generator, names: Sequence[str] = STEMS) -> MixStyle:
        return self.draw(rng, names)

    def apply(self, clip: Clip, style: MixStyle, sample_rate: int) -> np.ndarray:
        return render_mix(clip.audio, style, sample_rate, clip.names, clip.stems)

    def restyle(self, clip: Clip, rng: np.random.Generator, sample_rate: int) -> tuple[np.ndarray, MixStyle]:
        style = self.draw(rng, clip.names)
        return self.apply(clip, style, sample_rate), style

    def describe(self, style: MixStyle) -> dict:
        return style.to_dict()

    def settings(self, clip: Clip, style: MixStyle) -> tuple[np.ndarray, np.ndarray]:
        return settings_vector(style, clip.names, clip.stems)


STYLE_SPACES = ("chains", "mix_style")


def make_style_space(name: str, augment: AugmentConfig | None = None,
                     mix_style: MixStyleConfig | None = None) -> StyleSpace:
    """``chains`` (with ``augment``) or ``mix_style`` (with ``mix_style``)."""
    if name == "chains":
        return ChainStyles(augment)
    if name == "mix_style":
        return MixStyles(mix_style)
    raise ValueError(f"unknown style space {name!r}; choose one of {', '.join(STYLE_SPACES)}")


def track_names(*clips: Clip) -> tuple[str, ...]:
    """Every track name of the clips, each once, in order of appearance."""
    return tuple(dict.fromkeys(name for clip in clips for name in clip.names))

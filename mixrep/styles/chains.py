"""Mixing-style augmentations: per-stem effect chains that change how a song is mixed.

A negative example for contrastive training is the same music mixed differently. This module
re-mixes the stems: each stem gets its own random chain of mixing moves (EQ shelves, bandwidth
limiting, compression, saturation, delay, reverb, stereo width, fader gain), and the stems stay
separate so the features and the encoder see the new balance.

Sampling and applying are two steps, so one chain can restyle two different songs identically:

>>> chain = sample_chain(AugmentConfig(), np.random.default_rng(0))
>>> a_styled, b_styled = apply_chain(a, chain, 44100), apply_chain(b, chain, 44100)

Order inside each stem's chain (a channel strip): low/high shelf EQ -> high-pass/low-pass ->
compressor -> saturation -> delay -> reverb -> mid/side width -> fader gain. Gain comes last so
``gain_db`` is exactly the stem's level change whatever else is applied.

Levels: the output keeps the stems' new relative levels (that *is* the style) and is not
normalised; float32 samples may exceed +-1 (a +9 dB fader on a loud stem), which every later
step (features, mel) handles. All effects have bounded gain (feedback < 1, saturation with unity
small-signal gain, compressor without make-up), so output stays finite; it is checked.

Shape:
    ``stems``: ``(stems=4, channels=2, samples)`` float32 in :data:`mixrep.constants.STEMS` order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pedalboard

from mixrep.audio.io import check_sample_rate
from mixrep.audio.primitives import butterworth, dataclass_from_dict, log_uniform, stereo_width, uniform
from mixrep.constants import CHANNELS, STEMS
from mixrep.errors import MixrepError

# ----------------------------------------------------------------------------- configuration


@dataclass
class GainConfig:
    """Fader gain per stem, uniform in ``[-max_gain_db, max_gain_db]``."""

    prob: float = 0.5
    max_gain_db: float = 9.0


@dataclass
class EqConfig:
    """Spectral tilt with a low shelf and a high shelf, each gain uniform in +-``max_gain_db``."""

    prob: float = 0.5
    max_gain_db: float = 6.0
    low_cutoff_hz: float = 250.0
    high_cutoff_hz: float = 4000.0


@dataclass
class BandwidthConfig:
    """Butterworth high-pass and low-pass, cut-offs log-uniform in the given ranges."""

    prob: float = 0.5
    highpass_hz_range: tuple[float, float] = (20.0, 300.0)
    lowpass_hz_range: tuple[float, float] = (3000.0, 16000.0)
    order: int = 4


@dataclass
class CompressorConfig:
    """Feed-forward compressor (pedalboard), no make-up gain."""

    prob: float = 0.5
    threshold_db_range: tuple[float, float] = (-30.0, -10.0)
    ratio_range: tuple[float, float] = (2.0, 8.0)
    attack_ms_range: tuple[float, float] = (1.0, 30.0)
    release_ms_range: tuple[float, float] = (50.0, 300.0)


@dataclass
class SaturationConfig:
    """tanh saturation ``tanh(g x) / g`` with ``g = 10 ** (drive_db / 20)``: unity small-signal gain."""

    prob: float = 0.5
    drive_db_range: tuple[float, float] = (3.0, 18.0)


@dataclass
class DelayConfig:
    """Feedback delay (pedalboard ``Delay``)."""

    prob: float = 0.5
    delay_seconds_range: tuple[float, float] = (0.06, 0.4)
    feedback_range: tuple[float, float] = (0.0, 0.5)
    mix_range: tuple[float, float] = (0.1, 0.35)


@dataclass
class ReverbConfig:
    """Stereo Freeverb (pedalboard ``Reverb``) with the dry path at unity gain."""

    prob: float = 0.5
    room_size_range: tuple[float, float] = (0.2, 0.9)
    damping_range: tuple[float, float] = (0.2, 0.8)
    wet_level_range: tuple[float, float] = (0.05, 0.3)


@dataclass
class WidthConfig:
    """Mid/side width: the side signal is scaled by ``width`` (0 = mono, 1 = unchanged)."""

    prob: float = 0.5
    width_range: tuple[float, float] = (0.0, 2.0)


@dataclass
class AugmentConfig:
    """Probabilities and ranges of every mixing move; each is drawn independently per stem.

    ``min_gain_db`` is the fader move forced on one stem when no effect fires (or every fader
    move is smaller); :class:`StyleAugmenter` also forces it on the loudest stem when the
    restyled stems differ from the input by less than ``min_change_db`` (energy of the
    difference relative to the input's).
    """

    gain: GainConfig = field(default_factory=GainConfig)
    eq: EqConfig = field(default_factory=EqConfig)
    bandwidth: BandwidthConfig = field(default_factory=BandwidthConfig)
    compressor: CompressorConfig = field(default_factory=CompressorConfig)
    saturation: SaturationConfig = field(default_factory=SaturationConfig)
    delay: DelayConfig = field(default_factory=DelayConfig)
    reverb: ReverbConfig = field(default_factory=ReverbConfig)
    width: WidthConfig = field(default_factory=WidthConfig)
    min_gain_db: float = 3.0
    min_change_db: float = -20.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field (also run by :func:`sample_chain`, since
        fields may be changed after construction)."""
        for name in _EFFECTS:
            effect = getattr(self, name)
            if not 0.0 <= effect.prob <= 1.0:
                raise ValueError(f"augment config {name}.prob={effect.prob} must lie in [0, 1]")
            for key, value in dataclasses.asdict(effect).items():
                if key.endswith("_range") and not (len(value) == 2 and value[0] <= value[1]):
                    raise ValueError(f"augment config {name}.{key}={value} must be (low, high) with low <= high")
        if self.delay.feedback_range[1] >= 1.0:
            raise ValueError(f"delay.feedback_range={self.delay.feedback_range} must stay below 1 (else it explodes)")
        if self.min_gain_db <= 0.0:
            raise ValueError(f"min_gain_db={self.min_gain_db} must be > 0 dB (the forced fader move)")

    @classmethod
    def all_effects(cls, prob: float) -> AugmentConfig:
        """Default ranges with every effect's probability set to ``prob`` (0 or 1 for tests)."""
        defaults = cls()
        return cls(**{name: dataclasses.replace(getattr(defaults, name), prob=prob) for name in _EFFECTS})

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of builtins (JSON and ``torch.load(weights_only=True)`` safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        """Inverse of :meth:`to_dict`; missing fields keep their defaults."""
        return dataclass_from_dict(cls, data)


_EFFECTS = ("gain", "eq", "bandwidth", "compressor", "saturation", "delay", "reverb", "width")

# ----------------------------------------------------------------------------- chains


@dataclass(frozen=True)
class StemChain:
    """The mixing moves of one stem; ``None`` means the effect is bypassed."""

    gain_db: float = 0.0
    eq: dict[str, float] | None = None  # low_gain_db, high_gain_db, low_cutoff_hz, high_cutoff_hz
    bandwidth: dict[str, float] | None = None  # highpass_hz, lowpass_hz, order
    compressor: dict[str, float] | None = None  # threshold_db, ratio, attack_ms, release_ms
    saturation: dict[str, float] | None = None  # drive_db
    delay: dict[str, float] | None = None  # delay_seconds, feedback, mix
    reverb: dict[str, float] | None = None  # room_size, damping, wet_level
    width: float | None = None

    def is_gain_only(self) -> bool:
        """True when only the fader (possibly at 0 dB) is set."""
        return all(getattr(self, name) is None for name in _EFFECTS if name != "gain")


@dataclass(frozen=True)
class StyleChain:
    """One effect chain per stem, in :data:`~mixrep.constants.STEMS` order. JSON-serialisable."""

    stems: tuple[StemChain, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready) keyed by stem name, for logging."""
        names = STEMS if len(self.stems) == len(STEMS) else tuple(f"stem{i}" for i in range(len(self.stems)))
        return {name: dataclasses.asdict(stem) for name, stem in zip(names, self.stems)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StyleChain:
        """Inverse of :meth:`to_dict` (stems in the dict's order)."""
        return cls(tuple(StemChain(**stem) for stem in data.values()))

    def with_gain(self, stem: int, gain_db: float) -> StyleChain:
        """A copy whose stem ``stem`` has its fader at ``gain_db``."""
        stems = list(self.stems)
        stems[stem] = dataclasses.replace(stems[stem], gain_db=float(gain_db))
        return StyleChain(tuple(stems))


def _forced_gain_db(config: AugmentConfig, rng: np.random.Generator) -> float:
    magnitude = rng.uniform(config.min_gain_db, max(config.gain.max_gain_db, config.min_gain_db))
    return float(magnitude if rng.random() < 0.5 else -magnitude)


def _sample_stem(config: AugmentConfig, rng: np.random.Generator) -> StemChain:
    moves: dict[str, Any] = {}
    if rng.random() < config.gain.prob:
        moves["gain_db"] = uniform(rng, (-config.gain.max_gain_db, config.gain.max_gain_db))
    if rng.random() < config.eq.prob:
        moves["eq"] = {
            "low_gain_db": uniform(rng, (-config.eq.max_gain_db, config.eq.max_gain_db)),
            "high_gain_db": uniform(rng, (-config.eq.max_gain_db, config.eq.max_gain_db)),
            "low_cutoff_hz": config.eq.low_cutoff_hz,
            "high_cutoff_hz": config.eq.high_cutoff_hz,
        }
    if rng.random() < config.bandwidth.prob:
        moves["bandwidth"] = {
            "highpass_hz": log_uniform(rng, config.bandwidth.highpass_hz_range),
            "lowpass_hz": log_uniform(rng, config.bandwidth.lowpass_hz_range),
            "order": config.bandwidth.order,
        }
    if rng.random() < config.compressor.prob:
        moves["compressor"] = {
            "threshold_db": uniform(rng, config.compressor.threshold_db_range),
            "ratio": uniform(rng, config.compressor.ratio_range),
            "attack_ms": log_uniform(rng, config.compressor.attack_ms_range),
            "release_ms": log_uniform(rng, config.compressor.release_ms_range),
        }
    if rng.random() < config.saturation.prob:
        moves["saturation"] = {"drive_db": uniform(rng, config.saturation.drive_db_range)}
    if rng.random() < config.delay.prob:
        moves["delay"] = {
            "delay_seconds": uniform(rng, config.delay.delay_seconds_range),
            "feedback": uniform(rng, config.delay.feedback_range),
            "mix": uniform(rng, config.delay.mix_range),
        }
    if rng.random() < config.reverb.prob:
        moves["reverb"] = {
            "room_size": uniform(rng, config.reverb.room_size_range),
            "damping": uniform(rng, config.reverb.damping_range),
            "wet_level": uniform(rng, config.reverb.wet_level_range),
        }
    if rng.random() < config.width.prob:
        moves["width"] = uniform(rng, config.width.width_range)
    return StemChain(**moves)


def sample_chain(config: AugmentConfig, rng: np.random.Generator, num_stems: int = len(STEMS)) -> StyleChain:
    """Draw one style chain: every effect fires per stem with its ``prob``, parameters uniform.

    The chain is never an identity: when no effect fires and no fader moves by at least
    ``config.min_gain_db``, one random stem's fader is set to +-[``min_gain_db``, ``max_gain_db``].

    Args:
        config: probabilities and ranges.
        rng: the only source of randomness (same seed -> same chain).
        num_stems: number of stems the chain will be applied to.
    """
    config.validate()
    chain = StyleChain(tuple(_sample_stem(config, rng) for _ in range(num_stems)))
    weak = all(s.is_gain_only() and abs(s.gain_db) < config.min_gain_db for s in chain.stems)
    if weak:
        chain = chain.with_gain(int(rng.integers(num_stems)), _forced_gain_db(config, rng))
    return chain


# ----------------------------------------------------------------------------- application


def _eq_plugins(stem: StemChain) -> list[pedalboard.Plugin]:
    plugins: list[pedalboard.Plugin] = []
    if stem.eq is not None:
        plugins += [
            pedalboard.LowShelfFilter(cutoff_frequency_hz=stem.eq["low_cutoff_hz"], gain_db=stem.eq["low_gain_db"]),
            pedalboard.HighShelfFilter(cutoff_frequency_hz=stem.eq["high_cutoff_hz"], gain_db=stem.eq["high_gain_db"]),
        ]
    return plugins


def _compressor_plugins(stem: StemChain) -> list[pedalboard.Plugin]:
    return [] if stem.compressor is None else [pedalboard.Compressor(**stem.compressor)]


def _space_plugins(stem: StemChain) -> list[pedalboard.Plugin]:
    plugins: list[pedalboard.Plugin] = []
    if stem.delay is not None:
        plugins.append(pedalboard.Delay(**stem.delay))
    if stem.reverb is not None:
        # JUCE's Freeverb scales the dry path by 2 * dry_level: 0.5 keeps the dry signal at unity.
        plugins.append(pedalboard.Reverb(**stem.reverb, dry_level=0.5, width=1.0))
    return plugins


def _apply_stem(audio: np.ndarray, stem: StemChain, sample_rate: int) -> np.ndarray:
    eq = _eq_plugins(stem)
    if eq:
        audio = pedalboard.Pedalboard(eq)(audio, sample_rate)
    if stem.bandwidth is not None:
        # Butterworth band-pass (pedalboard's HP/LP filters are only first order, 6 dB/octave).
        b = stem.bandwidth
        audio = butterworth(audio, sample_rate, b["highpass_hz"], b["lowpass_hz"], int(b["order"]))
    compressor = _compressor_plugins(stem)
    if compressor:
        audio = pedalboard.Pedalboard(compressor)(audio, sample_rate)
    if stem.saturation is not None:
        # Same curve as pedalboard.Distortion + Gain(-drive_db), ~40x faster in numpy.
        drive = np.float32(10.0 ** (stem.saturation["drive_db"] / 20.0))
        audio = np.tanh(audio * drive) / drive
    space = _space_plugins(stem)
    if space:
        audio = pedalboard.Pedalboard(space)(audio, sample_rate)
    if stem.width is not None:
        audio = stereo_width(audio, stem.width)
    if stem.gain_db != 0.0:
        audio = audio * np.float32(10.0 ** (stem.gain_db / 20.0))
    return np.asarray(audio, dtype=np.float32)


def _check_stems(stems: np.ndarray, num_stems: int) -> np.ndarray:
    stems = np.asarray(stems)
    if stems.ndim != 3 or stems.shape[:2] != (num_stems, CHANNELS):
        raise ValueError(f"expected stems of shape ({num_stems}, {CHANNELS}, samples), got {stems.shape}")
    if not np.isfinite(stems).all():
        raise ValueError("cannot restyle non-finite stems (NaN or inf); check the separator/reader output")
    return np.ascontiguousarray(stems, dtype=np.float32)


def apply_chain(stems: np.ndarray, chain: StyleChain, sample_rate: int) -> np.ndarray:
    """Apply a style chain; deterministic (every effect starts from a reset state).

    Args:
        stems: one stereo signal per chain entry.
        chain: from :func:`sample_chain` (or :meth:`StyleChain.from_dict`).
        sample_rate: Hz.

    Returns:
        Restyled stems, float32, same shape.

    Raises:
        ValueError: shape does not match the chain, non-finite input, bad sample rate.
        MixrepError: the chain produced non-finite samples (reported with the chain).

    Shape:
        ``(stems, channels=2, samples)`` -> ``(stems, channels=2, samples)``.
    """
    sample_rate = check_sample_rate(sample_rate)
    stems = _check_stems(stems, len(chain.stems))
    out = np.stack([_apply_stem(audio, stem, sample_rate) for audio, stem in zip(stems, chain.stems)])
    if not np.isfinite(out).all():
        raise MixrepError(f"style chain produced non-finite samples; chain: {chain.to_dict()}")
    return out


def change_db(before: np.ndarray, after: np.ndarray) -> float:
    """Energy of ``after - before`` relative to the energy of ``before``, dB (-inf if equal).

    Shape:
        any two arrays of the same shape.
    """
    before = before.astype(np.float64)
    difference = float(np.sum((after - before) ** 2))
    reference = float(np.sum(before**2))
    if difference == 0.0:
        return float("-inf")
    return 10.0 * np.log10(difference / max(reference, 1e-30))


class StyleAugmenter:
    """Restyle stems with a freshly sampled chain whose effect is guaranteed to be measurable.

    After applying the sampled chain, if the stems changed by less than ``config.min_change_db``
    (e.g. the effects landed on near-silent stems), the loudest stem's fader is set to
    +-[``min_gain_db``, ``max_gain_db``]; the returned chain records that. Only digital silence
    (every stem all zeros) comes back unchanged, since no mixing move can alter it.
    """

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config if config is not None else AugmentConfig()

    def __call__(
        self, stems: np.ndarray, rng: np.random.Generator, sample_rate: int
    ) -> tuple[np.ndarray, StyleChain]:
        """Return ``(restyled_stems, chain)``.

        Shape:
            ``stems``: ``(stems=4, channels=2, samples)`` -> same shape.
        """
        chain = sample_chain(self.config, rng, num_stems=len(stems))
        out = apply_chain(stems, chain, sample_rate)
        if change_db(stems, out) < self.config.min_change_db:
            loudest = int(np.argmax(np.sum(np.square(out, dtype=np.float64), axis=(1, 2))))
            new_gain_db = _forced_gain_db(self.config, rng)
            # The fader is the last move of a stem's chain, so re-gaining the output is exact.
            out[loudest] *= np.float32(10.0 ** ((new_gain_db - chain.stems[loudest].gain_db) / 20.0))
            chain = chain.with_gain(loudest, new_gain_db)
        return out, chain

"""A mixing-style space a mixing engineer would recognise: channel strips, FX buses, master, loudness.

A *mix style* is every decision of a mix, drawn once (:func:`sample_mix_style`) and applied
deterministically to any song (:func:`render_mix` for tracks, :func:`render_stems` for stems), the
same draw-once / apply shape as :func:`~mixrep.styles.chains.sample_chain` /
:func:`~mixrep.styles.chains.apply_chain`:

>>> style = sample_mix_style(MixStyleConfig(), np.random.default_rng(0), names=STEMS)
>>> a, b = render_stems(stems_a, style, 44100), render_stems(stems_b, style, 44100)

Signal flow (one channel strip per track, or per stem)::

    high-pass / low-pass -> EQ (low shelf, peaking bands with Q, high shelf) -> compressor + make-up
    -> saturation -> fader -> stereo width -> constant-power pan -> sends (post-fader) to the buses
    delay bus (feedback delay) and reverb bus (Freeverb: size, damping, width), returns at unity
    master bus: EQ (shelves) -> bus compressor (linked) -> limiter (drive into a ceiling)
    loudness: the whole mix scaled to ``loudness_lufs`` (ITU-R BS.1770, default -14 LUFS)

so absolute level carries no style: what is left is balance, tone, dynamics, space and image.

Stems out. Every result is four stems ``(4, 2, samples)`` that sum exactly to the styled mix.
The buses are linear and time-invariant, so a bus return is computed per stem from that stem's
sends (their sum is the return of the summed sends). The master EQ is linear and applied to each
stem; the bus compressor and the limiter compute one gain curve from the mix (a linked side
chain) and apply it to every stem; the loudness gain is one number.

Relative settings. Compressor thresholds are relative to the RMS of the signal entering the
compressor, saturation is driven from a fixed RMS (gain staging) and the limiter drive is relative
to the mix's peak, so one style treats two songs recorded at different levels the same way (that
is what "the same mix" means): the renderer is scale-invariant, ``render(c * x) == render(x)``.

Effects come from pedalboard (JUCE, C++): shelf/peak filters, Compressor, Distortion, Delay,
Reverb. Butterworth high/low-pass come from scipy (pedalboard's are first order only). The
master's linked compressor and limiter are gain computers written here, because pedalboard does
not expose a plugin's gain curve: a feed-forward compressor with a hard knee and one-pole attack /
release smoothing of the gain (Giannoulis, Massberg & Reiss, "Digital Dynamic Range Compressor
Design - A Tutorial and Analysis", JAES 2012), and a look-ahead brick-wall limiter whose gain never
exceeds the ceiling (exact, not approximate).

Shape:
    tracks ``(tracks, channels=2, samples)``; stems and results ``(stems=4, channels=2, samples)``
    float32 in :data:`~mixrep.constants.STEMS` order.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pedalboard
import pyloudnorm
import scipy.ndimage

from mixrep.audio.io import check_sample_rate
from mixrep.audio.primitives import (
    butterworth,
    dataclass_from_dict,
    db_to_gain,
    log_uniform,
    pan_gains,
    rms_db,
    stereo_width,
    uniform,
)
from mixrep.audio.stems import stem_index, sum_to_stems
from mixrep.constants import CHANNELS, STEMS
from mixrep.errors import MixrepError

# ----------------------------------------------------------------------------- configuration


@dataclass
class FaderRanges:
    """Fader per strip uniform in ``+-spread_db``, then mean-centred over the strips (balance only)."""

    spread_db: float = 6.0


@dataclass
class PanRanges:
    """Pan per strip uniform in ``+-max_pan`` (with ``prob``, else centre); names in
    ``centre_names`` (kick, bass, lead vocal...) stay within ``+-centre_max_pan``."""

    prob: float = 0.8
    max_pan: float = 0.9
    centre_names: tuple[str, ...] = ("drums", "kick", "snare", "bass", "vocals", "lead")
    centre_max_pan: float = 0.1


@dataclass
class FilterRanges:
    """Butterworth high-pass / low-pass, cut-offs log-uniform; ``order`` 2 = 12 dB/octave."""

    highpass_prob: float = 0.6
    highpass_hz_range: tuple[float, float] = (20.0, 250.0)
    lowpass_prob: float = 0.25
    lowpass_hz_range: tuple[float, float] = (5000.0, 18000.0)
    order: int = 2


@dataclass
class EqRanges:
    """Parametric EQ: low shelf, ``peaks`` peaking bands with Q, high shelf (gains uniform)."""

    prob: float = 0.8
    low_shelf_hz_range: tuple[float, float] = (60.0, 300.0)
    high_shelf_hz_range: tuple[float, float] = (2500.0, 12000.0)
    shelf_gain_db: float = 6.0
    peaks: int = 2
    peak_hz_range: tuple[float, float] = (150.0, 8000.0)
    peak_gain_db: float = 9.0
    q_range: tuple[float, float] = (0.5, 4.0)


@dataclass
class CompressorRanges:
    """Channel compressor; ``threshold_db`` is relative to the RMS level entering it."""

    prob: float = 0.6
    threshold_db_range: tuple[float, float] = (-12.0, 6.0)
    ratio_range: tuple[float, float] = (1.5, 8.0)
    attack_ms_range: tuple[float, float] = (0.5, 40.0)
    release_ms_range: tuple[float, float] = (30.0, 400.0)
    makeup_db_range: tuple[float, float] = (0.0, 6.0)


@dataclass
class SaturationRanges:
    """tanh saturation (pedalboard ``Distortion``) at ``drive_db``, then ``-drive_db`` (unity small-signal gain)."""

    prob: float = 0.3
    drive_db_range: tuple[float, float] = (3.0, 24.0)


@dataclass
class WidthRanges:
    """Mid/side width of a strip: side scaled by ``width`` (0 = mono, 1 = as recorded)."""

    prob: float = 0.5
    width_range: tuple[float, float] = (0.0, 1.6)


@dataclass
class DelayRanges:
    """Delay bus (present with ``prob``); each strip sends to it with ``send_prob``."""

    prob: float = 0.4
    delay_seconds_range: tuple[float, float] = (0.08, 0.5)
    feedback_range: tuple[float, float] = (0.0, 0.5)
    send_prob: float = 0.4
    send_db_range: tuple[float, float] = (-30.0, -8.0)


@dataclass
class ReverbRanges:
    """Reverb bus (present with ``prob``); each strip sends to it with ``send_prob``."""

    prob: float = 0.85
    room_size_range: tuple[float, float] = (0.1, 0.95)
    damping_range: tuple[float, float] = (0.1, 0.9)
    width_range: tuple[float, float] = (0.5, 1.0)
    send_prob: float = 0.7
    send_db_range: tuple[float, float] = (-30.0, -6.0)


@dataclass
class MasterRanges:
    """Master bus: shelving EQ, bus compressor (threshold relative to the mix RMS), limiter
    (the mix's peak driven ``limiter_drive_db`` into ``ceiling_db``)."""

    eq_prob: float = 0.5
    low_shelf_hz_range: tuple[float, float] = (60.0, 200.0)
    high_shelf_hz_range: tuple[float, float] = (4000.0, 12000.0)
    shelf_gain_db: float = 3.0
    compressor_prob: float = 0.5
    threshold_db_range: tuple[float, float] = (-10.0, 0.0)
    ratio_range: tuple[float, float] = (1.5, 4.0)
    attack_ms_range: tuple[float, float] = (5.0, 50.0)
    release_ms_range: tuple[float, float] = (50.0, 500.0)
    limiter_prob: float = 0.7
    limiter_drive_db_range: tuple[float, float] = (0.0, 10.0)
    limiter_release_ms_range: tuple[float, float] = (20.0, 300.0)
    ceiling_db: float = -1.0


@dataclass
class MixStyleConfig:
    """Every range of the mixing-style space (YAML / LightningCLI settable, JSON with each item).

    Attributes:
        loudness_lufs: integrated loudness every rendered mix is normalised to (streaming
            services play at about -14 LUFS).
    """

    fader: FaderRanges = field(default_factory=FaderRanges)
    pan: PanRanges = field(default_factory=PanRanges)
    filters: FilterRanges = field(default_factory=FilterRanges)
    eq: EqRanges = field(default_factory=EqRanges)
    compressor: CompressorRanges = field(default_factory=CompressorRanges)
    saturation: SaturationRanges = field(default_factory=SaturationRanges)
    width: WidthRanges = field(default_factory=WidthRanges)
    delay: DelayRanges = field(default_factory=DelayRanges)
    reverb: ReverbRanges = field(default_factory=ReverbRanges)
    master: MasterRanges = field(default_factory=MasterRanges)
    loudness_lufs: float = -14.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field (also run by :func:`sample_mix_style`)."""
        for group in dataclasses.fields(self):
            value = getattr(self, group.name)
            if not dataclasses.is_dataclass(value):
                continue
            for key, setting in dataclasses.asdict(value).items():
                where = f"mix style config {group.name}.{key}={setting}"
                if key == "prob" or key.endswith("_prob"):
                    if not 0.0 <= setting <= 1.0:
                        raise ValueError(f"{where} must lie in [0, 1]")
                elif key.endswith("_range"):
                    if not (len(setting) == 2 and setting[0] <= setting[1]):
                        raise ValueError(f"{where} must be (low, high) with low <= high")
                    if key.endswith(("_hz_range", "_ms_range", "_seconds_range", "ratio_range", "q_range")) and setting[0] <= 0:
                        raise ValueError(f"{where} must be positive")
        if self.delay.feedback_range[1] >= 1.0:
            raise ValueError(f"mix style config delay.feedback_range={self.delay.feedback_range} must stay below 1")
        if self.compressor.ratio_range[0] < 1.0 or self.master.ratio_range[0] < 1.0:
            raise ValueError("mix style config compressor ratios must be >= 1")
        if not -70.0 <= self.loudness_lufs <= 0.0:
            raise ValueError(f"mix style config loudness_lufs={self.loudness_lufs} must lie in [-70, 0] LUFS")
        if self.master.ceiling_db > 0.0:
            raise ValueError(f"mix style config master.ceiling_db={self.master.ceiling_db} must be <= 0 dBFS")
        if self.eq.peaks < 0 or self.filters.order < 1:
            raise ValueError("mix style config eq.peaks must be >= 0 and filters.order >= 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of builtins (JSON-ready)."""
        return dataclasses.asdict(self)

    def every_processor(self) -> MixStyleConfig:
        """These ranges with every probability 1: every processor, bus and send present (and every
        strip panned), for tests and agreement benchmarks that must exercise all of them."""
        groups = {}
        for group in dataclasses.fields(self):
            value = getattr(self, group.name)
            if dataclasses.is_dataclass(value):
                groups[group.name] = dataclasses.replace(value, **{
                    f.name: 1.0 for f in dataclasses.fields(value) if f.name == "prob" or f.name.endswith("_prob")})
        return dataclasses.replace(self, **groups)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MixStyleConfig:
        """Inverse of :meth:`to_dict`; missing fields keep their defaults."""
        return dataclass_from_dict(cls, data)


# ----------------------------------------------------------------------------- styles


EQ_KINDS: tuple[str, ...] = ("low_shelf", "peak", "high_shelf")
"""The kinds of :class:`EqBand`, in the order a strip's EQ lists them."""


@dataclass(frozen=True)
class EqBand:
    """One EQ band: ``kind`` is one of :data:`EQ_KINDS`."""

    kind: str
    frequency_hz: float
    gain_db: float
    q: float = 0.7071


@dataclass(frozen=True)
class CompressorSettings:
    """Feed-forward compressor; ``threshold_db`` relative to the RMS of its input."""

    threshold_db: float
    ratio: float
    attack_ms: float
    release_ms: float
    makeup_db: float = 0.0


@dataclass(frozen=True)
class LimiterSettings:
    """The mix's peak is raised to ``ceiling_db + drive_db``, then limited to ``ceiling_db``."""

    drive_db: float
    ceiling_db: float
    release_ms: float


@dataclass(frozen=True)
class ChannelStrip:
    """The settings of one track's (or stem's) channel strip; ``None`` = bypassed."""

    fader_db: float = 0.0
    pan: float = 0.0
    width: float | None = None
    highpass_hz: float | None = None
    lowpass_hz: float | None = None
    eq: tuple[EqBand, ...] = ()
    compressor: CompressorSettings | None = None
    saturation_drive_db: float | None = None
    delay_send_db: float | None = None
    reverb_send_db: float | None = None


@dataclass(frozen=True)
class DelayBus:
    delay_seconds: float
    feedback: float


@dataclass(frozen=True)
class ReverbBus:
    room_size: float
    damping: float
    width: float


@dataclass(frozen=True)
class MasterBus:
    eq: tuple[EqBand, ...] = ()
    compressor: CompressorSettings | None = None
    limiter: LimiterSettings | None = None


@dataclass(frozen=True)
class MixStyle:
    """One drawn mix: a strip per name, the FX buses, the master bus and the loudness target.

    Strips are looked up by track name first, then by the track's stem class
    (:meth:`strip_for`), so a style drawn for the four stems applies to any song's tracks.
    """

    strips: dict[str, ChannelStrip]
    delay: DelayBus | None = None
    reverb: ReverbBus | None = None
    master: MasterBus = MasterBus()
    loudness_lufs: float = -14.0

    def strip_for(self, name: str, stem: str) -> ChannelStrip:
        """The strip of track ``name``, else of its stem class ``stem``.

        Raises:
            ValueError: neither has a strip in this style.
        """
        if name in self.strips:
            return self.strips[name]
        if stem in self.strips:
            return self.strips[stem]
        raise ValueError(f"mix style has no strip for track {name!r} nor its stem class {stem!r}; "
                         f"it has {sorted(self.strips)} (draw it with names including the stem classes)")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-ready), inverse of :meth:`from_dict`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MixStyle:
        def bands(items) -> tuple[EqBand, ...]:
            return tuple(EqBand(**b) for b in items or ())

        def compressor(item) -> CompressorSettings | None:
            return None if item is None else CompressorSettings(**item)

        strips = {
            name: ChannelStrip(**{**s, "eq": bands(s.get("eq")), "compressor": compressor(s.get("compressor"))})
            for name, s in data["strips"].items()
        }
        master = data.get("master") or {}
        return cls(
            strips=strips,
            delay=None if data.get("delay") is None else DelayBus(**data["delay"]),
            reverb=None if data.get("reverb") is None else ReverbBus(**data["reverb"]),
            master=MasterBus(
                eq=bands(master.get("eq")),
                compressor=compressor(master.get("compressor")),
                limiter=None if master.get("limiter") is None else LimiterSettings(**master["limiter"]),
            ),
            loudness_lufs=float(data.get("loudness_lufs", -14.0)),
        )


# ----------------------------------------------------------------------------- sampling


def sample_eq(config: EqRanges, rng: np.random.Generator) -> tuple[EqBand, ...]:
    """Bands of one parametric EQ drawn from ``config`` (none with probability ``1 - config.prob``)."""
    if rng.random() >= config.prob:
        return ()
    bands = [EqBand("low_shelf", log_uniform(rng, config.low_shelf_hz_range),
                    uniform(rng, (-config.shelf_gain_db, config.shelf_gain_db)))]
    for _ in range(config.peaks):
        bands.append(EqBand("peak", log_uniform(rng, config.peak_hz_range),
                            uniform(rng, (-config.peak_gain_db, config.peak_gain_db)), log_uniform(rng, config.q_range)))
    bands.append(EqBand("high_shelf", log_uniform(rng, config.high_shelf_hz_range),
                        uniform(rng, (-config.shelf_gain_db, config.shelf_gain_db))))
    return tuple(bands)


def _sample_compressor(config: CompressorRanges | MasterRanges, rng: np.random.Generator,
                       makeup_db_range: tuple[float, float]) -> CompressorSettings:
    return CompressorSettings(
        threshold_db=uniform(rng, config.threshold_db_range),
        ratio=log_uniform(rng, config.ratio_range),
        attack_ms=log_uniform(rng, config.attack_ms_range),
        release_ms=log_uniform(rng, config.release_ms_range),
        makeup_db=uniform(rng, makeup_db_range),
    )


def _sample_strip(config: MixStyleConfig, name: str, rng: np.random.Generator, delay: bool, reverb: bool
                  ) -> ChannelStrip:
    pan = 0.0
    if rng.random() < config.pan.prob:
        limit = config.pan.centre_max_pan if name in config.pan.centre_names else config.pan.max_pan
        pan = uniform(rng, (-limit, limit))
    filters = config.filters
    highpass = log_uniform(rng, filters.highpass_hz_range) if rng.random() < filters.highpass_prob else None
    lowpass = log_uniform(rng, filters.lowpass_hz_range) if rng.random() < filters.lowpass_prob else None
    eq = sample_eq(config.eq, rng)
    compressor = None
    if rng.random() < config.compressor.prob:
        compressor = _sample_compressor(config.compressor, rng, config.compressor.makeup_db_range)
    drive = uniform(rng, config.saturation.drive_db_range) if rng.random() < config.saturation.prob else None
    width = uniform(rng, config.width.width_range) if rng.random() < config.width.prob else None
    delay_send = uniform(rng, config.delay.send_db_range) if delay and rng.random() < config.delay.send_prob else None
    reverb_send = uniform(rng, config.reverb.send_db_range) if reverb and rng.random() < config.reverb.send_prob else None
    return ChannelStrip(
        fader_db=uniform(rng, (-config.fader.spread_db, config.fader.spread_db)),
        pan=pan, width=width, highpass_hz=highpass, lowpass_hz=lowpass, eq=eq, compressor=compressor,
        saturation_drive_db=drive, delay_send_db=delay_send, reverb_send_db=reverb_send,
    )


def _sample_master(config: MasterRanges, rng: np.random.Generator) -> MasterBus:
    eq: tuple[EqBand, ...] = ()
    if rng.random() < config.eq_prob:
        eq = (EqBand("low_shelf", log_uniform(rng, config.low_shelf_hz_range),
                     uniform(rng, (-config.shelf_gain_db, config.shelf_gain_db))),
              EqBand("high_shelf", log_uniform(rng, config.high_shelf_hz_range),
                     uniform(rng, (-config.shelf_gain_db, config.shelf_gain_db))))
    compressor = _sample_compressor(config, rng, (0.0, 0.0)) if rng.random() < config.compressor_prob else None
    limiter = None
    if rng.random() < config.limiter_prob:
        limiter = LimiterSettings(uniform(rng, config.limiter_drive_db_range), config.ceiling_db,
                                  log_uniform(rng, config.limiter_release_ms_range))
    return MasterBus(eq=eq, compressor=compressor, limiter=limiter)


def sample_mix_style(config: MixStyleConfig, rng: np.random.Generator, names: Sequence[str] = STEMS) -> MixStyle:
    """Draw one mix style: a channel strip per name, buses, master bus, loudness target.

    Faders are mean-centred over the strips drawn together (a style is a balance, not a level).
    To apply a style to the tracks of any song, include the four stem classes in ``names``: a
    track without a strip of its own uses its stem class's (:meth:`MixStyle.strip_for`).

    Args:
        config: the ranges.
        rng: the only source of randomness (same seed, same style).
        names: strip names (track names such as ``kick``, and/or the stem classes); repeats are
            drawn once.
    """
    config.validate()
    names = list(dict.fromkeys(names))  # a track named like its stem class (``bass``) shares that strip
    if not names:
        raise ValueError("a mix style needs at least one strip name")
    delay = None
    if rng.random() < config.delay.prob:
        delay = DelayBus(uniform(rng, config.delay.delay_seconds_range), uniform(rng, config.delay.feedback_range))
    reverb = None
    if rng.random() < config.reverb.prob:
        reverb = ReverbBus(uniform(rng, config.reverb.room_size_range), uniform(rng, config.reverb.damping_range),
                           uniform(rng, config.reverb.width_range))
    strips = {name: _sample_strip(config, name, rng, delay is not None, reverb is not None) for name in names}
    mean_db = float(np.mean([s.fader_db for s in strips.values()]))
    strips = {name: dataclasses.replace(s, fader_db=s.fader_db - mean_db) for name, s in strips.items()}
    return MixStyle(strips, delay, reverb, _sample_master(config.master, rng), float(config.loudness_lufs))


# ----------------------------------------------------------------------------- rendering


SATURATION_REFERENCE_DBFS = -18.0
"""RMS level (dBFS) a strip's input would have when it meets the saturator (the trim is undone after it)."""

_EQ_PLUGINS = {
    "low_shelf": lambda b: pedalboard.LowShelfFilter(cutoff_frequency_hz=b.frequency_hz, gain_db=b.gain_db, q=b.q),
    "high_shelf": lambda b: pedalboard.HighShelfFilter(cutoff_frequency_hz=b.frequency_hz, gain_db=b.gain_db, q=b.q),
    "peak": lambda b: pedalboard.PeakFilter(cutoff_frequency_hz=b.frequency_hz, gain_db=b.gain_db, q=b.q),
}


def _eq_plugins(bands: tuple[EqBand, ...], sample_rate: int) -> list[pedalboard.Plugin]:
    top = 0.45 * sample_rate
    plugins = []
    for band in bands:
        if band.kind not in _EQ_PLUGINS:
            raise ValueError(f"unknown EQ band kind {band.kind!r}; use one of {sorted(_EQ_PLUGINS)}")
        plugins.append(_EQ_PLUGINS[band.kind](dataclasses.replace(band, frequency_hz=min(band.frequency_hz, top))))
    return plugins


def equalise(audio: np.ndarray, bands: tuple[EqBand, ...], sample_rate: int) -> np.ndarray:
    """``audio`` ``(channels, samples)`` through the EQ ``bands`` (pedalboard biquads; bands above
    0.45 of the rate are moved down to it). Returns the same shape, float32."""
    return pedalboard.Pedalboard(_eq_plugins(bands, sample_rate))(audio, sample_rate)


@dataclass
class MixLevels:
    """The absolute levels a style's relative settings met while rendering one song (:func:`mix_levels`).

    Attributes:
        strip_input_db: per track, the RMS (dBFS) after its filters and EQ, which its compressor
            threshold and saturation trim refer to (``-inf`` for a silent track).
        master_input_db: RMS (dBFS) of the mix entering the master compressor (after the master EQ);
            ``None`` without a master compressor.
        limiter_input_peak_db: peak (dBFS) of the mix entering the limiter's drive; ``None`` without a limiter.
        loudness_gain_db: the gain that brought the mix to ``loudness_lufs`` (0 for a silent mix).
    """

    strip_input_db: list[float] = field(default_factory=list)
    master_input_db: float | None = None
    limiter_input_peak_db: float | None = None
    loudness_gain_db: float = 0.0


def _render_strip(audio: np.ndarray, strip: ChannelStrip, sample_rate: int, levels: MixLevels | None = None
                  ) -> np.ndarray:
    """One channel strip up to the pan (sends are taken from its output). ``(2, n) -> (2, n)``."""
    if not audio.any():
        if levels is not None:
            levels.strip_input_db.append(float("-inf"))
        return audio
    audio = butterworth(audio, sample_rate, strip.highpass_hz, strip.lowpass_hz)
    if strip.eq:
        audio = equalise(audio, strip.eq, sample_rate)
    dynamics: list[pedalboard.Plugin] = []
    level_db = rms_db(audio)  # what the relative settings refer to; -inf (silence) bypasses them
    if levels is not None:
        levels.strip_input_db.append(level_db)
    if strip.compressor is not None and math.isfinite(level_db):
        c = strip.compressor
        dynamics += [pedalboard.Compressor(threshold_db=level_db + c.threshold_db, ratio=c.ratio,
                                           attack_ms=c.attack_ms, release_ms=c.release_ms),
                     pedalboard.Gain(gain_db=c.makeup_db)]
    if strip.saturation_drive_db is not None and math.isfinite(level_db):
        # Gain-staged: the signal meets the saturator trimmed by the same amount whatever its
        # recording level (input RMS to SATURATION_REFERENCE_DBFS), so the drive is relative too.
        trim_db = SATURATION_REFERENCE_DBFS - level_db
        dynamics += [pedalboard.Gain(gain_db=trim_db), pedalboard.Distortion(drive_db=strip.saturation_drive_db),
                     pedalboard.Gain(gain_db=-strip.saturation_drive_db - trim_db)]
    if dynamics:
        audio = pedalboard.Pedalboard(dynamics)(audio, sample_rate)
    audio = audio * np.float32(db_to_gain(strip.fader_db))
    if strip.width is not None:
        audio = stereo_width(audio, strip.width)
    left, right = pan_gains(strip.pan)
    # Constant-power pan, normalised so the centre is unity: a mono (L = R) source keeps its level there.
    audio = audio * np.asarray([[left], [right]], dtype=np.float32) * np.float32(math.sqrt(2.0))
    return np.asarray(audio, dtype=np.float32)


def _bus_returns(sends: np.ndarray, style: MixStyle, sample_rate: int, delay: bool) -> np.ndarray:
    """Return of the delay (``delay=True``) or reverb bus for each stem's sends. ``(4, 2, n) -> same``."""
    if delay:
        # The delay treats channels independently: all stems' sends in one 8-channel call.
        plugin = pedalboard.Delay(delay_seconds=style.delay.delay_seconds, feedback=style.delay.feedback, mix=1.0)
        return plugin(sends.reshape(-1, sends.shape[-1]), sample_rate).reshape(sends.shape)
    out = np.zeros_like(sends)
    r = style.reverb
    for s, send in enumerate(sends):
        if send.any():
            # JUCE's Freeverb scales the wet path by 3 x wet_level; the dry path is off, so the bus
            # return is the reverb alone (a fresh plugin per stem: no state carried between them).
            plugin = pedalboard.Reverb(room_size=r.room_size, damping=r.damping, width=r.width,
                                       wet_level=1.0 / 3.0, dry_level=0.0)
            out[s] = plugin(send, sample_rate)
    return out


def _smoothed_gain_db(target_db: np.ndarray, attack_coef: float, release_coef: float) -> np.ndarray:
    """One-pole smoothing of a gain curve: ``attack_coef`` while the gain falls, ``release_coef`` as it recovers."""
    out = np.empty_like(target_db)
    state = 0.0
    for i, value in enumerate(target_db.tolist()):
        coef = attack_coef if value < state else release_coef
        state = coef * state + (1.0 - coef) * value
        out[i] = state
    return out


_DETECTOR_BLOCK = 32  # samples per gain-computer step (0.7 ms at 44.1 kHz)


def compressor_gain(mix: np.ndarray, settings: CompressorSettings, sample_rate: int) -> np.ndarray:
    """Linked feed-forward compressor gain for a stereo mix (Giannoulis et al. 2012, hard knee).

    The detector is the peak of both channels per block of 32 samples; the static curve reduces
    the level above ``threshold`` (relative to the mix RMS) by ``1 - 1/ratio``; the gain in dB is
    smoothed with one-pole attack / release, then interpolated to samples. Make-up is applied.

    Shape:
        ``(channels=2, samples)`` -> gain ``(samples,)`` float32 (linear).
    """
    n = mix.shape[-1]
    level = rms_db(mix)
    if not math.isfinite(level):
        return np.ones(n, dtype=np.float32)
    blocks = -(-n // _DETECTOR_BLOCK)
    padded = np.pad(np.abs(mix).max(axis=0), (0, blocks * _DETECTOR_BLOCK - n))
    peak_db = 20.0 * np.log10(np.maximum(padded.reshape(blocks, _DETECTOR_BLOCK).max(axis=1), 1e-9))
    over = np.maximum(peak_db - (level + settings.threshold_db), 0.0)
    target = -over * (1.0 - 1.0 / settings.ratio)
    block_rate = sample_rate / _DETECTOR_BLOCK
    gain_db = _smoothed_gain_db(target, math.exp(-1.0 / (settings.attack_ms * 1e-3 * block_rate)),
                                math.exp(-1.0 / (settings.release_ms * 1e-3 * block_rate)))
    centres = (np.arange(blocks) + 0.5) * _DETECTOR_BLOCK
    curve = np.interp(np.arange(n), centres, gain_db) + settings.makeup_db
    return np.power(10.0, curve / 20.0).astype(np.float32)


def limiter_gain(mix: np.ndarray, ceiling_db: float, release_ms: float, sample_rate: int,
                 lookahead_ms: float = 1.5) -> np.ndarray:
    """Look-ahead brick-wall limiter gain: ``|mix * gain| <= ceiling`` at every sample, exactly.

    The required gain ``min(1, ceiling / |peak|)`` is min-filtered over the look-ahead window
    and averaged over the same window (a ramp that is down before each peak arrives); the
    recovery is then limited to 6 dB per ``release_ms`` (a slew limit, computed as a running
    minimum, so it never raises the gain above the required one).

    Shape:
        ``(channels=2, samples)`` -> gain ``(samples,)`` float32 (linear, <= 1).
    """
    ceiling = db_to_gain(ceiling_db)
    peak = np.abs(mix).max(axis=0).astype(np.float64)
    required = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    window = max(1, int(round(lookahead_ms * 1e-3 * sample_rate)))
    # backward-looking minimum over [i - window + 1, i], then the forward mean over [i, i + window - 1]
    held = scipy.ndimage.minimum_filter1d(required, size=window, origin=(window - 1) // 2, mode="nearest")
    ramp = np.convolve(np.pad(held, (0, window - 1), mode="edge"), np.ones(window) / window, mode="valid")
    ramp = np.minimum(ramp, required)  # float safety: the mean of values <= required[i] is <= required[i]
    ramp_db = 20.0 * np.log10(np.maximum(ramp, 1e-12))
    slope = 6.0 / max(release_ms * 1e-3 * sample_rate, 1.0)  # dB per sample of recovery
    index = np.arange(len(ramp_db))
    released = np.minimum.accumulate(ramp_db - slope * index) + slope * index
    return np.power(10.0, np.minimum(released, ramp_db) / 20.0).astype(np.float32)


def integrated_loudness(mix: np.ndarray, sample_rate: int) -> float:
    """ITU-R BS.1770-4 integrated loudness of a stereo mix in LUFS (pyloudnorm); ``-inf`` if silent.

    Shape:
        ``(channels=2, samples)``, at least 0.4 s.
    """
    if mix.shape[-1] < int(0.4 * sample_rate):
        raise ValueError(f"loudness needs at least 0.4 s of audio, got {mix.shape[-1] / sample_rate:.3f} s")
    if not mix.any():
        return float("-inf")
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(mix.T.astype(np.float64)))


def _render_master(stems: np.ndarray, master: MasterBus, loudness_lufs: float, sample_rate: int,
                   levels: MixLevels | None = None) -> np.ndarray:
    if master.eq:
        flat = stems.reshape(-1, stems.shape[-1])
        flat = equalise(flat, master.eq, sample_rate)
        stems = flat.reshape(stems.shape)
    if master.compressor is not None:
        if levels is not None:
            levels.master_input_db = rms_db(stems.sum(axis=0))
        stems = stems * compressor_gain(stems.sum(axis=0), master.compressor, sample_rate)
    if master.limiter is not None:
        peak = float(np.abs(stems.sum(axis=0)).max())
        if levels is not None:
            levels.limiter_input_peak_db = 20.0 * math.log10(peak) if peak > 0.0 else float("-inf")
        if peak > 0.0:
            drive = db_to_gain(master.limiter.ceiling_db + master.limiter.drive_db) / peak
            stems = stems * np.float32(drive)
            stems = stems * limiter_gain(stems.sum(axis=0), master.limiter.ceiling_db, master.limiter.release_ms,
                                         sample_rate)
    loudness = integrated_loudness(stems.sum(axis=0), sample_rate)
    if math.isfinite(loudness):
        stems = stems * np.float32(db_to_gain(loudness_lufs - loudness))
        if levels is not None:
            levels.loudness_gain_db = loudness_lufs - loudness
    return np.asarray(stems, dtype=np.float32)


def render_mix(tracks: np.ndarray, style: MixStyle, sample_rate: int, names: Sequence[str],
               stems: Sequence[str | int]) -> np.ndarray:
    """Mix a song's tracks with a style; deterministic (every effect starts from a reset state).

    Args:
        tracks: dry tracks (a mono track is ``L = R``).
        style: from :func:`sample_mix_style` or :meth:`MixStyle.from_dict`.
        sample_rate: Hz.
        names: name of each track (its strip; else its stem class's strip is used).
        stems: stem class of each track (name or index).

    Returns:
        The styled mix as four stems that sum to it, at ``style.loudness_lufs`` (a silent input
        stays silent). Float32; peaks may exceed 1 after loudness normalisation.

    Raises:
        ValueError: shapes disagree, non-finite input, a track without a strip, clip under 0.4 s.
        MixrepError: the style produced non-finite samples (reported with the style).

    Shape:
        ``(tracks, channels=2, samples)`` -> ``(stems=4, channels=2, samples)``.
    """
    return _mix(tracks, style, sample_rate, names, stems, None)


def render_mix_levels(tracks: np.ndarray, style: MixStyle, sample_rate: int, names: Sequence[str],
                      stems: Sequence[str | int]) -> tuple[np.ndarray, MixLevels]:
    """:func:`render_mix`, and the absolute levels the style's relative settings met while rendering
    (to set a DAW's absolute thresholds and gains: :mod:`mixrep.export.reaper`), from one render.

    Shape:
        tracks ``(tracks, channels=2, samples)`` -> stems ``(stems=4, channels=2, samples)``.
    """
    levels = MixLevels()
    return _mix(tracks, style, sample_rate, names, stems, levels), levels


def mix_levels(tracks: np.ndarray, style: MixStyle, sample_rate: int, names: Sequence[str],
               stems: Sequence[str | int]) -> MixLevels:
    """The levels of :func:`render_mix_levels` alone.

    Shape:
        tracks ``(tracks, channels=2, samples)``.
    """
    return render_mix_levels(tracks, style, sample_rate, names, stems)[1]


def _mix(tracks: np.ndarray, style: MixStyle, sample_rate: int, names: Sequence[str], stems: Sequence[str | int],
         levels: MixLevels | None) -> np.ndarray:
    sample_rate = check_sample_rate(sample_rate)
    tracks = np.asarray(tracks, dtype=np.float32)
    if tracks.ndim != 3 or tracks.shape[1] != CHANNELS or len(names) != tracks.shape[0] != len(stems):
        raise ValueError(f"expected tracks (tracks, {CHANNELS}, samples) with one name and stem class each; got "
                         f"{tracks.shape}, {len(names)} names, {len(stems)} stem classes")
    if not np.isfinite(tracks).all():
        raise ValueError("cannot mix non-finite tracks (NaN or inf); check the reader output")
    groups = [stem_index(s) for s in stems]
    strips = [style.strip_for(name, STEMS[g]) for name, g in zip(names, groups)]
    processed = np.stack([_render_strip(track, strip, sample_rate, levels) for track, strip in zip(tracks, strips)])
    out = sum_to_stems(processed, groups)
    for bus, key in ((style.delay, "delay_send_db"), (style.reverb, "reverb_send_db")):
        gains = [getattr(strip, key) for strip in strips]
        if bus is None or all(g is None for g in gains):
            continue
        sends = sum_to_stems(
            np.stack([p * np.float32(0.0 if g is None else db_to_gain(g)) for p, g in zip(processed, gains)]), groups)
        out += _bus_returns(sends, style, sample_rate, delay=key == "delay_send_db")
    out = _render_master(out, style.master, style.loudness_lufs, sample_rate, levels)
    if not np.isfinite(out).all():
        raise MixrepError(f"mix style produced non-finite samples; style: {style.to_dict()}")
    return out


def render_stems(stems: np.ndarray, style: MixStyle, sample_rate: int) -> np.ndarray:
    """:func:`render_mix` with the four stems as the tracks (one strip per stem class).

    Shape:
        ``(stems=4, channels=2, samples)`` -> same shape.
    """
    return render_mix(stems, style, sample_rate, names=STEMS, stems=STEMS)

"""What of a mix style an encoder can decode: the settings vector, per stem and for the master.

A :class:`~mixrep.styles.mix_style.MixStyle` holds one channel strip per *track*, in engineer's
units. A clip of four stems shows the sum of each stem class's tracks, so what is decodable from
it is the style *per stem class*: :func:`settings_vector` summarises the strips of the clip's
tracks of each class (their mean; presence as the share of tracks that use a processor) and the
master and bus settings, as one fixed-length vector in normalised physical units, with a mask of
the entries that are defined for that clip. :data:`SETTINGS` lists the entries.

What is encoded, and why in that form (each entry's ``group`` names the table row it counts in):

- ``balance``: fader gain in dB, **mean-centred over the stems present**. A rendered mix is
  normalised to a loudness target, so only the faders' differences are audible, never their level.
  Even those differences add to each song's own recorded balance, which no encoder can know: the
  fader is identifiable only as far as songs are recorded at comparable levels (measured in the
  settings-recovery table, not assumed).
- ``pan``: mean pan position of the class's tracks, ``-1`` (left) to ``1`` (right).
- ``width``: mid/side width, 1 where the strip leaves it as recorded.
- ``filters``: high-pass and low-pass presence, and their cut-offs in octaves (``log2`` Hz, defined
  only where present).
- ``eq``: the EQ's magnitude response in dB at :data:`EQ_FREQUENCIES_HZ`, not its band parameters.
  Bands are not identifiable (two peaks can trade places, a shelf and a wide peak can draw the same
  curve); the curve is what is heard and what an engineer reads ("+4 dB at 150 Hz").
- ``dynamics``: compressor presence and its gain reduction in dB at the input's RMS level (the
  static curve's reduction at the level the relative threshold refers to), rather than threshold and
  ratio, which trade off against each other for the same audible squash.
- ``saturation``: presence and drive in dB.
- ``sends``: delay and reverb send presence and level in dB (post-fader), defined where the bus exists.
- ``master``: master EQ response at :data:`MASTER_EQ_FREQUENCIES_HZ` (its shelves' reach), bus-compressor presence and gain reduction,
  limiter presence and drive in dB.
- ``space``: the buses: reverb presence, room size and damping; delay presence, time (octaves of
  seconds) and feedback.

Normalisation. Every continuous entry is ``(value - centre) / scale`` with a fixed centre and scale
per kind (:class:`Setting`), so a regression loss weighs groups alike and :func:`denormalise` gives
engineer's units back. Presence entries are probabilities in ``[0, 1]`` (classification targets).

Shape:
    :func:`settings_vector` -> ``values`` ``(num_settings,)`` float32 and ``mask`` ``(num_settings,)``
    float32 (1 = defined); a batch stacks them to ``(batch, num_settings)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mixrep.constants import STEMS
from mixrep.styles.mix_style import ChannelStrip, CompressorSettings, EqBand, MixStyle, equalise

EQ_FREQUENCIES_HZ: tuple[float, ...] = (60.0, 150.0, 400.0, 1000.0, 2500.0, 6000.0)
"""Where EQ curves are read (dB), octave-and-a-bit apart across what a 22.05 kHz clip carries."""
MASTER_EQ_FREQUENCIES_HZ: tuple[float, ...] = (60.0, 150.0, 6000.0)
"""Where the master EQ (two shelves) is read: between its shelves it is flat whatever the style."""
EQ_SAMPLE_RATE = 44100
"""The rate EQ curves are computed at: a property of the settings, not of the rendering rate."""
GROUPS: tuple[str, ...] = ("balance", "pan", "width", "filters", "eq", "dynamics", "saturation", "sends",
                           "master", "space")
"""Settings groups, in the order of the settings-recovery table."""
PRESENT = 0.5
"""A processor counts as used at or above this presence (a stem's share of tracks using it, or a decoded probability)."""
SETTINGS_VERSION = 1
"""The layout :data:`SETTINGS` defines; a checkpoint's decoder records it (an unknown one is refused)."""


@dataclass(frozen=True)
class Setting:
    """One entry of the settings vector.

    Attributes:
        name: ``"<stem>.<setting>"`` or ``"master.<setting>"`` / ``"bus.<setting>"``.
        group: one of :data:`GROUPS`.
        kind: ``"value"`` (regression) or ``"presence"`` (classification, a probability).
        unit: the physical unit of the value (``dB``, ``Hz``, ``s``, ``pan``, ``ratio``...).
        centre, scale: normalisation, ``(value - centre) / scale`` (presence: 0 and 1).
        log2: the physical value is ``2 ** denormalised`` (cut-offs, delay time), i.e. octaves.
        presence: the name of the presence entry this value is defined under (``""``: always).
    """

    name: str
    group: str
    kind: str
    unit: str
    centre: float = 0.0
    scale: float = 1.0
    log2: bool = False
    presence: str = ""


def _strip_settings(prefix: str) -> list[Setting]:
    hp, lp, comp, sat = f"{prefix}.highpass", f"{prefix}.lowpass", f"{prefix}.compressor", f"{prefix}.saturation"
    delay, reverb = f"{prefix}.delay_send", f"{prefix}.reverb_send"
    settings = [
        Setting(f"{prefix}.fader_db", "balance", "value", "dB", 0.0, 4.0),
        Setting(f"{prefix}.pan", "pan", "value", "pan", 0.0, 0.5),
        Setting(f"{prefix}.width", "width", "value", "ratio", 1.0, 0.4),
        Setting(hp, "filters", "presence", ""),
        Setting(f"{hp}_hz", "filters", "value", "Hz", math.log2(70.0), 1.0, True, hp),
        Setting(lp, "filters", "presence", ""),
        Setting(f"{lp}_hz", "filters", "value", "Hz", math.log2(9500.0), 0.6, True, lp),
    ]
    settings += [Setting(f"{prefix}.eq_{f:g}hz_db", "eq", "value", "dB", 0.0, 4.0) for f in EQ_FREQUENCIES_HZ]
    settings += [
        Setting(comp, "dynamics", "presence", ""),
        Setting(f"{comp}_reduction_db", "dynamics", "value", "dB", 3.0, 3.0, False, comp),
        Setting(sat, "saturation", "presence", ""),
        Setting(f"{sat}_drive_db", "saturation", "value", "dB", 13.5, 6.0, False, sat),
        Setting(delay, "sends", "presence", ""),
        Setting(f"{delay}_db", "sends", "value", "dB", -19.0, 6.5, False, delay),
        Setting(reverb, "sends", "presence", ""),
        Setting(f"{reverb}_db", "sends", "value", "dB", -18.0, 7.0, False, reverb),
    ]
    return settings


def _master_settings() -> list[Setting]:
    settings = [Setting(f"master.eq_{f:g}hz_db", "master", "value", "dB", 0.0, 2.0) for f in MASTER_EQ_FREQUENCIES_HZ]
    settings += [
        Setting("master.compressor", "master", "presence", ""),
        Setting("master.compressor_reduction_db", "master", "value", "dB", 2.0, 2.0, False, "master.compressor"),
        Setting("master.limiter", "master", "presence", ""),
        Setting("master.limiter_drive_db", "master", "value", "dB", 5.0, 3.0, False, "master.limiter"),
        Setting("bus.reverb", "space", "presence", ""),
        Setting("bus.reverb_room_size", "space", "value", "ratio", 0.5, 0.25, False, "bus.reverb"),
        Setting("bus.reverb_damping", "space", "value", "ratio", 0.5, 0.25, False, "bus.reverb"),
        Setting("bus.delay", "space", "presence", ""),
        Setting("bus.delay_seconds", "space", "value", "s", math.log2(0.2), 1.0, True, "bus.delay"),
        Setting("bus.delay_feedback", "space", "value", "ratio", 0.25, 0.15, False, "bus.delay"),
    ]
    return settings


SETTINGS: tuple[Setting, ...] = tuple(s for stem in STEMS for s in _strip_settings(stem)) + tuple(_master_settings())
"""Every entry of the settings vector, in order: the four stems' strips, then master and buses."""
INDEX: dict[str, int] = {s.name: i for i, s in enumerate(SETTINGS)}
NUM_SETTINGS = len(SETTINGS)


def presence_columns() -> np.ndarray:
    """Indices of the presence entries (classification targets)."""
    return np.asarray([i for i, s in enumerate(SETTINGS) if s.kind == "presence"])


def value_columns() -> np.ndarray:
    """Indices of the value entries (regression targets)."""
    return np.asarray([i for i, s in enumerate(SETTINGS) if s.kind == "value"])


def group_columns(group: str) -> np.ndarray:
    """Indices of the entries of ``group``."""
    if group not in GROUPS:
        raise ValueError(f"unknown settings group {group!r}; choose one of {', '.join(GROUPS)}")
    return np.asarray([i for i, s in enumerate(SETTINGS) if s.group == group])


@functools.lru_cache(maxsize=4096)
def eq_curve_db(bands: tuple[EqBand, ...]) -> tuple[float, ...]:
    """The EQ's magnitude response in dB at :data:`EQ_FREQUENCIES_HZ` (pedalboard's own filters,
    measured on an impulse at :data:`EQ_SAMPLE_RATE`)."""
    if not bands:
        return (0.0,) * len(EQ_FREQUENCIES_HZ)
    length = 16384
    impulse = np.zeros((1, length), dtype=np.float32)
    impulse[0, 0] = 1.0
    response = np.abs(np.fft.rfft(equalise(impulse, bands, EQ_SAMPLE_RATE)[0].astype(np.float64)))
    bins = np.fft.rfftfreq(length, 1.0 / EQ_SAMPLE_RATE)
    magnitude = np.interp(EQ_FREQUENCIES_HZ, bins, response)
    return tuple(float(20.0 * np.log10(max(m, 1e-6))) for m in magnitude)


def compressor_reduction_db(compressor: CompressorSettings) -> float:
    """Static gain reduction (dB, >= 0) at the input's RMS level: the threshold is relative to that
    level, so the RMS sits ``-threshold_db`` above it and is reduced by ``(1 - 1 / ratio)`` of that."""
    return max(0.0, -compressor.threshold_db) * (1.0 - 1.0 / compressor.ratio)


def _normalised(setting: Setting, value: float) -> float:
    value = math.log2(value) if setting.log2 else value
    return (value - setting.centre) / setting.scale


def denormalise(setting: Setting, value: float) -> float:
    """A normalised value of ``setting`` back in its physical unit (presence: the probability)."""
    if setting.kind == "presence":
        return float(value)
    physical = value * setting.scale + setting.centre
    return float(2.0 ** physical if setting.log2 else physical)


def _strip_values(strips: list[ChannelStrip]) -> dict[str, float | None]:
    """The per-stem summary of the strips of one stem class's tracks (``None``: undefined)."""
    def share(values: list) -> float:
        return sum(v is not None for v in values) / len(values)

    def mean_of(values: list) -> float | None:
        present = [v for v in values if v is not None]
        return float(np.mean(present)) if present else None

    highpass = [s.highpass_hz for s in strips]
    lowpass = [s.lowpass_hz for s in strips]
    compressors = [None if s.compressor is None else compressor_reduction_db(s.compressor) for s in strips]
    drives = [s.saturation_drive_db for s in strips]
    delay = [s.delay_send_db for s in strips]
    reverb = [s.reverb_send_db for s in strips]
    curves = np.mean([eq_curve_db(tuple(s.eq)) for s in strips], axis=0)
    out: dict[str, float | None] = {
        "fader_db": float(np.mean([s.fader_db for s in strips])),
        "pan": float(np.mean([s.pan for s in strips])),
        "width": float(np.mean([1.0 if s.width is None else s.width for s in strips])),
        "highpass": share(highpass),
        "highpass_hz": None if mean_of(highpass) is None else float(2.0 ** np.mean(
            [math.log2(v) for v in highpass if v is not None])),
        "lowpass": share(lowpass),
        "lowpass_hz": None if mean_of(lowpass) is None else float(2.0 ** np.mean(
            [math.log2(v) for v in lowpass if v is not None])),
        "compressor": share(compressors), "compressor_reduction_db": mean_of(compressors),
        "saturation": share(drives), "saturation_drive_db": mean_of(drives),
        "delay_send": share(delay), "delay_send_db": mean_of(delay),
        "reverb_send": share(reverb), "reverb_send_db": mean_of(reverb),
    }
    out.update({f"eq_{f:g}hz_db": float(c) for f, c in zip(EQ_FREQUENCIES_HZ, curves)})
    return out


def settings_vector(style: MixStyle, names: Sequence[str], stems: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The settings vector of ``style`` applied to a clip whose tracks are ``names`` of stem classes ``stems``.

    Entries of a stem class the clip has no track of are masked out (their strip is not heard);
    fader gains are mean-centred over the stems present; a value under a presence entry is defined
    where some track of the class uses the processor (its mean over those tracks); the delay and
    reverb sends are defined only where the style has that bus.

    Returns:
        ``(values, mask)``, each ``(NUM_SETTINGS,)`` float32, values normalised (see :class:`Setting`).

    Raises:
        ValueError: ``names`` and ``stems`` differ in length, a stem class is unknown, or the style has
            no strip for a track.
    """
    if len(names) != len(stems):
        raise ValueError(f"{len(names)} track names but {len(stems)} stem classes: give one class per track")
    unknown = sorted(set(stems) - set(STEMS))
    if unknown:
        raise ValueError(f"unknown stem classes {unknown}; use {', '.join(STEMS)}")
    values = np.zeros(NUM_SETTINGS, dtype=np.float32)
    mask = np.zeros(NUM_SETTINGS, dtype=np.float32)

    def put(name: str, value: float | None) -> None:
        if value is None:
            return
        setting = SETTINGS[INDEX[name]]
        values[INDEX[name]] = value if setting.kind == "presence" else _normalised(setting, value)
        mask[INDEX[name]] = 1.0

    summaries = {}
    for stem in STEMS:
        strips = [style.strip_for(name, cls) for name, cls in zip(names, stems) if cls == stem]
        if strips:
            summaries[stem] = _strip_values(strips)
    balance = float(np.mean([s["fader_db"] for s in summaries.values()])) if summaries else 0.0
    for stem, summary in summaries.items():
        summary["fader_db"] = summary["fader_db"] - balance
        if style.delay is None:
            summary["delay_send"] = summary["delay_send_db"] = None
        if style.reverb is None:
            summary["reverb_send"] = summary["reverb_send_db"] = None
        for key, value in summary.items():
            put(f"{stem}.{key}", value)
    master = style.master
    for f, c in zip(EQ_FREQUENCIES_HZ, eq_curve_db(tuple(master.eq))):
        if f in MASTER_EQ_FREQUENCIES_HZ:
            put(f"master.eq_{f:g}hz_db", c)
    put("master.compressor", float(master.compressor is not None))
    if master.compressor is not None:
        put("master.compressor_reduction_db", compressor_reduction_db(master.compressor))
    put("master.limiter", float(master.limiter is not None))
    if master.limiter is not None:
        put("master.limiter_drive_db", master.limiter.drive_db)
    put("bus.reverb", float(style.reverb is not None))
    if style.reverb is not None:
        put("bus.reverb_room_size", style.reverb.room_size)
        put("bus.reverb_damping", style.reverb.damping)
    put("bus.delay", float(style.delay is not None))
    if style.delay is not None:
        put("bus.delay_seconds", style.delay.delay_seconds)
        put("bus.delay_feedback", style.delay.feedback)
    return values, mask


def relative_mask(mask_a: np.ndarray, mask_b: np.ndarray) -> np.ndarray:
    """Where the difference of two settings vectors is defined: value entries defined in both.

    Shape: ``(..., NUM_SETTINGS)`` each -> same.
    """
    values = np.zeros(NUM_SETTINGS, dtype=np.float32)
    values[value_columns()] = 1.0
    return mask_a * mask_b * values


__all__ = ["EQ_FREQUENCIES_HZ", "MASTER_EQ_FREQUENCIES_HZ", "PRESENT", "GROUPS", "INDEX", "NUM_SETTINGS", "SETTINGS", "SETTINGS_VERSION", "Setting",
           "compressor_reduction_db", "denormalise", "eq_curve_db", "group_columns", "presence_columns",
           "relative_mask", "settings_vector", "value_columns"]

"""The state of REAPER's stock Cockos plug-ins (ReaEQ, ReaComp, ReaDelay, ReaVerbate, ReaLimit) as
written in an ``.rpp``: encoders from physical settings and decoders back to them.

A Cockos plug-in's state in a project is base64 text in its ``<VST`` block: REAPER's VST header
(plug-in id, a magic number, the input and output pin maps, the size of the data block, flags),
then the plug-in's own data block, then a fixed 6-byte trailer. Cockos does not document the
data blocks; the layouts used here are public reverse-engineering notes measured with REAPER 7
(set each parameter from a script, save, read the state back), cross-checked by decoding REAPER's
default states: ReaComp's default decodes to threshold 0 dB, ratio 4:1, attack 3 ms, release
100 ms, RMS 5 ms, wet 0 dB, dry off, its documented defaults. No REAPER runs here, so these layouts
are not verified by this project; ``docs/export.md`` lists every field and what is approximate.

Layouts (little-endian):

- ReaEQ: ``u32 33, u32 bands``, per band ``u32 type, u32 enabled, f64 frequency_hz, f64 gain
  (linear), f64 bandwidth (octaves), u8 1``; then ``u32 1, u32 1, f64 output gain (linear)`` and
  16 bytes of window state. Types: 0 low shelf, 1 high shelf, 8 band, 3 low pass, 4 high pass.
- ReaComp: 8 magic bytes, then 21 f32 raw parameters in parameter order: 0 threshold (linear
  amplitude), 1 ratio ``(ratio - 1) / 99``, 2 attack ``ms / 500``, 3 release ``ms / 5000``,
  4 pre-comp ``ms / 250``, 5/6 detector high-/low-pass ``Hz / 20000``, 10 dry (linear), 11 wet
  (linear: the make-up), 13 RMS size ``ms / 100`` (0 = peak), 14 knee ``dB / 24``.
- ReaDelay: 8 zero bytes, ``u32 taps, u32 44, u32 2, u32 0, f32 wet, f32 dry`` (linear), per tap
  11 f32: flag, enabled, length ``ms / 10000``, musical length (beats), feedback (linear),
  low-pass and high-pass ``Hz / 20000``, resolution, width ``(w + 1) / 2``, volume (linear),
  pan ``(p + 1) / 2``.
- ReaVerbate: 8 magic bytes, 8 f32: wet, dry (linear), room size, dampening, width
  ``(w + 1) / 2``, pre-delay ``ms / 500``, low-pass and high-pass ``Hz / 20000``.
- ReaLimit: ``u32 3, u32 0, f64 threshold_db, f64 ceiling_db``, then REAPER's default release
  and flags (24 bytes).
"""

from __future__ import annotations

import base64
import math
import struct
from dataclasses import dataclass

from mixrep.audio.primitives import db_to_gain
from mixrep.export.rpp_text import RppError


@dataclass(frozen=True)
class CockosPlugin:
    """What REAPER needs to load one Cockos plug-in: its names, VST id and header flavour."""

    name: str          # "ReaEQ"
    file: str          # "reaeq.dll" (REAPER finds its own plug-ins by this name)
    vst_id: int        # the VST2 unique id
    vst3_hex: str      # REAPER's id for the same plug-in in the header line
    magic: int         # second u32 of the header
    inputs: int        # input pins (ReaComp has a side-chain pair)
    header_flag: int   # the u32 after the data size


PLUGINS: dict[str, CockosPlugin] = {
    "ReaEQ": CockosPlugin("ReaEQ", "reaeq.dll", 1919247729, "56535472656571726561657100000000", 0xFEED5EEE, 2, 1),
    "ReaComp": CockosPlugin("ReaComp", "reacomp.dll", 1919247213, "5653547265636D726561636F6D700000", 0xFEED5EEF, 4,
                            0),
    "ReaDelay": CockosPlugin("ReaDelay", "readelay.dll", 1919247468, "5653547265646C72656164656C617900", 0xFEED5EEE,
                             2, 1),
    "ReaVerbate": CockosPlugin("ReaVerbate", "reaverbate.dll", 1920361016, "56535472766238726561766572626174",
                               0xFEED5EEF, 2, 0),
    "ReaLimit": CockosPlugin("ReaLimit", "realimit.dll", 1919708532, "565354726C6D747265616C696D697400", 0xFEED5EEE,
                             2, 1),
}

_TRAILER = bytes.fromhex("000010000000")
_DATA_MAGIC = bytes.fromhex("efbeadde0df0adde")
_LINE_BYTES = 96  # base64 lines of 128 characters, each decodable alone


def vst_header_line(plugin: CockosPlugin, fx_name_token: str) -> str:
    """The ``<VST ...`` line (``fx_name_token`` already quoted: the name shown in REAPER's FX chain)."""
    return f'<VST "VST: {plugin.name} (Cockos)" {plugin.file} 0 {fx_name_token} {plugin.vst_id}<{plugin.vst3_hex}> ""'


def state_lines(plugin: CockosPlugin, data: bytes) -> list[str]:
    """The base64 lines of a plug-in state: header, data block, trailer."""
    pins = [1 << i for i in range(plugin.inputs)]
    header = struct.pack(f"<III{2 * plugin.inputs}I5I3I", plugin.vst_id, plugin.magic, plugin.inputs,
                         *[x for p in pins for x in (p, 0)], 2, 1, 0, 2, 0, len(data), plugin.header_flag, 0x100000)
    lines = [base64.b64encode(header).decode()]
    lines += [base64.b64encode(data[i:i + _LINE_BYTES]).decode() for i in range(0, len(data), _LINE_BYTES)]
    return lines + [base64.b64encode(_TRAILER).decode()]


def state_data(plugin: CockosPlugin, lines: list[str]) -> bytes:
    """The data block of a plug-in state written by :func:`state_lines` (or by REAPER)."""
    try:
        raw = [base64.b64decode(line, validate=True) for line in lines]
    except ValueError as e:
        raise RppError(f"{plugin.name} state is not base64 ({e})") from e
    if not raw:
        raise RppError(f"{plugin.name} block has no state")
    header = raw[0]
    size = struct.unpack_from("<I", header, len(header) - 12)[0]
    data = b"".join(raw[1:])
    if len(data) < size:
        raise RppError(f"{plugin.name} state holds {len(data)} bytes, its header says {size}")
    return data[:size]


def _linear_to_db(gain: float) -> float:
    return 20.0 * math.log10(gain) if gain > 0.0 else float("-inf")


# ----------------------------------------------------------------------------- ReaEQ

REAEQ_TYPES = {"low_shelf": 0, "high_shelf": 1, "peak": 8, "lowpass": 3, "highpass": 4}
"""Band kind -> ReaEQ's band type code."""

_REAEQ_KINDS = {code: kind for kind, code in REAEQ_TYPES.items()}


def q_to_octaves(q: float) -> float:
    """Bandwidth in octaves of a band of quality ``q``: ``BW = (2 / ln 2) asinh(1 / (2 Q))``
    (R. Bristow-Johnson, "Cookbook formulae for audio EQ biquad filter coefficients", analogue form)."""
    return 2.0 / math.log(2.0) * math.asinh(1.0 / (2.0 * q))


def octaves_to_q(octaves: float) -> float:
    """Inverse of :func:`q_to_octaves`: ``Q = 1 / (2 sinh(ln 2 / 2 * BW))``."""
    return 1.0 / (2.0 * math.sinh(math.log(2.0) / 2.0 * octaves))


@dataclass(frozen=True)
class ReaEqBand:
    kind: str               # low_shelf, high_shelf, peak, lowpass, highpass
    frequency_hz: float
    gain_db: float
    octaves: float


def reaeq_data(bands: list[ReaEqBand]) -> bytes:
    out = struct.pack("<II", 33, len(bands))
    for b in bands:
        out += struct.pack("<IIdddB", REAEQ_TYPES[b.kind], 1, b.frequency_hz, db_to_gain(b.gain_db), b.octaves, 1)
    return out + struct.pack("<IId4I", 1, 1, 1.0, 0x18000000, 644, 406, 2)


def reaeq_bands(data: bytes) -> list[ReaEqBand]:
    version, count = struct.unpack_from("<II", data, 0)
    bands, offset = [], 8
    for _ in range(count):
        kind, enabled, frequency, gain, octaves, _ = struct.unpack_from("<IIdddB", data, offset)
        offset += 33
        if enabled:
            bands.append(ReaEqBand(_REAEQ_KINDS.get(kind, f"type{kind}"), frequency, _linear_to_db(gain), octaves))
    return bands


# ----------------------------------------------------------------------------- ReaComp

_REACOMP_DEFAULTS = (1.0, 3.0 / 99.0, 0.006, 0.02, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 10 ** (-150 / 20), 1.0, 0.0, 0.05,
                     0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class ReaCompSettings:
    threshold_db: float     # absolute dBFS
    ratio: float
    attack_ms: float
    release_ms: float
    makeup_db: float        # ReaComp's wet gain
    rms_ms: float = 0.0     # 0: peak detection


def reacomp_data(c: ReaCompSettings) -> bytes:
    raw = list(_REACOMP_DEFAULTS)  # each value within ReaComp's range (ratio 100 = its limit mode)
    raw[0] = min(db_to_gain(c.threshold_db), 2.0)
    raw[1] = min((c.ratio - 1.0) / 99.0, 1.0)
    raw[2] = min(c.attack_ms / 500.0, 1.0)
    raw[3] = min(c.release_ms / 5000.0, 1.0)
    raw[11] = min(db_to_gain(c.makeup_db), 2.0)
    raw[13] = min(c.rms_ms / 100.0, 1.0)
    return _DATA_MAGIC + struct.pack("<21f", *raw)


def reacomp_settings(data: bytes) -> ReaCompSettings:
    raw = struct.unpack_from("<21f", data, 8)
    return ReaCompSettings(_linear_to_db(raw[0]), 1.0 + 99.0 * raw[1], 500.0 * raw[2], 5000.0 * raw[3],
                           _linear_to_db(raw[11]), 100.0 * raw[13])


# ----------------------------------------------------------------------------- ReaDelay

@dataclass(frozen=True)
class ReaDelaySettings:
    length_ms: float
    feedback: float          # linear
    wet_db: float
    dry_db: float            # -inf: off


def readelay_data(d: ReaDelaySettings) -> bytes:
    dry = 0.0 if not math.isfinite(d.dry_db) else db_to_gain(d.dry_db)
    head = bytes(8) + struct.pack("<IIIIff", 1, 44, 2, 0, db_to_gain(d.wet_db), dry)
    tap = struct.pack("<11f", 0.0, 1.0, d.length_ms / 10_000.0, 0.0, d.feedback, 1.0, 0.0, 1.0, 1.0, 1.0, 0.5)
    return head + tap


def readelay_settings(data: bytes) -> ReaDelaySettings:
    taps, size, _, _, wet, dry = struct.unpack_from("<IIIIff", data, 8)
    if taps < 1:
        raise RppError("ReaDelay state has no tap")
    tap = struct.unpack_from("<11f", data, 32)
    return ReaDelaySettings(10_000.0 * tap[2], tap[4], _linear_to_db(wet), _linear_to_db(dry))


# ----------------------------------------------------------------------------- ReaVerbate

@dataclass(frozen=True)
class ReaVerbateSettings:
    room_size: float
    damping: float
    width: float             # 0..1 (ReaVerbate takes -1..1)
    wet_db: float
    dry_db: float


def reaverbate_data(r: ReaVerbateSettings) -> bytes:
    dry = 0.0 if not math.isfinite(r.dry_db) else db_to_gain(r.dry_db)
    return _DATA_MAGIC + struct.pack("<8f", db_to_gain(r.wet_db), dry, r.room_size, r.damping,
                                     (r.width + 1.0) / 2.0, 0.0, 1.0, 0.0)


def reaverbate_settings(data: bytes) -> ReaVerbateSettings:
    wet, dry, room, damping, width, _, _, _ = struct.unpack_from("<8f", data, 8)
    return ReaVerbateSettings(room, damping, 2.0 * width - 1.0, _linear_to_db(wet), _linear_to_db(dry))


# ----------------------------------------------------------------------------- ReaLimit

@dataclass(frozen=True)
class ReaLimitSettings:
    threshold_db: float
    ceiling_db: float


def realimit_data(r: ReaLimitSettings) -> bytes:
    return struct.pack("<IIddIIQd", 3, 0, r.threshold_db, r.ceiling_db, 2, 0x200, 0, 0.1778279410038923)


def realimit_settings(data: bytes) -> ReaLimitSettings:
    threshold, ceiling = struct.unpack_from("<dd", data, 8)
    return ReaLimitSettings(threshold, ceiling)


ENCODERS = {"ReaEQ": reaeq_data, "ReaComp": reacomp_data, "ReaDelay": readelay_data, "ReaVerbate": reaverbate_data,
            "ReaLimit": realimit_data}
DECODERS = {"ReaEQ": reaeq_bands, "ReaComp": reacomp_settings, "ReaDelay": readelay_settings,
            "ReaVerbate": reaverbate_settings, "ReaLimit": realimit_settings}

"""A minimal SoundFont 2.01 file written from scratch, for tests that must not depend on a system soundfont.

One looped sine sample (root key A4 = 440 Hz), one instrument playing it over the whole keyboard,
and presets at every General-MIDI program of bank 0 plus the drum kits of bank 128 (program 0 and
25), all using that instrument: so FluidSynth plays any GM program and a note ``k`` sounds at
``440 * 2 ** ((k - 69) / 12)`` Hz. Layout per the SoundFont 2.01 specification (RIFF ``sfbk`` with
``INFO``, ``sdta`` and ``pdta`` lists; every pdta sub-chunk ends with a terminal record).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

SAMPLE_RATE = 44_000  # 440 Hz has a whole period of 100 samples: a click-free loop
ROOT_KEY = 69
DRUM_KITS = (0, 25)


def _chunk(tag: bytes, data: bytes) -> bytes:
    pad = b"\0" if len(data) % 2 else b""
    return tag + struct.pack("<I", len(data)) + data + pad


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _name(text: str) -> bytes:
    return text.encode("ascii")[:19].ljust(20, b"\0")


def write_sf2(path: str | Path, programs: range | tuple[int, ...] = range(128)) -> Path:
    """Write the test soundfont to ``path`` and return it."""
    n = SAMPLE_RATE  # one second of sine
    t = np.arange(n) / SAMPLE_RATE
    wave = (0.5 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype("<i2")
    smpl = wave.tobytes() + b"\0" * 2 * 46  # 46 zero sample points after each sample (spec 6.1)

    presets = [(p, 0) for p in programs] + [(k, 128) for k in DRUM_KITS]
    phdr = b"".join(struct.pack("<20sHHHIII", _name(f"test {bank}:{p}"), p, bank, i, 0, 0, 0)
                    for i, (p, bank) in enumerate(presets))
    phdr += struct.pack("<20sHHHIII", _name("EOP"), 0, 0, len(presets), 0, 0, 0)
    pbag = b"".join(struct.pack("<HH", i, 0) for i in range(len(presets))) + struct.pack("<HH", len(presets), 0)
    pmod = b"\0" * 10
    pgen = b"".join(struct.pack("<Hh", 41, 0) for _ in presets) + struct.pack("<HH", 0, 0)  # 41 = instrument
    inst = struct.pack("<20sH", _name("sine"), 0) + struct.pack("<20sH", _name("EOI"), 1)
    ibag = struct.pack("<HH", 0, 0) + struct.pack("<HH", 3, 0)
    imod = b"\0" * 10
    igen = (struct.pack("<HBB", 43, 0, 127)  # keyRange 0-127
            + struct.pack("<Hh", 54, 1)  # sampleModes: loop continuously
            + struct.pack("<Hh", 53, 0)  # sampleID 0 (last generator of the zone)
            + struct.pack("<HH", 0, 0))
    shdr = struct.pack("<20sIIIIIBbHH", _name("sine440"), 0, n, 1000, 1000 + 100 * 400, SAMPLE_RATE, ROOT_KEY, 0, 0, 1)
    shdr += struct.pack("<20sIIIIIBbHH", _name("EOS"), 0, 0, 0, 0, 0, 0, 0, 0, 0)

    body = b"sfbk" + _list(
        b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"isng", b"EMU8000\0"),
        _chunk(b"INAM", b"mixrep test soundfont\0"),
    ) + _list(b"sdta", _chunk(b"smpl", smpl)) + _list(
        b"pdta", _chunk(b"phdr", phdr), _chunk(b"pbag", pbag), _chunk(b"pmod", pmod), _chunk(b"pgen", pgen),
        _chunk(b"inst", inst), _chunk(b"ibag", ibag), _chunk(b"imod", imod), _chunk(b"igen", igen),
        _chunk(b"shdr", shdr),
    )
    path = Path(path)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path

"""The settings file: one mix style in physical units (JSON), the one settings format of mixrep.

A settings file holds a :class:`~mixrep.styles.mix_style.MixStyle` (what an engineer sets in a DAW:
faders in dB, pans, cut-offs in Hz, EQ bands with gain and Q, compressors, sends, buses, master)
and the song it was made for (track names, the stem class of each track, the sample rate)::

    {
      "format": "mixrep.mix_style", "version": 1, "source": "mixrep export settings --seed 0",
      "sample_rate": 44100,
      "tracks": [{"name": "kick", "stem": "drums"}, {"name": "bass", "stem": "bass"}],
      "style": {"strips": {"kick": {"fader_db": 1.5, "pan": 0.0, "eq": [...], ...}, ...},
                "delay": {...} | null, "reverb": {...} | null, "master": {...}, "loudness_lufs": -14.0}
    }

``style`` is :meth:`MixStyle.to_dict`. The file is untrusted input: :func:`read_style_json` checks
every field (types, finite numbers, the ranges the renderer takes: ratio >= 1, frequencies in
``(0, Nyquist)``, feedback < 1, pan in [-1, 1], known EQ kinds, no unknown keys, a strip for every
track) and raises :class:`StyleFileError` naming the file, the field path
(``style.strips.kick.eq[1].q``) and the fix. :func:`write_style_json` checks the same and writes
the file atomically.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixrep.audio.stems import stem_index
from mixrep.constants import STEMS
from mixrep.errors import MixrepError
from mixrep.files import atomic_write_text
from mixrep.styles.mix_style import (
    EQ_KINDS,
    ChannelStrip,
    CompressorSettings,
    DelayBus,
    EqBand,
    LimiterSettings,
    MasterBus,
    MixStyle,
    MixStyleConfig,
    ReverbBus,
    sample_mix_style,
)

FORMAT = "mixrep.mix_style"
"""The ``format`` value of every settings file."""

VERSION = 1
"""The settings-file version this code writes and reads."""


MAX_GAIN_DB = 96.0
"""Largest gain magnitude (dB) a fader, EQ band, make-up, threshold or send may have."""


class StyleFileError(MixrepError):
    """A settings file is missing, not JSON, of another format or version, or holds a bad field."""


@dataclass(frozen=True)
class StyleFile:
    """A settings file as read: the style and the song it was made for.

    Attributes:
        style: the mix style.
        names: the track names, in the song's order.
        stems: the stem class of each track (one of :data:`~mixrep.constants.STEMS`).
        sample_rate: Hz the settings were made at (frequencies lie below its Nyquist).
        source: free text saying what wrote the file.
        version: the format version.
        conversion: for settings converted from the differentiable console, what did not convert
            or converted approximately (:class:`~mixrep.console.style_convert.ConversionReport`'s
            ``to_dict``); kept as written, never interpreted.
    """

    style: MixStyle
    names: tuple[str, ...]
    stems: tuple[str, ...]
    sample_rate: int
    source: str = ""
    version: int = VERSION
    conversion: dict | None = None


# ----------------------------------------------------------------------------- checks


class _Checker:
    """Field checks that raise :class:`StyleFileError` naming the file and the field path."""

    def __init__(self, where: str, sample_rate: float | None, labels: bool = True) -> None:
        self.where = where
        self.labels = labels
        self.nyquist = None if sample_rate is None else sample_rate / 2.0

    def fail(self, path: str, problem: str, fix: str) -> StyleFileError:
        return StyleFileError(f"{self.where}: {path} {problem}; {fix}")

    def mapping(self, value: Any, path: str, fields: Sequence[str], required: Sequence[str] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"is {type(value).__name__}, not an object", f"write an object with {list(fields)}")
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise self.fail(path, f"has unknown field(s) {unknown}", f"use only {list(fields)} (check the spelling)")
        missing = [f for f in required if f not in value]
        if missing:
            raise self.fail(path, f"lacks {missing}", f"add {missing}")
        return value

    def number(self, value: Any, path: str, low: float, high: float, *, low_open: bool = False,
               high_open: bool = False, unit: str = "") -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path, f"is {value!r}, not a number", f"write a number{unit}")
        value = float(value)
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        if not math.isfinite(value):
            raise self.fail(path, f"is {value}", f"write a finite number in {interval}{unit}")
        if value < low or value > high or (low_open and value == low) or (high_open and value == high):
            raise self.fail(path, f"is {value:g}, outside {interval}{unit}", f"write a value in {interval}")
        return value

    def optional(self, value: Any, path: str, *args, **kwargs) -> float | None:
        return None if value is None else self.number(value, path, *args, **kwargs)

    def frequency(self, value: Any, path: str) -> float:
        top = self.nyquist if self.nyquist is not None else 1e6
        return self.number(value, path, 0.0, top, low_open=True, high_open=True, unit=" Hz (below Nyquist)")

    def gain(self, value: Any, path: str) -> float:
        return self.number(value, path, -MAX_GAIN_DB, MAX_GAIN_DB, unit=" dB")

    def eq(self, value: Any, path: str) -> tuple[EqBand, ...]:
        if not isinstance(value, list):
            raise self.fail(path, f"is {type(value).__name__}, not a list", "write a list of EQ bands (or [])")
        bands = []
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            band = self.mapping(item, where, ("kind", "frequency_hz", "gain_db", "q"), ("kind", "frequency_hz", "gain_db"))
            if band["kind"] not in EQ_KINDS:
                raise self.fail(f"{where}.kind", f"is {band['kind']!r}", f"use one of {list(EQ_KINDS)}")
            bands.append(EqBand(band["kind"], self.frequency(band["frequency_hz"], f"{where}.frequency_hz"),
                                self.gain(band["gain_db"], f"{where}.gain_db"),
                                self.number(band.get("q", 0.7071), f"{where}.q", 0.0, 100.0, low_open=True)))
        return tuple(bands)

    def compressor(self, value: Any, path: str) -> CompressorSettings | None:
        if value is None:
            return None
        c = self.mapping(value, path, [f.name for f in dataclasses.fields(CompressorSettings)],
                         ("threshold_db", "ratio", "attack_ms", "release_ms"))
        return CompressorSettings(
            threshold_db=self.gain(c["threshold_db"], f"{path}.threshold_db"),
            ratio=self.number(c["ratio"], f"{path}.ratio", 1.0, 1000.0, unit=" (>= 1)"),
            attack_ms=self.number(c["attack_ms"], f"{path}.attack_ms", 0.0, 10_000.0, low_open=True, unit=" ms"),
            release_ms=self.number(c["release_ms"], f"{path}.release_ms", 0.0, 10_000.0, low_open=True, unit=" ms"),
            makeup_db=self.gain(c.get("makeup_db", 0.0), f"{path}.makeup_db"))

    def strip(self, value: Any, path: str) -> ChannelStrip:
        s = self.mapping(value, path, [f.name for f in dataclasses.fields(ChannelStrip)])
        return ChannelStrip(
            fader_db=self.gain(s.get("fader_db", 0.0), f"{path}.fader_db"),
            pan=self.number(s.get("pan", 0.0), f"{path}.pan", -1.0, 1.0, unit=" (-1 left, 1 right)"),
            width=self.optional(s.get("width"), f"{path}.width", 0.0, 4.0, unit=" (0 mono, 1 as recorded)"),
            highpass_hz=None if s.get("highpass_hz") is None else self.frequency(s["highpass_hz"], f"{path}.highpass_hz"),
            lowpass_hz=None if s.get("lowpass_hz") is None else self.frequency(s["lowpass_hz"], f"{path}.lowpass_hz"),
            eq=self.eq(s.get("eq", []), f"{path}.eq"),
            compressor=self.compressor(s.get("compressor"), f"{path}.compressor"),
            saturation_drive_db=self.optional(s.get("saturation_drive_db"), f"{path}.saturation_drive_db", 0.0, 60.0,
                                              unit=" dB"),
            delay_send_db=self.optional(s.get("delay_send_db"), f"{path}.delay_send_db", -MAX_GAIN_DB, 24.0, unit=" dB"),
            reverb_send_db=self.optional(s.get("reverb_send_db"), f"{path}.reverb_send_db", -MAX_GAIN_DB, 24.0,
                                         unit=" dB"))

    def style(self, value: Any, path: str) -> MixStyle:
        s = self.mapping(value, path, ("strips", "delay", "reverb", "master", "loudness_lufs"), ("strips",))
        strips = s["strips"]
        if not isinstance(strips, dict) or not strips:
            raise self.fail(f"{path}.strips", "is not a non-empty object", "write {\"<track or stem>\": {strip}, ...}")
        delay = reverb = None
        if s.get("delay") is not None:
            d = self.mapping(s["delay"], f"{path}.delay", ("delay_seconds", "feedback"), ("delay_seconds", "feedback"))
            delay = DelayBus(self.number(d["delay_seconds"], f"{path}.delay.delay_seconds", 0.0, 10.0, low_open=True,
                                         unit=" s"),
                             self.number(d["feedback"], f"{path}.delay.feedback", 0.0, 1.0, high_open=True,
                                         unit=" (linear, below 1)"))
        if s.get("reverb") is not None:
            fields = ("room_size", "damping", "width")
            r = self.mapping(s["reverb"], f"{path}.reverb", fields, fields)
            reverb = ReverbBus(*(self.number(r[k], f"{path}.reverb.{k}", 0.0, 1.0) for k in fields))
        m = self.mapping(s.get("master") or {}, f"{path}.master", ("eq", "compressor", "limiter"))
        limiter = None
        if m.get("limiter") is not None:
            lim = self.mapping(m["limiter"], f"{path}.master.limiter", ("drive_db", "ceiling_db", "release_ms"),
                               ("drive_db", "ceiling_db", "release_ms"))
            limiter = LimiterSettings(
                self.number(lim["drive_db"], f"{path}.master.limiter.drive_db", 0.0, 48.0, unit=" dB"),
                self.number(lim["ceiling_db"], f"{path}.master.limiter.ceiling_db", -60.0, 0.0, unit=" dBFS"),
                self.number(lim["release_ms"], f"{path}.master.limiter.release_ms", 0.0, 10_000.0, low_open=True,
                            unit=" ms"))
        master = MasterBus(eq=self.eq(m.get("eq", []), f"{path}.master.eq"),
                           compressor=self.compressor(m.get("compressor"), f"{path}.master.compressor"),
                           limiter=limiter)
        return MixStyle(
            strips={self.name(k, f"{path}.strips"): self.strip(v, f"{path}.strips.{k}") for k, v in strips.items()},
            delay=delay, reverb=reverb, master=master,
            loudness_lufs=self.number(s.get("loudness_lufs", -14.0), f"{path}.loudness_lufs", -70.0, 0.0, unit=" LUFS"))

    def name(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or (self.labels and (not value.strip() or any(ord(c) < 32 for c in value))):
            raise self.fail(path, f"has the name {value!r}", "name tracks with non-empty text without control characters")
        return value

    def song(self, style: MixStyle, names: Sequence[Any], stems: Sequence[Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Track names and stem classes checked, and a strip for every track."""
        if len(names) != len(stems) or not names:
            raise self.fail("tracks", f"has {len(names)} names and {len(stems)} stem classes",
                            "give one name and one stem class per track, at least one track")
        names = tuple(self.name(n, f"tracks[{i}].name") for i, n in enumerate(names))
        if len(set(names)) != len(names):
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise self.fail("tracks", f"repeats the name(s) {repeated}", "give every track its own name")
        classes = []
        for i, stem in enumerate(stems):
            try:
                classes.append(STEMS[stem_index(stem)])
            except (ValueError, IndexError, TypeError):
                raise self.fail(f"tracks[{i}].stem", f"is {stem!r}", f"use one of {list(STEMS)}") from None
        for i, (name, stem) in enumerate(zip(names, classes)):
            if name not in style.strips and stem not in style.strips:
                raise self.fail(f"tracks[{i}]", f"({name!r}, stem {stem!r}) has no strip in style.strips",
                                f"add a strip named {name!r} or {stem!r} (it has {sorted(style.strips)})")
        return names, tuple(classes)


# ----------------------------------------------------------------------------- read / write


def fit_to_rate(style: MixStyle, sample_rate: int) -> MixStyle:
    """``style`` as the renderer applies it at ``sample_rate``: EQ bands above 0.45 of the rate and
    cut-offs above 0.475 of it moved down there (:func:`~mixrep.styles.mix_style.equalise`,
    :func:`~mixrep.audio.primitives.butterworth`), so every frequency lies below Nyquist."""
    def bands(items: tuple[EqBand, ...]) -> tuple[EqBand, ...]:
        return tuple(dataclasses.replace(b, frequency_hz=min(b.frequency_hz, 0.45 * sample_rate)) for b in items)

    def cut(hz: float | None) -> float | None:
        return None if hz is None else min(hz, 0.475 * sample_rate)

    strips = {name: dataclasses.replace(s, eq=bands(s.eq), highpass_hz=cut(s.highpass_hz), lowpass_hz=cut(s.lowpass_hz))
              for name, s in style.strips.items()}
    return dataclasses.replace(style, strips=strips, master=dataclasses.replace(style.master, eq=bands(style.master.eq)))


def sample_style_for_song(names: Sequence[str], stems: Sequence[str | int], sample_rate: int, seed: int,
                          config: MixStyleConfig | None = None) -> MixStyle:
    """A random style for a song: a strip per track and per stem class (:func:`sample_mix_style`),
    fitted to the rate (:func:`fit_to_rate`); the same seed gives the same style."""
    rng = np.random.default_rng(seed)
    style = sample_mix_style(config or MixStyleConfig(), rng, names=[*names, *(STEMS[stem_index(s)] for s in stems)])
    return fit_to_rate(style, sample_rate)


def check_style(style: MixStyle, names: Sequence[str], stems: Sequence[str | int], sample_rate: int,
                where: str = "mix style", labels: bool = True) -> StyleFile:
    """Check a style for a song as :func:`read_style_json` checks a file; returns the checked :class:`StyleFile`.

    ``labels=False`` takes any track names (file names may hold anything; a writer escapes them).

    Raises:
        StyleFileError: naming ``where``, the field path and the fix.
    """
    checker = _Checker(where, None, labels)
    rate = checker.number(sample_rate, "sample_rate", 1000, 1_000_000, unit=" Hz")
    if int(rate) != rate:
        raise checker.fail("sample_rate", f"is {sample_rate}", "write a whole number of Hz")
    checker.nyquist = rate / 2.0
    checked = checker.style(json.loads(json.dumps(style.to_dict())), "style")  # tuples become lists
    names, classes = checker.song(checked, list(names), list(stems))
    return StyleFile(checked, names, classes, int(rate))


def style_to_json(style_file: StyleFile) -> str:
    """The text of a settings file (see the module docstring)."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "source": style_file.source,
        "sample_rate": style_file.sample_rate,
        "tracks": [{"name": n, "stem": s} for n, s in zip(style_file.names, style_file.stems)],
        "style": style_file.style.to_dict(),
    }
    if style_file.conversion is not None:
        document["conversion"] = style_file.conversion
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def write_style_json(path: str | os.PathLike, style: MixStyle, *, names: Sequence[str], stems: Sequence[str | int],
                     sample_rate: int, source: str = "mixrep", conversion: dict | None = None) -> Path:
    """Check ``style`` for the song and write it as a settings file, atomically.

    Args:
        path: the ``.json`` file to write (replaced whole, or left untouched on error).
        style: the mix style.
        names: track names in the song's order.
        stems: each track's stem class (name or index).
        sample_rate: Hz.
        source: what made the settings (free text, kept in the file).
        conversion: the conversion report of settings converted from a console (JSON-able).

    Raises:
        StyleFileError: a setting outside what the renderer takes (nothing is written).
    """
    checked = dataclasses.replace(check_style(style, names, stems, sample_rate, where=f"settings file {path}"),
                                  source=str(source), conversion=conversion)
    return atomic_write_text(path, style_to_json(checked))


def read_style_json(path: str | os.PathLike) -> StyleFile:
    """Read and check a settings file (untrusted input).

    Raises:
        StyleFileError: missing or unreadable file, not JSON, another format or a newer version, or a
            bad field (naming the file, the field path such as ``style.strips.kick.eq[1].q`` and the fix).
    """
    path = Path(path)
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "does not exist"
        raise StyleFileError(f"settings file {path} {problem}; pass a settings .json (write one with "
                             f"`mixrep export settings`)")
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text, parse_constant=lambda c: float("nan"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise StyleFileError(f"settings file {path} cannot be read as JSON ({e}); pass a file that "
                             f"`mixrep export settings` or write_style_json wrote") from e
    checker = _Checker(f"settings file {path}", None)
    top = ("format", "version", "source", "sample_rate", "tracks", "style", "conversion")
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise checker.fail("format", f"is {found!r}, not {FORMAT!r}", "pass a mixrep settings file")
    checker.mapping(document, "(top level)", top, ("version", "sample_rate", "tracks", "style"))
    version = document["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise checker.fail("version", f"is {version!r}", f"write {VERSION}")
    if version > VERSION:
        raise checker.fail("version", f"is {version}, newer than this mixrep reads ({VERSION})", "upgrade mixrep")
    source = document.get("source", "")
    if not isinstance(source, str):
        raise checker.fail("source", f"is {type(source).__name__}", "write text or leave it out")
    rate = checker.number(document["sample_rate"], "sample_rate", 1000, 1_000_000, unit=" Hz")
    if int(rate) != rate:
        raise checker.fail("sample_rate", f"is {rate:g}", "write a whole number of Hz")
    checker.nyquist = rate / 2.0
    tracks = document["tracks"]
    if not isinstance(tracks, list):
        raise checker.fail("tracks", f"is {type(tracks).__name__}", "write a list of {\"name\": ..., \"stem\": ...}")
    rows = [checker.mapping(t, f"tracks[{i}]", ("name", "stem"), ("name", "stem")) for i, t in enumerate(tracks)]
    for i, row in enumerate(rows):
        if not isinstance(row["stem"], str):
            raise checker.fail(f"tracks[{i}].stem", f"is {row['stem']!r}", f"use one of {list(STEMS)}")
    style = checker.style(document["style"], "style")
    names, stems = checker.song(style, [r["name"] for r in rows], [r["stem"] for r in rows])
    conversion = document.get("conversion")
    if conversion is not None and not isinstance(conversion, dict):
        raise checker.fail("conversion", f"is {type(conversion).__name__}", "write an object or leave it out")
    return StyleFile(style, names, stems, int(rate), source, version, conversion)

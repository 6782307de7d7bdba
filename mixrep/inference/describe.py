"""What an encoder's settings decoder says about a mix, in engineer's units: ``mixrep describe``.

:func:`describe_embeddings` decodes the clips of one song
(:meth:`~mixrep.models.encoder.MixStyleEncoder.decode_settings`), averages the clips and returns a
:class:`Description`: every entry of :mod:`mixrep.styles.settings_vector` back in physical units
(dB, Hz, seconds, pan), presence as a probability, and the spread over the clips as the
confidence of a value. :func:`compare_embeddings` does the same for the relative decoder: what to
change to turn mix A into mix B (:class:`Comparison`).

``Description.to_text()`` is what the terminal shows: per stem and for the master, the settings a
mix engineer would name, processors whose presence is below one half left out, EQ points within
1 dB of flat left out (``--all`` shows every entry).

Shape:
    the clips' decoder inputs ``(clips, size)`` (:meth:`~mixrep.models.encoder.MixStyleEncoder.decoder_input`:
    the encoder's representation or its embedding) -> one :class:`Description`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mixrep.constants import STEMS
from mixrep.files import check_output_file, find_stem_files
from mixrep.models.decoder import SettingsDecoder
from mixrep.models.encoder import MixStyleEncoder
from mixrep.styles.settings_vector import (
    EQ_FREQUENCIES_HZ,
    INDEX,
    MASTER_EQ_FREQUENCIES_HZ,
    PRESENT,
    SETTINGS,
    Setting,
    denormalise,
)

FLAT_EQ_DB = 1.0
"""EQ points closer than this to 0 dB are not reported."""


@dataclass(frozen=True)
class Reading:
    """One decoded setting.

    Attributes:
        name: the settings-vector entry (``bass.eq_150hz_db``, ``master.limiter``...).
        group: its settings group (``balance``, ``eq``...).
        unit: the physical unit (presence entries: ``""``).
        value: the value in ``unit`` (presence entries: the probability the processor is used).
        spread: the standard deviation over the clips, in the same unit (0 for one clip).
    """

    name: str
    group: str
    unit: str
    value: float
    spread: float


@dataclass(frozen=True)
class Description:
    """The decoded settings of one mix (see the module docstring); ``readings`` in :data:`SETTINGS` order."""

    readings: tuple[Reading, ...]
    clips: int

    def __getitem__(self, name: str) -> Reading:
        return self.readings[INDEX[name]]

    def present(self, name: str) -> bool:
        """Whether the processor ``name`` (a presence entry) is decoded as used."""
        return self[name].value >= PRESENT

    def to_dict(self) -> dict:
        """JSON-ready: ``{"clips": n, "settings": {name: {"group", "unit", "value", "spread"}}}``."""
        return {"clips": self.clips, "settings": {r.name: {"group": r.group, "unit": r.unit, "value": r.value,
                                                            "spread": r.spread} for r in self.readings}}

    def to_text(self, every_entry: bool = False) -> str:
        """One line per stem and one for the master, in engineer's words (see the module docstring)."""
        return "\n".join(f"{part}: {'; '.join(self._phrases(part, every_entry)) or 'nothing decoded as used'}"
                         for part in (*STEMS, "master"))

    def _value(self, name: str, every_entry: bool, presence: str = "") -> Reading | None:
        if presence and not every_entry and not self.present(presence):
            return None
        return self[name]

    def _phrases(self, part: str, every_entry: bool) -> list[str]:
        def with_spread(reading: Reading, text: str) -> str:
            return f"{text} (+-{reading.spread:.1f})" if reading.spread >= 0.05 * max(abs(reading.value), 1.0) else text

        def chance(name: str) -> str:
            return f"p={self[name].value:.2f}"

        phrases: list[str] = []
        if part == "master":
            eq = [(f, self[f"master.eq_{f:g}hz_db"]) for f in MASTER_EQ_FREQUENCIES_HZ]
            phrases += [with_spread(r, f"EQ {r.value:+.1f} dB at {_hz(f)}") for f, r in eq
                        if every_entry or abs(r.value) >= FLAT_EQ_DB]
            for processor, label in (("compressor", "bus compressor {:.1f} dB gain reduction"),
                                     ("limiter", "limiter driven {:.1f} dB")):
                key = "compressor_reduction_db" if processor == "compressor" else "limiter_drive_db"
                reading = self._value(f"master.{key}", every_entry, f"master.{processor}")
                if reading is not None:
                    phrases.append(with_spread(reading, label.format(reading.value)) + f" ({chance(f'master.{processor}')})")
            reverb = self._value("bus.reverb_room_size", every_entry, "bus.reverb")
            if reverb is not None:
                phrases.append(f"reverb bus room size {reverb.value:.2f}, damping {self['bus.reverb_damping'].value:.2f}"
                               f" ({chance('bus.reverb')})")
            delay = self._value("bus.delay_seconds", every_entry, "bus.delay")
            if delay is not None:
                phrases.append(f"delay bus {1000 * delay.value:.0f} ms, feedback {self['bus.delay_feedback'].value:.2f}"
                               f" ({chance('bus.delay')})")
            return phrases
        fader, pan, width = self[f"{part}.fader_db"], self[f"{part}.pan"], self[f"{part}.width"]
        phrases.append(with_spread(fader, f"fader {fader.value:+.1f} dB against the stems' mean"))
        if every_entry or abs(pan.value) >= 0.1:
            side = "L" if pan.value < 0 else "R"
            phrases.append(f"pan {side}{abs(100 * pan.value):.0f}")
        if every_entry or abs(width.value - 1.0) >= 0.15:
            phrases.append(with_spread(width, f"width {width.value:.2f}"))
        for processor, text in (("highpass", "high-pass at {}"), ("lowpass", "low-pass at {}")):
            reading = self._value(f"{part}.{processor}_hz", every_entry, f"{part}.{processor}")
            if reading is not None:
                phrases.append(text.format(_hz(reading.value)) + f" ({chance(f'{part}.{processor}')})")
        eq = [(f, self[f"{part}.eq_{f:g}hz_db"]) for f in EQ_FREQUENCIES_HZ]
        shown = [f"{r.value:+.1f} dB at {_hz(f)}" for f, r in eq if every_entry or abs(r.value) >= FLAT_EQ_DB]
        if shown:
            phrases.append("EQ " + ", ".join(shown))
        for processor, key, text in (("compressor", "compressor_reduction_db", "compressor {:.1f} dB gain reduction"),
                                     ("saturation", "saturation_drive_db", "saturation driven {:.1f} dB"),
                                     ("delay_send", "delay_send_db", "delay send {:.1f} dB"),
                                     ("reverb_send", "reverb_send_db", "reverb send {:.1f} dB")):
            reading = self._value(f"{part}.{key}", every_entry, f"{part}.{processor}")
            if reading is not None:
                phrases.append(with_spread(reading, text.format(reading.value)) + f" ({chance(f'{part}.{processor}')})")
        return phrases


@dataclass(frozen=True)
class Comparison:
    """What the relative decoder says turns mix A into mix B: value entries only, as differences
    ``B - A`` in their units (dB, pan...; entries in octaves, such as cut-offs and delay times, as
    octaves), averaged over clip pairs."""

    changes: tuple[Reading, ...]

    def to_dict(self) -> dict:
        """JSON-ready: ``{name: {"group", "unit", "change", "spread"}}``."""
        return {r.name: {"group": r.group, "unit": r.unit, "change": r.value, "spread": r.spread} for r in self.changes}

    def to_text(self, every_entry: bool = False) -> str:
        """The changes larger than a quarter of each setting's typical range, largest first."""
        rows = [(abs(r.value) / SETTINGS[INDEX[r.name]].scale, r) for r in self.changes]
        rows = sorted((row for row in rows if every_entry or row[0] >= 0.25), key=lambda row: -row[0])
        if not rows:
            return "no setting differs by more than a quarter of its typical range"
        return "\n".join(f"{r.name}: {r.value:+.2f} {r.unit}" + (f" (+-{r.spread:.2f})" if r.spread else "")
                         for _, r in rows)


def _hz(frequency_hz: float) -> str:
    return f"{frequency_hz / 1000:.1f} kHz" if frequency_hz >= 1000 else f"{frequency_hz:.0f} Hz"


def _readings(physical: np.ndarray) -> tuple[Reading, ...]:
    """``(clips, NUM_SETTINGS)`` physical values -> one reading per setting (mean and std over clips)."""
    mean, spread = physical.mean(axis=0), physical.std(axis=0)
    return tuple(Reading(s.name, s.group, s.unit, float(m), float(d)) for s, m, d in zip(SETTINGS, mean, spread))


def _physical(setting: Setting, values: np.ndarray) -> np.ndarray:
    return np.asarray([denormalise(setting, float(v)) for v in values])


@torch.no_grad()
def describe_embeddings(model: MixStyleEncoder, clip_embeddings: np.ndarray) -> Description:
    """Decode the clips' decoder inputs ``(clips, size)`` of one mix into a :class:`Description`.

    Each clip is decoded and turned into physical units, then the clips are averaged (a presence:
    the mean probability).

    Raises:
        ValueError: the encoder has no settings decoder (a checkpoint trained for retrieval only).
    """
    device = next(model.parameters()).device
    embeddings = torch.as_tensor(np.asarray(clip_embeddings, dtype=np.float32), device=device)
    outputs = SettingsDecoder.presence_probabilities(model.decode_settings(embeddings)).cpu().numpy()
    physical = np.stack([_physical(s, outputs[:, i]) for i, s in enumerate(SETTINGS)], axis=1)
    return Description(_readings(physical), len(outputs))


@torch.no_grad()
def compare_embeddings(model: MixStyleEncoder, embeddings_a: np.ndarray, embeddings_b: np.ndarray) -> Comparison:
    """What turns mix A into mix B, from their clips' decoder inputs ``(clips_a, size)`` and ``(clips_b, size)``:
    the relative decoder on every clip pair, averaged.

    Raises:
        ValueError: the encoder has no settings decoder.
    """
    device = next(model.parameters()).device
    a = torch.as_tensor(np.asarray(embeddings_a, dtype=np.float32), device=device)
    b = torch.as_tensor(np.asarray(embeddings_b, dtype=np.float32), device=device)
    pairs_a = a.repeat_interleave(len(b), dim=0)
    pairs_b = b.repeat(len(a), 1)
    normalised = model.decode_relative(pairs_a, pairs_b).cpu().numpy()
    scales = np.asarray([s.scale for s in SETTINGS])
    changes = normalised * scales  # a difference of normalised values: physical units (octaves for log2 ones)
    value_entries = [i for i, s in enumerate(SETTINGS) if s.kind == "value"]
    readings = _readings(changes)
    return Comparison(tuple(_as_change(readings[i]) for i in value_entries))


def check_json_output(path: str | Path, inputs: Sequence[str | Path | None]) -> Path:
    """Where ``mixrep describe --json`` may write, checked before any work: a writable file that is
    none of the files read (an input file, a stem of an input folder, the checkpoint).

    Raises:
        OutputError: naming the path and what is wrong.
    """
    files: list[Path] = []
    for item in inputs:
        if item is not None:
            item = Path(item)
            files += list(find_stem_files(item).values()) if item.is_dir() else [item]
    return check_output_file(path, "--json", inputs=files)


def _as_change(reading: Reading) -> Reading:
    """A change of a setting kept in octaves (cut-offs, delay time) is reported in octaves."""
    setting = SETTINGS[INDEX[reading.name]]
    return dataclasses.replace(reading, unit="octaves") if setting.log2 else reading


__all__ = ["Comparison", "Description", "Reading", "check_json_output", "compare_embeddings", "describe_embeddings"]

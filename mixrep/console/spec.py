"""The console a Stage 2 head drives, and the levels its inputs are aligned to.

:class:`ConsoleSpec` is stored in head checkpoints (:mod:`mixrep.models.checkpoint`): the sample
rate, the chain of every track strip and of every stem-class bus, and the processors' options.
Training (:mod:`mixrep.training.head_data`) and ``mixrep mix`` (:mod:`mixrep.inference`) both
align raw tracks with :func:`align_track_levels` (each to :data:`TRACK_RMS_DB` dBFS RMS, silent
tracks stay silent), so fader settings are relative to one fixed level, and normalise references
to :data:`REFERENCE_LUFS` (:func:`normalise_loudness`), the level the encoder was trained on.

Shape:
    tracks ``(..., tracks, 2, samples)``; reference stems ``(4, 2, samples)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from mixrep.console.graph import MixingGraph, build_console
from mixrep.console.processors import make_processors
from mixrep.console.strips import StripLayout
from mixrep.constants import STEMS
from mixrep.styles.mix_style import integrated_loudness

TRACK_RMS_DB = -20.0
"""Level every raw track is aligned to before mixing (dBFS RMS over both channels)."""
REFERENCE_LUFS = -14.0
"""Integrated loudness of every reference (the mixing-style space's default target)."""
SILENT_RMS = 10.0 ** (-90.0 / 20.0)


def level_gains(rms: np.ndarray, level_db: float = TRACK_RMS_DB) -> np.ndarray:
    """Linear gains (same shape as ``rms``) that put tracks of RMS ``rms`` at ``level_db`` dBFS RMS
    (1 for silent tracks, below -90 dBFS)."""
    return np.where(rms > SILENT_RMS, 10.0 ** (level_db / 20.0) / np.maximum(rms, SILENT_RMS), 1.0)


def align_track_levels(tracks: np.ndarray | Tensor, level_db: float = TRACK_RMS_DB) -> np.ndarray | Tensor:
    """Scale each track to ``level_db`` dBFS RMS (silent tracks unchanged; :func:`level_gains`).

    Shape:
        ``(..., tracks, 2, samples)`` -> same (NumPy in, NumPy out; tensor in, tensor out).
    """
    if isinstance(tracks, Tensor):
        rms = tracks.pow(2).mean((-1, -2), keepdim=True).sqrt()
        return torch.where(rms > SILENT_RMS, tracks * (10.0 ** (level_db / 20.0) / rms.clamp(min=SILENT_RMS)), tracks)
    rms = np.sqrt(np.mean(np.square(tracks, dtype=np.float64), axis=(-1, -2), keepdims=True))
    return (tracks * level_gains(rms, level_db)).astype(np.float32)


def normalise_loudness(stems: np.ndarray, sample_rate: int, lufs: float = REFERENCE_LUFS) -> np.ndarray:
    """Scale stems ``(4, 2, samples)`` jointly so their sum sits at ``lufs`` (silence unchanged)."""
    loudness = integrated_loudness(stems.sum(0), sample_rate)
    if not math.isfinite(loudness):
        return stems.astype(np.float32)
    return (stems * np.float32(10.0 ** ((lufs - loudness) / 20.0))).astype(np.float32)


def stem_groups(names: list[str], stems: list[str]) -> dict[str, list[str]]:
    """Subgroups by stem class, in :data:`STEMS` order (classes without tracks left out)."""
    return {s: [n for n, c in zip(names, stems) if c == s] for s in STEMS if s in stems}


@dataclass(frozen=True)
class ConsoleSpec:
    """The console a head drives (stored in head checkpoints).

    Attributes:
        sample_rate: Hz (the encoder's rate).
        chain, group_chain: chain letters of every track strip and of every stem-class bus.
        processor_options: constructor overrides per processor type (e.g. EQ bins).
    """

    sample_rate: int = 22050
    chain: str = "ecnsgdr"
    group_chain: str = "ecnsgdr"
    processor_options: dict = field(default_factory=lambda: {"eq": {"bins": 256}, "reverb": {"ir_seconds": 1.5}})

    def processors(self) -> dict:
        return make_processors(self.sample_rate, **self.processor_options)

    def graph(self, names: list[str], stems: list[str]) -> MixingGraph:
        return build_console(list(names), stem_groups(list(names), list(stems)), self.chain, self.group_chain)

    def layouts(self, processors: dict) -> tuple[StripLayout, StripLayout]:
        return StripLayout(self.chain, processors), StripLayout(self.group_chain, processors)

    def to_dict(self) -> dict:
        return {"sample_rate": self.sample_rate, "chain": self.chain, "group_chain": self.group_chain,
                "processor_options": self.processor_options}

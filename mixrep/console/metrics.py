"""How well a fitted console reproduces a known one: per-track level and pan in the mix.

Processor parameters are not identifiable one by one (an EQ's overall level trades against the
fader, a subgroup fader against all its tracks), so the comparison is made where it is
identifiable: every track is rendered *alone* through the whole console (others silent) and its
level and pan in the output are measured.

* ``gain_db``: energy of the solo render over the energy of the dry track, both averaged over
  the two channels (10 log10), i.e. the track's effective gain in the mix, effects included.
* ``pan``: ``(4 / pi) atan2(rms_right, rms_left) - 1`` of the solo render, the inverse of the
  constant-power pan law (-1 hard left, +1 hard right).

Shape:
    Stems ``(tracks, 2, samples)``; results ``(tracks,)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mixrep.console.console import MixingConsole

SILENCE = 1e-12
"""Mean-square floor below which a track counts as silent (no level, pan 0)."""


@dataclass
class TrackLevels:
    """Per-track effective gain (dB) and pan of a console, ``(tracks,)`` each."""

    gain_db: Tensor
    pan: Tensor


@torch.no_grad()
def track_levels(console: MixingConsole, stems: Tensor) -> TrackLevels:
    """Solo-render every track through ``console`` and measure its level and pan."""
    gains, pans = [], []
    for k in range(stems.shape[0]):
        solo = torch.zeros_like(stems)
        solo[k] = stems[k]
        out = console.render_long(solo).double()
        energy = (out**2).mean(-1)  # (2,)
        dry = float((stems[k].double() ** 2).mean())
        gains.append(10.0 * math.log10(max(float(energy.mean()), SILENCE) / max(dry, SILENCE)))
        rms = torch.sqrt(energy)
        pans.append(float(torch.atan2(rms[1], rms[0])) * 4.0 / math.pi - 1.0)
    return TrackLevels(torch.tensor(gains), torch.tensor(pans))


@dataclass
class LevelErrors:
    """Absolute per-track errors of a fitted console against the true one."""

    gain_db: Tensor
    pan: Tensor

    def summary(self) -> dict[str, float]:
        return {"gain_error_db_mean": float(self.gain_db.mean()),
                "gain_error_db_max": float(self.gain_db.max()),
                "pan_error_mean": float(self.pan.mean()), "pan_error_max": float(self.pan.max())}


def level_errors(fitted: MixingConsole, true: MixingConsole, stems: Tensor) -> LevelErrors:
    """``|fitted - true|`` of :func:`track_levels` per track."""
    a, b = track_levels(fitted, stems), track_levels(true, stems)
    return LevelErrors((a.gain_db - b.gain_db).abs(), (a.pan - b.pan).abs())

"""Learning-rate schedules."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.01) -> float:
    """Multiplier of the base learning rate: linear warmup, then cosine decay to ``min_ratio``.

    ``step`` counts optimiser steps from 0; the multiplier is ``(step + 1) / warmup_steps`` during
    warmup and reaches ``min_ratio`` at ``total_steps``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

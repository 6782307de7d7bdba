"""Shared helpers for the console tests: small processors at a low sample rate."""

from __future__ import annotations

import math

import pytest
import torch

from mixrep.console.graph import PROCESSOR_TYPES, MixingGraph
from mixrep.console.processors import DRY_WET
from mixrep.console.processors import make_processors

TEST_RATE = 8000
SMALL = dict(reverb={"ir_seconds": 0.25}, delay={"taps": 4, "slot_ms": 50.0},
             compressor={"max_time_constant_ms": 30.0}, noisegate={"max_time_constant_ms": 30.0})


@pytest.fixture(autouse=True)
def one_thread():
    """Console tests use small tensors: intra-op threads only add synchronisation, and on a
    loaded machine a stalled thread makes every op wait (a 15 s test took 15 min with two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def small_processors():
    return make_processors(TEST_RATE, **SMALL)


def harmonic_tracks(f0s, seconds: float, rate: int = TEST_RATE, tremolo_hz=None, sharpness: int = 2,
                    harmonics: int = 5, level: float = 0.15, right_gain: float = 0.8,
                    noise: float = 0.01) -> torch.Tensor:
    """Harmonic tones (one track per ``f0``) with a tremolo each, the right channel a quieter copy
    plus a little noise: ``(tracks, 2, samples)``."""
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * rate)) / rate
    tremolo_hz = tremolo_hz or [0.7 + i for i in range(len(f0s))]
    tracks = []
    for f0, rate_hz in zip(f0s, tremolo_hz):
        envelope = (0.5 + 0.5 * torch.sin(2 * math.pi * rate_hz * t)) ** sharpness
        tone = sum(torch.sin(2 * math.pi * f0 * h * t) / h for h in range(1, harmonics + 1)) * envelope * level
        tracks.append(torch.stack([tone, right_gain * tone + noise * torch.randn(tone.shape, generator=gen)]))
    return torch.stack(tracks)


def random_params(graph: MixingGraph, processors, seed: int = 0, dtype=torch.float32):
    """Random raw parameters and dry/wet logits for every processor node of ``graph``."""
    gen = torch.Generator().manual_seed(seed)
    params = {}
    for t, n in graph.type_counts().items():
        if t in PROCESSOR_TYPES:
            params[t] = processors[t].random_parameters(n, gen, dtype=dtype)
            params[t][DRY_WET] = torch.randn(n, generator=gen, dtype=torch.float64).to(dtype)
    return params

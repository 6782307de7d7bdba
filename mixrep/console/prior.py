"""A musical prior over console parameters, in physical units.

Draws settings a mixing engineer might choose (fader and pan, a few EQ bands, moderate compression,
a gentle gate, one to three echoes, a short-to-medium reverb) and maps them onto the processors'
raw parameters through their ``from_physical``. Used to render targets with known parameters
(the convergence benchmark, ``mixrep console make-case``) and as ground truth for training
parameter heads; ``active_probability`` below 1 draws sparse graphs (pruning's ground truth).

Shape:
    Parameters come out as ``{type: {name: (nodes_of_type, *size)}}`` (raw, float32), in the
    graph's node order, with a ``dry_wet_logit`` per node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mixrep.console import functional as Fn
from mixrep.console.graph import MIX, PROCESSOR_TYPES, MixingGraph, Params
from mixrep.console.processors import DRY_WET, DRY_WET_RANGE, Processor

Range = tuple[float, float]


@dataclass(frozen=True)
class MusicalPrior:
    """Uniform ranges (log-uniform for times and frequencies) of every drawn setting.

    Track-level nodes (before a mix node) use ``gain_db``/``pan``; subgroup nodes ``group_gain_db``
    /``group_pan``. Levels are dB, times ms or s, ``*_mix`` are dry/wet weights.
    """

    gain_db: Range = (-12.0, 6.0)
    pan: Range = (-0.7, 0.7)
    group_gain_db: Range = (-4.0, 2.0)
    group_pan: Range = (-0.2, 0.2)
    width: Range = (0.6, 1.6)
    eq_bands: tuple[int, int] = (1, 3)
    eq_band_gain_db: Range = (-6.0, 6.0)
    eq_band_hz: Range = (80.0, 8000.0)
    eq_band_octaves: Range = (0.7, 2.0)
    compressor_threshold_db: Range = (-35.0, -20.0)
    compressor_ratio: Range = (1.5, 4.0)
    compressor_time_ms: Range = (5.0, 60.0)
    compressor_knee_db: Range = (3.0, 9.0)
    gate_threshold_db: Range = (-75.0, -55.0)
    gate_ratio: Range = (1.5, 3.0)
    gate_time_ms: Range = (2.0, 20.0)
    delay_mix: Range = (0.1, 0.35)
    delay_echoes: tuple[int, int] = (1, 3)
    delay_echo_db: Range = (-12.0, -3.0)
    delay_off_db: float = -80.0
    reverb_mix: Range = (0.1, 0.35)
    reverb_rt60_seconds: Range = (0.3, 1.5)
    reverb_gain_db: Range = (-12.0, -3.0)
    """Energy gain of the wet reverb (its impulse response's mid energy) in dB."""
    reverb_high_decay: Range = (1.0, 3.0)
    """RT60 at 0 Hz over RT60 at Nyquist: high frequencies die faster."""
    processor_mix: Range = (1.0, 1.0)
    """Dry/wet of the processors that are not echo effects (EQ, dynamics, imager, gain)."""
    active_probability: dict[str, float] = field(default_factory=dict)
    """Per type, probability that a node is kept (default 1: the full console)."""

    @property
    def optional_types(self) -> tuple[str, ...]:
        """The types a sparse graph may leave out (``active_probability`` below 1)."""
        return tuple(t for t, p in self.active_probability.items() if p < 1.0)


def _uniform(generator: torch.Generator, span: Range, n: int = 1) -> Tensor:
    low, high = span
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def _log_uniform(generator: torch.Generator, span: Range, n: int = 1) -> Tensor:
    return torch.exp(_uniform(generator, (math.log(span[0]), math.log(span[1])), n))


def _randint(generator: torch.Generator, span: tuple[int, int]) -> int:
    return int(torch.randint(span[0], span[1] + 1, (1,), generator=generator))


def _logit(weight: Tensor) -> Tensor:
    return torch.logit(weight.clamp(1e-6, 1 - 1e-6)).clamp(*DRY_WET_RANGE)


def _eq_curve_db(prior: MusicalPrior, generator, frequencies_hz: Tensor) -> Tensor:
    octaves = torch.log2(frequencies_hz.double().clamp(min=10.0))
    curve = torch.zeros_like(octaves)
    for _ in range(_randint(generator, prior.eq_bands)):
        centre = math.log2(float(_log_uniform(generator, prior.eq_band_hz)))
        width = float(_uniform(generator, prior.eq_band_octaves))
        curve += float(_uniform(generator, prior.eq_band_gain_db)) * torch.exp(
            -0.5 * ((octaves - centre) / (width / 2.355)) ** 2)  # FWHM = width octaves
    return curve


def _draw(node_type: str, processor: Processor, prior: MusicalPrior, generator: torch.Generator,
          group: bool) -> tuple[dict[str, Tensor], float]:
    """Physical settings of one node -> its raw parameters (``(1, *size)``) and dry/wet weight."""
    mix = float(_uniform(generator, prior.processor_mix))
    if node_type == "gain_pan":
        gain, pan = (prior.group_gain_db, prior.group_pan) if group else (prior.gain_db, prior.pan)
        physical = {"gain_db": _uniform(generator, gain), "pan": _uniform(generator, pan)}
    elif node_type == "imager":
        physical = {"width": _log_uniform(generator, prior.width)}
    elif node_type == "eq":
        physical = {"gain_db": _eq_curve_db(prior, generator, processor.frequencies_hz())[None]}
    elif node_type in ("compressor", "noisegate"):
        comp = node_type == "compressor"
        physical = {
            "time_constant_ms": _log_uniform(generator, prior.compressor_time_ms if comp else prior.gate_time_ms),
            "threshold_db": _uniform(generator, prior.compressor_threshold_db if comp else prior.gate_threshold_db),
            "ratio": _uniform(generator, prior.compressor_ratio if comp else prior.gate_ratio),
            "knee_db": _uniform(generator, prior.compressor_knee_db),
        }
    elif node_type == "delay":
        taps, bins = processor.taps, processor.fir_bins
        slot_ms = processor.slot_samples * 1000.0 / processor.sample_rate
        tap_db = torch.full((1, 2, taps, bins), prior.delay_off_db, dtype=torch.float64)
        delay_ms = (torch.arange(taps, dtype=torch.float64) * slot_ms).expand(1, 2, taps).clone()
        delay_ms += _uniform(generator, (0.0, slot_ms * 0.999), 2 * taps).reshape(1, 2, taps)
        tilt = torch.linspace(0.0, -12.0, bins, dtype=torch.float64)  # darker echoes
        for channel in range(2):
            chosen = torch.randperm(taps, generator=generator)[: _randint(generator, prior.delay_echoes)]
            for tap in chosen.tolist():
                tap_db[0, channel, tap] = float(_uniform(generator, prior.delay_echo_db)) + tilt
        physical = {"delay_ms": delay_ms, "tap_eq_db": tap_db,
                    "z_radius": torch.full((1, 2, taps), 0.99, dtype=torch.float64)}
        mix = float(_uniform(generator, prior.delay_mix))
    elif node_type == "reverb":
        bins = processor.n_fft // 2 + 1
        rt60 = float(_log_uniform(generator, prior.reverb_rt60_seconds))
        high = float(_uniform(generator, prior.reverb_high_decay))
        rt60_curve = rt60 / (1.0 + (high - 1.0) * torch.linspace(0.0, 1.0, bins, dtype=torch.float64))
        physical = {"initial_db": torch.zeros(1, 2, bins, dtype=torch.float64),
                    "rt60_seconds": rt60_curve.expand(1, 2, bins).clone()}
        raw = processor.from_physical(physical)
        ir = processor.impulse_response(**{k: v.float() for k, v in raw.items()})
        energy_db = 10.0 * math.log10(float((Fn.mid(ir) ** 2).sum()) + 1e-20)
        physical["initial_db"] += float(_uniform(generator, prior.reverb_gain_db)) - energy_db
        mix = float(_uniform(generator, prior.reverb_mix))
    else:
        raise ValueError(f"no musical prior for processor type {node_type!r}")
    return processor.from_physical(physical), mix


def after_mix(graph: MixingGraph) -> list[bool]:
    """Per node: does its signal pass through a mix node (a subgroup-level node)?"""
    preds = graph.predecessors()
    out = [False] * graph.num_nodes
    for v in graph.topological_order():
        out[v] = graph.node_types[v] == MIX or any(out[p] for p in preds[v])
    return out


def sample_parameters(graph: MixingGraph, processors: dict[str, Processor], prior: MusicalPrior,
                      generator: torch.Generator) -> Params:
    """Raw parameters of every processor node of ``graph`` drawn from ``prior`` (float32)."""
    grouped = after_mix(graph)
    params: Params = {}
    for t in PROCESSOR_TYPES:
        nodes = graph.nodes_of_type(t)
        if not nodes:
            continue
        draws = [_draw(t, processors[t], prior, generator, grouped[v]) for v in nodes]
        raw = {k: torch.cat([d[0][k] for d in draws]).float() for k in draws[0][0]}
        raw = processors[t].constrain(raw)
        raw[DRY_WET] = _logit(torch.tensor([d[1] for d in draws], dtype=torch.float64)).float()
        params[t] = raw
    return params


def sample_mask(graph: MixingGraph, prior: MusicalPrior, generator: torch.Generator) -> Tensor:
    """``(V,)`` node mask keeping each processor with its type's ``active_probability``."""
    mask = torch.ones(graph.num_nodes)
    for v, t in enumerate(graph.node_types):
        p = prior.active_probability.get(t, 1.0)
        if t in PROCESSOR_TYPES and p < 1.0:
            mask[v] = float(torch.rand((), generator=generator) < p)
    return mask

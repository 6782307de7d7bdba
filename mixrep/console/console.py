"""``MixingConsole``: a graph, its processors and its trainable parameters in one module.

The console owns the raw parameters as ``nn.Parameter``s (``{type: {name: (nodes, *size)}}``
plus per-node ``dry_wet_logit``); rendering also accepts an external parameter dict of the same
layout, which is how a network head drives the console. :class:`ParameterLayout` gives the
flat view such a head maps onto (offsets and raw ranges of every entry).

Shape:
    Stems ``(tracks, 2, samples)``; a rendered mix ``(2, samples)``.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from mixrep.console.graph import (
    DEFAULT_CHAIN, OUTPUT, PROCESSOR_TYPES, MixingGraph, Params, build_console,
    graph_to_dict, load_graph_json, remove_processors, save_graph_json,
)
from mixrep.console.processors import DRY_WET, ParamSpec, Processor, make_processors
from mixrep.console.render import BatchedRenderer, RenderResult, dependency_span, render_one_by_one
from mixrep.console.strips import group_outputs
from mixrep.constants import SAMPLE_RATE


@dataclass(frozen=True)
class LayoutEntry:
    node_type: str
    name: str
    nodes: int
    shape: tuple[int, ...]
    offset: int
    low: float
    high: float

    @property
    def size(self) -> int:
        n = self.nodes
        for s in self.shape:
            n *= s
        return n


def type_specs(processor: Processor) -> dict[str, ParamSpec]:
    """Every raw parameter of one node of ``processor``'s type, dry/wet logit last."""
    return {**processor.parameter_specs(), DRY_WET: processor.dry_wet_spec()}


class ParameterLayout:
    """Flat layout of a console's raw parameters: one vector a network head can predict.

    ``unflatten(v)`` turns ``(..., total)`` into the parameter dict (leading axes kept, so a
    batch of predictions stays batched); ``low``/``high`` are the declared raw ranges per entry.
    """

    def __init__(self, graph: MixingGraph, processors: dict[str, Processor]) -> None:
        entries, offset = [], 0
        for t, n in graph.type_counts().items():
            if t not in PROCESSOR_TYPES:
                continue
            for name, spec in type_specs(processors[t]).items():
                entries.append(LayoutEntry(t, name, n, spec.shape, offset, spec.low, spec.high))
                offset += entries[-1].size
        self.entries: list[LayoutEntry] = entries
        self.total = offset

    def flatten(self, params: Params) -> Tensor:
        """``params`` -> ``(total,)`` (or ``(..., total)`` for batched parameters)."""
        parts = []
        for e in self.entries:
            value = params[e.node_type][e.name]
            lead = value.shape[: value.ndim - 1 - len(e.shape)]
            parts.append(value.reshape(*lead, e.size))
        return torch.cat(parts, -1)

    def unflatten(self, flat: Tensor) -> Params:
        if flat.shape[-1] != self.total:
            raise ValueError(f"expected (..., {self.total}) parameters, got {tuple(flat.shape)}")
        lead = flat.shape[:-1]
        out: Params = {}
        for e in self.entries:
            chunk = flat[..., e.offset : e.offset + e.size]
            out.setdefault(e.node_type, {})[e.name] = chunk.reshape(*lead, e.nodes, *e.shape)
        return out

    def bounds(self) -> tuple[Tensor, Tensor]:
        """``(low, high)`` raw bounds, each ``(total,)``."""
        low = torch.cat([torch.full((e.size,), e.low) for e in self.entries])
        high = torch.cat([torch.full((e.size,), e.high) for e in self.entries])
        return low, high


class MixingConsole(nn.Module):
    """Differentiable mixing console (Lee et al. 2024, figure 2a) or any graph of its processors."""

    def __init__(self, graph: MixingGraph, processors: dict[str, Processor],
                 params: Params | None = None, schedule: str = "chain") -> None:
        super().__init__()
        self.graph = graph
        self.processors = nn.ModuleDict(processors)
        self.schedule = schedule
        self.params = nn.ModuleDict()
        counts = graph.type_counts()
        for t, n in counts.items():
            if t not in PROCESSOR_TYPES:
                continue
            init = self.processors[t].init_parameters(n)
            init[DRY_WET] = torch.full((n,), self.processors[t].dry_wet_spec().init)
            if params is not None and t in params:
                init = {k: params[t][k].detach().clone().float() for k in init}
            self.params[t] = nn.ParameterDict({k: nn.Parameter(v) for k, v in init.items()})
        if len(graph.nodes_of_type(OUTPUT)) != 1:
            raise ValueError("a console needs exactly one output node")
        self._renderer: BatchedRenderer | None = None

    @classmethod
    def from_tracks(
        cls,
        track_names: list[str],
        groups: dict[str, list[str]] | None = None,
        chain: str = DEFAULT_CHAIN,
        group_chain: str | None = None,
        sample_rate: int = SAMPLE_RATE,
        processor_options: dict[str, dict] | None = None,
    ) -> "MixingConsole":
        """Console for ``track_names`` (see :func:`mixrep.console.graph.build_console`)."""
        graph = build_console(track_names, groups, chain, group_chain)
        return cls(graph, make_processors(sample_rate, **(processor_options or {})))

    @classmethod
    def from_json(cls, path: str | os.PathLike, processor_options: dict[str, dict] | None = None
                  ) -> "MixingConsole":
        """Console from a graph JSON (:meth:`save_json`), at the sample rate stored in it."""
        try:
            sample_rate = int(json.loads(Path(path).read_text())["sample_rate"])
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"cannot read the sample rate of graph JSON {path}: {e}") from e
        processors = make_processors(sample_rate, **(processor_options or {}))
        graph, params = load_graph_json(path, processors)
        return cls(graph, processors, params)

    @property
    def sample_rate(self) -> int:
        return next(iter(self.processors.values())).sample_rate

    @property
    def track_names(self) -> list[str]:
        return [self.graph.node_names[i] for i in self.graph.nodes_of_type("input")]

    def parameter_dict(self) -> Params:
        """The console's own raw parameters as a plain nested dict (shared tensors)."""
        return {t: dict(p.items()) for t, p in self.params.items()}

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp every raw parameter into its safe range in place (after an optimiser step)."""
        for t, p in self.params.items():
            for name, spec in type_specs(self.processors[t]).items():
                p[name].clamp_(spec.low, spec.high)

    def layout(self) -> ParameterLayout:
        return ParameterLayout(self.graph, dict(self.processors))

    def set_mask(self, mask: Tensor) -> None:
        """Bypass processors where ``mask`` is 0 (pruning); ``(V,)``."""
        self.graph = self.graph.with_mask(mask)
        self._renderer = None

    def pruned(self, remove) -> "MixingConsole":
        """A new console without the processor nodes ``remove`` (ids or a ``(V,)`` bool tensor),
        edges re-routed around them and their parameters dropped (see
        :func:`~mixrep.console.graph.remove_processors`); renders what this console renders with
        those nodes' masks at 0, with fewer nodes."""
        graph, params = remove_processors(self.graph, self.parameter_dict(), remove)
        return MixingConsole(graph, dict(self.processors), params, self.schedule)

    def renderer(self) -> BatchedRenderer:
        if self._renderer is None or self._renderer.graph is not self.graph:
            self._renderer = BatchedRenderer(self.graph, self.schedule)
        return self._renderer

    def render_graph(self, stems: Tensor, params: Params | None = None, gain_staging: bool = False,
                     keep_nodes: bool = False, one_by_one: bool = False) -> RenderResult:
        """Full render result (output, gain-staging loss, optional per-node signals)."""
        self._check_stems(stems)
        params = self.parameter_dict() if params is None else params
        processors = dict(self.processors)
        if one_by_one:
            return render_one_by_one(self.graph, stems, params, processors, gain_staging)
        return self.renderer()(stems, params, processors, gain_staging, keep_nodes)

    def render(self, stems: Tensor, params: Params | None = None) -> Tensor:
        """Mix ``(tracks, 2, samples)`` stems into ``(2, samples)``."""
        return self.render_graph(stems, params).outputs[0]

    @torch.no_grad()
    def render_long(self, stems: Tensor, chunk_seconds: float = 20.0) -> Tensor:
        """Render a whole song chunk by chunk, exactly (each chunk gets the graph's full history
        and lookahead as context), without gradients. ``(tracks, 2, samples)`` -> ``(2, samples)``."""
        return self._render_chunks(stems, self.render, chunk_seconds)

    @torch.no_grad()
    def render_buses_long(self, stems: Tensor, chunk_seconds: float = 20.0) -> Tensor:
        """Every subgroup's output (its last node), chunk by chunk like :meth:`render_long`.

        Shape:
            ``(tracks, 2, samples)`` -> ``(groups, 2, samples)``, groups in mix-node order.
        """
        def buses(chunk: Tensor) -> Tensor:
            return group_outputs(self.graph, self.render_graph(chunk, keep_nodes=True).node_outputs)

        return self._render_chunks(stems, buses, chunk_seconds)

    def chunk_spans(self, length: int, chunk_samples: int) -> list[tuple[int, int, int, int]]:
        """How to render ``length`` samples exactly in chunks: ``(start, stop, context_start,
        context_stop)`` per chunk, the context adding the graph's history before and lookahead after
        (:func:`~mixrep.console.render.dependency_span`); chunks are at least that span long, so
        the context at most doubles the work."""
        history, lookahead = dependency_span(self.graph, dict(self.processors))
        chunk_samples = max(1, chunk_samples, history + lookahead)
        return [(start, min(length, start + chunk_samples), max(0, start - history),
                 min(length, start + chunk_samples + lookahead)) for start in range(0, length, chunk_samples)]

    def _render_chunks(self, stems: Tensor, render, chunk_seconds: float) -> Tensor:
        self._check_stems(stems)
        pieces = []
        for start, stop, a, b in self.chunk_spans(stems.shape[-1], int(chunk_seconds * self.sample_rate)):
            pieces.append(render(stems[..., a:b])[..., start - a: stop - a])
        return torch.cat(pieces, -1)

    def _check_stems(self, stems: Tensor) -> None:
        n = len(self.track_names)
        if stems.ndim != 3 or stems.shape[0] != n or stems.shape[1] != 2:
            raise ValueError(
                f"expected stems (tracks={n}, 2, samples) for tracks {self.track_names}, "
                f"got {tuple(stems.shape)}"
            )

    def to_dict(self) -> dict:
        """Graph and parameters in physical units (JSON-able)."""
        return graph_to_dict(self.graph, self.parameter_dict(), dict(self.processors))

    def save_json(self, path: str | os.PathLike) -> Path:
        return save_graph_json(path, self.graph, self.parameter_dict(), dict(self.processors))

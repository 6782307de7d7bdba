"""Channel strips as flat vectors: what a per-track prediction head maps onto.

A console built by :func:`~mixrep.console.graph.build_console` is a track chain repeated on every
track and a group chain repeated on every subgroup. :class:`StripLayout` is one chain's raw
parameters as one flat row (every processor of the chain, dry/wet logits included, with each
entry's safe raw range and near-transparent initial value), so a head predicts ``(B, K, size)``
rows for B songs of up to K tracks, and :meth:`StripLayout.unflatten` turns them into the padded
per-strip dicts :meth:`~mixrep.console.batch.ConsoleBatch.params_from_strips` gathers.

:func:`strip_rows` goes the other way (a console's parameter dict -> one row per strip), which is
how ground-truth parameters drawn by :mod:`mixrep.console.prior` become training targets.

Shape:
    rows ``(..., strips, size)``; per-strip dicts ``{type: {name: (..., strips, *shape)}}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from mixrep.console.batch import GROUP, TRACK, strip_of_nodes
from mixrep.console.graph import OUTPUT, MixingGraph, Params, parse_chain
from mixrep.console.processors import DRY_WET, Processor


@dataclass(frozen=True)
class StripEntry:
    """One raw parameter of one processor of a strip (plain data: heads store it in configs)."""

    node_type: str
    name: str
    shape: tuple[int, ...]
    offset: int
    low: float
    high: float
    init: float

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    def to_dict(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}


class StripLayout:
    """Flat raw-parameter layout of one strip chain (e.g. ``"ecnsgdr"``).

    Args:
        chain: chain letters in console order.
        processors: the console's processors (their specs give shapes and ranges).
    """

    def __init__(self, chain: str, processors: dict[str, Processor]) -> None:
        self.chain = chain
        self.types = parse_chain(chain)
        if len(set(self.types)) != len(self.types):
            raise ValueError(f"chain {chain!r} repeats a processor type; a strip holds each type once")
        entries, offset = [], 0
        for t in self.types:
            specs = {**processors[t].parameter_specs(), DRY_WET: processors[t].dry_wet_spec()}
            for name, spec in specs.items():
                entries.append(StripEntry(t, name, tuple(spec.shape), offset, float(spec.low),
                                          float(spec.high), float(spec.init)))
                offset += entries[-1].size
        self.entries: list[StripEntry] = entries
        self.size = offset

    def unflatten(self, rows: Tensor) -> Params:
        """``(..., strips, size)`` -> ``{type: {name: (..., strips, *shape)}}``."""
        if rows.shape[-1] != self.size:
            raise ValueError(f"expected (..., {self.size}) strip rows for chain {self.chain!r}, got {tuple(rows.shape)}")
        out: Params = {}
        for e in self.entries:
            chunk = rows[..., e.offset: e.offset + e.size]
            out.setdefault(e.node_type, {})[e.name] = chunk.reshape(*rows.shape[:-1], *e.shape)
        return out

    def flatten(self, params: Params) -> Tensor:
        """Inverse of :meth:`unflatten`: ``{type: {name: (..., strips, *shape)}}`` -> ``(..., strips, size)``."""
        parts = []
        for e in self.entries:
            value = params[e.node_type][e.name]
            parts.append(value.reshape(*value.shape[: value.ndim - len(e.shape)], e.size))
        return torch.cat(parts, -1)

    def bounds(self) -> tuple[Tensor, Tensor]:
        """``(low, high)`` raw bounds, each ``(size,)``."""
        low = torch.cat([torch.full((e.size,), e.low) for e in self.entries])
        high = torch.cat([torch.full((e.size,), e.high) for e in self.entries])
        return low, high

    def initial(self) -> Tensor:
        """``(size,)`` the near-transparent initial row."""
        return torch.cat([torch.full((e.size,), e.init) for e in self.entries])

    def normalise(self, rows: Tensor) -> Tensor:
        """Rows mapped into [0, 1] per entry (position inside the safe range): ``(..., size)``."""
        low, high = (b.to(rows) for b in self.bounds())
        return (rows - low) / (high - low)

    def type_slices(self) -> dict[str, slice]:
        """Columns of each processor type (dry/wet logit included) in a row."""
        out: dict[str, slice] = {}
        for e in self.entries:
            start = out[e.node_type].start if e.node_type in out else e.offset
            out[e.node_type] = slice(start, e.offset + e.size)
        return out

    def describe(self) -> list[dict]:
        """The entries as plain dicts (what a head's config stores)."""
        return [e.to_dict() for e in self.entries]


def strip_nodes(graph: MixingGraph) -> dict[str, list[dict[str, int]]]:
    """Per kind (``"track"``, ``"group"``), per strip in input / mix-node order: ``{processor type: node id}``."""
    out: dict[str, list[dict[str, int]]] = {TRACK: [{} for _ in graph.nodes_of_type("input")],
                                            GROUP: [{} for _ in graph.nodes_of_type("mix")]}
    for v, owner in enumerate(strip_of_nodes(graph)):
        if owner is not None:
            out[owner[0]][owner[1]][graph.node_types[v]] = v
    return out


def strip_rows(graph: MixingGraph, params: Params, track_layout: StripLayout,
               group_layout: StripLayout | None) -> tuple[Tensor, Tensor | None]:
    """A console's parameters as strip rows: ``(tracks, track_size)`` and ``(groups, group_size)``.

    Every strip must hold exactly the layout's chain (a console of :func:`build_console`).

    Raises:
        ValueError: a strip whose processors differ from the layout's chain.
    """
    ranks = graph.type_rank()
    strips = strip_nodes(graph)
    out: dict[str, Tensor | None] = {}
    for kind, layout in ((TRACK, track_layout), (GROUP, group_layout)):
        rows = []
        for i, nodes in enumerate(strips[kind] if layout is not None else []):
            missing = [t for t in layout.types if t not in nodes]
            if missing:
                raise ValueError(f"{kind} strip {i} lacks {missing} of chain {layout.chain!r}")
            rows.append(torch.cat([params[e.node_type][e.name][ranks[nodes[e.node_type]]].reshape(e.size)
                                   for e in layout.entries]))
        out[kind] = torch.stack(rows) if rows else None
    return out[TRACK], out[GROUP]


def strip_keep(graph: MixingGraph, track_layout: StripLayout, group_layout: StripLayout | None
               ) -> tuple[Tensor, Tensor | None]:
    """Which processors of every strip are active (``graph.mask`` > 0): ``(tracks, track types)``
    and ``(groups, group types)`` floats in the layouts' type order (a graph-prediction target)."""
    strips = strip_nodes(graph)
    out: dict[str, Tensor | None] = {}
    for kind, layout in ((TRACK, track_layout), (GROUP, group_layout)):
        if layout is None:
            out[kind] = None
            continue
        keep = torch.zeros(len(strips[kind]), len(layout.types))
        for i, nodes in enumerate(strips[kind]):
            for j, t in enumerate(layout.types):
                if t in nodes:
                    keep[i, j] = float(graph.mask[nodes[t]] > 0)
        out[kind] = keep
    return out[TRACK], out[GROUP]


def mask_from_keep(graph: MixingGraph, track_keep: Tensor, group_keep: Tensor | None, track_layout: StripLayout,
                   group_layout: StripLayout | None) -> Tensor:
    """Inverse of :func:`strip_keep`: the ``(V,)`` node mask of per-strip keep rows (``(tracks,
    types)``, ``(groups, types)`` for the graph's groups in mix-node order); aux nodes stay 1."""
    mask = torch.ones(graph.num_nodes)
    strips = strip_nodes(graph)
    for kind, rows, layout in ((TRACK, track_keep, track_layout), (GROUP, group_keep, group_layout)):
        if rows is None or layout is None:
            continue
        for i, nodes in enumerate(strips[kind]):
            for t, v in nodes.items():
                if t in layout.types:
                    mask[v] = float(rows[i, layout.types.index(t)] > 0.5)
    return mask


def group_outputs(graph: MixingGraph, node_outputs: Tensor) -> Tensor:
    """Each subgroup strip's output (its last node, what feeds the output node), in mix-node order.

    With groups by stem class these are the rendered stems, which sum to the mix.

    Shape:
        ``node_outputs`` ``(V, 2, samples)`` (``keep_nodes=True``) -> ``(groups, 2, samples)``.
    """
    out_node = graph.nodes_of_type(OUTPUT)[0]
    feeding = graph.predecessors()[out_node]
    owners = strip_of_nodes(graph)
    mixes = graph.nodes_of_type("mix")
    order = []
    for v in feeding:
        owner = owners[v]
        group = owner[1] if owner is not None else mixes.index(v)
        order.append((group, v))
    return node_outputs[torch.tensor([v for _, v in sorted(order)], device=node_outputs.device)]

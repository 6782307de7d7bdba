"""Rendering a graph: type-homogeneous batched schedule (Lee et al. 2024, appendix C, algorithm 2) and a
one-by-one reference renderer.

Batched rendering splits the nodes into a causal sequence of single-type partitions
``V_0 (inputs), V_1, ..., V_N (outputs)`` and runs each partition as one processor call:
gather the partition's incoming signals with ``index_select``, aggregate them with a scatter-add
(``index_add``), process, store. Outputs are kept per partition (not in one preallocated
``(V, 2, L)`` buffer, which autograd would copy on every in-place store); when a partition
consumes a whole earlier partition in order (every chain step of a console), gather and
aggregate are skipped and parameters are read as a slice.

Schedules:
    ``"chain"`` - among the ready types, the earliest in the console order
        ``e c n s g d r m``; for consoles its length equals the longest path (optimal).
    ``"greedy"`` - the type with the most ready nodes (Lee et al. 2024, appendix C.2, for arbitrary DAGs).

Shape:
    Sources ``(inputs, 2, samples)``; outputs ``(outputs, 2, samples)``.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mixrep.console import functional as Fn
from mixrep.console.graph import INPUT, MIX, OUTPUT, PROCESSOR_TYPES, MixingGraph, Params
from mixrep.console.processors import DRY_WET, Processor, dry_wet_weight

SCHEDULE_PRIORITY: tuple[str, ...] = PROCESSOR_TYPES + (MIX,)


def schedule(graph: MixingGraph, method: str = "chain") -> list[tuple[str, list[int]]]:
    """Partition the nodes into a causal sequence of single-type batches.

    Returns:
        ``[(type, node_ids), ...]``: first all inputs, last all outputs.
    """
    if method not in ("chain", "greedy"):
        raise ValueError(f"unknown schedule {method!r}; use 'chain' or 'greedy'")
    preds = graph.predecessors()
    types = graph.node_types
    done = [False] * graph.num_nodes
    inputs = graph.nodes_of_type(INPUT)
    outputs = graph.nodes_of_type(OUTPUT)
    for v in inputs:
        done[v] = True
    partitions: list[tuple[str, list[int]]] = [(INPUT, inputs)]
    remaining = graph.num_nodes - len(inputs) - len(outputs)
    while remaining:
        ready: dict[str, list[int]] = {}
        for v in range(graph.num_nodes):
            if not done[v] and types[v] != OUTPUT and all(done[p] for p in preds[v]):
                ready.setdefault(types[v], []).append(v)
        if method == "chain":
            chosen = min(ready, key=SCHEDULE_PRIORITY.index)
        else:
            chosen = max(ready, key=lambda t: (len(ready[t]), -SCHEDULE_PRIORITY.index(t)))
        partitions.append((chosen, ready[chosen]))
        for v in ready[chosen]:
            done[v] = True
        remaining -= len(ready[chosen])
    partitions.append((OUTPUT, outputs))
    return partitions


@dataclass
class _Step:
    node_type: str
    nodes: Tensor  # graph node ids in this partition
    param_rows: Tensor | slice  # rows of the type's parameter tensors
    # gathers: (source partition, source rows, destination rows); None rows = all, in order
    gathers: list[tuple[int, Tensor | None, Tensor | None]]


@dataclass
class RenderResult:
    """What a render returns (always this type).

    Attributes:
        outputs: ``(outputs, 2, samples)`` signals of the output nodes, in node order.
        gain_staging: scalar gain-staging loss (Lee et al. 2024, eq. 5) over the EQ, delay and reverb nodes
            when requested, else 0.
        node_outputs: ``(V, 2, samples)`` every node's output in node order when requested.
    """

    outputs: Tensor
    gain_staging: Tensor
    node_outputs: Tensor | None = None


class BatchedRenderer:
    """Algorithm 2 of Lee et al. (DAFx 2024) with a precomputed plan (preprocessing on CPU, done once per graph)."""

    def __init__(self, graph: MixingGraph, method: str = "chain",
                 max_nodes_per_call: int | None = None) -> None:
        """Args:
            graph: the graph to render.
            method: ``"chain"`` or ``"greedy"`` schedule.
            max_nodes_per_call: split a partition into processor calls of at most this many
                nodes; ``None``: :func:`nodes_per_call` (cache-sized chunks on the CPU, the whole
                partition on accelerators).
        """
        self.graph = graph
        self.max_nodes_per_call = max_nodes_per_call
        self.partitions = schedule(graph, method)
        where: dict[int, tuple[int, int]] = {}
        for p, (_, nodes) in enumerate(self.partitions):
            for row, v in enumerate(nodes):
                where[v] = (p, row)
        ranks = graph.type_rank()
        preds = graph.predecessors()
        self.steps: list[_Step] = []
        for node_type, nodes in self.partitions:
            rows = [ranks[v] for v in nodes]
            param_rows: Tensor | slice = (
                slice(rows[0], rows[0] + len(rows)) if rows == list(range(rows[0], rows[0] + len(rows)))
                else torch.tensor(rows)
            )
            by_source: dict[int, tuple[list[int], list[int]]] = {}
            for dst_row, v in enumerate(nodes):
                for u in preds[v]:
                    p, src_row = where[u]
                    by_source.setdefault(p, ([], []))[0].append(src_row)
                    by_source[p][1].append(dst_row)
            gathers = []
            for p, (src, dst) in sorted(by_source.items()):
                whole = (
                    len(by_source) == 1 and src == list(range(len(self.partitions[p][1])))
                    and dst == list(range(len(nodes)))
                )
                gathers.append((p, None, None) if whole else (p, torch.tensor(src), torch.tensor(dst)))
            self.steps.append(_Step(node_type, torch.tensor(nodes), param_rows, gathers))

    def __len__(self) -> int:
        return len(self.partitions)

    def __call__(self, sources: Tensor, params: Params, processors: dict[str, Processor],
                 gain_staging: bool = False, keep_nodes: bool = False) -> RenderResult:
        graph = self.graph
        n_inputs = len(self.partitions[0][1])
        if sources.ndim != 3 or sources.shape[0] != n_inputs or sources.shape[1] != 2:
            raise ValueError(
                f"expected sources (inputs={n_inputs}, 2, samples), got {tuple(sources.shape)}"
            )
        mask = graph.mask.to(device=sources.device, dtype=sources.dtype)
        # Every partition's output is kept as the list of its processor calls' outputs (node
        # chunks): a chain step consumes the previous partition chunk by chunk, and nothing is
        # concatenated except where a mix gathers across partitions.
        outputs: list[list[Tensor]] = [[sources]]
        staging = sources.new_zeros(())
        for step in self.steps[1:]:
            n = len(step.nodes)
            chunks: list[Tensor] | None = None
            if len(step.gathers) == 1 and step.gathers[0][1] is None:
                chunks = outputs[step.gathers[0][0]]
            else:
                x = None
                for p, src, dst in step.gathers:
                    whole = torch.cat(outputs[p]) if len(outputs[p]) > 1 else outputs[p][0]
                    if src is None:
                        x = whole if x is None else x + whole
                        continue
                    gathered = whole.index_select(0, src.to(sources.device))
                    if x is None:
                        x = gathered.new_zeros((n, *gathered.shape[1:]))
                    x = x.index_add(0, dst.to(sources.device), gathered)
                chunks = [sources.new_zeros((n, *sources.shape[1:])) if x is None else x]
            if step.node_type in (MIX, OUTPUT):
                outputs.append(chunks)
                continue
            max_nodes = self.max_nodes_per_call or nodes_per_call(chunks[0]) or n
            step_mask = mask.index_select(0, step.nodes.to(sources.device))
            rows = (torch.arange(step.param_rows.start, step.param_rows.stop)
                    if isinstance(step.param_rows, slice) else step.param_rows)
            out, start = [], 0
            for chunk in chunks:
                for piece in chunk.split(max_nodes):  # views, no copies
                    stop = start + piece.shape[0]
                    y, term = _process(step.node_type, piece, params, _rows(rows, start, stop),
                                       step_mask[start:stop], processors, gain_staging)
                    out.append(y)
                    staging = staging + term
                    start = stop
            outputs.append(out)
        node_outputs = None
        if keep_nodes:
            order = torch.cat([s.nodes for s in self.steps]).to(sources.device)
            stacked = torch.cat([c for chunks in outputs for c in chunks])
            node_outputs = torch.empty_like(stacked).index_copy(0, order, stacked)
        final = outputs[-1]
        return RenderResult(final[0] if len(final) == 1 else torch.cat(final), staging, node_outputs)


def _rows(rows: Tensor, start: int, stop: int) -> Tensor | slice:
    """Parameter rows of nodes ``start:stop`` of a partition: a slice when contiguous."""
    part = rows[start:stop]
    first = int(part[0])
    if bool((part == torch.arange(first, first + len(part))).all()):
        return slice(first, first + len(part))
    return part


CPU_CALL_BYTES = 6 * 2**20
"""Largest node signal batch one processor call handles on the CPU. A partition of 64 tracks at
44.1 kHz holds 86 MB per signal: processed at once, every elementwise pass and FFT runs at DRAM
speed and the batched render is slower than one node at a time; in chunks of this size (4 nodes
of 3.8 s stereo) it is about twice as fast as either (``benchmarks/console.py``)."""


def nodes_per_call(x: Tensor) -> int | None:
    """Nodes per processor call for the signals ``x`` ``(nodes, 2, samples)``: as many as fit in
    :data:`CPU_CALL_BYTES` on the CPU; all (``None``) on accelerators, where launches dominate."""
    if x.device.type != "cpu":
        return None
    return max(1, CPU_CALL_BYTES // max(1, x[0].numel() * x.element_size()))


def _process(node_type: str, x: Tensor, params: Params, rows, mask: Tensor,
             processors: dict[str, Processor], gain_staging: bool) -> tuple[Tensor, Tensor]:
    """One batched processor call with dry/wet mixing; returns output and gain-staging term."""
    if isinstance(rows, Tensor):
        rows = rows.to(x.device)
        pick = lambda t: t.index_select(0, rows)  # noqa: E731
    else:
        pick = lambda t: t[rows]  # noqa: E731
    type_params = params[node_type]
    raw = {k: pick(v) for k, v in type_params.items() if k != DRY_WET}
    processor = processors[node_type]
    weight = dry_wet_weight(pick(type_params[DRY_WET])) * mask
    y = processor(x, weight=weight, **raw)
    term = x.new_zeros(())
    if gain_staging and processor.regularise_gain_staging:
        # Lee et al. (DAFx 2024), eq. 5, on the wet signal f(u) = (y - (1 - w) u) / w (the processors fold the dry/wet
        # mix into their FIRs, so the wet signal itself is never materialised)
        active = weight > 0
        safe = torch.where(active, weight, torch.ones_like(weight))
        wet_mid = Fn.mid(y) - (1.0 - weight)[:, None, None] * Fn.mid(x)
        log_out = 0.5 * torch.log((wet_mid**2).sum((-1, -2)) + Fn.LOG_EPS) - torch.log(safe)
        log_in = 0.5 * torch.log((Fn.mid(x) ** 2).sum((-1, -2)) + Fn.LOG_EPS)
        term = torch.where(active, (log_out - log_in).abs(), torch.zeros_like(log_out)).sum()
    return y, term


def render_one_by_one(graph: MixingGraph, sources: Tensor, params: Params,
                      processors: dict[str, Processor], gain_staging: bool = False) -> RenderResult:
    """Reference renderer: every node alone, in topological order (Lee et al.'s "one-by-one")."""
    preds = graph.predecessors()
    ranks = graph.type_rank()
    inputs = graph.nodes_of_type(INPUT)
    if sources.shape[0] != len(inputs):
        raise ValueError(f"expected {len(inputs)} sources, got {tuple(sources.shape)}")
    mask = graph.mask.to(device=sources.device, dtype=sources.dtype)
    out: dict[int, Tensor] = {}
    staging = sources.new_zeros(())
    for v in graph.topological_order():
        t = graph.node_types[v]
        if t == INPUT:
            out[v] = sources[inputs.index(v)][None]
            continue
        x = sources.new_zeros((1, *sources.shape[1:]))
        for u in preds[v]:
            x = x + out[u]
        if t in (MIX, OUTPUT):
            out[v] = x
            continue
        out[v], term = _process(t, x, params, slice(ranks[v], ranks[v] + 1), mask[v : v + 1],
                                processors, gain_staging)
        staging = staging + term
    outputs = torch.cat([out[v] for v in graph.nodes_of_type(OUTPUT)])
    node_outputs = torch.cat([out[v] for v in range(graph.num_nodes)])
    return RenderResult(outputs, staging, node_outputs)


def dependency_span(graph: MixingGraph, processors: dict[str, Processor]) -> tuple[int, int]:
    """``(history, lookahead)`` in samples: how far back/ahead any output depends on any source.

    Rendering ``[start - history, end + lookahead)`` and keeping ``[start, end)`` equals the
    render of the whole signal there (every processor is FIR in its input or its energy).
    """
    preds = graph.predecessors()
    hist = [0] * graph.num_nodes
    ahead = [0] * graph.num_nodes
    for v in graph.topological_order():
        t = graph.node_types[v]
        h = processors[t].history_samples if t in PROCESSOR_TYPES else 0
        a = processors[t].lookahead_samples if t in PROCESSOR_TYPES else 0
        hist[v] = max((hist[p] for p in preds[v]), default=0) + h
        ahead[v] = max((ahead[p] for p in preds[v]), default=0) + a
    return max(hist), max(ahead)

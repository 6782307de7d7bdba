"""Audio processing graphs: node types, edges, per-node masks, the mixing-console builder,
JSON in physical units and PNG drawings (Lee et al. 2024, section 2.2 and appendix C.3).

A graph is a DAG of ``input``, processor, ``mix`` and ``output`` nodes. Parameters live outside
the graph, as ``{type: {name: (nodes_of_type, *size)}}`` in node order (the l-th row of a type's
tensor belongs to the l-th node of that type), plus a ``dry_wet_logit`` ``(nodes_of_type,)`` per
processor type; the dry/wet weight is ``sigmoid(clamp(dry_wet_logit)) * mask``.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

import heapq
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from mixrep.console.processors import (
    CHAIN_LETTERS, DRY_WET, PROCESSOR_CLASSES, Processor, dry_wet_weight,
)
from mixrep.files import atomic_write_text

INPUT, OUTPUT, MIX = "input", "output", "mix"
AUX_TYPES: tuple[str, ...] = (INPUT, MIX, OUTPUT)
PROCESSOR_TYPES: tuple[str, ...] = tuple(PROCESSOR_CLASSES)
NODE_TYPES: tuple[str, ...] = AUX_TYPES + PROCESSOR_TYPES
DEFAULT_CHAIN = "ecnsgdr"
"""The per-track chain of Lee et al.'s console: eq, compressor, noisegate, imager, gain/pan, delay, reverb."""

Params = dict[str, dict[str, Tensor]]


@dataclass
class MixingGraph:
    """A DAG of audio nodes.

    Attributes:
        node_types: type name of every node (``NODE_TYPES``), length ``V``.
        edge_index: ``(2, E)`` long tensor of ``(source, destination)`` node indices.
        node_names: readable label per node (track / group names for inputs and mixes).
        mask: ``(V,)`` float; 0 bypasses a processor (its dry/wet weight becomes 0). Pruning
            sets it; auxiliary nodes ignore it.
    """

    node_types: list[str]
    edge_index: Tensor
    node_names: list[str] = field(default_factory=list)
    mask: Tensor | None = None

    def __post_init__(self) -> None:
        self.node_types = list(self.node_types)
        self.edge_index = torch.as_tensor(self.edge_index, dtype=torch.long).reshape(2, -1)
        if not self.node_names:
            self.node_names = [f"{t}{i}" for i, t in enumerate(self.node_types)]
        if self.mask is None:
            self.mask = torch.ones(len(self.node_types))
        self.validate()

    @property
    def num_nodes(self) -> int:
        return len(self.node_types)

    def validate(self) -> None:
        """Raise ``ValueError`` unless types are known, edges in range, and the graph acyclic."""
        unknown = sorted(set(self.node_types) - set(NODE_TYPES))
        if unknown:
            raise ValueError(f"unknown node types {unknown}; known: {list(NODE_TYPES)}")
        if len(self.node_names) != self.num_nodes or self.mask.shape != (self.num_nodes,):
            raise ValueError(
                f"{self.num_nodes} nodes but {len(self.node_names)} names and mask shape "
                f"{tuple(self.mask.shape)}"
            )
        if self.edge_index.numel() and (
            self.edge_index.min() < 0 or self.edge_index.max() >= self.num_nodes
        ):
            raise ValueError(f"edge index outside [0, {self.num_nodes}): {self.edge_index.tolist()}")
        for src, dst in self.edges():
            if self.node_types[dst] == INPUT:
                raise ValueError(f"edge {src}->{dst} enters input node {self.node_names[dst]!r}")
            if self.node_types[src] == OUTPUT:
                raise ValueError(f"edge {src}->{dst} leaves output node {self.node_names[src]!r}")
        self.topological_order()  # raises on cycles

    def edges(self) -> list[tuple[int, int]]:
        return [tuple(e) for e in self.edge_index.t().tolist()]

    def predecessors(self) -> list[list[int]]:
        preds: list[list[int]] = [[] for _ in range(self.num_nodes)]
        for src, dst in self.edges():
            preds[dst].append(src)
        return preds

    def topological_order(self) -> list[int]:
        """Kahn's algorithm, smallest index first; raises ``ValueError`` on a cycle."""
        preds = self.predecessors()
        succs: list[list[int]] = [[] for _ in range(self.num_nodes)]
        for dst, ps in enumerate(preds):
            for p in ps:
                succs[p].append(dst)
        indegree = [len(p) for p in preds]
        ready = [i for i, d in enumerate(indegree) if d == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            node = heapq.heappop(ready)
            order.append(node)
            for s in succs[node]:
                indegree[s] -= 1
                if indegree[s] == 0:
                    heapq.heappush(ready, s)
        if len(order) != self.num_nodes:
            raise ValueError("the graph has a cycle; audio graphs must be acyclic")
        return order

    def nodes_of_type(self, node_type: str) -> list[int]:
        return [i for i, t in enumerate(self.node_types) if t == node_type]

    def type_rank(self) -> list[int]:
        """Row of every node inside its type's parameter tensor (its rank among that type)."""
        counts: dict[str, int] = {}
        ranks = []
        for t in self.node_types:
            ranks.append(counts.get(t, 0))
            counts[t] = ranks[-1] + 1
        return ranks

    def type_counts(self) -> dict[str, int]:
        return {t: self.node_types.count(t) for t in NODE_TYPES if t in self.node_types}

    def num_processors(self) -> int:
        return sum(t in PROCESSOR_TYPES for t in self.node_types)

    def with_mask(self, mask: Tensor) -> "MixingGraph":
        """Same graph, another per-node mask (e.g. a pruning candidate)."""
        return MixingGraph(self.node_types, self.edge_index.clone(), list(self.node_names),
                           torch.as_tensor(mask, dtype=torch.float32).clone())


def merge_graphs(graphs: list[MixingGraph]) -> MixingGraph:
    """One disjoint graph holding ``graphs`` one after the other (Lee et al. 2024, appendix C: a batch of
    graphs is a single large disconnected graph).

    Node ``i`` of graph ``b`` becomes node ``offset_b + i``; names get a ``"b:"`` prefix. Because
    the graphs are concatenated, the merged parameters of a type are the graphs' parameter tensors
    of that type concatenated in the same order (:func:`merge_params`), the merged sources the
    graphs' sources concatenated, and the merged outputs the graphs' outputs in order.
    """
    if not graphs:
        raise ValueError("merge_graphs needs at least one graph")
    types, names, edges, masks, offset = [], [], [], [], 0
    for b, graph in enumerate(graphs):
        types += graph.node_types
        names += [f"{b}:{n}" for n in graph.node_names]
        edges.append(graph.edge_index + offset)
        masks.append(graph.mask)
        offset += graph.num_nodes
    return MixingGraph(types, torch.cat(edges, 1), names, torch.cat(masks))


def merge_params(params: list[Params]) -> Params:
    """Per-graph parameter dicts -> the parameters of :func:`merge_graphs` of those graphs."""
    merged: Params = {}
    for t in PROCESSOR_TYPES:
        present = [p[t] for p in params if t in p]
        if present:
            merged[t] = {k: torch.cat([p[k] for p in present]) for k in present[0]}
    return merged


def remove_processors(graph: MixingGraph, params: Params, remove) -> tuple[MixingGraph, Params]:
    """The graph without the processor nodes in ``remove``, and its parameters.

    A removed node is bypassed: each of its predecessors is wired to each of its successors, so
    the smaller graph renders exactly what the original renders with those nodes' masks at 0, with
    fewer nodes to process (pruning, Lee et al. 2024, section 3: "removal of the nodes and re-routing of
    their edges"). Rows of removed nodes leave the parameter tensors; a type with no node left
    leaves the dict. Names and the masks of the kept nodes are kept.

    Args:
        remove: node ids, or a ``(V,)`` boolean tensor (True = remove).

    Raises:
        ValueError: a node to remove is not a processor (inputs, mixes and outputs stay).
    """
    if isinstance(remove, Tensor) and remove.dtype == torch.bool:
        remove = torch.nonzero(remove).flatten().tolist()
    gone = {int(v) for v in remove}
    aux = [graph.node_names[v] for v in gone if graph.node_types[v] not in PROCESSOR_TYPES]
    if aux:
        raise ValueError(f"only processors can be removed, not {aux}")
    preds = graph.predecessors()
    sources: dict[int, list[int]] = {}  # node -> its nearest kept upstream nodes (with multiplicity)
    for v in graph.topological_order():
        if v in gone:
            sources[v] = [u for p in preds[v] for u in ([p] if p not in gone else sources[p])]
    edges = []
    for src, dst in graph.edges():
        if dst in gone:
            continue
        edges += [(src, dst)] if src not in gone else [(u, dst) for u in sources[src]]
    kept = [v for v in range(graph.num_nodes) if v not in gone]
    new_id = {v: i for i, v in enumerate(kept)}
    pruned = MixingGraph([graph.node_types[v] for v in kept],
                         torch.tensor([[new_id[a] for a, _ in edges], [new_id[b] for _, b in edges]],
                                      dtype=torch.long),
                         [graph.node_names[v] for v in kept], graph.mask[kept].clone())
    ranks = graph.type_rank()
    new_params: Params = {}
    for t, p in params.items():
        rows = [ranks[v] for v in graph.nodes_of_type(t) if v not in gone]
        if rows:
            index = torch.tensor(rows, dtype=torch.long)
            new_params[t] = {k: v.index_select(0, index.to(v.device)) for k, v in p.items()}
    return pruned, new_params


def parse_chain(chain: str) -> list[str]:
    """``"ecnsgdr"`` -> processor type names; raises on unknown letters."""
    bad = [c for c in chain if c not in CHAIN_LETTERS]
    if bad:
        raise ValueError(f"unknown chain letters {bad} in {chain!r}; use {''.join(CHAIN_LETTERS)}")
    return [CHAIN_LETTERS[c] for c in chain]


def build_console(
    track_names: list[str],
    groups: dict[str, list[str]] | None = None,
    chain: str = DEFAULT_CHAIN,
    group_chain: str | None = None,
) -> MixingGraph:
    """The mixing console of Lee et al. (DAFx 2024), figure 2a.

    One input per track, the per-track ``chain``, one mix node per subgroup, ``group_chain``
    (default: the same chain) after every subgroup, and a single output. Nodes are ordered so that
    each batched partition of the chain schedule is one contiguous slice (tracks first, position
    by position, then mixes, then subgroup chains).

    Args:
        track_names: one per input, in stems order.
        groups: subgroup name -> track names; ``None`` puts every track in one group ``"mix"``.
        chain, group_chain: chain letters in Lee et al.'s order (``e c n s g d r``).

    Raises:
        ValueError: a track in no group or in two, a group naming an unknown track, an empty group,
            or a bad chain string.
    """
    if not track_names:
        raise ValueError("a console needs at least one track")
    if len(set(track_names)) != len(track_names):
        raise ValueError(f"track names must be unique, got {track_names}")
    groups = {"mix": list(track_names)} if groups is None else groups
    owner: dict[str, str] = {}
    for group, members in groups.items():
        if not members:
            raise ValueError(f"group {group!r} is empty; remove it or give it tracks")
        for name in members:
            if name not in track_names:
                raise ValueError(f"group {group!r} names unknown track {name!r}; tracks: {track_names}")
            if name in owner:
                raise ValueError(f"track {name!r} is in groups {owner[name]!r} and {group!r}")
            owner[name] = group
    missing = [t for t in track_names if t not in owner]
    if missing:
        raise ValueError(f"tracks {missing} belong to no group; add them to the groups JSON")
    track_chain = parse_chain(chain)
    sub_chain = parse_chain(chain if group_chain is None else group_chain)

    types: list[str] = []
    names: list[str] = []
    edges: list[tuple[int, int]] = []

    def add(node_type: str, name: str) -> int:
        types.append(node_type)
        names.append(name)
        return len(types) - 1

    last = [add(INPUT, t) for t in track_names]
    for proc in track_chain:
        new = [add(proc, f"{track_names[k]}/{proc}") for k in range(len(track_names))]
        edges += list(zip(last, new))
        last = new
    group_names = list(groups)
    mixes = [add(MIX, g) for g in group_names]
    for k, t in enumerate(track_names):
        edges.append((last[k], mixes[group_names.index(owner[t])]))
    last = mixes
    for proc in sub_chain:
        new = [add(proc, f"{g}/{proc}") for g in group_names]
        edges += list(zip(last, new))
        last = new
    out = add(OUTPUT, "output")
    edges += [(n, out) for n in last]
    return MixingGraph(types, torch.tensor(edges, dtype=torch.long).t(), names)


# --------------------------------------------------------------------------------------------
# Physical-unit JSON
# --------------------------------------------------------------------------------------------
def _tolist(x: Tensor):
    return x.detach().cpu().double().tolist()


def graph_to_dict(graph: MixingGraph, params: Params, processors: dict[str, Processor]) -> dict:
    """JSON-able description: nodes with their parameters in physical units, and edges."""
    ranks = graph.type_rank()
    physical: dict[str, dict[str, Tensor]] = {}
    for t, p in params.items():
        raw = {k: v for k, v in p.items() if k != DRY_WET}
        with torch.no_grad():
            physical[t] = processors[t].to_physical(**raw)
    nodes = []
    for i, (t, name) in enumerate(zip(graph.node_types, graph.node_names)):
        node = {"id": i, "name": name, "type": t}
        if t in PROCESSOR_TYPES:
            r = ranks[i]
            node["active"] = bool(graph.mask[i] > 0)
            node["dry_wet"] = float(dry_wet_weight(params[t][DRY_WET][r].detach()))
            node["parameters"] = {k: _tolist(v[r]) for k, v in physical[t].items()}
        nodes.append(node)
    sample_rate = next(iter(processors.values())).sample_rate
    return {"format": "mixrep-graph/1", "sample_rate": sample_rate, "nodes": nodes,
            "edges": graph.edge_index.t().tolist()}


def graph_from_dict(data: dict, processors: dict[str, Processor]) -> tuple[MixingGraph, Params]:
    """Inverse of :func:`graph_to_dict`: the graph and its raw float32 parameters."""
    if data.get("format") != "mixrep-graph/1":
        raise ValueError(f"not a mixrep graph description (format {data.get('format')!r})")
    nodes = sorted(data["nodes"], key=lambda n: n["id"])
    types = [n["type"] for n in nodes]
    mask = torch.tensor([1.0 if n.get("active", True) else 0.0 for n in nodes])
    graph = MixingGraph(types, torch.tensor(data["edges"], dtype=torch.long).t(),
                        [n["name"] for n in nodes], mask)
    params: Params = {}
    for t in dict.fromkeys(types):
        if t not in PROCESSOR_TYPES:
            continue
        rows = [n for n in nodes if n["type"] == t]
        keys = rows[0]["parameters"].keys()
        physical = {k: torch.tensor([r["parameters"][k] for r in rows], dtype=torch.float64)
                    for k in keys}
        raw = {k: v.float() for k, v in processors[t].from_physical(physical).items()}
        w = torch.tensor([r["dry_wet"] for r in rows], dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
        raw[DRY_WET] = torch.logit(w).float()
        params[t] = raw
    return graph, params


def save_graph_json(path: str | os.PathLike, graph: MixingGraph, params: Params,
                    processors: dict[str, Processor]) -> Path:
    return atomic_write_text(path, json.dumps(graph_to_dict(graph, params, processors), indent=1))


def load_graph_json(path: str | os.PathLike, processors: dict[str, Processor]):
    """Read a graph JSON written by :func:`save_graph_json`; returns ``(graph, params)``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read graph JSON {path}: {e}") from e
    return graph_from_dict(data, processors)

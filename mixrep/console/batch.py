"""Rendering a batch of songs' consoles in one pass (Stage 2 trains on B songs per step).

The batch is one disjoint graph (:func:`~mixrep.console.graph.merge_graphs`; Lee et al. 2024, appendix C):
every type-homogeneous partition of the schedule then holds that processor type's nodes of *all*
songs, so a batch of B consoles costs the same 17 batched processor calls as one console. Why a
disjoint graph rather than a leading batch axis through every processor: songs in a Stage 2 batch
have different track counts *and* different subgroupings, i.e. different graphs; a batch axis
would need them padded to one common graph (padded tracks rendered, padded groups summed); the
disjoint graph renders exactly the songs' own graphs, is equal to one-at-a-time rendering by
construction, and needs no change to any processor.

Parameters come in either as one parameter dict per song, or, for a prediction head, as padded
per-strip rows: ``{type: {name: (B, K_max, *size)}}`` for the track strips and
``{type: {name: (B, G_max, *size)}}`` for the subgroup strips, with the masks of valid rows;
:meth:`ConsoleBatch.params_from_strips` gathers the valid rows into the merged layout
(differentiably).

Shape:
    Stems ``(B, K_max, 2, samples)`` with ``track_mask`` ``(B, K_max)``, or a list of
    ``(K_b, 2, samples)``; mixes ``(B, 2, samples)``.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mixrep.console.graph import INPUT, MIX, PROCESSOR_TYPES, MixingGraph, Params, merge_graphs, merge_params
from mixrep.console.processors import Processor
from mixrep.console.render import BatchedRenderer, RenderResult

TRACK, GROUP = "track", "group"


def strip_of_nodes(graph: MixingGraph) -> list[tuple[str, int] | None]:
    """Per node: ``("track", k)`` for a processor on track ``k``'s strip (downstream of input
    ``k``, before any mix), ``("group", g)`` for one after mix node ``g`` (its ``g``-th mix node),
    ``None`` for auxiliary nodes.

    Raises:
        ValueError: a processor fed by two tracks or two groups (not a console's strip).
    """
    inputs = {v: k for k, v in enumerate(graph.nodes_of_type(INPUT))}
    mixes = {v: g for g, v in enumerate(graph.nodes_of_type(MIX))}
    preds = graph.predecessors()
    strip: list[tuple[str, int] | None] = [None] * graph.num_nodes
    for v in graph.topological_order():
        t = graph.node_types[v]
        if t == INPUT:
            strip[v] = (TRACK, inputs[v])
        elif t == MIX:
            strip[v] = (GROUP, mixes[v])
        elif t in PROCESSOR_TYPES:
            owners = {strip[p] for p in preds[v]}
            if len(owners) != 1 or None in owners:
                raise ValueError(f"node {graph.node_names[v]!r} is not on a single track or group "
                                 f"strip (fed by {sorted(map(str, owners))})")
            strip[v] = owners.pop()
    return [s if graph.node_types[v] in PROCESSOR_TYPES else None for v, s in enumerate(strip)]


@dataclass
class _Gather:
    """Where every merged row of one type comes from in the stacked padded strip rows."""

    index: Tensor  # (nodes_of_type,) into cat([tracks (B * K_max), groups (B * G_max)])


class ConsoleBatch:
    """B graphs rendered as one.

    Args:
        graphs: one graph per song (e.g. ``build_console`` for each song's tracks and groups).
        schedule: ``"chain"`` (optimal for consoles) or ``"greedy"``.
    """

    def __init__(self, graphs: list[MixingGraph], schedule: str = "chain") -> None:
        self.graphs = list(graphs)
        self.merged = merge_graphs(self.graphs)
        self.renderer = BatchedRenderer(self.merged, schedule)
        self.inputs = [len(g.nodes_of_type(INPUT)) for g in self.graphs]
        self._gathers: dict[tuple, dict[str, _Gather]] = {}

    def __len__(self) -> int:
        return len(self.graphs)

    def sources(self, stems: Tensor | list[Tensor], track_mask: Tensor | None = None) -> Tensor:
        """Concatenated sources ``(sum K_b, 2, samples)`` from a list or padded stems."""
        if isinstance(stems, Tensor):
            if stems.ndim != 4 or track_mask is None or track_mask.shape != stems.shape[:2]:
                raise ValueError(f"padded stems need shape (B, K_max, 2, samples) and a (B, K_max) "
                                 f"track_mask, got {tuple(stems.shape)} and "
                                 f"{None if track_mask is None else tuple(track_mask.shape)}")
            stems = [stems[b][track_mask[b].bool()] for b in range(stems.shape[0])]
        if len(stems) != len(self.graphs):
            raise ValueError(f"{len(stems)} songs of stems for a batch of {len(self.graphs)} graphs")
        for b, (s, k) in enumerate(zip(stems, self.inputs)):
            if s.ndim != 3 or s.shape[0] != k or s.shape[1] != 2:
                raise ValueError(f"song {b}: expected stems ({k}, 2, samples), got {tuple(s.shape)}")
        return torch.cat(list(stems))

    def render(self, stems: Tensor | list[Tensor], params: Params | list[Params],
               processors: dict[str, Processor], track_mask: Tensor | None = None,
               gain_staging: bool = False) -> RenderResult:
        """Render every song: ``outputs`` is ``(B, 2, samples)``; ``gain_staging`` their sum.

        Args:
            stems: list of ``(K_b, 2, samples)`` or padded ``(B, K_max, 2, samples)`` with
                ``track_mask``.
            params: one dict per song, or the merged dict (e.g. from :meth:`params_from_strips`).
        """
        merged = merge_params(params) if isinstance(params, list) else params
        return self.renderer(self.sources(stems, track_mask), merged, processors, gain_staging)

    def params_from_strips(self, tracks: Params, groups: Params | None, track_mask: Tensor,
                           group_mask: Tensor | None = None) -> Params:
        """Merged parameters from padded per-strip rows (what a per-track head predicts).

        Args:
            tracks: ``{type: {name: (B, K_max, *size)}}`` rows of the track strips' processors
                (dry/wet logits included), row ``k`` for song ``b``'s ``k``-th valid track.
            groups: the same for the subgroup strips, ``(B, G_max, *size)`` (``None`` if no graph
                has a processor after its mixes).
            track_mask, group_mask: ``(B, K_max)`` / ``(B, G_max)``, True for valid rows.

        Raises:
            ValueError: masks that disagree with the graphs' track/group counts, or a type
                missing from the rows.
        """
        k_max = track_mask.shape[1]
        g_max = 0 if group_mask is None else group_mask.shape[1]
        out: Params = {}
        for t, plan in self._gather_plan(track_mask, group_mask).items():
            rows = [r.get(t) for r in (tracks or {}, groups or {})]
            if all(r is None for r in rows):
                raise ValueError(f"no rows for processor type {t!r}, which the graphs use")
            out[t] = {}
            for name in next(r for r in rows if r is not None):
                parts = []
                for r, count in zip(rows, (k_max, g_max)):
                    if r is not None:  # (B, count, *size) -> (B * count, *size)
                        parts.append(r[name].reshape(len(self) * count, *r[name].shape[2:]))
                    else:  # this type has no node on these strips: placeholder rows
                        like = next(x for x in rows if x is not None)[name]
                        parts.append(like.new_zeros((len(self) * count, *like.shape[2:])))
                out[t][name] = torch.cat(parts).index_select(0, plan.index.to(parts[0].device))
        return out

    def _gather_plan(self, track_mask: Tensor, group_mask: Tensor | None) -> dict[str, _Gather]:
        k_max = track_mask.shape[1]
        g_max = 0 if group_mask is None else group_mask.shape[1]
        key = (tuple(track_mask.flatten().bool().tolist()),
               None if group_mask is None else tuple(group_mask.flatten().bool().tolist()), g_max)
        if key in self._gathers:
            return self._gathers[key]
        if track_mask.shape[0] != len(self):
            raise ValueError(f"track_mask has {track_mask.shape[0]} songs, the batch {len(self)}")
        plan: dict[str, list[int]] = {}
        for b, graph in enumerate(self.graphs):
            valid_tracks = torch.nonzero(track_mask[b]).flatten().tolist()
            valid_groups = [] if group_mask is None else torch.nonzero(group_mask[b]).flatten().tolist()
            n_groups = len(graph.nodes_of_type(MIX))
            if len(valid_tracks) != self.inputs[b] or (group_mask is not None and len(valid_groups) != n_groups):
                raise ValueError(f"song {b}: masks mark {len(valid_tracks)} tracks and "
                                 f"{len(valid_groups)} groups, its graph has {self.inputs[b]} and "
                                 f"{n_groups}")
            for v, owner in enumerate(strip_of_nodes(graph)):
                if owner is None:
                    continue
                kind, i = owner
                if kind == TRACK:
                    row = b * k_max + valid_tracks[i]
                else:
                    if group_mask is None:
                        raise ValueError(f"song {b} has processors after its mixes: pass group rows")
                    row = len(self) * k_max + b * g_max + valid_groups[i]
                plan.setdefault(graph.node_types[v], []).append(row)
        gathers = {t: _Gather(torch.tensor(rows, dtype=torch.long)) for t, rows in plan.items()}
        self._gathers[key] = gathers
        return gathers

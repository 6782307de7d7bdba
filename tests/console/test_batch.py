"""Batched rendering across songs (one disjoint graph) and graph surgery for pruning."""

from __future__ import annotations

import random

import pytest
import torch

from mixrep.console.batch import GROUP, TRACK, ConsoleBatch, strip_of_nodes
from mixrep.console.console import MixingConsole
from tests.console.dags import random_dag
from mixrep.console.graph import build_console, remove_processors
from mixrep.console.render import BatchedRenderer, render_one_by_one, schedule

from tests.console.conftest import SMALL, TEST_RATE, random_params

SONGS = [  # different track counts and subgroupings in one batch
    (["a"], None),
    (["k", "s", "b"], {"drums": ["k", "s"], "bass": ["b"]}),
    (["t1", "t2", "t3", "t4", "t5"], {"x": ["t1", "t4"], "y": ["t2"], "z": ["t3", "t5"]}),
]


def _batch(small_processors, seed=0):
    graphs = [build_console(names, groups) for names, groups in SONGS]
    params = [random_params(g, small_processors, seed + b) for b, g in enumerate(graphs)]
    gen = torch.Generator().manual_seed(seed)
    stems = [0.3 * torch.randn(len(names), 2, 1600, generator=gen) for names, _ in SONGS]
    return graphs, params, stems


def test_batch_render_equals_one_song_at_a_time(small_processors):
    graphs, params, stems = _batch(small_processors)
    leaves = [{t: {k: v.clone().requires_grad_() for k, v in p.items()} for t, p in song.items()}
              for song in params]
    batch = ConsoleBatch(graphs)
    assert len(batch.renderer) == len(BatchedRenderer(graphs[2]))  # 17 calls for all songs
    out = batch.render(stems, leaves, small_processors, gain_staging=True)
    assert out.outputs.shape == (3, 2, 1600)
    probe = torch.randn(out.outputs.shape, generator=torch.Generator().manual_seed(1))
    (out.outputs * probe).sum().backward()
    staging = 0.0
    for b, graph in enumerate(graphs):
        single = {t: {k: v.clone().requires_grad_() for k, v in p.items()} for t, p in params[b].items()}
        ref = render_one_by_one(graph, stems[b], single, small_processors, gain_staging=True)
        assert (out.outputs[b] - ref.outputs[0]).abs().max() < 1e-5
        (ref.outputs[0] * probe[b]).sum().backward()
        for t, p in single.items():
            for k, v in p.items():
                assert torch.allclose(leaves[b][t][k].grad, v.grad, atol=1e-4, rtol=1e-4), (b, t, k)
        staging += float(ref.gain_staging.detach())
    assert float(out.gain_staging) == pytest.approx(staging, rel=1e-4)


def test_padded_stems_and_strip_rows(small_processors):
    """A head's padded per-track and per-group rows, with masks, render what the songs' own
    parameter dicts render; padding rows get no gradient."""
    graphs, params, stems = _batch(small_processors, seed=3)
    k_max, g_max, songs = 6, 4, len(graphs)
    track_mask = torch.zeros(songs, k_max, dtype=torch.bool)
    group_mask = torch.zeros(songs, g_max, dtype=torch.bool)
    padded = torch.zeros(songs, k_max, 2, 1600)
    tracks: dict = {}
    groups: dict = {}
    for b, graph in enumerate(graphs):
        slots = list(range(k_max))[::-1][: len(SONGS[b][0])][::-1]  # valid rows at the end
        track_mask[b, slots] = True
        padded[b, slots] = stems[b]
        padded[b, [i for i in range(k_max) if i not in slots]] = 99.0  # never rendered
        n_groups = len(graph.nodes_of_type("mix"))
        group_mask[b, :n_groups] = True
        ranks = graph.type_rank()
        for v, owner in enumerate(strip_of_nodes(graph)):
            if owner is None:
                continue
            t = graph.node_types[v]
            kind, i = owner
            target, row = (tracks, slots[i]) if kind == TRACK else (groups, i)
            size = k_max if kind == TRACK else g_max
            for k, value in params[b][t].items():
                table = target.setdefault(t, {}).setdefault(
                    k, torch.full((songs, size, *value.shape[1:]), 123.0))
                table[b, row] = value[ranks[v]]
    for table in (tracks, groups):
        for p in table.values():
            for v in p.values():
                v.requires_grad_()
    batch = ConsoleBatch(graphs)
    merged = batch.params_from_strips(tracks, groups, track_mask, group_mask)
    out = batch.render(padded, merged, small_processors, track_mask=track_mask)
    reference = batch.render(stems, params, small_processors)
    assert torch.allclose(out.outputs, reference.outputs, atol=1e-6)
    out.outputs.square().sum().backward()
    grad = tracks["eq"]["log_magnitude"].grad
    assert grad[~track_mask].abs().max() == 0 and grad[track_mask].abs().max() > 0
    with pytest.raises(ValueError, match="masks mark"):
        batch.params_from_strips(tracks, groups, torch.ones(songs, k_max, dtype=torch.bool), group_mask)


def test_strip_of_nodes_on_a_console():
    graph = build_console(["a", "b"], {"g": ["a", "b"]}, chain="eg", group_chain="r")
    owners = [o for o in strip_of_nodes(graph) if o is not None]
    assert owners == [(TRACK, 0), (TRACK, 1), (TRACK, 0), (TRACK, 1), (GROUP, 0)]


@pytest.mark.parametrize("seed", range(4))
def test_removed_processors_render_like_masked_ones(seed, small_processors):
    graph = random_dag(3, 16, random.Random(seed), num_mixes=3)
    params = random_params(graph, small_processors, seed)
    processors_nodes = [v for v, t in enumerate(graph.node_types) if t not in ("input", "mix", "output")]
    remove = random.Random(seed).sample(processors_nodes, 7)
    mask = torch.ones(graph.num_nodes)
    mask[remove] = 0.0
    sources = 0.3 * torch.randn(3, 2, 900, generator=torch.Generator().manual_seed(seed))
    masked = BatchedRenderer(graph.with_mask(mask))(sources, params, small_processors).outputs
    smaller, smaller_params = remove_processors(graph, params, remove)
    assert smaller.num_nodes == graph.num_nodes - 7
    assert sum(len(p["dry_wet_logit"]) for p in smaller_params.values()) == smaller.num_processors()
    assert len(schedule(smaller)) <= len(schedule(graph))
    out = BatchedRenderer(smaller)(sources, smaller_params, small_processors).outputs
    assert (out - masked).abs().max() < 1e-5
    assert (render_one_by_one(smaller, sources, smaller_params, small_processors).outputs - masked
            ).abs().max() < 1e-5


def test_console_pruned_is_smaller_and_equal(small_processors):
    console = MixingConsole.from_tracks(["a", "b", "c"], {"x": ["a", "b"], "y": ["c"]},
                                        sample_rate=TEST_RATE, processor_options=SMALL)
    with torch.no_grad():
        for t, p in random_params(console.graph, small_processors, 9).items():
            for k, v in p.items():
                console.params[t][k].copy_(v)
    graph = console.graph
    remove = torch.zeros(graph.num_nodes, dtype=torch.bool)
    for v, name in enumerate(graph.node_names):  # every reverb, and the whole chain of track b
        remove[v] = graph.node_types[v] == "reverb" or (name.startswith("b/"))
    stems = 0.3 * torch.randn(3, 2, 1200)
    mask = (~remove).float()
    console.set_mask(mask)
    expected = console.render(stems).detach()
    smaller = console.pruned(remove)
    assert "reverb" not in smaller.params and smaller.graph.num_processors() == graph.num_processors() - int(remove.sum())
    assert [n for n in smaller.graph.node_names if n.startswith("b/")] == []
    assert (smaller.render(stems) - expected).abs().max() < 1e-5
    with pytest.raises(ValueError, match="only processors"):
        remove_processors(graph, console.parameter_dict(), [0])

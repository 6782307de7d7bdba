"""Graphs, schedules, batched versus one-by-one rendering, masks, JSON and drawing."""

from __future__ import annotations

import json
import random

import pytest
import torch

from mixrep.console.console import MixingConsole, ParameterLayout
from tests.console.dags import random_dag
from mixrep.console.graph import DRY_WET, INPUT, OUTPUT, MixingGraph, build_console, graph_from_dict, graph_to_dict
from mixrep.plots.console import draw_graph
from mixrep.console.render import BatchedRenderer, dependency_span, render_one_by_one, schedule

from tests.console.conftest import SMALL, TEST_RATE, random_params


def _longest_path_nodes(graph: MixingGraph) -> int:
    preds = graph.predecessors()
    depth = [1] * graph.num_nodes
    for v in graph.topological_order():
        depth[v] = max((depth[p] + 1 for p in preds[v]), default=1)
    return max(depth)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("method", ["chain", "greedy"])
def test_batched_render_equals_one_by_one_on_random_graphs(seed, method, small_processors):
    graph = random_dag(3, 14, random.Random(seed), num_mixes=3)
    params = random_params(graph, small_processors, seed)
    sources = 0.3 * torch.randn(3, 2, 1500, generator=torch.Generator().manual_seed(seed))
    batched = BatchedRenderer(graph, method)(sources, params, small_processors, gain_staging=True)
    reference = render_one_by_one(graph, sources, params, small_processors, gain_staging=True)
    assert (batched.outputs - reference.outputs).abs().max() < 1e-5
    assert torch.allclose(batched.gain_staging, reference.gain_staging, rtol=1e-5)


@pytest.mark.parametrize("seed", range(20))
def test_schedules_are_causal_homogeneous_partitions(seed):
    graph = random_dag(4, 25, random.Random(seed), num_mixes=4)
    preds = graph.predecessors()
    for method in ("chain", "greedy"):
        parts = schedule(graph, method)
        position = {}
        for k, (t, nodes) in enumerate(parts):
            assert all(graph.node_types[v] == t for v in nodes)
            position.update({v: k for v in nodes})
        assert sorted(position) == list(range(graph.num_nodes))  # a partition
        assert all(position[p] < position[v] for v in range(graph.num_nodes) for p in preds[v])
        assert parts[0][0] == INPUT and parts[-1][0] == OUTPUT
        assert len(parts) >= _longest_path_nodes(graph)


def test_console_schedule_is_optimal_and_contiguous():
    graph = build_console(["kick", "snare", "bass", "voc"], {"drums": ["kick", "snare"],
                                                            "music": ["bass", "voc"]})
    parts = schedule(graph, "chain")
    assert len(parts) == _longest_path_nodes(graph) == 1 + 7 + 1 + 7 + 1
    assert "".join(t[0] for t, _ in parts[1:8]) == "ecnigdr"  # eq comp noisegate imager gain ...
    renderer = BatchedRenderer(graph)
    # chain steps read the whole previous partition in order: no gather, parameters by slice
    for step in renderer.steps[1:]:
        assert isinstance(step.param_rows, slice)
    assert sum(g[1] is None for s in renderer.steps[1:] for g in s.gathers) == 14


def test_console_render_matches_reference_and_hand_sum(small_processors):
    names = ["a", "b", "c"]
    console = MixingConsole.from_tracks(names, {"x": ["a", "c"], "y": ["b"]}, sample_rate=TEST_RATE,
                                        processor_options=SMALL)
    params = random_params(console.graph, small_processors, 4)
    stems = 0.2 * torch.randn(3, 2, 2000)
    batched = console.render(stems, params)
    assert batched.shape == (2, 2000)
    reference = console.render_graph(stems, params, one_by_one=True).outputs[0]
    assert (batched - reference).abs().max() < 1e-5
    # an all-bypassed console is the plain sum of its tracks
    console.set_mask(torch.zeros(console.graph.num_nodes))
    assert torch.allclose(console.render(stems, params), stems.sum(0), atol=1e-5)


def test_mask_bypasses_exactly_one_node(small_processors):
    console = MixingConsole.from_tracks(["a"], chain="eg", group_chain="", sample_rate=TEST_RATE,
                                        processor_options=SMALL)
    params = random_params(console.graph, small_processors, 5)
    stems = torch.randn(1, 2, 800)
    mask = torch.ones(console.graph.num_nodes)
    mask[console.graph.nodes_of_type("eq")[0]] = 0.0
    console.set_mask(mask)
    w = torch.sigmoid(params["gain_pan"][DRY_WET])
    gain = torch.exp(params["gain_pan"]["log_gain"])[0][:, None]
    expected = w * gain * stems[0] + (1 - w) * stems[0]
    assert torch.allclose(console.render(stems, params), expected, atol=1e-5)


def test_chunked_render_equals_full_render(small_processors):
    console = MixingConsole.from_tracks(["a", "b"], sample_rate=TEST_RATE, processor_options=SMALL)
    with torch.no_grad():
        for t, p in random_params(console.graph, small_processors, 6).items():
            for k, v in p.items():
                console.params[t][k].copy_(v)
    stems = 0.3 * torch.randn(2, 2, 9000)
    history, lookahead = dependency_span(console.graph, small_processors)
    assert history > 2 * small_processors["reverb"].ir_samples and lookahead > 0
    full = console.render(stems).detach()
    chunked = console.render_long(stems, chunk_seconds=0.3)
    assert (full - chunked).abs().max() < 1e-5


def test_json_round_trip_in_physical_units(tmp_path, small_processors):
    console = MixingConsole.from_tracks(["a", "b"], {"g1": ["a"], "g2": ["b"]},
                                        sample_rate=TEST_RATE, processor_options=SMALL)
    params = random_params(console.graph, small_processors, 7)
    with torch.no_grad():
        for t, p in params.items():
            for k, v in p.items():
                console.params[t][k].copy_(v)
    mask = torch.ones(console.graph.num_nodes)
    mask[5] = 0.0
    console.set_mask(mask)
    path = console.save_json(tmp_path / "graph.json")
    data = json.loads(path.read_text())
    comp = next(n for n in data["nodes"] if n["type"] == "compressor")
    assert set(comp["parameters"]) == {"time_constant_ms", "threshold_db", "ratio", "knee_db"}
    assert data["nodes"][5]["active"] is False
    loaded = MixingConsole.from_json(path, processor_options=SMALL)
    assert loaded.graph.node_types == console.graph.node_types
    assert torch.equal(loaded.graph.mask, console.graph.mask)
    stems = 0.3 * torch.randn(2, 2, 1200)
    assert (loaded.render(stems) - console.render(stems)).abs().max() < 1e-4
    graph, _ = graph_from_dict(graph_to_dict(console.graph, params, small_processors),
                               small_processors)
    assert graph.edge_index.tolist() == console.graph.edge_index.tolist()


def test_draw_graph_writes_png(tmp_path):
    graph = build_console(["a", "b", "c"], {"x": ["a", "b"], "y": ["c"]})
    path = draw_graph(graph, tmp_path / "g.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_builder_rejects_bad_groups():
    with pytest.raises(ValueError, match="belong to no group"):
        build_console(["a", "b"], {"x": ["a"]})
    with pytest.raises(ValueError, match="unknown track"):
        build_console(["a"], {"x": ["a", "z"]})
    with pytest.raises(ValueError, match="unknown chain letters"):
        build_console(["a"], chain="eqx")
    with pytest.raises(ValueError, match="cycle"):
        MixingGraph(["input", "eq", "eq", "output"], torch.tensor([[0, 1, 2, 2], [1, 2, 1, 3]]))


def test_parameter_layout_round_trip(small_processors):
    console = MixingConsole.from_tracks(["a", "b"], sample_rate=TEST_RATE, processor_options=SMALL)
    layout = console.layout()
    params = random_params(console.graph, small_processors, 8)
    flat = layout.flatten(params)
    assert flat.shape == (layout.total,)
    back = layout.unflatten(flat)
    for t, p in params.items():
        for k, v in p.items():
            assert torch.equal(back[t][k], v)
    batched = layout.unflatten(torch.stack([flat, flat]))  # a head's batch of predictions
    assert batched["eq"]["log_magnitude"].shape == (2, 3, small_processors["eq"].bins)
    low, high = layout.bounds()
    assert low.shape == (layout.total,) and bool((low < high).all())
    assert isinstance(layout, ParameterLayout)


@pytest.mark.parametrize("max_nodes", [1, 2, 5])
def test_chunked_processor_calls_equal_whole_partitions(max_nodes, small_processors):
    """Splitting partitions into cache-sized calls (the CPU default) changes nothing."""
    graph = random_dag(4, 20, random.Random(11), num_mixes=3)
    params = random_params(graph, small_processors, 11)
    sources = 0.3 * torch.randn(4, 2, 1000, generator=torch.Generator().manual_seed(11))
    whole = BatchedRenderer(graph, max_nodes_per_call=10**6)(sources, params, small_processors,
                                                             gain_staging=True)
    chunked = BatchedRenderer(graph, max_nodes_per_call=max_nodes)(sources, params, small_processors,
                                                                   gain_staging=True)
    assert (whole.outputs - chunked.outputs).abs().max() < 1e-5
    assert torch.allclose(whole.gain_staging, chunked.gain_staging, rtol=1e-5)

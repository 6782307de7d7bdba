"""Audibility: what a processor does to its own input, and graphs that keep only what one hears."""

from __future__ import annotations

import pytest
import torch

from mixrep.console import MixingConsole, MusicalPrior, sample_parameters
from mixrep.console.graph import build_console
from mixrep.graphs.audibility import audible_mask, processor_change_db, spectral_change_db
from tests.console.conftest import TEST_RATE, harmonic_tracks


def test_spectral_change_is_the_level_change_in_db_and_zero_for_silence():
    x = harmonic_tracks([110.0, 220.0], 1.0)
    assert spectral_change_db(x, 2.0 * x, TEST_RATE) == pytest.approx(torch.full((2,), 6.02), abs=0.05)
    assert torch.equal(spectral_change_db(x, x, TEST_RATE), torch.zeros(2))
    silence = torch.zeros(1, 2, TEST_RATE)
    assert spectral_change_db(silence, silence, TEST_RATE).item() == 0.0


def test_a_width_change_counts_by_the_level_of_the_side():
    x = harmonic_tracks([110.0], 1.0)
    mono = x.mean(1, keepdim=True).expand(1, 2, -1)
    widened = torch.stack([mono[:, 0] * 1.5, mono[:, 1] * 0.5], 1)  # mid unchanged, side from nothing
    side_only = torch.stack([mono[:, 0] * 1.005, mono[:, 1] * 0.995], 1)
    assert spectral_change_db(mono, widened, TEST_RATE) > 5.0
    assert spectral_change_db(mono, side_only, TEST_RATE) < 1.0  # a side 46 dB below the mid barely counts


def test_processor_change_and_audible_mask_on_a_console(small_processors):
    names = ["a", "b"]
    graph = build_console(names, {"all": names}, "ens", "e")  # eq, gate, imager per track; bus eq
    params = sample_parameters(graph, small_processors, MusicalPrior(), torch.Generator().manual_seed(0))
    eq, gate, imager = small_processors["eq"], small_processors["noisegate"], small_processors["imager"]
    bins = eq.frequencies_hz().shape[-1]
    boosts = torch.tensor([[0.0], [6.0], [0.0]]).expand(3, bins)  # track a flat, track b +6 dB, bus flat
    params["eq"].update(eq.from_physical({"gain_db": boosts.clone()}))
    params["noisegate"].update(gate.from_physical({k: torch.full((2,), v) for k, v in (
        ("time_constant_ms", 5.0), ("threshold_db", -90.0), ("ratio", 2.0), ("knee_db", 3.0))}))
    params["imager"].update(imager.from_physical({"width": torch.tensor([1.5, 1.5])}))
    console = MixingConsole(graph, small_processors, params)
    tracks = harmonic_tracks([110.0, 330.0], 1.0, right_gain=1.0, noise=0.0)  # dual mono: no side to widen
    with torch.no_grad():
        nodes = console.render_graph(tracks, keep_nodes=True).node_outputs
    change = processor_change_db(console.graph, nodes, TEST_RATE)
    eqs, gates, imagers = (graph.nodes_of_type(t) for t in ("eq", "noisegate", "imager"))
    assert change[eqs[0]] < 0.1 and change[eqs[1]] == pytest.approx(6.0, abs=0.3) and change[eqs[2]] < 0.1
    assert change[gates].max() < 0.1 and change[imagers].max() < 0.1
    assert change[graph.nodes_of_type("input")].abs().sum() == 0
    mask = audible_mask(console.graph, nodes, TEST_RATE, 1.0, types=("eq", "noisegate"))
    assert mask[eqs].tolist() == [0.0, 1.0, 0.0] and mask[gates].sum() == 0
    assert mask[imagers].tolist() == [1.0, 1.0]  # not a judged type: kept as drawn
    bypassed = console.graph.with_mask(mask)
    assert processor_change_db(bypassed, nodes, TEST_RATE)[eqs[0]] == 0.0  # bypassed processors do nothing

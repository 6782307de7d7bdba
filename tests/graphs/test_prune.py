"""Iterative pruning (Lee et al. 2024, section 3): what gets pruned, the accept rule, graph surgery, resume.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch

import mixrep.graphs.prune as prune_module
from mixrep.console import FitConfig, MixingConsole, MusicalPrior, sample_parameters
from mixrep.console.fit import evaluate
from mixrep.console.graph import build_console
from mixrep.graphs.prune import PruneConfig, PruneStateError, _Search, prune_console
from mixrep.graphs.recovery import graph_recovery
from mixrep.plots.console import plot_pruning
from tests.console.conftest import harmonic_tracks

NAMES = ["a", "b"]
FAST_FIT = FitConfig(steps=120, crop_seconds=1.5, warmup_seconds=0.25, progress=False)


@pytest.fixture(scope="module")
def sparse_case(small_processors):
    """Two tracks through gain/pan -> reverb, a master gain/pan; the target used a strong reverb
    on ``a`` and none on ``b`` (its node masked off)."""
    stems = harmonic_tracks([110.0, 330.0], 2.0)
    graph = build_console(NAMES, None, "gr", "g")
    prior = MusicalPrior(reverb_mix=(0.5, 0.5), reverb_rt60_seconds=(0.2, 0.2), reverb_gain_db=(0.0, 0.0))
    params = sample_parameters(graph, small_processors, prior, torch.Generator().manual_seed(3))
    mask = torch.ones(graph.num_nodes)
    mask[graph.node_names.index("b/reverb")] = 0.0
    truth = MixingConsole(graph.with_mask(mask), small_processors, params)
    return stems, truth.render_long(stems), truth


def new_console(small_processors) -> MixingConsole:
    return MixingConsole(build_console(NAMES, None, "gr", "g"), small_processors)


def base_config(**changes) -> PruneConfig:
    base = PruneConfig(method="brute-force", rounds=1, fit=FAST_FIT, finetune_steps=0, progress=False)
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def brute_force(sparse_case, small_processors):
    """One brute-force round without fine-tuning: the fitted full console and the result."""
    stems, mix, _ = sparse_case
    console = new_console(small_processors)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before conftest's per-test one-thread fixture
    try:
        return console, prune_console(console, stems, mix, base_config(tolerance=0.01))  # fits ``console`` in place
    finally:
        torch.set_num_threads(threads)


def test_unused_processor_pruned_needed_one_kept(sparse_case, brute_force):
    _, _, truth = sparse_case
    _, result = brute_force
    kept = set(result.console.graph.node_names)
    assert "b/reverb" in result.removed and "b/reverb" not in kept
    assert {"a/reverb", "a/gain_pan", "b/gain_pan"} <= kept
    recovery = graph_recovery(result.console.graph, truth.graph)
    assert recovery["reverb"].recall == 1.0 and recovery["reverb"].precision == 1.0
    assert result.type_pruning_ratios()["reverb"] == 0.5
    assert result.pruning_ratio == pytest.approx(len(result.removed) / 5)
    assert len(result.trials) == 5  # brute force tries every processor once


def test_accept_rule_keeps_loss_within_tolerance(sparse_case, brute_force):
    stems, mix, _ = sparse_case
    _, result = brute_force
    best = result.loss_full
    for t in result.trials:
        assert t.threshold == pytest.approx(best + 0.01)
        assert t.accepted == (t.loss <= t.threshold)
        if t.accepted:
            best = min(best, t.loss)
    harmful = next(t for t in result.trials if t.candidates == ["a/reverb"])
    assert not harmful.accepted and harmful.loss > result.loss_full + 0.01
    # no fine-tuning: the pruned console is the last accepted trial's graph, within the tolerance
    final = evaluate(result.console, stems, mix)
    assert final <= result.loss_full + 0.01 and final == pytest.approx(result.loss_final)


def test_pruned_graph_renders_like_the_masked_console(sparse_case, brute_force):
    stems, _, _ = sparse_case
    full, result = brute_force
    assert result.removed and result.console.graph.num_nodes < full.graph.num_nodes
    mask = torch.tensor([0.0 if n in result.removed else 1.0 for n in full.graph.node_names])
    masked = MixingConsole(full.graph.with_mask(mask), dict(full.processors), full.parameter_dict())
    torch.testing.assert_close(result.console.render(stems), masked.render(stems), atol=1e-5, rtol=1e-5)


def test_plot(brute_force, tmp_path):
    _, result = brute_force
    assert plot_pruning(result, tmp_path / "p.png").stat().st_size > 1000


def test_interrupted_run_resumes_to_the_same_result(sparse_case, small_processors, tmp_path, monkeypatch):
    stems, mix, _ = sparse_case
    settings = base_config(method="hybrid", rounds=2, finetune_steps=15, brute_force_every=2, tolerance=0.02,
                           fit=dataclasses.replace(FAST_FIT, steps=60))
    reference = prune_console(new_console(small_processors), stems, mix, settings)

    round_one = sum(t.round == 1 for t in reference.trials)
    assert reference.trials[round_one].round == 2 and any(t.accepted for t in reference.trials)
    die_at = 2 + round_one + 1 + 2  # initial + full fit, round 1 + its fine-tuning, 2 trials of round 2
    calls, real_evaluate = {"n": 0}, prune_module.evaluate

    def dying_evaluate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == die_at:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(prune_module, "evaluate", dying_evaluate)
    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        prune_console(new_console(small_processors), stems, mix, settings, state_path=state)
    assert state.is_file()
    monkeypatch.setattr(prune_module, "evaluate", real_evaluate)
    resumed = prune_console(new_console(small_processors), stems, mix, settings, state_path=state)

    assert resumed.removed == reference.removed
    assert [(t.candidates, t.accepted) for t in resumed.trials] == [
        (t.candidates, t.accepted) for t in reference.trials]
    assert [t.loss for t in resumed.trials] == pytest.approx([t.loss for t in reference.trials])
    assert resumed.loss_final == pytest.approx(reference.loss_final)
    for t, params in reference.console.parameter_dict().items():
        for name, value in params.items():
            torch.testing.assert_close(resumed.console.parameter_dict()[t][name], value)
    # a finished state resumes to the same result without any work
    again = prune_console(new_console(small_processors), stems, mix, settings, state_path=state)
    assert again.removed == reference.removed and len(again.trials) == len(reference.trials)


def test_state_of_another_run_is_refused(sparse_case, small_processors, tmp_path):
    stems, mix, _ = sparse_case
    state = tmp_path / "state.pt"
    quick = functools.partial(base_config, rounds=0, fit=dataclasses.replace(FAST_FIT, steps=3))
    prune_console(new_console(small_processors), stems, mix, quick(), state_path=state)
    with pytest.raises(PruneStateError, match="pruning or fit settings"):
        prune_console(new_console(small_processors), stems, mix, quick(tolerance=0.1), state_path=state)
    with pytest.raises(PruneStateError, match="the audio"):
        prune_console(new_console(small_processors), stems, 0.5 * mix, quick(), state_path=state)
    state.write_bytes(b"not a state")
    with pytest.raises(PruneStateError, match="cannot read"):
        prune_console(new_console(small_processors), stems, mix, quick(), state_path=state)


def test_dry_wet_sampling_follows_algorithm_3(small_processors):
    """Least-weight candidates, 10% of the type's count first, halved on failure, type retired
    when a single processor fails."""
    names = [f"t{i}" for i in range(20)]
    console = MixingConsole(build_console(names, None, "e", ""), small_processors)
    with torch.no_grad():
        console.params["eq"]["dry_wet_logit"].copy_(torch.linspace(3.0, -3.0, 20))  # t19 smallest
    search = _Search(console, base_config(method="dry-wet"))
    search.pool = search.new_pool("dry-wet")
    node_type, first = search.next_candidates()
    ids = {console.graph.node_names[v]: v for v in range(console.graph.num_nodes)}
    assert node_type == "eq" and first == [ids["t19/eq"], ids["t18/eq"]]  # floor(20 * 0.1) = 2
    search.update_pool("eq", first, accepted=True)
    search.remove(first)
    assert search.next_candidates()[1] == [ids["t17/eq"], ids["t16/eq"]]
    search.update_pool("eq", [ids["t17/eq"], ids["t16/eq"]], accepted=False)
    assert search.next_candidates()[1] == [ids["t17/eq"]]  # floor(20 * 0.05) = 1
    search.update_pool("eq", [ids["t17/eq"]], accepted=False)
    assert search.next_candidates() is None  # eq retired
    assert search.removed == ["t19/eq", "t18/eq"] and console.graph.num_processors() == 20


def test_config_validation_and_schedule():
    with pytest.raises(ValueError, match="unknown pruning method"):
        PruneConfig(method="greedy")
    with pytest.raises(ValueError, match="tolerance"):
        PruneConfig(tolerance=-0.1)
    hybrid = PruneConfig()
    assert [hybrid.round_method(n) for n in range(1, 9)] == ["dry-wet"] * 3 + ["brute-force"] + [
        "dry-wet"] * 3 + ["brute-force"]
    assert hybrid.sparsity_at(0) == 0.0
    assert hybrid.sparsity_at(2000) == pytest.approx(5e-3)  # ramp: 0 -> 1e-2 over 4k of 6k steps
    assert hybrid.sparsity_at(4000) == pytest.approx(1e-2) == hybrid.sparsity_at(5999)


def test_mismatched_inputs_raise(sparse_case, small_processors, tmp_path):
    stems, mix, _ = sparse_case
    with pytest.raises(ValueError, match="does not match stems"):
        prune_console(new_console(small_processors), stems, mix[..., :-10], base_config())


def test_search_from_a_predicted_graph(sparse_case, small_processors, tmp_path):
    """``start_removed`` (a predicted sparse graph): those processors are gone before the fit, the
    ratio counts them against the full console, and a state of another start is not resumed."""
    stems, mix, _ = sparse_case
    quick = base_config(rounds=0, fit=dataclasses.replace(FAST_FIT, steps=3))
    console = new_console(small_processors)
    start = [console.graph.node_names.index("b/reverb")]
    state = tmp_path / "state.pt"
    result = prune_console(console, stems, mix, quick, state_path=state, start_removed=start)
    assert result.removed == ["b/reverb"] and "b/reverb" not in result.console.graph.node_names
    assert result.full_counts == {"gain_pan": 3, "reverb": 2}
    assert result.pruning_ratio == pytest.approx(1 / 5)
    assert result.loss_final == pytest.approx(evaluate(result.console, stems, mix))
    with pytest.raises(PruneStateError, match="pruning or fit settings"):
        prune_console(new_console(small_processors), stems, mix, quick, state_path=state)
    with pytest.raises(ValueError, match="start_removed must name processor nodes"):
        prune_console(new_console(small_processors), stems, mix, quick, start_removed=[0])

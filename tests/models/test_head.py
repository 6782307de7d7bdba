"""The regression head: permutation equivariance, variable track counts, range safety, strip layouts."""

from __future__ import annotations

import pytest
import torch

from mixrep.console import ConsoleBatch, MixingConsole, MusicalPrior, sample_parameters
from mixrep.console.spec import ConsoleSpec
from mixrep.console.strips import StripLayout, group_outputs, strip_rows
from mixrep.models.head import HeadConfig, RegressionHead

SR = 8000
SPEC = ConsoleSpec(SR, "egd", "eg", {"eq": {"bins": 64}})


@pytest.fixture(scope="module")
def processors():
    return SPEC.processors()


def make_head(processors, seed: int = 0, weight_scale: float = 0.3) -> RegressionHead:
    track, group = SPEC.layouts(processors)
    config = HeadConfig(tuple(track.describe()), tuple(group.describe()), reference_dim=8, sample_rate=SR,
                        n_fft=256, hop_length=128, n_mels=16, channels=(4, 8), track_dim=16, hidden=32, basis_size=4)
    torch.manual_seed(seed)
    head = RegressionHead(config).eval()
    for decoder in (head.track_decoder, head.group_decoder):  # the zero init outputs constants: perturb it
        torch.nn.init.normal_(decoder.linear.weight, std=weight_scale)
    return head


def batch(k_per_song: list[int], samples: int = 2000, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    k_max = max(k_per_song)
    tracks = torch.randn(len(k_per_song), k_max, 2, samples, generator=g) * 0.1
    mask = torch.zeros(len(k_per_song), k_max, dtype=torch.bool)
    for b, k in enumerate(k_per_song):
        mask[b, :k] = True
    tracks = tracks * mask[..., None, None]
    groups = torch.randint(0, 4, (len(k_per_song), k_max), generator=g)
    reference = torch.nn.functional.normalize(torch.randn(len(k_per_song), 8, generator=g), dim=-1)
    return tracks, mask, groups, reference


def test_head_is_permutation_equivariant_over_tracks(processors):
    head = make_head(processors)
    tracks, mask, groups, reference = batch([5])
    out = head(tracks, mask, groups, reference)
    perm = torch.tensor([3, 0, 4, 1, 2])
    permuted = head(tracks[:, perm], mask[:, perm], groups[:, perm], reference)
    torch.testing.assert_close(permuted.track_rows, out.track_rows[:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(permuted.group_rows, out.group_rows, atol=1e-5, rtol=1e-5)
    assert out.track_rows[0, 0].std() > 0  # not a constant output: the test can fail


def test_variable_track_counts_in_one_batch_match_songs_alone(processors):
    head = make_head(processors)
    ks = [1, 4, 16]
    tracks, mask, groups, reference = batch(ks)
    out = head(tracks, mask, groups, reference)
    for b, k in enumerate(ks):
        alone = head(tracks[b: b + 1, :k], mask[b: b + 1, :k], groups[b: b + 1, :k], reference[b: b + 1])
        torch.testing.assert_close(out.track_rows[b: b + 1, :k], alone.track_rows, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.group_rows[b: b + 1][out.group_mask[b: b + 1]],
                                   alone.group_rows[alone.group_mask], atol=1e-5, rtol=1e-5)


def test_predictions_stay_inside_the_console_ranges_and_render_finite(processors):
    head = make_head(processors, weight_scale=50.0)  # saturating weights
    track_layout, group_layout = SPEC.layouts(processors)
    low_t, high_t = track_layout.bounds()
    low_g, high_g = group_layout.bounds()
    for seed in range(8):
        tracks, mask, groups, reference = batch([3, 6], seed=seed)
        tracks[0, 1] = 0.0  # a silent track
        tracks[1, 0] *= 1e3  # a very loud one
        out = head(tracks, mask, groups, reference)
        assert torch.isfinite(out.track_rows).all() and torch.isfinite(out.group_rows).all()
        assert (out.track_rows >= low_t).all() and (out.track_rows <= high_t).all()
        assert (out.group_rows >= low_g).all() and (out.group_rows <= high_g).all()
        stems = [["drums", "bass", "other", "vocals"][int(g)] for g in groups[0, :3]], \
                [["drums", "bass", "other", "vocals"][int(g)] for g in groups[1, :6]]
        names = [[f"t{i}" for i in range(3)], [f"t{i}" for i in range(6)]]
        consoles = ConsoleBatch([SPEC.graph(n, s) for n, s in zip(names, stems)])
        params = consoles.params_from_strips(track_layout.unflatten(out.track_rows), group_layout.unflatten(out.group_rows),
                                             mask, out.group_mask)
        mix = consoles.render(tracks, params, processors, track_mask=mask).outputs
        assert torch.isfinite(mix).all()


def test_strip_rows_round_trip_through_params_from_strips(processors):
    names, stems = ["kick", "bass", "lead"], ["drums", "bass", "vocals"]
    graph = SPEC.graph(names, stems)
    theta = sample_parameters(graph, processors, MusicalPrior(), torch.Generator().manual_seed(0))
    track_layout, group_layout = SPEC.layouts(processors)
    rows, bus = strip_rows(graph, theta, track_layout, group_layout)
    assert rows.shape == (3, track_layout.size) and bus.shape == (3, group_layout.size)
    padded_bus = torch.zeros(1, 4, group_layout.size)
    padded_bus[0, [0, 1, 3]] = bus
    group_mask = torch.tensor([[True, True, False, True]])
    back = ConsoleBatch([graph]).params_from_strips(track_layout.unflatten(rows[None]), group_layout.unflatten(padded_bus),
                                                    torch.ones(1, 3, dtype=torch.bool), group_mask)
    for t in theta:
        for k in theta[t]:
            torch.testing.assert_close(back[t][k], theta[t][k])


def test_group_outputs_are_stems_that_sum_to_the_mix(processors):
    names, stems = ["kick", "snare", "bass", "lead"], ["drums", "drums", "bass", "vocals"]
    graph = SPEC.graph(names, stems)
    theta = sample_parameters(graph, processors, MusicalPrior(), torch.Generator().manual_seed(1))
    console = MixingConsole(graph, processors, theta)
    audio = torch.randn(4, 2, 3000) * 0.1
    result = console.render_graph(audio, keep_nodes=True)
    buses = group_outputs(graph, result.node_outputs)
    assert buses.shape == (3, 2, 3000)
    torch.testing.assert_close(buses.sum(0), result.outputs[0], atol=1e-5, rtol=1e-5)


def test_strip_layout_refuses_rows_of_another_size(processors):
    layout = StripLayout("eg", processors)
    with pytest.raises(ValueError, match="strip rows"):
        layout.unflatten(torch.zeros(2, layout.size + 1))


def test_keep_rows_round_trip_through_the_graph_mask(processors):
    from mixrep.console import sample_mask
    from mixrep.console.strips import mask_from_keep, strip_keep

    graph = SPEC.graph(["kick", "bass", "lead", "pad"], ["drums", "bass", "vocals", "other"])
    prior = MusicalPrior(active_probability={"eq": 0.5, "delay": 0.5})
    mask = sample_mask(graph, prior, torch.Generator().manual_seed(3))
    sparse = graph.with_mask(mask)
    track_layout, group_layout = SPEC.layouts(processors)
    tracks, groups = strip_keep(sparse, track_layout, group_layout)
    assert tracks.shape == (4, len(track_layout.types)) and 0 < tracks.mean() < 1
    torch.testing.assert_close(mask_from_keep(graph, tracks, groups, track_layout, group_layout), mask)


def test_transfer_items_carry_the_sparse_graph_that_rendered_them():
    from mixrep.training.head_data import TransferDataset

    data = TransferDataset(SPEC, "val", 4, num_songs=20, song_seconds=3, clip_seconds=1.0, pedalboard_fraction=0.0,
                           prior={"active_probability": {"eq": 0.0, "delay": 1.0}})
    item = data[0]
    types = SPEC.layouts(data.processors)[0].types
    assert item["has_theta"] and item["track_keep"][:, types.index("eq")].sum() == 0
    assert item["track_keep"][:, types.index("delay")].all() and item["track_keep"][:, types.index("gain_pan")].all()
    assert item["target"].shape == (2, 8000) and torch.isfinite(item["reference"]).all()


def test_transfer_ground_truth_keeps_only_processors_the_reference_lets_one_hear(processors):
    from mixrep.constants import STEMS
    from mixrep.training.head_data import TransferDataset

    options = dict(num_songs=20, song_seconds=3, clip_seconds=1.0, pedalboard_fraction=0.0,
                   prior={"active_probability": {"eq": 0.99, "delay": 0.99}})
    track_types, group_types = (layout.types for layout in SPEC.layouts(processors))
    drawn = TransferDataset(SPEC, "val", 4, audible_db=0.0, **options)[0]
    strict = TransferDataset(SPEC, "val", 4, audible_db=1000.0, **options)[0]  # nothing is that audible
    assert drawn["track_keep"][:, track_types.index("delay")].all()
    buses = sorted({STEMS.index(s) for s in strict["stems"]})  # rows of absent stem classes are padding
    for rows, types in ((strict["track_keep"], track_types), (strict["group_keep"][buses], group_types)):
        judged = [types.index(t) for t in ("eq", "delay") if t in types]
        assert rows[:, judged].sum() == 0  # judged types drop out; gain/pan stays as drawn
        assert rows[:, types.index("gain_pan")].all()
    # the target is the mix of the graph without them: the same tracks, less delay and EQ
    assert torch.equal(strict["tracks"], drawn["tracks"]) and not torch.allclose(strict["target"], drawn["target"])
    with pytest.raises(ValueError, match="audible_db"):
        TransferDataset(SPEC, "val", 4, audible_db=-1.0, **options)

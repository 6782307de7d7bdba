"""The FrontEnd module: one return type, config round trip, gradients, dtype/device, chunking."""

from __future__ import annotations

import json

import pytest
import torch

from mixrep.frontend import FEATURE_GROUPS, FrontEnd, FrontEndConfig, FrontEndOutput, feature_names, num_features

SR = 16_000


def stems(batch: int = 2, seconds: float = 0.5, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    levels = torch.tensor([0.3, 0.2, 0.1, 0.15]).reshape(1, 4, 1, 1)
    return (levels * torch.randn(batch, 4, 2, int(seconds * SR), generator=generator)).to(dtype)


def small_config(**overrides) -> FrontEndConfig:
    return FrontEndConfig(**{"sample_rate": SR, "n_fft": 512, "hop_length": 128, "n_mels": 32,
                             "clip_seconds": 0.5, **overrides})


def test_output_is_one_named_tuple_with_the_documented_shapes() -> None:
    frontend = FrontEnd(small_config())
    out = frontend(stems(3))
    assert isinstance(out, FrontEndOutput)
    mel, features = out
    assert mel.shape == (3, 8, 32, frontend.frames_for(int(0.5 * SR))) and mel.dtype == torch.float32
    assert features.shape == (3, frontend.num_features) == (3, 116)
    assert frontend.feature_names == feature_names() and len(set(frontend.feature_names)) == 116


def test_config_round_trips_through_json_and_old_checkpoints_load() -> None:
    config = small_config(f_max=7000.0, features=("dynamics", "stereo"))
    data = json.loads(json.dumps(config.to_dict()))
    assert FrontEndConfig.from_dict(data) == config
    # Version-1 checkpoints stored five fields; the rest were the defaults they used.
    old = FrontEndConfig.from_dict({"sample_rate": 22050, "n_mels": 64, "n_fft": 1024, "hop_length": 512,
                                    "clip_seconds": 3.0, "removed_field": 1})
    assert (old.f_min, old.f_max, old.log_floor, old.features) == (20.0, None, 1e-5, FEATURE_GROUPS)
    assert small_config().differences(small_config(n_mels=40)) == {"n_mels": (32, 40)}


@pytest.mark.parametrize("bad", [{"n_mels": 0}, {"log_floor": 0.0}, {"f_min": 9000.0}, {"features": ("tempo",)},
                                 {"sample_rate": 1000}, {"clip_seconds": 0.01}])
def test_bad_configs_are_refused_naming_the_field(bad) -> None:
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        small_config(**bad)


def test_feature_groups_select_named_subsets_in_vector_order() -> None:
    x = stems(2)
    full = FrontEnd(small_config())(x).features
    groups = ("stereo", "dynamics")
    part = FrontEnd(small_config(features=groups))(x).features
    names = feature_names(groups)
    assert num_features(groups) == len(names) == 5 * 5
    assert all(n.split(".")[1] in ("rms_db", "crest_db", "ild_db", "lr_correlation", "mid_side_db") for n in names)
    index = [feature_names().index(n) for n in names]
    torch.testing.assert_close(part, full[:, index])


def test_gradients_reach_the_stems_through_both_outputs() -> None:
    frontend = FrontEnd(small_config())
    x = stems(2).requires_grad_()
    mel, features = frontend(x)
    (grad_mel,) = torch.autograd.grad(mel.mean(), x)
    assert torch.isfinite(features).all()
    (grad_features,) = torch.autograd.grad(features.sum(), x)
    for grad in (grad_mel, grad_features):
        assert torch.isfinite(grad).all()
        assert (grad.abs().sum(dim=(-2, -1)) > 0).all()  # every stem of every item gets a gradient
    # Every feature group moves with the stems.
    for group in FEATURE_GROUPS:
        (grad,) = torch.autograd.grad(FrontEnd(small_config(features=(group,)))(x).features.sum(), x)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, group


def test_gradients_match_finite_differences_in_float64() -> None:
    # Directional derivative check (gradcheck along random directions), cheap at any size.
    frontend = FrontEnd(small_config())
    x = stems(1, seed=3, dtype=torch.float64)
    direction = stems(1, seed=4, dtype=torch.float64)
    smooth = [i for i, n in enumerate(feature_names()) if not n.endswith(("crest_db", "lufs", "rel_loudness_lu"))]
    weights = torch.randn(len(smooth), generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def scalar(inputs: torch.Tensor) -> torch.Tensor:
        mel, features = frontend(inputs)
        return mel.mean() + (features[0, smooth] * weights).sum()

    xg = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(scalar(xg), xg)
    eps = 1e-6
    numeric = (scalar(x + eps * direction) - scalar(x - eps * direction)) / (2 * eps)
    assert float((grad * direction).sum()) == pytest.approx(float(numeric), rel=1e-5)
    # LUFS: smooth between gate decisions; a small step moves no block across a gate.
    lufs = [i for i, n in enumerate(feature_names()) if n.endswith(".lufs")]
    xg = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(frontend(xg).features[0, lufs].sum(), xg)
    numeric = (frontend(x + eps * direction).features[0, lufs].sum()
               - frontend(x - eps * direction).features[0, lufs].sum()) / (2 * eps)
    assert float((grad * direction).sum()) == pytest.approx(float(numeric), rel=1e-5)


def test_chunking_and_batching_do_not_change_results() -> None:
    x = stems(4, seed=5)
    whole = FrontEnd(small_config(), chunk_items=4)(x)
    one_by_one = FrontEnd(small_config(), chunk_items=1)(x)
    torch.testing.assert_close(whole.mel, one_by_one.mel, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(whole.features, one_by_one.features, atol=1e-3, rtol=1e-5)
    single = FrontEnd(small_config())(x[2:3])
    torch.testing.assert_close(single.features, whole.features[2:3], atol=1e-3, rtol=1e-5)


def test_sparse_and_dense_mel_projections_agree() -> None:
    from mixrep.frontend.mel import stem_log_mel

    frontend = FrontEnd(small_config())
    x = stems(2, seed=6)
    args = (x, frontend.window, frontend.filterbank, 128, 1e-5)
    torch.testing.assert_close(stem_log_mel(*args, frontend._sparse_filterbank(frontend.filterbank)),
                               stem_log_mel(*args, None), atol=1e-5, rtol=1e-5)


def test_half_precision_input_is_upcast_and_autocast_is_ignored() -> None:
    frontend = FrontEnd(small_config())
    x = stems(2, seed=7)
    reference = frontend(x.half().float())
    out = frontend(x.half())
    assert out.mel.dtype == out.features.dtype == torch.float32
    torch.testing.assert_close(out.features, reference.features)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = frontend(x)
    assert inside.mel.dtype == torch.float32
    torch.testing.assert_close(inside.features, frontend(x).features)


def test_module_state_dict_is_empty_and_device_follows_the_input() -> None:
    frontend = FrontEnd(small_config())
    assert frontend.state_dict() == {} and not list(frontend.parameters())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = frontend.to(device)(stems(1).to(device))
    assert out.mel.device.type == out.features.device.type == device


def test_bad_input_is_refused_with_shapes_in_the_message() -> None:
    frontend = FrontEnd(small_config())
    with pytest.raises(ValueError, match=r"\(batch, 4, 2, samples\).*\(4, 2, 8000\)"):
        frontend(torch.zeros(4, 2, 8000))
    with pytest.raises(ValueError, match="at least 0.1 s"):
        frontend(torch.zeros(1, 4, 2, 1000))
    bad = stems(1)
    bad[0, 1, 0, 5] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        frontend(bad)

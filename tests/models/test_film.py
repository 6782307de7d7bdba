"""FiLM: exact affine values, identity at gamma=1/beta=0, generator init near identity."""

from __future__ import annotations

import pytest
import torch

from mixrep.models.film import FILM_OUTPUT_INIT_SCALE, FiLMGenerator, film


def test_film_identity_when_gamma_one_beta_zero() -> None:
    x = torch.randn(3, 5, 4, 7)
    out = film(x, torch.ones(3, 5), torch.zeros(3, 5))
    assert torch.equal(out, x)


def test_film_applies_gamma_times_x_plus_beta_per_example_and_channel() -> None:
    x = torch.tensor([[[[1.0, -2.0]], [[3.0, 0.5]]]])  # (1, 2 channels, 1 mel, 2 frames)
    gamma = torch.tensor([[2.0, -1.0]])
    beta = torch.tensor([[0.5, 10.0]])
    expected = torch.tensor([[[[2.5, -3.5]], [[7.0, 9.5]]]])
    assert torch.allclose(film(x, gamma, beta), expected)


def test_film_rejects_mismatched_parameters() -> None:
    with pytest.raises(ValueError, match=r"\(batch, channels\)"):
        film(torch.randn(2, 4, 3, 3), torch.ones(2, 3), torch.zeros(2, 3))


def test_generator_starts_near_identity_for_raw_physical_features() -> None:
    torch.manual_seed(0)
    gen = FiLMGenerator(num_features=3, num_channels=6, hidden_dim=16)
    # Raw units: LUFS near -14, a dB difference near 8, a correlation in [-1, 1].
    features = torch.stack(
        [-14 + 3 * torch.randn(32), 8 + 4 * torch.randn(32), torch.rand(32) * 2 - 1], dim=1
    )
    params = gen(features)
    assert params.gamma.shape == params.beta.shape == (32, 6)
    # BatchNorm1d standardises the features, so the hidden layer sees O(1) inputs and the
    # scaled-down output layer stays within a few FILM_OUTPUT_INIT_SCALE of the identity.
    assert (params.gamma - 1).abs().max().item() < 20 * FILM_OUTPUT_INIT_SCALE
    assert params.beta.abs().max().item() < 20 * FILM_OUTPUT_INIT_SCALE
    assert not torch.allclose(params.gamma, torch.ones_like(params.gamma))  # not frozen at 1


def test_generator_rejects_wrong_feature_count() -> None:
    gen = FiLMGenerator(num_features=4, num_channels=2)
    with pytest.raises(ValueError, match="num_features=4"):
        gen(torch.randn(2, 5))

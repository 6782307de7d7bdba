"""Temporal pooling: constant scores = mean, dominant score selects its frame, any length."""

from __future__ import annotations

import pytest
import torch

from mixrep.models.pooling import AttentionPooling, MeanPooling, attention_pool


def test_constant_scores_equal_mean_pooling() -> None:
    frames = torch.randn(3, 11, 6)
    pooled = attention_pool(frames, torch.full((3, 11), 4.2))
    assert torch.allclose(pooled, frames.mean(dim=1), atol=1e-6)
    assert torch.allclose(pooled, MeanPooling()(frames), atol=1e-6)


def test_dominant_score_puts_the_weight_on_its_frame() -> None:
    frames = torch.randn(2, 5, 4)
    scores = torch.zeros(2, 5)
    scores[0, 3] = 30.0
    scores[1, 0] = 30.0
    pooled = attention_pool(frames, scores)
    assert torch.allclose(pooled[0], frames[0, 3], atol=1e-5)
    assert torch.allclose(pooled[1], frames[1, 0], atol=1e-5)


def test_attention_module_with_zero_scorer_is_mean_pooling() -> None:
    pool = AttentionPooling(dim=6, hidden_dim=8)
    torch.nn.init.zeros_(pool.score_output.weight)
    frames = torch.randn(2, 9, 6)
    assert torch.allclose(pool(frames), frames.mean(dim=1), atol=1e-6)
    assert torch.allclose(pool.weights(frames), torch.full((2, 9), 1 / 9))


def test_attention_module_weights_follow_the_learned_score() -> None:
    # Score = w2 . tanh(W1 x): make it large for frames whose first feature is large.
    pool = AttentionPooling(dim=3, hidden_dim=1)
    with torch.no_grad():
        pool.score_hidden.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        pool.score_hidden.bias.zero_()
        pool.score_output.weight.fill_(40.0)
    frames = torch.zeros(1, 4, 3)
    frames[0, 2] = torch.tensor([5.0, 7.0, -1.0])
    weights = pool.weights(frames)
    assert weights[0, 2].item() > 0.999
    assert torch.allclose(pool(frames)[0], frames[0, 2], atol=1e-2)


@pytest.mark.parametrize("n_frames", [1, 2, 17, 300])
def test_pooling_accepts_any_number_of_frames(n_frames: int) -> None:
    frames = torch.randn(2, n_frames, 5)
    for pool in (AttentionPooling(5, 4), MeanPooling()):
        out = pool(frames)
        assert out.shape == (2, 5)
        assert torch.allclose(pool.weights(frames).sum(dim=1), torch.ones(2))


def test_pooling_rejects_empty_time_axis() -> None:
    with pytest.raises(ValueError, match="frames >= 1"):
        MeanPooling()(torch.randn(2, 0, 5))

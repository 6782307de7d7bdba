"""Temporal pooling of per-frame features into one clip vector.

:class:`AttentionPooling` learns a score per frame, turns the scores into weights with a softmax
over time and returns the weighted sum of frames (attention-based pooling as in Ilse et al.,
"Attention-based Deep Multiple Instance Learning", ICML 2018). :class:`MeanPooling` is the
ablation with uniform weights. Both take any number of frames (>= 1) and need no mask: every
clip in a batch has the same number of frames.

Shape:
    frames: ``(batch, frames, dim)`` -> pooled ``(batch, dim)``; weights ``(batch, frames)``.
"""

from __future__ import annotations

import torch
from torch import nn


def attention_pool(frames: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Weighted sum of frames with weights ``softmax(scores)`` over time.

    Args:
        frames: per-frame features.
        scores: one unnormalised score per frame (any real value).

    Returns:
        ``sum_t softmax(scores)_t * frames_t``.

    Shape:
        frames: ``(batch, frames, dim)``; scores: ``(batch, frames)`` -> ``(batch, dim)``.
    """
    if frames.ndim != 3 or scores.shape != frames.shape[:2]:
        raise ValueError(
            f"expected frames (batch, frames, dim) and scores (batch, frames), got "
            f"{tuple(frames.shape)} and {tuple(scores.shape)}"
        )
    weights = torch.softmax(scores, dim=1)
    return torch.einsum("bt,btd->bd", weights, frames)


def _check_frames(frames: torch.Tensor) -> None:
    if frames.ndim != 3 or frames.shape[1] < 1:
        raise ValueError(
            f"expected (batch, frames >= 1, dim) per-frame features, got {tuple(frames.shape)}"
        )


class AttentionPooling(nn.Module):
    """Learned softmax-over-time weighting of frames.

    The score of a frame is ``w2 . tanh(W1 x_t + b1)`` (no bias on the last layer: a constant
    shift of every score does not change the softmax).

    Args:
        dim: features per frame.
        hidden_dim: width of the scoring MLP.

    Shape:
        frames: ``(batch, frames, dim)`` -> ``(batch, dim)``.
    """

    def __init__(self, dim: int, hidden_dim: int = 128) -> None:
        super().__init__()
        self.score_hidden = nn.Linear(dim, hidden_dim)
        self.score_output = nn.Linear(hidden_dim, 1, bias=False)

    def scores(self, frames: torch.Tensor) -> torch.Tensor:
        """Unnormalised per-frame scores, ``(batch, frames, dim) -> (batch, frames)``."""
        _check_frames(frames)
        return self.score_output(torch.tanh(self.score_hidden(frames))).squeeze(-1)

    def weights(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame weights (sum to 1 over time), ``(batch, frames)``."""
        return torch.softmax(self.scores(frames), dim=1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Attention-weighted mean of the frames, ``(batch, dim)``."""
        return attention_pool(frames, self.scores(frames))


class MeanPooling(nn.Module):
    """Uniform average over frames (the no-attention ablation).

    Shape:
        frames: ``(batch, frames, dim)`` -> ``(batch, dim)``.
    """

    def weights(self, frames: torch.Tensor) -> torch.Tensor:
        """Uniform weights ``1 / frames``, ``(batch, frames)``."""
        _check_frames(frames)
        return frames.new_full(frames.shape[:2], 1.0 / frames.shape[1])

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Mean over frames, ``(batch, dim)``."""
        _check_frames(frames)
        return frames.mean(dim=1)

"""A learned branch over the mix features, next to the CNN.

FiLM lets the mix features modulate the spectrogram path, but whatever reaches the embedding must
still pass through the CNN's activations. The handcrafted features are strong style descriptors on
their own (balance, tone, dynamics, image), so this branch gives them a direct path: the raw
features are standardised with running statistics (``BatchNorm1d``, the same reason as in
:class:`~mixrep.models.film.FiLMGenerator`: they come in dB, LUFS, LU and correlations) and mapped by
a two-layer MLP to a vector that the encoder concatenates with its pooled CNN features before the
projection.

Shape:
    features ``(batch, num_features)`` -> ``(batch, output_dim)``.
"""

from __future__ import annotations

import torch
from torch import nn


class FeatureBranch(nn.Module):
    """``BatchNorm1d -> Linear -> ReLU -> Linear -> ReLU`` over the raw mix features.

    Args:
        num_features: length of the mix-feature vector.
        output_dim: size of the branch's output (also its hidden width).

    Shape:
        ``(batch, num_features)`` -> ``(batch, output_dim)``.
    """

    def __init__(self, num_features: int, output_dim: int) -> None:
        super().__init__()
        if num_features < 1 or output_dim < 1:
            raise ValueError(f"FeatureBranch needs positive sizes, got num_features={num_features}, "
                             f"output_dim={output_dim}")
        self.num_features, self.output_dim = num_features, output_dim
        self.norm = nn.BatchNorm1d(num_features)
        self.mlp = nn.Sequential(nn.Linear(num_features, output_dim), nn.ReLU(),
                                 nn.Linear(output_dim, output_dim), nn.ReLU())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(f"mix features must be (batch, num_features={self.num_features}), "
                             f"got shape {tuple(features.shape)}")
        return self.mlp(self.norm(features))

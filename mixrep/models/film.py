"""Feature-wise linear modulation (FiLM) of convolutional activations by mix features.

FiLM (Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer", AAAI 2018)
scales and shifts every channel of a feature map with a ``(gamma, beta)`` pair predicted from a
conditioning vector: ``FiLM(x) = gamma * x + beta``. Here the conditioning vector is the
handcrafted mix-feature vector (loudness in LUFS, levels in dB, stereo correlations, ...), and
each sub-band of the band-split encoder gets its own ``(gamma, beta)`` per channel.

Shape:
    Feature maps are ``(batch, channels, mels, frames)``; ``gamma`` and ``beta`` are
    ``(batch, channels)``; mix features are ``(batch, num_features)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

FILM_OUTPUT_INIT_SCALE = 1e-2
"""Scale of the generator's output-layer weights at init: ``gamma`` starts within ~1e-2 of 1 and
``beta`` within ~1e-2 of 0 (close to the identity), while every generator weight still receives a
gradient from the first step (an exactly-zero output layer would block the hidden layers)."""


def film(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Apply ``gamma * x + beta`` channel-wise.

    Args:
        x: feature map.
        gamma: per-example, per-channel scale (1 is the identity).
        beta: per-example, per-channel shift (0 is the identity).

    Returns:
        The modulated feature map, same shape as ``x``.

    Shape:
        x: ``(batch, channels, *spatial)``; gamma, beta: ``(batch, channels)``.
    """
    expected = x.shape[:2]
    if gamma.shape != expected or beta.shape != expected:
        raise ValueError(
            f"FiLM gamma/beta must be (batch, channels) = {tuple(expected)} to match x of shape "
            f"{tuple(x.shape)}, got gamma {tuple(gamma.shape)} and beta {tuple(beta.shape)}"
        )
    view = (*expected, *([1] * (x.ndim - 2)))
    # One fused pass over x (the feature maps are large; this is memory-bound on CPU).
    return torch.addcmul(beta.reshape(view), gamma.reshape(view), x)


@dataclass(frozen=True)
class FiLMParameters:
    """Output of :class:`FiLMGenerator`.

    Attributes:
        gamma: ``(batch, channels)`` scales.
        beta: ``(batch, channels)`` shifts.
    """

    gamma: torch.Tensor
    beta: torch.Tensor


class FiLMGenerator(nn.Module):
    """Map raw mix features to per-channel FiLM ``(gamma, beta)``.

    The features arrive in physical units with very different scales (LUFS around -14, dB
    differences around 0-20, correlations in [-1, 1]), so the first layer is a ``BatchNorm1d``
    that standardises every feature with running statistics over the training set. A
    ``LayerNorm`` would instead mix units by normalising across features of one example.

    The output layer predicts ``(delta_gamma, beta)`` with ``gamma = 1 + delta_gamma``; its weights
    are scaled by :data:`FILM_OUTPUT_INIT_SCALE` and its bias is zero, so the modulation starts
    close to the identity.

    Args:
        num_features: length of the mix-feature vector.
        num_channels: number of modulated channels (for the band-split encoder:
            ``n_bands * channels``, band-major).
        hidden_dim: width of the hidden layer.

    Shape:
        features: ``(batch, num_features)`` -> gamma, beta: ``(batch, num_channels)``.
    """

    def __init__(self, num_features: int, num_channels: int, hidden_dim: int = 128) -> None:
        super().__init__()
        if num_features < 1 or num_channels < 1 or hidden_dim < 1:
            raise ValueError(
                f"FiLMGenerator needs positive sizes, got num_features={num_features}, "
                f"num_channels={num_channels}, hidden_dim={hidden_dim}"
            )
        self.num_features = num_features
        self.num_channels = num_channels
        self.feature_norm = nn.BatchNorm1d(num_features)
        self.hidden = nn.Linear(num_features, hidden_dim)
        self.output = nn.Linear(hidden_dim, 2 * num_channels)
        with torch.no_grad():
            self.output.weight.mul_(FILM_OUTPUT_INIT_SCALE)
            self.output.bias.zero_()

    def forward(self, features: torch.Tensor) -> FiLMParameters:
        """Predict ``(gamma, beta)`` from ``(batch, num_features)`` raw mix features."""
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"mix features must be (batch, num_features={self.num_features}), "
                f"got shape {tuple(features.shape)}"
            )
        hidden = torch.relu(self.hidden(self.feature_norm(features)))
        delta_gamma, beta = self.output(hidden).chunk(2, dim=1)
        return FiLMParameters(gamma=1.0 + delta_gamma, beta=beta)

"""Settings decoders: from style embeddings to the mix's settings, and to what turns one mix into another.

Trained jointly with the contrastive loss (``ContrastiveStyleModule(settings_weight > 0)``), after
Cheng et al., "StemFX" (ISMIR 2026), which trains the same band-split FiLM encoder with a per-stem
effects-chain decoder. Both decoders read the L2-normalised embedding, the vector retrieval uses, so
what they recover is what the embedding carries:

- :class:`SettingsDecoder`: one embedding -> the settings vector of
  :mod:`mixrep.styles.settings_vector` (normalised values, and logits for presence entries);
- :class:`RelativeDecoder`: a pair of embeddings ``(a, b)`` -> the difference ``b - a`` of their
  normalised values (the transfer question: what to change to turn mix ``a`` into mix ``b``; its
  presence entries are not defined and are 0).

Shape:
    embeddings ``(batch, embedding_dim)`` -> ``(batch, NUM_SETTINGS)``.
"""

from __future__ import annotations

import torch
from torch import nn

from mixrep.styles.settings_vector import NUM_SETTINGS, presence_columns


def _mlp(in_dim: int, hidden_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim), nn.GELU(),
                         nn.Linear(hidden_dim, NUM_SETTINGS))


class SettingsDecoder(nn.Module):
    """Embedding -> settings: normalised values for value entries, logits for presence entries.

    Args:
        embedding_dim: size of the embeddings it reads.
        hidden_dim: width of its two hidden layers.

    Shape:
        ``(batch, embedding_dim)`` -> ``(batch, NUM_SETTINGS)``.
    """

    def __init__(self, embedding_dim: int, hidden_dim: int = 256) -> None:
        super().__init__()
        self.net = _mlp(embedding_dim, hidden_dim)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.net(embedding)

    @staticmethod
    def presence_probabilities(outputs: torch.Tensor) -> torch.Tensor:
        """``outputs`` with its presence logits turned into probabilities (values unchanged)."""
        columns = torch.as_tensor(presence_columns(), device=outputs.device)
        probabilities = outputs.clone()
        probabilities[:, columns] = torch.sigmoid(outputs[:, columns])
        return probabilities


class RelativeDecoder(nn.Module):
    """A pair of embeddings ``(a, b)`` -> the settings difference ``b - a`` (normalised values).

    Reads ``[a, b, b - a]``; presence columns of the output are zeroed (a difference of presences is
    not a setting).

    Shape:
        ``(batch, embedding_dim)`` twice -> ``(batch, NUM_SETTINGS)``.
    """

    def __init__(self, embedding_dim: int, hidden_dim: int = 256) -> None:
        super().__init__()
        self.net = _mlp(3 * embedding_dim, hidden_dim)
        keep = torch.ones(NUM_SETTINGS)
        keep[torch.as_tensor(presence_columns())] = 0.0
        self.register_buffer("value_mask", keep, persistent=False)

    def forward(self, embedding_a: torch.Tensor, embedding_b: torch.Tensor) -> torch.Tensor:
        if embedding_a.shape != embedding_b.shape:
            raise ValueError(f"the two embeddings of a pair must have one shape, got {tuple(embedding_a.shape)} "
                             f"and {tuple(embedding_b.shape)}")
        return self.net(torch.cat([embedding_a, embedding_b, embedding_b - embedding_a], dim=-1)) * self.value_mask


__all__ = ["RelativeDecoder", "SettingsDecoder"]

"""Losses of the style encoder: InfoNCE on (anchor, positive, negative) embedding triplets, and the
settings decoders' losses.

Shape:
    Embeddings are ``(batch, dim)``; row ``i`` of the three tensors forms triplet ``i``. Settings
    vectors and their masks are ``(batch, NUM_SETTINGS)`` (:mod:`mixrep.styles.settings_vector`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mixrep.styles.settings_vector import NUM_SETTINGS, presence_columns


@dataclass(frozen=True)
class InfoNCEOutput:
    """Result of :func:`info_nce`.

    Attributes:
        loss: scalar mean InfoNCE loss (float32, or float64 for float64 inputs).
        accuracy: scalar share of anchors whose positive scores strictly highest among their
            candidates (ties count as misses), detached.
        logits: ``(batch, 3 * batch)`` scaled cosine similarities ``cos / temperature`` of
            each anchor to ``[positives, negatives, anchors]`` (columns ``j``, ``batch + j``,
            ``2 * batch + j``); the anchor's own column ``2 * batch + i`` is ``-inf``.
    """

    loss: torch.Tensor
    accuracy: torch.Tensor
    logits: torch.Tensor


def info_nce(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    temperature: float = 0.1,
) -> InfoNCEOutput:
    """InfoNCE (van den Oord et al., "Representation Learning with Contrastive Predictive
    Coding", 2018) over triplets, with every other triplet of the batch as extra negatives.

    With ``a_i, p_i, n_i`` the L2-normalised embeddings of triplet ``i`` (``B`` triplets),
    ``s(x, y) = (x . y) / temperature`` and the ``3B - 1`` candidates of anchor ``i``

    ``C_i = {p_i, n_i} U {a_j, p_j, n_j : j != i}``,

    the loss is::

        L = (1 / B) * sum_i [ -s(a_i, p_i) + log sum_{c in C_i} exp(s(a_i, c)) ]

    i.e. the mean cross-entropy of picking ``p_i`` among ``C_i``. ``n_i`` is the hard negative
    (same content, another mix); the other triplets' clips are other songs. The loss is
    anchor-side only (not symmetrised). Zero vectors stay zero after normalisation (cosine 0).

    Half-precision inputs are computed in float32 (safe under autocast). For DDP, all-gather
    the three tensors across processes first and pass the gathered batch.

    Args:
        anchor: anchor embeddings (any scale; normalised here).
        positive: embeddings of the positive of each anchor.
        negative: embeddings of the hard negative of each anchor.
        temperature: softmax temperature (> 0); the prototype uses 0.1.

    Returns:
        :class:`InfoNCEOutput` with the loss, the accuracy and the logit matrix.

    Shape:
        anchor, positive, negative: ``(batch, dim)``; logits: ``(batch, 3 * batch)``.
    """
    if anchor.ndim != 2 or positive.shape != anchor.shape or negative.shape != anchor.shape:
        raise ValueError(
            f"anchor, positive and negative must all be (batch, dim), got "
            f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    batch = anchor.shape[0]
    dtype = torch.promote_types(anchor.dtype, torch.float32)  # float16/bfloat16 -> float32
    a, p, n = (F.normalize(x.to(dtype), dim=-1) for x in (anchor, positive, negative))
    keys = torch.cat([p, n, a], dim=0)  # (3B, dim)
    # Autocast would run the matmul in bf16/fp16 again: keep the logits in float32.
    with torch.autocast(device_type=anchor.device.type, enabled=False):
        logits = (a @ keys.T) / temperature  # (B, 3B)
    rows = torch.arange(batch, device=anchor.device)
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[rows, 2 * batch + rows] = True
    logits = logits.masked_fill(self_mask, float("-inf"))
    loss = F.cross_entropy(logits, rows)
    with torch.no_grad():
        positive_logit = logits[rows, rows]
        others = logits.clone()
        others[rows, rows] = float("-inf")
        accuracy = (positive_logit > others.max(dim=1).values).float().mean()
    return InfoNCEOutput(loss=loss, accuracy=accuracy, logits=logits)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def settings_loss(outputs: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The settings decoder's loss: mean squared error on the defined value entries plus binary
    cross-entropy (soft targets: the share of a stem's tracks using a processor) on the defined
    presence entries, each averaged over its defined entries.

    Args:
        outputs: decoder outputs (normalised values; logits in presence columns).
        target: settings vectors (normalised values; presence probabilities).
        mask: 1 where the target is defined.

    Shape:
        each ``(batch, NUM_SETTINGS)`` -> scalar.
    """
    presence = torch.zeros(NUM_SETTINGS, dtype=torch.bool, device=outputs.device)
    presence[torch.as_tensor(presence_columns(), device=outputs.device)] = True
    outputs, target, mask = outputs.float(), target.float(), mask.float()
    squared = (outputs - target).square()
    entropy = F.binary_cross_entropy_with_logits(outputs, target.clamp(0.0, 1.0), reduction="none")
    return _masked_mean(squared, mask * ~presence) + _masked_mean(entropy, mask * presence)


def relative_settings_loss(outputs: torch.Tensor, target_a: torch.Tensor, target_b: torch.Tensor,
                           mask_a: torch.Tensor, mask_b: torch.Tensor) -> torch.Tensor:
    """The relative decoder's loss: mean squared error of the predicted difference ``b - a`` on the
    value entries defined in both.

    Shape:
        each ``(batch, NUM_SETTINGS)`` -> scalar.
    """
    value = torch.ones(NUM_SETTINGS, device=outputs.device)
    value[torch.as_tensor(presence_columns(), device=outputs.device)] = 0.0
    squared = (outputs.float() - (target_b.float() - target_a.float())).square()
    return _masked_mean(squared, mask_a.float() * mask_b.float() * value)


__all__ = ["InfoNCEOutput", "info_nce", "relative_settings_loss", "settings_loss"]

"""InfoNCE against hand-computed values (angles on the unit circle, math.exp/math.log)."""

from __future__ import annotations

import math

import pytest
import torch

from mixrep.training.losses import InfoNCEOutput, info_nce


def _unit(angle_deg: float, length: float = 1.0) -> list[float]:
    return [length * math.cos(math.radians(angle_deg)), length * math.sin(math.radians(angle_deg))]


def test_info_nce_matches_hand_computed_loss_and_accuracy() -> None:
    # Triplet 0: anchor 0 deg, positive 60 deg, negative 90 deg  -> positive wins.
    # Triplet 1: anchor 180 deg, positive 270 deg, negative 200 deg -> hard negative wins.
    # Lengths differ on purpose: the loss must normalise.
    anchor = torch.tensor([_unit(0, 3.0), _unit(180, 0.5)], dtype=torch.float64)
    positive = torch.tensor([_unit(60, 2.0), _unit(270, 1.0)], dtype=torch.float64)
    negative = torch.tensor([_unit(90, 1.0), _unit(200, 4.0)], dtype=torch.float64)
    temperature = 0.5
    out = info_nce(anchor, positive, negative, temperature=temperature)
    assert isinstance(out, InfoNCEOutput)

    def s(deg_a: float, deg_b: float) -> float:
        return math.cos(math.radians(deg_a - deg_b)) / temperature

    # Anchor 0 (0 deg): candidates p0=60, n0=90, a1=180, p1=270, n1=200.
    loss_0 = -s(0, 60) + math.log(
        math.exp(s(0, 60)) + math.exp(s(0, 90)) + math.exp(s(0, 180))
        + math.exp(s(0, 270)) + math.exp(s(0, 200))
    )
    # Anchor 1 (180 deg): candidates p1=270, n1=200, a0=0, p0=60, n0=90.
    loss_1 = -s(180, 270) + math.log(
        math.exp(s(180, 270)) + math.exp(s(180, 200)) + math.exp(s(180, 0))
        + math.exp(s(180, 60)) + math.exp(s(180, 90))
    )
    assert out.loss.item() == pytest.approx((loss_0 + loss_1) / 2, rel=1e-6)
    assert out.accuracy.item() == pytest.approx(0.5)
    assert out.logits.shape == (2, 6)
    # Column layout [positives, negatives, anchors], own anchor column masked.
    assert out.logits[0, 1].item() == pytest.approx(s(0, 270), abs=1e-9)
    assert out.logits[1, 2].item() == pytest.approx(s(180, 90), abs=1e-9)
    assert out.logits[0, 4].item() == -math.inf and out.logits[1, 5].item() == -math.inf
    assert out.logits[0, 5].item() == pytest.approx(s(0, 180), abs=1e-9)


def test_info_nce_single_triplet_is_binary_cross_entropy_of_positive_vs_hard_negative() -> None:
    anchor, positive, negative = (
        torch.tensor([_unit(d)], dtype=torch.float64) for d in (0.0, 45.0, 120.0)
    )
    out = info_nce(anchor, positive, negative, temperature=0.1)
    s_p, s_n = math.cos(math.radians(45)) / 0.1, math.cos(math.radians(120)) / 0.1
    expected = -math.log(math.exp(s_p) / (math.exp(s_p) + math.exp(s_n)))
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    assert out.accuracy.item() == 1.0


@pytest.mark.parametrize("kind", ["identical", "zero"])
def test_info_nce_is_finite_for_degenerate_embeddings(kind: str) -> None:
    batch, dim = 4, 8
    if kind == "identical":
        base = torch.randn(1, dim).expand(batch, dim)
        anchor, positive, negative = (base.clone().requires_grad_() for _ in range(3))
    else:
        anchor, positive, negative = (torch.zeros(batch, dim, requires_grad=True) for _ in range(3))
    out = info_nce(anchor, positive, negative)
    # All 3B - 1 candidates score the same -> uniform softmax.
    assert out.loss.item() == pytest.approx(math.log(3 * batch - 1), rel=1e-5)
    assert out.accuracy.item() == 0.0  # ties are not counted as hits
    out.loss.backward()
    for tensor in (anchor, positive, negative):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all()


def test_info_nce_perfect_separation_gives_near_zero_loss_and_full_accuracy() -> None:
    eye = torch.eye(12)
    # anchor_i == positive_i, every other candidate orthogonal or opposite.
    anchor = eye[:4]
    out = info_nce(anchor, anchor.clone(), -anchor, temperature=0.01)
    assert out.accuracy.item() == 1.0
    assert out.loss.item() == pytest.approx(0.0, abs=1e-6)


def test_info_nce_rejects_bad_input() -> None:
    x = torch.randn(3, 5)
    with pytest.raises(ValueError, match="batch, dim"):
        info_nce(x, x, torch.randn(2, 5))
    with pytest.raises(ValueError, match="temperature"):
        info_nce(x, x, x, temperature=0.0)


def test_info_nce_computes_half_precision_input_in_float32() -> None:
    x = torch.randn(3, 4)
    out = info_nce(x.half(), (x + 0.1).half(), (-x).half())
    assert out.loss.dtype == torch.float32

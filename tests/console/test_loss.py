"""Lee et al.'s A-weighted multi-resolution mel-STFT loss on left/right, mid and side.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

import math

import pytest
import torch

from mixrep.console.loss import MixLoss, a_weighting

RATE = 16000


def test_a_weighting_reference_values():
    db = 20 * torch.log10(a_weighting(torch.tensor([100.0, 1000.0, 10000.0])).double())
    assert torch.allclose(db, torch.tensor([-19.1, 0.0, -2.5], dtype=torch.float64), atol=0.1)


def test_identical_mixes_give_zero_and_silence_is_stable():
    loss = MixLoss(RATE)
    x = torch.randn(2, RATE)
    assert float(loss(x, x)) < 1e-6
    silent = torch.zeros(2, RATE, requires_grad=True)
    value = loss(silent, torch.zeros(2, RATE))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(silent.grad).all()
    est = torch.zeros(2, RATE, requires_grad=True)
    loss(est, x).backward()
    assert torch.isfinite(est.grad).all()


def test_loss_grows_with_gain_error_and_weights_side():
    loss = MixLoss(RATE)
    t = torch.arange(RATE) / RATE
    mono = torch.sin(2 * math.pi * 440 * t) + 0.1 * torch.randn(RATE)
    target = torch.stack([mono, 0.5 * mono])
    small, large = loss(target * 1.1, target), loss(target * 2.0, target)
    assert 0 < small < large
    terms = loss.terms(torch.stack([mono, mono]), target)  # same mid-ish, wrong side
    assert terms["side"] > terms["mid"]
    assert torch.allclose(terms["total"],
                          0.5 * terms["lr"] + 0.25 * terms["mid"] + 0.25 * terms["side"])


def test_mid_side_terms_equal_the_losses_of_mid_and_side_signals():
    """Mid and side spectra come from the left/right STFT by linearity: same values as STFTs of
    the mid and side signals themselves."""
    loss = MixLoss(RATE)
    gen = torch.Generator().manual_seed(0)
    est = torch.randn(2, 2, RATE, generator=gen, dtype=torch.float64)
    ref = torch.randn(2, 2, RATE, generator=gen, dtype=torch.float64)
    terms = loss.terms(est, ref)
    mid = lambda x: (x[..., 0, :] + x[..., 1, :]) / 2  # noqa: E731
    side = lambda x: (x[..., 0, :] - x[..., 1, :]) / 2  # noqa: E731
    assert torch.allclose(terms["mid"], sum(r(mid(est), mid(ref)) for r in loss.resolutions), rtol=1e-10)
    assert torch.allclose(terms["side"], sum(r(side(est), side(ref)) for r in loss.resolutions), rtol=1e-10)
    assert torch.allclose(terms["lr"], sum(r(est, ref) for r in loss.resolutions), rtol=1e-10)


def test_multi_resolution_stft_distance_is_zero_for_equal_renders_and_grows_with_the_difference():
    from mixrep.console.loss import multi_resolution_stft_distance

    torch.manual_seed(0)
    target = torch.randn(2, 22050)
    assert multi_resolution_stft_distance(target, target.clone()) == pytest.approx(0.0, abs=1e-6)
    small = multi_resolution_stft_distance(target + 0.01 * torch.randn(2, 22050), target)
    large = multi_resolution_stft_distance(target + 0.3 * torch.randn(2, 22050), target)
    louder = multi_resolution_stft_distance(2.0 * target, target)  # 6 dB: log term log(2), convergence 1
    assert 0 < small < large
    assert louder == pytest.approx(1.0 + math.log(2.0), rel=1e-3)
    with pytest.raises(ValueError, match="differ in shape"):
        multi_resolution_stft_distance(target, target[:, :100])

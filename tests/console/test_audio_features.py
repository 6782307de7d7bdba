"""Mix features, AudioFeatureLoss and feature_errors: analytic checks, gradients, batching."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mixrep.console import AudioFeatureLoss, feature_errors
from mixrep.console.audio_features import (
    FEATURE_UNITS,
    MixFeatures,
    bark_filterbank,
    hz_to_bark,
    integrated_loudness_lufs,
    mix_features,
)

RATE = 44100
SAMPLES = RATE // 2
GAIN_6DB = 10.0 ** (6.0 / 20.0)


def noise(batch: int = 1, seed: int = 0, samples: int = SAMPLES) -> torch.Tensor:
    return 0.1 * torch.randn(batch, 2, samples, generator=torch.Generator().manual_seed(seed))


def tones(amplitudes_by_hz: dict[float, float]) -> torch.Tensor:
    """A centred (L = R) sum of sines, ``(1, 2, SAMPLES)``."""
    t = torch.arange(SAMPLES) / RATE
    mono = sum(a * torch.sin(2 * math.pi * f * t) for f, a in amplitudes_by_hz.items())
    return torch.stack([mono, mono])[None]


@pytest.fixture(scope="module")
def features() -> MixFeatures:
    return MixFeatures(RATE)


def test_every_feature_has_its_documented_shape(features):
    out = features(noise(batch=3))
    assert list(out) == list(FEATURE_UNITS)
    shapes = {"rms_db": (3, 2), "crest_db": (3, 2), "bark_mid_db": (3, 24), "bark_side_db": (3, 24),
              "panning_rms": (3, 4)}
    for name, value in out.items():
        assert value.shape == shapes.get(name, (3,)), name
        assert torch.isfinite(value).all(), name


def test_identical_inputs_give_zero_error_and_zero_loss():
    mix = noise(batch=2)
    assert feature_errors(mix, mix.clone(), RATE) == {name: 0.0 for name in FEATURE_UNITS}
    terms = AudioFeatureLoss(RATE).terms(mix, mix.clone())
    assert set(terms) == set(FEATURE_UNITS) | {"total"}
    assert all(float(value) == 0.0 for value in terms.values())


def test_plus_6_db_moves_levels_by_6_db_and_leaves_shape_features_alone(features):
    mix = noise()
    quiet, loud = features(mix), features(GAIN_6DB * mix)
    for name in ("rms_db", "bark_mid_db", "bark_side_db", "loudness_lufs"):
        torch.testing.assert_close(loud[name] - quiet[name], torch.full_like(quiet[name], 6.0), atol=0.1, rtol=0)
    for name in ("crest_db", "stereo_width", "stereo_imbalance", "spectral_flatness", "panning_rms",
                 "frame_crest_db", "dynamic_spread_db", "frame_rms_std_db"):
        torch.testing.assert_close(loud[name], quiet[name], atol=1e-3, rtol=1e-3, msg=name)
    for name in ("spectral_centroid_hz", "spectral_bandwidth_hz", "spectral_rolloff_hz"):
        torch.testing.assert_close(loud[name], quiet[name], atol=1.0, rtol=0, msg=name)
    errors = feature_errors(GAIN_6DB * mix, mix, RATE)
    assert errors["rms_db"] == pytest.approx(6.0, abs=0.1)
    assert errors["crest_db"] < 1e-3


def test_centred_signal_is_narrow_and_balanced_hard_left_is_extreme(features):
    mono = noise()[:, :1]
    centred = features(mono.expand(-1, 2, -1))
    assert float(centred["stereo_width"]) == pytest.approx(0.0, abs=1e-6)
    assert float(centred["stereo_imbalance"]) == pytest.approx(0.0, abs=1e-6)
    assert centred["panning_rms"].max() < 1e-3
    assert centred["bark_side_db"].max() == pytest.approx(-100.0, abs=0.01)  # side is digital silence
    hard_left = features(torch.cat([mono, torch.zeros_like(mono)], 1))
    hard_right = features(torch.cat([torch.zeros_like(mono), mono], 1))
    assert float(hard_left["stereo_imbalance"]) == pytest.approx(-1.0, abs=1e-6)
    assert float(hard_right["stereo_imbalance"]) == pytest.approx(1.0, abs=1e-6)
    assert float(hard_left["stereo_width"]) == pytest.approx(1.0, abs=1e-6)  # side = mid
    torch.testing.assert_close(hard_left["panning_rms"], torch.ones(1, 4), atol=1e-3, rtol=0)


def test_a_louder_high_band_raises_the_high_bark_bands_and_the_centroid(features):
    quiet, bright = features(tones({300.0: 0.3, 6000.0: 0.05})), features(tones({300.0: 0.3, 6000.0: 0.2}))
    band_of = features.bark.argmax(1)  # strongest band of each FFT bin
    high_band = int(band_of[round(6000.0 * features.n_fft / RATE)])
    low_band = int(band_of[round(300.0 * features.n_fft / RATE)])
    rise = bright["bark_mid_db"][0] - quiet["bark_mid_db"][0]
    assert float(rise[high_band]) == pytest.approx(20 * math.log10(4.0), abs=0.5)  # x4 amplitude: +12 dB
    assert abs(float(rise[low_band])) < 0.1
    assert bright["spectral_centroid_hz"] > quiet["spectral_centroid_hz"] + 500.0
    assert bright["spectral_rolloff_hz"] > quiet["spectral_rolloff_hz"]


def test_loudness_matches_pyloudnorm_on_stationary_noise(features):
    mix = noise(batch=2, samples=RATE)
    reference = torch.from_numpy(integrated_loudness_lufs(mix, RATE)).float()
    torch.testing.assert_close(features(mix)["loudness_lufs"], reference, atol=0.3, rtol=0)
    assert integrated_loudness_lufs(torch.zeros(2, RATE), RATE)[0] == -math.inf


@pytest.mark.parametrize("case", ["silence", "random"])
def test_every_feature_and_the_loss_have_finite_gradients(features, case):
    mix = torch.zeros(2, 2, SAMPLES) if case == "silence" else noise(batch=2)
    for name in FEATURE_UNITS:
        leaf = mix.clone().requires_grad_()
        features(leaf)[name].sum().backward()
        assert torch.isfinite(leaf.grad).all(), f"{name} gradient on {case}"
    leaf = mix.clone().requires_grad_()
    loss = AudioFeatureLoss(RATE)(leaf, noise(batch=2, seed=1))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(leaf.grad).all()


def test_batched_equals_one_at_a_time(features):
    mixes = torch.cat([noise(seed=1), tones({440.0: 0.5}), torch.zeros(1, 2, SAMPLES)])
    batched = features(mixes)
    for index in range(len(mixes)):
        single = features(mixes[index])  # (2, samples): a batch of one
        for name in FEATURE_UNITS:
            torch.testing.assert_close(single[name][0], batched[name][index], atol=1e-4, rtol=1e-5, msg=name)


def test_adam_on_a_gain_lowers_the_loss_towards_the_target():
    source = noise(seed=2)
    target = source * 10.0 ** (-3.0 / 20.0)
    loss_fn = AudioFeatureLoss(RATE)
    gain_db = torch.tensor(-15.0, requires_grad=True)
    optimiser = torch.optim.Adam([gain_db], lr=1.0)
    losses = []
    for _ in range(8):
        optimiser.zero_grad()
        loss = loss_fn(source * 10.0 ** (gain_db / 20.0), target)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert all(b < a for a, b in itertools.pairwise(losses))
    assert abs(gain_db.item() + 3.0) < abs(-15.0 + 3.0)


def test_weights_select_and_scale_terms():
    mix = noise()
    terms = AudioFeatureLoss(RATE, weights={"rms_db": 1.0, "crest_db": 0.0}).terms(GAIN_6DB * mix, mix)
    assert "crest_db" not in terms
    assert float(terms["rms_db"]) == pytest.approx(6.0, abs=0.1)
    assert float(terms["total"]) == pytest.approx(float(sum(v for k, v in terms.items() if k != "total")))
    with pytest.raises(ValueError, match="unknown feature weights"):
        AudioFeatureLoss(RATE, weights={"rms": 1.0})


@pytest.mark.parametrize("shape", [(SAMPLES,), (1, SAMPLES), (2, 1, SAMPLES), (2, 3, SAMPLES), (1, 1, 2, SAMPLES)])
def test_a_mix_that_is_not_stereo_is_refused(features, shape):
    with pytest.raises(ValueError, match="stereo"):
        features(torch.zeros(shape))


def test_mismatched_and_too_short_inputs_are_refused(features):
    with pytest.raises(ValueError, match="shapes differ"):
        feature_errors(noise(), noise(samples=SAMPLES - 1), RATE)
    with pytest.raises(ValueError, match="shapes differ"):
        AudioFeatureLoss(RATE)(noise(batch=2), noise())
    with pytest.raises(ValueError, match="shorter than one analysis frame"):
        features(torch.zeros(2, features.n_fft - 1))
    with pytest.raises(ValueError, match="0.4 s"):
        integrated_loudness_lufs(torch.zeros(2, RATE // 4), RATE)


def test_bark_filterbank_is_a_partition_of_unity_and_refuses_empty_bands():
    weights = bark_filterbank(4096, RATE)
    peaks = weights.argmax(0)  # the FFT bin at each band's centre
    inside = slice(int(peaks[0]), int(peaks[-1]) + 1)  # between the first and last centres
    torch.testing.assert_close(weights[inside].sum(1), torch.ones(inside.stop - inside.start), atol=1e-5, rtol=0)
    assert float(hz_to_bark(torch.tensor(1000.0).numpy())) == pytest.approx(8.53, abs=0.05)
    with pytest.raises(ValueError, match="hold no FFT bin"):
        bark_filterbank(64, RATE)


def test_mix_features_runs_on_an_unbatched_mix():
    out = mix_features(tones({1000.0: 0.5})[0], RATE)
    assert out["spectral_centroid_hz"].shape == (1,)
    assert float(out["spectral_centroid_hz"]) == pytest.approx(1000.0, rel=0.05)

"""Style augmentation: reproducibility, shared chains, ranges and the never-identity guarantee."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixrep.styles.chains import (
    AugmentConfig,
    StyleAugmenter,
    StyleChain,
    apply_chain,
    change_db,
    sample_chain,
)

SR = 44_100


def _song(seed: int, seconds: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    levels = rng.uniform(0.05, 0.3, size=(4, 1, 1))
    return (levels * rng.standard_normal((4, 2, int(seconds * SR)))).astype(np.float32)


def _rms_db(x: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64), axis=(-2, -1)))


def test_same_seed_same_chain_and_audio() -> None:
    config = AugmentConfig.all_effects(prob=0.7)
    stems = _song(0)
    out_a, chain_a = StyleAugmenter(config)(stems, np.random.default_rng(5), SR)
    out_b, chain_b = StyleAugmenter(config)(stems, np.random.default_rng(5), SR)
    assert chain_a == chain_b
    np.testing.assert_array_equal(out_a, out_b)
    _, chain_c = StyleAugmenter(config)(stems, np.random.default_rng(6), SR)
    assert chain_c != chain_a


def test_chain_round_trips_through_json() -> None:
    chain = sample_chain(AugmentConfig.all_effects(prob=1.0), np.random.default_rng(0))
    data = json.loads(json.dumps(chain.to_dict()))
    assert list(data) == ["drums", "bass", "other", "vocals"]
    assert StyleChain.from_dict(data) == chain


def test_one_chain_applies_identical_gains_to_two_songs() -> None:
    config = AugmentConfig.all_effects(prob=0.0)
    config.gain.prob = 1.0
    chain = sample_chain(config, np.random.default_rng(3))
    gains_db = np.array([s.gain_db for s in chain.stems])
    for song in (_song(1), _song(2)):
        change = _rms_db(apply_chain(song, chain, SR)) - _rms_db(song)
        np.testing.assert_allclose(change, gains_db, atol=1e-3)


def test_full_chain_is_deterministic_across_calls() -> None:
    chain = sample_chain(AugmentConfig.all_effects(prob=1.0), np.random.default_rng(4))
    song = _song(1)
    np.testing.assert_array_equal(apply_chain(song, chain, SR), apply_chain(song, chain, SR))


def test_gain_range_is_honoured() -> None:
    config = AugmentConfig.all_effects(prob=0.0)
    config.gain.prob = 1.0
    gains = np.array([s.gain_db for seed in range(200) for s in sample_chain(config, np.random.default_rng(seed)).stems])
    assert np.abs(gains).max() <= config.gain.max_gain_db
    assert gains.min() < -7.0 and gains.max() > 7.0  # the whole +-9 dB range is used


@pytest.mark.parametrize("seed", range(5))
def test_negative_differs_from_anchor_even_with_all_probabilities_zero(seed: int) -> None:
    config = AugmentConfig.all_effects(prob=0.0)
    stems = _song(seed)
    stems[seed % 4] *= 1e-4  # a near-silent stem must not absorb the forced move
    out, chain = StyleAugmenter(config)(stems, np.random.default_rng(seed), SR)
    assert change_db(stems, out) >= config.min_change_db
    forced = [s.gain_db for s in chain.stems if s.gain_db != 0.0]
    assert len(forced) >= 1 and all(config.min_gain_db <= abs(g) <= config.gain.max_gain_db for g in forced)
    np.testing.assert_allclose(out, apply_chain(stems, chain, SR), rtol=1e-5, atol=1e-7)  # chain is the truth


def test_sampled_chain_is_never_identity() -> None:
    config = AugmentConfig.all_effects(prob=0.0)
    for seed in range(20):
        chain = sample_chain(config, np.random.default_rng(seed))
        assert max(abs(s.gain_db) for s in chain.stems) >= config.min_gain_db


def test_bandwidth_limit_removes_energy_above_the_cutoff() -> None:
    config = AugmentConfig.all_effects(prob=0.0)
    config.bandwidth.prob = 1.0
    config.bandwidth.lowpass_hz_range = (4000.0, 4000.0)
    config.bandwidth.highpass_hz_range = (50.0, 50.0)
    chain = sample_chain(config, np.random.default_rng(0))
    stems = _song(0)
    out = apply_chain(stems, chain, SR)
    freqs = np.fft.rfftfreq(stems.shape[-1], 1 / SR)
    power_in = np.abs(np.fft.rfft(stems[0, 0])) ** 2
    power_out = np.abs(np.fft.rfft(out[0, 0])) ** 2
    above = freqs > 8000.0  # one octave above a 24 dB/octave cut-off
    passband = (freqs > 500.0) & (freqs < 2000.0)
    assert 10 * np.log10(power_out[above].sum() / power_in[above].sum()) < -20.0
    assert abs(10 * np.log10(power_out[passband].sum() / power_in[passband].sum())) < 1.0


def test_width_zero_makes_a_stem_mono_and_saturation_bounds_peaks() -> None:
    config = AugmentConfig.all_effects(prob=0.0)
    config.width.prob = 1.0
    config.width.width_range = (0.0, 0.0)
    out = apply_chain(_song(0), sample_chain(config, np.random.default_rng(0)), SR)
    np.testing.assert_allclose(out[:, 0], out[:, 1], atol=1e-7)
    config = AugmentConfig.all_effects(prob=0.0)
    config.saturation.prob = 1.0
    config.saturation.drive_db_range = (12.0, 12.0)
    out = apply_chain(_song(0) * 10, sample_chain(config, np.random.default_rng(0)), SR)
    assert np.abs(out).max() <= 10 ** (-12 / 20) + 1e-6  # tanh(g x) / g never exceeds 1 / g


def test_every_effect_on_every_stem_stays_finite_and_bounded() -> None:
    config = AugmentConfig.all_effects(prob=1.0)
    stems = np.clip(_song(0) * 20, -1, 1)  # clipped, loud input
    for seed in range(3):
        out = apply_chain(stems, sample_chain(config, np.random.default_rng(seed)), SR)
        assert out.dtype == np.float32 and out.shape == stems.shape
        assert np.isfinite(out).all() and np.abs(out).max() < 20.0


def test_silence_stays_silent_and_bad_input_is_rejected() -> None:
    silent = np.zeros((4, 2, SR // 2), dtype=np.float32)
    out, _ = StyleAugmenter()(silent, np.random.default_rng(0), SR)
    assert np.array_equal(out, silent)  # exactly zero: no effect may add noise or DC
    with pytest.raises(ValueError, match="non-finite"):
        bad = _song(0)
        bad[1, 1, 3] = np.inf
        apply_chain(bad, sample_chain(AugmentConfig(), np.random.default_rng(0)), SR)
    with pytest.raises(ValueError, match=r"\(4, 2, samples\)"):
        apply_chain(np.zeros((3, 2, 100), np.float32), sample_chain(AugmentConfig(), np.random.default_rng(0)), SR)
    with pytest.raises(ValueError, match="prob"):
        AugmentConfig.all_effects(prob=1.5)

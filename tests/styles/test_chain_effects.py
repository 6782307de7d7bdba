"""What each mixing move of the style chains does to the audio, measured (against today's
AugmentConfig / sample_chain / apply_chain API)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mixrep.styles.chains import AugmentConfig, StyleAugmenter, apply_chain, sample_chain

SR = 44_100


def only(effect: str, **ranges) -> AugmentConfig:
    """A config where only ``effect`` fires (on every stem), with fixed parameter ranges."""
    config = AugmentConfig.all_effects(prob=0.0)
    setattr(config, effect, dataclasses.replace(getattr(config, effect), prob=1.0, **ranges))
    return config


def restyle(stems: np.ndarray, config: AugmentConfig, seed: int = 0) -> np.ndarray:
    return apply_chain(stems, sample_chain(config, np.random.default_rng(seed)), SR)


def white(seconds: float = 1.0, seed: int = 0, level: float = 0.1) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal((4, 2, int(seconds * SR)))).astype(np.float32)


def band_db(audio: np.ndarray, low_hz: float, high_hz: float) -> float:
    """Energy of ``audio`` (any leading axes, last = samples) between two frequencies, dB."""
    spectrum = np.abs(np.fft.rfft(audio, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(audio.shape[-1], 1 / SR)
    return float(10 * np.log10(spectrum[..., (freqs >= low_hz) & (freqs < high_hz)].sum()))


def crest_db(audio: np.ndarray) -> float:
    return float(20 * np.log10(np.abs(audio).max() / np.sqrt(np.mean(np.square(audio)))))


def test_shelving_eq_moves_the_bands_below_and_above_its_corners():
    stems = white()
    out = restyle(stems, only("eq", max_gain_db=6.0))
    chain = sample_chain(only("eq", max_gain_db=6.0), np.random.default_rng(0))
    for stem, moves in enumerate(chain.stems):
        low, high = moves.eq["low_gain_db"], moves.eq["high_gain_db"]
        # Two octaves away from the 250 Hz and 4 kHz corners the shelves have reached their gain.
        assert band_db(out[stem], 20, 62) - band_db(stems[stem], 20, 62) == pytest.approx(low, abs=0.5)
        assert band_db(out[stem], 16_000, 20_000) - band_db(stems[stem], 16_000, 20_000) == pytest.approx(high, abs=0.5)
        # Between the corners (1 kHz) little changes.
        assert abs(band_db(out[stem], 900, 1100) - band_db(stems[stem], 900, 1100)) < 0.5 * max(abs(low), abs(high)) + 0.5


def envelope_crest_db(audio: np.ndarray, block_seconds: float = 0.05) -> float:
    """Crest factor of the short-term level: loudest 50 ms block RMS over the clip's RMS, dB."""
    block = int(block_seconds * SR)
    blocks = audio[..., : audio.shape[-1] // block * block].reshape(*audio.shape[:-1], -1, block)
    levels = np.sqrt(np.mean(np.square(blocks), axis=(0, -1)))
    return float(20 * np.log10(levels.max() / np.sqrt(np.mean(np.square(audio)))))


def test_compression_lowers_the_crest_factor_and_never_adds_level():
    # A quiet tone with one loud, smoothly ramped passage: the compressor pulls the passage down.
    # Measured finding: the *sample* crest factor of the clip does not drop (the first milliseconds
    # of the passage pass before the gain falls and set the peak, here +1 dB; with drum hits +4 dB),
    # so the crest factor is measured on the short-term level, which is what a compressor evens out.
    t = np.arange(2 * SR) / SR
    envelope = np.full(t.size, 0.02)
    loud = (t > 0.8) & (t < 0.9)
    ramp = np.clip(np.minimum(t - 0.8, 0.9 - t) / 0.02, 0.0, 1.0)
    envelope[loud] = 0.02 + 0.68 * (0.5 - 0.5 * np.cos(np.pi * ramp[loud]))
    tone = envelope * np.sin(2 * np.pi * 220.0 * t)
    stems = np.stack([np.stack([tone, tone])] * 4).astype(np.float32)
    out = restyle(stems, only("compressor", threshold_db_range=(-30.0, -30.0), ratio_range=(8.0, 8.0),
                              attack_ms_range=(5.0, 5.0), release_ms_range=(100.0, 100.0)))
    quiet = t < 0.7
    for stem in range(4):
        assert envelope_crest_db(out[stem]) < envelope_crest_db(stems[stem]) - 3.0
        assert np.mean(np.square(out[stem])) < np.mean(np.square(stems[stem]))
        # The passage-to-background level difference shrinks by most of (1 - 1/ratio).
        before = 10 * np.log10(np.mean(stems[stem][:, loud] ** 2) / np.mean(stems[stem][:, quiet] ** 2))
        after = 10 * np.log10(np.mean(out[stem][:, loud] ** 2) / np.mean(out[stem][:, quiet] ** 2))
        assert after < before - 10.0


@pytest.mark.parametrize("width", [0.0, 0.5, 1.5, 2.0])
def test_width_scales_the_side_energy_by_its_square_and_keeps_the_mid(width: float):
    stems = white(seed=2)
    out = restyle(stems, only("width", width_range=(width, width)))
    mid_in, side_in = (stems[:, 0] + stems[:, 1]) / 2, (stems[:, 0] - stems[:, 1]) / 2
    mid_out, side_out = (out[:, 0] + out[:, 1]) / 2, (out[:, 0] - out[:, 1]) / 2
    np.testing.assert_allclose(mid_out, mid_in, atol=1e-6)
    ratio = np.sum(side_out**2, axis=-1) / np.sum(side_in**2, axis=-1)
    np.testing.assert_allclose(ratio, width**2, rtol=1e-4, atol=1e-9)


def test_delay_adds_an_echo_at_its_delay():
    stems = white(seconds=1.0, seed=3)
    out = restyle(stems, only("delay", delay_seconds_range=(0.1, 0.1), feedback_range=(0.0, 0.0),
                              mix_range=(0.3, 0.3)))
    x, y = stems[0, 0].astype(np.float64), out[0, 0].astype(np.float64)
    lag = int(0.1 * SR)
    correlation = np.correlate(y[lag:], x[:-lag]) / np.sqrt(np.sum(y[lag:] ** 2) * np.sum(x[:-lag] ** 2))
    elsewhere = np.correlate(y[lag // 2:], x[:-lag // 2]) / np.sqrt(np.sum(y[lag // 2:] ** 2) * np.sum(x[:-lag // 2] ** 2))
    assert correlation[0] > 0.2 and abs(elsewhere[0]) < 0.05


def test_reverb_adds_a_decaying_tail_after_the_sound_stops():
    stems = np.zeros((4, 2, SR), dtype=np.float32)
    stems[..., :2000] = white(seconds=2000 / SR, seed=4)
    out = restyle(stems, only("reverb", room_size_range=(0.8, 0.8), damping_range=(0.5, 0.5),
                              wet_level_range=(0.3, 0.3)))
    tail = out[..., 4000:20_000]
    assert np.mean(np.square(tail)) > 1e-6  # input is exactly zero there
    early, late = np.mean(np.square(out[..., 4000:8000])), np.mean(np.square(out[..., 30_000:40_000]))
    assert late < early  # it decays


def test_saturation_adds_odd_harmonics_to_a_sine():
    t = np.arange(SR) / SR
    sine = 0.8 * np.sin(2 * np.pi * 440.0 * t)
    stems = np.stack([np.stack([sine, sine])] * 4).astype(np.float32)
    out = restyle(stems, only("saturation", drive_db_range=(12.0, 12.0)))
    third = band_db(out[0, 0], 1300, 1340) - band_db(out[0, 0], 420, 460)
    assert band_db(stems[0, 0], 1300, 1340) - band_db(stems[0, 0], 420, 460) < -100  # a pure tone
    assert third > -30.0  # tanh's third harmonic
    assert crest_db(out[0, 0]) < crest_db(stems[0, 0])


@pytest.mark.parametrize("effect", ["gain", "eq", "bandwidth", "compressor", "saturation", "delay", "reverb", "width"])
def test_silence_stays_exactly_silent(effect: str):
    silent = np.zeros((4, 2, SR // 2), dtype=np.float32)
    assert np.array_equal(restyle(silent, only(effect)), silent)
    out, _ = StyleAugmenter(AugmentConfig.all_effects(prob=1.0))(silent, np.random.default_rng(0), SR)
    assert np.array_equal(out, silent)

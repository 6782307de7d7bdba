"""Mix features: analytic values, robustness floors and the vector layout."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest

from mixrep.audio.features import (
    LEVEL_FLOOR_DB,
    LOUDNESS_FLOOR_LUFS,
    MIN_SECONDS,
    feature_names,
    mix_features,
    num_features,
)
from mixrep.constants import STEMS

SR = 44_100


def _named(vector: np.ndarray) -> dict[str, float]:
    return dict(zip(feature_names(), vector.tolist()))


def _sine(freq_hz: float, seconds: float, amplitude: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def _noise_stems(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    levels = np.array([0.2, 0.1, 0.05, 0.1])[:, None, None]
    return (levels * rng.standard_normal((4, 2, int(seconds * SR)))).astype(np.float32)


def test_names_match_vector_and_are_unique() -> None:
    names = feature_names()
    assert len(names) == num_features() == len(set(names))
    assert mix_features(_noise_stems(), SR).shape == (num_features(),)
    assert mix_features(_noise_stems(), SR).dtype == np.float32
    for name in ("vocals.rms_db", "mix.band3_db", "bass.dominance_band1", "drums.rel_loudness_lu", "mix.lufs"):
        assert name in names
    assert "mix.rel_loudness_lu" not in names and "mix.dominance_band0" not in names


def test_full_scale_sine_rms_and_crest() -> None:
    stems = np.zeros((4, 2, SR), dtype=np.float32)
    stems[3] = _sine(1000.0, 1.0)  # 1000 whole periods in 1 s: exact RMS 1/sqrt(2)
    f = _named(mix_features(stems, SR))
    assert f["vocals.rms_db"] == pytest.approx(-3.0103, abs=1e-3)
    assert f["vocals.crest_db"] == pytest.approx(3.0103, abs=1e-3)
    assert f["mix.rms_db"] == pytest.approx(-3.0103, abs=1e-3)
    assert f["vocals.lr_correlation"] == pytest.approx(1.0, abs=1e-5)
    assert f["vocals.ild_db"] == pytest.approx(0.0, abs=1e-4)
    assert f["vocals.mid_side_db"] == 40.0  # mono saturates the ratio
    assert f["vocals.flatness_db"] < -40.0  # a tone is anything but flat
    assert f["vocals.band4_db"] > -0.1  # 1 kHz lies in band 4 (632-1500 Hz): all the energy
    assert f["vocals.dominance_band4"] == pytest.approx(1.0, abs=1e-6)


def test_lufs_matches_pyloudnorm() -> None:
    amplitude = 10 ** (-20 / 20) * np.sqrt(2)  # -20 dBFS RMS
    tone = _sine(1000.0, 2.0, amplitude)
    stems = np.zeros((4, 2, tone.size), dtype=np.float32)
    stems[2] = tone
    stems[0] = _noise_stems(2.0)[0] * np.linspace(0, 1, tone.size, dtype=np.float32)  # exercises the gate
    f = _named(mix_features(stems, SR))
    meter = pyloudnorm.Meter(SR)
    assert f["mix.lufs"] == pytest.approx(meter.integrated_loudness(stems.sum(0).T.astype(np.float64)), abs=0.01)
    assert f["other.lufs"] == pytest.approx(meter.integrated_loudness(tone[:, None].repeat(2, 1).astype(np.float64)), abs=0.01)
    assert f["drums.lufs"] == pytest.approx(meter.integrated_loudness(stems[0].T.astype(np.float64)), abs=0.01)
    assert f["other.rel_loudness_lu"] == pytest.approx(f["other.lufs"] - f["mix.lufs"], abs=1e-4)


def test_hard_panned_stem_gives_large_ild_and_zero_correlation() -> None:
    stems = np.zeros((4, 2, SR), dtype=np.float32)
    stems[1, 0] = _noise_stems()[1, 0]  # bass only in the left channel
    f = _named(mix_features(stems, SR))
    assert f["bass.ild_db"] > 30.0 and f["mix.ild_db"] > 30.0
    assert f["mix.lr_correlation"] == pytest.approx(0.0, abs=1e-6)
    assert f["mix.mid_side_db"] == pytest.approx(0.0, abs=1e-3)  # mid and side are equal: M = S = L / 2


def test_vocal_gain_moves_its_levels_by_exactly_that_much() -> None:
    stems = _noise_stems()
    louder = stems.copy()
    louder[3] *= 10 ** (6 / 20)
    before, after = _named(mix_features(stems, SR)), _named(mix_features(louder, SR))
    assert after["vocals.rms_db"] - before["vocals.rms_db"] == pytest.approx(6.0, abs=1e-3)
    assert after["vocals.lufs"] - before["vocals.lufs"] == pytest.approx(6.0, abs=0.01)
    mix_change = after["mix.lufs"] - before["mix.lufs"]
    assert 0.0 < mix_change < 6.0
    assert after["vocals.rel_loudness_lu"] - before["vocals.rel_loudness_lu"] == pytest.approx(6.0 - mix_change, abs=0.01)
    assert after["drums.rel_loudness_lu"] - before["drums.rel_loudness_lu"] == pytest.approx(-mix_change, abs=0.01)
    # Untouched stems keep their own levels; spectral shape features are gain invariant.
    assert after["drums.rms_db"] == pytest.approx(before["drums.rms_db"], abs=1e-4)
    assert after["vocals.tilt_db_per_octave"] == pytest.approx(before["vocals.tilt_db_per_octave"], abs=1e-3)


def test_low_frequency_stem_dominates_the_lowest_band_and_tilts_down() -> None:
    stems = _noise_stems()
    stems[1] = _sine(30.0, 1.0, 0.5)  # bass: 30 Hz only, in band 0 (20-47 Hz)
    f = _named(mix_features(stems, SR))
    assert f["bass.dominance_band0"] > 0.9
    assert f["bass.dominance_band7"] < 0.01
    assert f["bass.tilt_db_per_octave"] < -5.0
    assert abs(f["drums.tilt_db_per_octave"]) < 0.5  # white noise has a flat PSD
    shares = [sum(f[f"{s}.dominance_band{b}"] for s in STEMS) for b in range(8)]
    np.testing.assert_allclose(shares, 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "case", ["silence", "one_silent_stem", "mono", "clipped", "half_second", "shorter_than_a_block"]
)
def test_finite_on_edge_cases(case: str) -> None:
    stems = _noise_stems()
    if case == "silence":
        stems[:] = 0.0
    elif case == "one_silent_stem":
        stems[2] = 0.0
    elif case == "mono":
        stems[:, 1] = stems[:, 0]
    elif case == "clipped":
        stems = np.clip(stems * 30.0, -1.0, 1.0)
    elif case == "half_second":
        stems = stems[..., : SR // 2]
    elif case == "shorter_than_a_block":
        stems = stems[..., : int(MIN_SECONDS * SR)]
    f = _named(mix_features(stems, SR))
    assert np.isfinite(list(f.values())).all()
    if case == "silence":
        assert f["mix.rms_db"] == pytest.approx(LEVEL_FLOOR_DB)
        assert f["mix.lufs"] == LOUDNESS_FLOOR_LUFS
        assert f["vocals.dominance_band3"] == pytest.approx(0.25)
        assert f["mix.crest_db"] == pytest.approx(0.0, abs=1e-4)
    if case == "one_silent_stem":
        assert f["other.rms_db"] == pytest.approx(LEVEL_FLOOR_DB)
        assert f["other.lufs"] == LOUDNESS_FLOOR_LUFS
        assert f["other.dominance_band5"] < 1e-6
    if case == "mono":
        assert f["mix.lr_correlation"] == pytest.approx(1.0, abs=1e-5)
    if case == "shorter_than_a_block":  # one block over the clip: noise loudness is still sensible
        assert -30.0 < f["drums.lufs"] < -5.0


def test_bad_input_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match=r"\(4, 2, samples\)"):
        mix_features(np.zeros((2, SR), dtype=np.float32), SR)
    with pytest.raises(ValueError, match="at least"):
        mix_features(np.zeros((4, 2, 100), dtype=np.float32), SR)
    nan = _noise_stems()
    nan[0, 0, 10] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        mix_features(nan, SR)

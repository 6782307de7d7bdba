"""Mix features in torch: analytic values, robustness floors, the vector layout, and agreement with
pyloudnorm and with the previous NumPy implementation (tests/frontend/reference_features.py)."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import scipy.signal
import torch

from mixrep.constants import STEMS
from mixrep.frontend import MIN_SECONDS, feature_names, num_features
from mixrep.frontend import mix_features as torch_mix_features
from mixrep.frontend.features import LEVEL_FLOOR_DB
from mixrep.frontend.loudness import LOUDNESS_FLOOR_LUFS, k_weighting_sos
from tests.frontend import reference_features as reference

SR = 44_100


def mix_features(stems: np.ndarray, sample_rate: int) -> np.ndarray:
    """The torch features of one clip, as a NumPy vector."""
    return torch_mix_features(torch.from_numpy(np.ascontiguousarray(stems, dtype=np.float32))[None], sample_rate)[0].numpy()


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


def _loudness_test_stems(sample_rate: int, seconds: float = 2.0) -> np.ndarray:
    """A -20 dBFS tone, a fade-in (exercises the gates), a bass line with a pause, bright noise."""
    samples = int(seconds * sample_rate)
    t = np.arange(samples) / sample_rate
    rng = np.random.default_rng(7)
    stems = np.zeros((4, 2, samples), dtype=np.float32)
    stems[2] = 0.1 * np.sqrt(2) * np.sin(2 * np.pi * 1000.0 * t)
    stems[0] = 0.2 * rng.standard_normal((2, samples)) * np.linspace(0, 1, samples)
    stems[1] = 0.3 * np.sin(2 * np.pi * 45.0 * t) * (t % 1.0 < 0.6)
    stems[3] = scipy.signal.sosfilt(scipy.signal.butter(4, 0.3 * sample_rate, "high", fs=sample_rate, output="sos"),
                                    0.05 * rng.standard_normal((2, samples)))
    return stems


@pytest.mark.parametrize("sample_rate", [22_050, 44_100, 48_000])
def test_lufs_matches_pyloudnorm(sample_rate: int) -> None:
    stems = _loudness_test_stems(sample_rate)
    f = _named(mix_features(stems, sample_rate))
    exact = pyloudnorm.Meter(sample_rate, filter_class="DeMan")  # BS.1770's own coefficients
    default = pyloudnorm.Meter(sample_rate)  # cookbook approximation of them
    signals = {**{stem: stems[i] for i, stem in enumerate(STEMS)}, "mix": stems.sum(axis=0)}
    for name, signal in signals.items():
        audio = signal.T.astype(np.float64)
        assert f[f"{name}.lufs"] == pytest.approx(exact.integrated_loudness(audio), abs=1e-3), name
        assert f[f"{name}.lufs"] == pytest.approx(default.integrated_loudness(audio), abs=0.1), name
    assert f["other.rel_loudness_lu"] == pytest.approx(f["other.lufs"] - f["mix.lufs"], abs=1e-4)


def test_k_weighting_reproduces_the_bs1770_coefficients_at_48k() -> None:
    # ITU-R BS.1770-4, Table 1 (pre-filter) and Table 2 (RLB filter), 48 kHz.
    table = np.array([[1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241, 0.73248077421585],
                      [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621]])
    np.testing.assert_allclose(k_weighting_sos(48_000), table, atol=1e-8)


def test_full_scale_997_hz_sine_reads_zero_lufs_in_stereo() -> None:
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS, so in both channels 0.0.
    stems = np.zeros((4, 2, 3 * SR), dtype=np.float32)
    stems[0] = _sine(997.0, 3.0)
    f = _named(mix_features(stems, SR))
    assert f["drums.lufs"] == pytest.approx(0.0, abs=0.01)
    stems[0, 1] = 0.0
    assert _named(mix_features(stems, SR))["drums.lufs"] == pytest.approx(-3.01, abs=0.01)


# Tolerances against the previous NumPy implementation, per feature (float32 FFTs and sums in a
# different order; loudness from an FFT-domain filter instead of sosfilt).
TOLERANCES = {"rms_db": 1e-3, "crest_db": 1e-3, "lufs": 5e-3, "rel_loudness_lu": 5e-3, "band": 0.02,
              "tilt_db_per_octave": 5e-3, "flatness_db": 0.02, "ild_db": 1e-3, "lr_correlation": 1e-4,
              "mid_side_db": 0.01, "dominance": 1e-4}


def _tolerance(name: str) -> float:
    field = name.split(".", 1)[1]
    return TOLERANCES.get(field) or TOLERANCES["band" if field.startswith("band") else "dominance"]


@pytest.mark.parametrize("case", ["noise", "music_like", "silent_stem", "mono", "half_second", "22k"])
def test_matches_the_numpy_reference_within_stated_tolerances(case: str) -> None:
    rate = 22_050 if case == "22k" else SR
    stems = _loudness_test_stems(rate) if case in ("music_like", "22k") else _noise_stems(1.0, seed=3)
    if case == "silent_stem":
        stems[2] = 0.0
    elif case == "mono":
        stems[:, 1] = stems[:, 0]
    elif case == "half_second":
        stems = stems[..., : SR // 2]
    ours, theirs = mix_features(stems, rate), reference.mix_features(stems, rate)
    for name, a, b in zip(feature_names(), ours, theirs):
        assert a == pytest.approx(b, abs=_tolerance(name)), name


def test_pyloudnorm_cookbook_filter_is_within_0_1_lu_of_the_exact_one() -> None:
    # The NumPy features used pyloudnorm's default (cookbook) K-weighting; the package now uses
    # BS.1770's exact coefficients. Loudness moves by less than 0.1 LU.
    stems = _loudness_test_stems(SR)
    ours = _named(mix_features(stems, SR))
    old = _named(reference.mix_features(stems, SR, k_sos=reference.pyloudnorm_cookbook_sos(SR)))
    for stem in (*STEMS, "mix"):
        assert ours[f"{stem}.lufs"] == pytest.approx(old[f"{stem}.lufs"], abs=0.1)


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
    with pytest.raises(ValueError, match=r"\(batch, 4, 2, samples\)"):
        torch_mix_features(torch.zeros(2, 2, SR), SR)
    with pytest.raises(ValueError, match="at least"):
        mix_features(np.zeros((4, 2, 100), dtype=np.float32), SR)
    nan = _noise_stems()
    nan[0, 0, 10] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        mix_features(nan, SR)

"""The per-stem descriptor: each field reads what a mixing move does to a stem, and it retrieves styles."""

from __future__ import annotations

import numpy as np
import pedalboard
import pyloudnorm
import pytest
import torch

from mixrep.constants import STEMS
from mixrep.corpora.synthetic import SynthConfig, SyntheticSource
from mixrep.frontend import FrontEnd, FrontEndConfig
from mixrep.retrieval.baselines import feature_baselines
from mixrep.retrieval.descriptor import DESCRIPTOR_NAMES, FIELDS, stem_descriptor
from mixrep.retrieval.metrics import standardize, style_retrieval_scores
from mixrep.retrieval.style_set import build_style_set
from mixrep.styles.spaces import MixStyles

SR = 22_050
SECONDS = 2.0
N = int(SR * SECONDS)


def noise(seed: int, channels: int = 1, scale: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((channels, N)) * scale).astype(np.float32)


def stereo(mono: np.ndarray, left: float = 1.0, right: float = 1.0) -> np.ndarray:
    return np.concatenate([left * mono, right * mono]).astype(np.float32)


def four_stems(**by_name: np.ndarray) -> np.ndarray:
    """``(4, 2, N)``: the named stems, the others independent stereo noise of their own seeds."""
    return np.stack([by_name.get(name, noise(10 + i, channels=2)) for i, name in enumerate(STEMS)])


def describe(*clips: np.ndarray) -> list[dict[str, float]]:
    """The descriptor of each ``(4, 2, N)`` clip as ``{"bass.lufs": value, ...}``."""
    values = stem_descriptor(torch.from_numpy(np.stack(clips)), SR)
    assert values.shape == (len(clips), len(DESCRIPTOR_NAMES)) and values.dtype == torch.float32
    assert torch.isfinite(values).all()
    return [dict(zip(DESCRIPTOR_NAMES, row.tolist())) for row in values]


def stem_columns(stem: str) -> list[str]:
    return [f"{stem}.{field}" for field in FIELDS]


def test_names_say_stem_and_field_in_column_order():
    assert len(DESCRIPTOR_NAMES) == len(STEMS) * len(FIELDS) and 60 <= len(FIELDS) <= 80
    assert DESCRIPTOR_NAMES[:2] == ("drums.band_31hz_db", "drums.band_63hz_db")
    assert DESCRIPTOR_NAMES[len(FIELDS)].startswith("bass.") and "vocals.band_125hz_balance_db" in DESCRIPTOR_NAMES
    assert len(set(DESCRIPTOR_NAMES)) == len(DESCRIPTOR_NAMES)


def test_a_sine_reads_its_mean_square_in_its_octave_band_only():
    t = np.arange(N) / SR
    sine = 0.5 * np.sin(2 * np.pi * 1000.0 * t)[None]
    (d,) = describe(four_stems(other=stereo(sine)))
    assert d["other.band_1khz_db"] == pytest.approx(10 * np.log10(0.5**2 / 2), abs=0.1)
    assert max(d[f"other.band_{b}_db"] for b in ("31hz", "125hz", "250hz", "4khz", "8khz")) < -60.0
    assert d["other.centroid_log2_hz_mean"] == pytest.approx(np.log2(1000.0), abs=0.05)
    assert d["other.band_1khz_spread_db"] < 0.1  # a steady tone does not move


def test_white_noise_is_untilted_and_pink_noise_falls_3_db_per_octave():
    spectrum = np.fft.rfft(np.random.default_rng(1).standard_normal(N))
    freqs = np.fft.rfftfreq(N, 1 / SR)
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(freqs, 10.0)), n=N)
    pink = (0.1 * pink / pink.std())[None]
    (d,) = describe(four_stems(drums=stereo(noise(2)), bass=stereo(pink)))
    assert d["drums.tilt_db_per_octave"] == pytest.approx(0.0, abs=0.3)
    assert d["bass.tilt_db_per_octave"] == pytest.approx(-3.0, abs=0.3)


def test_a_bass_low_shelf_raises_the_bass_low_octaves_by_its_gain_and_touches_nothing_else():
    dry = four_stems()
    shelf = pedalboard.Pedalboard([pedalboard.LowShelfFilter(cutoff_frequency_hz=400.0, gain_db=6.0, q=0.707)])
    boosted = dry.copy()
    boosted[1] = shelf(dry[1], SR)
    before, after = describe(dry, boosted)
    for band in ("31hz", "63hz"):
        assert after[f"bass.band_{band}_db"] - before[f"bass.band_{band}_db"] == pytest.approx(6.0, abs=0.3)
    for band in ("4khz", "8khz"):
        assert after[f"bass.band_{band}_db"] == pytest.approx(before[f"bass.band_{band}_db"], abs=0.1)
    assert after["bass.tilt_db_per_octave"] < before["bass.tilt_db_per_octave"] - 0.5
    for stem in ("drums", "other", "vocals"):
        for name in stem_columns(stem):
            assert after[name] == pytest.approx(before[name], abs=1e-4), name


def test_panning_moves_the_balance_to_its_side_and_sets_correlation_width_and_coherence():
    mono = noise(3)
    t = np.arange(N) / SR
    low_left_high_right = np.stack([0.3 * np.sin(2 * np.pi * 200.0 * t), 0.3 * np.sin(2 * np.pi * 2000.0 * t)])
    a, b, c = describe(four_stems(other=stereo(mono, 1.0, 0.0), vocals=stereo(mono), drums=noise(4, 2)),
                       four_stems(other=stereo(mono, 0.0, 1.0), vocals=low_left_high_right),
                       four_stems(other=stereo(mono, 0.5, 1.0)))
    # "other": hard left, hard right, then right 6 dB louder than left.
    assert a["other.balance_db"] == -40.0 and b["other.balance_db"] == 40.0
    assert c["other.balance_db"] == pytest.approx(20 * np.log10(2.0), abs=0.01)
    assert all(a[f"other.band_{band}_balance_db"] == -40.0 for band in ("63hz", "1khz", "8khz"))
    assert c["other.band_1khz_balance_db"] == pytest.approx(20 * np.log10(2.0), abs=0.01)
    assert a["other.width"] == pytest.approx(0.0, abs=1e-3) and a["other.lr_correlation"] == 0.0
    # A centred mono source: correlation 1, no side, one pan position, coherent in every band.
    assert a["vocals.lr_correlation"] == pytest.approx(1.0, abs=1e-4)
    assert a["vocals.side_mid_db"] == -40.0 and a["vocals.width"] == pytest.approx(0.0, abs=1e-3)
    assert a["vocals.band_1khz_coherence"] == pytest.approx(1.0, abs=1e-3)
    # Independent channels: uncorrelated, side as loud as mid, incoherent.
    assert abs(a["drums.lr_correlation"]) < 0.05 and abs(a["drums.side_mid_db"]) < 0.3
    assert a["drums.band_1khz_coherence"] < 0.1
    # Two sources hard left and hard right at equal level: the widest image, each band on its side.
    assert b["vocals.width"] == pytest.approx(1.0, abs=0.02)
    assert b["vocals.band_250hz_balance_db"] == -40.0 and b["vocals.band_2khz_balance_db"] == 40.0


def test_a_compressor_lowers_the_crest_factor_and_the_short_term_level_spread():
    rng = np.random.default_rng(5)
    envelope = np.exp(-(np.arange(N) % (SR // 4)) / (0.03 * SR))  # a hit every 250 ms, 30 ms decay
    hits = (0.5 * envelope * rng.standard_normal(N)).astype(np.float32)[None]
    compressor = pedalboard.Pedalboard([pedalboard.Compressor(threshold_db=-30.0, ratio=10.0, attack_ms=0.5,
                                                              release_ms=30.0)])
    dry = four_stems(drums=stereo(hits))
    squashed = dry.copy()
    squashed[0] = compressor(dry[0], SR)
    before, after = describe(dry, squashed)
    assert after["drums.crest_db"] < before["drums.crest_db"] - 3.0
    spread = {name: d["drums.rms_50ms_p90_db"] - d["drums.rms_50ms_p10_db"] for name, d in (("dry", before),
                                                                                          ("squashed", after))}
    assert spread["squashed"] < spread["dry"] - 3.0


def test_loudness_is_bs1770_integrated_loudness():
    clip = four_stems()
    clip[2] *= np.linspace(0.2, 1.0, N, dtype=np.float32)
    (d,) = describe(clip)
    meter = pyloudnorm.Meter(SR, filter_class="DeMan")
    for i, stem in enumerate(STEMS):
        assert d[f"{stem}.lufs"] == pytest.approx(meter.integrated_loudness(clip[i].T.astype(np.float64)), abs=0.02)


def test_silent_stems_read_the_floors_and_leave_the_others_as_they_were():
    clip = four_stems()
    silent = clip.copy()
    silent[3] = 0.0
    silent[1, 1] = 0.0  # bass: right channel silent
    alone, with_silence = describe(clip, silent)
    assert with_silence["vocals.band_1khz_db"] == -100.0 and with_silence["vocals.lufs"] == -70.0
    assert with_silence["vocals.crest_db"] == 0.0 and with_silence["vocals.rms_400ms_p90_db"] == pytest.approx(-100.0)
    for field in ("lr_correlation", "balance_db", "side_mid_db", "width", "band_1khz_coherence",
                  "band_1khz_spread_db", "centroid_log2_hz_std"):
        assert with_silence[f"vocals.{field}"] == pytest.approx(0.0, abs=1e-4), field
    assert with_silence["bass.balance_db"] == -40.0 and with_silence["bass.lr_correlation"] == 0.0
    for name in stem_columns("drums") + stem_columns("other"):
        assert with_silence[name] == pytest.approx(alone[name], abs=1e-4), name


def test_bad_input_is_refused_before_any_work():
    with pytest.raises(ValueError, match=r"\(batch, 4, 2, samples\).*got \(4, 2, 100\)"):
        stem_descriptor(torch.zeros(4, 2, 100), SR)
    with pytest.raises(ValueError, match="at least 0.4 s"):
        stem_descriptor(torch.zeros(1, 4, 2, int(0.3 * SR)), SR)
    nan = torch.zeros(1, 4, 2, N)
    nan[0, 2, 1, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        stem_descriptor(nan, SR)


def test_the_feature_baselines_z_score_the_descriptor_and_check_its_rows():
    rng = np.random.default_rng(0)
    names = ("drums.rms_db", "mix.rms_db")
    features, mfcc, descriptor = rng.standard_normal((6, 2)), rng.standard_normal((6, 40)), rng.standard_normal((6, 9))
    baselines = feature_baselines(features, names, mfcc, descriptor)
    np.testing.assert_allclose(baselines["stem_descriptor"], standardize(descriptor))
    assert "stem_descriptor" not in feature_baselines(features, names, mfcc)
    with pytest.raises(ValueError, match="5 rows but the set has 6 items"):
        feature_baselines(features, names, mfcc, descriptor[:5])


def test_the_style_set_stores_the_descriptor_and_each_songs_clip_and_the_descriptor_finds_styles():
    source = SyntheticSource(SynthConfig(num_songs=4, song_seconds=3.0, seed=5, sample_rate=SR))
    frontend = FrontEnd(FrontEndConfig(sample_rate=SR, n_mels=32, n_fft=1024, hop_length=256, clip_seconds=2.0))
    styles = MixStyles()
    style_set = build_style_set(source, frontend, split=None, num_songs=4, num_styles=4, styles=styles, seed=3)
    assert style_set.descriptor.shape == (16, len(DESCRIPTOR_NAMES)) and style_set.descriptor.dtype == np.float32
    for stem in STEMS:  # row i describes item i: its loudness is the front end's for the same styled stems
        np.testing.assert_allclose(style_set.descriptor[:, DESCRIPTOR_NAMES.index(f"{stem}.lufs")],
                                   style_set.features[:, style_set.feature_names.index(f"{stem}.lufs")], atol=0.01)
    assert len(style_set.clips) == style_set.num_songs == 4
    for names, stems in style_set.clips:
        assert len(names) == len(stems) and set(stems) <= set(STEMS)
        for description in style_set.styles:  # every track of the clip got a strip of every style
            assert set(names) <= set(description["strips"]), (names, list(description["strips"]))
    scores = style_retrieval_scores(standardize(style_set.descriptor), style_set.song_ids, style_set.style_ids)
    chance = 3 / 15  # 3 relevant items (the other songs in this style) among 15 for every query
    assert scores.map > 3 * chance

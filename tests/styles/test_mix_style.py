"""The mixing-style space: sampler ranges, loudness target, what each effect does, determinism."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mixrep.constants import STEMS
from mixrep.styles.mix_style import (
    ChannelStrip,
    CompressorSettings,
    DelayBus,
    EqBand,
    EqRanges,
    MasterBus,
    MixStyle,
    MixStyleConfig,
    ReverbBus,
    compressor_gain,
    integrated_loudness,
    limiter_gain,
    render_mix,
    render_stems,
    sample_mix_style,
)

RATE = 22_050


def tone(frequency_hz: float, seconds: float = 2.0, level: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def stereo(mono: np.ndarray) -> np.ndarray:
    return np.stack([mono, mono])


def music_like(seed: int = 0, seconds: float = 2.0) -> np.ndarray:
    """Four stems of decaying noise bursts and tones: transients for compressors, tails for reverbs."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    stems = np.zeros((4, 2, n), dtype=np.float32)
    envelope = np.exp(-np.arange(n) % (RATE // 4) / (0.03 * RATE)).astype(np.float32)
    stems[0] = stereo(rng.standard_normal(n).astype(np.float32) * envelope * 0.3)
    stems[1] = stereo(tone(55.0, seconds, 0.3) * (0.5 + 0.5 * envelope))
    stems[2] = np.stack([tone(440.0, seconds), tone(660.0, seconds)])
    stems[3] = stereo(tone(880.0, seconds) * (0.6 + 0.4 * np.sin(np.arange(n) / RATE * 2 * np.pi * 3)).astype(np.float32))
    return stems


def bare(**strip_fields) -> MixStyle:
    """A style doing nothing but the given strip settings on every stem (no buses, no master)."""
    strip = ChannelStrip(**strip_fields)
    return MixStyle({name: strip for name in STEMS}, loudness_lufs=-20.0)


def level_at(audio: np.ndarray, frequency_hz: float) -> float:
    """Magnitude in dB of the FFT bin at ``frequency_hz`` of the channel sum (1 Hz bins for 1 s windows)."""
    mono = audio.sum(axis=0)[-RATE:]
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    return 20 * np.log10(spectrum[int(round(frequency_hz))] + 1e-12)


def energy(x: np.ndarray) -> float:
    return float(np.sum(np.square(x, dtype=np.float64)))


# ----------------------------------------------------------------------------- sampler


def test_sampler_respects_every_range_and_centres_the_faders():
    config = MixStyleConfig()
    names = (*STEMS, "kick", "hats", "piano")
    styles = [sample_mix_style(config, np.random.default_rng(seed), names) for seed in range(300)]
    strips = [s for style in styles for s in style.strips.values()]
    for style in styles:
        assert abs(np.mean([s.fader_db for s in style.strips.values()])) < 1e-9
        assert style.loudness_lufs == -14.0
        for name, strip in style.strips.items():
            limit = config.pan.centre_max_pan if name in config.pan.centre_names else config.pan.max_pan
            assert abs(strip.pan) <= limit
    assert max(abs(s.fader_db) for s in strips) <= 2 * config.fader.spread_db
    assert all(config.filters.highpass_hz_range[0] <= s.highpass_hz <= config.filters.highpass_hz_range[1]
               for s in strips if s.highpass_hz is not None)
    for strip in strips:
        for band in strip.eq:
            limit = config.eq.peak_gain_db if band.kind == "peak" else config.eq.shelf_gain_db
            assert abs(band.gain_db) <= limit
            if band.kind == "peak":
                assert config.eq.q_range[0] <= band.q <= config.eq.q_range[1]
                assert config.eq.peak_hz_range[0] <= band.frequency_hz <= config.eq.peak_hz_range[1]
        if strip.compressor is not None:
            c = strip.compressor
            assert config.compressor.threshold_db_range[0] <= c.threshold_db <= config.compressor.threshold_db_range[1]
            assert config.compressor.ratio_range[0] <= c.ratio <= config.compressor.ratio_range[1]
            assert config.compressor.attack_ms_range[0] <= c.attack_ms <= config.compressor.attack_ms_range[1]
        if strip.saturation_drive_db is not None:
            assert config.saturation.drive_db_range[0] <= strip.saturation_drive_db <= config.saturation.drive_db_range[1]
    # probabilities show up as frequencies (300 styles x 7 strips)
    assert np.mean([s.compressor is not None for s in strips]) == pytest.approx(config.compressor.prob, abs=0.05)
    assert np.mean([bool(s.eq) for s in strips]) == pytest.approx(config.eq.prob, abs=0.05)
    assert np.mean([s.reverb is not None for s in styles]) == pytest.approx(config.reverb.prob, abs=0.07)
    with_reverb = [s for style in styles if style.reverb is not None for s in style.strips.values()]
    assert np.mean([s.reverb_send_db is not None for s in with_reverb]) == pytest.approx(config.reverb.send_prob, abs=0.05)
    assert all(s.reverb_send_db is None for style in styles if style.reverb is None for s in style.strips.values())
    limiters = [style.master.limiter for style in styles if style.master.limiter is not None]
    assert all(lim.ceiling_db == config.master.ceiling_db for lim in limiters)
    assert len(limiters) / len(styles) == pytest.approx(config.master.limiter_prob, abs=0.07)


def test_sampler_is_seeded_and_styles_round_trip_through_json():
    a = sample_mix_style(MixStyleConfig(), np.random.default_rng(3))
    assert a == sample_mix_style(MixStyleConfig(), np.random.default_rng(3))
    assert a != sample_mix_style(MixStyleConfig(), np.random.default_rng(4))
    assert MixStyle.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_config_is_settable_from_plain_dicts_and_rejects_bad_values():
    config = MixStyleConfig.from_dict({"loudness_lufs": -23.0, "eq": {"peaks": 3, "q_range": [1.0, 2.0]}})
    assert config.loudness_lufs == -23.0 and config.eq.peaks == 3 and config.eq.q_range == (1.0, 2.0)
    assert MixStyleConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    style = sample_mix_style(config, np.random.default_rng(0))
    assert style.loudness_lufs == -23.0
    assert all(len(s.eq) == 5 for s in style.strips.values() if s.eq)  # two shelves + three peaks
    with pytest.raises(ValueError, match="reverb.prob"):
        MixStyleConfig.from_dict({"reverb": {"prob": 1.5}})
    with pytest.raises(ValueError, match="feedback_range"):
        MixStyleConfig.from_dict({"delay": {"feedback_range": [0.0, 1.0]}})
    with pytest.raises(ValueError, match="unknown"):
        MixStyleConfig.from_dict({"compresor": {}})
    assert list(sample_mix_style(MixStyleConfig(), np.random.default_rng(0), names=(*STEMS, "kick", "bass")).strips) == [
        *STEMS, "kick"]
    with pytest.raises(ValueError, match="at least one strip"):
        sample_mix_style(MixStyleConfig(), np.random.default_rng(0), names=())


# ----------------------------------------------------------------------------- loudness and invariances


@pytest.mark.parametrize("target", [-14.0, -20.0])
def test_every_mix_meets_the_loudness_target(target):
    config = MixStyleConfig(loudness_lufs=target)
    stems = music_like()
    for seed in range(6):
        out = render_stems(stems, sample_mix_style(config, np.random.default_rng(seed)), RATE)
        assert out.shape == stems.shape and out.dtype == np.float32
        assert integrated_loudness(out.sum(axis=0), RATE) == pytest.approx(target, abs=0.5)


def test_rendering_is_deterministic_and_independent_of_the_input_level():
    stems = music_like(1)
    style = sample_mix_style(MixStyleConfig.from_dict({
        "compressor": {"prob": 1.0}, "saturation": {"prob": 1.0}, "reverb": {"prob": 1.0},
        "master": {"compressor_prob": 1.0, "limiter_prob": 1.0}}), np.random.default_rng(7))
    first = render_stems(stems, style, RATE)
    np.testing.assert_array_equal(first, render_stems(stems, style, RATE))
    quieter = render_stems(stems * np.float32(0.05), style, RATE)  # 26 dB lower recording level
    assert energy(quieter - first) / energy(first) < 1e-4


def test_silence_stays_silent():
    out = render_stems(np.zeros((4, 2, RATE), np.float32), sample_mix_style(MixStyleConfig(), np.random.default_rng(0)), RATE)
    assert not out.any()


# ----------------------------------------------------------------------------- each effect


def test_constant_power_pan_moves_energy_between_channels():
    stems = np.zeros((4, 2, RATE), np.float32)
    stems[2] = stereo(tone(500.0, 1.0))
    for pan in (-0.6, 0.0, 0.5):
        out = render_stems(stems, bare(pan=pan), RATE)[2]
        theta = (pan + 1) * np.pi / 4
        assert energy(out[1]) / energy(out[0]) == pytest.approx(np.tan(theta) ** 2, rel=1e-3)


def test_peaking_band_and_shelves_set_their_band_levels():
    stems = np.zeros((4, 2, RATE), np.float32)
    stems[2] = stereo(tone(100.0, 1.0) + tone(1000.0, 1.0) + tone(8000.0, 1.0))
    flat = render_stems(stems, bare(), RATE)[2]
    bands = (EqBand("peak", 1000.0, 9.0, 2.0), EqBand("high_shelf", 4000.0, -6.0))
    shaped = render_stems(stems, bare(eq=bands), RATE)[2]
    change = {f: level_at(shaped, f) - level_at(flat, f) for f in (100.0, 1000.0, 8000.0)}
    # relative to the 100 Hz tone, which neither band touches (loudness normalisation moves all alike)
    assert change[1000.0] - change[100.0] == pytest.approx(9.0, abs=0.3)
    assert change[8000.0] - change[100.0] == pytest.approx(-6.0, abs=0.5)


def test_high_pass_removes_low_end():
    stems = np.zeros((4, 2, RATE), np.float32)
    stems[1] = stereo(tone(40.0, 1.0) + tone(2000.0, 1.0))
    flat = render_stems(stems, bare(), RATE)[1]
    cut = render_stems(stems, bare(highpass_hz=400.0), RATE)[1]
    # 2nd-order Butterworth: 12 dB/octave, 3.3 octaves below the cut-off -> about -40 dB
    assert (level_at(cut, 40.0) - level_at(cut, 2000.0)) - (level_at(flat, 40.0) - level_at(flat, 2000.0)) < -35.0


def crest_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.abs(x).max() / np.sqrt(np.mean(np.square(x))))


def test_compressor_lowers_the_crest_factor():
    drums = music_like()[0]
    stems = np.zeros((4, 2, drums.shape[-1]), np.float32)
    stems[0] = drums
    squeeze = CompressorSettings(threshold_db=-3.0, ratio=8.0, attack_ms=0.5, release_ms=80.0, makeup_db=3.0)
    before = crest_db(render_stems(stems, bare(), RATE)[0])
    after = crest_db(render_stems(stems, bare(compressor=squeeze), RATE)[0])
    assert after < before - 3.0


def test_saturation_adds_harmonics():
    stems = np.zeros((4, 2, RATE), np.float32)
    stems[2] = stereo(tone(441.0, 1.0, 0.3))
    clean = render_stems(stems, bare(), RATE)[2]
    driven = render_stems(stems, bare(saturation_drive_db=20.0), RATE)[2]
    third = lambda x: level_at(x, 3 * 441.0) - level_at(x, 441.0)  # noqa: E731
    assert third(driven) > third(clean) + 30.0


def test_width_scales_the_side_signal():
    stems = np.zeros((4, 2, RATE), np.float32)
    stems[2] = np.stack([tone(440.0, 1.0), tone(550.0, 1.0)])
    side = lambda x: energy(x[0] - x[1]) / energy(x[0] + x[1])  # noqa: E731
    as_is = side(render_stems(stems, bare(), RATE)[2])
    assert side(render_stems(stems, bare(width=0.0), RATE)[2]) < 1e-10
    assert side(render_stems(stems, bare(width=1.5), RATE)[2]) == pytest.approx(2.25 * as_is, rel=1e-3)


def test_reverb_send_leaves_a_tail_and_delay_an_echo():
    n = 2 * RATE
    stems = np.zeros((4, 2, n), np.float32)
    stems[3, :, :200] = stereo(tone(1000.0, 200 / RATE, 0.5))  # a 9 ms blip, then silence
    dry = render_stems(stems, bare(), RATE)
    assert energy(dry[3][:, RATE // 2:]) == 0.0
    wet_style = dataclasses.replace(bare(reverb_send_db=-6.0), reverb=ReverbBus(0.9, 0.2, 1.0))
    wet = render_stems(stems, wet_style, RATE)
    assert energy(wet[3][:, RATE // 2:]) / energy(wet[3]) > 1e-3  # still ringing half a second later
    echo_style = dataclasses.replace(bare(delay_send_db=-6.0), delay=DelayBus(0.25, 0.0))
    echoed = render_stems(stems, echo_style, RATE)[3].sum(axis=0)
    at = int(0.25 * RATE)
    assert np.abs(echoed[at: at + 200]).max() > 0.3 * np.abs(echoed[:200]).max()
    assert np.abs(echoed[1000: at - 50]).max() < 1e-4


def test_bus_returns_are_attributed_to_the_sending_stem():
    stems = music_like(2)
    style = dataclasses.replace(bare(reverb_send_db=-10.0), reverb=ReverbBus(0.8, 0.5, 1.0))
    style = dataclasses.replace(style, strips={**style.strips, "bass": ChannelStrip()})
    out = render_stems(stems, style, RATE)
    dry = render_stems(stems, bare(), RATE)
    # bass sends nothing: its stem is its dry strip only (up to the common loudness gain)
    ratio = np.dot(out[1].ravel(), dry[1].ravel()) / np.dot(dry[1].ravel(), dry[1].ravel())
    np.testing.assert_allclose(out[1], ratio * dry[1], atol=1e-5)


def test_master_limiter_and_bus_compressor_gains():
    rng = np.random.default_rng(0)
    mix = (rng.standard_normal((2, RATE)) * 0.4).astype(np.float32)
    gain = limiter_gain(mix, -1.0, 50.0, RATE)
    assert np.abs(mix * gain).max() <= 10 ** (-1 / 20) * (1 + 1e-6)
    assert gain.max() <= 1.0 and gain.min() < 0.8
    # a steady sine 12 dB above the threshold at ratio 4 comes out 9 dB lower once settled
    sine = stereo(tone(1000.0, 1.0, 0.5))
    level = 10 * np.log10(np.mean(sine**2))
    peak_over_rms = 20 * np.log10(0.5) - level
    settings = CompressorSettings(threshold_db=peak_over_rms - 12.0, ratio=4.0, attack_ms=1.0, release_ms=50.0)
    settled = 20 * np.log10(compressor_gain(sine, settings, RATE)[RATE // 2:])
    assert settled.mean() == pytest.approx(-9.0, abs=0.2)


def test_master_bus_keeps_the_stems_summing_to_the_mix():
    stems = music_like(3)
    master = MasterBus(eq=(EqBand("low_shelf", 100.0, 3.0), EqBand("high_shelf", 6000.0, -2.0)),
                       compressor=CompressorSettings(-6.0, 3.0, 10.0, 100.0))
    from mixrep.styles.mix_style import LimiterSettings

    style = dataclasses.replace(bare(), master=dataclasses.replace(master, limiter=LimiterSettings(8.0, -1.0, 100.0)))
    out = render_stems(stems, style, RATE)
    mix = out.sum(axis=0)
    # the limited mix's peak-to-loudness ratio is what the limiter allows: ceiling -1 dBFS before normalisation
    assert integrated_loudness(mix, RATE) == pytest.approx(-20.0, abs=0.5)
    assert all(out[s].any() for s in range(4))


def test_track_level_styles_fall_back_to_the_stem_class_strip():
    tracks = np.stack([stereo(tone(60.0)), stereo(tone(200.0)), stereo(tone(900.0))])
    style = sample_mix_style(MixStyleConfig(), np.random.default_rng(0), names=(*STEMS, "kick"))
    out = render_mix(tracks, style, RATE, names=("kick", "snare", "piano"), stems=("drums", "drums", "other"))
    assert out.shape == (4, 2, tracks.shape[-1])
    assert out[0].any() and out[2].any() and not out[1].any() and not out[3].any()
    with pytest.raises(ValueError, match="no strip for track 'piano'"):
        render_mix(tracks, MixStyle({"kick": ChannelStrip()}), RATE, ("kick", "kick", "piano"), ("drums", "drums", "other"))
    with pytest.raises(ValueError, match="unknown stem class"):
        render_mix(tracks, style, RATE, ("a", "b", "c"), ("drums", "guitar", "other"))


def test_config_is_settable_from_yaml_through_jsonargparse(tmp_path):
    from jsonargparse import ArgumentParser

    (tmp_path / "style.yaml").write_text("style:\n  loudness_lufs: -16.0\n  eq:\n    peaks: 3\n    q_range: [1.0, 2.0]\n")
    parser = ArgumentParser()
    parser.add_argument("--config", action="config")
    parser.add_argument("--style", type=MixStyleConfig, default=MixStyleConfig())
    config = parser.instantiate(parser.parse_args(["--config", str(tmp_path / "style.yaml")])).style
    assert isinstance(config, MixStyleConfig)
    assert config.loudness_lufs == -16.0 and config.eq.peaks == 3 and config.eq.q_range == (1.0, 2.0)
    assert config.reverb == MixStyleConfig().reverb


def test_every_processor_draws_every_processor_bus_and_send():
    config = MixStyleConfig(eq=EqRanges(peaks=3)).every_processor()
    assert config.eq.peaks == 3 and MixStyleConfig().eq.prob < 1.0  # other ranges kept; the default untouched
    for seed in range(5):
        style = sample_mix_style(config, np.random.default_rng(seed), names=STEMS)
        assert style.delay is not None and style.reverb is not None
        master = style.master
        assert master.eq and master.compressor is not None and master.limiter is not None
        for strip in style.strips.values():
            assert None not in (strip.width, strip.highpass_hz, strip.lowpass_hz, strip.compressor,
                                strip.saturation_drive_db, strip.delay_send_db, strip.reverb_send_db)
            assert len(strip.eq) == 5

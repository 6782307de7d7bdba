"""The torch models of the mixing-style space's dynamics against the renderer they model (pedalboard, mix_style)."""

from __future__ import annotations

import math

import numpy as np
import pedalboard
import pytest
import torch

from mixrep.audio.primitives import rms_db
from mixrep.console.style_dynamics import (
    bus_compressor_gain, channel_compressor, limiter_gain, loudness_lufs, saturation,
)
from mixrep.styles import mix_style
from mixrep.styles.mix_style import SATURATION_REFERENCE_DBFS, CompressorSettings

SAMPLE_RATE = 44100


def _reference_compressor(audio: np.ndarray, threshold_db, ratio, attack_ms, release_ms, makeup_db) -> np.ndarray:
    """The renderer's compressor (``_render_strip``): threshold relative to the input RMS, then make-up."""
    board = pedalboard.Pedalboard([
        pedalboard.Compressor(threshold_db=rms_db(audio) + threshold_db, ratio=ratio, attack_ms=attack_ms,
                              release_ms=release_ms),
        pedalboard.Gain(gain_db=makeup_db)])
    return board(audio, SAMPLE_RATE)


def _reference_saturation(audio: np.ndarray, drive_db: float) -> np.ndarray:
    trim_db = SATURATION_REFERENCE_DBFS - rms_db(audio)
    board = pedalboard.Pedalboard([pedalboard.Gain(gain_db=trim_db), pedalboard.Distortion(drive_db=drive_db),
                                   pedalboard.Gain(gain_db=-drive_db - trim_db)])
    return board(audio, SAMPLE_RATE)


def _noise_bursts(seed: int = 0, seconds: float = 1.0) -> np.ndarray:
    """Stereo noise whose level jumps every 50 ms over 35 dB: attacks and releases all the time."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    hop = SAMPLE_RATE // 20
    levels = np.repeat(10.0 ** (rng.uniform(-40.0, -5.0, -(-n // hop)) / 20.0), hop)[:n]
    return (rng.standard_normal((2, n)) * levels).astype(np.float32)


def _drums(seconds: float = 1.0) -> np.ndarray:
    """A kick (decaying 55 Hz sine) on the beats and a snare (decaying noise) on the off-beats, 120 bpm."""
    rng = np.random.default_rng(1)
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros((2, n))
    beat = SAMPLE_RATE // 2
    t = np.arange(beat // 2) / SAMPLE_RATE
    kick = 0.8 * np.sin(2 * np.pi * 55.0 * t) * np.exp(-t / 0.08)
    for start in range(0, n, beat):
        stop = min(n, start + len(t))
        out[:, start:stop] += kick[:stop - start]
        snare_start = start + beat // 2
        if snare_start < n:
            length = min(n, snare_start + len(t)) - snare_start
            out[:, snare_start:snare_start + length] += (0.4 * rng.standard_normal((2, length))
                                                         * np.exp(-t[:length] / 0.05))
    return out.astype(np.float32)


def _db(x: np.ndarray) -> np.ndarray:
    return 20.0 * np.log10(np.maximum(np.abs(x), 1e-9))


COMPRESSOR_SETTINGS = [(-6.0, 4.0, 5.0, 100.0, 3.0), (0.0, 2.0, 0.5, 30.0, 0.0), (-12.0, 8.0, 40.0, 400.0, 6.0),
                       (3.0, 1.5, 10.0, 200.0, 1.0)]


@pytest.mark.parametrize("signal", [_noise_bursts, _drums])
@pytest.mark.parametrize("settings", COMPRESSOR_SETTINGS)
def test_channel_compressor_matches_pedalboard_sample_by_sample(signal, settings):
    audio = signal()
    reference = _reference_compressor(audio, *settings)
    model = channel_compressor(torch.from_numpy(audio), *settings, SAMPLE_RATE).numpy()
    assert model.dtype == np.float32 and model.shape == audio.shape
    assert np.abs(model - reference).max() < 1e-4
    loud = np.abs(reference) > 1e-3
    assert np.abs(_db(model[loud]) - _db(reference[loud])).max() < 0.01


def test_the_detector_is_full_wave_as_in_pedalboard():
    # pedalboard's JUCE build rectifies with |x|: a step of alternating sign is compressed exactly as a positive one
    step = np.zeros((2, 4000), dtype=np.float32)
    step[:, 1000:3000] = 0.5
    step[1, 1000:3000:2] *= -1.0
    reference = _reference_compressor(step, -3.0, 4.0, 5.0, 50.0, 0.0)
    model = channel_compressor(torch.from_numpy(step), -3.0, 4.0, 5.0, 50.0, 0.0, SAMPLE_RATE).numpy()
    np.testing.assert_allclose(model, reference, atol=1e-6)
    np.testing.assert_allclose(np.abs(model[0]), np.abs(model[1]), atol=1e-6)


@pytest.mark.parametrize("threshold_db", [-20.0, -12.0, -6.0, -3.0, 0.0, 3.0, 6.0])
@pytest.mark.parametrize("ratio", [2.0, 8.0])
def test_static_curve_within_half_a_db(threshold_db, ratio):
    # a steady 1 kHz tone; the threshold (relative to its RMS) moves across its level
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    tone = np.tile(0.5 * np.sin(2 * np.pi * 1000.0 * t), (2, 1)).astype(np.float32)
    settings = (threshold_db, ratio, 1.0, 50.0, 0.0)
    steady = slice(SAMPLE_RATE // 4, None)
    reference = rms_db(_reference_compressor(tone, *settings)[:, steady])
    model = rms_db(channel_compressor(torch.from_numpy(tone), *settings, SAMPLE_RATE).numpy()[:, steady])
    assert abs(model - reference) < 0.5
    # and the hard-knee curve itself on a constant level: threshold + (level - threshold) / ratio above it
    dc = np.full((2, SAMPLE_RATE // 4), 0.5, dtype=np.float32)
    out = channel_compressor(torch.from_numpy(dc), threshold_db, ratio, 1.0, 50.0, 0.0, SAMPLE_RATE).numpy()
    level, threshold = _db(np.float32(0.5)), _db(np.float32(0.5)) + threshold_db
    expected = level if level < threshold else threshold + (level - threshold) / ratio
    assert abs(_db(out[0, -1]) - expected) < 0.01


def _time_to_63_percent(gain_db: np.ndarray, start: int) -> float:
    """Seconds from ``start`` until the gain (dB) has covered 63 % of its change."""
    change = gain_db[-1] - gain_db[start - 1]
    covered = (gain_db[start:] - gain_db[start - 1]) / change
    return float(np.argmax(covered >= 1.0 - math.exp(-1.0))) / SAMPLE_RATE


@pytest.mark.parametrize("attack_ms,release_ms", [(1.0, 30.0), (10.0, 100.0), (40.0, 400.0)])
def test_attack_and_release_times_within_ten_percent(attack_ms, release_ms):
    # a level step up (attack), then down below the threshold (release), on a constant signal
    n = SAMPLE_RATE
    step = np.full((2, 2 * n), 0.02, dtype=np.float32)
    step[:, n // 4:n] = 0.8
    settings = (0.0, 4.0, attack_ms, release_ms, 0.0)
    reference = _db(_reference_compressor(step, *settings)[0] / step[0])
    model = _db(channel_compressor(torch.from_numpy(step), *settings, SAMPLE_RATE).numpy()[0] / step[0])
    for segment, start in ((slice(0, n), n // 4), (slice(n // 4, None), n - n // 4)):
        expected = _time_to_63_percent(reference[segment], start)
        measured = _time_to_63_percent(model[segment], start)
        assert expected > 0.0
        assert abs(measured - expected) <= 0.1 * expected
    assert _time_to_63_percent(model[: n], n // 4) < _time_to_63_percent(model[n // 4:], n - n // 4)


@pytest.mark.parametrize("drive_db", [3.0, 12.0, 24.0])
def test_saturation_curve_matches_pedalboard(drive_db):
    # tones of rising amplitude through both: the curve from linear to hard clipping
    t = np.arange(SAMPLE_RATE // 10) / SAMPLE_RATE
    for amplitude in (0.01, 0.1, 0.5, 1.0):
        tone = np.tile(amplitude * np.sin(2 * np.pi * 220.0 * t), (2, 1)).astype(np.float32)
        tone[1] *= 0.5
        reference = _reference_saturation(tone, drive_db)
        model = saturation(torch.from_numpy(tone), drive_db).numpy()
        assert np.abs(model - reference).max() < 1e-5 * amplitude + 1e-7
    music = _noise_bursts()
    np.testing.assert_allclose(saturation(torch.from_numpy(music), drive_db).numpy(),
                               _reference_saturation(music, drive_db), atol=1e-6)


def test_compressor_then_saturation_is_the_renderers_strip():
    audio = _drums()
    strip = mix_style.ChannelStrip(compressor=CompressorSettings(-9.0, 6.0, 2.0, 80.0, 4.0), saturation_drive_db=15.0)
    reference = mix_style._render_strip(audio, strip, SAMPLE_RATE)
    compressed = channel_compressor(torch.from_numpy(audio), -9.0, 6.0, 2.0, 80.0, 4.0, SAMPLE_RATE)
    # the renderer trims the saturator from the level before the compressor, not from its own input
    model = saturation(compressed, 15.0, level_db=rms_db(audio)).numpy()
    np.testing.assert_allclose(model, reference, atol=1e-5)
    assert np.abs(saturation(compressed, 15.0).numpy() - reference).max() > 1e-3


BUS_SETTINGS = [(-6.0, 4.0, 5.0, 100.0, 0.0), (-3.0, 2.0, 50.0, 500.0, 2.0), (-10.0, 1.5, 20.0, 50.0, 0.0)]


@pytest.mark.parametrize("settings", BUS_SETTINGS)
@pytest.mark.parametrize("samples", [SAMPLE_RATE, SAMPLE_RATE - 7])
def test_bus_compressor_gain_matches_mix_style(settings, samples):
    mix = _noise_bursts()[:, :samples]
    reference = mix_style.compressor_gain(mix, CompressorSettings(*settings), SAMPLE_RATE)
    model = bus_compressor_gain(torch.from_numpy(mix), *settings, SAMPLE_RATE).numpy()
    assert model.shape == (samples,)
    np.testing.assert_allclose(model, reference, rtol=1e-5, atol=1e-6)
    assert reference.min() < 0.7  # it compresses


@pytest.mark.parametrize("release_ms", [20.0, 300.0])
@pytest.mark.parametrize("lookahead_ms", [1.5, 0.5, 0.0])
def test_limiter_gain_matches_mix_style_and_never_exceeds_the_ceiling(release_ms, lookahead_ms):
    mix = 4.0 * _drums()
    reference = mix_style.limiter_gain(mix, -1.0, release_ms, SAMPLE_RATE, lookahead_ms)
    model = limiter_gain(torch.from_numpy(mix), -1.0, release_ms, SAMPLE_RATE, lookahead_ms).numpy()
    np.testing.assert_allclose(model, reference, rtol=1e-6, atol=1e-7)
    limited = limiter_gain(torch.from_numpy(mix).double(), -1.0, release_ms, SAMPLE_RATE, lookahead_ms)
    peak = (torch.from_numpy(mix).double() * limited).abs().max().item()
    assert peak <= 10.0 ** (-1.0 / 20.0) * (1.0 + 1e-12)
    assert limited.min().item() < 0.5


@pytest.mark.parametrize("samples", [SAMPLE_RATE, 20000, 17641, 3 * SAMPLE_RATE + 123])
@pytest.mark.parametrize("scale", [0.05, 1.0, 4.0])
def test_loudness_within_a_tenth_of_a_lu_of_pyloudnorm(samples, scale):
    mix = scale * np.concatenate([_drums(2.0), _noise_bursts(2, 2.0)], axis=1)[:, :samples]
    reference = mix_style.integrated_loudness(mix, SAMPLE_RATE)
    assert abs(loudness_lufs(torch.from_numpy(mix), SAMPLE_RATE).item() - reference) < 0.1


def test_loudness_gates_quiet_blocks_as_pyloudnorm():
    mix = _noise_bursts(3, 2.0)
    mix[:, SAMPLE_RATE // 2: SAMPLE_RATE + SAMPLE_RATE // 2] *= 1e-4  # a second far below the relative gate
    reference = mix_style.integrated_loudness(mix, SAMPLE_RATE)
    assert abs(loudness_lufs(torch.from_numpy(mix), SAMPLE_RATE).item() - reference) < 0.1
    with pytest.raises(ValueError, match="0.4 s"):
        loudness_lufs(torch.zeros(2, 1000), SAMPLE_RATE)


def _all_settings():
    """(name, function of (audio, settings) -> output, settings) for every processor, for the gradient table."""
    return [
        ("channel_compressor", lambda x, s: channel_compressor(x, *s, SAMPLE_RATE),
         [-12.0, 4.0, 5.0, 50.0, 2.0]),
        ("saturation", lambda x, s: saturation(x, *s), [12.0]),
        ("bus_compressor_gain", lambda x, s: bus_compressor_gain(x, *s, SAMPLE_RATE), [-10.0, 4.0, 5.0, 50.0, 1.0]),
        ("limiter_gain", lambda x, s: limiter_gain(x * 8.0, *s, SAMPLE_RATE), [-1.0, 20.0]),
        ("loudness_lufs", lambda x, s: loudness_lufs(x, SAMPLE_RATE), []),
    ]


@pytest.mark.parametrize("name,function,values", _all_settings())
def test_gradients_are_finite_and_non_zero_for_every_setting(name, function, values):
    audio = torch.from_numpy(_noise_bursts(seconds=0.5)).requires_grad_(True)
    settings = [torch.tensor(v, requires_grad=True) for v in values]
    function(audio, settings).square().sum().backward()
    for tensor, label in [(audio, "audio"), *((s, f"setting {i}") for i, s in enumerate(settings))]:
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all(), f"{name}: {label}"
        assert tensor.grad.abs().sum() > 0.0, f"{name}: {label} has a zero gradient"


def test_gradcheck_in_float64():
    rng = np.random.default_rng(4)
    audio = torch.from_numpy(rng.standard_normal((2, 2, 96)) * np.linspace(0.1, 1.0, 96)).requires_grad_(True)

    def settings(*values):
        return [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]

    strip = settings([-6.0, -3.0], [4.0, 2.0], [0.3, 2.0], [2.0, 1.0], [1.0, 0.0])
    assert torch.autograd.gradcheck(lambda x, *s: channel_compressor(x, *s, 8000), (audio, *strip))
    bus = settings(-6.0, 3.0, 20.0, 40.0, 0.5)
    assert torch.autograd.gradcheck(lambda x, *s: bus_compressor_gain(x, *s, 8000), (audio, *bus))
    assert torch.autograd.gradcheck(lambda x, d: saturation(x, d), (audio, *settings([6.0, 18.0])))
    assert torch.autograd.gradcheck(lambda x, c, r: limiter_gain(x * 3.0, c, r, 8000, 1.0),
                                    (audio, *settings(-1.0, 2.0)))


def test_silence_is_bypassed_without_nan():
    audio = torch.zeros(2, 2, SAMPLE_RATE // 2, dtype=torch.float64)
    audio[1] = torch.from_numpy(_noise_bursts(seconds=0.5))
    audio.requires_grad_(True)
    threshold = torch.tensor(-6.0, dtype=torch.float64, requires_grad=True)
    drive = torch.tensor(12.0, dtype=torch.float64, requires_grad=True)
    compressed = channel_compressor(audio, threshold, 4.0, 5.0, 50.0, 3.0, SAMPLE_RATE)
    saturated = saturation(compressed, drive)
    bus = bus_compressor_gain(audio, threshold, 4.0, 5.0, 50.0, 0.0, SAMPLE_RATE)
    limited = limiter_gain(audio, -1.0, 50.0, SAMPLE_RATE)
    loudness = loudness_lufs(audio, SAMPLE_RATE)
    assert (saturated[0] == 0).all() and (bus[0] == 1).all() and (limited[0] == 1).all()
    assert loudness[0].item() == -math.inf and math.isfinite(loudness[1].item())
    total = saturated.sum() + bus.sum() + limited.sum() + loudness[1]
    total.backward()
    for tensor in (audio, threshold, drive):
        assert torch.isfinite(tensor.grad).all()
    # a given non-finite level bypasses the saturator too
    assert torch.equal(saturation(audio[1].detach(), 12.0, level_db=-math.inf), audio[1].detach())


def test_settings_broadcast_against_the_signal():
    audio = torch.from_numpy(_noise_bursts(seconds=0.5))
    thresholds = torch.tensor([-12.0, -6.0, 0.0])
    batched = channel_compressor(audio, thresholds, 4.0, 5.0, 50.0, 0.0, SAMPLE_RATE)
    assert batched.shape == (3, 2, audio.shape[-1])
    for i, threshold in enumerate(thresholds.tolist()):
        torch.testing.assert_close(batched[i], channel_compressor(audio, threshold, 4.0, 5.0, 50.0, 0.0, SAMPLE_RATE))
    mixes = torch.stack([audio, 0.5 * audio])
    gains = bus_compressor_gain(mixes, -6.0, 4.0, 5.0, 50.0, 0.0, SAMPLE_RATE)
    assert gains.shape == (2, audio.shape[-1])
    torch.testing.assert_close(gains[0], gains[1])  # relative threshold: scale-invariant
    assert loudness_lufs(mixes, SAMPLE_RATE).shape == (2,)


def test_bad_input_is_a_clear_error():
    audio = torch.zeros(2, 100)
    with pytest.raises(ValueError, match="ratio must be >= 1"):
        channel_compressor(audio + 0.1, -6.0, 0.5, 5.0, 50.0, 0.0, SAMPLE_RATE)
    with pytest.raises(ValueError, match="attack_ms must be > 0"):
        bus_compressor_gain(audio, -6.0, 2.0, 0.0, 50.0, 0.0, SAMPLE_RATE)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, samples\)"):
        saturation(torch.zeros(3, 100), 6.0)
    with pytest.raises(ValueError, match="do not broadcast"):
        limiter_gain(torch.zeros(4, 2, 100), torch.zeros(3), 50.0, SAMPLE_RATE)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_round_trip_through_the_cpu_loop():
    audio = torch.from_numpy(_noise_bursts(seconds=0.25))
    threshold = torch.tensor(-6.0, device="cuda", requires_grad=True)
    out = channel_compressor(audio.cuda(), threshold, 4.0, 5.0, 50.0, 0.0, SAMPLE_RATE)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), channel_compressor(audio, -6.0, 4.0, 5.0, 50.0, 0.0, SAMPLE_RATE))
    out.sum().backward()
    assert threshold.grad.device.type == "cuda" and torch.isfinite(threshold.grad)

"""The torch models of the mixing-style space's processors against the renderers they model."""

from __future__ import annotations

import numpy as np
import pedalboard
import pytest
import torch

from mixrep.audio.primitives import butterworth
from mixrep.console.style_dsp import (
    butterworth_response,
    delay_samples,
    eq_band_response,
    feedback_delay_response,
    freeverb_response,
    rfft_frequencies,
)

SAMPLE_RATE = 44100
N_FFT = 1 << 16


def _measured_response(plugin) -> np.ndarray:
    """The complex response of a linear processor, from its impulse response."""
    impulse = np.zeros((1, N_FFT), dtype=np.float32)
    impulse[0, 0] = 1.0
    return np.fft.rfft(plugin(impulse).astype(np.float64)[0])


def _db(x: np.ndarray) -> np.ndarray:
    return 20.0 * np.log10(np.maximum(np.abs(x), 1e-12))


PLUGINS = {"low_shelf": pedalboard.LowShelfFilter, "high_shelf": pedalboard.HighShelfFilter,
           "peak": pedalboard.PeakFilter}


@pytest.mark.parametrize("kind", sorted(PLUGINS))
@pytest.mark.parametrize("frequency_hz,gain_db,q", [(100.0, 6.0, 0.7071), (3000.0, -9.0, 2.0), (15000.0, 4.0, 0.5),
                                                    (30.0, -6.0, 4.0), (21000.0, 5.0, 1.0)])
def test_eq_band_matches_pedalboard_within_half_a_db(kind, frequency_hz, gain_db, q):
    plugin = PLUGINS[kind](cutoff_frequency_hz=min(frequency_hz, 0.45 * SAMPLE_RATE), gain_db=gain_db, q=q)
    measured = _measured_response(lambda x: plugin(x, SAMPLE_RATE))
    frequencies = rfft_frequencies(N_FFT, SAMPLE_RATE)
    settings = [torch.tensor(v, dtype=torch.float64) for v in (frequency_hz, gain_db, q)]
    model = eq_band_response(kind, *settings, frequencies, SAMPLE_RATE).numpy()
    audible = (frequencies.numpy() >= 20.0) & (frequencies.numpy() <= 20000.0)
    assert np.abs(_db(measured[audible]) - _db(model[audible])).max() < 0.5
    # the phase too: the filter is the same recursive filter, not only the same magnitude
    assert np.abs(measured - model).max() < 0.1


@pytest.mark.parametrize("highpass_hz,lowpass_hz", [(100.0, None), (None, 8000.0), (40.0, 12000.0),
                                                    (250.0, 400.0), (None, 30000.0)])
def test_butterworth_matches_the_renderer_including_clamps(highpass_hz, lowpass_hz):
    measured = _measured_response(lambda x: butterworth(x, SAMPLE_RATE, highpass_hz, lowpass_hz))
    frequencies = rfft_frequencies(N_FFT, SAMPLE_RATE)

    def cutoff(hz):
        return None if hz is None else torch.tensor(hz, dtype=torch.float64)

    model = butterworth_response(cutoff(highpass_hz), cutoff(lowpass_hz), frequencies, SAMPLE_RATE).numpy()
    assert np.isfinite(model).all()
    assert np.abs(measured - model).max() < 5e-3


def test_eq_response_is_differentiable_in_every_setting():
    settings = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (1000.0, 6.0, 1.0)]
    response = eq_band_response("peak", *settings, rfft_frequencies(1024, SAMPLE_RATE), SAMPLE_RATE)
    response.abs().log().sum().backward()
    assert all(s.grad is not None and torch.isfinite(s.grad) and s.grad != 0 for s in settings)


def _setting(value: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize("delay_seconds,feedback", [(0.08, 0.0), (0.1234, 0.3), (0.25, 0.49), (0.33333, 0.2)])
def test_feedback_delay_is_pedalboards_whole_sample_delay(delay_seconds, feedback):
    n = 1 << 18  # long enough for the echoes to die below float32 resolution
    impulse = np.zeros((1, n), dtype=np.float32)
    impulse[0, 0] = 1.0
    plugin = pedalboard.Delay(delay_seconds=delay_seconds, feedback=feedback, mix=1.0)
    measured = plugin(impulse, SAMPLE_RATE).astype(np.float64)[0]
    model = feedback_delay_response(_setting(delay_seconds), _setting(feedback), rfft_frequencies(n, SAMPLE_RATE),
                                    SAMPLE_RATE)
    assert np.abs(np.fft.irfft(model.numpy(), n=n) - measured).max() < 1e-6


def test_delay_is_truncated_to_whole_samples_with_the_continuous_gradient():
    # 0.08 s is 3527.99... samples in float32: pedalboard delays 3527, not round(3528.0)
    seconds = _setting(0.08, grad=True)
    delay = delay_samples(seconds, SAMPLE_RATE)
    assert delay.item() == 3527.0
    delay.backward()
    assert seconds.grad.item() == SAMPLE_RATE
    frequencies = rfft_frequencies(1 << 14, SAMPLE_RATE)
    continuous = feedback_delay_response(_setting(0.08), _setting(0.0), frequencies, SAMPLE_RATE, whole_samples=False)
    assert np.allclose(np.fft.irfft(continuous.numpy())[3528], 1.0)


@pytest.mark.parametrize("room_size,damping,width", [(0.1, 0.1, 0.5), (0.5, 0.5, 1.0), (0.95, 0.9, 0.7),
                                                     (0.9, 0.2, 0.0)])
@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_freeverb_response_is_pedalboards_reverb(room_size, damping, width, sample_rate):
    n = 1 << 19  # 11 s: the tail beyond it is below -80 dB of the response's peak
    for channel in (0, 1):
        impulse = np.zeros((2, n), dtype=np.float32)
        impulse[channel, 0] = 1.0
        plugin = pedalboard.Reverb(room_size=room_size, damping=damping, width=width, wet_level=1.0 / 3.0,
                                   dry_level=0.0)
        measured = plugin(impulse, sample_rate).astype(np.float64)
        settings = [_setting(v) for v in (room_size, damping, width)]
        model = freeverb_response(*settings, rfft_frequencies(n, sample_rate), sample_rate)
        assert model.shape == (2, 2, n // 2 + 1)
        response = np.fft.irfft(model[:, channel].numpy(), n=n)
        peak = np.abs(measured).max()
        assert np.abs(response - measured).max() < 1e-4 * peak  # -80 dB
        assert np.abs(response - measured)[:, : sample_rate // 2].max() < 1e-5 * peak  # float32 rounding only


def test_bus_responses_are_differentiable_in_every_setting():
    frequencies = rfft_frequencies(1 << 12, SAMPLE_RATE)
    reverb = [_setting(v, grad=True) for v in (0.7, 0.4, 0.8)]
    delay = [_setting(v, grad=True) for v in (0.1, 0.4)]
    loss = freeverb_response(*reverb, frequencies, SAMPLE_RATE).abs().sum()
    loss = loss + feedback_delay_response(*delay, frequencies, SAMPLE_RATE).abs().sum()
    loss.backward()
    assert all(s.grad is not None and torch.isfinite(s.grad) and s.grad != 0 for s in reverb + delay)

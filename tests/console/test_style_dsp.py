"""The torch models of the mixing-style space's processors against the renderers they model."""

from __future__ import annotations

import numpy as np
import pedalboard
import pytest
import torch

from mixrep.audio.primitives import butterworth
from mixrep.console.style_dsp import butterworth_response, eq_band_response, rfft_frequencies

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

"""Chunked loudness and true peak: equal to the whole-signal measurements, analytic checks."""

from __future__ import annotations

import numpy as np
import pytest

from mixrep.audio.meters import LoudnessMeter, chunked_loudness, true_peak_db
from mixrep.styles.mix_style import integrated_loudness


@pytest.mark.parametrize("sample_rate", [8000, 22050, 44100, 96000])
def test_chunked_loudness_equals_pyloudnorm_on_the_whole_signal(sample_rate):
    rng = np.random.default_rng(0)
    n = int(5.3 * sample_rate)
    audio = (rng.standard_normal((2, n)) * np.linspace(0.001, 0.3, n)).astype(np.float32)
    whole = integrated_loudness(audio, sample_rate)
    for chunk in (997, 10_000, n):
        assert chunked_loudness(audio, sample_rate, chunk) == pytest.approx(whole, abs=1e-6)


def test_silence_reads_minus_infinity_and_the_meter_needs_every_sample():
    assert chunked_loudness(np.zeros((2, 22050), np.float32), 22050) == float("-inf")
    assert true_peak_db(np.zeros((2, 100), np.float32), 22050) == float("-inf")
    meter = LoudnessMeter(22050, 22050)
    meter.add(np.ones((2, 100), np.float32))
    with pytest.raises(ValueError, match="100 of 22050"):
        meter.integrated()


def test_true_peak_finds_the_peak_between_samples():
    """A full-scale sine at a quarter of the rate, 45 degrees off its sample grid: every sample reads
    -3.01 dBFS, the waveform reaches 0 dBTP between them."""
    rate = 44100
    t = np.arange(rate)
    sine = np.sin(2 * np.pi * t / 4 + np.pi / 4) * np.hanning(rate) ** 0.01  # soft edges, no onset overshoot
    audio = np.stack([sine, 0.5 * sine]).astype(np.float32)
    assert 20 * np.log10(np.abs(audio).max()) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_db(audio, rate) == pytest.approx(0.0, abs=0.05)
    assert true_peak_db(audio, rate, chunk_samples=1000) == pytest.approx(true_peak_db(audio, rate), abs=1e-6)

"""Stem log-mel of the front end: channel order, frequency placement, silence, torchaudio parity."""

from __future__ import annotations

import math

import pytest
import torch
import torchaudio

from mixrep.frontend import FrontEnd, FrontEndConfig

SR = 44_100


def _tone(freq_hz: float, samples: int) -> torch.Tensor:
    return torch.sin(2 * math.pi * freq_hz * torch.arange(samples) / SR)


def _htk_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_of(stems: torch.Tensor, **config) -> torch.Tensor:
    return FrontEnd(FrontEndConfig(**config))(stems).mel


def test_shapes_and_frames_for() -> None:
    frontend = FrontEnd(FrontEndConfig(n_mels=64))
    mel = frontend(torch.zeros(3, 4, 2, 10_000)).mel
    assert mel.shape == (3, 8, 64, frontend.frames_for(10_000)) == (3, 8, 64, 10_000 // 512 + 1)


def test_equals_torchaudio_melspectrogram_on_every_channel() -> None:
    stems = 0.1 * torch.randn(2, 4, 2, 9_000)
    ours = mel_of(stems, n_mels=64, n_fft=1024, hop_length=256, f_min=30.0, f_max=16_000.0)
    reference = torchaudio.transforms.MelSpectrogram(SR, n_fft=1024, hop_length=256, f_min=30.0, f_max=16_000.0,
                                                     n_mels=64, power=2.0)
    expected = torch.log(reference(stems.reshape(2, 8, -1)) + 1e-5)
    torch.testing.assert_close(ours, expected, atol=2e-5, rtol=1e-5)


def test_channel_order_is_stem_major() -> None:
    x = torch.zeros(2, 4, 2, 8192)
    x[1, 1, 1] = _tone(1000.0, 8192)  # second item: bass, right channel
    out = mel_of(x, n_mels=64)
    energy = out[1].exp().sum(dim=(-2, -1))
    assert int(energy.argmax()) == 3  # drums L, drums R, bass L, bass R
    floor = math.log(FrontEndConfig().log_floor)
    torch.testing.assert_close(out[0], torch.full_like(out[0], floor))  # first item untouched
    others = torch.cat([out[1, :3], out[1, 4:]])
    torch.testing.assert_close(others, torch.full_like(others, floor))


@pytest.mark.parametrize("freq_hz", [110.0, 1000.0, 6000.0])
def test_tone_lands_in_the_mel_band_centred_nearest_its_frequency(freq_hz: float) -> None:
    n_mels, f_min, f_max = 128, 20.0, SR / 2
    x = torch.zeros(1, 4, 2, 16_384)
    x[0, 0, 0] = _tone(freq_hz, 16_384)
    band = int(mel_of(x, n_mels=n_mels, f_min=f_min)[0, 0].mean(dim=-1).argmax())
    step = (_htk_mel(f_max) - _htk_mel(f_min)) / (n_mels + 1)
    centres = [_htk_mel(f_min) + step * (i + 1) for i in range(n_mels)]
    expected = min(range(n_mels), key=lambda i: abs(centres[i] - _htk_mel(freq_hz)))
    assert abs(band - expected) <= 1  # the FFT bin grid (21.5 Hz) can tip it into a neighbour at low f


def test_silence_is_finite_and_equals_the_floor() -> None:
    out = mel_of(torch.zeros(1, 4, 2, 8192), n_mels=32, log_floor=1e-4)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.full_like(out, math.log(1e-4)))

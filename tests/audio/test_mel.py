"""Stem mel front end: channel order, frequency placement, silence, dtype/device."""

from __future__ import annotations

import math

import pytest
import torch

from mixrep.audio.mel import StemMelSpectrogram

SR = 44_100


def _tone(freq_hz: float, samples: int) -> torch.Tensor:
    return torch.sin(2 * math.pi * freq_hz * torch.arange(samples) / SR)


def _htk_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def test_shapes_and_frames_for() -> None:
    mel = StemMelSpectrogram(n_mels=64)
    x = torch.zeros(3, 4, 2, 10_000)
    assert mel(x).shape == (3, 8, 64, mel.frames_for(10_000)) == (3, 8, 64, 10_000 // 512 + 1)
    assert mel(x[0]).shape == (8, 64, mel.frames_for(10_000))


def test_channel_order_is_stem_major() -> None:
    mel = StemMelSpectrogram(n_mels=64)
    x = torch.zeros(2, 4, 2, 8192)
    x[1, 1, 1] = _tone(1000.0, 8192)  # second item: bass, right channel
    out = mel(x)
    energy = out[1].exp().sum(dim=(-2, -1))
    assert int(energy.argmax()) == 3  # drums L, drums R, bass L, bass R
    floor = math.log(mel.log_floor)
    torch.testing.assert_close(out[0], torch.full_like(out[0], floor))  # first item untouched
    others = torch.cat([out[1, :3], out[1, 4:]])
    torch.testing.assert_close(others, torch.full_like(others, floor))


@pytest.mark.parametrize("freq_hz", [110.0, 1000.0, 6000.0])
def test_tone_lands_in_the_mel_band_centred_nearest_its_frequency(freq_hz: float) -> None:
    n_mels, f_min, f_max = 128, 20.0, SR / 2
    mel = StemMelSpectrogram(n_mels=n_mels, f_min=f_min, f_max=f_max)
    x = torch.zeros(4, 2, 16_384)
    x[0, 0] = _tone(freq_hz, 16_384)
    band = int(mel(x)[0].mean(dim=-1).argmax())
    step = (_htk_mel(f_max) - _htk_mel(f_min)) / (n_mels + 1)
    centres = [_htk_mel(f_min) + step * (i + 1) for i in range(n_mels)]
    expected = min(range(n_mels), key=lambda i: abs(centres[i] - _htk_mel(freq_hz)))
    assert abs(band - expected) <= 1  # the FFT bin grid (21.5 Hz) can tip it into a neighbour at low f


def test_silence_is_finite_and_equals_the_floor() -> None:
    mel = StemMelSpectrogram(n_mels=32, log_floor=1e-4)
    out = mel(torch.zeros(4, 2, 4096))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.full_like(out, math.log(1e-4)))


def test_dtype_and_device_follow_the_module() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mel = StemMelSpectrogram(n_mels=32).to(device=device, dtype=torch.float64)
    out = mel(torch.randn(4, 2, 4096, device=device))  # float32 input is cast to the module's dtype
    assert out.dtype == torch.float64 and out.device.type == device
    with pytest.raises(ValueError, match=r"\(batch, 4, 2, samples\)"):
        mel(torch.zeros(8, 4096, device=device, dtype=torch.float64))

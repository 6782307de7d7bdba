"""Tiny models and audio files shared by the separation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mixrep.audio.io import write_audio

TINY_RATE = 8_000


def tiny_htdemucs(sources=("drums", "bass", "other", "vocals"), seed: int = 0, samplerate: int = TINY_RATE) -> nn.Module:
    """A randomly initialised HTDemucs small enough to separate 3 s in ~0.1 s on a CPU core (at 8 kHz)."""
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    return HTDemucs(sources=list(sources), channels=4, depth=2, t_layers=1, t_heads=1, nfft=256, dconv_comp=2,
                    segment=2, samplerate=samplerate).eval()


def offline_demucs(monkeypatch, hub_dir, model: nn.Module | None = None) -> list[str]:
    """Make ``demucs.pretrained.get_model`` behave as on a machine without network and without
    cached weights (or, given ``model``, as once the weights are installed); returns the names asked for."""
    import urllib.error

    calls: list[str] = []

    def get_model(name, repo=None):
        calls.append(name)
        if model is None:
            raise urllib.error.URLError("[Errno -2] Name or service not known")
        return model

    monkeypatch.setattr("demucs.pretrained.get_model", get_model)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub_dir))
    return calls


def save_demucs_package(model, path):
    """What demucs.states.serialize_model + save_with_checksum write, minus the training args."""
    from demucs.states import get_state, save_with_checksum

    path.parent.mkdir(parents=True, exist_ok=True)
    args, kwargs = model._init_args_kwargs
    save_with_checksum({"klass": type(model), "args": args, "kwargs": kwargs,
                        "state": get_state(model, None, half=False)}, path)
    return next(path.parent.glob(f"{path.stem}-*.th"))


class GainModel(nn.Module):
    """A linear 'separator': source ``k`` is ``gains[k] * mix``; lets tests know every stem exactly."""

    def __init__(self, sources: list[str], gains: list[float], samplerate: int = TINY_RATE) -> None:
        super().__init__()
        self.sources, self.samplerate, self.audio_channels, self.segment = sources, samplerate, 2, 1.0
        self.gains = nn.Parameter(torch.tensor(gains), requires_grad=False)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:  # (batch, 2, samples) -> (batch, sources, 2, samples)
        return self.gains[None, :, None, None] * mix[:, None]


def noise(seconds: float, sample_rate: int = 44_100, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((2, int(seconds * sample_rate)))).astype(np.float32)


@pytest.fixture
def wav(tmp_path) -> Path:
    """A 3 s stereo noise wav at 44.1 kHz."""
    return write_audio(tmp_path / "song.wav", noise(3.0), 44_100)

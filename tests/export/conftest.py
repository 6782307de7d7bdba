"""A style with every processor and a tiny song (four tracks, one second) for the export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mixrep.audio.io import write_audio
from mixrep.styles.mix_style import (
    ChannelStrip,
    CompressorSettings,
    DelayBus,
    EqBand,
    LimiterSettings,
    MasterBus,
    MixStyle,
    ReverbBus,
)

RATE = 22_050
NAMES = ("kick", "bass", "keys", "vox")
STEM_CLASSES = ("drums", "bass", "other", "vocals")


def full_style() -> MixStyle:
    """Every processor present: filters, shelves and peaks, compressors, saturation, width, sends, buses, master."""
    kick = ChannelStrip(fader_db=2.5, pan=-0.2, width=0.5, highpass_hz=40.0, lowpass_hz=9000.0,
                        eq=(EqBand("low_shelf", 80.0, 4.0, 0.7), EqBand("peak", 400.0, -6.0, 2.0),
                            EqBand("high_shelf", 6000.0, 3.0, 0.8)),
                        compressor=CompressorSettings(-6.0, 4.0, 5.0, 120.0, 2.0), saturation_drive_db=9.0,
                        delay_send_db=-18.0, reverb_send_db=-12.0)
    other = ChannelStrip(fader_db=-3.0, pan=0.6, eq=(EqBand("peak", 1500.0, 5.0, 1.0),),
                         compressor=CompressorSettings(-3.0, 2.5, 12.0, 250.0, 1.0), reverb_send_db=-9.0)
    plain = ChannelStrip(fader_db=-1.0, pan=0.1, delay_send_db=-24.0)
    master = MasterBus(eq=(EqBand("low_shelf", 100.0, 1.5, 0.7071), EqBand("high_shelf", 8000.0, -2.0, 0.7071)),
                       compressor=CompressorSettings(-4.0, 2.0, 10.0, 200.0, 1.0),
                       limiter=LimiterSettings(4.0, -1.0, 80.0))
    return MixStyle({"kick": kick, "drums": other, "bass": plain, "other": other, "vocals": kick},
                    delay=DelayBus(0.25, 0.35), reverb=ReverbBus(0.6, 0.4, 0.9), master=master, loudness_lufs=-16.0)


def song_audio(seed: int = 0, seconds: float = 1.0) -> np.ndarray:
    """``(4, 2, samples)`` noise bursts and tones, one track per stem class."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    burst = np.exp(-(np.arange(n) % (RATE // 4)) / (0.02 * RATE))
    tracks = np.stack([
        np.stack([rng.standard_normal(n) * burst * 0.3] * 2),
        np.stack([0.3 * np.sin(2 * np.pi * 55 * t)] * 2),
        np.stack([0.1 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 660 * t)]),
        np.stack([0.2 * np.sin(2 * np.pi * 880 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))] * 2),
    ])
    return tracks.astype(np.float32)


@pytest.fixture
def song_folder(tmp_path: Path) -> Path:
    """A song folder of four WAV tracks named after :data:`NAMES`."""
    folder = tmp_path / "song"
    for name, track in zip(NAMES, song_audio()):
        write_audio(folder / f"{name}.wav", track, RATE)
    return folder

"""Fixtures for the source tests: tiny FMA trees, audio folders and a test-only stems reader."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixrep.audio.io import read_segment, write_audio
from mixrep.constants import STEMS
from mixrep.tracks import Track

FIXTURE_RATE = 22_050  # a standard mp3 rate; halves encode time against 44.1 kHz
GOOD_SECONDS = 3.0
MIN_SECONDS = 2.0


def tone(seconds: float, frequency_hz: float = 440.0, sample_rate: int = FIXTURE_RATE, level: float = 0.3) -> np.ndarray:
    """A stereo sine, ``(2, samples)`` float32 (right channel at half level, to tell channels apart)."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    x = (level * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
    return np.stack([x, 0.5 * x])


class MixtureAsOther:
    """TEST HELPER ONLY - not a separator: puts the decoded mixture in the "other" slot, zeros elsewhere.

    Implements :class:`~mixrep.separation.base.TrackStems` so mixture sources can be exercised
    without Demucs.
    """

    def __init__(self, sample_rate: int = FIXTURE_RATE) -> None:
        self.sample_rate = sample_rate

    def read(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        mix = read_segment(track.audio_path, start_seconds, duration_seconds, self.sample_rate)
        out = np.zeros((len(STEMS), *mix.shape), dtype=np.float32)
        out[STEMS.index("other")] = mix
        return out


@pytest.fixture
def mixture_stems() -> MixtureAsOther:
    return MixtureAsOther()


# track_id -> (subset, split, what is on disk)
FMA_ROWS: dict[int, tuple[str, str, str]] = {
    2: ("small", "training", "good"),
    5: ("small", "validation", "good"),
    10: ("small", "test", "good"),
    12: ("small", "training", "silent"),
    7: ("small", "training", "absent"),
    140: ("small", "training", "corrupt"),
    141: ("small", "test", "short"),
    1001: ("medium", "training", "good"),
    2000: ("large", "validation", "good"),
}


def write_fma_tracks_csv(path: Path, rows: dict[int, tuple[str, str, str]]) -> Path:
    """A tracks.csv with FMA's two-row column header (as pandas wrote the real one)."""
    columns = pd.MultiIndex.from_tuples(
        [
            ("album", "title"),
            ("artist", "name"),
            ("set", "split"),
            ("set", "subset"),
            ("track", "duration"),
            ("track", "genre_top"),
            ("track", "title"),
        ]
    )
    data = [
        [f"album {tid}", f"artist {tid}", split, subset, 180, "Rock" if tid % 2 else "Electronic", f"song {tid}"]
        for tid, (subset, split, _) in rows.items()
    ]
    table = pd.DataFrame(data, index=pd.Index(list(rows), name="track_id"), columns=columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path)
    return path


@pytest.fixture
def fma_root(tmp_path: Path) -> Path:
    """``<root>/fma_metadata/tracks.csv`` + ``fma_small`` (fma_medium/large/full are links to it)."""
    root = tmp_path / "fma"
    write_fma_tracks_csv(root / "fma_metadata" / "tracks.csv", FMA_ROWS)
    audio = root / "fma_small"
    for tid, (_, _, kind) in FMA_ROWS.items():
        path = audio / f"{tid:06d}"[:3] / f"{tid:06d}.mp3"
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "good":
            write_audio(path, tone(GOOD_SECONDS, 200.0 + tid), FIXTURE_RATE)
        elif kind == "silent":
            write_audio(path, np.zeros((2, int(GOOD_SECONDS * FIXTURE_RATE)), np.float32), FIXTURE_RATE)
        elif kind == "short":
            write_audio(path, tone(0.5), FIXTURE_RATE)
        elif kind == "corrupt":
            path.write_bytes(np.random.default_rng(tid).bytes(4000))
    for size in ("medium", "large", "full"):
        os.symlink(audio, root / f"fma_{size}", target_is_directory=True)
    return root

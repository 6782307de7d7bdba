"""On-the-fly separation: each span is decoded and separated on its own."""

from __future__ import annotations

import numpy as np
import pytest

from tests.separation.conftest import TINY_RATE, GainModel
from mixrep.tracks import Track
from mixrep.errors import DatasetError
from mixrep.separation.cache import StemCache
from mixrep.separation.cached import CachedSeparation, OnTheFlySeparation
from mixrep.separation.demucs import DemucsSeparator


def test_span_matches_the_cached_slice_for_a_linear_separator(wav, tmp_path):
    gains = [0.1, 0.2, 0.3, 0.4]
    separator = DemucsSeparator(model=GainModel(["drums", "bass", "other", "vocals"], gains, samplerate=TINY_RATE),
                                device="cpu")
    track = Track("song", 3.0, audio_path=wav)
    on_the_fly = OnTheFlySeparation(separator, sample_rate=44_100).read(track, 1.0, 1.5)
    cached = CachedSeparation(separator, StemCache(tmp_path / "cache"), sample_rate=44_100).read(track, 1.0, 1.5)
    assert on_the_fly.shape == (4, 2, int(1.5 * 44_100))
    # A linear separator: stem k is gains[k] * (the mix band-limited by the trip to 8 kHz).
    for k, gain in enumerate(gains):
        np.testing.assert_allclose(on_the_fly[k], on_the_fly[0] * gain / gains[0], atol=1e-5)
    middle = slice(2000, -2000)  # away from the span's edges, where resampling differs
    np.testing.assert_allclose(on_the_fly[..., middle], cached[..., middle], atol=1e-3)


def test_tracks_without_a_mixture_file_are_refused():
    separator = DemucsSeparator(model=GainModel(["drums", "bass", "other", "vocals"], [1, 1, 1, 1]), device="cpu")
    with pytest.raises(DatasetError, match="no audio_path"):
        OnTheFlySeparation(separator).read(Track("x", 5.0), 0.0, 1.0)

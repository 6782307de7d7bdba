"""Timbre jitter: one random EQ per track, shared by the clips of one read, within its ranges."""

from __future__ import annotations

import numpy as np
import pytest

from mixrep.corpora.timbre import jitter_timbre, timbre_ranges
from mixrep.styles.spaces import Clip
from mixrep.training.datamodule import TripletDataModule

RATE = 22050


def response_db(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Magnitude response (dB) of ``before -> after`` per rfft bin from 100 Hz to 9 kHz, left channel."""
    spectrum_in, spectrum_out = np.fft.rfft(before[0]), np.fft.rfft(after[0])
    freqs = np.fft.rfftfreq(before.shape[-1], 1 / RATE)
    band = (freqs > 100) & (freqs < 9000)
    return 20 * np.log10(np.abs(spectrum_out[band]) / np.abs(spectrum_in[band]))


def noise_clip(seed: int, tracks: int = 3) -> Clip:
    audio = np.random.default_rng(seed).standard_normal((tracks, 2, RATE)).astype(np.float32) * 0.1
    audio[-1] = 0.0  # a silent track
    return Clip(audio, tuple(f"t{i}" for i in range(tracks)), ("drums", "bass", "other")[:tracks])


def smoothed(db: np.ndarray, width: int = 200) -> np.ndarray:
    return np.convolve(db, np.ones(width) / width, mode="valid")


def test_each_track_gets_one_eq_shared_by_the_clips_of_a_read_and_within_range():
    first, second = noise_clip(0), noise_clip(1)
    out = jitter_timbre([first, second], timbre_ranges(4.0), np.random.default_rng(5), RATE)
    for track in range(2):
        a = smoothed(response_db(first.audio[track], out[0].audio[track]))
        b = smoothed(response_db(second.audio[track], out[1].audio[track]))
        np.testing.assert_allclose(a, b, atol=0.3)  # one EQ for both clips of the song
        assert 0.5 < np.abs(a).max() < 3 * 4.0 + 0.5  # audible, and shelves + peak stay within their gains
    tracks = [smoothed(response_db(first.audio[t], out[0].audio[t])) for t in range(2)]
    assert np.abs(tracks[0] - tracks[1]).max() > 0.5  # tracks draw their own EQs
    assert not out[0].audio[-1].any()  # silence stays silent
    assert out[0].names == first.names and out[0].stems == first.stems


def test_zero_jitter_changes_nothing_and_negative_jitter_is_refused():
    clip = noise_clip(2)
    (out,) = jitter_timbre([clip], timbre_ranges(0.0), np.random.default_rng(0), RATE)
    np.testing.assert_allclose(out.audio, clip.audio, atol=1e-5)
    with pytest.raises(ValueError, match="timbre jitter"):
        timbre_ranges(-1.0)


def test_the_datamodule_jitters_training_clips_only():
    options = dict(source="synth", strategy="same_chain", styles="mix_style", clip_seconds=1.5, sample_rate=RATE,
                   synth_songs=24, synth_song_seconds=4.0, num_workers=0)
    plain, jittered = TripletDataModule(**options), TripletDataModule(**options, timbre_jitter_db=4.0)
    for dm in (plain, jittered):
        dm.setup("fit")
    assert plain.train_set.timbre is None and jittered.val_set.timbre is None
    assert jittered.train_set.timbre == timbre_ranges(4.0)
    np.testing.assert_array_equal(plain.val_set[0]["anchor_stems"], jittered.val_set[0]["anchor_stems"])
    assert not np.allclose(plain.train_set[0]["anchor_stems"], jittered.train_set[0]["anchor_stems"], atol=1e-4)

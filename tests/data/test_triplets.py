"""Triplet drawing, skipping of bad tracks and the DataModule's reproducible sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixrep.audio.features import num_features
from mixrep.data.datamodule import TripletDataModule
from mixrep.data.strategies import SameChainStrategy, SameSongStrategy, non_overlapping_starts
from mixrep.data.synthetic import SynthConfig, SyntheticSource
from mixrep.data.tracks import SkipLog
from mixrep.data.triplets import SIDES, EpochSampler, MelConfig, TripletDataset
from mixrep.errors import AudioReadError, DatasetError

CLIP = 1.5
MEL = MelConfig(n_mels=32, n_fft=1024, hop_length=512)


@pytest.fixture(scope="module")
def source():
    return SyntheticSource(SynthConfig(num_songs=8, song_seconds=4.0, seed=3))


def make_dataset(source, strategy=None, seed=0, tracks=None):
    return TripletDataset(source, tracks or source.tracks(), strategy or SameSongStrategy(), CLIP, MEL, seed=seed)


def test_non_overlapping_starts_never_overlap_and_stay_inside():
    rng = np.random.default_rng(0)
    for _ in range(500):
        a, b = non_overlapping_starts(10.0, 3.0, rng)
        assert abs(a - b) >= 3.0 - 1e-9
        assert 0.0 <= min(a, b) and max(a, b) + 3.0 <= 10.0 + 1e-9
    with pytest.raises(ValueError, match="two 3.00 s clips"):
        non_overlapping_starts(5.0, 3.0, rng)


def test_item_shapes_and_a_negative_that_differs_from_its_anchor(source):
    dataset = make_dataset(source)
    item = dataset[0]
    frames = dataset.mel.frames_for(int(CLIP * source.sample_rate))
    for side in SIDES:
        assert item[f"{side}_mel"].shape == (8, MEL.n_mels, frames)
        assert item[f"{side}_features"].shape == (num_features(),)
        assert torch.isfinite(item[f"{side}_mel"]).all() and torch.isfinite(item[f"{side}_features"]).all()
    assert not torch.equal(item["anchor_mel"], item["negative_mel"])
    assert not torch.equal(item["anchor_features"], item["negative_features"])
    for key in range(8):
        triplet = dataset.draw(key)
        assert np.abs(triplet.negative - triplet.anchor).max() > 1e-3


def test_sampling_is_reproducible_from_the_seed(source):
    first, again, other = make_dataset(source, seed=5), make_dataset(source, seed=5), make_dataset(source, seed=6)
    for key in (0, 13):
        a, b, c = first[key], again[key], other[key]
        for name in a:
            assert torch.equal(a[name], b[name])
        assert not torch.equal(a["anchor_mel"], c["anchor_mel"])


def test_same_song_positive_is_another_clip_of_the_anchor_song(source):
    triplet = make_dataset(source).draw(2)
    assert triplet.info["strategy"] == "same_song"
    assert not np.allclose(triplet.anchor, triplet.positive)


def test_same_chain_positive_is_another_song_under_the_same_chain(source):
    dataset = make_dataset(source, SameChainStrategy())
    for key in range(6):
        triplet = dataset.draw(key)
        assert triplet.info["positive_track"] != triplet.info["track"]
        assert triplet.info["chain"] != triplet.info["negative_chain"]
        assert np.abs(triplet.negative - triplet.anchor).max() > 1e-4


class FlakySource:
    """Wraps a source: one track is corrupt on disk, one is digital silence."""

    def __init__(self, inner, corrupt: str, silent: str):
        self.inner, self.corrupt, self.silent = inner, corrupt, silent
        self.name, self.sample_rate, self.skipped = "flaky", inner.sample_rate, SkipLog()

    def tracks(self, split=None):
        return self.inner.tracks(split)

    def read_stems(self, track, start_seconds, duration_seconds):
        if track.track_id == self.corrupt:
            raise AudioReadError(f"cannot decode {track.track_id}.mp3: invalid frame header")
        stems = self.inner.read_stems(track, start_seconds, duration_seconds)
        return np.zeros_like(stems) if track.track_id == self.silent else stems


def test_corrupt_and_silent_tracks_are_skipped_and_counted(source):
    tracks = source.tracks()
    flaky = FlakySource(source, corrupt=tracks[0].track_id, silent=tracks[1].track_id)
    dataset = make_dataset(flaky, tracks=tracks)
    for key in range(len(tracks)):
        item = dataset[key]
        assert item["track_index"].item() not in (0, 1)
    assert dataset.skipped_tracks == {tracks[0].track_id, tracks[1].track_id}


def test_all_tracks_unreadable_is_a_clear_error(source):
    tracks = source.tracks()[:2]
    flaky = FlakySource(source, corrupt=tracks[0].track_id, silent=tracks[1].track_id)
    with pytest.raises(DatasetError, match="unreadable or silent"):
        make_dataset(flaky, tracks=tracks).draw(0)


def test_too_short_tracks_are_refused_up_front(source):
    with pytest.raises(DatasetError, match="shorter than two"):
        TripletDataset(source, source.tracks(), SameSongStrategy(), clip_seconds=3.0, mel=MEL)


def test_epoch_sampler_reshuffles_per_epoch_reproducibly():
    sampler = EpochSampler(10, seed=1)
    first = list(sampler)
    assert sorted(first) == list(range(10))
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == list(range(10, 20)) and [k - 10 for k in second] != first
    again = EpochSampler(10, seed=1)
    again.set_epoch(1)
    assert list(again) == second


def test_datamodule_batches_do_not_depend_on_the_number_of_workers():
    def first_batch(workers):
        dm = TripletDataModule(source="synth", synth_songs=10, synth_song_seconds=4.0, clip_seconds=CLIP,
                               n_mels=32, n_fft=1024, batch_size=4, num_workers=workers, seed=7)
        dm.setup("fit")
        return next(iter(dm.train_dataloader())), dm

    serial, dm = first_batch(0)
    parallel, _ = first_batch(2)
    assert serial["anchor_mel"].shape == (4, 8, 32, dm.train_set.mel.frames_for(int(CLIP * 44_100)))
    for name in serial:
        assert torch.equal(serial[name], parallel[name]), name
    assert len(dm.source.tracks("val")) >= 1 and dm.val_set is not None

"""Triplet drawing, skipping of bad tracks and the DataModule's reproducible sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixrep.corpora.synthetic import SynthConfig, SyntheticSource
from mixrep.errors import AudioReadError, DatasetError
from mixrep.frontend import FrontEnd, FrontEndConfig
from mixrep.styles.chains import StyleChain, apply_chain
from mixrep.tracks import SkipLog
from mixrep.training.datamodule import TripletDataModule
from mixrep.training.strategies import SameChainStrategy, SameSongStrategy, non_overlapping_starts
from mixrep.training.triplets import SIDES, EpochSampler, TripletDataset, encode_triplets, stems_key

CLIP = 1.5


@pytest.fixture(scope="module")
def source():
    return SyntheticSource(SynthConfig(num_songs=8, song_seconds=4.0, seed=3))


def make_dataset(source, strategy=None, seed=0, tracks=None, **options):
    return TripletDataset(source, tracks or source.tracks(), strategy or SameSongStrategy(), CLIP, seed=seed, **options)


def test_non_overlapping_starts_never_overlap_and_stay_inside():
    rng = np.random.default_rng(0)
    for _ in range(500):
        a, b = non_overlapping_starts(10.0, 3.0, rng)
        assert abs(a - b) >= 3.0 - 1e-9
        assert 0.0 <= min(a, b) and max(a, b) + 3.0 <= 10.0 + 1e-9
    with pytest.raises(ValueError, match="two 3.00 s clips"):
        non_overlapping_starts(5.0, 3.0, rng)


def test_items_carry_stems_only_and_the_front_end_encodes_a_batch(source):
    dataset = make_dataset(source)
    item = dataset[0]
    samples = int(round(CLIP * source.sample_rate))
    assert set(item) == {"track_index", *(stems_key(side) for side in SIDES)}
    for side in SIDES:
        assert item[stems_key(side)].shape == (4, 2, samples) and item[stems_key(side)].dtype == torch.float32
    assert not torch.equal(item["anchor_stems"], item["negative_stems"])
    for key in range(8):
        triplet = dataset.draw(key)
        assert np.abs(triplet.negative - triplet.anchor).max() > 1e-3
    frontend = FrontEnd(FrontEndConfig(sample_rate=source.sample_rate, n_mels=32, n_fft=1024, clip_seconds=CLIP))
    batch = torch.utils.data.default_collate([dataset[0], dataset[1]])
    encoded = encode_triplets(batch, frontend)
    assert set(encoded) == {"track_index", *(f"{side}_{kind}" for side in SIDES for kind in ("mel", "features"))}
    for side in SIDES:
        mel, features = frontend(batch[stems_key(side)])
        torch.testing.assert_close(encoded[f"{side}_mel"], mel)
        torch.testing.assert_close(encoded[f"{side}_features"], features)
        assert encoded[f"{side}_mel"].shape == (2, 8, 32, frontend.frames_for(samples))


def test_float16_transport_halves_the_bytes_and_rounds_like_float16(source):
    full, half = make_dataset(source)[3], make_dataset(source, transport_dtype="float16")[3]
    for side in SIDES:
        assert half[stems_key(side)].dtype == torch.float16
        torch.testing.assert_close(half[stems_key(side)].float(), full[stems_key(side)], rtol=2**-10, atol=1e-7)
    with pytest.raises(ValueError, match="transport_dtype"):
        make_dataset(source, transport_dtype="int8")


def test_sampling_is_reproducible_from_the_seed(source):
    first, again, other = make_dataset(source, seed=5), make_dataset(source, seed=5), make_dataset(source, seed=6)
    for key in (0, 13):
        a, b, c = first[key], again[key], other[key]
        for name in a:
            assert torch.equal(a[name], b[name])
        assert not torch.equal(a["anchor_stems"], c["anchor_stems"])


class RecordingSource:
    """Wraps a source and records every span read: (track id, start seconds, stems)."""

    def __init__(self, inner):
        self.inner, self.reads = inner, []
        self.name, self.sample_rate, self.skipped = inner.name, inner.sample_rate, inner.skipped

    def tracks(self, split=None):
        return self.inner.tracks(split)

    def read_stems(self, track, start_seconds, duration_seconds):
        stems = self.inner.read_stems(track, start_seconds, duration_seconds)
        self.reads.append((track.track_id, start_seconds, stems))
        return stems


def test_same_song_positive_is_another_clip_of_the_anchor_song(source):
    recording = RecordingSource(source)
    dataset = make_dataset(recording)
    for key in range(6):
        recording.reads.clear()
        triplet = dataset.draw(key)
        assert triplet.info["strategy"] == "same_song"
        anchor_song = source.tracks()[triplet.info["track_index"]].track_id
        (song_a, start_a, raw_a), (song_p, start_p, raw_p) = recording.reads[-2:]
        # Both clips are reads of the anchor's song, at non-overlapping offsets.
        assert song_a == song_p == anchor_song == triplet.info["track"]
        assert abs(start_a - start_p) >= CLIP - 1e-9
        np.testing.assert_array_equal(triplet.anchor, raw_a)
        np.testing.assert_array_equal(triplet.positive, raw_p)


def test_same_chain_positive_is_another_song_under_the_anchors_chain(source):
    recording = RecordingSource(source)
    dataset = make_dataset(recording, SameChainStrategy())
    for key in range(6):
        recording.reads.clear()
        triplet = dataset.draw(key)
        info = triplet.info
        (song_a, _, raw_a), (song_p, _, raw_p) = recording.reads[-2:]
        assert song_a == info["track"] == source.tracks()[info["track_index"]].track_id
        assert song_p == info["positive_track"] != song_a
        chain = StyleChain.from_dict(info["style"])
        # Anchor and positive are exactly the two raw clips through the one chain...
        np.testing.assert_array_equal(triplet.anchor, apply_chain(raw_a, chain, source.sample_rate))
        np.testing.assert_array_equal(triplet.positive, apply_chain(raw_p, chain, source.sample_rate))
        # ...and the negative is the anchor's raw clip under another chain.
        negative_chain = StyleChain.from_dict(info["negative_style"])
        assert negative_chain != chain
        np.testing.assert_allclose(triplet.negative, apply_chain(raw_a, negative_chain, source.sample_rate),
                                   rtol=1e-5, atol=1e-6)


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
        TripletDataset(source, source.tracks(), SameSongStrategy(), clip_seconds=3.0)


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
                               batch_size=4, num_workers=workers, seed=7)
        dm.setup("fit")
        return next(iter(dm.train_dataloader())), dm

    serial, dm = first_batch(0)
    parallel, _ = first_batch(2)
    assert serial["anchor_stems"].shape == (4, 4, 2, int(CLIP * 44_100))
    for name in serial:
        assert torch.equal(serial[name], parallel[name]), name
    assert len(dm.source.tracks("val")) >= 1 and dm.val_set is not None

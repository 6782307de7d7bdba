"""Style spaces in training pairs, clips read per track, corpus mixtures and the generated corpora."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from mixrep.constants import STEMS
from mixrep.corpora.rendered import (
    CORPUS_SEED_STRIDE,
    CorpusMixture,
    detect_layout,
    find_soundfont,
    open_generated_corpora,
)
from mixrep.corpora.synthetic import TRACKS, SynthConfig, SyntheticSource
from mixrep.errors import DatasetError
from mixrep.styles.chains import StyleChain, apply_chain
from mixrep.styles.mix_style import MixStyle, render_mix
from mixrep.styles.spaces import ChainStyles, Clip, MixStyles, make_style_space, read_clip
from mixrep.training.datamodule import TripletDataModule
from mixrep.training.strategies import SameChainStrategy, SameSongStrategy, make_strategy
from mixrep.training.triplets import TripletDataset
from tests.sf2_fixture import write_sf2

CLIP = 1.0
RATE = 16_000


@pytest.fixture(scope="module")
def source():
    return SyntheticSource(SynthConfig(num_songs=6, song_seconds=3.0, seed=5, sample_rate=RATE))


class RecordingMultitracks:
    """Wraps a multitrack source and records every span of tracks read: (track id, tracks)."""

    def __init__(self, inner):
        self.inner, self.reads = inner, []
        self.name, self.sample_rate, self.skipped = inner.name, inner.sample_rate, inner.skipped

    def tracks(self, split=None):
        return self.inner.tracks(split)

    def multitrack(self, track):
        return self.inner.multitrack(track)

    def read_tracks(self, track, start_seconds, duration_seconds):
        audio = self.inner.read_tracks(track, start_seconds, duration_seconds)
        self.reads.append((track.track_id, audio))
        return audio

    def read_stems(self, track, start_seconds, duration_seconds):
        raise AssertionError("a mix_style strategy must read tracks, not stems")


def test_clips_of_a_multitrack_source_are_read_per_track_and_sum_to_its_stems(source):
    track = source.tracks()[0]
    clip = read_clip(source, track, 0.5, CLIP)
    assert clip.names == tuple(name for name, _ in TRACKS) and clip.stems == tuple(stem for _, stem in TRACKS)
    assert clip.audio.shape == (6, 2, int(CLIP * RATE))
    np.testing.assert_allclose(clip.stem_audio(), source.read_stems(track, 0.5, CLIP), atol=1e-6)
    stems_only = read_clip(source, track, 0.5, CLIP, tracks=False)
    assert stems_only.names == STEMS == stems_only.stems
    with pytest.raises(ValueError, match="name and a stem class per track"):
        Clip(clip.audio, clip.names[:2], clip.stems)


def test_mix_style_positive_is_another_song_under_the_identical_style_negative_the_same_song_under_another(source):
    recording = RecordingMultitracks(source)
    styles = MixStyles()
    dataset = TripletDataset(recording, source.tracks(), SameChainStrategy(styles), CLIP, seed=1)
    names = [name for name, _ in TRACKS]
    stems = [stem for _, stem in TRACKS]
    for key in range(3):
        recording.reads.clear()
        triplet = dataset.draw(key)
        info = triplet.info
        (song_a, raw_a), (song_p, raw_p) = recording.reads[-2:]
        assert info["styles"] == "mix_style" and song_a == info["track"] != song_p == info["positive_track"]
        style, negative_style = MixStyle.from_dict(info["style"]), MixStyle.from_dict(info["negative_style"])
        assert style != negative_style
        # One strip per track of the two songs (and per stem class), drawn once for both.
        assert set(names) | set(STEMS) <= set(style.strips)
        np.testing.assert_array_equal(triplet.anchor, render_mix(raw_a, style, RATE, names, stems))
        np.testing.assert_array_equal(triplet.positive, render_mix(raw_p, style, RATE, names, stems))
        np.testing.assert_array_equal(triplet.negative, render_mix(raw_a, negative_style, RATE, names, stems))
        # Every side is loudness-normalised, so level says nothing; the mixes still differ.
        assert np.abs(triplet.negative - triplet.anchor).max() > 1e-3


def test_mix_style_same_song_pairs_two_clips_of_one_song_in_one_style(source):
    recording = RecordingMultitracks(source)
    dataset = TripletDataset(recording, source.tracks(), SameSongStrategy(MixStyles()), CLIP, seed=2)
    names, stems = [n for n, _ in TRACKS], [s for _, s in TRACKS]
    triplet = dataset.draw(0)
    (song_a, raw_a), (song_p, raw_p) = recording.reads[-2:]
    assert song_a == song_p == triplet.info["track"]
    style = MixStyle.from_dict(triplet.info["style"])
    np.testing.assert_array_equal(triplet.anchor, render_mix(raw_a, style, RATE, names, stems))
    np.testing.assert_array_equal(triplet.positive, render_mix(raw_p, style, RATE, names, stems))
    assert MixStyle.from_dict(triplet.info["negative_style"]) != style


def test_chain_styles_keep_the_stems_and_the_chains(source):
    styles = ChainStyles()
    assert not styles.reads_tracks and styles.reference(np.random.default_rng(0), STEMS) is None
    clip = read_clip(source, source.tracks()[1], 0.0, CLIP, tracks=False)
    chain = styles.draw(np.random.default_rng(3), clip.names)
    assert isinstance(chain, StyleChain)
    np.testing.assert_array_equal(styles.apply(clip, chain, RATE), apply_chain(clip.audio, chain, RATE))
    np.testing.assert_array_equal(styles.apply(clip, None, RATE), clip.audio)
    assert isinstance(make_strategy("mixed", make_style_space("mix_style")).styles, MixStyles)
    with pytest.raises(ValueError, match="chains, mix_style"):
        make_style_space("pedalboard")


def test_data_module_switches_the_style_space_and_validates_with_it():
    common = dict(source="synth", synth_songs=8, synth_song_seconds=3.0, clip_seconds=CLIP, sample_rate=RATE,
                  batch_size=2, num_workers=0, strategy="same_chain")
    chains, mix = TripletDataModule(**common), TripletDataModule(styles="mix_style", **common)
    assert isinstance(chains.style_space, ChainStyles) and isinstance(mix.style_space, MixStyles)
    assert mix.hparams["mix_style"]["loudness_lufs"] == -14.0  # serialised with the checkpoint
    mix.setup("fit")
    item = mix.train_set[0]
    assert item["anchor_stems"].shape == (4, 2, int(CLIP * RATE))
    with pytest.raises(ValueError, match="styles='eq'"):
        TripletDataModule(styles="eq", **common)


def test_corpus_mixture_prefixes_interleaves_and_reads_from_each_corpus(source):
    other = SyntheticSource(SynthConfig(num_songs=4, song_seconds=3.0, seed=9, sample_rate=RATE))
    mixture = CorpusMixture({"a": source, "b": other})
    tracks = mixture.tracks()
    assert len(tracks) == 10 and [t.track_id.split("/")[0] for t in tracks[:8]] == ["a", "b"] * 4
    first_b = tracks[1]
    assert first_b.metadata["corpus"] == "b" and mixture.corpus_of(first_b) == "b"
    inner = other.tracks()[0]
    np.testing.assert_array_equal(mixture.read_stems(first_b, 0.5, CLIP), other.read_stems(inner, 0.5, CLIP))
    np.testing.assert_array_equal(mixture.read_tracks(first_b, 0.5, CLIP), other.read_tracks(inner, 0.5, CLIP))
    assert mixture.multitrack(first_b).names == other.multitrack(inner).names
    assert {t.split for t in mixture.tracks("val")} == {"val"}
    assert len(mixture.tracks("val")) == len(source.tracks("val")) + len(other.tracks("val"))
    with pytest.raises(ValueError, match="one sample rate"):
        CorpusMixture({"a": source, "b": SyntheticSource(SynthConfig(num_songs=2, sample_rate=22_050))})
    with pytest.raises(DatasetError, match="not a song of this corpus mixture"):
        mixture.read_stems(source.tracks()[0], 0.0, CLIP)


def test_a_soundfont_not_installed_is_left_out_with_one_log_line_and_synth_remains(caplog):
    with caplog.at_level(logging.WARNING, logger="mixrep.corpora.rendered"):
        corpus = open_generated_corpora(["soundfont"], sample_rate=RATE, synth_songs=3, synth_song_seconds=3.0,
                                        soundfonts=["NoSuchSoundfont"])
    assert isinstance(corpus, SyntheticSource)
    messages = [r.getMessage() for r in caplog.records]
    assert any("NoSuchSoundfont" in m and "not installed" in m for m in messages)
    assert any("pure-numpy synthetic corpus" in m for m in messages)


def test_a_soundfont_path_that_is_not_a_soundfont_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        find_soundfont(tmp_path / "missing.sf2")
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"not a soundfont at all")
    with pytest.raises(DatasetError, match="not a SoundFont"):
        open_generated_corpora(["soundfont"], sample_rate=RATE, soundfonts=[str(bad)], corpus_dir=tmp_path)


def test_generated_corpora_render_each_soundfont_once_with_their_own_songs(tmp_path):
    pytest.importorskip("fluidsynth", reason="pyfluidsynth / libfluidsynth3 not installed")
    soundfont = write_sf2(tmp_path / "tiny.sf2")
    options = dict(sample_rate=RATE, seed=4, synth_songs=3, synth_song_seconds=3.0, soundfonts=[str(soundfont)],
                   soundfont_songs=3, soundfont_song_seconds=3.0, corpus_dir=tmp_path / "corpora", progress=False)
    mixture = open_generated_corpora(["synth", "soundfont"], **options)
    assert isinstance(mixture, CorpusMixture) and list(mixture.sources) == ["synth", "tiny"]
    folders = sorted(p.name for p in (tmp_path / "corpora").iterdir())
    assert folders == [f"tiny-seed{4 + CORPUS_SEED_STRIDE}-3x3s-{RATE}hz"]
    sf_song = mixture.tracks()[1]
    assert mixture.multitrack(sf_song).names == ("kick", "snare", "hats", "bass", "chords", "lead")
    assert mixture.read_tracks(sf_song, 0.0, CLIP).shape == (6, 2, int(CLIP * RATE))
    # Corpus k plays the songs of seed + k * stride: no two corpora share the notes of a song.
    folder = tmp_path / "corpora" / folders[0]
    assert json.loads((folder / "corpus.json").read_text())["config"]["seed"] == 4 + CORPUS_SEED_STRIDE
    assert mixture.sources["synth"].config.seed == 4
    song_file = next(folder.glob("*/song.json"))
    stamp = song_file.stat().st_mtime_ns
    again = open_generated_corpora(["soundfont"], **options)  # cached: nothing is rendered again
    assert song_file.stat().st_mtime_ns == stamp and len(again.tracks()) == 3
    assert len(list((tmp_path / "corpora").iterdir())) == 1


def test_dataset_layouts_are_detected(tmp_path):
    (tmp_path / "sf" / "song").mkdir(parents=True)
    (tmp_path / "sf" / "song" / "song.json").write_text("{}")
    (tmp_path / "slakh" / "train" / "Track00001").mkdir(parents=True)
    (tmp_path / "slakh" / "train" / "Track00001" / "metadata.yaml").write_text("")
    (tmp_path / "stems" / "song").mkdir(parents=True)
    for stem in STEMS:
        (tmp_path / "stems" / "song" / f"{stem}.wav").write_bytes(b"")
    (tmp_path / "tracks" / "song").mkdir(parents=True)
    (tmp_path / "tracks" / "song" / "Kick.wav").write_bytes(b"")
    assert [detect_layout(tmp_path / k) for k in ("sf", "slakh", "stems", "tracks")] == [
        "soundfont", "slakh", "stems", "tracks"]
    with pytest.raises(DatasetError, match="does not exist"):
        detect_layout(tmp_path / "nothing")


def test_crossed_strategy_makes_two_same_chain_triplets_from_four_mixes(source):
    recording = RecordingMultitracks(source)
    dataset = TripletDataset(recording, source.tracks(), make_strategy("crossed", MixStyles()), CLIP, seed=3)
    assert dataset.group_size == 2
    names, stems = [n for n, _ in TRACKS], [s for _, s in TRACKS]
    first, second = dataset.draw(4), dataset.draw(5)  # the two items of group 2, drawn once
    assert len(recording.reads) == 2
    (song_a, raw_a), (song_b, raw_b) = recording.reads
    s, t = MixStyle.from_dict(first.info["style"]), MixStyle.from_dict(first.info["negative_style"])
    assert s != t and MixStyle.from_dict(second.info["style"]) == t
    assert (first.info["track"], second.info["track"]) == (song_a, song_b) and song_a != song_b
    np.testing.assert_array_equal(first.anchor, render_mix(raw_a, s, RATE, names, stems))  # A in s
    np.testing.assert_array_equal(first.positive, render_mix(raw_b, s, RATE, names, stems))  # B in s
    np.testing.assert_array_equal(first.negative, render_mix(raw_a, t, RATE, names, stems))  # A in t
    np.testing.assert_array_equal(second.anchor, render_mix(raw_b, t, RATE, names, stems))  # B in t
    np.testing.assert_array_equal(second.positive, first.negative)
    np.testing.assert_array_equal(second.negative, first.positive)
    assert [dataset.draw(5).info["track"], dataset.draw(4).info["track"]] == [song_b, song_a]
    # Items depend on their key only: a fresh dataset drawing item 5 first gives the same triplet.
    fresh = TripletDataset(source, source.tracks(), make_strategy("crossed", MixStyles()), CLIP, seed=3)
    np.testing.assert_array_equal(fresh.draw(5).anchor, second.anchor)
    assert fresh[5]["track_index"].item() == [t.track_id for t in source.tracks()].index(song_b)


def test_epoch_sampler_keeps_the_items_of_a_group_together():
    from mixrep.training.triplets import EpochSampler

    order = list(EpochSampler(12, seed=1, epoch=2, group_size=2))
    assert sorted(order) == list(range(24, 36))
    assert all(order[i] // 2 == order[i + 1] // 2 and order[i] % 2 == 0 for i in range(0, 12, 2))
    assert list(EpochSampler(6, seed=1)) == list(EpochSampler(6, seed=1, group_size=1))
    with pytest.raises(ValueError, match="multiple of 2"):
        EpochSampler(7, group_size=2)

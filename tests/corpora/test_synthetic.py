"""The embedded synthetic corpus: determinism, musical variety, levels, placement, tracks, source API."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixrep.constants import STEMS
from mixrep.corpora.synthetic import (
    SynthConfig,
    SyntheticCorpus,
    SyntheticSource,
    _harmonic_oscillator,
    split_for_index,
    synthesize_song,
    write_corpus,
)
from mixrep.audio.stems import sum_to_stems
from mixrep.audio.multitrack import MultitrackSource
from mixrep.corpora.score import NOTE_NAMES, compose_song
from mixrep.tracks import Source

RATE = 22_050
SHORT = SynthConfig(num_songs=10, seed=1, song_seconds=6.0, sample_rate=RATE)


@pytest.fixture(scope="module")
def songs():
    return [synthesize_song(i, SHORT) for i in range(SHORT.num_songs)]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def centroid_hz(x: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.mean(axis=0)))
    freqs = np.fft.rfftfreq(x.shape[-1], 1.0 / sample_rate)
    return float((spectrum * freqs).sum() / spectrum.sum())


def test_harmonic_oscillator_matches_the_closed_form():
    # constant f0 = 1000 Hz, weights 2:1 -> normalised amplitudes 2/3 at 1 kHz and 1/3 at 2 kHz
    n = RATE  # 1 s: 1 Hz bins
    out = _harmonic_oscillator(
        np.full(n, 1000.0, np.float32), np.ones(n, np.float32), np.array([2.0, 1.0]), RATE, np.random.default_rng(0)
    )
    magnitude = np.abs(np.fft.rfft(out)) * 2 / n
    assert magnitude[1000] == pytest.approx(2 / 3, abs=1e-3)
    assert magnitude[2000] == pytest.approx(1 / 3, abs=1e-3)
    assert np.delete(magnitude, [1000, 2000]).max() < 1e-3


def test_harmonic_oscillator_drops_harmonics_that_would_alias():
    n = RATE
    out = _harmonic_oscillator(
        np.full(n, 5000.0, np.float32), np.ones(n, np.float32), np.ones(10), RATE, np.random.default_rng(0)
    )
    magnitude = np.abs(np.fft.rfft(out)) * 2 / n
    assert magnitude[5000] == pytest.approx(1.0, abs=1e-3)  # only the fundamental is below 0.45 * rate
    assert np.delete(magnitude, 5000).max() < 1e-3


def test_song_is_deterministic_and_independent_of_generation_order(songs):
    again = synthesize_song(7, SHORT)
    np.testing.assert_array_equal(again.stems, songs[7].stems)
    assert again.metadata == songs[7].metadata
    corpus = SyntheticCorpus(SHORT)
    for i in (9, 3, 7):
        corpus[i]
    np.testing.assert_array_equal(corpus[7].stems, songs[7].stems)


def test_index_and_seed_change_the_song(songs):
    assert not np.allclose(songs[0].stems, songs[1].stems)
    other_seed = synthesize_song(0, SynthConfig(num_songs=10, seed=2, song_seconds=6.0, sample_rate=RATE))
    assert not np.allclose(other_seed.stems, songs[0].stems)


def test_songs_vary_in_tempo_key_scale_parts_and_placement(songs):
    meta = [s.metadata for s in songs]
    assert len({m["tempo_bpm"] for m in meta}) == len(meta)
    assert all(80.0 <= m["tempo_bpm"] <= 150.0 for m in meta)
    assert len({m["key"] for m in meta}) >= 4
    assert len({m["scale"] for m in meta}) >= 3
    assert len({m["parts"]["other"]["mode"] for m in meta}) >= 2
    assert len({m["placement"]["other"]["pan"] for m in meta}) == len(meta)
    assert meta[0]["seed"] == [1, 0] and meta[0]["song_id"] == "synth-0000"
    json.dumps(meta)  # serialisable as-is


def test_default_song_fits_two_clips_every_stem_sounds_and_the_mix_does_not_clip():
    config = SynthConfig(num_songs=2)
    assert config.song_seconds >= 2 * 4.0 and config.sample_rate == 44_100
    for i in range(2):
        song = synthesize_song(i, config)
        assert song.stems.shape == (4, 2, 16 * 44_100) and song.stems.dtype == np.float32
        assert np.isfinite(song.stems).all()
        # normalised so the louder of (mix, any stem) peaks exactly at peak_dbfs = -1 dBFS
        peak = max(np.abs(song.mix).max(), np.abs(song.stems).max())
        assert peak == pytest.approx(10 ** (-1 / 20), rel=1e-4)
        for name, stem in zip(STEMS, song.stems):
            loudest_second = max(rms(stem[:, s : s + 44_100]) for s in range(0, stem.shape[-1], 44_100))
            assert loudest_second > 10 ** (-35 / 20), f"{name} of song {i} is silent"


def test_parts_drop_out_where_the_arrangement_says():
    config = SynthConfig(num_songs=6, seed=1, song_seconds=16.0, sample_rate=RATE)
    checked = 0
    for song in (synthesize_song(i, config) for i in range(config.num_songs)):
        sections = song.metadata["sections"]
        for s, section in enumerate(sections[1:], start=1):
            length = section["end_seconds"] - section["start_seconds"]
            if length < 2.0:
                continue
            # second half of the section (releases from the previous section have decayed), up to
            # 50 ms before its end (humanised onsets of the next section may start a little early)
            lo = int((section["start_seconds"] + length / 2) * RATE)
            hi = int((section["end_seconds"] - 0.05) * RATE)
            for k, name in enumerate(STEMS):
                level = rms(song.stems[k, :, lo:hi])
                if name in section["active"]:
                    continue
                assert level < 0.05 * rms(song.stems[k]), f"{name} plays in dropped section {s} of {song.song_id}"
                checked += 1
    assert checked > 0


def test_stems_have_their_register(songs):
    # bass sits low, hats put the drums' energy high: catches stems stored in the wrong slot
    for song in songs:
        c = {name: centroid_hz(stem, RATE) for name, stem in zip(STEMS, song.stems)}
        assert c["bass"] < 600.0
        assert c["bass"] < c["other"] and c["bass"] < c["vocals"] and c["bass"] < c["drums"]


def test_stereo_balance_follows_the_song_pan(songs):
    checked = 0
    for song in songs:
        for name in ("other", "drums"):
            pan = song.metadata["placement"][name]["pan"]
            if abs(pan) < 0.1:
                continue
            left, right = song.stems[STEMS.index(name)]
            balance_db = 10 * np.log10(np.sum(right.astype(np.float64) ** 2) / np.sum(left.astype(np.float64) ** 2))
            assert np.sign(balance_db) == np.sign(pan), f"{name} of {song.song_id}: pan {pan}, balance {balance_db:.1f} dB"
            checked += 1
    assert checked >= 3


def test_corpus_cache_stays_bounded():
    corpus = SyntheticCorpus(SynthConfig(num_songs=5, song_seconds=1.0, sample_rate=RATE), cache_songs=2)
    first = corpus[0]
    assert corpus[0] is first  # cached
    for i in range(5):
        corpus[i]
    assert len(corpus._cache) == 2 and set(corpus._cache) == {3, 4}
    assert len(corpus) == 5 and corpus[-1] is corpus[4]
    with pytest.raises(IndexError, match="out of range"):
        corpus[5]


def test_source_splits_and_reads_slices(songs):
    source = SyntheticSource(SHORT, val_fraction=0.2, test_fraction=0.2)
    assert isinstance(source, Source) and source.name == "synth" and source.sample_rate == RATE
    assert [len(source.tracks(s)) for s in ("train", "val", "test")] == [6, 2, 2]
    assert [t.split for t in source.tracks()] == [t.split for t in SyntheticSource(SHORT, 0.2, 0.2).tracks()]
    track = source.tracks()[4]
    assert track.track_id == "synth-0004" and track.duration_seconds == pytest.approx(6.0)
    out = source.read_stems(track, 1.5, 2.0)
    np.testing.assert_array_equal(out, songs[4].stems[:, :, int(1.5 * RATE) : int(3.5 * RATE)])
    tail = source.read_stems(track, 5.0, 2.0)  # runs 1 s past the end: zero-padded
    assert tail.shape == (4, 2, 2 * RATE)
    np.testing.assert_array_equal(tail[..., :RATE], songs[4].stems[..., 5 * RATE :])
    assert not tail[..., RATE:].any()


def test_split_for_index_is_stable_and_spreads_over_indices():
    splits = [split_for_index(i, 100, 0.1, 0.1) for i in range(100)]
    assert splits.count("val") == 10 and splits.count("test") == 10
    test_indices = [i for i, s in enumerate(splits) if s == "test"]
    assert max(test_indices) - min(test_indices) > 50  # not one contiguous block
    assert [split_for_index(i, 3, 0.1, 0.1) for i in range(3)].count("train") == 1  # tiny corpora keep val/test


def test_write_corpus_layout_and_metadata(tmp_path):
    config = SynthConfig(num_songs=2, seed=5, song_seconds=1.0, sample_rate=RATE)
    out = write_corpus(tmp_path / "corpus", config)
    assert sorted(p.name for p in (out / "synth-0001").iterdir()) == sorted(f"{s}.flac" for s in STEMS)
    manifest = json.loads((out / "metadata.json").read_text())
    assert manifest["config"]["seed"] == 5 and manifest["config"]["num_songs"] == 2
    assert manifest["songs"]["synth-0001"]["tempo_bpm"] == synthesize_song(1, config).metadata["tempo_bpm"]
    assert manifest["songs"]["synth-0001"]["split"] in ("train", "val", "test")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sample_rate", 1000, "unsupported sample_rate"),
        ("song_seconds", 0.1, "song_seconds"),
        ("peak_dbfs", 3.0, "cannot clip"),
        ("num_songs", 0, "num_songs"),
    ],
)
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(**{field: value})


def test_songs_are_multitracks_whose_tracks_sum_to_the_stems(songs):
    source = SyntheticSource(SHORT)
    track = source.tracks()[3]
    assert isinstance(source, MultitrackSource)
    song = source.multitrack(track)
    assert song.names == ("kick", "snare", "hats", "bass", "chords", "lead")
    assert song.stems == ("drums", "drums", "drums", "bass", "other", "vocals")
    tracks = source.read_tracks(track, 1.0, 2.0)
    assert tracks.shape == (6, 2, 2 * RATE)
    np.testing.assert_allclose(sum_to_stems(tracks, song.stems), source.read_stems(track, 1.0, 2.0), atol=1e-7)
    # each drum piece sounds on its own track, at its own pitch register
    kick, snare, hats = (songs[3].tracks[i] for i in range(3))
    assert centroid_hz(kick, RATE) < centroid_hz(snare, RATE) < centroid_hz(hats, RATE)
    assert songs[3].metadata["tracks"][5] == {"name": "lead", "stem": "vocals"}


def test_scores_are_reusable_note_events():
    score = compose_song(1, 3, 6.0)
    assert score == compose_song(1, 3, 6.0) and score != compose_song(1, 4, 6.0)
    assert [p.name for p in score.parts] == ["kick", "snare", "closed_hat", "open_hat", "bass", "chords", "lead"]
    kick = score.part("kick")
    assert kick.is_drum and {n.pitch for n in kick.notes} == {36}
    assert all(0.0 <= n.onset_seconds < 6.0 and 0.0 < n.velocity <= 1.0 for p in score.parts for n in p.notes)
    bass, lead = score.part("bass"), score.part("lead")
    assert max(n.pitch for n in bass.notes) < min(n.pitch for n in lead.notes)  # registers stay apart
    # the synthetic song plays exactly these notes: its tempo and key are the score's
    song = synthesize_song(3, SHORT)
    assert song.metadata["tempo_bpm"] == score.tempo_bpm and song.metadata["key"] == NOTE_NAMES[score.key]

"""FMA, audio-folder and stems-folder sources: listing, splits, skips, bad input, reading."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mixrep.audio.io import read_segment, write_audio
from mixrep.constants import STEMS
from mixrep.datasets.sources import AudioFolderSource, FMASource, StemsFolderSource, fma_audio_path
from mixrep.audio.multitrack_files import hash_split
from mixrep.datasets.registry import open_source
from mixrep.corpora.synthetic import SynthConfig, SyntheticSource, synthesize_song, write_corpus
from mixrep.tracks import Source
from mixrep.errors import AudioReadError, DatasetError, SeparationError

from tests.datasets.conftest import FIXTURE_RATE, MIN_SECONDS, MixtureAsOther, tone

OTHER = STEMS.index("other")


def fma(root: Path, **options) -> FMASource:
    return FMASource(root, stems=MixtureAsOther(), sample_rate=FIXTURE_RATE, min_seconds=MIN_SECONDS, **options)


# ---------------------------------------------------------------- FMA


def test_fma_audio_path_follows_fma_layout(tmp_path):
    assert fma_audio_path(tmp_path, 2) == tmp_path / "000" / "000002.mp3"
    assert fma_audio_path(tmp_path, 155066) == tmp_path / "155" / "155066.mp3"


def test_fma_small_lists_exactly_the_good_tracks_with_fma_splits(fma_root):
    source = fma(fma_root)
    splits = {t.track_id: t.split for t in source.tracks()}
    # 000012 is silent but passes: silence is only checked on request (it needs decoding)
    assert splits == {"000002": "train", "000005": "val", "000010": "test", "000012": "train"}
    assert source.skipped.counts == {"corrupt": 1, "short": 1, "missing": 1}
    skipped_ids = {Path(label.split(" ")[0]).stem: kind for label, kind, _ in source.skipped.entries}
    assert skipped_ids == {"000140": "corrupt", "000141": "short", "000007": "missing"}
    track = next(t for t in source.tracks() if t.track_id == "000005")
    assert track.audio_path == fma_root / "fma_small" / "000" / "000005.mp3"
    assert track.metadata["genre"] == "Rock" and track.metadata["artist"] == "artist 5"
    assert track.duration_seconds == pytest.approx(3.0, abs=0.1)  # from the header, not tracks.csv (180 s)
    assert [t.track_id for t in source.tracks("test")] == ["000010"]
    assert isinstance(source, Source)


@pytest.mark.parametrize(
    ("subset", "extra"),
    [("small", set()), ("medium", {"001001"}), ("large", {"001001", "002000"}), ("full", {"001001", "002000"})],
)
def test_fma_subsets_contain_the_smaller_ones(fma_root, subset, extra):
    source = fma(fma_root, subset=subset)
    assert {t.track_id for t in source.tracks()} == {"000002", "000005", "000010", "000012"} | extra
    assert source.audio_dir == fma_root / f"fma_{subset}"


def test_fma_split_argument_lists_only_that_split(fma_root):
    source = fma(fma_root, subset="large", split="val")
    assert {t.track_id for t in source.tracks()} == {"000005", "002000"}
    assert source.tracks("train") == []


def test_fma_check_silence_skips_silent_tracks(fma_root):
    source = fma(fma_root, check_silence=True)
    assert {t.track_id for t in source.tracks()} == {"000002", "000005", "000010"}
    assert source.skipped.counts["silent"] == 1


def test_fma_read_stems_goes_through_the_stems_reader(fma_root):
    source = fma(fma_root)
    track = source.tracks("val")[0]
    out = source.read_stems(track, 1.0, 0.5)
    assert out.shape == (4, 2, int(0.5 * FIXTURE_RATE)) and out.dtype == np.float32
    np.testing.assert_array_equal(out[OTHER], read_segment(track.audio_path, 1.0, 0.5, FIXTURE_RATE))
    assert not np.delete(out, OTHER, axis=0).any()


def test_read_stems_without_a_stems_reader_says_what_to_pass(fma_root):
    source = FMASource(fma_root, sample_rate=FIXTURE_RATE, min_seconds=MIN_SECONDS)
    with pytest.raises(SeparationError, match="pass stems="):
        source.read_stems(source.tracks()[0], 0.0, 1.0)


def test_file_broken_after_listing_raises_audio_read_error(fma_root):
    source = fma(fma_root)
    track = source.tracks("test")[0]
    track.audio_path.write_bytes(b"\x00" * 2000)  # the file rots between listing and reading
    with pytest.raises(AudioReadError, match=str(track.audio_path)):
        source.read_stems(track, 0.0, 1.0)


def test_missing_tracks_csv_names_the_expected_path_and_the_zip(fma_root):
    (fma_root / "fma_metadata" / "tracks.csv").unlink()
    with pytest.raises(DatasetError) as info:
        fma(fma_root)
    assert str(fma_root / "fma_metadata" / "tracks.csv") in str(info.value)
    assert "fma_metadata.zip" in str(info.value)


def test_tracks_csv_without_fma_columns_is_rejected(fma_root, tmp_path):
    bad = tmp_path / "tracks.csv"
    bad.write_text("a,b\nc,d\n1,2\n")
    with pytest.raises(DatasetError, match="lacks the columns"):
        fma(fma_root, metadata_path=bad)


def test_fma_missing_audio_folder_names_it(fma_root):
    shutil.rmtree(fma_root / "fma_small")
    with pytest.raises(DatasetError, match=str(fma_root / "fma_small")):
        fma(fma_root)


# ---------------------------------------------------------------- audio folders


@pytest.fixture
def music_folder(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    for i, rel in enumerate(["a.wav", "album/b.flac", "album/disc 2/c.mp3", "x/y/z/d.WAV", "e.ogg", "f.flac", "g.wav"]):
        write_audio(root / rel, tone(2.5, 300 + 50 * i), FIXTURE_RATE)
    write_audio(root / "album" / "short.wav", tone(1.0), FIXTURE_RATE)
    (root / "album" / "notes.txt").write_text("not audio")
    (root / "album" / "cover.jpg").write_bytes(b"\xff\xd8")
    return root


def test_folder_source_recurses_and_splits_by_path_hash(music_folder):
    source = AudioFolderSource(music_folder, stems=MixtureAsOther(), sample_rate=FIXTURE_RATE,
                               min_seconds=MIN_SECONDS, val_fraction=0.3, test_fraction=0.3)
    ids = [t.track_id for t in source.tracks()]
    assert ids == sorted(["a.wav", "album/b.flac", "album/disc 2/c.mp3", "x/y/z/d.WAV", "e.ogg", "f.flac", "g.wav"])
    assert source.skipped.counts == {"short": 1}
    for t in source.tracks():
        assert t.split == hash_split(t.track_id, 0.3, 0.3)
        assert t.audio_path == music_folder / t.track_id
    again = AudioFolderSource(music_folder, stems=MixtureAsOther(), sample_rate=FIXTURE_RATE,
                              min_seconds=MIN_SECONDS, val_fraction=0.3, test_fraction=0.3)
    assert [(t.track_id, t.split) for t in again.tracks()] == [(t.track_id, t.split) for t in source.tracks()]
    assert len({t.split for t in source.tracks()}) > 1  # 7 files, 30/30/40 shares: not all in one split
    out = source.read_stems(source.tracks()[0], 0.5, 1.0)
    assert np.abs(out[OTHER]).max() == pytest.approx(0.3, abs=0.01)


def test_hash_split_shares_follow_the_fractions():
    splits = [hash_split(f"song_{i}.mp3", 0.1, 0.2) for i in range(5000)]
    assert splits.count("val") / 5000 == pytest.approx(0.1, abs=0.02)
    assert splits.count("test") / 5000 == pytest.approx(0.2, abs=0.02)


def test_empty_folder_error_names_the_folder(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no audio here")
    with pytest.raises(DatasetError, match=f"no audio files .* found under {tmp_path}"):
        AudioFolderSource(tmp_path)


@pytest.mark.parametrize("kind", ["fma", "folder", "stems"])
def test_missing_root_error_names_the_path(tmp_path, kind):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=f"{missing} does not exist"):
        open_source(kind, missing)


@pytest.mark.parametrize("kind", ["folder", "stems"])
def test_unsupported_sample_rate_is_a_dataset_error_naming_the_root(music_folder, kind):
    with pytest.raises(DatasetError, match=rf"cannot open {music_folder}: unsupported sample_rate 1000"):
        open_source(kind, music_folder, sample_rate=1000)


def test_stems_reader_at_another_rate_is_rejected(music_folder):
    with pytest.raises(DatasetError, match="same sample_rate"):
        AudioFolderSource(music_folder, stems=MixtureAsOther(44_100), sample_rate=FIXTURE_RATE)


# ---------------------------------------------------------------- stems folders


@pytest.fixture(scope="module")
def corpus_config() -> SynthConfig:
    return SynthConfig(num_songs=4, seed=3, song_seconds=3.0, sample_rate=FIXTURE_RATE)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory, corpus_config) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), corpus_config, val_fraction=0.25, test_fraction=0.25)


def test_stems_folder_reads_back_the_written_corpus(corpus_dir, corpus_config):
    source = open_source("stems", corpus_dir, sample_rate=FIXTURE_RATE, min_seconds=MIN_SECONDS)
    assert isinstance(source, StemsFolderSource) and isinstance(source, Source)
    assert [t.track_id for t in source.tracks()] == [f"synth-000{i}" for i in range(4)]
    synth = SyntheticSource(corpus_config, val_fraction=0.25, test_fraction=0.25)
    assert [t.split for t in source.tracks()] == [t.split for t in synth.tracks()]
    for i, track in enumerate(source.tracks()):
        song = synthesize_song(i, corpus_config)
        assert track.metadata["tempo_bpm"] == song.metadata["tempo_bpm"]
        assert track.duration_seconds == pytest.approx(3.0, abs=1e-3)
        got = source.read_stems(track, 0.5, 2.0)
        want = song.stems[:, :, int(0.5 * FIXTURE_RATE) : int(2.5 * FIXTURE_RATE)]
        assert got.shape == want.shape == (4, 2, 2 * FIXTURE_RATE)
        # 16-bit FLAC: pedalboard truncates and scales by 32767 on write, 32768 on read: < 2 LSB
        np.testing.assert_allclose(got, want, rtol=0, atol=2.0 / 32768)


def test_stems_folder_skips_and_counts_an_incomplete_song(corpus_dir, tmp_path):
    root = shutil.copytree(corpus_dir, tmp_path / "copy")
    (root / "synth-0002" / "vocals.flac").unlink()
    (root / "synth-0002" / "bass.flac").unlink()
    source = StemsFolderSource(root, sample_rate=FIXTURE_RATE, min_seconds=MIN_SECONDS)
    assert [t.track_id for t in source.tracks()] == ["synth-0000", "synth-0001", "synth-0003"]
    assert source.skipped.counts == {"missing_stems": 1}
    assert "bass, vocals" in source.skipped.entries[0][2]


def test_stems_folder_with_no_complete_song_is_a_layout_error(tmp_path):
    for song in ("one", "two"):
        write_audio(tmp_path / song / "mixture.wav", tone(2.5), FIXTURE_RATE)
        write_audio(tmp_path / song / "vocals.wav", tone(2.5), FIXTURE_RATE)
    with pytest.raises(DatasetError) as info:
        StemsFolderSource(tmp_path, sample_rate=FIXTURE_RATE, min_seconds=MIN_SECONDS)
    message = str(info.value)
    assert f"wrong stem layout under {tmp_path}" in message
    assert f"{tmp_path / 'one'} lacks drums, bass, other" in message


def test_folder_of_mixtures_given_as_stems_is_a_layout_error(music_folder):
    with pytest.raises(DatasetError, match=f"no stem files found under {music_folder}.*'folder' source"):
        StemsFolderSource(music_folder)


def test_stems_folder_takes_the_split_from_musdb_style_folders(tmp_path):
    for split, song in [("train", "A"), ("test", "B"), ("train", "C")]:
        for stem in STEMS:
            write_audio(tmp_path / split / song / f"{stem}.wav", tone(2.5, 100 + STEMS.index(stem) * 100), FIXTURE_RATE)
    source = StemsFolderSource(tmp_path, sample_rate=FIXTURE_RATE, min_seconds=MIN_SECONDS)
    assert {t.track_id: t.split for t in source.tracks()} == {"test/B": "test", "train/A": "train", "train/C": "train"}
    out = source.read_stems(source.tracks()[0], 0.0, 1.0)
    peak_hz = [np.argmax(np.abs(np.fft.rfft(stem[0]))) for stem in out]  # 1 Hz bins over 1 s
    assert peak_hz == [100, 200, 300, 400]  # stems come back in STEMS order


# ---------------------------------------------------------------- factory


def test_open_source_builds_the_synthetic_corpus_from_config_options():
    source = open_source("synth", sample_rate=FIXTURE_RATE, num_songs=5, song_seconds=2.0, seed=9, val_fraction=0.2)
    assert isinstance(source, SyntheticSource) and isinstance(source, Source)
    assert source.config == SynthConfig(num_songs=5, seed=9, song_seconds=2.0, sample_rate=FIXTURE_RATE)
    assert len(source.tracks()) == 5


def test_open_source_rejects_unknown_kinds_and_a_root_for_synth(tmp_path):
    with pytest.raises(ValueError, match="unknown source kind 'musdb'"):
        open_source("musdb", tmp_path)
    with pytest.raises(DatasetError, match="kind='stems'"):
        open_source("synth", tmp_path)
    with pytest.raises(DatasetError, match="unsupported sample_rate"):
        open_source("synth", sample_rate=4000)

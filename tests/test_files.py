"""mixrep.files and mixrep.devices: atomic writes and their file mode, hashing, the stem-file rule."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from mixrep.audio.io import write_audio
from mixrep.console.console import MixingConsole
from mixrep.constants import STEMS
from mixrep.corpora.synthetic import SynthConfig, write_corpus
from mixrep.audio.multitrack_files import hash_split
from mixrep.datasets.sources import StemsFolderSource
from mixrep.devices import default_device, resolve_device
from mixrep.errors import DatasetError
from mixrep.files import (
    atomic_write,
    atomic_write_text,
    digest,
    file_chunks,
    find_stem_files,
    hash64,
    pick_stem_files,
    require_stem_files,
)
from mixrep.retrieval.faiss_index import StyleIndex
from mixrep.separation.cache import StemCache


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "sub" / "manifest.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["manifest.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "data.bin"
    atomic_write_text(target, "complete")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_text() == "complete" and [p.name for p in tmp_path.iterdir()] == ["data.bin"]


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_every_written_file_gets_the_mode_open_would_give_it(tmp_path, umask, mask):
    umask(mask)
    expected = 0o666 & ~mask
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what a normal open() does, like SQLite creating metadata.sqlite
    assert mode(plain) == expected
    written = [atomic_write_text(tmp_path / "a.json", "{}"),
               write_audio(tmp_path / "a.wav", np.zeros((2, 100), np.float32), 8000)]
    cache = StemCache(tmp_path / "cache")
    written.append(cache.put(plain, "sep", 8000, np.zeros((4, 2, 10), np.float32)))
    written.append(written[-1].with_suffix(".json"))
    corpus = write_corpus(tmp_path / "corpus", SynthConfig(num_songs=1, song_seconds=1.0, sample_rate=8000))
    written += [corpus / "metadata.json", next(corpus.rglob("drums.flac"))]
    index = StyleIndex.build(range(4), [np.eye(4, dtype=np.float32)[i:i + 1] for i in range(4)], 4, "h")
    written += [index.save(tmp_path / "index") / "manifest.json", tmp_path / "index" / "vectors-000001.faiss"]
    written.append(MixingConsole.from_tracks(["drums"], chain="g", sample_rate=8000).save_json(tmp_path / "graph.json"))
    assert {str(p.relative_to(tmp_path)): mode(p) for p in written} == {
        str(p.relative_to(tmp_path)): expected for p in written}


def test_hashes_keep_their_previous_values():
    # Splits, shards, cache keys and checkpoint hashes stored on disk must not move.
    key = "rock/song 7.flac"
    assert hash64(key) == int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big")
    assert hash_split(key, 0.1, 0.1) == hash_split(key, 0.1, 0.1)
    assert digest(["a", b"b"], "sha256") == hashlib.sha256(b"ab").hexdigest()
    assert digest("abc", "sha1", digits=12) == hashlib.sha1(b"abc").hexdigest()[:12]


def test_file_chunks_hash_the_concatenated_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 3000)
    b.write_bytes(b"y" * 5)
    assert digest(file_chunks([a, b], chunk_bytes=1024), "sha1") == hashlib.sha1(b"x" * 3000 + b"y" * 5).hexdigest()


def test_the_stem_rule_ignores_case_prefers_lossless_and_ignores_other_files():
    names = ["vocals.mp3", "Vocals.WAV", "drums.flac", "drums.wav", "bass.ogg", "other.m4a", "other.aiff",
             "mixture.wav", ".drums.wav", "._bass.wav", "bass.txt", "notes.json"]
    assert pick_stem_files(names) == {"drums": "drums.wav", "bass": "bass.ogg", "other": "other.aiff",
                                      "vocals": "Vocals.WAV"}
    # Same extension in two cases (case-sensitive file systems): the smaller name, whatever the order.
    assert pick_stem_files(["drums.wav", "Drums.wav"]) == pick_stem_files(["Drums.wav", "drums.wav"]) == {
        "drums": "Drums.wav"}


def _song(folder: Path, files: list[str], seconds: float = 1.0) -> Path:
    folder.mkdir(parents=True)
    for name in files:
        write_audio(folder / name, np.zeros((2, int(seconds * 8000)), np.float32), 8000)
    return folder


def test_api_and_the_stems_source_pick_the_same_files(tmp_path):
    song = _song(tmp_path / "lib" / "song", ["drums.mp3", "drums.wav", "Bass.flac", "other.ogg", "other.wav",
                                              "vocals.mp3", "mixture.wav"], seconds=2.0)
    chosen = require_stem_files(song)
    assert [p.name for p in chosen] == ["drums.wav", "Bass.flac", "other.wav", "vocals.mp3"]
    assert find_stem_files(song) == dict(zip(STEMS, chosen))
    source = StemsFolderSource(tmp_path / "lib", sample_rate=8000, min_seconds=1.0)
    (track,) = source.tracks()
    assert track.stem_paths == chosen


def test_missing_stems_and_non_folders_are_clear_errors(tmp_path):
    song = _song(tmp_path / "song", ["drums.wav", "bass.wav"])
    with pytest.raises(DatasetError, match=r"song has no other, vocals file"):
        require_stem_files(song)
    with pytest.raises(DatasetError, match="drums.wav is a file, not a folder"):
        require_stem_files(tmp_path / "song" / "drums.wav")
    with pytest.raises(DatasetError, match="nowhere does not exist"):
        require_stem_files(tmp_path / "nowhere")


def test_device_rule():
    assert resolve_device(None) == resolve_device("auto") == default_device()
    assert resolve_device("cpu") == torch.device("cpu")
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")


def test_save_figure_writes_atomically_and_closes_the_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixrep.files import save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "plots" / "line.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    fig, _ = plt.subplots()

    def fail_midway(target, **options):  # a writer that dies after writing part of the file
        Path(target).write_bytes(b"\x89PNG partial")
        raise OSError("disk full")

    fig.savefig = fail_midway
    with pytest.raises(OSError, match="disk full"):
        save_figure(fig, tmp_path / "plots" / "bad.png", dpi=50)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["line.png"]
    assert not plt.fignum_exists(fig.number)

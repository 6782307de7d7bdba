"""Library builds: resume after a kill, skips, shards + merge, search through the store, CLI."""

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from handcrafted import STYLES, BandStereoEmbedder, FailingEmbedder, render_track

from mixrep.audio.io import write_audio
from mixrep.cli import index as cli
from mixrep.errors import CheckpointError
from mixrep.retrieval.builder import build_library_index, merge_indexes
from mixrep.retrieval.faiss_index import IndexConfig, StyleIndex
from mixrep.retrieval.library_index import LibraryIndex
from mixrep.retrieval.store import STORE_NAME, MetadataStore

HERE = Path(__file__).parent


def contents(index_dir: Path) -> dict[str, np.ndarray]:
    """path -> stored clip embeddings, after checking the FAISS index holds exactly the store's tracks."""
    with LibraryIndex.open(index_dir) as index:
        assert index.style_index.track_ids().tolist() == index.store.track_ids().tolist()
        return {r.path: r.embeddings for r in index.store.iter_records()}


def assert_same_library(a: Path, b: Path) -> None:
    ca, cb = contents(a), contents(b)
    assert sorted(ca) == sorted(cb)
    for path in ca:
        np.testing.assert_array_equal(ca[path], cb[path])


@pytest.fixture(scope="module")
def reference(library, embedder, tmp_path_factory) -> Path:
    """An uninterrupted build of the test library."""
    out = tmp_path_factory.mktemp("reference")
    report = build_library_index(embedder, library[0], out, progress=False)
    assert report.embedded == len(library[1]) and len(report.skipped) == 2
    return out


def test_corrupt_files_skipped_listed_and_counted(reference, library):
    with LibraryIndex.open(reference) as index:
        info = index.info()
    assert info["tracks"] == 30 and info["clips"] == 60 and info["skipped"] == 2
    assert info["skipped_by_kind"] == {"corrupt": 2}
    assert sorted(Path(s["path"]).name for s in info["skipped_files"]) == ["broken0.wav", "broken1.wav"]
    # A second run has nothing to do: neither tracks nor known-bad files are redone.
    report = build_library_index(BandStereoEmbedder(), library[0], reference, progress=False)
    assert (report.embedded, len(report.skipped), report.already_indexed) == (0, 0, 32)


def test_resume_after_failure_equals_uninterrupted_build(library, reference, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        build_library_index(FailingEmbedder(fail_after=13), library[0], tmp_path, batch_tracks=4,
                            save_every_seconds=0.0, progress=False)
    with MetadataStore(tmp_path / STORE_NAME, readonly=True) as store:
        partial = store.counts()["tracks"]
    assert 0 < partial < 30  # some batches committed, the batch in flight lost
    report = build_library_index(BandStereoEmbedder(), library[0], tmp_path, progress=False)
    assert report.embedded == 30 - partial
    assert_same_library(tmp_path, reference)


def test_sigkilled_build_resumes_to_the_same_set(library, reference, tmp_path):
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r})\n"
        "from handcrafted import BandStereoEmbedder\n"
        "from mixrep.retrieval.builder import build_library_index\n"
        f"build_library_index(BandStereoEmbedder(delay_seconds=0.05), {str(library[0])!r}, {str(tmp_path)!r},"
        " batch_tracks=3, save_every_seconds=0.0, progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 60
        committed = 0
        while committed < 9 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if (tmp_path / STORE_NAME).exists():
                try:
                    with sqlite3.connect(tmp_path / STORE_NAME, timeout=5) as db:
                        committed = db.execute("SELECT COUNT(*) FROM tracks").fetchone()[0]
                except sqlite3.OperationalError:
                    pass
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    with MetadataStore(tmp_path / STORE_NAME, readonly=True) as store:
        assert 9 <= store.counts()["tracks"] < 30
    build_library_index(BandStereoEmbedder(), library[0], tmp_path, progress=False)
    assert_same_library(tmp_path, reference)


def test_shards_merged_equal_single_build(library, reference, tmp_path):
    shards = [tmp_path / f"shard{i}" for i in range(3)]
    sizes = [build_library_index(BandStereoEmbedder(), library[0], s, shard=(i, 3), progress=False).library_items
             for i, s in enumerate(shards)]
    assert sum(sizes) == 32 and min(sizes) > 0
    result = merge_indexes(shards, tmp_path / "merged")
    assert result == {"copied": 30, "duplicates": 0, "tracks": 30}
    assert_same_library(tmp_path / "merged", reference)
    with LibraryIndex.open(tmp_path / "merged") as merged:
        assert merged.info()["skipped"] == 2
    assert merge_indexes(shards, tmp_path / "merged")["duplicates"] == 30  # idempotent


def test_other_encoder_refused_for_build_and_search(library, reference):
    other = BandStereoEmbedder(salt="retrained")
    with pytest.raises(CheckpointError, match=f"{other.model_hash}.*embedding size 17"):
        build_library_index(other, library[0], reference, progress=False)
    with LibraryIndex.open(reference) as index:
        with pytest.raises(CheckpointError) as err:
            index.search_files(other, [library[1][0]])
        assert index.store.model_hash in str(err.value) and other.model_hash in str(err.value)


def test_query_never_returns_itself_even_as_a_copy(library, reference, embedder, tmp_path):
    query = library[1][4]
    copy = tmp_path / "copy.wav"
    copy.write_bytes(query.read_bytes())
    with LibraryIndex.open(reference) as index:
        for q in (query, copy):
            hits = index.search_files(embedder, [q], k=29)[0].hits
            assert len(hits) == 29 and str(query) not in [h.path for h in hits]
        own_id = index.store.find(str(query))[0]
        assert own_id not in [h.track_id for h in index.search_ids([own_id], k=29)[0].hits]


def test_same_style_ranks_above_same_song_in_other_style(embedder, tmp_path):
    """(a) with the handcrafted embedder: song B mixed like query A beats song B mixed otherwise."""
    style_a, style_b = STYLES[0], STYLES[3]
    lib = tmp_path / "lib"
    for song in range(10, 16):
        for name, style in (("a", style_a), ("b", style_b)):
            write_audio(lib / f"song{song}_{name}.wav", render_track(song, style), 16_000)
    write_audio(tmp_path / "query.wav", render_track(99, style_a), 16_000)
    build_library_index(embedder, lib, tmp_path / "idx", progress=False)
    with LibraryIndex.open(tmp_path / "idx") as index:
        ranked = [Path(h.path).stem for h in index.search_files(embedder, [tmp_path / "query.wav"], k=12)[0].hits]
    for song in range(10, 16):
        assert ranked.index(f"song{song}_a") < ranked.index(f"song{song}_b"), ranked


def test_changed_file_is_reembedded_and_removed_file_removed(library, embedder, tmp_path):
    lib = tmp_path / "lib"
    for i in range(4):
        write_audio(lib / f"t{i}.wav", render_track(i, STYLES[i]), 16_000)
    build_library_index(embedder, lib, tmp_path / "idx", progress=False)
    write_audio(lib / "t0.wav", render_track(0, STYLES[4]), 16_000)
    os.utime(lib / "t0.wav", ns=(1, 1))
    report = build_library_index(embedder, lib, tmp_path / "idx", progress=False)
    assert (report.embedded, report.tracks_in_index) == (1, 4)
    with LibraryIndex.open(tmp_path / "idx", readonly=False) as index:
        new = index.store.find(str((lib / "t0.wav").resolve()))
        assert len(new) == 1 and new[0] == 5  # ids never reused
        np.testing.assert_allclose(index.store.get_tracks(new, True)[5].embeddings,
                                   embedder.embed_file_clips(lib / "t0.wav")[0], atol=1e-6)
        assert index.remove(new) == new
    with LibraryIndex.open(tmp_path / "idx") as index:
        assert len(index.style_index) == 3 and 5 not in index.style_index


def test_index_reconciled_when_store_moved_on_after_last_save(library, reference, tmp_path):
    """A kill between a SQLite commit and the FAISS save: the index is rebuilt from the store."""
    import shutil

    copy = tmp_path / "idx"
    shutil.copytree(reference, copy)
    stale = StyleIndex.load(copy)
    with MetadataStore(copy / STORE_NAME) as store:
        store.remove(store.track_ids()[:5].tolist())
        records = [r for r in store.iter_records()][:1]
        records[0].path += ".copy"
        store.commit(records)  # one track committed but never saved to FAISS
    assert len(StyleIndex.load(copy)) == len(stale) == 30
    with LibraryIndex.open(copy) as index:
        assert index.style_index.track_ids().tolist() == index.store.track_ids().tolist()
        assert len(index.style_index) == 26


def test_two_processes_search_at_once(reference, library):
    code = (
        "import json, sys\n"
        "from mixrep.retrieval.library_index import LibraryIndex\n"
        f"with LibraryIndex.open({str(reference)!r}) as index:\n"
        "    out = [[h.track_id for h in r.hits] for _ in range(20) for r in index.search_ids([1, 2, 3], k=5)]\n"
        "print(json.dumps(out[-3:]))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    with LibraryIndex.open(reference) as index:
        expected = [[h.track_id for h in r.hits] for r in index.search_ids([1, 2, 3], k=5)]
    assert [json.loads(o) for o in outputs] == [expected, expected]


def run_cli(argv):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_build_search_info_remove(library, embedder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "load_embedder", lambda checkpoint: embedder)
    idx = str(tmp_path / "idx")
    assert run_cli(["index", "build", "--checkpoint", "x.ckpt", "--library", str(library[0]), "--index", idx,
                    "--index-type", "ivf", "--mode", "clip", "--nlist", "8", "--nprobe", "4"]) == 0
    out = capsys.readouterr().out
    assert "30 embedded" in out and "2 skipped" in out and "broken0.wav" in out
    query = library[1][0]
    assert run_cli(["search", "--index", idx, "--checkpoint", "x.ckpt", "--query", str(query), "-k", "3",
                    "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [len(r["results"]) for r in results] == [3] and str(query) not in [h["path"] for h in results[0]["results"]]
    assert [h["rank"] for h in results[0]["results"]] == [1, 2, 3]
    assert run_cli(["search", "--index", idx, "--query-id", "1", "-k", "2"]) == 0
    table = capsys.readouterr().out
    assert "rank" in table and len(table.strip().splitlines()) == 4
    assert run_cli(["index", "info", "--index", idx, "--check-recall", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["index_type"], info["mode"], info["nlist"], info["nprobe"], info["tracks"]) == ("ivf", "clip", 8, 4, 30)
    assert 0.0 <= info["recall_at_k"] <= 1.0 and info["size_on_disk_bytes"] > 0
    assert run_cli(["index", "remove", "--index", idx, str(query), "2"]) == 0
    with LibraryIndex.open(idx) as index:
        assert len(index.style_index) == 28 and not index.store.find(str(query))
        assert index.style_index.config == IndexConfig(index_type="ivf", mode="clip", nlist=8, nprobe=4)


def test_id_query_skips_byte_identical_copies_and_changed_broken_files_drop_out(embedder, tmp_path):
    lib = tmp_path / "lib"
    for i in range(4):
        write_audio(lib / f"t{i}.wav", render_track(i, STYLES[i]), 16_000)
    (lib / "t0_copy.wav").write_bytes((lib / "t0.wav").read_bytes())
    build_library_index(embedder, lib, tmp_path / "idx", progress=False)
    with LibraryIndex.open(tmp_path / "idx") as index:
        own = index.store.find(str((lib / "t0.wav").resolve()))[0]
        ranked = [Path(h.path).name for h in index.search_ids([own], k=4)[0].hits]
    assert "t0.wav" not in ranked and "t0_copy.wav" not in ranked and len(ranked) == 3
    # t1 changes and can no longer be decoded: its old vectors must not stay searchable.
    (lib / "t1.wav").write_bytes(b"not audio any more")
    report = build_library_index(embedder, lib, tmp_path / "idx", progress=False)
    assert report.tracks_in_index == 4 and [Path(s.path).name for s in report.skipped] == ["t1.wav"]
    with LibraryIndex.open(tmp_path / "idx") as index:
        assert index.store.find(str((lib / "t1.wav").resolve())) == []

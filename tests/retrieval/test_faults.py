"""Index builds over bad libraries, damaged index folders and setups that cannot work (issue 9)."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from handcrafted import SAMPLE_RATE, STYLES, BandStereoEmbedder, render_track

from mixrep.audio.io import write_audio
from mixrep.cli import main as mixrep_main
from mixrep.errors import DatasetError, MixrepError, SeparationError
from mixrep.cli import index as cli
from mixrep.retrieval.builder import MAX_FAILURES_BEFORE_FIRST_SUCCESS, build_library_index
from mixrep.retrieval.embedder import aggregate_clips
from mixrep.retrieval.faiss_index import CLIP_BITS, MANIFEST, StyleIndex
from mixrep.retrieval.library_index import LibraryIndex
from mixrep.retrieval.store import STORE_NAME, MetadataStore, SkippedFile, StoreError


def write_tracks(folder: Path, songs, seconds: float = 1.0) -> list[Path]:
    return [write_audio(folder / f"song{song}.wav", render_track(song, STYLES[song % len(STYLES)], seconds),
                        SAMPLE_RATE) for song in songs]


def write_bad_tracks(folder: Path) -> dict[str, Path]:
    """A too-short, a corrupt, a digitally silent and a near-silent (-80 dBFS) file."""
    rng = np.random.default_rng(0)
    bad = {
        "short": write_audio(folder / "short.wav", render_track(90, STYLES[0], 0.2), SAMPLE_RATE),
        "silent": write_audio(folder / "silent.wav", np.zeros((2, 2 * SAMPLE_RATE), np.float32), SAMPLE_RATE),
        "quiet": write_audio(folder / "quiet.wav", (1e-4 * rng.standard_normal((2, 2 * SAMPLE_RATE))).astype(np.float32),
                             SAMPLE_RATE),
        "corrupt": folder / "corrupt.wav",
    }
    bad["corrupt"].write_bytes(b"RIFF\x00\x00garbage" + os.urandom(200))
    return bad


def skip_kinds(skips) -> dict[str, str]:
    return {Path(s.path).name: s.kind for s in skips}


def run_cli(argv, monkeypatch, embedder) -> int:
    monkeypatch.setattr(cli, "load_embedder", lambda checkpoint: embedder)
    return mixrep_main(argv)


# --------------------------------------------------------------------------- items 3 and 9: skips


def test_a_library_with_a_short_a_corrupt_and_a_silent_file_builds_and_reports_all_three(
        tmp_path, embedder, monkeypatch, capsys):
    lib = tmp_path / "lib"
    write_tracks(lib, range(4))
    write_bad_tracks(lib)
    idx = str(tmp_path / "idx")
    assert run_cli(["index", "build", "--checkpoint", "x.ckpt", "--library", str(lib), "--index", idx],
                   monkeypatch, embedder) == 0
    out = capsys.readouterr().out
    assert "8 library files" in out and "4 embedded" in out and "4 skipped" in out
    for line in ("short.wav  [short] 0.20 s is shorter than the 1 s", "corrupt.wav  [corrupt]",
                 "silent.wav  [silent]", "quiet.wav  [silent]"):
        assert line in out, out
    assert run_cli(["index", "info", "--index", idx, "--json"], monkeypatch, embedder) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["tracks"], info["skipped"]) == (4, 4)
    assert info["skipped_by_kind"] == {"short": 1, "corrupt": 1, "silent": 2}
    # Nothing is redone for unchanged bad files.
    report = build_library_index(embedder, lib, idx, progress=False)
    assert (report.embedded, report.skipped, report.retried, report.already_indexed) == (0, [], 0, 8)


def test_silent_tracks_are_indexed_only_when_asked_and_silent_queries_are_flagged(tmp_path, embedder, caplog):
    lib = tmp_path / "lib"
    write_tracks(lib, range(4))
    bad = write_bad_tracks(lib)
    build_library_index(embedder, lib, tmp_path / "idx", progress=False)
    with caplog.at_level(logging.WARNING):
        report = build_library_index(embedder, lib, tmp_path / "idx", progress=False, include_silent=True)
    assert report.retried == 2 and report.embedded == 2 and report.tracks_in_index == 6
    assert "silent.wav is silent" in caplog.text and "indexed anyway" in caplog.text
    caplog.clear()
    with LibraryIndex.open(tmp_path / "idx") as index, caplog.at_level(logging.WARNING):
        loud, quiet = index.search_files(embedder, [lib / "song0.wav", bad["quiet"]], k=3)
    assert not loud.silent and quiet.silent and len(quiet.hits) == 3
    assert f"{bad['quiet']} is silent" in caplog.text


class FlakyEmbedder(BandStereoEmbedder):
    """Fails on the files named in ``failing`` with ``error`` (a per-file failure of any type)."""

    def __init__(self, failing: set[str], error: Exception) -> None:
        super().__init__()
        self.failing, self.error = failing, error

    def embed_file_clips(self, path):
        if Path(path).name in self.failing:
            raise self.error
        return super().embed_file_clips(path)


def test_any_per_file_failure_is_a_skip_and_failures_not_about_the_file_are_retried(tmp_path, embedder):
    lib = tmp_path / "lib"
    write_tracks(lib, range(5))
    flaky = FlakyEmbedder({"song1.wav"}, ValueError("clip too short for the encoder (3 frames < 4)"))
    separating = FlakyEmbedder({"song2.wav"}, SeparationError("Demucs ran out of memory on this file"))
    report = build_library_index(flaky, lib, tmp_path / "idx", progress=False)
    assert report.embedded == 4 and skip_kinds(report.skipped) == {"song1.wav": "failed"}
    assert "ValueError: clip too short" in report.skipped[0].reason
    report = build_library_index(separating, lib, tmp_path / "idx", progress=False)
    assert report.retried == 1 and report.embedded == 1  # song1 retried (unchanged) and embedded
    assert skip_kinds(report.skipped) == {}
    # song2 is indexed already; in a new index it fails to separate, then succeeds on the next build.
    report = build_library_index(separating, lib, tmp_path / "idx2", progress=False)
    assert skip_kinds(report.skipped) == {"song2.wav": "separation"}
    report = build_library_index(embedder, lib, tmp_path / "idx2", progress=False)
    assert (report.retried, report.embedded, report.tracks_in_index) == (1, 1, 5)


def test_a_build_whose_first_files_all_fail_stops_as_a_setup_error(tmp_path):
    lib = tmp_path / "lib"
    write_tracks(lib, range(MAX_FAILURES_BEFORE_FIRST_SUCCESS + 2))
    broken = FlakyEmbedder({p.name for p in lib.iterdir()}, RuntimeError("CUDA error: no kernel image"))
    with pytest.raises(MixrepError, match=r"first 20 files .* all failed to embed.*CUDA error.*not of the files"):
        build_library_index(broken, lib, tmp_path / "idx", progress=False, batch_tracks=8)
    # The failures committed before the stop are retried once the setup works.
    report = build_library_index(BandStereoEmbedder(), lib, tmp_path / "idx", progress=False)
    assert report.retried == 16 and report.embedded == MAX_FAILURES_BEFORE_FIRST_SUCCESS + 2


def test_retry_skipped_retries_files_recorded_by_older_builds_as_corrupt(tmp_path, embedder, capsys, monkeypatch):
    """Older mixrep recorded every file as corrupt when Demucs could not load: --retry-skipped heals that."""
    lib = tmp_path / "lib"
    files = write_tracks(lib, range(3))
    build_library_index(embedder, lib, tmp_path / "idx", progress=False)
    with MetadataStore(tmp_path / "idx" / STORE_NAME) as store:  # what the old build left behind
        store.remove(store.track_ids().tolist())
        stats = [os.stat(f) for f in files]
        store.commit(skipped=[SkippedFile(str(f.resolve()), "corrupt", "cannot load the pretrained Demucs model",
                                          s.st_size, s.st_mtime_ns) for f, s in zip(files, stats)])
    assert build_library_index(embedder, lib, tmp_path / "idx", progress=False).embedded == 0
    assert run_cli(["index", "build", "--checkpoint", "x", "--library", str(lib), "--index", str(tmp_path / "idx"),
                    "--retry-skipped"], monkeypatch, embedder) == 0
    assert "3 skipped before and retried, 3 embedded" in capsys.readouterr().out


def test_an_empty_library_folder_is_an_error(tmp_path, embedder, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    with pytest.raises(DatasetError, match=r"library folder .*empty holds no audio files"):
        build_library_index(embedder, tmp_path / "empty", tmp_path / "idx", progress=False)
    assert run_cli(["index", "build", "--checkpoint", "x", "--library", str(tmp_path / "empty"),
                    "--index", str(tmp_path / "idx")], monkeypatch, embedder) == 2
    assert "holds no audio files" in capsys.readouterr().err
    assert not (tmp_path / "idx" / STORE_NAME).exists()


# --------------------------------------------------------------------------- item 4: the separator


@pytest.fixture
def mixtures(tmp_path) -> Path:
    lib = tmp_path / "mixes"
    for k in range(2):
        noise = 0.1 * np.random.default_rng(k).standard_normal((2, int(1.6 * 44_100)))
        write_audio(lib / f"mix{k}.wav", noise.astype(np.float32), 44_100)
    return lib


def test_a_separator_that_cannot_load_stops_the_build_before_the_first_file(
        tiny_checkpoint, mixtures, tmp_path, monkeypatch, capsys):
    from tests.separation.conftest import offline_demucs, tiny_htdemucs

    from mixrep.inference.style_encoder import StyleEncoder
    from mixrep.separation.demucs import DemucsSeparator

    calls = offline_demucs(monkeypatch, tmp_path / "hub")
    encoder = StyleEncoder.from_checkpoint(tiny_checkpoint, device="cpu",
                                           separator=DemucsSeparator("htdemucs", device="cpu"))
    idx = tmp_path / "idx"
    with pytest.raises(SeparationError, match=r"cannot load the pretrained Demucs model 'htdemucs'"):
        build_library_index(encoder, mixtures, idx, progress=False)
    assert run_cli(["index", "build", "--checkpoint", "x", "--library", str(mixtures), "--index", str(idx)],
                   monkeypatch, encoder) == 2
    err = capsys.readouterr().err
    assert "--weights PATH" in err and "mixrep index build --source stems" in err
    assert calls == ["htdemucs", "htdemucs"]  # once per build, not once per file
    with MetadataStore(idx / STORE_NAME, readonly=True) as store:
        assert store.counts()["skipped"] == 0 and store.counts()["tracks"] == 0
    # Once the weights are there, every file is embedded: none was blacklisted.
    offline_demucs(monkeypatch, tmp_path / "hub", model=tiny_htdemucs(samplerate=44_100))
    report = build_library_index(encoder, mixtures, idx, progress=False)
    assert (report.embedded, report.skipped, report.tracks_in_index) == (2, [], 2)


# --------------------------------------------------------------------------- item 5: stems libraries


def write_stems(folder: Path, seconds: float, seed: int, level: float = 0.1, missing: str | None = None) -> Path:
    rng = np.random.default_rng(seed)
    for k, stem in enumerate(("drums", "bass", "other", "vocals")):
        if stem != missing:
            audio = level * rng.standard_normal((2, int(seconds * 22_050))) * (k + 1) / 4
            write_audio(folder / f"{stem}.wav", audio.astype(np.float32), 22_050)
    return folder


@pytest.fixture
def stems_library(tmp_path) -> Path:
    root = tmp_path / "stems"
    write_stems(root / "a", 3.0, 0)
    write_stems(root / "b", 2.0, 1)  # under the 8 s training minimum, embeddable
    write_stems(root / "short", 0.5, 2)
    write_stems(root / "silent", 2.0, 3, level=0.0)
    write_stems(root / "missing", 2.0, 4, missing="vocals")
    write_stems(root / "broken", 2.0, 5)
    for stem in ("drums", "bass"):
        (root / "broken" / f"{stem}.wav").write_bytes(b"not audio" * 50)
    return root


def test_a_stems_library_uses_the_embedding_minimum_and_reports_songs(
        tiny_checkpoint, stems_library, tmp_path, monkeypatch, capsys):
    from mixrep.inference.style_encoder import StyleEncoder

    encoder = StyleEncoder.from_checkpoint(tiny_checkpoint, device="cpu")
    idx = str(tmp_path / "idx")
    assert run_cli(["index", "build", "--checkpoint", "x", "--library", str(stems_library), "--source", "stems",
                    "--index", idx], monkeypatch, encoder) == 0
    out = capsys.readouterr().out
    assert "4 library songs (2 more dropped while listing)" in out and "2 embedded" in out and "4 skipped" in out
    assert f"{stems_library / 'broken'}  [corrupt, while listing] drums.wav: cannot open" in out
    assert f"{stems_library / 'missing'}  [missing_stems, while listing]" in out
    assert f"{stems_library / 'short'}  [short]" in out and f"{stems_library / 'silent'}  [silent]" in out
    assert run_cli(["index", "info", "--index", idx, "--json"], monkeypatch, encoder) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["tracks"], info["skipped"]) == (2, 4)
    assert info["skipped_by_kind"] == {"short": 1, "silent": 1, "missing_stems": 1, "corrupt": 1}
    # What the build accepted, search --stems accepts.
    assert run_cli(["search", "--index", idx, "--checkpoint", "x", "--stems", "--query", str(stems_library / "b"),
                    "--json"], monkeypatch, encoder) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert [Path(h["path"]).name for h in result["results"]] == ["a"] and result["error"] is None


# --------------------------------------------------------------------------- item 6: a recreated store


def track_vectors(index_dir: Path) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """``track id -> FAISS vector`` and ``track id -> aggregate of the stored clips``."""
    with LibraryIndex.open(index_dir) as index:
        ids, vectors = index.style_index.export()
        stored = {r.track_id: aggregate_clips(r.embeddings) for r in index.store.iter_records()}
    return dict(zip((ids >> CLIP_BITS).tolist(), vectors)), stored


def test_a_recreated_store_is_not_paired_with_stale_vectors(tmp_path, embedder, caplog):
    write_tracks(tmp_path / "a", range(4))
    library_b = write_tracks(tmp_path / "b", range(10, 14))
    idx, reference = tmp_path / "idx", tmp_path / "reference"
    build_library_index(embedder, tmp_path / "a", idx, progress=False)
    for name in (STORE_NAME, STORE_NAME + "-wal", STORE_NAME + "-shm"):
        (idx / name).unlink(missing_ok=True)
    assert (idx / MANIFEST).exists()
    with caplog.at_level(logging.WARNING):
        build_library_index(embedder, tmp_path / "b", idx, progress=False)
    build_library_index(embedder, tmp_path / "b", reference, progress=False)
    faiss_vectors, stored = track_vectors(idx)
    assert sorted(faiss_vectors) == sorted(stored) == [1, 2, 3, 4]
    for track_id, vector in faiss_vectors.items():
        np.testing.assert_allclose(vector, stored[track_id], atol=1e-6)
    with LibraryIndex.open(idx) as index, LibraryIndex.open(reference) as ref:
        got = index.search_files(embedder, library_b, k=3)
        want = ref.search_files(embedder, library_b, k=3)
    assert [[(h.path, round(h.score, 5)) for h in r.hits] for r in got] == \
           [[(h.path, round(h.score, 5)) for h in r.hits] for r in want]
    assert "derived from another metadata store" in caplog.text


# --------------------------------------------------------------------------- item 7: damaged index folders


@pytest.fixture
def built(tmp_path, embedder) -> Path:
    write_tracks(tmp_path / "lib", range(6))
    build_library_index(embedder, tmp_path / "lib", tmp_path / "idx", progress=False)
    return tmp_path / "idx"


def damage_store(path: Path, how: str) -> str:
    """Damage the SQLite file like a disk or a careless copy would; returns SQLite's complaint."""
    if how == "garbage":
        path.write_bytes(os.urandom(path.stat().st_size))
        return "file is not a database"
    if how == "no_meta":
        path.unlink()
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE tracks (id INTEGER)")
        return "no such table: meta"
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for start in range(page, len(data), page):  # every b-tree page but the first: the schema survives
        data[start:start + 100] = os.urandom(100)
    path.write_bytes(bytes(data))
    return "database disk image is malformed"


@pytest.mark.parametrize("how", ["garbage", "no_meta", "malformed"])
def test_a_damaged_store_gives_a_clear_error(built, how, embedder, monkeypatch, capsys):
    store = built / STORE_NAME
    complaint = damage_store(store, how)
    with pytest.raises(StoreError, match=complaint):
        LibraryIndex.open(built)
    for argv in (["index", "info", "--index", str(built)], ["search", "--index", str(built), "--query-id", "1"],
                 ["index", "build", "--checkpoint", "x", "--library", str(built.parent / "lib"), "--index", str(built)]):
        assert run_cli(argv, monkeypatch, embedder) == 2, argv
        err = capsys.readouterr().err
        assert f"the index store {store} is damaged" in err and complaint in err, err
        assert "restore metadata.sqlite from a backup" in err and "mixrep index build" in err
        assert "Traceback" not in err


@pytest.mark.parametrize("how", ["manifest_garbage", "manifest_incomplete", "vectors_truncated", "vectors_missing"])
def test_a_damaged_manifest_or_vectors_file_is_rederived_by_build(built, how, embedder, caplog):
    with LibraryIndex.open(built) as index:
        before = [[h.path for h in r.hits] for r in index.search_ids([1, 2, 3], k=4)]
    vectors = next(built.glob("vectors-*.faiss"))
    if how == "manifest_garbage":
        (built / MANIFEST).write_bytes(b"{\x00 not json")
    elif how == "manifest_incomplete":
        (built / MANIFEST).write_text(json.dumps({"format_version": 1}))
    elif how == "vectors_truncated":
        vectors.write_bytes(vectors.read_bytes()[:40])
    else:
        vectors.unlink()
    with caplog.at_level(logging.WARNING), LibraryIndex.open(built) as index:  # a reader: rebuilt in memory
        assert [[h.path for h in r.hits] for r in index.search_ids([1, 2, 3], k=4)] == before
    assert "is damaged" in caplog.text and "rebuilding it in memory" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        report = build_library_index(embedder, built.parent / "lib", built, progress=False)
    assert report.tracks_in_index == 6 and "is damaged" in caplog.text and "rebuilding it from" in caplog.text
    assert len(StyleIndex.load(built)) == 6  # saved again, loadable
    caplog.clear()
    with caplog.at_level(logging.WARNING), LibraryIndex.open(built) as index:
        assert [[h.path for h in r.hits] for r in index.search_ids([1, 2, 3], k=4)] == before
    assert caplog.text == ""


# --------------------------------------------------------------------------- issue 27 item 8: a NaN row


def test_a_non_finite_stored_embedding_is_named_left_out_and_re_embedded_by_build(
        built, embedder, monkeypatch, capsys, caplog):
    with sqlite3.connect(built / STORE_NAME) as db:  # track 2's vectors damaged in place, FAISS rebuilt
        path, blob = db.execute("SELECT path, embeddings FROM tracks WHERE id = 2").fetchone()
        damaged = np.frombuffer(blob, np.float32).copy()
        damaged[0] = np.nan
        db.execute("UPDATE tracks SET embeddings = ? WHERE id = 2", (damaged.tobytes(),))
    for vectors in built.glob("vectors-*.faiss"):
        vectors.unlink()
    with caplog.at_level(logging.WARNING):
        assert run_cli(["search", "--index", str(built), "--query-id", "1", "-k", "3"], monkeypatch, embedder) == 0
        assert run_cli(["index", "info", "--index", str(built)], monkeypatch, embedder) == 0
    assert f"left out of the search; run `mixrep index build` to re-embed them:\n  {path}" in caplog.text
    with LibraryIndex.open(built) as index:  # read-only: the store is left as it is
        assert 2 not in index.style_index and len(index.style_index) == 5 and len(index.store.track_ids()) == 6
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        report = build_library_index(embedder, built.parent / "lib", built, progress=False)
    assert f"{path}: track 2: its stored embedding is zero or not finite" in caplog.text
    assert report.retried == 1 and report.embedded == 1 and report.tracks_in_index == 6
    with MetadataStore(built / STORE_NAME, readonly=True) as store:
        assert store.skipped() == [] and store.find(path=path) != [2]  # re-embedded under a new id
        assert all(np.isfinite(e).all() for _, batch in store.iter_embeddings() for e in batch)


def test_a_writer_quarantines_an_unusable_row_as_a_retried_skip(built, caplog):
    with sqlite3.connect(built / STORE_NAME) as db:
        blob = db.execute("SELECT embeddings FROM tracks WHERE id = 3").fetchone()[0]
        db.execute("UPDATE tracks SET embeddings = ? WHERE id = 3", (bytes(len(blob)),))  # all zeros
    for vectors in built.glob("vectors-*.faiss"):
        vectors.unlink()
    with caplog.at_level(logging.WARNING), LibraryIndex.open(built, readonly=False) as index:
        assert 3 not in index.style_index and len(index.store.track_ids()) == 5
        (skip,) = index.store.skipped()
    assert skip.kind == "unusable" and "quarantined" in caplog.text

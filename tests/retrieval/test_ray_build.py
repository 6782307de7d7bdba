"""``index build --engine ray`` on a local 2-CPU Ray cluster: the same index as the single-machine build,
per-file failures as skips, a killed worker or job without lost or duplicated tracks, an unreachable cluster."""

import functools
import os
from pathlib import Path

import numpy as np
import pytest
from handcrafted import BandStereoEmbedder, CrashingEmbedder, DriverOnlyEmbedder, RaisingEmbedder
from test_faults import write_stems

from mixrep.cli import index as cli
from mixrep.datasets.registry import open_source
from mixrep.inference.style_encoder import StyleEncoder
from mixrep.errors import MixrepError
from mixrep.retrieval import ray_build
from mixrep.retrieval.builder import build_library_index
from mixrep.retrieval.library_index import LibraryIndex
from mixrep.retrieval.ray_build import MAX_WORKER_CRASHES, build_library_index_ray

ray = pytest.importorskip("ray", reason="Ray (the mixrep[ray] extra) cannot be installed for this Python")

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """A local cluster of 2 CPUs whose workers import this worktree's mixrep and the test helpers."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_build(library, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    build_library_index(BandStereoEmbedder(), library[0], out, progress=False)
    return out


def rows(index_dir: Path) -> dict[str, tuple]:
    """path -> (track id, clip embeddings bytes, offsets, sha1, duration), after checking FAISS == the store."""
    with LibraryIndex.open(index_dir) as index:
        assert index.style_index.track_ids().tolist() == index.store.track_ids().tolist()
        records = list(index.store.iter_records())
    assert len({r.path for r in records}) == len(records)  # no duplicated track
    return {r.path: (r.track_id, r.embeddings.tobytes(), r.clip_offsets_seconds.tobytes(), r.content_sha1,
                     r.duration_seconds) for r in records}


def skips(index_dir: Path) -> dict[str, str]:
    with LibraryIndex.open(index_dir) as index:
        return {Path(s["path"]).name: s["kind"] for s in index.info()["skipped_files"]}


def test_ray_build_equals_local_build_and_resumes_to_nothing(library, local_build, tmp_path):
    report = build_library_index_ray(BandStereoEmbedder, library[0], tmp_path, block_tracks=8, progress=False)
    assert (report.embedded, report.tracks_in_index, len(report.skipped)) == (30, 30, 2)
    assert rows(tmp_path) == rows(local_build)  # same ids, bit-identical vectors, same metadata
    assert skips(tmp_path) == skips(local_build) == {"broken0.wav": "corrupt", "broken1.wav": "corrupt"}
    again = build_library_index_ray(BandStereoEmbedder, library[0], tmp_path, progress=False)
    assert (again.embedded, len(again.skipped), again.already_indexed) == (0, 0, 32)


def test_trained_encoder_on_a_stems_library_same_bytes_as_a_one_thread_local_build(tiny_checkpoint, tmp_path):
    """The torch encoder in a 1-CPU actor runs on 1 thread: bit-identical to a local build on 1 thread."""
    torch = pytest.importorskip("torch")
    for seed in range(4):
        write_stems(tmp_path / "lib" / f"song{seed}", 2.0, seed, level=0.0 if seed == 3 else 0.1)
    make = functools.partial(StyleEncoder.from_checkpoint, str(tiny_checkpoint), device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        build_library_index(make(), open_source("stems", tmp_path / "lib", min_seconds=1.0), tmp_path / "local",
                            progress=False)
    finally:
        torch.set_num_threads(threads)
    report = build_library_index_ray(make, open_source("stems", tmp_path / "lib", min_seconds=1.0), tmp_path / "ray",
                                     progress=False)
    assert report.embedded == 3 and [s.kind for s in report.skipped] == ["silent"]
    assert rows(tmp_path / "ray") == rows(tmp_path / "local")


def test_separator_raising_on_one_file_is_a_recorded_skip(library, local_build, tmp_path):
    make = functools.partial(RaisingEmbedder, "track0007.wav")
    report = build_library_index_ray(make, library[0], tmp_path, block_tracks=8, progress=False)
    assert report.embedded == 29
    assert skips(tmp_path)["track0007.wav"] == "separation"
    expected = {p: row for p, row in rows(local_build).items() if not p.endswith("track0007.wav")}
    assert {p: row[1:] for p, row in rows(tmp_path).items()} == {p: row[1:] for p, row in expected.items()}


def test_worker_killed_mid_block_loses_and_duplicates_nothing(library, local_build, tmp_path):
    marker = tmp_path / "crashed"
    make = functools.partial(CrashingEmbedder, "track0010.wav", str(marker))
    report = build_library_index_ray(make, library[0], tmp_path / "idx", block_tracks=8, progress=False)
    assert marker.exists()  # the actor process did die, mid-block
    assert report.embedded == 30
    assert rows(tmp_path / "idx") == rows(local_build)
    again = build_library_index_ray(BandStereoEmbedder, library[0], tmp_path / "idx", progress=False)
    assert again.embedded == 0 and rows(tmp_path / "idx") == rows(local_build)


@pytest.mark.slow
@pytest.mark.timeout(180)  # without the crash ledger this loops: a failure, not a hang
def test_file_that_always_kills_the_worker_is_a_skip_not_a_failed_job(library, local_build, tmp_path):
    make = functools.partial(CrashingEmbedder, "track0004.wav", str(tmp_path / "crashed"), always=True)
    report = build_library_index_ray(make, library[0], tmp_path / "idx", block_tracks=8, progress=False)
    assert report.embedded == 29
    (crash,) = [s for s in report.skipped if s.path.endswith("track0004.wav")]
    assert crash.kind == "failed" and f"died {MAX_WORKER_CRASHES} times" in crash.reason
    assert set(rows(tmp_path / "idx")) == set(rows(local_build)) - {crash.path}


def test_killed_job_resumes_from_its_committed_blocks(library, local_build, tmp_path, monkeypatch):
    commits = []
    real_commit = ray_build.commit_block

    def dying_commit(*args):
        if len(commits) == 2:
            raise KeyboardInterrupt("simulated kill of the driver after 2 blocks")
        real_commit(*args)
        commits.append(len(args[1]) + len(args[2]))

    monkeypatch.setattr(ray_build, "commit_block", dying_commit)
    with pytest.raises(KeyboardInterrupt):
        build_library_index_ray(BandStereoEmbedder, library[0], tmp_path, block_tracks=8, progress=False)
    monkeypatch.undo()
    report = build_library_index_ray(BandStereoEmbedder, library[0], tmp_path, block_tracks=8, progress=False)
    assert report.already_indexed == sum(commits) == 16 and report.embedded + len(report.skipped) == 16
    assert {p: row[1:] for p, row in rows(tmp_path).items()} == {p: row[1:] for p, row in rows(local_build).items()}


@pytest.mark.timeout(120)
def test_encoder_that_cannot_be_built_on_the_workers_fails_the_job_with_one_error(library, tmp_path):
    make = functools.partial(DriverOnlyEmbedder, os.getpid())
    with pytest.raises(MixrepError, match="could not build the encoder: FileNotFoundError: no checkpoint"):
        build_library_index_ray(make, library[0], tmp_path, progress=False)


def test_unreachable_cluster_is_one_clear_error_before_any_work(library, tmp_path, capsys):
    with pytest.raises(MixrepError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1 .*nothing was built"):
        build_library_index_ray(BandStereoEmbedder, library[0], tmp_path / "idx", address="127.0.0.1:1")
    assert not (tmp_path / "idx").exists()
    with pytest.raises(MixrepError, match="has 0 GPUs now"):  # the actors would wait for a GPU forever
        build_library_index_ray(BandStereoEmbedder, library[0], tmp_path / "gpu", num_gpus_per_actor=1)
    assert not (tmp_path / "gpu").exists()
    with pytest.raises(MixrepError, match="--actors"):
        build_library_index_ray(BandStereoEmbedder, library[0], tmp_path / "idx", actors=0)
    with pytest.raises(MixrepError, match="is not HOST:PORT"):
        build_library_index_ray(BandStereoEmbedder, library[0], tmp_path / "idx", address="head:port")
    args = cli_args(library, tmp_path / "cli", "--address", "127.0.0.1:1")
    with pytest.raises(MixrepError, match="cannot reach the Ray cluster"):
        args.func(args)  # before the encoder is loaded: the default checkpoint is never read
    assert not (tmp_path / "cli").exists()


def cli_args(library, index_dir, *extra):
    import argparse

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["index", "build", "--engine", "ray", "--library", str(library[0]),
                              "--index", str(index_dir), *extra])


def test_cli_build_with_ray_engine(library, local_build, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "embedder_factory", lambda checkpoint: BandStereoEmbedder)
    args = cli_args(library, tmp_path, "--batch-tracks", "8")
    assert args.func(args) == 0
    assert "30 embedded" in capsys.readouterr().out
    assert rows(tmp_path) == rows(local_build)
    with pytest.raises(MixrepError, match="--shard"):
        bad = cli_args(library, tmp_path, "--shard", "1/2")
        bad.func(bad)

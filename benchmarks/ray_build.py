"""Tracks per second of ``index build``: the single-process builder against ``--engine ray`` on a local Ray
cluster of 2 CPUs, over the same generated library (stem folders of the synthetic corpus, so no separation), and
Ray's overhead per track. Also separation and embedding clips/s on this CPU (one process), the two stages an
embedding actor runs for a library of mixtures.

The encoder is a freshly initialised demo-size one (weights do not change the cost), built from the same seed in
the driver and in every actor. Run: ``python benchmarks/ray_build.py [--songs 200] [--song-seconds 6]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mixrep.corpora.synthetic import SynthConfig, write_corpus
from mixrep.datasets.registry import open_source
from mixrep.retrieval.builder import build_library_index
from mixrep.retrieval.ray_build import build_library_index_ray
from mixrep.retrieval.store import STORE_NAME, MetadataStore


def make_encoder():
    """The demo-size encoder, seeded (pickled by value into the Ray actors)."""
    import torch

    from mixrep.frontend import FrontEndConfig, num_features
    from mixrep.inference.style_encoder import StyleEncoder
    from mixrep.models.encoder import EncoderConfig, MixStyleEncoder

    torch.manual_seed(0)
    frontend = FrontEndConfig(sample_rate=22_050, n_mels=64, n_fft=1024, hop_length=512, clip_seconds=3.0)
    return StyleEncoder(MixStyleEncoder(EncoderConfig.demo(num_features())), frontend, model_hash="untrained-demo")


def vectors(index_dir: Path) -> dict[str, np.ndarray]:
    with MetadataStore(index_dir / STORE_NAME, readonly=True) as store:
        return {r.path: r.embeddings for r in store.iter_records()}


def stage_clips_per_second(encoder, clips: int) -> tuple[float, float]:
    """``(separation, embedding)`` clips/s of 3 s clips in one process: full-size htdemucs (random weights)
    at 44.1 kHz, then the encoder on its stems (resampled to 22.05 kHz), as ``embed_file_clips`` does."""
    from demucs.htdemucs import HTDemucs

    from mixrep.separation.demucs import DemucsSeparator

    torch.manual_seed(0)
    separator = DemucsSeparator(model=HTDemucs(sources=["drums", "bass", "other", "vocals"]).eval(), device="cpu")
    mixes = 0.1 * torch.randn(clips, 2, 3 * separator.sample_rate)
    start = time.perf_counter()
    with torch.no_grad():
        stems = separator.separate(mixes)
    separation = clips / (time.perf_counter() - start)
    encoder.embed_stems(stems[:1], separator.sample_rate)  # warm-up
    start = time.perf_counter()
    encoder.embed_stems(stems, separator.sample_rate)
    return separation, clips / (time.perf_counter() - start)


def store_tracks_per_second(tracks: int, clips: int, dim: int, block_tracks: int = 16) -> float:
    """Tracks/s the driver's single writer commits: blocks of ``block_tracks`` records of ``clips`` x ``dim``
    float32 clip vectors, one SQLite transaction each (the bound on the store's writes)."""
    from mixrep.retrieval.store import TrackRecord

    rng = np.random.default_rng(0)
    records = [TrackRecord(path=f"/library/track{i:07d}.flac", duration_seconds=180.0, size_bytes=1, mtime_ns=1,
                           content_sha1=f"{i:040x}", clip_offsets_seconds=np.arange(clips, dtype=np.float64),
                           embeddings=rng.standard_normal((clips, dim)).astype(np.float32), model_hash="bench")
               for i in range(tracks)]
    with tempfile.TemporaryDirectory() as tmp, MetadataStore(Path(tmp) / STORE_NAME) as store:
        store.bind_encoder("bench", dim)
        start = time.perf_counter()
        for i in range(0, tracks, block_tracks):
            store.commit(records[i:i + block_tracks])
        return tracks / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=200)
    parser.add_argument("--song-seconds", type=float, default=6.0)
    parser.add_argument("--stage-clips", type=int, default=2, help="clips for the separation/embedding rows")
    parser.add_argument("--store-only", action="store_true",
                        help="only the store's commit rate (8 clips x 128-d and x 768-d per track)")
    args = parser.parse_args()
    if args.store_only:
        for dim in (128, 768):
            print(f"store commits, 8 clips x {dim}-d per track, blocks of 16: "
                  f"{store_tracks_per_second(4000, 8, dim):.0f} tracks/s")
        return
    import ray

    encoder = make_encoder()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp) / "corpus", SynthConfig(num_songs=args.songs, song_seconds=args.song_seconds,
                                                                sample_rate=encoder.sample_rate))
        source = open_source("stems", corpus, sample_rate=encoder.sample_rate, min_seconds=1.0)
        encoder.embed_stems_clips(source.tracks()[0].stem_paths)  # warm-up: first-call costs out of the rows
        threads = torch.get_num_threads()
        for n in (threads, 1):  # a Ray actor of 1 CPU runs torch on 1 thread (OMP_NUM_THREADS=1)
            torch.set_num_threads(n)
            start = time.perf_counter()
            local = build_library_index(encoder, source, Path(tmp) / f"local{n}", progress=False)
            local_seconds = time.perf_counter() - start
            rows.append((f"single process ({n} torch thread{'s' if n > 1 else ''})", local.embedded, local_seconds))
        torch.set_num_threads(threads)

        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        init_seconds = time.perf_counter() - start
        try:
            start = time.perf_counter()
            remote = build_library_index_ray(make_encoder, source, Path(tmp) / "ray", progress=False)
            ray_seconds = time.perf_counter() - start
        finally:
            ray.shutdown()
        rows.append(("ray, local cluster of 2 CPUs (1 embedding actor + screening tasks)", remote.embedded,
                     ray_seconds))
        b = vectors(Path(tmp) / "ray")
        agreement = []
        for n in sorted({threads, 1}):
            a = vectors(Path(tmp) / f"local{n}")
            assert sorted(a) == sorted(b), "the two builds hold different tracks"
            agreement.append((n, sum(a[p].tobytes() == b[p].tobytes() for p in a),
                              max(float(np.abs(a[p] - b[p]).max()) for p in a)))
    separation, embedding = stage_clips_per_second(encoder, args.stage_clips)

    clips = min(8, int(args.song_seconds // encoder.clip_seconds))
    print(f"{args.songs} tracks of {args.song_seconds:g} s (stem folders, {clips} clips of {encoder.clip_seconds:g} s "
          f"at {encoder.sample_rate} Hz each), demo-size encoder, torch {torch.__version__}, ray {ray.__version__}")
    print("| build | tracks | seconds | tracks/s |")
    print("|---|---|---|---|")
    for name, tracks, seconds in rows:
        print(f"| {name} | {tracks} | {seconds:.1f} | {tracks / seconds:.2f} |")
    print(f"ray.init (cluster start, not in the build row): {init_seconds:.1f} s; Ray's overhead per track: "
          f"{1000 * (ray_seconds - local_seconds) / args.songs:.0f} ms "
          f"((ray build - single-process build on 1 thread) / tracks)")
    for n, identical, largest in agreement:
        print(f"Ray's vectors bit-identical to the single-process build on {n} thread(s): {identical} of {len(b)} "
              f"tracks (largest difference {largest:.2e})")
    print(f"one process on this CPU: separation (htdemucs, random weights) {separation:.2f} clips/s, "
          f"embedding {embedding:.1f} clips/s (3 s clips)")


if __name__ == "__main__":
    main()

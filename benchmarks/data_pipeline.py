"""Triplets per second of the data pipeline on this machine.

Rows (4 s clips at 44.1 kHz, same_song strategy, full front end: crops, style chain on the
negative, 3 x mix features, 3 x 8-channel log-mel):

(a) the built-in synthetic corpus (in memory);
(b) warm stem-cache hits on audio files (float16 memory maps; the cache is filled beforehand by
    a tiny randomly initialised HTDemucs: a hit costs the same whichever model wrote it);
(c) on-the-fly separation of every crop with the full-size htdemucs architecture (random
    weights, as the pretrained ones cannot be downloaded here; the cost is the architecture's).

The cached / on-the-fly ratio is printed. Run: ``python benchmarks/data_pipeline.py``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mixrep.audio.io import write_audio
from mixrep.data.datamodule import _worker_init
from mixrep.data.sources import AudioFolderSource
from mixrep.data.strategies import SameSongStrategy
from mixrep.data.synthetic import SynthConfig, SyntheticSource, synthesize_song
from mixrep.data.tracks import Source
from mixrep.data.triplets import EpochSampler, MelConfig, TripletDataset
from mixrep.separation.cache import StemCache
from mixrep.separation.cached import CachedSeparation, OnTheFlySeparation
from mixrep.separation.demucs import DemucsSeparator

SR = 44_100


def tiny_demucs():
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    return HTDemucs(sources=["drums", "bass", "other", "vocals"], channels=4, depth=2, t_layers=1, t_heads=1,
                    nfft=256, dconv_comp=2, segment=2, samplerate=8_000).eval()


def triplets_per_second(source: Source, clip_seconds: float, workers: int, batch_size: int, batches: int) -> float:
    """Pull ``batches`` batches (after one warm-up batch) and return triplets / second."""
    dataset = TripletDataset(source, source.tracks(), SameSongStrategy(), clip_seconds, MelConfig(), seed=0)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, worker_init_fn=_worker_init,
                        sampler=EpochSampler(batch_size * (batches + 1), seed=0), persistent_workers=False)
    iterator = iter(loader)
    next(iterator)  # workers started, songs synthesised / caches opened
    start = time.perf_counter()
    count = sum(len(batch["track_index"]) for _, batch in zip(range(batches), iterator))
    return count / (time.perf_counter() - start)


def write_mixtures(folder: Path, songs: int, seconds: float) -> None:
    config = SynthConfig(num_songs=songs, song_seconds=seconds, seed=11)
    for index in range(songs):
        write_audio(folder / f"song{index:03d}.flac", synthesize_song(index, config).mix, SR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--songs", type=int, default=16)
    parser.add_argument("--on-the-fly-triplets", type=int, default=2,
                        help="triplets timed for row (c) (each separates 2 crops with full-size htdemucs)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    song_seconds = max(12.0, 3 * args.clip_seconds)
    rows = []

    synth = SyntheticSource(SynthConfig(num_songs=args.songs, song_seconds=song_seconds), cache_songs=args.songs)
    rows.append(("(a) synthetic corpus, in memory",
                 triplets_per_second(synth, args.clip_seconds, args.workers, args.batch_size, args.batches)))

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "library"
        write_mixtures(root, args.songs, song_seconds)
        cached = CachedSeparation(DemucsSeparator(model=tiny_demucs(), device="cpu"), StemCache(Path(tmp) / "cache"))
        folder = AudioFolderSource(root, stems=cached, val_fraction=0.0, test_fraction=0.0,
                                   min_seconds=2 * args.clip_seconds)
        for track in folder.tracks():
            cached.ensure(track)
        rows.append(("(b) audio files, warm stem cache",
                     triplets_per_second(folder, args.clip_seconds, args.workers, args.batch_size, args.batches)))

        from demucs.htdemucs import HTDemucs

        torch.manual_seed(0)
        full = DemucsSeparator(model=HTDemucs(sources=["drums", "bass", "other", "vocals"]).eval(), device="cpu")
        live = AudioFolderSource(root, stems=OnTheFlySeparation(full), val_fraction=0.0, test_fraction=0.0,
                                 min_seconds=2 * args.clip_seconds)
        # One process, all cores for Demucs: workers would only split the same two cores.
        rows.append(("(c) audio files, on-the-fly htdemucs (full size)",
                     triplets_per_second(live, args.clip_seconds, 0, 1, args.on_the_fly_triplets)))

    print(f"\ndata pipeline, {args.clip_seconds:g} s clips at {SR} Hz, {args.workers} workers "
          f"(row c: main process), {os.cpu_count()} CPU cores, torch {torch.__version__}")
    print(f"{'source':52s} {'triplets/s':>11s}")
    for name, rate in rows:
        print(f"{name:52s} {rate:11.3f}")
    print(f"{'cached / on-the-fly':52s} {rows[1][1] / rows[2][1]:10.0f}x")


if __name__ == "__main__":
    main()

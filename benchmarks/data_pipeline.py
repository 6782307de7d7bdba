"""Triplets per second of the data pipeline on this machine, front end included.

DataLoader workers crop the clips and apply the style chain (CPU work); the main process, standing
in for the training device, runs the batched :class:`~mixrep.frontend.FrontEnd` on every batch
(``encode_triplets``, what the LightningModule does at the start of each training and validation step). Rows (4 s
clips at 44.1 kHz, same_song strategy, 2 workers, batches of 8):

(a) the built-in synthetic corpus (in memory);
(b) warm stem-cache hits on audio files (float16 memory maps; the cache is filled beforehand by
    a tiny randomly initialised HTDemucs: a hit costs the same whichever model wrote it);
(c) on-the-fly separation of every crop with the full-size htdemucs architecture (random
    weights, as the pretrained ones cannot be downloaded here; the cost is the architecture's);
(d) the sampled-instrument corpus (per-track FLAC files rendered once with a soundfont, cached),
    each clip read track by track and mixed in the mixing-style space (``mix_style``), ``same_chain``:
    three mixes per triplet;
(e) the same with the ``crossed`` strategy: two songs x two styles, two mixes per triplet.

Then, for the synthetic corpus, where one triplet's CPU time goes (one thread, serial): reading
the three crops, the style chain, batching (collate) of the stems, and the front end per triplet.

Run: ``python benchmarks/data_pipeline.py [--rows a b c d e] [--device cuda] [--transport-dtype float16]
[--sample-rate 22050 --clip-seconds 3]``; rows (d) and (e) render a corpus with ``--soundfont`` (default
TimGM6mb) into ``outputs/corpora`` on first use.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate

from mixrep.audio.io import write_audio
from mixrep.training.datamodule import _worker_init
from mixrep.datasets.sources import AudioFolderSource
from mixrep.corpora.rendered import render_soundfont_corpus
from mixrep.training.strategies import SameSongStrategy, make_strategy
from mixrep.styles.spaces import MixStyles
from mixrep.corpora.synthetic import SynthConfig, SyntheticSource, synthesize_song
from mixrep.training.triplets import EpochSampler, TripletDataset, encode_triplets
from mixrep.devices import resolve_device
from mixrep.frontend import FrontEnd, FrontEndConfig
from mixrep.separation.cache import StemCache
from mixrep.separation.cached import CachedSeparation, OnTheFlySeparation
from mixrep.separation.demucs import DemucsSeparator
from mixrep.tracks import Source

SR = 44_100


def tiny_demucs():
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    return HTDemucs(sources=["drums", "bass", "other", "vocals"], channels=4, depth=2, t_layers=1, t_heads=1,
                    nfft=256, dconv_comp=2, segment=2, samplerate=8_000).eval()


def make_dataset(source: Source, clip_seconds: float, transport_dtype: str, strategy=None) -> TripletDataset:
    return TripletDataset(source, source.tracks(), strategy or SameSongStrategy(), clip_seconds, seed=0,
                          transport_dtype=transport_dtype)


def triplets_per_second(source: Source, frontend: FrontEnd, clip_seconds: float, workers: int, batch_size: int,
                        batches: int, transport_dtype: str, strategy=None) -> float:
    """Pull ``batches`` batches (after one warm-up batch), encode each on the front end's device."""
    device = frontend.window.device
    dataset = make_dataset(source, clip_seconds, transport_dtype, strategy)
    loader = DataLoader(dataset, batch_size=batch_size,
                        num_workers=workers, worker_init_fn=_worker_init, persistent_workers=False,
                        sampler=EpochSampler(batch_size * (batches + 1), seed=0, group_size=dataset.group_size),
                        pin_memory=device.type == "cuda")
    iterator = iter(loader)
    encode_triplets({k: v.to(device) for k, v in next(iterator).items()}, frontend)  # warm-up
    start = time.perf_counter()
    count = 0
    for _, batch in zip(range(batches), iterator):
        encoded = encode_triplets({k: v.to(device, non_blocking=True) for k, v in batch.items()}, frontend)
        count += len(encoded["track_index"])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def cost_breakdown(source: Source, frontend: FrontEnd, clip_seconds: float, batch_size: int, batches: int,
                   transport_dtype: str) -> dict[str, float]:
    """Milliseconds of one thread per triplet: crops, chain, collate, front end (serial, in this process)."""
    dataset = make_dataset(source, clip_seconds, transport_dtype)
    strategy = dataset.strategy
    tracks = dataset.tracks
    keys = list(range(batch_size * batches))
    read_s = chain_s = collate_s = frontend_s = 0.0
    for b in range(batches):
        items = []
        for key in keys[b * batch_size:(b + 1) * batch_size]:
            rng = np.random.default_rng([0, key])
            start = time.perf_counter()
            anchor_clip, positive_clip = dataset.read_clips(tracks[key % len(tracks)], rng, count=2)
            anchor, positive = anchor_clip.stem_audio(), positive_clip.stem_audio()
            read_s += time.perf_counter() - start
            start = time.perf_counter()
            negative, _ = strategy.styles.restyle(anchor_clip, rng, dataset.sample_rate)
            chain_s += time.perf_counter() - start
            items.append({"anchor_stems": torch.from_numpy(anchor).to(dataset.transport_dtype),
                          "positive_stems": torch.from_numpy(positive).to(dataset.transport_dtype),
                          "negative_stems": torch.from_numpy(negative).to(dataset.transport_dtype),
                          "track_index": torch.tensor(key % len(tracks))})
        start = time.perf_counter()
        batch = default_collate(items)
        collate_s += time.perf_counter() - start
        device = frontend.window.device
        start = time.perf_counter()
        encode_triplets({k: v.to(device) for k, v in batch.items()}, frontend)
        if device.type == "cuda":
            torch.cuda.synchronize()
        frontend_s += time.perf_counter() - start
    n = len(keys)
    return {"read the 3 crops": 1e3 * read_s / n, "style chain (negative)": 1e3 * chain_s / n,
            f"collate ({transport_dtype} stems)": 1e3 * collate_s / n,
            f"front end, 3 clips, batched ({device})": 1e3 * frontend_s / n}


def write_mixtures(folder: Path, songs: int, seconds: float, sample_rate: int) -> None:
    config = SynthConfig(num_songs=songs, song_seconds=seconds, seed=11, sample_rate=sample_rate)
    for index in range(songs):
        write_audio(folder / f"song{index:03d}.flac", synthesize_song(index, config).mix, sample_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--songs", type=int, default=16)
    parser.add_argument("--rows", nargs="+", default=["a", "b", "c", "breakdown"],
                        choices=["a", "b", "c", "d", "e", "breakdown"])
    parser.add_argument("--sample-rate", type=int, default=SR)
    parser.add_argument("--soundfont", default="TimGM6mb", help="soundfont of rows (d) and (e)")
    parser.add_argument("--device", default="cpu", help="where the front end runs (cpu, cuda, auto)")
    parser.add_argument("--transport-dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of the front end (main process)")
    parser.add_argument("--on-the-fly-triplets", type=int, default=2,
                        help="triplets timed for row (c) (each separates 2 crops with full-size htdemucs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    song_seconds = max(12.0, 3 * args.clip_seconds)
    device = resolve_device(args.device)
    rate = args.sample_rate
    frontend = FrontEnd(FrontEndConfig(sample_rate=rate, clip_seconds=args.clip_seconds)).to(device)
    rows = []
    timing = dict(frontend=frontend, clip_seconds=args.clip_seconds, transport_dtype=args.transport_dtype)

    synth = SyntheticSource(SynthConfig(num_songs=args.songs, song_seconds=song_seconds, sample_rate=rate),
                            cache_songs=args.songs)
    for track in synth.tracks():  # synthesise every song once, before the workers fork (steady state)
        synth.read_stems(track, 0.0, 0.1)
    if "a" in args.rows:
        rows.append(("(a) synthetic corpus, in memory",
                     triplets_per_second(synth, workers=args.workers, batch_size=args.batch_size,
                                         batches=args.batches, **timing)))

    if "b" in args.rows or "c" in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "library"
            write_mixtures(root, args.songs, song_seconds, rate)
            if "b" in args.rows:
                cached = CachedSeparation(DemucsSeparator(model=tiny_demucs(), device="cpu"),
                                          StemCache(Path(tmp) / "cache"))
                folder = AudioFolderSource(root, stems=cached, val_fraction=0.0, test_fraction=0.0,
                                           min_seconds=2 * args.clip_seconds)
                for track in folder.tracks():
                    cached.ensure(track)
                rows.append(("(b) audio files, warm stem cache",
                             triplets_per_second(folder, workers=args.workers, batch_size=args.batch_size,
                                                 batches=args.batches, **timing)))
            if "c" in args.rows:
                from demucs.htdemucs import HTDemucs

                torch.manual_seed(0)
                full = DemucsSeparator(model=HTDemucs(sources=["drums", "bass", "other", "vocals"]).eval(),
                                       device="cpu")
                live = AudioFolderSource(root, stems=OnTheFlySeparation(full), val_fraction=0.0, test_fraction=0.0,
                                         min_seconds=2 * args.clip_seconds)
                # One process, all cores for Demucs: workers would only split the same two cores.
                rows.append(("(c) audio files, on-the-fly htdemucs (full size)",
                             triplets_per_second(live, workers=0, batch_size=1, batches=args.on_the_fly_triplets,
                                                 **timing)))

    if "d" in args.rows or "e" in args.rows:
        corpus = render_soundfont_corpus(args.soundfont, corpus_dir="outputs/corpora", seed=0, songs=args.songs,
                                         song_seconds=song_seconds, sample_rate=rate, progress=False)
        if corpus is None:
            raise SystemExit(f"rows (d) and (e) need the soundfont {args.soundfont} and FluidSynth")
        for row, name in (("d", "same_chain"), ("e", "crossed")):
            if row in args.rows:
                rows.append((f"({row}) soundfont corpus, mix_style, {name}",
                             triplets_per_second(corpus, workers=args.workers, batch_size=args.batch_size,
                                                 batches=args.batches, strategy=make_strategy(name, MixStyles()),
                                                 **timing)))

    print(f"\ndata pipeline, {args.clip_seconds:g} s clips at {rate} Hz, {args.workers} workers "
          f"(row c: main process), front end on {device}, {args.transport_dtype} stems, batch {args.batch_size}, "
          f"{os.cpu_count()} CPU cores, torch {torch.__version__}")
    print(f"{'source':52s} {'triplets/s':>11s}")
    for name, rate in rows:
        print(f"{name:52s} {rate:11.3f}")
    names = [name for name, _ in rows]
    if names[:2] == ["(a) synthetic corpus, in memory", "(b) audio files, warm stem cache"] and len(rows) == 3:
        print(f"{'cached / on-the-fly':52s} {rows[1][1] / rows[2][1]:10.0f}x")
    if "breakdown" in args.rows:
        torch.set_num_threads(1)
        costs = cost_breakdown(synth, batch_size=args.batch_size, batches=args.batches, **timing)
        print(f"\nwhere one triplet's CPU time goes (synthetic corpus, 1 thread, serial):")
        print(f"{'step':52s} {'ms/triplet':>11s}")
        for name, ms in costs.items():
            print(f"{name:52s} {ms:11.1f}")
        print(f"{'total':52s} {sum(costs.values()):11.1f}")


if __name__ == "__main__":
    main()

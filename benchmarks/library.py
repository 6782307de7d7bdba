"""Tracks per second of ``index build`` over the synthetic corpus written as stem folders.

Each track (four FLAC stems at the encoder's sample rate) is cut into up to 8 clips, embedded from
its ground-truth stems (no separation),
committed to SQLite and added to FAISS; the share of the per-track screening (duration check and
silence probe) is measured after the build, on the same tracks. Uses ``--checkpoint`` if given, else a freshly
initialised demo-size encoder (weights do not change the cost).
Run: ``python benchmarks/library.py [--songs 48] [--checkpoint CKPT]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from mixrep.inference.style_encoder import StyleEncoder
from mixrep.datasets.registry import open_source
from mixrep.corpora.synthetic import SynthConfig, write_corpus
from mixrep.retrieval.builder import build_library_index
from mixrep.retrieval.screening import screen_track
from mixrep.models.encoder import MixStyleEncoder

from embedding import SIZES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=48)
    parser.add_argument("--song-seconds", type=float, default=12.0)
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args()
    if args.checkpoint:
        encoder = StyleEncoder.from_checkpoint(args.checkpoint)
    else:
        config, frontend = SIZES["demo"]
        torch.manual_seed(0)
        encoder = StyleEncoder(MixStyleEncoder(config), frontend, model_hash="untrained-demo")
    with tempfile.TemporaryDirectory() as tmp:
        # Written at the encoder's rate: the figure is the index build, not resampling on read.
        corpus = write_corpus(Path(tmp) / "corpus", SynthConfig(num_songs=args.songs, song_seconds=args.song_seconds,
                                                                sample_rate=encoder.sample_rate))
        source = open_source("stems", corpus, sample_rate=encoder.sample_rate, min_seconds=1.0)
        start = time.perf_counter()
        report = build_library_index(encoder, source, Path(tmp) / "index", progress=False)
        seconds = time.perf_counter() - start
        start = time.perf_counter()  # the build's per-track checks alone: header read + silence probe
        for track in source.tracks():
            screen_track(track.stem_paths)
        screen_seconds = time.perf_counter() - start
    print(f"index build: {report.tracks_in_index} tracks of {args.song_seconds:g} s "
          f"(clips of {encoder.clip_seconds:g} s at {encoder.sample_rate} Hz, stems given) in {seconds:.1f} s")
    print(f"{'tracks/s':>9s} {'clips/s':>9s}")
    clips = report.tracks_in_index * min(8, int(args.song_seconds // encoder.clip_seconds))
    print(f"{report.tracks_in_index / seconds:9.2f} {clips / seconds:9.2f}")
    print(f"screening (duration + silence probe): {1000 * screen_seconds / len(source.tracks()):.1f} ms/track, "
          f"{100 * screen_seconds / seconds:.1f}% of the build time")


if __name__ == "__main__":
    main()

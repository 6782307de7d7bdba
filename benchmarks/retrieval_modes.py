"""Which retrieves mixes better: one vector per track, or every clip? Measured with a trained encoder.

Builds a styled library (held-out synthetic songs x mixing styles, written as stem folders), indexes
it with ``mixrep.retrieval`` in track mode (normalised mean of the clips) and re-derives the clip-mode
index from the same store (no re-embedding), then queries every track by id. A hit is relevant when
it has the query's style on another song. Prints mAP, precision@1 and build speed.

    python benchmarks/retrieval_modes.py --checkpoint outputs/demo/.../last.ckpt [--songs 30 --styles 8]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

from mixrep.audio.io import write_audio
from mixrep.constants import STEMS
from mixrep.corpora.synthetic import SynthConfig, synthesize_song
from mixrep.datasets.registry import open_source
from mixrep.inference.style_encoder import StyleEncoder
from mixrep.retrieval.builder import build_library_index
from mixrep.retrieval.faiss_index import IndexConfig
from mixrep.retrieval.library_index import LibraryIndex
from mixrep.styles.chains import AugmentConfig, apply_chain, sample_chain

NAME = re.compile(r"song(\d+)_style(\d+)")


def write_library(root: Path, songs: int, styles: int, song_seconds: float, sample_rate: int) -> None:
    rng = np.random.default_rng(2024)
    chains = [sample_chain(AugmentConfig(), rng) for _ in range(styles)]
    config = SynthConfig(num_songs=songs, song_seconds=song_seconds, seed=4242, sample_rate=sample_rate)
    for song in range(songs):
        dry = synthesize_song(song, config).stems
        for style, chain in enumerate(chains):
            for name, audio in zip(STEMS, apply_chain(dry, chain, sample_rate)):
                write_audio(root / f"song{song:03d}_style{style}" / f"{name}.wav", audio, sample_rate)


def ranking_scores(index_dir: Path, config: IndexConfig | None) -> tuple[float, float]:
    """mAP and precision@1 of querying every track against the rest."""
    with LibraryIndex.open(index_dir, readonly=config is None, config=config) as index:
        ids = index.store.track_ids().tolist()
        paths = {t: r.path for t, r in index.store.get_tracks(ids, False).items()}
        results = index.search_ids(ids, k=len(ids) - 1)
    aps, top1 = [], []
    for track_id, result in zip(ids, results):
        song, style = NAME.search(paths[track_id]).groups()
        hits = [NAME.search(h.path).groups() for h in result.hits]
        relevant = np.array([s == style and g != song for g, s in hits])
        aps.append(average_precision_score(relevant, [h.score for h in result.hits]))
        top1.append(bool(relevant[0]))
    return float(np.mean(aps)), float(np.mean(top1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--songs", type=int, default=30)
    parser.add_argument("--styles", type=int, default=8)
    parser.add_argument("--song-seconds", type=float, default=12.0)
    args = parser.parse_args()
    encoder = StyleEncoder.from_checkpoint(args.checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        library, index_dir = Path(tmp) / "library", Path(tmp) / "index"
        write_library(library, args.songs, args.styles, args.song_seconds, encoder.sample_rate)
        start = time.perf_counter()
        report = build_library_index(encoder, open_source("stems", library, sample_rate=encoder.sample_rate,
                                                          min_seconds=1.0), index_dir, progress=False)
        seconds = time.perf_counter() - start
        rows = [("track (mean of clips)", *ranking_scores(index_dir, None))]
        for reduce in ("max", "mean"):
            rows.append((f"clip, {reduce} over clip pairs",
                         *ranking_scores(index_dir, IndexConfig(index_type="flat", mode="clip", clip_reduce=reduce))))
    print(f"library: {report.tracks_in_index} tracks ({args.songs} songs x {args.styles} styles, "
          f"{args.song_seconds:g} s each), built in {seconds:.1f} s = {report.tracks_in_index / seconds:.2f} tracks/s")
    print(f"{'index mode':32s} {'mAP':>6s} {'P@1':>6s}")
    for name, map_, p1 in rows:
        print(f"{name:32s} {map_:6.3f} {p1:6.3f}")


if __name__ == "__main__":
    main()

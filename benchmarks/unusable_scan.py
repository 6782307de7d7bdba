"""Time the scan an index build starts with: every stored embedding checked for zero or non-finite rows.

``mixrep index build`` runs :func:`mixrep.retrieval.library_index.quarantine_unusable` before planning,
so damaged rows are re-embedded by that build. This prints its wall time per store size (one CPU
thread: SQLite reads and a NumPy check per track), next to the time to read the same rows alone.

Usage: python benchmarks/unusable_scan.py [--tracks 2000 20000] [--clips 8] [--dim 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mixrep.retrieval.library_index import quarantine_unusable
from mixrep.retrieval.store import MetadataStore, TrackRecord


def fill(store: MetadataStore, tracks: int, clips: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    store.bind_encoder("bench", dim)
    for start in range(0, tracks, 1000):
        records = []
        for i in range(start, min(tracks, start + 1000)):
            emb = rng.standard_normal((clips, dim)).astype(np.float32)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            records.append(TrackRecord(f"/lib/{i}.wav", 30.0, 1, 1, f"{i:040x}", np.arange(clips, dtype=float),
                                       emb, "bench"))
        store.commit(records)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--dim", type=int, default=128)
    args = parser.parse_args(argv)
    print(f"{'tracks':>7} {'clips':>5} {'dim':>4} {'store_MB':>8} {'read_s':>7} {'scan_s':>7}")
    for tracks in args.tracks:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "metadata.sqlite"
            with MetadataStore(path) as store:
                fill(store, tracks, args.clips, args.dim)
                t0 = time.perf_counter()
                for _ in store.iter_embeddings():
                    pass
                read = time.perf_counter() - t0
                t0 = time.perf_counter()
                found = quarantine_unusable(store)
                scan = time.perf_counter() - t0
                assert found == []
            size = path.stat().st_size / 1e6
        print(f"{tracks:>7} {args.clips:>5} {args.dim:>4} {size:>8.1f} {read:>7.3f} {scan:>7.3f}")


if __name__ == "__main__":
    main()

"""Benchmark the style index: build time, memory, single-query latency and recall@10 vs exact.

Vectors are clustered unit vectors (:mod:`mixrep.retrieval.synthetic`) of the encoder's size, or real
embeddings taken from an index built with ``mixrep index build`` (``--embeddings-from INDEX``).
Latency is measured one query at a time on one thread; recall@10 on held-out queries against
exact inner-product search. Prints a markdown table.

    python benchmarks/index.py --sizes 10000 100000 1000000 --types flat ivf hnsw

``--storage`` saves each IVF index and measures it the way ``mixrep search`` uses it, in a fresh
process per row: loaded into RAM (``StyleIndex.load``) against memory-mapped lists
(``StyleIndex.load(mmap=True)``, the search path). It reports the process's resident memory
(anonymous + file-backed pages, from /proc/self/status) after the load and after 100 queries,
next to latency and recall; the vectors file is in the page cache (just written).

    python benchmarks/index.py --sizes 1000000 --types ivf --nlist 2048 --nprobe 16 64 --storage
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from mixrep.retrieval.faiss_index import IndexConfig, StyleIndex
from mixrep.retrieval.synthetic import clustered_unit_vectors


def index_bytes(index: StyleIndex) -> int:
    """Size of the serialised FAISS structure (what it holds in memory, within a few %)."""
    with tempfile.TemporaryDirectory() as tmp:
        faiss.write_index(index._index, f"{tmp}/x.faiss")
        return os.path.getsize(f"{tmp}/x.faiss")


def library_vectors(n: int, dim: int, clusters: int) -> np.ndarray:
    return np.concatenate(list(clustered_unit_vectors(n, dim, clusters, seed=1)))


def stored_embeddings(index_dir: str) -> np.ndarray:
    """Per-clip embeddings stored in a built index (real encoder output)."""
    from mixrep.retrieval.library_index import LibraryIndex

    with LibraryIndex.open(index_dir) as index:
        return np.concatenate([r.embeddings for r in index.store.iter_records()])


def ground_truth(lib: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    exact = faiss.IndexFlatIP(lib.shape[1])
    exact.add(lib)
    return exact.search(queries, k)[1]


def latency_ms(index: StyleIndex, queries: np.ndarray, k: int) -> tuple[float, float]:
    faiss.omp_set_num_threads(1)
    times = []
    for q in queries:
        start = time.perf_counter()
        index.search(q[None], k)
        times.append((time.perf_counter() - start) * 1e3)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def recall(index: StyleIndex, queries: np.ndarray, truth: np.ndarray, k: int) -> float:
    found = index.search(queries, k).track_ids
    return float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found)]))


def resident_mib() -> tuple[float, float]:
    """This process's resident memory: ``(anonymous, file-backed)`` MiB (Linux /proc/self/status)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return tuple(int(fields[name].split()[0]) / 1024 for name in ("RssAnon", "RssFile"))


def measure_loaded(folder: str, mmap: bool, nprobe: int, k: int, latency_queries: int) -> dict:
    """Child process: load the saved index (in RAM or memory-mapped) and measure memory, latency, recall."""
    data = np.load(f"{folder}/queries.npz")
    queries, truth = data["queries"], data["truth"]
    faiss.omp_set_num_threads(1)
    base_anon, base_file = resident_mib()
    index = StyleIndex.load(folder, mmap=mmap)
    index.set_search_params(nprobe=nprobe)
    loaded = resident_mib()
    for q in queries[:100]:
        index.search(q[None], k)
    after_100 = resident_mib()
    p50, p99 = latency_ms(index, queries[:latency_queries], k)
    return {"base_mib": base_anon + base_file, "load": loaded, "after_100": after_100, "p50": p50, "p99": p99,
            "recall": recall(index, queries, truth, k), "lists": index.describe()["lists"]}


def storage_rows(index: StyleIndex, queries: np.ndarray, truth: np.ndarray, nprobes, args) -> list[tuple]:
    """Save ``index`` and measure it loaded in RAM and memory-mapped, each in a fresh process."""
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as folder:
        index.save(folder)
        np.savez(f"{folder}/queries.npz", queries=queries, truth=truth)
        file_mib = sum(p.stat().st_size for p in Path(folder).glob("vectors-*.faiss")) / 2**20
        for nprobe in nprobes:
            for mmap in (False, True):
                out = subprocess.run([sys.executable, __file__, "--measure-loaded", folder, "--measure-nprobe",
                                      str(nprobe), "--measure-mmap", str(int(mmap)), "-k", str(args.k),
                                      "--latency-queries", str(args.latency_queries)],
                                     check=True, capture_output=True, text=True).stdout
                m = json.loads(out.splitlines()[-1])
                rows.append((index.num_vectors, f"ivf{index.describe()['nlist']},nprobe={nprobe}", m["lists"],
                             file_mib, m["base_mib"], m["load"][0], m["load"][1], m["after_100"][0], m["after_100"][1],
                             m["p50"], m["p99"], m["recall"]))
                print("| " + " | ".join(_fmt(v) for v in rows[-1]) + " |", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--clusters", type=int, default=3000)
    parser.add_argument("--types", nargs="+", default=["flat", "ivf", "hnsw"])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64], help="IVF settings to report")
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default 4 sqrt(n))")
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="skip HNSW above this size (slow build)")
    parser.add_argument("--queries", type=int, default=500, help="held-out queries for recall")
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--embeddings-from", help="index folder whose stored embeddings to benchmark instead")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--storage", action="store_true",
                        help="IVF only: measure RSS, latency and recall of in-RAM against memory-mapped loads")
    parser.add_argument("--tmp-dir", default=None, help="where --storage saves the indexes (default: the system's)")
    parser.add_argument("--measure-loaded", help=argparse.SUPPRESS)
    parser.add_argument("--measure-mmap", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--measure-nprobe", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_loaded:
        print(json.dumps(measure_loaded(args.measure_loaded, bool(args.measure_mmap), args.measure_nprobe, args.k,
                                        args.latency_queries)))
        return

    rows = []
    datasets = []
    if args.embeddings_from:
        real = stored_embeddings(args.embeddings_from)
        rng = np.random.default_rng(0)
        perm = rng.permutation(len(real))
        datasets.append(("real", real[perm[args.queries:]], real[perm[: args.queries]]))
    for n in args.sizes:
        datasets.append(("clustered", None, n))
    for kind, lib, extra in datasets:
        if lib is None:
            n = extra
            lib = library_vectors(n, args.dim, args.clusters)
            queries = next(clustered_unit_vectors(args.queries, args.dim, args.clusters, seed=2, chunk=args.queries))
        else:
            queries = extra
        n, dim = lib.shape
        truth = ground_truth(lib, queries, args.k)
        for index_type in args.types:
            if (index_type == "hnsw" and n > args.hnsw_max) or (args.storage and index_type != "ivf"):
                continue
            gc.collect()
            start = time.perf_counter()
            config = IndexConfig(index_type=index_type, nlist=args.nlist)
            index = StyleIndex.build(np.arange(n), lib, dim, "benchmark", config)
            build_seconds = time.perf_counter() - start
            if args.storage:
                rows += storage_rows(index, queries, truth, args.nprobe, args)
                del index
                continue
            memory_mb = index_bytes(index) / 2**20
            settings = args.nprobe if index_type == "ivf" else [None]
            for nprobe in settings:
                label = index_type
                if nprobe is not None:
                    index.set_search_params(nprobe=nprobe)
                    label = f"ivf{index.describe()['nlist']},nprobe={nprobe}"
                if index_type == "hnsw":
                    label = f"hnsw M={index.config.hnsw_m},ef={index.config.ef_search}"
                lat_q = queries[: args.latency_queries if index_type != "flat" or n < 500_000 else 50]
                p50, p99 = latency_ms(index, lat_q, args.k)
                rows.append((kind, n, dim, label, build_seconds, memory_mb, p50, p99,
                             recall(index, queries, truth, args.k)))
                print("| " + " | ".join(_fmt(v) for v in rows[-1]) + " |", flush=True)
            del index
        del lib
    if args.storage:
        print("\n| n | index | lists | file MiB | RSS MiB before load | anon MiB after load | file-backed MiB after load "
              "| anon MiB after 100 queries | file-backed MiB after 100 queries | p50 ms | p99 ms | recall@10 |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    else:
        print("\n| vectors | n | dim | index | build s | index MiB | p50 ms | p99 ms | recall@10 |")
        print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(_fmt(v) for v in row) + " |")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if v < 10 else f"{v:.0f}"
    return str(v)


if __name__ == "__main__":
    main()

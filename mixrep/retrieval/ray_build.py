"""``mixrep index build --engine ray``: the library build as a Ray Data pipeline (optional extra ``mixrep[ray]``).

Pipeline::

    listing and plan (driver: the store says what is committed)
      -> screen (Ray tasks: duration, silence; the builder's screen_track)
      -> separate + embed (an actor pool; each actor holds one encoder with its separator,
         ``num_gpus`` per actor where the cluster has GPUs, else CPU actors)
      -> the driver commits each block of rows (vectors + metadata) to the SQLite store in one transaction
      -> one FAISS index trained (IVF above ``exact_threshold``, as ``auto``) and filled from the store.

Every step is the single-machine builder's own function (:mod:`mixrep.retrieval.builder`), so the vectors are
the same bytes as a local build's for the same files and encoder. The store stays single-writer (the driver),
so a killed job resumes like a killed local build: committed tracks are not re-embedded. A worker that dies
mid-block is restarted by Ray and its block retried; a file during which the worker died
:data:`MAX_WORKER_CRASHES` times (a crash of the separator on that file, not an exception) is a skip of kind
``failed`` instead of a crash loop. Ray is imported only here, and only when a Ray build runs.

Every node needs mixrep installed, and the library and the checkpoint at the same paths (a shared
filesystem), as the driver lists and the workers read them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from mixrep.constants import MIN_EMBED_SECONDS
from mixrep.errors import MixrepError
from mixrep.retrieval.builder import (BuildReport, check_setup_failures, commit_block, embed_item, finish_build,
                                      item_stat, make_record, skip_of, start_build)
from mixrep.retrieval.embedder import Embedder
from mixrep.retrieval.faiss_index import IndexConfig
from mixrep.retrieval.library import LibraryItem, list_library
from mixrep.retrieval.library_index import write_lock
from mixrep.retrieval.screening import screen_track
from mixrep.retrieval.store import STORE_NAME, MetadataStore, SkippedFile, TrackRecord

log = logging.getLogger(__name__)

MAX_WORKER_CRASHES = 2
"""A file during which an embedding worker process died this many times is skipped (kind ``failed``)."""
CONNECT_TIMEOUT_SECONDS = 10.0
"""How long to wait for a cluster's address to accept a TCP connection before giving up."""
RAY_INSTALL_HINT = "install it with `pip install 'mixrep[ray]'`"


def import_ray():
    """The ``ray`` module (with Ray Data).

    Raises:
        MixrepError: Ray is not installed (says how to install it).
    """
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise MixrepError(f"--engine ray needs Ray Data, which is not importable ({e}); {RAY_INSTALL_HINT}") from e
    return ray


def connect(address: str | None, timeout_seconds: float = CONNECT_TIMEOUT_SECONDS) -> bool:
    """Connect this process to a Ray cluster, unless it already is.

    Args:
        address: ``host:port`` of a head node's GCS (``ray start --head`` prints it; port 6379), a
            ``ray://host:10001`` client address, ``auto`` (the cluster this machine belongs to), or
            ``None``: a local cluster on this machine's cores.
        timeout_seconds: the TCP connect timeout for ``host:port`` addresses.

    Returns:
        Whether this call started the connection (the caller shuts it down with ``ray.shutdown()``).

    Raises:
        MixrepError: Ray is missing, or the address cannot be reached (before any work is done).
    """
    ray = import_ray()
    if address not in (None, "auto"):  # checked even when connected: the address given must work
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), timeout=timeout_seconds).close()
        except OSError as e:
            raise MixrepError(
                f"cannot reach the Ray cluster at {address} ({host}:{port}: {e or type(e).__name__}); start it "
                f"(`ray start --head` or `ray up CLUSTER.yaml`) or fix --address (the head node's GCS port, 6379 by "
                f"default, or ray://HOST:10001 for a client connection); nothing was built") from e
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except Exception as e:  # ray raises ConnectionError, RuntimeError, ValueError... depending on the failure
        raise MixrepError(f"cannot connect to the Ray cluster at {address or 'a new local cluster'}: "
                          f"{type(e).__name__}: {e}; nothing was built") from e
    return True


def _host_port(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` or ``ray://host[:port]`` (default ports 6379 and 10001)."""
    client = address.startswith("ray://")
    rest = address[len("ray://"):] if client else address
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, ("10001" if client else "6379")
    if not host or not port.isdigit():
        raise MixrepError(f"--address {address!r} is not HOST:PORT, ray://HOST[:PORT] or auto")
    return host.strip("[]"), int(port)


def build_library_index_ray(
    make_embedder: Callable[[], Embedder],
    library: str | os.PathLike | Sequence[str | os.PathLike] | object,
    index_dir: str | os.PathLike,
    *,
    address: str | None = None,
    actors: int | None = None,
    num_gpus_per_actor: float | None = None,
    config: IndexConfig | None = None,
    block_tracks: int = 16,
    progress: bool = True,
    min_seconds: float = MIN_EMBED_SECONDS,
    include_silent: bool = False,
    retry_skipped: bool = False,
) -> BuildReport:
    """Embed a library into ``index_dir`` on a Ray cluster (created, or continued where a build stopped).

    Same index, skips and resumption as :func:`mixrep.retrieval.builder.build_library_index`.

    Args:
        make_embedder: builds the encoder; called once by the driver (hash and setup checks) and once in each
            actor, so it must be picklable (a class, or ``functools.partial`` of a module-level function).
        library: a folder, an audio file, a list of them, or a ``Source``.
        index_dir: the index folder.
        address: the cluster (see :func:`connect`); ``None``: the one this process is connected to, else a
            new local one.
        actors: embedding actors; default one per GPU, or (without GPUs) the cluster's CPUs minus one.
        num_gpus_per_actor: GPUs per actor; default 1 where the cluster has GPUs, else 0.
        config: index type and mode; ``None`` keeps the existing index's.
        block_tracks: tracks per block (one actor call, and one SQLite transaction).
        progress: show a tqdm bar.
        min_seconds, include_silent, retry_skipped: as for the single-machine build.

    Returns:
        A :class:`~mixrep.retrieval.builder.BuildReport`.

    Raises:
        MixrepError: Ray is missing or the cluster cannot be reached (before any work); and every error of the
            single-machine build (another encoder's index, a separator that cannot load...).
    """
    started = time.monotonic()
    if (actors is not None and actors < 1) or block_tracks < 1 or (num_gpus_per_actor or 0) < 0:
        raise MixrepError(f"--actors ({actors}) and --batch-tracks ({block_tracks}) must be at least 1 and "
                          f"--gpus-per-actor ({num_gpus_per_actor}) at least 0")
    started_ray = connect(address)
    ray = import_ray()
    try:
        actors, num_gpus_per_actor = _actor_resources(ray, actors, num_gpus_per_actor)
        embedder = make_embedder()
        index_dir = Path(index_dir)
        listing = list_library(library)
        with write_lock(index_dir):
            with MetadataStore(index_dir / STORE_NAME) as store:
                todo, replace, report = start_build(store, embedder, listing, listing.items, (0, 1), config,
                                                    include_silent, retry_skipped)
                if todo:
                    blocks = _pipeline(ray, make_embedder, todo, actors, num_gpus_per_actor, block_tracks,
                                       min_seconds, include_silent)
                    _commit_blocks(blocks, todo, embedder, store, replace, report, index_dir, progress)
            finish_build(index_dir, config, None, report, started)
    finally:
        if started_ray:
            ray.shutdown()
    return report


def _actor_resources(ray, actors: int | None, num_gpus_per_actor: float | None) -> tuple[int, float]:
    """``(actors, GPUs per actor)`` of the embedding pool, defaults filled from the cluster's resources.

    Raises:
        MixrepError: GPUs asked for that the cluster does not have (the actors would wait forever).
    """
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0.0)
    if num_gpus_per_actor is None:
        num_gpus_per_actor = 1.0 if gpus else 0.0
    if num_gpus_per_actor > gpus:
        raise MixrepError(f"--gpus-per-actor {num_gpus_per_actor:g} but the Ray cluster has {gpus:g} GPUs now; wait "
                          f"for its GPU workers to join, or run CPU actors (--gpus-per-actor 0)")
    if actors is None:
        actors = max(1, int(gpus // num_gpus_per_actor) if num_gpus_per_actor else int(resources.get("CPU", 1)) - 1)
    return actors, num_gpus_per_actor


def _pipeline(ray, make_embedder, todo: Sequence[LibraryItem], actors: int, num_gpus_per_actor: float,
              block_tracks: int, min_seconds: float, include_silent: bool):
    """The lazy Ray dataset of result rows, one per item of ``todo``."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True  # blocks committed in listing order: the local build's ids
    ledger = ray.remote(num_cpus=0)(CrashLedger).remote()
    rows = [{"path": str(i.path), "stems": json.dumps([str(p) for p in i.stem_paths or ()])} for i in todo]
    blocks = max(1, -(-len(rows) // block_tracks))
    return (ray.data.from_items(rows, override_num_blocks=blocks)
            .map_batches(screen_block, batch_size=block_tracks, num_cpus=0.5,
                         fn_kwargs={"min_seconds": min_seconds, "include_silent": include_silent})
            .map_batches(EmbedActor, batch_size=block_tracks, fn_constructor_args=(make_embedder, ledger),
                         compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=0 if num_gpus_per_actor else 1,
                         num_gpus=num_gpus_per_actor))


def _files(path: str, stems_json: str) -> list[str]:
    return json.loads(stems_json) or [path]


def screen_block(batch: dict[str, np.ndarray], min_seconds: float, include_silent: bool) -> dict[str, np.ndarray]:
    """Ray task: :func:`~mixrep.retrieval.screening.screen_track` of each row; adds ``duration_seconds``
    (NaN when skipped), ``skip_kind`` and ``skip_reason`` (empty when not skipped)."""
    durations, kinds, reasons = [], [], []
    for path, stems in zip(batch["path"], batch["stems"]):
        try:
            durations.append(screen_track(_files(path, stems), min_seconds, include_silent))
            kinds.append("")
            reasons.append("")
        except Exception as e:  # a per-file failure: a skip
            skip = skip_of(LibraryItem(path, Path(path)), e, 0, 0)
            durations.append(float("nan"))
            kinds.append(skip.kind)
            reasons.append(skip.reason)
    return {**batch, "duration_seconds": np.asarray(durations, dtype=np.float64),
            "skip_kind": np.asarray(kinds, dtype=object), "skip_reason": np.asarray(reasons, dtype=object)}


class CrashLedger:
    """Ray actor: which files an embedding worker started and did not finish (it died during them)."""

    def __init__(self) -> None:
        self._in_flight: set[str] = set()
        self._crashes: dict[str, int] = {}

    def start(self, path: str) -> int:
        """Mark ``path`` started; returns how many workers died during it before."""
        if path in self._in_flight:
            self._crashes[path] = self._crashes.get(path, 0) + 1
        self._in_flight.add(path)
        return self._crashes.get(path, 0)

    def finish(self, path: str) -> None:
        self._in_flight.discard(path)


class EmbedActor:
    """Ray actor of the embed pool: holds one encoder (and its separator); embeds a block of screened rows.

    Adds ``embeddings`` (float32 bytes, ``(clips, embedding_dim)``), ``offsets`` (float64 bytes, ``(clips,)``),
    ``clips`` and ``content_sha1``; a file that fails gets ``skip_kind``/``skip_reason`` instead.
    """

    def __init__(self, make_embedder: Callable[[], Embedder], ledger) -> None:
        self.ledger = ledger
        self.embedder, self.error = None, None
        try:
            self.embedder = make_embedder()
        except Exception as e:  # raised from __call__: an actor failing in its constructor is restarted forever
            self.error = f"{type(e).__name__}: {e}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import ray

        if self.error is not None:
            raise MixrepError(f"an embedding actor on {socket.gethostname()} could not build the encoder: {self.error}"
                              f" (is mixrep installed there, and the checkpoint at the same path on every node?)")
        n = len(batch["path"])
        out = {"embeddings": [b""] * n, "offsets": [b""] * n, "clips": [0] * n, "content_sha1": [""] * n}
        kinds, reasons = list(batch["skip_kind"]), list(batch["skip_reason"])
        for i, (path, stems) in enumerate(zip(batch["path"], batch["stems"])):
            if kinds[i]:
                continue
            crashes = ray.get(self.ledger.start.remote(path))
            if crashes >= MAX_WORKER_CRASHES:
                kinds[i], reasons[i] = "failed", (f"the embedding worker process died {crashes} times while "
                                                  f"separating or embedding this file")
                continue
            stem_paths = json.loads(stems)
            item = LibraryItem(path, Path(path), tuple(map(Path, stem_paths)) if stem_paths else None)
            try:
                embeddings, offsets, sha1 = embed_item(self.embedder, item)
            except Exception as e:  # a per-file failure: a skip
                skip = skip_of(item, e, 0, 0)
                kinds[i], reasons[i] = skip.kind, skip.reason
            else:  # checked here: a malformed output is the embedder's bug and fails the job
                record = make_record(self.embedder, item, 0.0, 0, 0, embeddings, offsets, sha1)
                out["embeddings"][i] = record.embeddings.tobytes()
                out["offsets"][i] = record.clip_offsets_seconds.tobytes()
                out["clips"][i] = len(record.embeddings)
                out["content_sha1"][i] = sha1
            ray.get(self.ledger.finish.remote(path))
        return {**batch, "skip_kind": np.asarray(kinds, dtype=object), "skip_reason": np.asarray(reasons, dtype=object),
                "embeddings": np.asarray(out["embeddings"], dtype=object),
                "offsets": np.asarray(out["offsets"], dtype=object),
                "clips": np.asarray(out["clips"], dtype=np.int64),
                "content_sha1": np.asarray(out["content_sha1"], dtype=object)}


def _commit_blocks(blocks, todo: Sequence[LibraryItem], embedder: Embedder, store: MetadataStore,
                   replace: dict[str, int], report: BuildReport, index_dir: Path, progress: bool) -> None:
    """Driver: turn the result rows into store rows and commit them block by block (the only writer)."""
    by_path = {str(i.path): i for i in todo}
    failures = 0
    with tqdm(total=len(todo), unit="track", disable=not progress, desc=f"index {index_dir.name} (ray)") as bar:
        for batch in _batches(blocks):
            done: list[TrackRecord] = []
            skips: list[SkippedFile] = []
            for row in range(len(batch["path"])):
                item = by_path[batch["path"][row]]
                size, mtime = item_stat(item)
                if batch["skip_kind"][row]:
                    skip = SkippedFile(str(item.path), str(batch["skip_kind"][row]), str(batch["skip_reason"][row]),
                                       size, mtime)
                    skips.append(skip)
                    failures = check_setup_failures(index_dir, report, len(done), skip, failures)
                    continue
                embeddings = np.frombuffer(batch["embeddings"][row], dtype=np.float32).reshape(
                    int(batch["clips"][row]), embedder.embedding_dim)
                offsets = np.frombuffer(batch["offsets"][row], dtype=np.float64)
                done.append(make_record(embedder, item, float(batch["duration_seconds"][row]), size, mtime,
                                        embeddings.copy(), offsets.copy(), str(batch["content_sha1"][row])))
            commit_block(store, done, skips, replace, report)
            bar.update(len(done) + len(skips))


def _batches(blocks):
    """The result blocks as they finish; a failure of the Ray job is one :class:`MixrepError`."""
    import ray

    try:
        yield from blocks.iter_batches(batch_size=None, batch_format="numpy")
    except ray.exceptions.RayError as e:
        raise MixrepError(f"the Ray job failed (the blocks committed so far are kept; run the build again to "
                          f"resume): {e}") from e

"""An index folder: the SQLite store (truth) plus the FAISS :class:`StyleIndex` derived from it.

Layout of ``INDEX_DIR``::

    metadata.sqlite          tracks, per-clip embeddings, skipped files, encoder hash (WAL mode)
    manifest.json            index type, mode, encoder hash, store generation it was saved at
    vectors-<gen>.faiss      the FAISS structure named by the manifest

A reader (``readonly=True``: ``mixrep search``, ``index info``) memory-maps the IVF inverted lists of
the vectors file (:meth:`StyleIndex.load` with ``mmap=True``), so its RAM holds the quantiser and the
lists its queries touch, not every vector; a writer reads them into RAM.

Opening compares the store's generation with the one the manifest was saved at; when they differ
(a build killed between a commit and a save, a crash during ``remove``) the FAISS index is
reconciled with the store: vectors of tracks the store no longer has are removed, tracks the
index lacks are added from their stored embeddings. So the index never holds a duplicate or
misses a committed track.

The FAISS index is only ever derived from the store, so it is rebuilt from the stored vectors
(with a warning) whenever it cannot be trusted: a damaged or missing ``manifest.json`` or vector
file, or a manifest saved from another store (the manifest records the ``store_id`` of the store
it was derived from; a deleted and recreated store reuses track ids 1..N for other tracks). A
writer (``index build``) then saves the rebuilt index; a reader rebuilds it in memory.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from mixrep.errors import CheckpointError, MixrepError
from mixrep.retrieval.embedder import Embedder, usable_clips
from mixrep.retrieval.faiss_index import MANIFEST, IndexConfig, StyleIndex
from mixrep.retrieval.queries import embed_inputs
from mixrep.retrieval.screening import UNUSABLE_KIND
from mixrep.retrieval.store import STORE_NAME, MetadataStore

log = logging.getLogger(__name__)

LOCK_NAME = ".write.lock"
SEARCH_STEMS_HINT = "Or, with pre-separated stems, query with a stems folder: `mixrep search --stems`."


@dataclass(frozen=True)
class Hit:
    """One ranked library track."""

    rank: int
    track_id: int
    score: float
    path: str
    duration_seconds: float
    tags: dict = field(default_factory=dict)


@dataclass(frozen=True)
class QueryResult:
    """The hits of one query.

    Attributes:
        query: the query's path, or ``id:<track id>``.
        hits: ranked library tracks (empty when ``error`` is set).
        error: why the query could not be embedded (unreadable, too short, a folder without
            stems...), or ``None``.
        silent: the query is silent (see :mod:`mixrep.retrieval.screening`): its hits are meaningless.
    """

    query: str
    hits: list[Hit]
    error: str | None = None
    silent: bool = False


@contextmanager
def write_lock(index_dir: Path) -> Iterator[None]:
    """Exclusive writer lock on an index folder (builds, adds, removes, merges)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK_NAME, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise MixrepError(f"another process is writing the index {index_dir}; wait for it to finish") from e
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class LibraryIndex:
    """Store + FAISS index of one folder. Open with :meth:`open`.

    Args:
        index_dir: the index folder.
        store: its metadata store.
        style_index: its FAISS index, in sync with ``store``.
    """

    def __init__(self, index_dir: Path, store: MetadataStore, style_index: StyleIndex) -> None:
        self.index_dir = index_dir
        self.store = store
        self.style_index = style_index

    @classmethod
    def open(cls, index_dir: str | os.PathLike, readonly: bool = True,
             config: IndexConfig | None = None) -> "LibraryIndex":
        """Open an index folder, reconciling the FAISS index with the store in memory.

        Args:
            readonly: searching only; the folder must hold a store.
            config: index settings for a new or re-configured index (writers only); a config
                different from the saved one rebuilds the FAISS index from the stored vectors.
        """
        index_dir = Path(index_dir)
        store = MetadataStore(index_dir / STORE_NAME, readonly=readonly)
        if store.model_hash is None:
            store.close()
            raise MixrepError(f"the index {index_dir} holds no tracks yet: run `mixrep index build`")
        try:
            saved = _load_derived(index_dir, store, readonly)
            wanted = config or (saved.config if saved else _stored_config(store))
            if saved is None or saved.config != wanted or saved.model_hash != store.model_hash:
                saved = StyleIndex(store.embedding_dim, store.model_hash, wanted)
            index = cls(index_dir, store, saved)
            if saved.extra.get("store_generation") != store.generation():
                index.sync()
        except BaseException:
            store.close()
            raise
        return index

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "LibraryIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ consistency

    def sync(self) -> tuple[int, int]:
        """Make the FAISS index hold exactly the store's tracks; returns ``(added, removed)``.

        Tracks whose stored embeddings are zero or not finite are kept out and named
        (:func:`set_aside_unusable`: quarantined when the store is writable).
        """
        generation = self.store.generation()
        store_ids, index_ids = self.store.track_ids(), self.style_index.track_ids()
        extra = np.setdiff1d(index_ids, store_ids)
        missing = np.setdiff1d(store_ids, index_ids)
        self.style_index.remove(extra.tolist())
        ids, embeddings, unusable = [], [], []
        for batch_ids, batch_embeddings in self.store.iter_embeddings(missing.tolist()):
            for track_id, clips in zip(batch_ids, batch_embeddings):
                if usable_clips(clips):
                    ids.append(track_id)
                    embeddings.append(clips)
                else:
                    unusable.append(track_id)
        if unusable:
            set_aside_unusable(self.store, unusable)
            generation = self.store.generation()
        if ids and len(self.style_index) == 0:  # train any quantiser once, on everything
            self.style_index = StyleIndex.build(ids, embeddings, self.style_index.embedding_dim,
                                                self.style_index.model_hash, self.style_index.config)
        else:
            self.style_index.add(ids, embeddings)
        self.style_index.extra["store_generation"] = generation
        self.style_index.extra["store_id"] = self.store.store_id
        if extra.size or missing.size:
            log.info("index %s reconciled with its store: %d added, %d removed", self.index_dir,
                     missing.size, extra.size)
        return len(ids), int(extra.size)

    def save(self) -> None:
        """Atomically save the FAISS index (the store is saved by its own commits)."""
        self.style_index.save(self.index_dir)

    # ------------------------------------------------------------------ search

    def check_embedder(self, embedder: Embedder) -> None:
        """Refuse an encoder other than the index's (:class:`CheckpointError` naming both)."""
        self.style_index.check_embedder(embedder, self.index_dir)

    def search_embeddings(self, queries: Sequence[np.ndarray], k: int = 10,
                          exclude_track_ids: Sequence[Sequence[int]] | None = None) -> list[list[Hit]]:
        """Hits for each query given as ``(clips, dim)`` embeddings."""
        result = self.style_index.search(list(queries), k, exclude_track_ids)
        records = self.store.get_tracks(np.unique(result.track_ids[result.track_ids >= 0]).tolist())
        out = []
        for ids, scores in zip(result.track_ids, result.scores):
            hits = [Hit(rank + 1, int(t), float(s), records[int(t)].path, records[int(t)].duration_seconds,
                        records[int(t)].tags) for rank, (t, s) in enumerate(zip(ids, scores)) if t >= 0]
            out.append(hits)
        return out

    def search_files(self, embedder: Embedder, paths: Sequence[str | os.PathLike], k: int = 10,
                     stems: bool = False) -> list[QueryResult]:
        """Embed query files (or stems folders with ``stems=True``) and rank the library.

        A query that is itself in the library (same path, or same bytes elsewhere) is never
        returned. A query that cannot be embedded (unreadable, too short, a folder given without
        ``stems``...) gets a result with ``error`` set and no hits; the others are still searched.
        A silent query is searched but flagged (``silent``) and warned about.

        Raises:
            CheckpointError: ``embedder`` is not the encoder that built the index.
            SeparationError: the embedder's separator cannot be loaded (file queries).
            MixrepError: ``stems`` with an encoder that cannot embed stems.
        """
        self.check_embedder(embedder)
        queries = embed_inputs(embedder, paths, stems, SEARCH_STEMS_HINT)
        found = [q for q in queries if q.error is None]
        excludes = [self.store.find(str(q.path.resolve()), q.content_sha1) for q in found]
        hits = iter(self.search_embeddings([q.embeddings for q in found], k, excludes) if found else [])
        return [QueryResult(str(q.path), [], error=q.error) if q.error is not None
                else QueryResult(str(q.path), next(hits), silent=q.silent) for q in queries]

    def search_ids(self, track_ids: Sequence[int], k: int = 10) -> list[QueryResult]:
        """Rank the library against tracks already in it (their stored clip embeddings)."""
        found = {}
        for batch_ids, batch_embeddings in self.store.iter_embeddings(track_ids):
            found.update(zip(batch_ids, batch_embeddings))
        unknown = [int(t) for t in track_ids if int(t) not in found]
        if unknown:
            raise MixrepError(f"no track with id {unknown} in the index {self.index_dir} (see `mixrep index info`)")
        # Like file queries, an id query never returns its own track nor a byte-identical copy.
        records = self.store.get_tracks([int(t) for t in track_ids])
        excludes = [sorted({int(t), *self.store.find(records[int(t)].path, records[int(t)].content_sha1)})
                    for t in track_ids]
        hits = self.search_embeddings([found[int(t)] for t in track_ids], k, excludes)
        return [QueryResult(f"id:{t}", h) for t, h in zip(track_ids, hits)]

    # ------------------------------------------------------------------ info

    def info(self, recall_sample: int | None = None, k: int = 10) -> dict:
        """Counts, encoder, index type and parameters, size on disk, optional recall@k."""
        counts = self.store.counts()
        files = [p for p in self.index_dir.iterdir() if p.is_file() and p.name != LOCK_NAME]
        out = {
            "index_dir": str(self.index_dir),
            **counts,
            "model_hash": self.store.model_hash,
            **{k_: v for k_, v in self.style_index.describe().items() if k_ not in ("model_hash", "tracks")},
            "size_on_disk_bytes": int(sum(p.stat().st_size for p in files)),
            "skipped_files": [asdict(s) for s in self.store.skipped()],
        }
        if recall_sample:
            out["recall_at_k"] = self.style_index.check_recall(recall_sample, k)
            out["recall_k"] = k
            out["recall_sample"] = min(recall_sample, self.style_index.num_vectors)
        return out

    def remove(self, track_ids: Sequence[int]) -> list[int]:
        """Remove tracks from the store, then from the FAISS index, and save; returns removed ids."""
        removed = self.store.remove(track_ids)
        self.sync()
        self.save()
        return removed


def set_aside_unusable(store: MetadataStore, track_ids: Sequence[int]) -> None:
    """Keep tracks whose stored embeddings are zero or not finite out of the index, naming them.

    A writable store quarantines them (:meth:`MetadataStore.quarantine`, kind
    :data:`~mixrep.retrieval.screening.UNUSABLE_KIND`, which the next build re-embeds); a read-only
    one only leaves them out of this search.
    """
    reason = "its stored embedding is zero or not finite (damaged index row)"
    if store.readonly:
        paths = [r.path for r in store.get_tracks(track_ids).values()]
        log.warning("%d tracks of %s have unusable stored embeddings and are left out of the search; run `mixrep "
                    "index build` to re-embed them:\n%s", len(paths), store.path, "\n".join(f"  {p}" for p in paths))
        return
    skips = store.quarantine(track_ids, UNUSABLE_KIND, reason + "; quarantined, the next build re-embeds it")
    log.warning("%d tracks of %s had unusable stored embeddings; quarantined (the next `mixrep index build` "
                "re-embeds them):\n%s", len(skips), store.path, "\n".join(f"  {s.path}: {s.reason}" for s in skips))


def quarantine_unusable(store: MetadataStore) -> list[int]:
    """Scan every stored track and quarantine those with unusable embeddings (:func:`set_aside_unusable`);
    returns their ids. A build runs it first, so it re-embeds them."""
    unusable = [t for batch_ids, batch in store.iter_embeddings() for t, clips in zip(batch_ids, batch)
                if not usable_clips(clips)]
    if unusable:
        set_aside_unusable(store, unusable)
    return unusable


def _load_derived(index_dir: Path, store: MetadataStore, readonly: bool) -> StyleIndex | None:
    """The saved FAISS index if it can be trusted to be derived from ``store``, else ``None`` (rebuild)."""
    then = "rebuilding it in memory (run `mixrep index build` to save it)" if readonly else "rebuilding it"
    if not (index_dir / MANIFEST).exists():
        if any(index_dir.glob("vectors-*.faiss")):  # saved before, its manifest lost since
            log.warning("the FAISS index of %s has no %s; %s from the metadata store", index_dir, MANIFEST, then)
        return None
    try:
        saved = StyleIndex.load(index_dir, mmap=readonly)
    except CheckpointError as e:
        log.warning("the FAISS index of %s is damaged (%s); %s from the metadata store", index_dir, e, then)
        return None
    recorded = saved.extra.get("store_id")
    if recorded != store.store_id:  # equal (None) only for a read-only store that predates store ids
        if recorded is None:
            log.warning("the FAISS index of %s records no store id (saved by an older mixrep); %s from the metadata "
                        "store", index_dir, then)
        else:
            log.warning("the FAISS index of %s was derived from another metadata store (store id %s, the store's is "
                        "%s: it was recreated); %s from the current store", index_dir, recorded, store.store_id, then)
        return None
    return saved


def _stored_config(store: MetadataStore) -> IndexConfig:
    text = store.get_meta("index_config")
    return IndexConfig(**json.loads(text)) if text else IndexConfig()

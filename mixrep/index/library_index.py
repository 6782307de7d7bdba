"""An index folder: the SQLite store (truth) plus the FAISS :class:`StyleIndex` derived from it.

Layout of ``INDEX_DIR``::

    metadata.sqlite          tracks, per-clip embeddings, skipped files, encoder hash (WAL mode)
    manifest.json            index type, mode, encoder hash, store generation it was saved at
    vectors-<gen>.faiss      the FAISS structure named by the manifest

Opening compares the store's generation with the one the manifest was saved at; when they differ
(a build killed between a commit and a save, a crash during ``remove``) the FAISS index is
reconciled with the store: vectors of tracks the store no longer has are removed, tracks the
index lacks are added from their stored embeddings. So the index never holds a duplicate or
misses a committed track.
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

from mixrep.errors import MixrepError
from mixrep.index.embedder import Embedder, check_clip_embeddings
from mixrep.index.faiss_index import MANIFEST, IndexConfig, StyleIndex
from mixrep.index.library import file_sha1
from mixrep.index.store import STORE_NAME, MetadataStore

log = logging.getLogger(__name__)

LOCK_NAME = ".write.lock"


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
    """The hits of one query (``query`` is a path or ``id:<track id>``)."""

    query: str
    hits: list[Hit]


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
            raise MixrepError(f"the index {index_dir} holds no tracks yet: run `mixrep index build`")
        saved = StyleIndex.load(index_dir) if (index_dir / MANIFEST).exists() else None
        wanted = config or (saved.config if saved else _stored_config(store))
        if saved is None or saved.config != wanted or saved.model_hash != store.model_hash:
            saved = StyleIndex(store.embedding_dim, store.model_hash, wanted)
        index = cls(index_dir, store, saved)
        if saved.extra.get("store_generation") != store.generation():
            index.sync()
        return index

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "LibraryIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ consistency

    def sync(self) -> tuple[int, int]:
        """Make the FAISS index hold exactly the store's tracks; returns ``(added, removed)``."""
        generation = self.store.generation()
        store_ids, index_ids = self.store.track_ids(), self.style_index.track_ids()
        extra = np.setdiff1d(index_ids, store_ids)
        missing = np.setdiff1d(store_ids, index_ids)
        self.style_index.remove(extra.tolist())
        ids, embeddings = [], []
        for batch_ids, batch_embeddings in self.store.iter_embeddings(missing.tolist()):
            ids += batch_ids
            embeddings += batch_embeddings
        if ids and len(self.style_index) == 0:  # train any quantiser once, on everything
            self.style_index = StyleIndex.build(ids, embeddings, self.style_index.embedding_dim,
                                                self.style_index.model_hash, self.style_index.config)
        else:
            self.style_index.add(ids, embeddings)
        self.style_index.extra["store_generation"] = generation
        if extra.size or missing.size:
            log.info("index %s reconciled with its store: %d added, %d removed", self.index_dir,
                     missing.size, extra.size)
        return int(missing.size), int(extra.size)

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
        returned.
        """
        self.check_embedder(embedder)
        queries, excludes = [], []
        for path in map(Path, paths):
            if stems:
                if not hasattr(embedder, "embed_stems_clips"):
                    raise MixrepError("this encoder cannot embed pre-separated stems (no embed_stems_clips); "
                                      "query with the mixture instead of --stems")
                stem_files = stem_files_of(path)
                emb, offsets = embedder.embed_stems_clips(stem_files)
            else:
                stem_files = [path]
                emb, offsets = embedder.embed_file_clips(path)
            emb, _ = check_clip_embeddings(emb, offsets, self.style_index.embedding_dim, path)
            queries.append(emb)
            excludes.append(self.store.find(str(path.resolve()), file_sha1(stem_files)))
        hits = self.search_embeddings(queries, k, excludes)
        return [QueryResult(str(p), h) for p, h in zip(paths, hits)]

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


def stem_files_of(folder: Path) -> list[Path]:
    """The stem files of a stems folder, in :data:`mixrep.constants.STEMS` order."""
    from mixrep.constants import AUDIO_EXTENSIONS, STEMS

    files = []
    for stem in STEMS:
        matches = [folder / f"{stem}{ext}" for ext in AUDIO_EXTENSIONS if (folder / f"{stem}{ext}").is_file()]
        if not matches:
            raise MixrepError(f"stems folder {folder} has no {stem} file ({stem}.wav, {stem}.flac, ...)")
        files.append(matches[0])
    return files


def _stored_config(store: MetadataStore) -> IndexConfig:
    text = store.get_meta("index_config")
    return IndexConfig(**json.loads(text)) if text else IndexConfig()

"""``StyleIndex``: a FAISS index of style embeddings keyed by track id, with atomic saves.

Every stored vector has a 64-bit FAISS id ``track_id << 16 | clip`` (``clip`` is 0 for the
aggregate vector), so removing a track removes all of its vectors and a hit maps back to a track.

Index types (cosine = inner product of L2-normalised vectors):
    ``flat``  ``IndexIDMap2(IndexFlatIP)``: exact.
    ``ivf``   ``IndexIVFFlat`` (inner product, spherical k-means quantiser) with a hash-table
              direct map: approximate; ids, removal and reconstruction are native.
    ``hnsw``  ``IndexIDMap2(IndexHNSWFlat)``: approximate; HNSW cannot delete, so ``remove``
              rebuilds the graph from the remaining vectors (O(n)).
    ``auto``  ``flat`` below ``IndexConfig.exact_threshold`` vectors, ``ivf`` at or above it.
    The IVF quantiser is trained inside ``build``/``add`` on the vectors present and retrained
    (with a larger ``nlist``) once the index has grown 4x since (unless ``nlist`` is fixed).

Storage: one ``vectors-<generation>.faiss`` file per save (FAISS's own format). ``load(path, mmap=True)``
(what a search uses) memory-maps the inverted lists of an IVF index instead of reading them, so a
search process holds the quantiser (``nlist`` centroids) in RAM and pages in only the lists its
queries probe; the per-track clip counts and the IVF direct map are built only when something needs
them (clip-mode rescoring, ``remove``, ``len``). Memory-mapped lists are read-only: the first
``add``/``remove``/``save`` copies them into RAM. Flat and HNSW indexes are read into RAM.

Modes:
    ``track`` one vector per track, the normalised mean of its clips (:func:`aggregate_clips`).
    ``clip``  every clip vector; the index proposes candidate tracks from clip hits and each
              candidate is rescored exactly: ``max`` = best cosine over (query clip, track clip)
              pairs, ``mean`` = mean cosine over all pairs.

Shape:
    ``add``/``build`` take one ``(clips, dim)`` array per track. ``search`` takes ``(queries, dim)``
    (one vector per query) or a list of ``(clips, dim)`` arrays (one clip set per query) and
    returns ``(queries, k)`` track ids and scores.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np

from mixrep.errors import CheckpointError, MixrepError
from mixrep.files import atomic_write, atomic_write_text
from mixrep.retrieval.embedder import aggregate_clips, check_embedder_matches, l2_normalize

log = logging.getLogger(__name__)

CLIP_BITS = 16
MAX_CLIPS_PER_TRACK = 1 << CLIP_BITS
MAX_TRACK_ID = (1 << (63 - CLIP_BITS)) - 1
INDEX_TYPES = ("auto", "flat", "ivf", "hnsw")
MODES = ("track", "clip")
CLIP_REDUCTIONS = ("max", "mean")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
RETRAIN_GROWTH = 4.0
"""``auto`` retrains the IVF quantiser once the index holds this many times the vectors it was trained on."""


@dataclass(frozen=True)
class IndexConfig:
    """How vectors are indexed and scored.

    Attributes:
        index_type: ``auto``, ``flat``, ``ivf`` or ``hnsw`` (see module docstring).
        mode: ``track`` (aggregate vector per track) or ``clip`` (every clip vector).
        clip_reduce: ``max`` or ``mean``: a track's score from its clip cosines (``clip`` mode).
        exact_threshold: ``auto`` uses ``flat`` below this many vectors, ``ivf`` from it.
        nlist: IVF inverted lists; ``None`` picks ``4 * sqrt(vectors)`` (at most vectors / 39).
        nprobe: IVF lists visited per query; ``None`` picks 16 (recall@10 0.98-0.99 at 100k-1M
            clustered vectors, see benchmarks/index.py).
        hnsw_m: HNSW neighbours per node.
        ef_construction: HNSW build beam width.
        ef_search: HNSW search beam width (raised to k when k is larger).
        seed: seed of the quantiser's training sample and k-means.
    """

    index_type: str = "auto"
    mode: str = "track"
    clip_reduce: str = "max"
    exact_threshold: int = 50_000
    nlist: int | None = None
    nprobe: int | None = None
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("index_type", self.index_type, INDEX_TYPES),
            ("mode", self.mode, MODES),
            ("clip_reduce", self.clip_reduce, CLIP_REDUCTIONS),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(allowed)}")
        if self.exact_threshold < 1:
            raise ValueError(f"exact_threshold must be >= 1, got {self.exact_threshold}")


@dataclass(frozen=True)
class SearchResult:
    """Ranked tracks for a batch of queries, best first.

    Attributes:
        track_ids: ``(queries, k)`` int64; ``-1`` where fewer than ``k`` tracks qualify.
        scores: ``(queries, k)`` float32 cosine scores; ``nan`` where ``track_ids`` is ``-1``.
    """

    track_ids: np.ndarray
    scores: np.ndarray


def vector_ids(track_id: int, clips: int) -> np.ndarray:
    """FAISS ids of a track's vectors: ``track_id << 16 | clip`` for ``clip < clips``."""
    return (np.int64(track_id) << CLIP_BITS) + np.arange(clips, dtype=np.int64)


def default_nlist(vectors: int) -> int:
    """IVF list count for ``vectors``: ``4 sqrt(n)``, capped so each list has >= 39 training points."""
    return int(max(1, min(round(4 * math.sqrt(vectors)), vectors // 39)))


class StyleIndex:
    """Style embeddings of a track library in a FAISS index.

    Args:
        embedding_dim: size of one embedding.
        model_hash: content hash of the encoder that produced the embeddings.
        config: index type, mode and search parameters.
    """

    def __init__(self, embedding_dim: int, model_hash: str, config: IndexConfig | None = None) -> None:
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}")
        self.embedding_dim = int(embedding_dim)
        self.model_hash = str(model_hash)
        self.config = config or IndexConfig()
        self.extra: dict = {}
        self._clip_counts: dict[int, int] | None = {}  # track id -> vectors stored; None: not counted yet
        self._trained_vectors = 0
        # An IVF quantiser needs training vectors: an empty IVF index starts as flat and becomes IVF
        # on the first add (see _needs_rebuild).
        self._index = self._new_faiss("hnsw" if self.config.index_type == "hnsw" else "flat", None)

    # ----------------------------------------------------------------- construction

    @classmethod
    def build(
        cls,
        track_ids: Sequence[int],
        clip_embeddings: Sequence[np.ndarray],
        embedding_dim: int,
        model_hash: str,
        config: IndexConfig | None = None,
    ) -> "StyleIndex":
        """A new index over the given tracks; trains the IVF quantiser when one is used.

        Shape:
            ``clip_embeddings[i]`` is ``(clips_i, embedding_dim)`` for ``track_ids[i]``, or
            ``clip_embeddings`` is one ``(tracks, embedding_dim)`` array (one vector per track).
        """
        index = cls(embedding_dim, model_hash, config)
        ids, vectors = index._prepare(track_ids, clip_embeddings)
        index._rebuild(ids, vectors)
        return index

    @property
    def index_type(self) -> str:
        """The concrete FAISS structure in use: ``flat``, ``ivf`` or ``hnsw``."""
        if isinstance(self._index, faiss.IndexIVF):
            return "ivf"
        return "hnsw" if isinstance(faiss.downcast_index(self._index.index), faiss.IndexHNSW) else "flat"

    @property
    def _clips(self) -> dict[int, int]:
        """Track id -> number of vectors stored for it (counted from the FAISS ids on first use after a load)."""
        if self._clip_counts is None:
            self._clip_counts = {}
            self._count(self._all_vector_ids())
        return self._clip_counts

    @_clips.setter
    def _clips(self, value: dict[int, int]) -> None:
        self._clip_counts = value

    @property
    def memory_mapped(self) -> bool:
        """True while the IVF inverted lists are read from the memory-mapped vectors file."""
        return self.index_type == "ivf" and isinstance(faiss.downcast_InvertedLists(self._index.invlists),
                                                       faiss.OnDiskInvertedLists)

    @property
    def num_vectors(self) -> int:
        return int(self._index.ntotal)

    def __len__(self) -> int:
        """Number of tracks."""
        return len(self._clips)

    def __contains__(self, track_id: int) -> bool:
        return int(track_id) in self._clips

    def track_ids(self) -> np.ndarray:
        """Sorted ids of the indexed tracks, ``(tracks,)`` int64."""
        return np.array(sorted(self._clips), dtype=np.int64)

    def describe(self) -> dict:
        """Index type, sizes and search parameters, for ``index info``."""
        out = {
            "index_type": self.index_type,
            "configured_index_type": self.config.index_type,
            "mode": self.config.mode,
            "clip_reduce": self.config.clip_reduce if self.config.mode == "clip" else None,
            "tracks": len(self),
            "vectors": self.num_vectors,
            "embedding_dim": self.embedding_dim,
            "model_hash": self.model_hash,
        }
        if self.index_type == "ivf":
            ivf = self._index
            out.update(nlist=int(ivf.nlist), nprobe=int(ivf.nprobe), trained_on_vectors=self._trained_vectors,
                       lists="memory-mapped" if self.memory_mapped else "in memory")
        if self.index_type == "hnsw":
            out.update(hnsw_m=self.config.hnsw_m, ef_search=self.config.ef_search)
        return out

    def check_embedder(self, embedder, index_path: str | os.PathLike = "<in memory>") -> None:
        """Raise :class:`CheckpointError` unless ``embedder`` has this index's hash and size."""
        check_embedder_matches(embedder.model_hash, embedder.embedding_dim, self.model_hash,
                               self.embedding_dim, index_path)

    # ----------------------------------------------------------------- updates

    def add(self, track_ids: Sequence[int], clip_embeddings: Sequence[np.ndarray]) -> None:
        """Add tracks (``(clips, dim)`` embeddings each); ids already present are refused.

        With ``index_type="auto"`` the index switches to IVF (trained on everything) when it
        crosses ``exact_threshold`` vectors; an IVF quantiser is retrained after 4x growth.
        """
        ids, vectors = self._prepare(track_ids, clip_embeddings)
        if ids.size == 0:
            return
        self._make_writable()
        if self._needs_rebuild(self.num_vectors + ids.size):
            old_ids, old_vectors = self.export()
            self._rebuild(np.concatenate([old_ids, ids]), np.concatenate([old_vectors, vectors]))
            return
        self._index.add_with_ids(vectors, ids)
        self._count(ids)

    def remove(self, track_ids: Sequence[int]) -> int:
        """Remove tracks by id (unknown ids are ignored); returns how many tracks were removed."""
        present = [int(t) for t in track_ids if int(t) in self._clips]
        if not present:
            return 0
        self._make_writable()
        ids = np.concatenate([vector_ids(t, self._clips[t]) for t in present])
        if self.index_type == "hnsw":  # HNSW graphs cannot delete: rebuild from what remains
            all_ids, vectors = self.export()
            keep = ~np.isin(all_ids, ids)
            for t in present:
                del self._clips[t]
            self._index = self._new_faiss("hnsw", None)
            self._index.add_with_ids(vectors[keep], all_ids[keep])
            return len(present)
        # IVF with a hash-table direct map only removes by explicit id array; elsewhere a hashed
        # batch selector keeps removal linear in the index size (IDSelectorArray scans the array).
        self._ensure_direct_map()
        selector = (faiss.IDSelectorArray(ids.size, faiss.swig_ptr(ids)) if self.index_type == "ivf"
                    else faiss.IDSelectorBatch(ids.size, faiss.swig_ptr(ids)))
        removed = self._index.remove_ids(selector)
        if removed != ids.size:
            raise MixrepError(f"FAISS removed {removed} vectors instead of {ids.size}; the index is inconsistent")
        for t in present:
            del self._clips[t]
        return len(present)

    # ----------------------------------------------------------------- search

    def search(
        self,
        embeddings: np.ndarray | Sequence[np.ndarray],
        k: int = 10,
        exclude_track_ids: Sequence[Sequence[int]] | Sequence[int] | None = None,
    ) -> SearchResult:
        """Rank indexed tracks by style similarity to each query.

        Args:
            embeddings: ``(queries, dim)`` (one vector per query) or a list of ``(clips, dim)``
                arrays (the clip embeddings of each query track). Rows are L2-normalised here.
            k: tracks to return per query.
            exclude_track_ids: track ids never returned: one list for all queries, or one list
                per query (e.g. the query's own track).

        Returns:
            :class:`SearchResult` with ``(queries, k)`` arrays.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        queries = self._query_sets(embeddings)
        excludes = self._per_query_excludes(exclude_track_ids, len(queries))
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        out_scores = np.full((len(queries), k), np.nan, dtype=np.float32)
        if self.num_vectors == 0:
            return SearchResult(out_ids, out_scores)
        if self.config.mode == "track":
            ranked = self._search_tracks(queries, k, excludes)
        else:
            ranked = [self._search_clips(q, k, ex) for q, ex in zip(queries, excludes)]
        for row, (ids, scores) in enumerate(ranked):
            out_ids[row, : len(ids)] = ids[:k]
            out_scores[row, : len(ids)] = scores[:k]
        return SearchResult(out_ids, out_scores)

    def _search_tracks(self, queries, k, excludes):
        vectors = np.stack([aggregate_clips(q) for q in queries])
        width = min(self.num_vectors, k + max(len(e) for e in excludes))
        scores, ids = self._raw_search(vectors, width)
        ranked = []
        for row_scores, row_ids, ex in zip(scores, ids, excludes):
            keep = (row_ids >= 0) & ~np.isin(row_ids >> CLIP_BITS, list(ex))
            ranked.append((row_ids[keep] >> CLIP_BITS, row_scores[keep]))
        return ranked

    def _search_clips(self, query: np.ndarray, k: int, exclude: set[int]):
        # Candidates: enough clip hits per query clip that the k best tracks by max-cosine are
        # among them for an exact index; then exact rescoring of every candidate's clips.
        max_clips = max(self._clips.values())
        width = min(self.num_vectors, (k + len(exclude)) * max_clips)
        _, ids = self._raw_search(query, width)
        candidates = np.unique(ids[ids >= 0] >> CLIP_BITS)
        candidates = candidates[~np.isin(candidates, list(exclude))]
        if candidates.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores = np.empty(candidates.size, dtype=np.float32)
        self._ensure_direct_map()
        for i, t in enumerate(candidates):
            cosines = query @ self._index.reconstruct_batch(vector_ids(int(t), self._clips[int(t)])).T
            scores[i] = cosines.max() if self.config.clip_reduce == "max" else cosines.mean()
        order = np.lexsort((candidates, -scores))[:k]
        return candidates[order], scores[order]

    def _raw_search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS search of raw vectors: ``(n, k)`` scores and vector ids."""
        k = max(1, min(k, self.num_vectors))
        if self.index_type == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.config.ef_search, k))
            return self._index.search(np.ascontiguousarray(vectors, np.float32), k, params=params)
        return self._index.search(np.ascontiguousarray(vectors, np.float32), k)

    # ----------------------------------------------------------------- quality

    def check_recall(self, sample_size: int = 500, k: int = 10, seed: int = 0) -> float:
        """Recall@k of this index against exact search, on stored vectors used as queries.

        Each query is a stored vector; its own id is left out of both rankings. Recall is the
        fraction of the exact top-k ids the index returns in its top-k (1.0 for ``flat``).
        """
        ids, vectors = self.export()
        if ids.size < 2:
            raise MixrepError("check_recall needs an index with at least 2 vectors")
        k = min(k, ids.size - 1)
        rng = np.random.default_rng(seed)
        rows = rng.choice(ids.size, size=min(sample_size, ids.size), replace=False)
        exact = faiss.IndexFlatIP(self.embedding_dim)
        exact.add(vectors)
        _, exact_rows = exact.search(vectors[rows], k + 1)
        _, approx_ids = self._raw_search(vectors[rows], k + 1)
        hits = 0
        for q, row in enumerate(rows):
            own = int(ids[row])
            truth = [i for i in ids[exact_rows[q]].tolist() if i != own][:k]
            found = [i for i in approx_ids[q].tolist() if i not in (own, -1)][:k]
            hits += len(set(truth) & set(found))
        return hits / (len(rows) * k)

    # ----------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index into folder ``path`` atomically.

        The FAISS data goes to a new ``vectors-<generation>.faiss``, then ``manifest.json`` is
        replaced to point to it (both by :func:`mixrep.files.atomic_write`); older vector files are
        deleted last. A crash at any point leaves the previous manifest and its file loadable.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._make_writable()  # FAISS would write memory-mapped lists as a reference to another file
        self._drop_direct_map()  # not saved: 16 bytes a vector that a search would read into RAM
        generation = _last_generation(path) + 1
        vectors_name = f"vectors-{generation:06d}.faiss"
        with atomic_write(path / vectors_name, prefix=".vectors.") as tmp:
            faiss.write_index(self._index, str(tmp))
        manifest = {
            "format_version": FORMAT_VERSION,
            "generation": generation,
            "vectors_file": vectors_name,
            "embedding_dim": self.embedding_dim,
            "model_hash": self.model_hash,
            "config": asdict(self.config),
            "trained_vectors": self._trained_vectors,
            "extra": self.extra,
        }
        atomic_write_text(path / MANIFEST, json.dumps(manifest, indent=2))
        for stale in path.glob("vectors-*.faiss"):
            if stale.name != vectors_name:
                stale.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = False) -> "StyleIndex":
        """Load an index written by :meth:`save`.

        Args:
            mmap: memory-map the inverted lists of an IVF index instead of reading them into RAM
                (searching only needs the lists its queries probe; see the module docstring).

        Raises:
            CheckpointError: no manifest, an unknown format, or a missing, truncated or corrupt vector file.
        """
        path = Path(path)
        try:
            for attempt in range(3):  # a concurrent save may delete the file an old manifest names
                manifest = _read_manifest(path)
                if (path / manifest["vectors_file"]).exists() or attempt == 2:
                    break
            if manifest.get("format_version") != FORMAT_VERSION:
                raise CheckpointError(
                    f"{path / MANIFEST} has format version {manifest.get('format_version')}, this mixrep reads "
                    f"{FORMAT_VERSION}: rebuild the index"
                )
            index = cls(manifest["embedding_dim"], manifest["model_hash"], IndexConfig(**manifest["config"]))
            vectors_path = path / manifest["vectors_file"]
            index._trained_vectors = int(manifest.get("trained_vectors", 0))
            index.extra = dict(manifest.get("extra", {}))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{path / MANIFEST} is incomplete or malformed ({type(e).__name__}: {e})") from e
        fix = (f"rerun `mixrep index build` (or `mixrep index merge`) on {path}: it re-derives the FAISS index from "
               f"the folder's metadata store")
        try:
            # FAISS checks that every memory-mapped list lies inside the file (a truncated file is refused).
            index._index = faiss.read_index(str(vectors_path), faiss.IO_FLAG_MMAP if mmap else 0)
        except RuntimeError as e:
            raise CheckpointError(f"the FAISS index {vectors_path} of the index folder {path} is missing, truncated "
                                  f"or corrupt; {fix} ({e})") from e
        if index._index.d != index.embedding_dim:
            raise CheckpointError(f"FAISS index {vectors_path} holds {index._index.d}-d vectors, its manifest says "
                                  f"{index.embedding_dim}; {fix}")
        if isinstance(index._index, faiss.IndexIVF):
            lists = faiss.downcast_InvertedLists(index._index.invlists)
            if isinstance(lists, faiss.OnDiskInvertedLists):
                if lists.filename:  # mixrep never writes these
                    raise CheckpointError(f"the FAISS index {vectors_path} keeps its lists in another file "
                                          f"({lists.filename}), which mixrep does not read; {fix}")
                # FAISS would start 32 threads per search to pre-read the probed lists: 1.4 ms against
                # 0.08 ms a query at 20k vectors with the file in the page cache.
                lists.prefetch_nthread = 0
            index._drop_direct_map()  # files saved before this mixrep carry one
        index._clip_counts = None  # counted on first use: a track-mode search never needs it
        return index

    # ----------------------------------------------------------------- internals

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """All stored vectors: ``(n,)`` int64 FAISS ids and ``(n, dim)`` float32 vectors."""
        if self.num_vectors == 0:
            return np.zeros(0, np.int64), np.zeros((0, self.embedding_dim), np.float32)
        if self.index_type == "ivf":
            ids, vectors = [], []
            invlists = self._index.invlists
            for lst in range(self._index.nlist):
                n = invlists.list_size(lst)
                if n == 0:
                    continue
                ids.append(faiss.rev_swig_ptr(invlists.get_ids(lst), n).copy())
                codes = faiss.rev_swig_ptr(invlists.get_codes(lst), n * invlists.code_size).copy()
                vectors.append(codes.view(np.float32).reshape(n, self.embedding_dim))
            return np.concatenate(ids).astype(np.int64), np.concatenate(vectors)
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        return ids, self._index.index.reconstruct_n(0, self.num_vectors)

    def _make_writable(self) -> None:
        """Copy memory-mapped IVF lists into RAM (memory-mapped lists cannot be changed or saved)."""
        if not self.memory_mapped:
            return
        mapped = self._index.invlists
        lists = faiss.ArrayInvertedLists(mapped.nlist, mapped.code_size)
        for lst in range(mapped.nlist):
            n = mapped.list_size(lst)
            if n:
                lists.add_entries(lst, n, mapped.get_ids(lst), mapped.get_codes(lst))
        self._index.replace_invlists(lists, True)
        lists.this.disown()  # the index owns and frees it now
        self._drop_direct_map()  # rebuilt on the new lists when needed

    def _ensure_direct_map(self) -> None:
        """Give an IVF index the id -> (list, offset) hash table that ``remove_ids``/``reconstruct`` need."""
        if self.index_type == "ivf" and self._index.direct_map.type != faiss.DirectMap.Hashtable:
            self._index.set_direct_map_type(faiss.DirectMap.Hashtable)

    def _drop_direct_map(self) -> None:
        if self.index_type == "ivf" and self._index.direct_map.type != faiss.DirectMap.NoMap:
            self._index.set_direct_map_type(faiss.DirectMap.NoMap)

    def _all_vector_ids(self) -> np.ndarray:
        if self.index_type != "ivf":
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        invlists = self._index.invlists
        parts = [faiss.rev_swig_ptr(invlists.get_ids(lst), invlists.list_size(lst)).copy()
                 for lst in range(self._index.nlist) if invlists.list_size(lst)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def _count(self, ids: np.ndarray) -> None:
        tracks, counts = np.unique(ids >> CLIP_BITS, return_counts=True)
        for t, c in zip(tracks.tolist(), counts.tolist()):
            self._clips[t] = self._clips.get(t, 0) + c

    def _prepare(self, track_ids, clip_embeddings) -> tuple[np.ndarray, np.ndarray]:
        """Validate tracks and turn them into (vector ids, normalised vectors) for this mode."""
        if isinstance(clip_embeddings, np.ndarray) and clip_embeddings.ndim == 2:
            return self._prepare_single_vectors(np.asarray(track_ids, dtype=np.int64), clip_embeddings)
        if len(track_ids) != len(clip_embeddings):
            raise ValueError(f"{len(track_ids)} track ids but {len(clip_embeddings)} embedding arrays")
        ids, vectors, seen = [], [], set()
        for t, emb in zip(track_ids, clip_embeddings):
            t = int(t)
            if not 0 <= t <= MAX_TRACK_ID:
                raise ValueError(f"track id {t} outside [0, {MAX_TRACK_ID}]")
            if t in self._clips or t in seen:
                raise ValueError(f"track id {t} is already in the index; remove it first")
            seen.add(t)
            emb = np.asarray(emb, dtype=np.float32)
            if emb.ndim != 2 or emb.shape[1] != self.embedding_dim or emb.shape[0] == 0:
                raise ValueError(
                    f"track {t}: expected (clips>=1, {self.embedding_dim}) embeddings, got shape {emb.shape}"
                )
            if emb.shape[0] > MAX_CLIPS_PER_TRACK:
                raise ValueError(f"track {t}: {emb.shape[0]} clips, at most {MAX_CLIPS_PER_TRACK} are supported")
            rows = aggregate_clips(emb)[None] if self.config.mode == "track" else l2_normalize(emb, f"track {t}")
            ids.append(vector_ids(t, rows.shape[0]))
            vectors.append(rows)
        if not ids:
            return np.zeros(0, np.int64), np.zeros((0, self.embedding_dim), np.float32)
        return np.concatenate(ids), np.ascontiguousarray(np.concatenate(vectors))

    def _prepare_single_vectors(self, track_ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised ``_prepare`` for one vector per track, ``(tracks, dim)`` (same result in both modes)."""
        if vectors.shape != (track_ids.size, self.embedding_dim):
            raise ValueError(f"expected ({track_ids.size}, {self.embedding_dim}) vectors, got shape {vectors.shape}")
        if track_ids.size and (track_ids.min() < 0 or track_ids.max() > MAX_TRACK_ID):
            raise ValueError(f"track ids must lie in [0, {MAX_TRACK_ID}]")
        if np.unique(track_ids).size != track_ids.size \
                or (self._clips and np.isin(track_ids, self.track_ids()).any()):
            raise ValueError("duplicate track ids, or ids already in the index; remove them first")
        return track_ids << CLIP_BITS, l2_normalize(vectors, "embeddings")

    def _query_sets(self, embeddings) -> list[np.ndarray]:
        if isinstance(embeddings, np.ndarray) and embeddings.ndim == 2:
            sets = [row[None] for row in embeddings]
        else:
            sets = [np.asarray(e, dtype=np.float32) for e in embeddings]
        out = []
        for i, q in enumerate(sets):
            if q.ndim != 2 or q.shape[1] != self.embedding_dim or q.shape[0] == 0:
                raise ValueError(f"query {i}: expected (clips>=1, {self.embedding_dim}) embeddings, got shape {q.shape}")
            out.append(l2_normalize(q, f"query {i}"))
        return out

    @staticmethod
    def _per_query_excludes(exclude, n_queries: int) -> list[set[int]]:
        if exclude is None:
            return [set() for _ in range(n_queries)]
        exclude = list(exclude)
        if exclude and all(np.ndim(e) == 0 for e in exclude):
            return [set(int(e) for e in exclude) for _ in range(n_queries)]
        if len(exclude) != n_queries:
            raise ValueError(f"{len(exclude)} exclusion lists for {n_queries} queries")
        return [set(int(t) for t in e) for e in exclude]

    def _target_type(self, vectors: int) -> str:
        if self.config.index_type != "auto":
            return self.config.index_type
        return "ivf" if vectors >= self.config.exact_threshold else "flat"

    def _needs_rebuild(self, vectors_after: int) -> bool:
        target = self._target_type(vectors_after)
        if target != self.index_type:
            return True
        if target == "ivf" and not self._index.is_trained:
            return True
        return (target == "ivf" and self.config.nlist is None
                and vectors_after >= RETRAIN_GROWTH * max(self._trained_vectors, 1))

    def _rebuild(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the FAISS structure by a new one (trained if IVF) holding exactly these vectors."""
        kind = self._target_type(ids.size)
        if kind == "ivf" and ids.size == 0:
            kind = "flat" if self.config.index_type == "auto" else kind
        self._index = self._new_faiss(kind, vectors)
        self._clips = {}
        if ids.size:
            self._index.add_with_ids(vectors, ids)
            self._count(ids)

    def _new_faiss(self, kind: str, training: np.ndarray | None):
        d = self.embedding_dim
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(d))
        if kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(d, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = self.config.ef_construction
            hnsw.hnsw.efSearch = self.config.ef_search
            return faiss.IndexIDMap2(hnsw)
        if training is None or training.shape[0] == 0:
            raise MixrepError("an IVF index needs vectors to train its quantiser; build it from vectors")
        n = training.shape[0]
        nlist = min(self.config.nlist or default_nlist(n), n)
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.spherical = True
        ivf.cp.seed = self.config.seed
        sample_size = min(n, max(nlist * 40, 10_000))  # faiss wants >= 39 per list
        rows = np.random.default_rng(self.config.seed).choice(n, size=sample_size, replace=False)
        log.info("training IVF quantiser: %d lists on %d of %d vectors", nlist, sample_size, n)
        ivf.train(np.ascontiguousarray(training[np.sort(rows)]))
        ivf.nprobe = min(nlist, self.config.nprobe or 16)
        self._trained_vectors = n
        return ivf

    def set_search_params(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change IVF ``nprobe`` / HNSW ``efSearch`` (recall against latency) without rebuilding."""
        if nprobe is not None:
            self.config = replace(self.config, nprobe=nprobe)
            if self.index_type == "ivf":
                self._index.nprobe = min(int(nprobe), self._index.nlist)
        if ef_search is not None:
            self.config = replace(self.config, ef_search=ef_search)


def _last_generation(path: Path) -> int:
    """Highest generation the folder's manifest or vector files name (0 for none); a damaged
    manifest is not an obstacle to saving a new one."""
    numbers = [int(p.stem.split("-", 1)[1]) for p in path.glob("vectors-*.faiss") if p.stem.split("-", 1)[1].isdigit()]
    try:
        numbers.append(int(_read_manifest(path)["generation"]))
    except (CheckpointError, KeyError, TypeError, ValueError):
        pass
    return max(numbers, default=0)


def _read_manifest(path: Path) -> dict:
    try:
        return json.loads((path / MANIFEST).read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"no style index in {path}: {MANIFEST} is missing (build one with `mixrep index build`)") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path / MANIFEST} is corrupt ({e}); `mixrep index build` re-derives it from the "
                              f"metadata store") from e

"""SQLite metadata store of a library index: the source of truth for tracks and their vectors.

One row per track holds its path, duration, file size and mtime, content SHA-1, tags, clip
offsets, the encoder hash and the per-clip embeddings (float32 BLOB). The FAISS index is derived
from these rows (see :mod:`mixrep.retrieval.library_index`), so a build killed between a SQLite commit
and an index save loses nothing and duplicates nothing: the next run re-derives the index.

The database runs in WAL mode: any number of readers work while one writer commits. Each store
gets a random ``store_id`` when it is created; a FAISS index records the id of the store it was
derived from, so a store deleted and recreated (ids 1..N reused by other tracks) is never paired
with the old vectors. A damaged database file raises :class:`StoreError` naming the file, what
SQLite found and what to do, never a raw ``sqlite3`` traceback.

Shape:
    ``TrackRecord.embeddings`` is ``(clips, embedding_dim)`` float32 and
    ``TrackRecord.clip_offsets_seconds`` is ``(clips,)`` seconds.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sqlite3
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from mixrep.errors import CheckpointError, MixrepError
from mixrep.retrieval.embedder import check_embedder_matches

SCHEMA_VERSION = 1
STORE_NAME = "metadata.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tracks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    duration_seconds REAL NOT NULL,
    size_bytes INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_sha1 TEXT NOT NULL,
    tags TEXT NOT NULL,
    clip_offsets_seconds TEXT NOT NULL,
    model_hash TEXT NOT NULL,
    num_clips INTEGER NOT NULL,
    embeddings BLOB NOT NULL,
    added_unix REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tracks_sha1 ON tracks (content_sha1);
CREATE TABLE IF NOT EXISTS skipped (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
);
"""


@dataclass
class TrackRecord:
    """One indexed track.

    Attributes:
        path: absolute path of the audio file (or of the stems folder).
        duration_seconds: track length in seconds.
        size_bytes, mtime_ns: file size and modification time, to notice changed files.
        content_sha1: SHA-1 of the file bytes (finds a query that is a copy of a library track).
        tags: metadata read from the file or the dataset (title, artist, genre...).
        clip_offsets_seconds: ``(clips,)`` start of each embedded clip.
        embeddings: ``(clips, embedding_dim)`` float32 unit-norm clip embeddings.
        model_hash: hash of the encoder that computed ``embeddings``.
        track_id: assigned by the store on insert.
    """

    path: str
    duration_seconds: float
    size_bytes: int
    mtime_ns: int
    content_sha1: str
    clip_offsets_seconds: np.ndarray
    embeddings: np.ndarray | None
    model_hash: str
    tags: dict = field(default_factory=dict)
    track_id: int | None = None


@dataclass(frozen=True)
class SkippedFile:
    """A library file that could not be embedded, with a short ``kind`` and the reason.

    Attributes:
        path: the file (or stems folder, or a source's label for it).
        kind: ``corrupt``, ``short``, ``silent``, ``unreadable``, ``separation``, ``failed``... (see
            :data:`mixrep.retrieval.builder.RETRY_KINDS` for those a rebuild retries).
        reason: what went wrong, for people.
        size_bytes, mtime_ns: the file's state when it failed (a changed file is retried).
        stage: ``embed`` (the build tried the file) or ``listing`` (the library's source dropped it
            before the build saw it: a song folder missing a stem, a corrupt header...).
    """

    path: str
    kind: str
    reason: str
    size_bytes: int = 0
    mtime_ns: int = 0
    stage: str = "embed"


class FileState(NamedTuple):
    """What the store knows of one library path: a track (``track_id``) or a skip (``kind``)."""

    size_bytes: int
    mtime_ns: int
    track_id: int | None
    kind: str | None


class StoreError(MixrepError):
    """The metadata store cannot be used: damaged, not a mixrep store, or locked for too long."""


def _guarded(method):
    """Turn ``sqlite3.DatabaseError`` raised by a store method into a :class:`StoreError`."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generator(self, *args, **kwargs):
            try:
                yield from method(self, *args, **kwargs)
            except sqlite3.DatabaseError as e:
                raise self._store_error(str(e)) from e
        return generator

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            raise self._store_error(str(e)) from e
    return wrapper


class MetadataStore:
    """The SQLite database of an index folder.

    Args:
        path: the ``.sqlite`` file (created with its tables unless ``readonly``).
        readonly: open for reading only (searching); the file must exist.
    """

    def __init__(self, path: str | os.PathLike, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly and not self.path.exists():
            raise CheckpointError(f"no metadata store at {self.path}: build the index with `mixrep index build`")
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        existing = self.path.is_file() and self.path.stat().st_size > 0
        try:
            self._db = sqlite3.connect(uri, uri=True, timeout=60.0, isolation_level=None)
        except sqlite3.DatabaseError as e:
            raise self._store_error(str(e)) from e
        try:
            self._open(readonly, existing)
        except BaseException:
            self._db.close()
            raise

    @_guarded
    def _open(self, readonly: bool, existing: bool) -> None:
        self._db.execute("PRAGMA busy_timeout = 60000")
        tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if existing and "meta" not in tables:  # never write our tables into a damaged or foreign database
            raise self._store_error("no such table: meta")
        if not readonly:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")  # durable against process kills
            self._db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
            if self.get_meta("schema_version") is None:
                self.set_meta({"schema_version": str(SCHEMA_VERSION), "generation": "0"})
            if self.get_meta("store_id") is None:  # new store (or one written before store ids)
                self.set_meta({"store_id": uuid.uuid4().hex})
        version = self.get_meta("schema_version")
        if version != str(SCHEMA_VERSION):
            raise CheckpointError(f"{self.path} has schema version {version}, expected {SCHEMA_VERSION}: rebuild it")

    def _store_error(self, message: str) -> StoreError:
        """A :class:`StoreError` saying which file, what SQLite found (``message``) and what to do."""
        if "locked" in message or "busy" in message:
            return StoreError(f"the index store {self.path} stayed locked by another process for 60 s ({message}); "
                              "wait for the other build or merge to finish and retry")
        if "unable to open" in message or "readonly" in message:
            return StoreError(f"cannot open the index store {self.path} ({message}); check that the folder "
                              "exists and that you may write to it")
        return StoreError(
            f"the index store {self.path} is damaged or not a mixrep index store (SQLite: {message}). It holds "
            f"the tracks and their embeddings (the FAISS files are derived from it), so it cannot be repaired "
            f"from them: restore {self.path.name} from a backup, or move {self.path.parent} aside and rebuild "
            f"the index with `mixrep index build`.")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "MetadataStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ meta

    @_guarded
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    @_guarded
    def set_meta(self, values: dict[str, str]) -> None:
        """Set string values in the ``meta`` table (one transaction)."""
        with self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())

    def bind_encoder(self, model_hash: str, embedding_dim: int) -> None:
        """Record the encoder on first use; afterwards refuse any other.

        Raises:
            CheckpointError: the store holds embeddings of another encoder (names both).
        """
        stored_hash, stored_dim = self.get_meta("model_hash"), self.get_meta("embedding_dim")
        if stored_hash is None:
            self.set_meta({"model_hash": model_hash, "embedding_dim": str(int(embedding_dim))})
            return
        check_embedder_matches(model_hash, embedding_dim, stored_hash, int(stored_dim), self.path.parent)

    @property
    def model_hash(self) -> str | None:
        return self.get_meta("model_hash")

    @property
    def embedding_dim(self) -> int | None:
        value = self.get_meta("embedding_dim")
        return None if value is None else int(value)

    @property
    def store_id(self) -> str | None:
        """Random id given to the store when it was created (``None``: a store read-only since before ids)."""
        return self.get_meta("store_id")

    def generation(self) -> int:
        """A counter bumped by every commit that adds or removes tracks."""
        return int(self.get_meta("generation") or 0)

    # ------------------------------------------------------------------ writes

    @_guarded
    def commit(self, tracks: Iterable[TrackRecord] = (), skipped: Iterable[SkippedFile] = (),
               replace_ids: Iterable[int] = ()) -> list[int]:
        """Insert tracks and skipped files in one transaction; returns the new track ids.

        ``replace_ids`` are deleted in the same transaction (a changed file re-embedded). Either
        everything is committed or nothing is: a kill mid-commit leaves the previous state.
        """
        new_ids = []
        with self._transaction():
            self._db.executemany("DELETE FROM tracks WHERE id = ?", [(int(i),) for i in replace_ids])
            for t in tracks:
                emb = np.ascontiguousarray(t.embeddings, dtype=np.float32)
                self._db.execute("DELETE FROM skipped WHERE path = ?", (t.path,))
                cur = self._db.execute(
                    "INSERT INTO tracks (path, duration_seconds, size_bytes, mtime_ns, content_sha1, tags, "
                    "clip_offsets_seconds, model_hash, num_clips, embeddings, added_unix) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (t.path, float(t.duration_seconds), int(t.size_bytes), int(t.mtime_ns), t.content_sha1,
                     json.dumps(t.tags, sort_keys=True, default=str),
                     json.dumps([round(float(o), 4) for o in t.clip_offsets_seconds]),
                     t.model_hash, int(emb.shape[0]), emb.tobytes(), time.time()),
                )
                t.track_id = int(cur.lastrowid)
                new_ids.append(t.track_id)
            self._db.executemany(
                "INSERT OR REPLACE INTO skipped (path, kind, reason, size_bytes, mtime_ns) VALUES (?, ?, ?, ?, ?)",
                [(s.path, s.kind, s.reason, int(s.size_bytes), int(s.mtime_ns)) for s in skipped],
            )
            self._bump_generation()
        return new_ids

    @_guarded
    def remove(self, track_ids: Iterable[int]) -> list[int]:
        """Delete tracks by id; returns the ids that existed."""
        ids = [int(i) for i in track_ids]
        with self._transaction():
            found = [i for i in ids if self._db.execute("SELECT 1 FROM tracks WHERE id = ?", (i,)).fetchone()]
            self._db.executemany("DELETE FROM tracks WHERE id = ?", [(i,) for i in found])
            self._bump_generation()
        return found

    @_guarded
    def quarantine(self, track_ids: Iterable[int], kind: str, reason: str) -> list[SkippedFile]:
        """Move tracks out of the index into the skipped files (one transaction): their vectors are
        unusable. The skip keeps each file's size and mtime, so a build retries it when ``kind`` is a
        retry kind. Returns the skips (ids that do not exist are ignored)."""
        ids = [int(i) for i in track_ids]
        skips = []
        with self._transaction():
            for i in ids:
                row = self._db.execute("SELECT path, size_bytes, mtime_ns FROM tracks WHERE id = ?", (i,)).fetchone()
                if row is None:
                    continue
                path, size, mtime = row
                skips.append(SkippedFile(path, kind, f"track {i}: {reason}", size, mtime))
                self._db.execute("DELETE FROM tracks WHERE id = ?", (i,))
            self._db.executemany(
                "INSERT OR REPLACE INTO skipped (path, kind, reason, size_bytes, mtime_ns) VALUES (?, ?, ?, ?, ?)",
                [(s.path, s.kind, s.reason, int(s.size_bytes), int(s.mtime_ns)) for s in skips])
            self._bump_generation()
        return skips

    def _bump_generation(self) -> None:
        self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    def _transaction(self):
        return _Transaction(self._db)

    # ------------------------------------------------------------------ reads

    @_guarded
    def track_ids(self) -> np.ndarray:
        """Sorted ids of all tracks, ``(tracks,)`` int64."""
        rows = self._db.execute("SELECT id FROM tracks ORDER BY id").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    @_guarded
    def file_states(self) -> dict[str, FileState]:
        """The :class:`FileState` of every path a build embedded or skipped."""
        out: dict[str, FileState] = {}
        for path, size, mtime, kind in self._db.execute("SELECT path, size_bytes, mtime_ns, kind FROM skipped"):
            out[path] = FileState(size, mtime, None, kind)
        for path, size, mtime, tid in self._db.execute("SELECT path, size_bytes, mtime_ns, id FROM tracks"):
            out[path] = FileState(size, mtime, tid, None)
        return out

    @_guarded
    def iter_embeddings(self, track_ids: Iterable[int] | None = None,
                        batch: int = 2048) -> Iterator[tuple[list[int], list[np.ndarray]]]:
        """Yield ``(ids, [(clips, dim) arrays])`` in batches, for all tracks or the given ids."""
        dim = self.embedding_dim
        if track_ids is None:
            cursor = self._db.execute("SELECT id, num_clips, embeddings FROM tracks ORDER BY id")
            rows = iter(lambda: cursor.fetchmany(batch), [])
        else:
            ids = [int(i) for i in track_ids]
            rows = (self._db.execute(
                f"SELECT id, num_clips, embeddings FROM tracks WHERE id IN ({','.join('?' * len(chunk))}) ORDER BY id",
                chunk).fetchall() for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)))
        for chunk in rows:
            if chunk:
                yield ([r[0] for r in chunk],
                       [np.frombuffer(r[2], dtype=np.float32).reshape(r[1], dim) for r in chunk])

    @_guarded
    def get_tracks(self, track_ids: Iterable[int], with_embeddings: bool = False) -> dict[int, TrackRecord]:
        """Records of the given ids (missing ids are absent from the result)."""
        out = {}
        ids = [int(i) for i in track_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            query = (f"SELECT id, path, duration_seconds, size_bytes, mtime_ns, content_sha1, tags, "
                     f"clip_offsets_seconds, model_hash, num_clips, {'embeddings' if with_embeddings else 'NULL'} "
                     f"FROM tracks WHERE id IN ({','.join('?' * len(chunk))})")
            for row in self._db.execute(query, chunk):
                out[row[0]] = self._record(row)
        return out

    @_guarded
    def find(self, path: str | None = None, content_sha1: str | None = None) -> list[int]:
        """Ids of tracks at ``path`` or with the given content hash."""
        rows = self._db.execute("SELECT id FROM tracks WHERE path = ? OR content_sha1 = ?",
                                (path, content_sha1)).fetchall()
        return sorted(r[0] for r in rows)

    @_guarded
    def ids_for_paths(self, paths: Iterable[str]) -> dict[str, int]:
        out = {}
        for p in paths:
            row = self._db.execute("SELECT id FROM tracks WHERE path = ?", (p,)).fetchone()
            if row:
                out[p] = row[0]
        return out

    @_guarded
    def iter_records(self, batch: int = 1024) -> Iterator[TrackRecord]:
        """Every track with its embeddings, by id."""
        cursor = self._db.execute(
            "SELECT id, path, duration_seconds, size_bytes, mtime_ns, content_sha1, tags, clip_offsets_seconds, "
            "model_hash, num_clips, embeddings FROM tracks ORDER BY id")
        for chunk in iter(lambda: cursor.fetchmany(batch), []):
            yield from (self._record(r) for r in chunk)

    @_guarded
    def skipped(self) -> list[SkippedFile]:
        """Files builds skipped and songs the library's source dropped while listing, by path."""
        rows = self._db.execute("SELECT path, kind, reason, size_bytes, mtime_ns FROM skipped ORDER BY path")
        return sorted([SkippedFile(*r) for r in rows] + self.listing_skips(), key=lambda s: s.path)

    def listing_skips(self) -> list[SkippedFile]:
        """What the last build's source dropped while listing (``stage == "listing"``)."""
        entries = json.loads(self.get_meta("listing_skipped") or "[]")
        return [SkippedFile(path, kind, reason, stage="listing") for path, kind, reason in entries]

    def set_listing_skips(self, skips: Iterable[SkippedFile]) -> None:
        """Replace the listing skips (a build from a source lists the whole library again)."""
        entries = sorted({(s.path, s.kind, s.reason) for s in skips})
        self.set_meta({"listing_skipped": json.dumps(entries)})

    @_guarded
    def counts(self) -> dict:
        """Tracks, clip vectors and skipped files (embedding and listing skips) by kind."""
        tracks, clips = self._db.execute("SELECT COUNT(*), COALESCE(SUM(num_clips), 0) FROM tracks").fetchone()
        skipped = Counter(s.kind for s in self.skipped())
        return {"tracks": int(tracks), "clips": int(clips), "skipped": int(sum(skipped.values())),
                "skipped_by_kind": dict(skipped)}

    def _record(self, row) -> TrackRecord:
        tid, path, duration, size, mtime, sha1, tags, offsets, model_hash, clips, blob = row
        emb = None if blob is None else np.frombuffer(blob, dtype=np.float32).reshape(clips, self.embedding_dim)
        return TrackRecord(path=path, duration_seconds=duration, size_bytes=size, mtime_ns=mtime,
                           content_sha1=sha1, clip_offsets_seconds=np.asarray(json.loads(offsets)),
                           embeddings=emb, model_hash=model_hash, tags=json.loads(tags), track_id=tid)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")

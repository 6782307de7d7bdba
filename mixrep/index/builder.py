"""Resumable library indexing, sharded builds and shard merging.

``build_library_index`` embeds every library file not yet in the store, committing to SQLite in
batches of ``batch_tracks`` (one transaction each) and saving the FAISS index atomically every
``save_every_seconds`` and at the end. Killed at any point, the next run skips exactly the
committed tracks (and the files committed as skipped), re-embeds the uncommitted ones, and
reconciles the FAISS index with the store (see :mod:`mixrep.index.library_index`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from mixrep.audio.io import audio_duration
from mixrep.errors import MixrepError
from mixrep.index.embedder import Embedder, check_clip_embeddings
from mixrep.index.faiss_index import IndexConfig
from mixrep.index.library import LibraryItem, file_sha1, select_shard, source_items, walk_library
from mixrep.index.library_index import LibraryIndex, write_lock
from mixrep.index.store import STORE_NAME, MetadataStore, SkippedFile, TrackRecord

log = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What one ``build`` run did.

    Attributes:
        shard: ``(index, count)`` of this build.
        library_items: files in this shard of the library.
        already_indexed: of those, tracks (or skips) committed by earlier runs.
        embedded: tracks embedded and committed by this run.
        skipped: files this run could not embed (path, kind, reason).
        tracks_in_index: tracks in the index after the run.
        elapsed_seconds: wall time of the run.
    """

    shard: tuple[int, int]
    library_items: int
    already_indexed: int
    embedded: int
    skipped: list[SkippedFile] = field(default_factory=list)
    tracks_in_index: int = 0
    elapsed_seconds: float = 0.0

    @property
    def tracks_per_second(self) -> float:
        return self.embedded / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


def build_library_index(
    embedder: Embedder,
    library: str | os.PathLike | Sequence[str | os.PathLike] | object,
    index_dir: str | os.PathLike,
    *,
    shard: tuple[int, int] = (0, 1),
    config: IndexConfig | None = None,
    batch_tracks: int = 16,
    save_every_seconds: float = 60.0,
    progress: bool = True,
) -> BuildReport:
    """Embed a library into ``index_dir`` (created, or continued where a previous run stopped).

    Args:
        embedder: the encoder (:class:`Embedder`); its hash must match an existing index's.
        library: a folder, an audio file, a list of them, or a ``Source`` (FMA, stems folders).
        index_dir: the index folder.
        shard: ``(index, count)``: embed only the files whose key hashes to this shard.
        config: index type and mode; ``None`` keeps the existing index's (default for a new one).
        batch_tracks: tracks per SQLite transaction (work lost to a kill is at most one batch).
        save_every_seconds: interval of the periodic FAISS saves.
        progress: show a tqdm bar (tracks/s and ETA).

    Returns:
        A :class:`BuildReport`; skipped files are also logged and kept in the store.

    Raises:
        CheckpointError: ``index_dir`` holds embeddings of another encoder.
        MixrepError: another process is writing the index.
    """
    started = time.monotonic()
    index_dir = Path(index_dir)
    items = library_items(library)
    items = select_shard(items, shard)
    with write_lock(index_dir):
        with MetadataStore(index_dir / STORE_NAME) as store:
            store.bind_encoder(embedder.model_hash, embedder.embedding_dim)
            store.set_meta({"shard": f"{shard[0]}/{shard[1]}"})
            if config is not None:
                store.set_meta({"index_config": json.dumps(asdict(config))})
            states = store.file_states()
            todo, replace = [], {}
            for item in items:
                size, mtime = _stat(item)
                state = states.get(str(item.path))
                if state is not None and state[:2] == (size, mtime):
                    continue
                if state is not None and state[2] is not None:
                    replace[str(item.path)] = state[2]  # changed since embedded: re-embed
                todo.append(item)
            report = BuildReport(shard, len(items), len(items) - len(todo), 0)
            last_save = time.monotonic()
            index: LibraryIndex | None = None  # opened at the first periodic save
            done: list[TrackRecord] = []
            new_skips: list[SkippedFile] = []
            bar = tqdm(todo, unit="track", disable=not progress, desc=f"index {index_dir.name}", smoothing=0.1)
            for n, item in enumerate(bar, start=1):
                record = _embed(embedder, item, new_skips)
                if record is not None:
                    done.append(record)
                if len(done) + len(new_skips) >= batch_tracks or n == len(todo):
                    # A changed file is replaced whether it re-embedded or now fails (no stale vectors).
                    changed = [r.path for r in done] + [str(s.path) for s in new_skips]
                    store.commit(done, new_skips, [replace[p] for p in changed if p in replace])
                    report.embedded += len(done)
                    report.skipped += new_skips
                    done, new_skips = [], []
                    if time.monotonic() - last_save >= save_every_seconds:
                        index = index or LibraryIndex.open(index_dir, readonly=False, config=config)
                        index.sync()
                        index.save()
                        last_save = time.monotonic()
            bar.close()
        index = index or LibraryIndex.open(index_dir, readonly=False, config=config)
        with index:
            index.sync()
            index.save()
            report.tracks_in_index = len(index.style_index)
    report.elapsed_seconds = time.monotonic() - started
    if report.skipped:
        log.warning("%d files skipped:\n%s", len(report.skipped),
                    "\n".join(f"  {s.path}: {s.kind}: {s.reason}" for s in report.skipped))
    return report


def merge_indexes(partial_dirs: Sequence[str | os.PathLike], index_dir: str | os.PathLike,
                  config: IndexConfig | None = None, batch_tracks: int = 1024) -> dict:
    """Combine shard indexes into ``index_dir`` (new or existing) and build its FAISS index once.

    Tracks are copied with their stored embeddings (nothing is re-embedded) and get fresh ids; a
    path already in the target is kept once. Re-running a merge after a crash completes it.

    Returns:
        ``{"copied": n, "duplicates": n, "tracks": n}``.

    Raises:
        CheckpointError: the partial indexes were built by different encoders (names both).
    """
    index_dir = Path(index_dir)
    copied = duplicates = 0
    with write_lock(index_dir):
        with MetadataStore(index_dir / STORE_NAME) as out:
            for partial in map(Path, partial_dirs):
                with MetadataStore(partial / STORE_NAME, readonly=True) as src:
                    if src.model_hash is None:
                        log.warning("partial index %s is empty; nothing to merge from it", partial)
                        continue
                    out.bind_encoder(src.model_hash, src.embedding_dim)
                    if config is None and src.get_meta("index_config") and out.get_meta("index_config") is None:
                        out.set_meta({"index_config": src.get_meta("index_config")})
                    known = {p for p, state in out.file_states().items() if state[2] is not None}
                    batch: list[TrackRecord] = []
                    for record in src.iter_records():
                        if record.path in known:
                            duplicates += 1
                            continue
                        batch.append(record)
                        if len(batch) >= batch_tracks:
                            out.commit(batch)
                            copied += len(batch)
                            batch = []
                    out.commit(batch, [s for s in src.skipped() if s.path not in known])
                    copied += len(batch)
            if config is not None:
                out.set_meta({"index_config": json.dumps(asdict(config))})
        tracks = _sync_and_save(index_dir, config)
    return {"copied": copied, "duplicates": duplicates, "tracks": tracks}


def add_files(embedder: Embedder, paths: Sequence[str | os.PathLike], index_dir: str | os.PathLike,
              **kwargs) -> BuildReport:
    """Add files or folders to an existing index (a build over just these paths)."""
    if not (Path(index_dir) / STORE_NAME).exists():
        raise MixrepError(f"no index at {index_dir}: create it with `mixrep index build`")
    return build_library_index(embedder, paths, index_dir, **kwargs)


def library_items(library) -> list[LibraryItem]:
    """Items of a folder/file/list of them, or of a ``Source`` object (anything with ``tracks()``)."""
    if hasattr(library, "tracks") and callable(library.tracks):
        return source_items(library)
    return walk_library(library)


def _sync_and_save(index_dir: Path, config: IndexConfig | None) -> int:
    with LibraryIndex.open(index_dir, readonly=False, config=config) as index:
        index.sync()
        index.save()
        return len(index.style_index)


def _stat(item: LibraryItem) -> tuple[int, int]:
    """``(size_bytes, mtime_ns)`` of a file, summed/maxed over the stems of a stem track."""
    try:
        stats = [os.stat(p) for p in (item.stem_paths or (item.path,))]
    except OSError:
        return -1, -1
    return sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats)


def _embed(embedder: Embedder, item: LibraryItem, skips: list[SkippedFile]) -> TrackRecord | None:
    """Embed one item; on a bad file append a :class:`SkippedFile` and return ``None``."""
    size, mtime = _stat(item)
    files = list(item.stem_paths or (item.path,))
    try:
        if item.stem_paths:
            if not hasattr(embedder, "embed_stems_clips"):
                skips.append(SkippedFile(str(item.path), "unsupported",
                                         "the encoder has no embed_stems_clips for pre-separated stems", size, mtime))
                return None
            embeddings, offsets = embedder.embed_stems_clips(files)
        else:
            embeddings, offsets = embedder.embed_file_clips(item.path)
        duration = audio_duration(files[0])
        sha1 = file_sha1(files)
    except (MixrepError, OSError) as e:
        kind = "unreadable" if isinstance(e, OSError) else "corrupt"
        skips.append(SkippedFile(str(item.path), kind, str(e), size, mtime))
        log.debug("skipping %s: %s", item.path, e)
        return None
    embeddings, offsets = check_clip_embeddings(embeddings, offsets, embedder.embedding_dim, item.path)
    return TrackRecord(path=str(item.path), duration_seconds=duration, size_bytes=size, mtime_ns=mtime,
                       content_sha1=sha1, clip_offsets_seconds=offsets, embeddings=embeddings,
                       model_hash=embedder.model_hash, tags=dict(item.tags))

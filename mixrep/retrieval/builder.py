"""Resumable library indexing, sharded builds and shard merging.

``build_library_index`` embeds every library file not yet in the store, committing to SQLite in
batches of ``batch_tracks`` (one transaction each) and saving the FAISS index atomically every
``save_every_seconds`` and at the end. Killed at any point, the next run skips exactly the
committed tracks (and the files committed as skipped), re-embeds the uncommitted ones, and
reconciles the FAISS index with the store (see :mod:`mixrep.retrieval.library_index`).

What stops a build and what is skipped:
    Problems of the setup stop the build before the first file, with one error: an empty library
    folder, another encoder's index, a separator that cannot load (missing Demucs weights), an
    encoder that cannot embed the stems a library holds, or (caught after the fact) the first
    :data:`MAX_FAILURES_BEFORE_FIRST_SUCCESS` files all failing for reasons that are not about
    them. Every problem of one file is a skip, listed and counted (see
    :mod:`mixrep.retrieval.screening` for the kinds): too short, silent (unless ``include_silent``),
    corrupt, unreadable, failing to separate or to embed. Skips whose reason was not the file
    (:data:`~mixrep.retrieval.screening.RETRY_KINDS`) are retried by the next build; the others only
    once the file changes (or with ``retry_skipped``). Songs a source drops while listing are
    recorded too, so the report and ``index info`` show them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from mixrep.constants import MIN_EMBED_SECONDS
from mixrep.errors import MixrepError
from mixrep.files import digest, file_chunks
from mixrep.retrieval.embedder import Embedder, check_clip_embeddings, load_separator
from mixrep.retrieval.faiss_index import IndexConfig
from mixrep.retrieval.library import LibraryItem, LibraryListing, list_library, select_shard
from mixrep.retrieval.library_index import LibraryIndex, quarantine_unusable, write_lock
from mixrep.retrieval.screening import RETRY_KINDS, classify_failure, screen_track
from mixrep.retrieval.store import STORE_NAME, FileState, MetadataStore, SkippedFile, TrackRecord

log = logging.getLogger(__name__)

MAX_FAILURES_BEFORE_FIRST_SUCCESS = 20
"""A build whose first this-many files all fail to separate or embed (no file embedded yet) stops:
that is a broken setup, not a library of broken files."""

STEMS_HINT = ("Or, with pre-separated stems, index those instead of the mixtures: "
              "`mixrep index build --source stems --library STEMS_ROOT` (<song>/drums.wav, bass.wav, ...).")


@dataclass
class BuildReport:
    """What one ``build`` run did.

    Attributes:
        shard: ``(index, count)`` of this build.
        library_items: tracks (files, or songs of a stems library) in this shard of the library.
        already_indexed: of those, tracks (or skips) committed by earlier runs and not retried.
        embedded: tracks embedded and committed by this run.
        skipped: files this run tried and could not embed (path, kind, reason).
        retried: files skipped by an earlier run that this run tried again.
        dropped: songs the library's source dropped while listing (not in ``library_items``).
        tracks_in_index: tracks in the index after the run.
        elapsed_seconds: wall time of the run.
    """

    shard: tuple[int, int]
    library_items: int
    already_indexed: int
    embedded: int
    skipped: list[SkippedFile] = field(default_factory=list)
    retried: int = 0
    dropped: list[SkippedFile] = field(default_factory=list)
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
    min_seconds: float = MIN_EMBED_SECONDS,
    include_silent: bool = False,
    retry_skipped: bool = False,
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
        min_seconds: shorter tracks are skipped (``short``).
        include_silent: index silent tracks too (with a warning) instead of skipping them; files
            skipped as silent by earlier runs are retried.
        retry_skipped: try every file recorded as skipped again, changed or not.

    Returns:
        A :class:`BuildReport`; skipped files are also logged and kept in the store.

    Raises:
        CheckpointError: ``index_dir`` holds embeddings of another encoder.
        DatasetError: a library path does not exist or a library folder holds no audio.
        SeparationError: the embedder's separator cannot be loaded (before any file is embedded).
        MixrepError: another process is writing the index; the encoder cannot embed the
            library's stems; the first files all failed to embed (see module docs).
    """
    started = time.monotonic()
    index_dir = Path(index_dir)
    listing = list_library(library)
    items = select_shard(listing.items, shard)
    with write_lock(index_dir):
        with MetadataStore(index_dir / STORE_NAME) as store:
            todo, replace, report = start_build(store, embedder, listing, items, shard, config,
                                                include_silent, retry_skipped)
            last_save = time.monotonic()
            index: LibraryIndex | None = None  # opened at the first periodic save
            done: list[TrackRecord] = []
            new_skips: list[SkippedFile] = []
            failures = 0  # files that failed for reasons not about them, while none embedded yet
            bar = tqdm(todo, unit="track", disable=not progress, desc=f"index {index_dir.name}", smoothing=0.1)
            for n, item in enumerate(bar, start=1):
                record = _embed(embedder, item, new_skips, min_seconds, include_silent)
                if record is not None:
                    done.append(record)
                else:
                    failures = check_setup_failures(index_dir, report, len(done), new_skips[-1], failures)
                if len(done) + len(new_skips) >= batch_tracks or n == len(todo):
                    commit_block(store, done, new_skips, replace, report)
                    done, new_skips = [], []
                    if time.monotonic() - last_save >= save_every_seconds:
                        index = index or LibraryIndex.open(index_dir, readonly=False, config=config)
                        index.sync()
                        index.save()
                        last_save = time.monotonic()
            bar.close()
        finish_build(index_dir, config, index, report, started)
    return report


def start_build(store: MetadataStore, embedder: Embedder, listing: LibraryListing, items: Sequence[LibraryItem],
                shard: tuple[int, int], config: IndexConfig | None, include_silent: bool,
                retry_skipped: bool) -> tuple[list[LibraryItem], dict[str, int], BuildReport]:
    """Check the encoder against the store, record the build's settings and plan the work (before any file).

    Returns:
        ``(items to embed, path -> id of the stale track each replaces, the run's report so far)``.
    """
    retry = set(RETRY_KINDS) | ({"silent"} if include_silent else set())
    store.bind_encoder(embedder.model_hash, embedder.embedding_dim)
    store.set_meta({"shard": f"{shard[0]}/{shard[1]}"})
    if config is not None:
        store.set_meta({"index_config": json.dumps(asdict(config))})
    if listing.from_source:
        store.set_listing_skips(listing.dropped)
    quarantine_unusable(store)  # damaged rows become retried skips: re-embedded below
    todo, replace, retried = _plan(items, store.file_states(), retry, retry_skipped)
    _check_embedder_ready(embedder, todo)
    report = BuildReport(shard, len(items), len(items) - len(todo), 0, retried=retried, dropped=listing.dropped)
    return todo, replace, report


def check_setup_failures(index_dir: Path, report: BuildReport, pending: int, skip: SkippedFile,
                         failures: int) -> int:
    """Count a skip towards :data:`MAX_FAILURES_BEFORE_FIRST_SUCCESS` while nothing is embedded yet.

    Args:
        pending: tracks embedded but not yet committed.

    Returns:
        The updated count of failures not about the file.

    Raises:
        MixrepError: the count reached the maximum (a broken setup, not broken files).
    """
    if skip.kind not in ("separation", "failed") or report.embedded + pending > 0:
        return failures
    failures += 1
    if failures >= MAX_FAILURES_BEFORE_FIRST_SUCCESS:
        raise MixrepError(
            f"the first {failures} files of {index_dir} all failed to embed, e.g. {skip.path}: {skip.reason}. "
            f"That is a problem of the encoder or its setup, not of the files; fix it and run the build again "
            f"(these files will be retried).")
    return failures


def commit_block(store: MetadataStore, done: list[TrackRecord], skips: list[SkippedFile],
                 replace: dict[str, int], report: BuildReport) -> None:
    """Commit one block of tracks and skips in one transaction and count them in ``report``."""
    # A changed file is replaced whether it re-embedded or now fails (no stale vectors).
    changed = [r.path for r in done] + [str(s.path) for s in skips]
    store.commit(done, skips, [replace[p] for p in changed if p in replace])
    report.embedded += len(done)
    report.skipped += skips


def finish_build(index_dir: Path, config: IndexConfig | None, index: LibraryIndex | None, report: BuildReport,
                 started: float) -> None:
    """Reconcile and save the FAISS index with the store (trained here when IVF), finish ``report``, log skips."""
    index = index or LibraryIndex.open(index_dir, readonly=False, config=config)
    with index:
        index.sync()
        index.save()
        report.tracks_in_index = len(index.style_index)
    report.elapsed_seconds = time.monotonic() - started
    left_out = report.skipped + report.dropped
    if left_out:
        log.warning("%d tracks left out:\n%s", len(left_out),
                    "\n".join(f"  {s.path}: {s.kind}: {s.reason}" for s in left_out))


def _plan(items: Sequence[LibraryItem], states: dict[str, FileState], retry_kinds: set[str],
          retry_all: bool) -> tuple[list[LibraryItem], dict[str, int], int]:
    """``(items to embed, path -> id of the stale track to replace, skips retried)``."""
    todo, replace, retried = [], {}, 0
    for item in items:
        state = states.get(str(item.path))
        if state is None:
            todo.append(item)
            continue
        skipped = state.track_id is None
        if skipped and (retry_all or state.kind in retry_kinds):
            retried += 1
        elif (state.size_bytes, state.mtime_ns) == item_stat(item):
            continue
        elif not skipped:
            replace[str(item.path)] = state.track_id  # changed since embedded: re-embed
        todo.append(item)
    return todo, replace, retried


def _check_embedder_ready(embedder: Embedder, todo: Sequence[LibraryItem]) -> None:
    """Stop before the first file if the embedder cannot handle this library at all."""
    if any(item.stem_paths for item in todo) and not hasattr(embedder, "embed_stems_clips"):
        raise MixrepError("this library holds pre-separated stems but the encoder has no embed_stems_clips; "
                          "index the mixtures instead")
    if any(not item.stem_paths for item in todo):
        load_separator(embedder, STEMS_HINT)


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
    dropped: dict[str, SkippedFile] = {}  # listing skips of the partials (each lists the whole library)
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
                    known = {p for p, state in out.file_states().items() if state.track_id is not None}
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
                    out.commit(batch, [s for s in src.skipped() if s.path not in known and s.stage == "embed"])
                    copied += len(batch)
                    dropped.update({s.path: s for s in src.listing_skips()})
            if dropped:
                out.set_listing_skips([*out.listing_skips(), *dropped.values()])
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


def _sync_and_save(index_dir: Path, config: IndexConfig | None) -> int:
    with LibraryIndex.open(index_dir, readonly=False, config=config) as index:
        index.sync()
        index.save()
        return len(index.style_index)


def item_stat(item: LibraryItem) -> tuple[int, int]:
    """``(size_bytes, mtime_ns)`` of a file, summed/maxed over the stems of a stem track."""
    try:
        stats = [os.stat(p) for p in (item.stem_paths or (item.path,))]
    except OSError:
        return -1, -1
    return sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats)


def embed_item(embedder: Embedder, item: LibraryItem) -> tuple[np.ndarray, np.ndarray, str]:
    """The embedder's clips of one screened item and its content SHA-1.

    Returns:
        ``(embeddings (clips, embedding_dim), offsets_seconds (clips,), content_sha1)``, unchecked.

    Raises:
        Exception: any failure of the file (the caller makes it a skip with :func:`skip_of`).
    """
    files = list(item.stem_paths or (item.path,))
    embeddings, offsets = (embedder.embed_stems_clips(files) if item.stem_paths
                           else embedder.embed_file_clips(item.path))
    return embeddings, offsets, digest(file_chunks(files), "sha1")  # the store's content_sha1: keep SHA-1


def skip_of(item: LibraryItem, error: Exception, size_bytes: int, mtime_ns: int) -> SkippedFile:
    """The recorded skip of a per-file failure."""
    kind, reason = classify_failure(error)
    log.debug("skipping %s: %s: %s", item.path, kind, reason)
    return SkippedFile(str(item.path), kind, reason, size_bytes, mtime_ns)


def make_record(embedder: Embedder, item: LibraryItem, duration_seconds: float, size_bytes: int, mtime_ns: int,
                embeddings: np.ndarray, offsets_seconds: np.ndarray, content_sha1: str) -> TrackRecord:
    """The store row of an embedded item, after checking the embedder's output.

    Raises:
        ValueError: malformed output: a bug of the embedder, which stops the build (not a skip).
    """
    embeddings, offsets_seconds = check_clip_embeddings(embeddings, offsets_seconds, embedder.embedding_dim,
                                                        item.path)
    return TrackRecord(path=str(item.path), duration_seconds=duration_seconds, size_bytes=size_bytes,
                       mtime_ns=mtime_ns, content_sha1=content_sha1, clip_offsets_seconds=offsets_seconds,
                       embeddings=embeddings, model_hash=embedder.model_hash, tags=dict(item.tags))


def _embed(embedder: Embedder, item: LibraryItem, skips: list[SkippedFile], min_seconds: float,
           include_silent: bool) -> TrackRecord | None:
    """Embed one item; on any problem of the file append a :class:`SkippedFile` and return ``None``.

    The embedder's output is checked outside the per-file net: a malformed output is a bug of the
    embedder and stops the build.
    """
    size, mtime = item_stat(item)
    try:
        duration = screen_track(list(item.stem_paths or (item.path,)), min_seconds, include_silent)
        embeddings, offsets, sha1 = embed_item(embedder, item)
    except Exception as e:  # every per-file failure is a skip; KeyboardInterrupt & co. are not Exceptions
        skips.append(skip_of(item, e, size, mtime))
        return None
    return make_record(embedder, item, duration, size, mtime, embeddings, offsets, sha1)

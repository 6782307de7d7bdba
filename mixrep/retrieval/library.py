"""What to index: audio files found under folders, explicit files, or the tracks of a source.

A :class:`LibraryItem` names one track by a ``key`` that does not depend on where the library
is mounted (the path relative to the folder given, or a source's track id); shards are assigned
from that key, so every machine computes the same partition of the same library.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from mixrep.constants import AUDIO_EXTENSIONS, STEMS
from mixrep.errors import DatasetError
from mixrep.files import hash64, require_stem_files
from mixrep.retrieval.store import SkippedFile


@dataclass(frozen=True)
class LibraryItem:
    """One track to embed.

    Attributes:
        key: mount-independent name (relative path or source track id); decides the shard.
        path: the file the store records (absolute); the stems folder for stem tracks.
        stem_paths: one file per stem in ``STEMS`` order for pre-separated tracks, else ``None``.
        tags: metadata known without reading the file (from a dataset's tables).
    """

    key: str
    path: Path
    stem_paths: tuple[Path, ...] | None = None
    tags: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class LibraryListing:
    """What a library holds: the items to embed and what its source dropped while listing.

    Attributes:
        items: the tracks, sorted by path.
        dropped: songs a source left out before any embedding (a folder missing a stem, a corrupt
            header...), one entry per song; empty for folders walked by :func:`walk_library`.
        from_source: listed through a ``Source`` (whose listing replaces the recorded drops).
    """

    items: list[LibraryItem]
    dropped: list[SkippedFile] = field(default_factory=list)
    from_source: bool = False


def list_library(library) -> LibraryListing:
    """Items of a folder, a file, a list of them, or a ``Source`` object (anything with ``tracks()``)."""
    if hasattr(library, "tracks") and callable(library.tracks):
        return LibraryListing(source_items(library), source_drops(library), from_source=True)
    return LibraryListing(walk_library(library))


def audio_file_argument(path: str | os.PathLike) -> Path:
    """``path`` if it is a file; a folder or a missing path gets an error saying what to pass instead.

    Raises:
        DatasetError: ``path`` is a folder (a stems folder needs ``--stems``) or does not exist.
    """
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{path} is a folder, not an audio file: a folder of stems "
                           f"({', '.join(f'{s}.wav' for s in STEMS)}, any audio extension) needs --stems; "
                           f"a folder of songs is a library (`mixrep index build --library {path}`)")
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    return path


def stems_folder_argument(path: str | os.PathLike) -> list[Path]:
    """The stem files of a stems folder given with ``--stems``, by :func:`mixrep.files.require_stem_files`.

    Raises:
        DatasetError: ``path`` is an audio file (say so: drop ``--stems``), not a folder, or lacks a stem.
    """
    path = Path(path)
    if path.is_file():
        raise DatasetError(f"{path} is a file, not a folder of stems: give audio files without --stems")
    return list(require_stem_files(path))


def walk_library(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[LibraryItem]:
    """Audio files under folders (recursive, hidden entries skipped) and explicit files, sorted by path.

    Raises:
        DatasetError: a path does not exist, a folder holds no audio file, or a file has an
            extension other than :data:`mixrep.constants.AUDIO_EXTENSIONS`.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    items: dict[Path, LibraryItem] = {}
    for given in map(Path, paths):
        if given.is_dir():
            root = given.resolve()
            found = 0
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in filenames:
                    file = Path(dirpath) / name
                    if not name.startswith(".") and file.suffix.lower() in AUDIO_EXTENSIONS:
                        items.setdefault(file, LibraryItem(file.relative_to(root).as_posix(), file))
                        found += 1
            if not found:
                raise DatasetError(f"library folder {given} holds no audio files ({', '.join(AUDIO_EXTENSIONS)}, "
                                   f"hidden files ignored): point --library at a folder of songs")
        elif given.is_file():
            if given.suffix.lower() not in AUDIO_EXTENSIONS:
                raise DatasetError(f"{given} is not an audio file mixrep reads ({', '.join(AUDIO_EXTENSIONS)})")
            file = given.resolve()
            items.setdefault(file, LibraryItem(file.name, file))
        else:
            raise DatasetError(f"library path {given} does not exist")
    return [items[p] for p in sorted(items)]


def source_items(source) -> list[LibraryItem]:
    """Items of a :class:`mixrep.tracks.Source` (FMA, stems folders...): mixtures or stems."""
    items = []
    for track in source.tracks():
        if track.audio_path is not None:
            path, stems = Path(track.audio_path).resolve(), None
        elif track.stem_paths:
            stems = tuple(Path(p).resolve() for p in track.stem_paths)
            path = stems[0].parent
        else:
            raise DatasetError(f"track {track.track_id} of source {source.name} has neither audio nor stems")
        items.append(LibraryItem(str(track.track_id), path, stems, dict(track.metadata)))
    return sorted(items, key=lambda i: str(i.path))


def source_drops(source) -> list[SkippedFile]:
    """What ``source`` dropped while listing (``source.skipped``), one :class:`SkippedFile` per song.

    A stems source probes each stem file and records each bad one; they are grouped here under
    their song folder, so a song counts once.
    """
    by_song: dict[str, list[tuple[str, str, str]]] = {}
    for label, kind, reason in source.skipped.entries:
        path = Path(label)
        song = path.parent if path.suffix.lower() in AUDIO_EXTENSIONS and path.stem.lower() in STEMS else path
        by_song.setdefault(str(song), []).append((path.name, kind, reason))
    drops = []
    for song, entries in by_song.items():
        reason = entries[0][2] if len(entries) == 1 else "; ".join(f"{name}: {reason}" for name, _, reason in entries)
        drops.append(SkippedFile(song, entries[0][1], reason, stage="listing"))
    return sorted(drops, key=lambda s: s.path)


def shard_of(key: str, num_shards: int) -> int:
    """Shard of a library key: :func:`mixrep.files.hash64` of the key modulo ``num_shards`` (stable across machines)."""
    return hash64(key) % num_shards


def select_shard(items: Iterable[LibraryItem], shard: tuple[int, int]) -> list[LibraryItem]:
    """The items of shard ``shard = (index, count)``, ``0 <= index < count``."""
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"invalid shard {index}/{count}: need 0 <= index < count")
    return [i for i in items if count == 1 or shard_of(i.key, count) == index]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)``."""
    try:
        index, count = (int(p) for p in text.split("/"))
    except ValueError as e:
        raise ValueError(f"shard {text!r} must look like I/N, e.g. 0/4") from e
    select_shard([], (index, count))
    return index, count

"""What to index: audio files found under folders, explicit files, or the tracks of a source.

A :class:`LibraryItem` names one track by a ``key`` that does not depend on where the library
is mounted (the path relative to the folder given, or a source's track id); shards are assigned
from that key, so every machine computes the same partition of the same library.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from mixrep.constants import AUDIO_EXTENSIONS
from mixrep.errors import DatasetError


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


def is_audio_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS


def walk_library(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[LibraryItem]:
    """Audio files under folders (recursive, hidden entries skipped) and explicit files, sorted by path.

    Raises:
        DatasetError: a path does not exist, or a file has an extension other than
            :data:`mixrep.constants.AUDIO_EXTENSIONS`.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    items: dict[Path, LibraryItem] = {}
    for given in map(Path, paths):
        if given.is_dir():
            root = given.resolve()
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in filenames:
                    file = Path(dirpath) / name
                    if not name.startswith(".") and file.suffix.lower() in AUDIO_EXTENSIONS:
                        items.setdefault(file, LibraryItem(file.relative_to(root).as_posix(), file))
        elif given.is_file():
            if given.suffix.lower() not in AUDIO_EXTENSIONS:
                raise DatasetError(f"{given} is not an audio file mixrep reads ({', '.join(AUDIO_EXTENSIONS)})")
            file = given.resolve()
            items.setdefault(file, LibraryItem(file.name, file))
        else:
            raise DatasetError(f"library path {given} does not exist")
    return [items[p] for p in sorted(items)]


def source_items(source) -> list[LibraryItem]:
    """Items of a :class:`mixrep.data.tracks.Source` (FMA, stems folders...): mixtures or stems."""
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


def shard_of(key: str, num_shards: int) -> int:
    """Shard of a library key: SHA-1 of the key modulo ``num_shards`` (stable across machines)."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") % num_shards


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


def file_sha1(paths: Sequence[Path], chunk_bytes: int = 1 << 20) -> str:
    """SHA-1 of the bytes of the given files, concatenated in order (one file, or every stem)."""
    digest = hashlib.sha1()
    for file in paths:
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(chunk_bytes), b""):
                digest.update(block)
    return digest.hexdigest()

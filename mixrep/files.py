"""Files, one rule each: atomic writes, content hashing, and which files of a folder are the stems.

- :func:`atomic_write` (and :func:`atomic_write_bytes` / :func:`atomic_write_text` on top of it):
  every file mixrep writes (audio, stem-cache entries, corpus manifests, index manifests) is
  written to a temporary file in the destination's file system, flushed and fsynced, renamed onto
  its final name, and the folder is fsynced. A reader sees the old file or the new one, never a
  partial one; a writer killed mid-way leaves at most a temporary file. Written files get the mode
  a plain ``open(path, "w")`` would give them (``0o666`` minus the process umask), like the
  SQLite store does, whatever creates the temporary file.
- :class:`StagedFiles`: several files written all or none (each to a temporary file beside its
  destination, published together by :meth:`StagedFiles.commit`, which puts every old file back if
  one publication fails); :func:`check_output_file` tells before any work whether a path can be
  written.
- :func:`digest` / :func:`file_chunks` / :func:`hash64`: content hashes (hex digests of bytes and
  strings, of file contents, and a stable 64-bit integer of a key for splits and shards).
- :func:`find_stem_files` / :func:`pick_stem_files` / :func:`require_stem_files`: the one rule
  saying which files of a song folder are its stems (API, data sources and the index agree).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from mixrep.constants import STEMS
from mixrep.errors import DatasetError, OutputError

# ----------------------------------------------------------------------------- atomic writes

_NEW_FILE_MODE = 0o666
"""Mode requested for new files; the kernel removes the umask's bits, as for ``open()``."""


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where unsupported."""
    with contextlib.suppress(OSError):  # Windows and some network file systems cannot open folders
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _create_temp(folder: Path, prefix: str, suffix: str) -> Path:
    """Create an empty, unique file in ``folder`` with the umask's mode (``mkstemp`` forces 0600)."""
    for _ in range(100):
        candidate = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"could not create a unique temporary file in {folder}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, tmp_dir: str | os.PathLike | None = None,
                 prefix: str | None = None) -> Iterator[Path]:
    """Write ``path`` atomically: yields a temporary path to write (by any means), then publishes it.

    The temporary file already exists (empty) with the final mode; write it with ``open``,
    ``np.save``, an audio writer... When the block exits normally the file is fsynced, renamed
    onto ``path`` (replacing any old file) and the folder is fsynced. When it raises, the
    temporary file is removed and ``path`` is untouched.

    Args:
        path: final location; its folder is created if missing.
        tmp_dir: where the temporary file lives (default: ``path``'s folder); must be on the same
            file system for the rename to be atomic.
        prefix: temporary file name prefix (default ``.<name>.``); the suffix is ``path``'s, so
            writers that pick a format from the extension work.

    Example:
        >>> with atomic_write("out/song.wav") as tmp:
        ...     write_wav(tmp, audio)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tmp_dir) if tmp_dir is not None else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(folder, prefix if prefix is not None else f".{path.name}.", path.suffix)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, **options) -> Path:
    """Atomically replace ``path`` with ``data`` (see :func:`atomic_write` for ``options``)."""
    with atomic_write(path, **options) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, **options) -> Path:
    """Atomically replace ``path`` with ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"), **options)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagedFiles:
    """Write several files all or none.

    Each file is written to a temporary file in its destination's folder; :meth:`commit` renames
    them all onto their names. If one rename fails, the files already renamed are taken back (an
    old file they replaced is restored) and the error is raised; leaving the ``with`` block without
    a commit (an error while writing) removes every temporary file. Either way no destination is
    left half-written or changed.

    Example:
        >>> with StagedFiles() as staged:
        ...     with staged.file("out/mix.wav") as tmp:
        ...         write_wav(tmp, audio)
        ...     staged.write_text("out/mix.json", text)
        ...     staged.commit()
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []  # (temporary file, destination)

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()

    @contextlib.contextmanager
    def file(self, path: str | os.PathLike) -> Iterator[Path]:
        """Yield a temporary path to write ``path``'s content to (same suffix, same folder)."""
        path = Path(path)
        if any(dest == path for _, dest in self._pending):
            raise OutputError(f"{path} is written twice; give every output its own name")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_temp(path.parent, f".{path.name}.", path.suffix)
        self._pending.append((tmp, path))
        yield tmp
        _fsync_file(tmp)

    def write_text(self, path: str | os.PathLike, text: str) -> Path:
        with self.file(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return Path(path)

    def commit(self) -> list[Path]:
        """Publish every staged file (all or none); returns the destinations."""
        done: list[tuple[Path, Path | None]] = []  # (destination, backup of its old file)
        try:
            for tmp, dest in self._pending:
                backup = None
                if os.path.lexists(dest):
                    backup = _create_temp(dest.parent, f".{dest.name}.old.", dest.suffix)
                    try:
                        os.replace(dest, backup)
                    except BaseException:
                        with contextlib.suppress(OSError):
                            os.unlink(backup)
                        raise
                done.append((dest, backup))
                os.replace(tmp, dest)
        except BaseException:
            for dest, backup in reversed(done):
                with contextlib.suppress(OSError):
                    if backup is not None:
                        os.replace(backup, dest)
                    else:
                        os.unlink(dest)
            raise
        for dest, backup in done:
            if backup is not None:
                with contextlib.suppress(OSError):
                    os.unlink(backup)
        for folder in {dest.parent for dest, _ in done}:
            fsync_dir(folder)
        published = [dest for dest, _ in done]
        self._pending = []
        return published

    def discard(self) -> None:
        """Remove every temporary file not yet published."""
        for tmp, _ in self._pending:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._pending = []


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_file(path: str | os.PathLike, what: str = "output",
                      inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Check, before any work, that ``path`` can be written as a file; returns it.

    The path must not be a folder nor one of the ``inputs`` a command reads (same path or hard link:
    writing it would destroy it); its nearest existing ancestor must be a folder (not a file) in
    which a file can be created (probed by creating and removing one, which also catches read-only
    file systems and immutable folders, for root too). Folders missing below it are created only
    when the file is written.

    Raises:
        OutputError: naming the path, what stands in the way, and what to do.
    """
    path = Path(path)
    for source in inputs:
        if _same_file(path, Path(source)):
            raise OutputError(f"{what} {path} is an input ({source}); writing it would destroy it: write elsewhere")
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name (e.g. {path / 'mix.wav'})")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"cannot write {what} {path}: {ancestor} is a file, not a folder; choose another location")
    try:
        probe = _create_temp(ancestor, ".mixrep-write-check.", "")
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"cannot write {what} {path}: {ancestor} is not writable ({e.strerror}); choose a "
                          f"writable folder") from e
    return path


def save_figure(fig, path: str | os.PathLike, **savefig_options) -> Path:
    """Write a matplotlib figure atomically (format from ``path``'s extension), then close it."""
    import matplotlib.pyplot as plt  # only called with a figure, so matplotlib is already loaded

    path = Path(path)
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or None, **savefig_options)
    finally:
        plt.close(fig)
    return path


# ----------------------------------------------------------------------------- hashing

def digest(parts: Iterable[bytes | str] | bytes | str, algorithm: str = "sha256", digits: int | None = None) -> str:
    """Hex digest of the concatenated ``parts`` (strings are UTF-8 encoded), optionally truncated.

    Args:
        parts: one bytes/str value or an iterable of them (e.g. :func:`file_chunks`).
        algorithm: any :mod:`hashlib` name (``sha256``, ``sha1``...).
        digits: keep the first this-many hex digits.
    """
    hasher = hashlib.new(algorithm)
    for part in (parts,) if isinstance(parts, (bytes, str)) else parts:
        hasher.update(part.encode("utf-8") if isinstance(part, str) else part)
    text = hasher.hexdigest()
    return text if digits is None else text[:digits]


def file_chunks(paths: Sequence[str | os.PathLike], chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of the given files, in order, in chunks (feed to :func:`digest`)."""
    for path in paths:
        with open(path, "rb") as f:
            yield from iter(lambda: f.read(chunk_bytes), b"")


def hash64(key: str) -> int:
    """A stable 64-bit integer of ``key``: the first 8 bytes of its SHA-1, big-endian.

    The same on every machine and Python version (unlike ``hash()``): splits use
    ``hash64(key) / 2**64``, shards ``hash64(key) % num_shards``.
    """
    return int(digest(key, "sha1", digits=16), 16)


# ----------------------------------------------------------------------------- stem files

STEM_EXTENSION_PREFERENCE: tuple[str, ...] = (".wav", ".flac", ".aiff", ".aif", ".ogg", ".m4a", ".mp3")
"""Which file is a stem when a folder holds several (``vocals.wav`` and ``vocals.mp3``): the
first extension here, lossless before lossy. Every :data:`~mixrep.constants.AUDIO_EXTENSIONS` is listed."""


def pick_stem_files(names: Iterable[str]) -> dict[str, str]:
    """The rule, on the file names of one folder: ``{stem: file name}`` for the stems present.

    A file is stem ``s`` when its name without extension equals ``s`` ignoring case
    (``Vocals.WAV`` is the vocals) and its extension is an audio one; hidden files are ignored.
    Several candidates for one stem: the extension earliest in :data:`STEM_EXTENSION_PREFERENCE`
    wins, then the smallest name in code-point order (``Drums.wav`` before ``drums.wav``), so
    the choice never depends on directory listing order.
    """
    rank = {ext: i for i, ext in enumerate(STEM_EXTENSION_PREFERENCE)}
    best: dict[str, tuple[int, str]] = {}
    for name in names:
        base, ext = os.path.splitext(name)
        stem, ext = base.lower(), ext.lower()
        if name.startswith(".") or stem not in STEMS or ext not in rank:
            continue
        candidate = (rank[ext], name)
        if stem not in best or candidate < best[stem]:
            best[stem] = candidate
    return {stem: best[stem][1] for stem in STEMS if stem in best}


def find_stem_files(folder: str | os.PathLike) -> dict[str, Path]:
    """``{stem: path}`` of the stems present in ``folder`` by :func:`pick_stem_files` (maybe incomplete)."""
    folder = Path(folder)
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.is_file()]
    except OSError as e:
        raise DatasetError(f"cannot list the stems folder {folder}: {e}") from e
    return {stem: folder / name for stem, name in pick_stem_files(names).items()}


def require_stem_files(folder: str | os.PathLike) -> tuple[Path, ...]:
    """One file per stem in :data:`~mixrep.constants.STEMS` order, or a :class:`DatasetError`.

    Raises:
        DatasetError: ``folder`` is not a folder, or lacks some stems (named in the message).
    """
    folder = Path(folder)
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DatasetError(f"stems folder {folder} {problem}; pass a folder holding "
                           f"{', '.join(f'{s}.wav' for s in STEMS)} (any audio extension)")
    found = find_stem_files(folder)
    missing = [stem for stem in STEMS if stem not in found]
    if missing:
        raise DatasetError(f"stems folder {folder} has no {', '.join(missing)} file; expected one file per stem "
                           f"named {', '.join(f'{s}.<ext>' for s in STEMS)} (wav, flac, mp3, ...)")
    return tuple(found[stem] for stem in STEMS)

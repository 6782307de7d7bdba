"""On-disk cache of separated stems: each track is separated once, every crop is a memory-mapped slice.

Layout under ``root``::

    ab/abcdef....npy    float16 (stems=4, channels=2, samples), the whole track at the cache's rate
    ab/abcdef....json   the key fields (source path, size, mtime_ns, separator, sample rate, samples)
    .tmp/               files being written; never read

The entry name is the sha256 of (resolved path, file size, mtime_ns, separator name, sample rate),
so editing or replacing a file, or changing separator/weights/rate, makes a new entry.

Why float16 ``.npy`` rather than FLAC: a crop is a slice of a memory map - no decoding, no seeking
inside a compressed stream - which is what makes warm-cache triplet loading fast (the cost of a
4 s crop is reading 1.4 MB of page cache). The price is size: 4 stems x 2 channels x 2 bytes =
16 bytes per sample frame, 353 kB per second at 44.1 kHz, 10.6 MB per 30 s FMA clip (85 GB for
the 8000 clips of fma_small). FLAC would be about half that but needs decoding every crop.
float16 keeps 11 significant bits: a relative error below 2^-11 (about -66 dB) per sample,
far under anything a mixing-style feature sees.

Writes are atomic (:func:`mixrep.files.atomic_write`): the array is written to ``.tmp/`` in the
same file system, fsync'ed, then ``os.replace``'d onto its final name (the JSON sidecar first,
then the array, whose presence defines the entry); entries get the umask's file mode. A reader therefore sees a complete entry or none; concurrent
writers of one key (DataLoader workers, two ``mixrep separate`` runs) each replace the entry with a
complete copy; a writer killed mid-way leaves only a temp file, which later caches remove.

Shape:
    Entries are ``(stems=4, channels=2, samples)`` in :data:`~mixrep.constants.STEMS` order.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

import numpy as np

from mixrep.constants import CHANNELS, STEMS
from mixrep.errors import SeparationError
from mixrep.files import atomic_write, digest

log = logging.getLogger(__name__)

CACHE_DTYPE = np.float16
TMP_DIR = ".tmp"
STALE_TMP_SECONDS = 6 * 3600.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


class StemCache:
    """Separated stems of whole tracks, stored once and read as memory maps.

    Args:
        root: cache folder (created if missing). Put it on a local disk: entries are
            ``353 kB`` per second of audio at 44.1 kHz.
        clean_stale: remove temp files left by killed writers (on this host: the writer's
            process is gone; from other hosts: older than 6 hours).
    """

    def __init__(self, root: str | os.PathLike, clean_stale: bool = True) -> None:
        self.root = Path(root).expanduser()
        self.tmp = self.root / TMP_DIR
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SeparationError(f"cannot create the stem cache folder {self.root}: {e}") from e
        self._host = socket.gethostname().replace("-", "_").replace(".", "_")
        if clean_stale:
            self.clean_stale()

    # ------------------------------------------------------------------ keys
    def key(self, path: str | os.PathLike, separator_name: str, sample_rate: int) -> str:
        """Hex key of a track's stems: sha256 of (resolved path, size, mtime_ns, separator, rate).

        Raises:
            SeparationError: ``path`` does not exist.
        """
        return self._key_of(self._fields(path, separator_name, sample_rate))

    @staticmethod
    def _fields(path: str | os.PathLike, separator_name: str, sample_rate: int) -> dict:
        resolved = Path(path).expanduser().resolve()
        try:
            st = resolved.stat()
        except OSError as e:
            raise SeparationError(f"cannot key the stem cache on {path}: {e}") from e
        return {"path": str(resolved), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                "separator": separator_name, "sample_rate": int(sample_rate)}

    @staticmethod
    def _key_of(fields: dict) -> str:
        return digest(json.dumps(fields, sort_keys=True), "sha256", digits=40)

    def entry_path(self, key: str) -> Path:
        """Final ``.npy`` path of a key."""
        return self.root / key[:2] / f"{key}.npy"

    # ------------------------------------------------------------------ reading
    def get(self, path: str | os.PathLike, separator_name: str, sample_rate: int) -> np.memmap | None:
        """Memory map of the track's stems, or ``None`` when not cached.

        Shape:
            returns: ``(stems=4, channels=2, samples)`` float16, read-only.
        """
        entry = self.entry_path(self.key(path, separator_name, sample_rate))
        try:
            stems = np.load(entry, mmap_mode="r")
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:  # only if damaged outside mixrep: writes are atomic
            log.warning("ignoring unreadable stem cache entry %s (%s); it will be rewritten", entry, e)
            return None
        if stems.ndim != 3 or stems.shape[:2] != (len(STEMS), CHANNELS) or stems.dtype != CACHE_DTYPE:
            log.warning("ignoring stem cache entry %s of shape %s %s; it will be rewritten",
                        entry, stems.shape, stems.dtype)
            return None
        return stems

    def __contains__(self, item: tuple) -> bool:
        """``(path, separator_name, sample_rate) in cache``."""
        path, separator_name, sample_rate = item
        return self.entry_path(self.key(path, separator_name, sample_rate)).is_file()

    def info(self, path: str | os.PathLike, separator_name: str, sample_rate: int) -> dict | None:
        """The JSON sidecar of an entry (key fields and ``samples``), or ``None``."""
        sidecar = self.entry_path(self.key(path, separator_name, sample_rate)).with_suffix(".json")
        try:
            return json.loads(sidecar.read_text())
        except (FileNotFoundError, ValueError):
            return None

    # ------------------------------------------------------------------ writing
    def put(self, path: str | os.PathLike, separator_name: str, sample_rate: int, stems: np.ndarray) -> Path:
        """Store a track's full-length stems atomically; returns the entry's path.

        Args:
            path: the mixture file the stems come from (its size and mtime are part of the key).
            stems: ``(stems=4, channels=2, samples)`` float array at ``sample_rate``.

        Raises:
            ValueError: wrong shape.
            SeparationError: non-finite values, or values beyond float16's range (65504).
        """
        stems = np.asarray(stems)
        if stems.ndim != 3 or stems.shape[:2] != (len(STEMS), CHANNELS):
            raise ValueError(f"stems must be (4, 2, samples), got {stems.shape}")
        with np.errstate(over="ignore"):  # overflow becomes inf, refused just below
            half = stems.astype(CACHE_DTYPE)
        if not np.isfinite(half).all():
            raise SeparationError(f"separated stems of {path} are not finite in float16 (max |x| "
                                  f"{np.nanmax(np.abs(stems)):.3g}); refusing to cache them")
        fields = self._fields(path, separator_name, sample_rate)
        entry = self.entry_path(self._key_of(fields))
        entry.parent.mkdir(parents=True, exist_ok=True)
        sidecar = json.dumps({**fields, "samples": int(half.shape[-1]), "stems": list(STEMS),
                              "dtype": str(np.dtype(CACHE_DTYPE))}, indent=1).encode()
        self._atomic_write(entry.with_suffix(".json"), lambda f: f.write(sidecar))
        self._atomic_write(entry, lambda f: np.lib.format.write_array(f, np.ascontiguousarray(half),
                                                                      allow_pickle=False))
        return entry

    def _atomic_write(self, final: Path, write) -> None:
        # Temp names start with host and pid so clean_stale can tell dead writers' files.
        with atomic_write(final, tmp_dir=self.tmp, prefix=f"{self._host}-{os.getpid()}-") as tmp:
            with open(tmp, "wb") as f:
                write(f)

    def clean_stale(self) -> int:
        """Delete temp files of dead writers; returns how many were removed."""
        removed = 0
        now = time.time()
        for tmp in self.tmp.glob("*"):
            host, _, rest = tmp.name.partition("-")
            pid_text = rest.partition("-")[0]
            try:
                stale = now - tmp.stat().st_mtime > STALE_TMP_SECONDS  # also covers reused pids
                if host == self._host and pid_text.isdigit():
                    stale = stale or not _pid_alive(int(pid_text))
                if stale:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:  # its writer finished or another cleaner got it
                continue
        if removed:
            log.info("removed %d unfinished stem cache file(s) left by killed writers in %s", removed, self.tmp)
        return removed

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("??/*.npy"))

    def size_bytes(self) -> int:
        """Total size of the cached entries in bytes."""
        return sum(p.stat().st_size for p in self.root.glob("??/*.npy"))

    def __repr__(self) -> str:
        return f"StemCache({str(self.root)!r})"

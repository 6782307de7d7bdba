"""Sources of songs: FMA, any folder of mixtures, MUSDB-style stem folders, and a factory.

Every class here implements :class:`~mixrep.tracks.Source`:

- :class:`FMASource` - the Free Music Archive (``fma_metadata/tracks.csv`` + ``fma_<size>/NNN/NNNNNN.mp3``)
  with FMA's own subsets and training/validation/test split.
- :class:`AudioFolderSource` - every audio file under a folder (recursive), split by a hash of
  the relative path.
- :class:`StemsFolderSource` - ``<song>/{drums,bass,other,vocals}.<ext>`` folders (MUSDB18-HQ,
  :func:`~mixrep.corpora.synthetic.write_corpus` output), read with
  :class:`~mixrep.separation.base.OracleStems`.
- :func:`~mixrep.datasets.registry.open_source` builds any of them (and the corpora) by name.

Sources of mixtures (FMA, folders) get their stems from the :class:`~mixrep.separation.base.TrackStems`
passed as ``stems`` (a separator behind the on-disk stem cache).

What is fatal and what is skipped:
    A missing root, a missing ``tracks.csv``, a folder without audio, a root without any stem
    folder, an unsupported sample rate: :class:`~mixrep.errors.DatasetError` naming the path.
    One bad track among good ones (corrupt header, shorter than ``min_seconds``, silent when
    ``check_silence`` is on, a song folder missing a stem, an FMA file absent from disk): skipped
    with one warning and counted in ``source.skipped``; a listing left with no usable track is
    an error. Listing reads headers only (no decoding) unless ``check_silence`` is on, which
    decodes ``silence_probes`` short spans per track. A file whose header is fine but whose audio
    fails to decode later raises :class:`~mixrep.errors.AudioReadError` from ``read_stems``.

Shape:
    ``read_stems`` returns ``(stems=4, channels=2, samples)`` float32 in STEMS order at
    ``source.sample_rate``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mixrep.audio.io import audio_info, read_segment
from mixrep.constants import AUDIO_EXTENSIONS, CHANNELS, SAMPLE_RATE, STEMS
from mixrep.audio.multitrack_files import (
    DEFAULT_MIN_SECONDS,
    FOLDER_SPLITS,
    check_split,
    checked_rate,
    existing_dir,
    hash_split,
    is_audio_name,
)
from mixrep.errors import AudioReadError, DatasetError, SeparationError
from mixrep.files import pick_stem_files
from mixrep.separation.base import OracleStems, TrackStems
from mixrep.tracks import SPLITS, SkipLog, Track

log = logging.getLogger(__name__)

SILENCE_DBFS = -60.0
"""A track whose probed spans all stay below this RMS level (dBFS) counts as silent."""

FMA_SUBSETS: dict[str, frozenset[str] | None] = {
    "small": frozenset({"small"}),
    "medium": frozenset({"small", "medium"}),
    "large": frozenset({"small", "medium", "large"}),
    "full": None,  # every track of tracks.csv (untrimmed audio in fma_full)
}
"""FMA size subsets: each contains the smaller ones (small ⊂ medium ⊂ large ⊂ full)."""

FMA_SPLITS: dict[str, str] = {"training": "train", "validation": "val", "test": "test"}
"""FMA's ``('set', 'split')`` values mapped to mixrep split names."""

_FMA_COLUMNS = (("set", "subset"), ("set", "split"), ("track", "duration"))


def probe_audio(
    path: Path,
    label: str | Path,
    skipped: SkipLog,
    min_seconds: float,
    check_silence: bool = False,
    silence_probes: int = 3,
    probe_seconds: float = 1.0,
) -> float | None:
    """Check one file at listing time; return its duration in seconds, or None if skipped.

    Reads the header only (corrupt or unreadable -> ``corrupt``; shorter than ``min_seconds`` ->
    ``short``). With ``check_silence``, decodes ``silence_probes`` spans of ``probe_seconds``
    spread over the file at its own rate; a decode failure is ``corrupt``, all spans below
    :data:`SILENCE_DBFS` is ``silent``. Each skip is recorded in ``skipped`` under ``label``.
    """
    try:
        seconds, native_rate, _ = audio_info(path)
    except AudioReadError as e:
        skipped.skip(label, "corrupt", str(e))
        return None
    if not seconds > 0 or seconds < min_seconds:
        skipped.skip(label, "short", f"{seconds:.2f} s is shorter than the {min_seconds:.2f} s minimum")
        return None
    if check_silence:
        threshold = 10.0 ** (SILENCE_DBFS / 20.0)
        loudest = 0.0
        for k in range(silence_probes):
            start = max(0.0, (seconds - probe_seconds) * (k + 1) / (silence_probes + 1))
            try:
                span = read_segment(path, start, min(probe_seconds, seconds), native_rate)
            except AudioReadError as e:
                skipped.skip(label, "corrupt", str(e))
                return None
            loudest = max(loudest, float(np.sqrt(np.mean(np.square(span)))))
            if loudest >= threshold:
                break
        if loudest < threshold:
            skipped.skip(label, "silent", f"{silence_probes} probed spans are below {SILENCE_DBFS:.0f} dBFS")
            return None
    return seconds


class _MixtureSource:
    """Shared behaviour of sources of mixtures: stems come from a :class:`TrackStems`."""

    name = "mixtures"

    def __init__(self, stems: TrackStems | None, sample_rate: int, where: Path) -> None:
        self.sample_rate = checked_rate(sample_rate, where)
        if stems is not None and getattr(stems, "sample_rate", self.sample_rate) != self.sample_rate:
            raise DatasetError(
                f"the stems reader runs at {stems.sample_rate} Hz but the source {where} at {self.sample_rate} Hz; "
                "build both with the same sample_rate"
            )
        self.stems = stems
        self.skipped = SkipLog()
        self._tracks: list[Track] = []

    def tracks(self, split: str | None = None) -> list[Track]:
        check_split(split)
        return [t for t in self._tracks if split is None or t.split == split]

    def read_stems(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        """Stems of a span of the mixture, through ``self.stems``.

        Raises:
            SeparationError: no ``stems`` reader was given.
            AudioReadError: the mixture cannot be decoded (the dataset skips and counts the track).
        """
        if self.stems is None:
            raise SeparationError(
                f"{self.name} source has mixtures only: pass stems=... (a separator behind the stem cache, "
                f"see mixrep.separation) to read stems of {track.track_id}"
            )
        out = self.stems.read(track, start_seconds, duration_seconds)
        expected = (len(STEMS), CHANNELS, int(round(duration_seconds * self.sample_rate)))
        if out.shape != expected:
            raise SeparationError(f"stems reader returned shape {out.shape} for {track.track_id}, expected {expected}")
        return out


class FMASource(_MixtureSource):
    """The Free Music Archive (Defferrard et al., ISMIR 2017).

    Layout (as downloaded)::

        <root>/fma_metadata/tracks.csv
        <root>/fma_<subset>/NNN/NNNNNN.mp3      # NNN = track_id // 1000, NNNNNN = track_id

    ``tracks.csv`` has a two-row column header (``('set', 'subset')``, ``('set', 'split')``,
    ``('track', 'duration')``, ``('track', 'genre_top')``...). The ``subset`` selects tracks whose
    ``('set', 'subset')`` is that size or smaller; ``full`` takes every row. FMA's own
    training/validation/test split becomes train/val/test.

    Args:
        root: folder holding ``fma_metadata`` and ``fma_<subset>``.
        subset: ``small``, ``medium``, ``large`` or ``full``.
        split: list only this split (``train``/``val``/``test``); None lists all.
        metadata_path: ``tracks.csv`` elsewhere than ``<root>/fma_metadata/tracks.csv``.
        audio_dir: audio folder elsewhere than ``<root>/fma_<subset>``.
        stems: reads stems of a mixture span; required by :meth:`read_stems`.
        sample_rate: rate of the stems in Hz.
        min_seconds: shorter tracks are skipped (FMA clips are 30 s; some are broken and shorter).
        check_silence: decode a few short spans per track at listing and skip silent tracks.
    """

    name = "fma"

    def __init__(
        self,
        root: str | Path,
        subset: str = "small",
        split: str | None = None,
        metadata_path: str | Path | None = None,
        audio_dir: str | Path | None = None,
        stems: TrackStems | None = None,
        sample_rate: int = SAMPLE_RATE,
        min_seconds: float = DEFAULT_MIN_SECONDS,
        check_silence: bool = False,
    ) -> None:
        root = existing_dir(root, "FMA")
        super().__init__(stems, sample_rate, root)
        if subset not in FMA_SUBSETS:
            raise ValueError(f"unknown FMA subset {subset!r}; use one of {tuple(FMA_SUBSETS)}")
        check_split(split)
        self.root, self.subset = root, subset
        self.metadata_path = Path(metadata_path) if metadata_path else root / "fma_metadata" / "tracks.csv"
        self.audio_dir = Path(audio_dir) if audio_dir else root / f"fma_{subset}"
        if not self.audio_dir.is_dir():
            raise DatasetError(
                f"FMA audio folder {self.audio_dir} does not exist; unzip fma_{subset}.zip into {root} "
                "or pass audio_dir=PATH"
            )
        table = load_fma_tracks(self.metadata_path)
        members = FMA_SUBSETS[subset]
        if members is not None:
            table = table[table[("set", "subset")].isin(members)]
        splits = table[("set", "split")].map(FMA_SPLITS)
        if split is not None:
            table, splits = table[splits == split], splits[splits == split]

        shown = [("track", "genre_top"), ("track", "title"), ("artist", "name"), ("set", "subset")]
        info = table.reindex(columns=shown)
        for track_id, (genre, title, artist, track_subset), track_split in zip(
            table.index, info.itertuples(index=False), splits
        ):
            path = fma_audio_path(self.audio_dir, int(track_id))
            label = f"{path} (FMA track {track_id})"
            if not isinstance(track_split, str):
                self.skipped.skip(label, "no_split", f"unknown ('set', 'split') value in {self.metadata_path}")
                continue
            if not path.is_file():
                self.skipped.skip(label, "missing", f"listed in {self.metadata_path.name} but not on disk")
                continue
            seconds = probe_audio(path, label, self.skipped, min_seconds, check_silence)
            if seconds is None:
                continue
            self._tracks.append(
                Track(
                    track_id=f"{int(track_id):06d}",
                    duration_seconds=seconds,
                    split=track_split,
                    audio_path=path,
                    metadata={
                        "genre": _text(genre),
                        "title": _text(title),
                        "artist": _text(artist),
                        "subset": _text(track_subset),
                    },
                )
            )
        if not self._tracks:
            raise DatasetError(
                f"no usable FMA tracks of subset {subset!r}{f' split {split!r}' if split else ''} under "
                f"{self.audio_dir} ({self.skipped.summary()}); check that fma_{subset}.zip is unzipped there"
            )
        log.info("FMA %s: %d tracks, %s", subset, len(self._tracks), self.skipped.summary())


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def fma_audio_path(audio_dir: str | Path, track_id: int) -> Path:
    """``<audio_dir>/NNN/NNNNNN.mp3`` for an FMA track id (FMA's ``utils.get_audio_path``)."""
    tid = f"{track_id:06d}"
    return Path(audio_dir) / tid[:3] / f"{tid}.mp3"


def load_fma_tracks(path: str | Path):
    """Read FMA's ``tracks.csv`` (two-row column header, track_id index) as a pandas DataFrame.

    Raises:
        DatasetError: the file is missing, unreadable, or lacks the ``set``/``track`` columns.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DatasetError(
            f"FMA metadata {path} not found: it comes from fma_metadata.zip "
            "(https://os.unit.ch/fma/fma_metadata.zip); unzip it next to the audio folder or pass metadata_path=PATH"
        )
    try:
        table = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
    except Exception as e:  # pandas raises ParserError, UnicodeDecodeError, ValueError...
        raise DatasetError(f"cannot parse FMA metadata {path}: {e}") from e
    missing = [c for c in _FMA_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(
            f"{path} lacks the columns {missing}; expected FMA's tracks.csv from fma_metadata.zip "
            "(two header rows: ('set', 'subset'), ('set', 'split'), ('track', 'duration')...)"
        )
    return table


class AudioFolderSource(_MixtureSource):
    """Every audio file under ``root`` (recursive, :data:`~mixrep.constants.AUDIO_EXTENSIONS`).

    The track id is the path relative to ``root``; its SHA-1 fixes the split
    (:func:`hash_split`), so adding files never moves existing ones between splits.

    Args:
        root: folder of mixtures (any depth); hidden files are ignored.
        stems: reads stems of a mixture span; required by :meth:`read_stems`.
        sample_rate: rate of the stems in Hz.
        val_fraction, test_fraction: expected shares of the val and test splits.
        min_seconds: shorter files are skipped.
        check_silence: decode a few short spans per file at listing and skip silent files.
    """

    name = "folder"

    def __init__(
        self,
        root: str | Path,
        stems: TrackStems | None = None,
        sample_rate: int = SAMPLE_RATE,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        min_seconds: float = DEFAULT_MIN_SECONDS,
        check_silence: bool = False,
    ) -> None:
        root = existing_dir(root, "audio folder")
        super().__init__(stems, sample_rate, root)
        self.root = root
        files = sorted(_walk_audio(root))
        if not files:
            raise DatasetError(
                f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) found under {root}; "
                "point root at a folder of songs"
            )
        for path in files:
            rel = path.relative_to(root).as_posix()
            seconds = probe_audio(path, path, self.skipped, min_seconds, check_silence)
            if seconds is None:
                continue
            self._tracks.append(
                Track(rel, seconds, hash_split(rel, val_fraction, test_fraction), audio_path=path,
                      metadata={"title": path.stem})
            )
        if not self._tracks:
            raise DatasetError(f"none of the {len(files)} audio files under {root} is usable ({self.skipped.summary()})")
        log.info("folder %s: %d tracks, %s", root, len(self._tracks), self.skipped.summary())


def _walk_audio(root: Path) -> Iterable[Path]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if is_audio_name(name):
                yield Path(folder) / name


class StemsFolderSource:
    """Songs stored as one file per stem: ``<root>/[<split>/]<song>/{drums,bass,other,vocals}.<ext>``.

    Any folder (at any depth) holding at least one stem file is a song folder; other files
    (``mixture.wav``, ``metadata.json``) are ignored. Which file is which stem follows
    :func:`mixrep.files.pick_stem_files` (case-insensitive names, lossless before lossy when a
    stem has several files), the rule the API and the index use too. A song folder missing stems is skipped and
    counted (``missing_stems``) when other songs are complete; a root where no folder is
    complete is a wrong layout and raises :class:`~mixrep.errors.DatasetError`.

    Split: the ``split`` a ``metadata.json`` at the root gives the song
    (:func:`~mixrep.corpora.synthetic.write_corpus` writes one), else a top-level ``train``/``val``/
    ``test`` folder (MUSDB18), else :func:`hash_split` of the song folder's relative path.

    Args:
        root: folder of song folders.
        sample_rate: rate in Hz the stems are read at (resampled while decoding).
        val_fraction, test_fraction: split shares for songs without a split of their own.
        min_seconds: songs whose shortest stem is shorter are skipped.
    """

    name = "stems"

    def __init__(
        self,
        root: str | Path,
        sample_rate: int = SAMPLE_RATE,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        min_seconds: float = DEFAULT_MIN_SECONDS,
    ) -> None:
        self.root = existing_dir(root, "stems folder")
        self.sample_rate = checked_rate(sample_rate, self.root)
        self.skipped = SkipLog()
        self.reader = OracleStems(self.sample_rate)
        manifest = _read_manifest(self.root)

        songs = _find_song_folders(self.root)
        if not songs:
            raise DatasetError(
                f"no stem files found under {self.root}: expected <song>/{{{','.join(STEMS)}}}.<ext> folders "
                "(MUSDB-style); for a folder of mixtures use the 'folder' source"
            )
        incomplete = {folder: [s for s in STEMS if s not in files] for folder, files in songs.items()}
        incomplete = {folder: missing for folder, missing in incomplete.items() if missing}
        if len(incomplete) == len(songs):
            examples = "; ".join(f"{f} lacks {', '.join(m)}" for f, m in list(incomplete.items())[:3])
            raise DatasetError(
                f"wrong stem layout under {self.root}: no song folder has all of {', '.join(STEMS)} ({examples}); "
                "each song needs one file per stem, named after the stem"
            )

        self._tracks: list[Track] = []
        for folder, files in songs.items():
            if folder in incomplete:
                self.skipped.skip(folder, "missing_stems", f"no {', '.join(incomplete[folder])} file in {folder}")
                continue
            paths = tuple(files[s] for s in STEMS)
            durations = [probe_audio(p, p, self.skipped, min_seconds) for p in paths]
            if any(d is None for d in durations):
                continue
            rel = folder.relative_to(self.root).as_posix()
            entry = manifest.get(rel, {})
            split = entry.get("split")
            if split not in SPLITS and "/" in rel:
                split = FOLDER_SPLITS.get(rel.split("/")[0].lower())
            if split not in SPLITS:
                split = hash_split(rel, val_fraction, test_fraction)
            metadata = {k: v for k, v in entry.items() if k != "split"} if entry else {"title": folder.name}
            self._tracks.append(Track(rel, min(durations), split, stem_paths=paths, metadata=metadata))
        if not self._tracks:
            raise DatasetError(f"none of the {len(songs)} song folders under {self.root} is usable ({self.skipped.summary()})")
        log.info("stems %s: %d songs, %s", self.root, len(self._tracks), self.skipped.summary())

    def tracks(self, split: str | None = None) -> list[Track]:
        check_split(split)
        return [t for t in self._tracks if split is None or t.split == split]

    def read_stems(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        """Read the span from the stem files (only the span is decoded).

        Raises:
            AudioReadError: a stem file cannot be decoded.
        """
        return self.reader.read(track, start_seconds, duration_seconds)


def _find_song_folders(root: Path) -> dict[Path, dict[str, Path]]:
    """Folders under ``root`` holding stem files: ``{folder: {stem: path}}``, by :func:`mixrep.files.pick_stem_files`."""
    songs: dict[Path, dict[str, Path]] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        stems = pick_stem_files(names)
        if stems:
            songs[Path(folder)] = {stem: Path(folder) / name for stem, name in stems.items()}
    return dict(sorted(songs.items()))


def _read_manifest(root: Path) -> dict[str, dict]:
    """Per-song entries of ``<root>/metadata.json`` (written by ``write_corpus``), or ``{}``."""
    path = root / "metadata.json"
    if not path.is_file():
        return {}
    try:
        songs = json.loads(path.read_text()).get("songs", {})
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError) as e:
        log.warning("ignoring unreadable %s: %s", path, e)
        return {}
    return songs if isinstance(songs, dict) else {}

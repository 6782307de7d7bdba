"""What every file-based dataset reader shares: checked roots and rates, stable hash splits,
track names, and :class:`FileMultitrackSource` (one audio file per track, songs probed and
skipped with a reason when their tracks disagree).

Shape:
    ``read_tracks`` ``(tracks, channels=2, samples)``, ``read_stems`` ``(stems=4, channels=2, samples)``,
    float32 at ``source.sample_rate``.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from mixrep.audio.io import audio_info, check_sample_rate, read_segment
from mixrep.audio.multitrack import InstrumentTrack, Multitrack
from mixrep.audio.stems import sum_to_stems
from mixrep.constants import AUDIO_EXTENSIONS, STEMS
from mixrep.errors import AudioReadError, DatasetError
from mixrep.files import hash64
from mixrep.tracks import SPLITS, SkipLog, Track

log = logging.getLogger(__name__)

DEFAULT_MIN_SECONDS = 8.0
"""Shortest usable track in seconds: two non-overlapping 4 s clips (pass ``2 * clip_seconds``)."""

FOLDER_SPLITS: dict[str, str] = {"train": "train", "training": "train", "val": "val", "valid": "val",
                                 "validation": "val", "test": "test"}
"""Top-level folder names that fix the split of a stems folder (MUSDB18 has ``train/`` and ``test/``)."""

def checked_rate(sample_rate: int, where: str | Path) -> int:
    try:
        return check_sample_rate(sample_rate)
    except ValueError as e:
        raise DatasetError(f"cannot open {where}: {e}") from e


def existing_dir(root: str | Path | None, what: str) -> Path:
    if root is None:
        raise DatasetError(f"{what} needs a root folder; pass root=PATH")
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{what} root {root} does not exist; check the path (or download the data there)")
    if not root.is_dir():
        raise DatasetError(f"{what} root {root} is not a folder; pass the folder that holds the audio")
    return root


def hash_split(key: str, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split from a SHA-1 of ``key`` (stable across machines, runs and file order).

    ``u = sha1(key) / 2**64`` in ``[0, 1)``: ``u < test_fraction`` is test, the next
    ``val_fraction`` is val, the rest train.
    """
    if not (val_fraction >= 0 and test_fraction >= 0 and val_fraction + test_fraction < 1):
        raise ValueError(f"need val_fraction, test_fraction >= 0 with a sum < 1, got {val_fraction}, {test_fraction}")
    u = hash64(key) / 2.0**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def is_audio_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")


SILENT_PEAK_DBFS = -80.0
"""With ``check_silence``, a track whose peak over the whole file stays below this is silent."""

LENGTH_TOLERANCE_SECONDS = 0.1
"""Files of one song (its tracks, its mix, its buses) may differ in length by this much (codec or
encoder padding); more is another edit or a broken song. The one tolerance of every reader."""


def slug(text: str) -> str:
    """``"Distortion Guitar"`` -> ``"distortion-guitar"`` (track names from labels)."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "track"


def unique_names(names: list[str]) -> list[str]:
    """Suffix repeats: ``[piano, piano, bass]`` -> ``[piano, piano-2, bass]``."""
    seen: Counter[str] = Counter()
    out = []
    for name in names:
        seen[name] += 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


class FileMultitrackSource:
    """Shared listing and reading of multitracks stored as one audio file per track.

    Subclasses find their songs and call :meth:`_add_song` for each, then :meth:`_finish`.
    """

    name = "multitrack"

    def __init__(self, root: str | Path, sample_rate: int, min_seconds: float, check_silence: bool,
                 length_tolerance_seconds: float, what: str) -> None:
        self.root = existing_dir(root, what)
        self.sample_rate = checked_rate(sample_rate, self.root)
        self.min_seconds = min_seconds
        self.check_silence = check_silence
        self.length_tolerance_seconds = length_tolerance_seconds
        self.skipped = SkipLog()
        self._what = what
        self._tracks: list[Track] = []
        self._multitracks: dict[str, Multitrack] = {}
        self._unknown: Counter[str] = Counter()

    # ------------------------------------------------------------------ Source protocol

    def tracks(self, split: str | None = None) -> list[Track]:
        check_split(split)
        return [t for t in self._tracks if split is None or t.split == split]

    def multitrack(self, track: Track) -> Multitrack:
        try:
            return self._multitracks[track.track_id]
        except KeyError:
            raise DatasetError(f"{track.track_id!r} is not a song of the {self._what} at {self.root}") from None

    def read_tracks(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        """Decode the span of every track file (only the span).

        Raises:
            AudioReadError: a track file cannot be decoded.
        """
        return np.stack([read_segment(t.path, start_seconds, duration_seconds, self.sample_rate)
                         for t in self.multitrack(track).tracks])

    def read_stems(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        """The span's tracks summed into ``(stems=4, channels=2, samples)``."""
        return sum_to_stems(self.read_tracks(track, start_seconds, duration_seconds), self.multitrack(track).stems)

    # ------------------------------------------------------------------ listing

    def _classified(self, label: str, stem: str | None) -> str:
        """``stem``, or ``other`` (counted and logged once per label) when the label is unknown."""
        if stem is not None:
            return stem
        if label not in self._unknown:
            log.warning("%s: unknown instrument %r mapped to 'other'", self._what, label)
        self._unknown[label] += 1
        return "other"

    @property
    def unknown_instruments(self) -> dict[str, int]:
        """Labels mapped to ``other`` because no rule knew them, with their track counts."""
        return dict(self._unknown)

    def _add_song(self, song_id: str, folder: Path, tracks: list[InstrumentTrack], split: str,
                  metadata: dict) -> None:
        """Probe a song's track files and keep it if they agree (see the module docstring)."""
        if not tracks:
            self.skipped.skip(folder, "no_tracks", "no track with audio")
            return
        infos = []
        for t in tracks:
            try:
                infos.append(audio_info(t.path))
            except AudioReadError as e:
                self.skipped.skip(folder, "corrupt", str(e))
                return
        rates = {rate for _, rate, _ in infos}
        if len(rates) > 1:
            listing = ", ".join(f"{t.path.name}: {rate} Hz" for t, (_, rate, _) in zip(tracks, infos))
            self.skipped.skip(folder, "rate_mismatch", f"tracks have different sample rates ({listing})")
            return
        lengths = [seconds for seconds, _, _ in infos]
        if max(lengths) - min(lengths) > self.length_tolerance_seconds:
            shortest, longest = int(np.argmin(lengths)), int(np.argmax(lengths))
            self.skipped.skip(folder, "length_mismatch",
                              f"tracks differ in length: {tracks[shortest].path.name} lasts {lengths[shortest]:.3f} s, "
                              f"{tracks[longest].path.name} lasts {lengths[longest]:.3f} s")
            return
        if min(lengths) < self.min_seconds:
            self.skipped.skip(folder, "short", f"{min(lengths):.2f} s is shorter than the {self.min_seconds:.2f} s minimum")
            return
        kept = []
        for t, (_, rate, channels) in zip(tracks, infos):
            if self.check_silence and _is_silent(t.path, rate):
                self.skipped.skip(t.path, "silent_track", f"peak below {SILENT_PEAK_DBFS:.0f} dBFS over the whole file")
                continue
            kept.append(InstrumentTrack(t.name, t.instrument, t.stem, t.path, min(channels, 2), t.program, t.is_drum,
                                        t.metadata))
        if not kept:
            self.skipped.skip(folder, "silent", "every track is silent")
            return
        self._multitracks[song_id] = Multitrack(song_id, tuple(kept))
        self._tracks.append(Track(song_id, min(lengths), split, metadata={
            **metadata, "tracks": len(kept), "stems": [s for s in STEMS if any(t.stem == s for t in kept)]}))

    def _finish(self, listed: int) -> None:
        if not self._tracks:
            if len(self.skipped) == 1:
                where, kind, reason = self.skipped.entries[0]
                raise DatasetError(f"{where} cannot be used ({kind}): {reason}")
            examples = "; ".join(f"{w}: {r}" for w, _, r in self.skipped.entries[:3])
            raise DatasetError(f"none of the {listed} songs under {self.root} is usable as a {self._what} "
                               f"({self.skipped.summary()}){': ' + examples if examples else ''}")
        if self._unknown:
            log.warning("%s %s: %d tracks of unknown instruments mapped to 'other': %s", self._what, self.root,
                        sum(self._unknown.values()), dict(self._unknown))
        log.info("%s %s: %d songs, %s", self._what, self.root, len(self._tracks), self.skipped.summary())


def _is_silent(path: Path, rate: int, chunk_seconds: float = 30.0) -> bool:
    threshold = 10.0 ** (SILENT_PEAK_DBFS / 20.0)
    seconds = audio_info(path)[0]
    start = 0.0
    while start < seconds:
        if np.abs(read_segment(path, start, min(chunk_seconds, seconds - start), rate)).max(initial=0.0) >= threshold:
            return False
        start += chunk_seconds
    return True

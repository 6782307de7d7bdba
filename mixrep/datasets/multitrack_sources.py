"""Readers for the multitrack layouts researchers use, each a :class:`~mixrep.data.multitrack.MultitrackSource`.

- :class:`SlakhSource` - Slakh2100 (Manilow et al., WASPAA 2019):
  ``<root>/{train,validation,test,omitted}/TrackNNNNN/{metadata.yaml, stems/SNN.flac}``; a stem's
  ``inst_class`` / ``is_drum`` give its stem class, ``program_num`` its GM program; stems with
  ``audio_rendered: false`` have no audio and are left out (counted); ``midi_saved`` is kept in
  the track metadata. ``omitted/`` songs are skipped unless ``include_omitted``.
- :class:`MedleyDBSource` - MedleyDB 1/2 (Bittner et al., ISMIR 2014):
  ``<Song>/<Song>_METADATA.yaml`` + ``<Song>/<Song>_RAW/<Song>_RAW_SS_RR.wav``; one track per raw
  recording, its ``instrument`` (MedleyDB taxonomy) mapped to a stem class.
- :class:`MoisesDBSource` - MoisesDB (Pereira et al., 2023): ``<id>/data.json`` +
  ``<id>/<stemName>/<track id>.<extension>``; ``stemName`` (vocals, bass, drums, percussion,
  guitar, piano, ...) mapped to a stem class.
- :class:`TrackFolderSource` - any folder of song folders of tracks, ``<song>/<track>.wav``, with an
  optional ``groups.json`` (``{"<track file or name>": "drums" | "bass" | "other" | "vocals"}``, or
  ``{"drums": ["<track>", ...], ...}`` by stem class) in the song folder or at the root; tracks it
  does not name are classed by their name (``kick``, ``bass``, ``vox``...).

Every reader: an instrument it cannot place maps to ``other`` and is logged once per label; a song
whose tracks differ in sample rate or in length (by more than ``length_tolerance_seconds``), whose
track file is corrupt, or that is shorter than ``min_seconds`` is skipped and counted in
``source.skipped`` (with ``check_silence``, all-silent tracks are dropped and counted); a dataset
left without a usable song raises :class:`~mixrep.errors.DatasetError` naming the problem (the
song's own problem when there was only one).

Shape:
    ``read_tracks`` ``(tracks, channels=2, samples)``, ``read_stems`` ``(stems=4, channels=2, samples)``,
    float32 at ``source.sample_rate``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from mixrep.audio.io import audio_info, read_segment
from mixrep.audio.stems import STEM_INDEX, sum_to_stems
from mixrep.constants import SAMPLE_RATE, STEMS
from mixrep.data.multitrack import InstrumentTrack, Multitrack
from mixrep.data.sources import (
    DEFAULT_MIN_SECONDS,
    FOLDER_SPLITS,
    _check_split,
    _checked_rate,
    _existing_dir,
    _is_audio,
    hash_split,
)
from mixrep.data.tracks import SkipLog, Track
from mixrep.errors import AudioReadError, DatasetError

log = logging.getLogger(__name__)

SILENT_PEAK_DBFS = -80.0
"""With ``check_silence``, a track whose peak over the whole file stays below this is silent."""

LENGTH_TOLERANCE_SECONDS = 0.05
"""Tracks of one song may differ in length by this much (codec padding); more is a broken song."""


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
        self.root = _existing_dir(root, what)
        self.sample_rate = _checked_rate(sample_rate, self.root)
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
        _check_split(split)
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


def _load_yaml(path: Path, skipped: SkipLog, label: Path) -> dict | None:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        skipped.skip(label, "bad_metadata", f"cannot parse {path.name}: {e}")
        return None
    if not isinstance(data, dict):
        skipped.skip(label, "bad_metadata", f"{path.name} holds no mapping")
        return None
    return data


def _first_audio(folder: Path, stem: str) -> Path | None:
    for ext in (".flac", ".wav", ".mp3", ".ogg"):
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


# ----------------------------------------------------------------------------- Slakh2100

SLAKH_SPLITS: dict[str, str] = {"train": "train", "validation": "val", "test": "test"}

SLAKH_CLASSES: dict[str, str] = {
    "Bass": "bass", "Drums": "drums", "Percussive": "drums",
    **{c: "other" for c in ("Piano", "Chromatic Percussion", "Organ", "Guitar", "Strings", "Strings (continued)",
                            "Ensemble", "Brass", "Reed", "Pipe", "Synth Lead", "Synth Pad", "Synth Effects",
                            "Ethnic", "Sound Effects", "Sound effects")},
}
"""Slakh's ``inst_class`` values (General-MIDI families) -> stem class; ``is_drum`` wins."""


class SlakhSource(FileMultitrackSource):
    """Slakh2100 / BabySlakh songs (see the module docstring for the layout).

    Args:
        root: the folder holding ``train/ validation/ test/`` (or TrackNNNNN folders directly).
        split: list only this split.
        include_omitted: also list ``omitted/`` songs (split by hash).
    """

    name = "slakh"

    def __init__(self, root: str | Path, split: str | None = None, sample_rate: int = SAMPLE_RATE,
                 min_seconds: float = DEFAULT_MIN_SECONDS, check_silence: bool = False,
                 include_omitted: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 length_tolerance_seconds: float = LENGTH_TOLERANCE_SECONDS) -> None:
        super().__init__(root, sample_rate, min_seconds, check_silence, length_tolerance_seconds, "Slakh2100 dataset")
        _check_split(split)
        folders = sorted(p.parent for p in self.root.rglob("metadata.yaml") if re.fullmatch(r"Track\d+", p.parent.name))
        if not folders:
            raise DatasetError(f"no Slakh songs under {self.root}: expected TrackNNNNN/metadata.yaml folders "
                               "(in train/, validation/, test/)")
        for folder in folders:
            parent = folder.parent.name.lower()
            if parent == "omitted" and not include_omitted:
                self.skipped.skip(folder, "omitted", "in Slakh's omitted/ folder (pass include_omitted=True)")
                continue
            song_split = SLAKH_SPLITS.get(parent) or hash_split(folder.name, val_fraction, test_fraction)
            if split is not None and song_split != split:
                continue
            meta = _load_yaml(folder / "metadata.yaml", self.skipped, folder)
            if meta is None:
                continue
            audio_dir = folder / str(meta.get("audio_dir") or "stems")
            tracks = []
            for key, entry in sorted((meta.get("stems") or {}).items()):
                entry = entry or {}
                if not entry.get("audio_rendered", True):
                    self.skipped.skip(f"{folder}/{key}", "not_rendered", "audio_rendered is false (no audio for this stem)")
                    continue
                path = _first_audio(audio_dir, key)
                if path is None:
                    self.skipped.skip(f"{folder}/{key}", "missing_track", f"no {key}.flac in {audio_dir}")
                    continue
                inst_class = str(entry.get("inst_class", ""))
                is_drum = bool(entry.get("is_drum", False))
                stem = "drums" if is_drum else self._classified(inst_class, SLAKH_CLASSES.get(inst_class))
                program = entry.get("program_num")
                tracks.append(InstrumentTrack(
                    key, str(entry.get("midi_program_name") or inst_class or key), stem, path,
                    program=None if program is None or is_drum else int(program), is_drum=is_drum,
                    metadata={k: entry[k] for k in ("inst_class", "plugin_name", "midi_saved", "integrated_loudness")
                              if k in entry}))
            self._add_song(folder.name, folder, tracks, song_split,
                           {"title": folder.name, "uuid": meta.get("UUID"), "lmd_midi": meta.get("lmd_midi_dir")})
        self._finish(len(folders))


# ----------------------------------------------------------------------------- MedleyDB

_MEDLEYDB_DRUMS = (
    "drum set", "kick drum", "snare drum", "toms", "high hat", "cymbal", "bass drum", "drum machine", "timpani",
    "bongo", "conga", "tambourine", "darbuka", "doumbek", "tabla", "auxiliary percussion", "claps", "shaker",
    "maracas", "cowbell", "cabasa", "triangle", "sleigh bells", "gong", "guiro", "gu", "castanet", "rattle",
)
_MEDLEYDB_VOCALS = ("male singer", "female singer", "male speaker", "female speaker", "male rapper", "female rapper",
                    "vocalists", "beatboxing", "choir")
_MEDLEYDB_OTHER = (
    "erhu", "violin", "viola", "cello", "violin section", "viola section", "cello section", "string section",
    "acoustic guitar", "banjo", "guzheng", "harp", "harpsichord", "liuqin", "mandolin", "oud", "slide guitar",
    "ukulele", "zhongruan", "sitar", "dulcimer", "yangqin", "piano", "tack piano", "dizi", "flute", "flute section",
    "piccolo", "bamboo flute", "panpipes", "recorder", "alto saxophone", "baritone saxophone", "bass clarinet",
    "clarinet", "clarinet section", "tenor saxophone", "soprano saxophone", "oboe", "english horn", "bassoon",
    "bagpipe", "trumpet", "cornet", "trombone", "french horn", "euphonium", "tuba", "brass section",
    "french horn section", "trombone section", "horn section", "trumpet section", "harmonica", "concertina",
    "accordion", "bandoneon", "harmonium", "pipe organ", "melodica", "chimes", "xylophone", "vibraphone", "marimba",
    "glockenspiel", "whistle", "crowd", "clean electric guitar", "distorted electric guitar", "lap steel guitar",
    "electric piano", "electronic organ", "synthesizer", "theremin", "fx/processed sound", "scratches", "sampler",
    "main system",
)
MEDLEYDB_STEMS: dict[str, str] = {
    **{i: "drums" for i in _MEDLEYDB_DRUMS}, **{i: "vocals" for i in _MEDLEYDB_VOCALS},
    **{i: "other" for i in _MEDLEYDB_OTHER}, "electric bass": "bass", "double bass": "bass",
}
"""MedleyDB taxonomy (``medleydb/resources/taxonomy.yaml``) -> stem class, MUSDB18's convention:
percussion with the drums, every voice with the vocals, double and electric bass with the bass."""


class MedleyDBSource(FileMultitrackSource):
    """MedleyDB songs, one track per raw recording (see the module docstring for the layout).

    Args:
        root: the folder of song folders (MedleyDB's ``Audio/``), at any depth.
        metadata_dir: where the ``<Song>_METADATA.yaml`` files are, when not in the song folders
            (the medleydb package keeps them in ``medleydb/data/Metadata``).
    """

    name = "medleydb"

    def __init__(self, root: str | Path, metadata_dir: str | Path | None = None, sample_rate: int = SAMPLE_RATE,
                 min_seconds: float = DEFAULT_MIN_SECONDS, check_silence: bool = False,
                 val_fraction: float = 0.1, test_fraction: float = 0.1,
                 length_tolerance_seconds: float = LENGTH_TOLERANCE_SECONDS) -> None:
        super().__init__(root, sample_rate, min_seconds, check_silence, length_tolerance_seconds, "MedleyDB dataset")
        found = sorted((Path(metadata_dir) if metadata_dir else self.root).rglob("*_METADATA.yaml"))
        if not found:
            raise DatasetError(f"no MedleyDB songs under {metadata_dir or self.root}: expected <Song>/<Song>_METADATA.yaml "
                               "(or pass metadata_dir=PATH)")
        for meta_path in found:
            song = meta_path.name[: -len("_METADATA.yaml")]
            folder = meta_path.parent if metadata_dir is None else _find_song_dir(self.root, song)
            if folder is None:
                self.skipped.skip(meta_path, "missing", f"no folder {song}/ under {self.root}")
                continue
            meta = _load_yaml(meta_path, self.skipped, folder)
            if meta is None:
                continue
            raw_dir = folder / str(meta.get("raw_dir") or f"{song}_RAW")
            tracks = []
            for stem_key, stem in sorted((meta.get("stems") or {}).items()):
                for raw_key, raw in sorted(((stem or {}).get("raw") or {}).items()):
                    raw = raw or {}
                    path = raw_dir / str(raw.get("filename", ""))
                    if not raw.get("filename") or not path.is_file():
                        self.skipped.skip(f"{folder}/{stem_key}/{raw_key}", "missing_track", f"no raw file {path}")
                        continue
                    label = raw.get("instrument", "")
                    label = str(label[0] if isinstance(label, list) and label else label)
                    tracks.append(InstrumentTrack(
                        path.stem[len(song) + 1:] if path.stem.startswith(song) else path.stem, label,
                        self._classified(label, MEDLEYDB_STEMS.get(label.lower())), path,
                        metadata={"stem": stem_key, "component": (stem or {}).get("component", "")}))
            rel = folder.relative_to(self.root).as_posix() if folder.is_relative_to(self.root) else song
            self._add_song(song, folder, tracks, hash_split(rel, val_fraction, test_fraction), {
                "title": meta.get("title", song), "artist": meta.get("artist"), "genre": meta.get("genre"),
                "has_bleed": meta.get("has_bleed")})
        self._finish(len(found))


def _find_song_dir(root: Path, song: str) -> Path | None:
    for candidate in (root / song, root / "Audio" / song):
        if candidate.is_dir():
            return candidate
    return next((p for p in root.rglob(song) if p.is_dir()), None)


# ----------------------------------------------------------------------------- MoisesDB

MOISESDB_STEMS: dict[str, str] = {
    "vocals": "vocals", "bass": "bass", "drums": "drums", "percussion": "drums",
    **{s: "other" for s in ("guitar", "other_plucked", "piano", "other_keys", "bowed_strings", "wind", "other")},
}
"""MoisesDB's ``stemName`` -> stem class (its own 4-stem mapping, ``mix_4_stems``, with percussion in drums)."""


class MoisesDBSource(FileMultitrackSource):
    """MoisesDB songs (see the module docstring for the layout); any depth under ``root``."""

    name = "moisesdb"

    def __init__(self, root: str | Path, sample_rate: int = SAMPLE_RATE, min_seconds: float = DEFAULT_MIN_SECONDS,
                 check_silence: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 length_tolerance_seconds: float = LENGTH_TOLERANCE_SECONDS) -> None:
        super().__init__(root, sample_rate, min_seconds, check_silence, length_tolerance_seconds, "MoisesDB dataset")
        found = sorted(self.root.rglob("data.json"))
        if not found:
            raise DatasetError(f"no MoisesDB songs under {self.root}: expected <id>/data.json with <id>/<stem>/<track>.wav")
        for meta_path in found:
            folder = meta_path.parent
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                stems = meta["stems"]
                assert isinstance(stems, list)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AssertionError) as e:
                self.skipped.skip(folder, "bad_metadata", f"cannot read the stems of {meta_path}: {e!r}")
                continue
            entries = []
            for stem in stems:
                stem_name = str(stem.get("stemName", ""))
                for track in stem.get("tracks", []):
                    path = folder / stem_name / f"{track.get('id')}.{track.get('extension', 'wav')}"
                    if not path.is_file():
                        self.skipped.skip(path, "missing_track", f"listed in {meta_path.name} but not on disk")
                        continue
                    entries.append((stem_name, str(track.get("trackType", stem_name)), path, bool(track.get("has_bleed", False))))
            names = unique_names([f"{slug(s)}-{slug(t)}" if slug(t) != slug(s) else slug(s) for s, t, _, _ in entries])
            tracks = [InstrumentTrack(name, track_type, self._classified(stem_name, MOISESDB_STEMS.get(stem_name)), path,
                                      is_drum=stem_name in ("drums", "percussion"), metadata={"has_bleed": bleed})
                      for name, (stem_name, track_type, path, bleed) in zip(names, entries)]
            self._add_song(folder.name, folder, tracks,
                           hash_split(folder.relative_to(self.root).as_posix(), val_fraction, test_fraction),
                           {"title": meta.get("song"), "artist": meta.get("artist"), "genre": meta.get("genre")})
        self._finish(len(found))


# ----------------------------------------------------------------------------- plain folders

NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"kick|snare|hi-?hats?|hh|toms?|cymbals?|overheads?|\boh\b|drums?|perc|clap|shaker|ride|crash"
     r"|bass.?drum|\bbd\b|808", "drums"),
    (r"bass", "bass"),
    (r"vox|vocals?|\bvoc\b|singer|choir|\bbvs?\b|backing|rap", "vocals"),
    (r"other|guitar|gtr|piano|keys|synth|pad|organ|strings?|brass|horns?|sax|flute|lead|chords?|arp|pluck", "other"),
)
"""Track-name patterns (searched in order, case-insensitive) that place a track without a groups.json entry."""


def stem_from_name(name: str) -> str | None:
    """Stem class a track name suggests (``Kick In`` -> drums, ``Bass DI`` -> bass), or None."""
    for pattern, stem in NAME_RULES:
        if re.search(pattern, name.lower()):
            return stem
    return None


class TrackFolderSource(FileMultitrackSource):
    """Song folders of track files, with optional ``groups.json`` (see the module docstring).

    Every folder holding audio files is a song (``root`` itself when it holds them); its tracks
    are those files. ``groups.json`` maps a track's file name or name (file name without
    extension) to a stem class; a song's own ``groups.json`` wins over the root's.

    Raises:
        DatasetError: no audio under ``root``, or a ``groups.json`` that is not a mapping of
            track names to drums/bass/other/vocals (naming the file and the bad entry).
    """

    name = "tracks"

    def __init__(self, root: str | Path, sample_rate: int = SAMPLE_RATE, min_seconds: float = DEFAULT_MIN_SECONDS,
                 check_silence: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 length_tolerance_seconds: float = LENGTH_TOLERANCE_SECONDS) -> None:
        super().__init__(root, sample_rate, min_seconds, check_silence, length_tolerance_seconds, "folder of tracks")
        root_groups = _read_groups(self.root / "groups.json")
        songs: list[tuple[Path, list[Path]]] = []
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            files = sorted(Path(folder) / n for n in names if _is_audio(n))
            if files:
                songs.append((Path(folder), files))
        if not songs:
            raise DatasetError(f"no audio files under {self.root}: expected <song>/<track>.wav folders of tracks")
        for folder, files in songs:
            groups = {**root_groups, **_read_groups(folder / "groups.json")} if folder != self.root else root_groups
            tracks = []
            for path, name in zip(files, unique_names([p.stem for p in files])):
                stem = groups.get(path.name, groups.get(path.stem))
                stem = stem if stem is not None else self._classified(path.stem, stem_from_name(path.stem))
                tracks.append(InstrumentTrack(name, path.stem, stem, path, is_drum=stem == "drums"))
            rel = folder.relative_to(self.root).as_posix()
            split = FOLDER_SPLITS.get(rel.split("/")[0].lower()) if "/" in rel else None
            self._add_song(rel if rel != "." else folder.name, folder, tracks,
                           split or hash_split(rel, val_fraction, test_fraction), {"title": folder.name})
        self._finish(len(songs))


def _read_groups(path: Path) -> dict[str, str]:
    """``{track file or name: stem class}`` from a ``groups.json`` (``{}`` when there is none).

    Two forms are read: ``{"kick": "drums", "bass.wav": "bass", ...}`` (track -> stem class) and
    ``{"drums": ["kick", "snare"], "bass": ["bass"], ...}`` (stem class -> tracks, every key a stem
    class). Lists under other names (``mixrep console make-case`` writes ``{"rhythm": [...],
    "music": [...]}``: groups of a console, not stem classes) are refused with how to convert them.

    Raises:
        DatasetError: unparsable JSON, not an object, unknown stem classes, lists under names that
            are not stem classes, or a track listed under two classes.
    """
    if not path.is_file():
        return {}
    try:
        groups = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"cannot parse {path}: {e}; it must map track names to {', '.join(STEMS)}") from e
    if not isinstance(groups, dict):
        raise DatasetError(f"{path} must be a JSON object mapping track names to {', '.join(STEMS)}")
    lists = {k: v for k, v in groups.items() if isinstance(v, list)}
    if lists:
        return _groups_by_class(path, groups, lists)
    bad = {k: v for k, v in groups.items() if not isinstance(v, str) or v not in STEM_INDEX}
    if bad:
        raise DatasetError(f"{path}: unknown stem classes {bad}; use one of {', '.join(STEMS)}")
    return groups


def _groups_by_class(path: Path, groups: dict, lists: dict) -> dict[str, str]:
    """Invert the ``{stem class: [tracks]}`` form of a groups file (see :func:`_read_groups`)."""
    classes = "|".join(STEMS)
    example = ", ".join(f'"{t}": "<{classes}>"' for t in [t for v in lists.values() for t in v][:2]) or '"kick": "drums"'
    mixed = [k for k in groups if k not in lists]
    if mixed:
        raise DatasetError(f"{path} mixes lists with single entries ({mixed}); use one form: track -> class, or "
                           f"class -> list of tracks")
    not_classes = [k for k in groups if k not in STEM_INDEX]
    if not_classes:
        raise DatasetError(
            f"{path} lists tracks under {not_classes}, which are not stem classes; mixrep needs each track's "
            f"stem class ({', '.join(STEMS)}): write either {{{example}}} (track -> class) or "
            f'{{"drums": ["kick", ...], "bass": [...], "other": [...], "vocals": [...]}} (class -> tracks). '
            f"A console's groups (mixrep console make-case writes rhythm/music) do not say the class")
    out: dict[str, str] = {}
    for stem, tracks in groups.items():
        for track in tracks:
            if not isinstance(track, str):
                raise DatasetError(f"{path}: the {stem} list holds {track!r}; list track names (strings)")
            if track in out and out[track] != stem:
                raise DatasetError(f"{path}: {track} is listed under both {out[track]} and {stem}; list it once")
            out[track] = stem
    return out


MULTITRACK_KINDS: tuple[str, ...] = ("slakh", "medleydb", "moisesdb", "tracks", "soundfont")
"""Source kinds of :func:`~mixrep.data.sources.open_source` that are multitracks."""


def open_multitrack_source(kind: str, root: str | Path | None, sample_rate: int = SAMPLE_RATE, **options):
    """Build a multitrack source by kind (``open_source`` delegates here).

    ``soundfont``: an existing rendered corpus at ``root`` is opened as it is; given a
    ``soundfont=``, ``midi_dir=`` or :class:`~mixrep.data.soundfont.SoundfontCorpusConfig` fields (or
    no corpus at ``root`` yet), what is missing is rendered first, with the synthetic corpus as
    the fallback where no soundfont is available (see :func:`~mixrep.data.soundfont.open_soundfont_corpus`).
    """
    classes = {"slakh": SlakhSource, "medleydb": MedleyDBSource, "moisesdb": MoisesDBSource, "tracks": TrackFolderSource}
    if kind in classes:
        return classes[kind](root, sample_rate=sample_rate, **options)
    if kind != "soundfont":
        raise ValueError(f"unknown multitrack source kind {kind!r}; use one of {MULTITRACK_KINDS}")
    from mixrep.data.soundfont import SoundfontCorpusConfig, SoundfontSource, open_soundfont_corpus

    fields = {f.name for f in dataclasses.fields(SoundfontCorpusConfig)}
    config_options = {k: options.pop(k) for k in list(options) if k in fields}
    soundfont, midi_dir = options.pop("soundfont", None), options.pop("midi_dir", None)
    rendered = root is not None and any(Path(root).glob("*/song.json"))
    if rendered and not config_options and soundfont is None and midi_dir is None:
        return SoundfontSource(root, sample_rate=sample_rate, **options)
    try:
        config = SoundfontCorpusConfig(sample_rate=sample_rate, **config_options)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"cannot build the soundfont corpus: {e}") from e
    return open_soundfont_corpus(root, config, soundfont, midi_dir, sample_rate=sample_rate, **options)

"""Readers for the multitrack layouts researchers use, each a :class:`~mixrep.audio.multitrack.MultitrackSource`.

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

Folders of song folders of tracks are :class:`~mixrep.datasets.song_folder.TrackFolderSource`.

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

import json
import logging
import re
from pathlib import Path

from mixrep.audio.multitrack import InstrumentTrack
from mixrep.constants import SAMPLE_RATE
from mixrep.audio.multitrack_files import (
    DEFAULT_MIN_SECONDS,
    LENGTH_TOLERANCE_SECONDS,
    FileMultitrackSource,
    check_split,
    hash_split,
    slug,
    unique_names,
)
from mixrep.errors import DatasetError
from mixrep.tracks import SkipLog

log = logging.getLogger(__name__)

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
        check_split(split)
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

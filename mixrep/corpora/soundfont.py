"""The sampled-instrument corpus: songs rendered track by track with a General-MIDI soundfont.

Songs come from two places:

- generated: the notes of :func:`mixrep.corpora.score.compose_song` (the synthetic corpus's songs),
  rendered as tracks ``kick``, ``snare``, ``hats`` (drums, one GM kit per song), ``bass``, ``chords``
  and ``lead`` with instruments drawn per song from GM families (:class:`SoundfontCorpusConfig`);
- MIDI files (``midi_dir``, e.g. Lakh MIDI): one track per channel and program
  (:func:`mixrep.corpora.midi.read_midi`).

Every track is rendered dry (FluidSynth reverb and chorus off, no sends, centred) so all ambience
comes from the mixing style. Each song is scaled so the louder of its mix and any track peaks at
``peak_dbfs``; the tracks keep the balance the soundfont gives them.

Layout on disk (:func:`render_corpus`, read back by :class:`SoundfontSource`)::

    <out>/corpus.json                  config, soundfont, and the last run's counts
    <out>/<song_id>/<track>.flac       one file per track (mono where both channels are equal)
    <out>/<song_id>/song.json          written last: a song folder without it is incomplete

Rendering is cached and resumable: a song whose ``song.json`` carries the same cache key (config,
soundfont file, the MIDI file's size and time) is not rendered again, every file is written to a
temporary name and renamed, so a run killed mid-corpus keeps every song it finished and the next
run carries on. A MIDI file that is corrupt or has no notes, and a track that renders silent (a
preset the soundfont lacks), are skipped and counted, never fatal.

Shape:
    ``SoundfontSource.read_tracks`` ``(tracks, channels=2, samples)``; ``read_stems``
    ``(stems=4, channels=2, samples)``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixrep.audio.io import check_sample_rate, write_audio
from mixrep.audio.fluidsynth import DRUM_BANK, DRUM_CHANNEL, MidiEvent, SoundFontSynth, check_soundfont, default_soundfont
from mixrep.constants import SAMPLE_RATE
from mixrep.corpora.midi import read_midi
from mixrep.audio.multitrack import InstrumentTrack
from mixrep.audio.multitrack_files import LENGTH_TOLERANCE_SECONDS, FileMultitrackSource, slug, unique_names
from mixrep.corpora.score import Note, compose_song
from mixrep.audio.multitrack_files import DEFAULT_MIN_SECONDS, hash_split
from mixrep.corpora.synthetic import split_for_index
from mixrep.tracks import SPLITS, SkipLog
from mixrep.errors import DatasetError, MixrepError
from mixrep.files import atomic_write_text, digest

log = logging.getLogger(__name__)

GM_PROGRAMS: tuple[str, ...] = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano", "Electric Piano 1",
    "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta", "Glockenspiel", "Music Box", "Vibraphone", "Marimba",
    "Xylophone", "Tubular Bells", "Dulcimer", "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ",
    "Reed Organ", "Accordion", "Harmonica", "Tango Accordion", "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)",
    "Electric Guitar (jazz)", "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar",
    "Distortion Guitar", "Guitar Harmonics", "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)",
    "Fretless Bass", "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2", "Violin", "Viola", "Cello",
    "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani", "String Ensemble 1",
    "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs", "Voice Oohs", "Synth Voice",
    "Orchestra Hit", "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section", "Synth Brass 1",
    "Synth Brass 2", "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon",
    "Clarinet", "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)", "Lead 6 (voice)",
    "Lead 7 (fifths)", "Lead 8 (bass + lead)", "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)",
    "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)", "FX 1 (rain)", "FX 2 (soundtrack)",
    "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)", "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba", "Bagpipe", "Fiddle", "Shanai", "Tinkle Bell", "Agogo",
    "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal", "Guitar Fret Noise",
    "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter", "Applause", "Gunshot",
)
"""General MIDI Level 1 program names, programs 0-127."""

GM_DRUM_KITS: dict[int, str] = {0: "Standard", 8: "Room", 16: "Power", 24: "Electronic", 25: "TR-808", 32: "Jazz",
                                40: "Brush", 48: "Orchestra"}
"""GS drum kits (bank 128 programs) that GM soundfonts usually carry."""

_BASS_PROGRAMS = frozenset({*range(32, 40), 43})
_VOCAL_PROGRAMS = frozenset({52, 53, 54, 85})
_PERCUSSION_PROGRAMS = frozenset({47, 113, 115, 116, 117, 118, 119})


def gm_stem(program: int, is_drum: bool) -> str:
    """Stem class of a GM program, MUSDB18's convention: basses (and contrabass) -> bass; choir,
    voice and voice leads -> vocals; the drum channel and unpitched percussion programs -> drums."""
    if is_drum or program in _PERCUSSION_PROGRAMS:
        return "drums"
    if program in _BASS_PROGRAMS:
        return "bass"
    return "vocals" if program in _VOCAL_PROGRAMS else "other"


@dataclass(frozen=True)
class SoundfontCorpusConfig:
    """What the sampled-instrument corpus renders.

    Attributes:
        num_songs: generated songs (``sf-0000``...); 0 renders only MIDI files.
        seed: song ``i`` plays the notes of :func:`~mixrep.corpora.score.compose_song` ``(seed, i)``
            (so song ``i`` has the notes of synthetic song ``i`` of the same seed); its
            instruments are drawn from ``(seed, i, 2)``.
        song_seconds: length of generated songs.
        sample_rate: rendering rate in Hz.
        peak_dbfs: the louder of a song's mix and any track peaks here.
        bass_programs, chord_programs, lead_programs, vocal_programs, drum_kits: the GM programs
            drawn from per song (those the soundfont lacks are left out).
        vocal_lead_probability: share of songs whose lead is a voice program (stem ``vocals``);
            the others' lead is an instrument (stem ``other``).
        midi_max_seconds: MIDI files are rendered up to this length.
    """

    num_songs: int = 64
    seed: int = 0
    song_seconds: float = 16.0
    sample_rate: int = SAMPLE_RATE
    tempo_bpm_range: tuple[float, float] = (80.0, 150.0)
    peak_dbfs: float = -1.0
    bass_programs: tuple[int, ...] = tuple(range(32, 40))
    chord_programs: tuple[int, ...] = (0, 1, 2, 4, 5, 6, 7, 11, 16, 17, 18, 19, 24, 25, 26, 27, 29, 46, 48, 49, 50,
                                       61, 88, 89, 90, 91, 92, 94, 95)
    lead_programs: tuple[int, ...] = (40, 56, 57, 64, 65, 66, 68, 71, 72, 73, 80, 81, 82, 84, 87)
    vocal_programs: tuple[int, ...] = (52, 53, 54, 85)
    vocal_lead_probability: float = 0.5
    drum_kits: tuple[int, ...] = (0, 8, 16, 24, 25, 32, 40)
    midi_max_seconds: float = 60.0
    val_fraction: float = 0.1
    test_fraction: float = 0.1

    def __post_init__(self) -> None:
        if int(self.num_songs) != self.num_songs or self.num_songs < 0:
            raise ValueError(f"num_songs must be an integer >= 0, got {self.num_songs!r}")
        if not 1.0 <= self.song_seconds <= 3600.0 or not 1.0 <= self.midi_max_seconds <= 3600.0:
            raise ValueError(f"song_seconds and midi_max_seconds must lie in [1, 3600] s, got {self.song_seconds}, "
                             f"{self.midi_max_seconds}")
        object.__setattr__(self, "sample_rate", check_sample_rate(self.sample_rate))
        if not -60.0 <= self.peak_dbfs <= 0.0:
            raise ValueError(f"peak_dbfs must lie in [-60, 0] dBFS, got {self.peak_dbfs!r}")
        if not 0.0 <= self.vocal_lead_probability <= 1.0:
            raise ValueError(f"vocal_lead_probability must lie in [0, 1], got {self.vocal_lead_probability}")
        for name in ("bass_programs", "chord_programs", "lead_programs", "vocal_programs", "drum_kits"):
            programs = tuple(int(p) for p in getattr(self, name))
            if not programs or not all(0 <= p <= 127 for p in programs):
                raise ValueError(f"{name} must be a non-empty list of programs 0-127, got {getattr(self, name)!r}")
            object.__setattr__(self, name, programs)
        object.__setattr__(self, "tempo_bpm_range", tuple(float(t) for t in self.tempo_bpm_range))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class CorpusReport:
    """What one :func:`render_corpus` run did."""

    out_dir: Path
    soundfont: Path
    rendered: int = 0
    cached: int = 0
    track_seconds: float = 0.0  # rendered in this run
    render_seconds: float = 0.0  # wall time spent rendering (FluidSynth + writing)
    skipped: SkipLog = field(default_factory=SkipLog)

    @property
    def songs(self) -> int:
        return self.rendered + self.cached

    def summary(self) -> str:
        speed = f", {self.track_seconds / self.render_seconds:.0f} track-seconds per second" if self.render_seconds else ""
        return (f"{self.songs} songs in {self.out_dir} ({self.rendered} rendered, {self.cached} cached{speed}); "
                f"{self.skipped.summary()}")


# ----------------------------------------------------------------------------- song plans


@dataclass(frozen=True)
class _PlannedTrack:
    name: str
    instrument: str
    stem: str
    program: int
    is_drum: bool
    events: tuple[MidiEvent, ...]


def _note_events(notes: tuple[Note, ...], channel: int) -> list[MidiEvent]:
    events = []
    for n in notes:
        velocity = int(np.clip(round(n.velocity * 127), 1, 127))
        events += [MidiEvent(n.onset_seconds, "note_on", channel, n.pitch, velocity),
                   MidiEvent(n.onset_seconds + n.duration_seconds, "note_off", channel, n.pitch)]
    return events


def _choose(rng: np.random.Generator, synth: SoundFontSynth, bank: int, programs: tuple[int, ...], what: str) -> int:
    available = synth.available(bank, programs)
    if not available:
        raise DatasetError(f"soundfont {synth.path} has none of the {what} programs {list(programs)} (bank {bank}); "
                           "pass a General-MIDI soundfont or change the program lists")
    return int(rng.choice(available))


def plan_generated_song(index: int, config: SoundfontCorpusConfig, synth: SoundFontSynth
                        ) -> tuple[list[_PlannedTrack], float, dict]:
    """Tracks (instrument draws + events) of generated song ``index``, its length and metadata."""
    score = compose_song(config.seed, index, config.song_seconds, config.tempo_bpm_range)
    rng = np.random.default_rng([config.seed, index, 2])
    kit = _choose(rng, synth, DRUM_BANK, config.drum_kits, "drum kit")
    bass = _choose(rng, synth, 0, config.bass_programs, "bass")
    chords = _choose(rng, synth, 0, config.chord_programs, "chord")
    vocal_lead = rng.random() < config.vocal_lead_probability
    lead = _choose(rng, synth, 0, config.vocal_programs if vocal_lead else config.lead_programs, "lead")
    kit_name = f"{GM_DRUM_KITS.get(kit, f'kit {kit}')} kit"
    drums = {"kick": ("kick",), "snare": ("snare",), "hats": ("closed_hat", "open_hat")}
    tracks = [
        _PlannedTrack(name, f"{kit_name} {name}", "drums", kit, True,
                      tuple(e for part in parts for e in _note_events(score.part(part).notes, DRUM_CHANNEL)))
        for name, parts in drums.items()
    ]
    for name, program, part in (("bass", bass, "bass"), ("chords", chords, "chords"), ("lead", lead, "lead")):
        tracks.append(_PlannedTrack(name, GM_PROGRAMS[program], gm_stem(program, False), program, False,
                                    tuple(_note_events(score.part(part).notes, 0))))
    metadata = {**score.metadata(), "sections": score.sections(),
                "instruments": {"drum_kit": kit_name, "bass": GM_PROGRAMS[bass], "chords": GM_PROGRAMS[chords],
                                "lead": GM_PROGRAMS[lead]}}
    return tracks, config.song_seconds, metadata


def plan_midi_song(path: Path, config: SoundfontCorpusConfig) -> tuple[list[_PlannedTrack], float, dict]:
    """Tracks of a MIDI file: one per channel and program (raises DatasetError on bad files)."""
    song = read_midi(path, config.midi_max_seconds)
    names = unique_names(["drums" if p.is_drum else slug(GM_PROGRAMS[p.program]) for p in song.parts])
    tracks = [
        _PlannedTrack(name, f"{GM_DRUM_KITS.get(p.program, f'kit {p.program}')} kit" if p.is_drum else GM_PROGRAMS[p.program],
                      gm_stem(p.program, p.is_drum), p.program, p.is_drum, p.events)
        for name, p in zip(names, song.parts)
    ]
    return tracks, song.seconds, {"midi": str(path), "midi_channels": sorted({p.channel for p in song.parts})}


# ----------------------------------------------------------------------------- rendering


SILENT_TRACK_PEAK = 1e-5
"""A rendered track whose peak stays below this (-100 dBFS) is silent (a missing preset, notes out of range)."""


def _cache_key(config: SoundfontCorpusConfig, soundfont: Path, song: dict) -> str:
    stat = soundfont.stat()
    identity = {"config": {k: v for k, v in config.to_dict().items() if k not in ("num_songs", "val_fraction",
                                                                                  "test_fraction")},
                "soundfont": [str(soundfont.resolve()), stat.st_size, int(stat.st_mtime)], "song": song,
                "format": 1}
    return digest(json.dumps(identity, sort_keys=True), "sha1")  # stored in song.json: SHA-1 keeps old renders cached


def _is_cached(folder: Path, key: str) -> bool:
    try:
        entry = json.loads((folder / "song.json").read_text())
    except (OSError, ValueError):
        return False
    return entry.get("cache_key") == key and all((folder / t["file"]).is_file() for t in entry.get("tracks", []))


def _render_song(synth: SoundFontSynth, song_id: str, folder: Path, planned: list[_PlannedTrack], seconds: float,
                 config: SoundfontCorpusConfig, skipped: SkipLog) -> list[dict] | None:
    """Render, normalise and write one song's tracks; returns their entries (None if all silent)."""
    audio, kept = [], []
    for track in planned:
        channel = DRUM_CHANNEL if track.is_drum else 0
        bank = DRUM_BANK if track.is_drum else 0
        if not synth.has_preset(bank, track.program):
            skipped.skip(f"{song_id}/{track.name}", "missing_preset",
                         f"{synth.name} has no preset bank {bank} program {track.program} ({track.instrument})")
            continue
        rendered = synth.render(track.events, seconds, {channel: (bank, track.program)})
        if np.abs(rendered).max(initial=0.0) < SILENT_TRACK_PEAK:
            skipped.skip(f"{song_id}/{track.name}", "silent_track", f"{track.instrument} rendered silent with {synth.name}")
            continue
        audio.append(rendered)
        kept.append(track)
    if not kept:
        return None
    tracks = np.stack(audio)
    peak = max(float(np.abs(tracks.sum(axis=0)).max()), float(np.abs(tracks).max()))
    tracks *= np.float32(10.0 ** (config.peak_dbfs / 20.0) / peak)
    for stale in folder.glob("*.flac") if folder.is_dir() else ():
        stale.unlink()
    entries = []
    for track, data in zip(kept, tracks):
        mono = np.array_equal(data[0], data[1])
        write_audio(folder / f"{track.name}.flac", data[:1] if mono else data, config.sample_rate)
        entries.append({"name": track.name, "instrument": track.instrument, "stem": track.stem,
                        "file": f"{track.name}.flac", "program": track.program, "is_drum": track.is_drum,
                        "channels": 1 if mono else 2})
    return entries


def _midi_files(midi_dir: Path) -> list[Path]:
    if midi_dir.is_file():
        return [midi_dir]
    if not midi_dir.is_dir():
        raise DatasetError(f"MIDI folder {midi_dir} does not exist; pass a folder of .mid files (or one file)")
    files = sorted(p for p in midi_dir.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    if not files:
        raise DatasetError(f"no .mid/.midi files under {midi_dir}")
    return files


def midi_song_id(path: Path, midi_dir: Path) -> str:
    """``midi-<relative path>`` with separators and odd characters turned into dashes."""
    rel = path.name if midi_dir.is_file() else path.relative_to(midi_dir).as_posix()
    return "midi-" + slug(os.path.splitext(rel)[0])


def render_corpus(out_dir: str | Path, config: SoundfontCorpusConfig | None = None,
                  soundfont: str | Path | None = None, midi_dir: str | Path | None = None,
                  progress: bool = True) -> CorpusReport:
    """Render (or complete) a sampled-instrument corpus in ``out_dir``; see the module docstring.

    Args:
        out_dir: corpus folder (created).
        config: what to render.
        soundfont: ``.sf2``/``.sf3`` file; default :func:`~mixrep.audio.fluidsynth.default_soundfont`.
        midi_dir: a MIDI file or a folder of them (recursive), rendered after the generated songs.
        progress: show a tqdm progress bar.

    Raises:
        DatasetError: no soundfont (none given, none installed), not a soundfont, bad MIDI folder,
            or nothing rendered at all.
        MixrepError: FluidSynth is not installed.
    """
    from tqdm import tqdm

    config = config or SoundfontCorpusConfig()
    if soundfont is None:
        soundfont = default_soundfont()
        if soundfont is None:
            raise DatasetError("no soundfont found: pass soundfont=PATH (--soundfont) or install one "
                               "(as root: apt-get install fluid-soundfont-gm)")
    soundfont = check_soundfont(soundfont)
    midi_root = None if midi_dir is None else Path(midi_dir).expanduser()
    plans: list[tuple[str, dict, str]] = [
        (f"sf-{i:04d}", {"kind": "generated", "index": i},
         split_for_index(i, config.num_songs, config.val_fraction, config.test_fraction))
        for i in range(config.num_songs)
    ]
    if midi_root is not None:
        for path in _midi_files(midi_root):
            rel = midi_song_id(path, midi_root)
            stat = path.stat()
            plans.append((rel, {"kind": "midi", "path": str(path.resolve()), "bytes": stat.st_size,
                                "mtime": int(stat.st_mtime)}, hash_split(rel, config.val_fraction, config.test_fraction)))
    if not plans:
        raise DatasetError("nothing to render: num_songs is 0 and no MIDI files were given")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    report = CorpusReport(out, soundfont)
    corpus_info = {"generator": "mixrep.corpora.soundfont", "config": config.to_dict(),
                   "soundfont": {"path": str(soundfont.resolve()), "name": soundfont.stem,
                                 "bytes": soundfont.stat().st_size}}
    atomic_write_text(out / "corpus.json", json.dumps(corpus_info, indent=1))
    synth = None
    try:
        bar = tqdm(plans, desc=f"rendering with {soundfont.name}", unit="song", disable=not progress)
        for song_id, song, split in bar:
            folder = out / song_id
            key = _cache_key(config, soundfont, song)
            if _is_cached(folder, key):
                report.cached += 1
                continue
            if synth is None:
                synth = SoundFontSynth(soundfont, config.sample_rate)
            started = time.perf_counter()
            if song["kind"] == "generated":
                planned, seconds, metadata = plan_generated_song(song["index"], config, synth)
            else:
                try:
                    planned, seconds, metadata = plan_midi_song(Path(song["path"]), config)
                except DatasetError as e:
                    kind = "no_notes" if "has no notes" in str(e) else "corrupt_midi"
                    report.skipped.skip(song["path"], kind, str(e))
                    continue
            entries = _render_song(synth, song_id, folder, planned, seconds, config, report.skipped)
            if entries is None:
                report.skipped.skip(song_id, "silent", "every track rendered silent")
                continue
            entry = {"song_id": song_id, "cache_key": key, "split": split, "seconds": seconds,
                     "sample_rate": config.sample_rate, "soundfont": soundfont.stem, "source": song,
                     "tracks": entries, "metadata": metadata}
            atomic_write_text(folder / "song.json", json.dumps(entry, indent=1))
            report.rendered += 1
            report.track_seconds += seconds * len(entries)
            report.render_seconds += time.perf_counter() - started
            bar.set_postfix(rendered=report.rendered, cached=report.cached, skipped=len(report.skipped))
    finally:
        if synth is not None:
            synth.close()
    last_run = {"rendered": report.rendered, "cached": report.cached, "skipped": report.skipped.counts}
    atomic_write_text(out / "corpus.json", json.dumps({**corpus_info, "last_run": last_run}, indent=1))
    if report.songs == 0:
        raise DatasetError(f"no song could be rendered into {out} ({report.skipped.summary()})")
    log.info("soundfont corpus: %s", report.summary())
    return report


# ----------------------------------------------------------------------------- reading


class SoundfontSource(FileMultitrackSource):
    """A corpus written by :func:`render_corpus`, as a :class:`~mixrep.audio.multitrack.MultitrackSource`.

    Only complete songs (with ``song.json``) are listed; the split is the one recorded at rendering.

    Args:
        root: the corpus folder.
        sample_rate: rate in Hz tracks are read at (resampled while decoding if it differs).
        min_seconds: shorter songs are skipped.
    """

    name = "soundfont"

    def __init__(self, root: str | Path, sample_rate: int = SAMPLE_RATE, min_seconds: float = DEFAULT_MIN_SECONDS,
                 check_silence: bool = False, length_tolerance_seconds: float = LENGTH_TOLERANCE_SECONDS) -> None:
        super().__init__(root, sample_rate, min_seconds, check_silence, length_tolerance_seconds, "soundfont corpus")
        found = sorted(self.root.glob("*/song.json"))
        if not found:
            raise DatasetError(f"no rendered songs in {self.root} (no <song>/song.json); render them with "
                               "`mixrep corpus soundfont --out DIR`")
        for path in found:
            try:
                entry = json.loads(path.read_text())
                tracks = [InstrumentTrack(t["name"], t["instrument"], t["stem"], path.parent / t["file"],
                                          int(t.get("channels", 2)), t.get("program"), bool(t.get("is_drum")))
                          for t in entry["tracks"]]
                split = entry["split"] if entry.get("split") in SPLITS else "train"
            except (OSError, ValueError, KeyError, TypeError) as e:
                self.skipped.skip(path, "bad_metadata", f"cannot read {path}: {e!r}")
                continue
            self._add_song(entry.get("song_id", path.parent.name), path.parent, tracks, split, {
                "soundfont": entry.get("soundfont"), **(entry.get("metadata") or {}).get("instruments", {})})
        self._finish(len(found))


def open_soundfont_corpus(root: str | Path | None, config: SoundfontCorpusConfig, soundfont: str | Path | None = None,
                          midi_dir: str | Path | None = None, sample_rate: int = SAMPLE_RATE, progress: bool = False,
                          **source_options):
    """Render what is missing of a corpus and open it; where no soundfont (or no FluidSynth) is
    available, log one line and return the pure-numpy synthetic corpus of the same songs instead.

    Args:
        root: corpus folder; default ``outputs/corpora/<soundfont name>-<seed>-<songs>``.

    Returns:
        A :class:`SoundfontSource`, or a :class:`~mixrep.corpora.synthetic.SyntheticSource` as the fallback.
    """
    path = Path(soundfont).expanduser() if soundfont is not None else default_soundfont()
    try:
        if path is None:
            raise DatasetError("no soundfont installed")
        check_soundfont(path)
        if root is None:
            root = Path("outputs") / "corpora" / f"{path.stem}-{config.seed}-{config.num_songs}"
        render_corpus(root, config, path, midi_dir, progress=progress)
    except (MixrepError, ImportError) as e:
        if soundfont is not None:
            raise  # a soundfont the user named must work
        from mixrep.corpora.synthetic import SynthConfig, SyntheticSource

        log.warning("no soundfont corpus (%s): using the pure-numpy synthetic corpus instead "
                    "(as root: apt-get install libfluidsynth3 fluid-soundfont-gm)", e)
        synth = SynthConfig(num_songs=max(config.num_songs, 1), seed=config.seed, song_seconds=config.song_seconds,
                            sample_rate=sample_rate, tempo_bpm_range=config.tempo_bpm_range)
        return SyntheticSource(synth, config.val_fraction, config.test_fraction)
    return SoundfontSource(root, sample_rate=sample_rate, **source_options)

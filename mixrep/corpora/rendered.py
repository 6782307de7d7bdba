"""Training on several corpora at once: the numpy synth and soundfont renderings, as one source.

:class:`CorpusMixture` lists the songs of several sources as one source (track ids prefixed by
the corpus name, splits kept, corpora interleaved) and reads each song from its own source; songs
of sources of stems are multitracks of four tracks.

:func:`open_generated_corpora` builds the generated corpora a training run asks for: ``synth``
(numpy, in memory) and ``soundfont`` (the same song generator rendered with each named General-MIDI
soundfont, once, cached on disk). Each corpus gets its own song seed, so no two corpora share the
notes of a song. Where a soundfont named by its short name (``FluidR3_GM``) is not installed, or
FluidSynth is missing, that corpus is left out with one log line, and a run left with no corpus
trains on the numpy synth; a soundfont given as a path must work.

Shape:
    ``read_stems`` ``(stems=4, channels=2, samples)``; ``read_tracks`` ``(tracks, channels=2, samples)``.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Mapping, Sequence
from itertools import chain, zip_longest
from pathlib import Path

import numpy as np

from mixrep.audio.fluidsynth import check_soundfont, installed_soundfonts
from mixrep.audio.multitrack import InstrumentTrack, Multitrack, MultitrackSource
from mixrep.constants import STEMS
from mixrep.errors import DatasetError, MixrepError
from mixrep.tracks import SkipLog, Source, Track

log = logging.getLogger(__name__)

CORPUS_SEED_STRIDE = 1000
"""Corpus ``k`` of a run (0 = synth, 1.. = the soundfonts in order) plays the songs of seed
``seed + k * CORPUS_SEED_STRIDE``: different notes in every corpus."""

GENERATED_KINDS = ("synth", "soundfont")


class CorpusMixture:
    """Several sources as one :class:`~mixrep.audio.multitrack.MultitrackSource`.

    Track ids are ``<corpus>/<track id>``; ``track.metadata["corpus"]`` names the corpus.
    :meth:`tracks` interleaves the corpora (first song of each, then the second...), so any prefix
    of a split (the style-retrieval set takes the first songs) spreads over every corpus.

    Args:
        sources: ``{corpus name: source}``, all at one sample rate.

    Raises:
        ValueError: no source, or sample rates that differ.
    """

    name = "mixture"

    def __init__(self, sources: Mapping[str, Source]) -> None:
        if not sources:
            raise ValueError("a corpus mixture needs at least one source")
        rates = {name: s.sample_rate for name, s in sources.items()}
        if len(set(rates.values())) != 1:
            raise ValueError(f"every corpus of a mixture must have one sample rate, got {rates}")
        self.sources = dict(sources)
        self.sample_rate = next(iter(rates.values()))
        self.skipped = SkipLog()
        for name, source in self.sources.items():
            self.skipped.entries += [(f"{name}/{track}", kind, reason) for track, kind, reason in source.skipped.entries]
        self._inner: dict[str, tuple[Source, Track]] = {}
        self._by_corpus: dict[str, list[Track]] = {}
        for name, source in self.sources.items():
            own = []
            for track in source.tracks():
                outer = dataclasses.replace(track, track_id=f"{name}/{track.track_id}",
                                            metadata={**track.metadata, "corpus": name})
                self._inner[outer.track_id] = (source, track)
                own.append(outer)
            self._by_corpus[name] = own

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}: {len(tracks)}" for name, tracks in self._by_corpus.items())
        return f"CorpusMixture({sizes})"

    def tracks(self, split: str | None = None) -> list[Track]:
        per_corpus = [[t for t in tracks if split is None or t.split == split] for tracks in self._by_corpus.values()]
        return [t for t in chain.from_iterable(zip_longest(*per_corpus)) if t is not None]

    def _resolve(self, track: Track) -> tuple[Source, Track]:
        try:
            return self._inner[track.track_id]
        except KeyError:
            raise DatasetError(f"{track.track_id!r} is not a song of this corpus mixture "
                               f"({', '.join(self.sources)})") from None

    def corpus_of(self, track: Track) -> str:
        return track.track_id.split("/", 1)[0]

    def read_stems(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        source, inner = self._resolve(track)
        return source.read_stems(inner, start_seconds, duration_seconds)

    def multitrack(self, track: Track) -> Multitrack:
        """The song's tracks; a song of a source of stems is four tracks named after the stems."""
        source, inner = self._resolve(track)
        if isinstance(source, MultitrackSource):
            return source.multitrack(inner)
        return Multitrack(inner.track_id, tuple(InstrumentTrack(stem, stem, stem) for stem in STEMS))

    def read_tracks(self, track: Track, start_seconds: float, duration_seconds: float) -> np.ndarray:
        source, inner = self._resolve(track)
        if isinstance(source, MultitrackSource):
            return source.read_tracks(inner, start_seconds, duration_seconds)
        return source.read_stems(inner, start_seconds, duration_seconds)


def find_soundfont(name: str | Path) -> Path | None:
    """A soundfont by path, or by the name of an installed one (``FluidR3_GM``, ``MuseScore_General``,
    ``TimGM6mb``: the file name's start, any case); ``None`` when no installed one has that name.

    Raises:
        DatasetError: ``name`` looks like a path (has a folder or an ``.sf2``/``.sf3`` suffix) and
            is not a soundfont file.
    """
    if _is_path(name):
        return check_soundfont(name)
    for path in installed_soundfonts():
        if path.name.lower().startswith(str(name).lower()):
            return path
    return None


def _is_path(name: str | Path) -> bool:
    return isinstance(name, Path) or "/" in name or name.lower().endswith((".sf2", ".sf3"))


def soundfont_label(path: Path) -> str:
    """A short corpus name of a soundfont file: ``MuseScore_General_Full.sf3`` -> ``MuseScore_General``."""
    stem = path.stem
    return stem.removesuffix("_Full")


def corpus_folder(corpus_dir: str | Path, soundfont: Path, seed: int, songs: int, song_seconds: float,
                  sample_rate: int) -> Path:
    """Where a rendered corpus is cached: one folder per soundfont, seed, size, length and rate."""
    return Path(corpus_dir) / f"{soundfont_label(soundfont)}-seed{seed}-{songs}x{song_seconds:g}s-{sample_rate}hz"


def render_soundfont_corpus(soundfont: str | Path, *, corpus_dir: str | Path, seed: int, songs: int,
                            song_seconds: float, sample_rate: int, min_seconds: float | None = None,
                            progress: bool = True) -> Source | None:
    """Render (once; cached under ``corpus_dir``) and open the generated songs of ``seed`` played by
    ``soundfont`` (a path, or an installed soundfont's name).

    Returns ``None``, after one log line, when a soundfont given by name is not installed or
    FluidSynth is missing.

    Raises:
        DatasetError: a soundfont given as a path is missing or not a soundfont; rendering failed.
        MixrepError: FluidSynth is missing and the soundfont was given as a path.
    """
    from mixrep.corpora.soundfont import SoundfontCorpusConfig, SoundfontSource, render_corpus

    path = find_soundfont(soundfont)
    if path is None:
        installed = ", ".join(p.name for p in installed_soundfonts()) or "none"
        log.warning("soundfont %r is not installed (installed: %s): leaving its corpus out "
                    "(as root: bash scripts/install_system_deps.sh)", str(soundfont), installed)
        return None
    config = SoundfontCorpusConfig(num_songs=songs, seed=seed, song_seconds=song_seconds, sample_rate=sample_rate)
    folder = corpus_folder(corpus_dir, path, seed, songs, song_seconds, sample_rate)
    try:
        render_corpus(folder, config, path, progress=progress and sys.stderr.isatty())
    except MixrepError as e:
        if _is_path(soundfont) or isinstance(e, DatasetError):
            raise
        log.warning("no soundfont corpus for %s (%s): leaving it out", path.name, e)
        return None
    # Generated songs all last song_seconds; a caller that needs two clips per song says so.
    return SoundfontSource(folder, sample_rate=sample_rate, min_seconds=0.0 if min_seconds is None else min_seconds)


def open_generated_corpora(kinds: Sequence[str], *, sample_rate: int, seed: int = 0, synth_songs: int = 64,
                           synth_song_seconds: float = 16.0, synth_cache_songs: int = 16,
                           soundfonts: Sequence[str] = ("FluidR3_GM",), soundfont_songs: int = 64,
                           soundfont_song_seconds: float = 16.0, corpus_dir: str | Path = "outputs/corpora",
                           min_seconds: float | None = None, progress: bool = True) -> Source:
    """The generated corpora of ``kinds`` (``synth`` and/or ``soundfont``) as one source.

    Corpus ``k`` in the order synth, then each soundfont of ``soundfonts``, plays the songs of
    seed ``seed + k * CORPUS_SEED_STRIDE``. One corpus is returned as it is; several as a
    :class:`CorpusMixture` named ``synth`` and by soundfont (``FluidR3_GM``...). Soundfont corpora
    that cannot be rendered here are left out (one log line each); if none is left, the numpy
    synth is used (one log line).

    Raises:
        ValueError: an unknown kind.
    """
    from mixrep.corpora.synthetic import SynthConfig, SyntheticSource

    unknown = [k for k in kinds if k not in GENERATED_KINDS]
    if unknown or not kinds:
        raise ValueError(f"generated corpora are {', '.join(GENERATED_KINDS)}; got {list(kinds)}")
    sources: dict[str, Source] = {}

    def synth(corpus_seed: int) -> Source:
        try:
            config = SynthConfig(sample_rate=sample_rate, num_songs=synth_songs, song_seconds=synth_song_seconds,
                                 seed=corpus_seed)
        except ValueError as e:
            raise DatasetError(f"cannot build the synthetic corpus: {e}") from e
        return SyntheticSource(config, cache_songs=synth_cache_songs)

    if "synth" in kinds:
        sources["synth"] = synth(seed)
    if "soundfont" in kinds:
        for k, soundfont in enumerate(soundfonts, start=1):
            corpus = render_soundfont_corpus(
                soundfont, corpus_dir=corpus_dir, seed=seed + k * CORPUS_SEED_STRIDE, songs=soundfont_songs,
                song_seconds=soundfont_song_seconds, sample_rate=sample_rate, min_seconds=min_seconds,
                progress=progress)
            if corpus is not None:
                sources[soundfont_label(find_soundfont(soundfont))] = corpus
        if not sources:
            log.warning("no soundfont corpus could be rendered here: training on the pure-numpy synthetic corpus "
                        "instead (as root: bash scripts/install_system_deps.sh installs FluidSynth and soundfonts)")
            sources["synth"] = synth(seed)
    if len(sources) == 1:
        return next(iter(sources.values()))
    return CorpusMixture(sources)


def detect_layout(root: str | Path) -> str:
    """The source kind of a dataset folder, from its layout: ``soundfont`` (``<song>/song.json``),
    ``slakh`` (``[split/]TrackNNNNN/metadata.yaml``), ``medleydb`` (``<Song>/<Song>_METADATA.yaml``),
    ``moisesdb`` (``<id>/data.json``), ``stems`` (a song folder with ``drums``, ``bass``, ``other`` and
    ``vocals`` files) or else ``tracks``.

    Raises:
        DatasetError: ``root`` is not a folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist or is not a folder")
    if any(root.glob("*/song.json")):
        return "soundfont"
    if any(root.glob("Track*/metadata.yaml")) or any(root.glob("*/Track*/metadata.yaml")):
        return "slakh"
    if any(root.glob("*/*_METADATA.yaml")):
        return "medleydb"
    if any(root.glob("*/data.json")):
        return "moisesdb"
    for song in (p for p in root.iterdir() if p.is_dir()):
        if set(STEMS) <= {f.stem.lower() for f in song.iterdir() if f.is_file()}:
            return "stems"  # a song folder holding exactly one file per stem class
    return "tracks"

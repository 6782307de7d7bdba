"""Graph-prediction cases: a song's raw tracks, the outputs of its buses, and the sparse graph that made them.

A case takes a random subset of one song's tracks (any
:class:`~mixrep.audio.multitrack.MultitrackSource`: the numpy synth, a soundfont corpus, a
multitrack dataset), aligns their levels as Stage 2 does, groups them (by stem class, or into a
``rhythm`` bus of drums and bass and a ``music`` bus of the rest, as ``mixrep console make-case``
does) and mixes them with a console whose parameters and sparse graph are drawn from the musical
prior (:func:`~mixrep.graphs.cases.draw_console`). A drawn processor one cannot hear is bypassed
(``audible_db``), so the labels say what the audio shows. Unlike Stage 2 items, tracks and buses
come from the *same* song: this is the pruning search's question (which processors mixed these
tracks into this mix?), answered by :class:`~mixrep.graphs.predictor.GraphPredictor`.

Shape:
    tracks ``(K, 2, samples)``, buses ``(G, 2, samples)``, ``groups`` ``(K,)`` bus of every track;
    labels ``(K, types)`` for track strips and ``(G, types)`` for buses, types in chain order.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mixrep.audio.multitrack import MultitrackSource
from mixrep.console import MixingConsole, MusicalPrior
from mixrep.console.graph import build_console, parse_chain
from mixrep.console.spec import ConsoleSpec, align_track_levels
from mixrep.console.strips import group_outputs, strip_keep
from mixrep.constants import STEMS
from mixrep.errors import DatasetError, MixrepError
from mixrep.graphs.cases import draw_console
from mixrep.graphs.evidence import EVIDENCE_NAMES, strip_evidence

log = logging.getLogger(__name__)

GROUPINGS = ("stems", "rhythm-music")
RHYTHM_STEMS = ("drums", "bass")
GRAPH_PRIOR = {"eq": 0.6, "compressor": 0.4, "noisegate": 0.3, "imager": 0.4, "delay": 0.3, "reverb": 0.4}
"""Default ``active_probability`` of the cases: Stage 2's and the pruning benchmark's sparse graphs."""


@dataclass(frozen=True)
class GraphCase:
    """One song mixed by a known sparse graph.

    Attributes:
        song: the source's song id.
        names, stems: track names and their stem classes.
        group_names: the buses, in mix-node order; ``groups`` the bus of every track.
        tracks: ``(K, 2, samples)`` level-aligned raw tracks; buses: ``(G, 2, samples)``.
        track_labels: ``(K, types)``; bus_labels: ``(G, types)``: 1 where the processor is in the graph.
        console: the console that rendered the buses (its graph's mask is the labels).
    """

    song: str
    names: list[str]
    stems: list[str]
    group_names: list[str]
    groups: list[int]
    tracks: torch.Tensor
    buses: torch.Tensor
    track_labels: torch.Tensor
    bus_labels: torch.Tensor
    console: MixingConsole


def case_groups(names: list[str], stems: list[str], grouping: str) -> dict[str, list[str]]:
    """Bus name -> track names, buses in :data:`STEMS` order (``stems``) or ``rhythm``, ``music``."""
    if grouping == "stems":
        return {s: [n for n, c in zip(names, stems) if c == s] for s in STEMS if s in stems}
    if grouping == "rhythm-music":
        rhythm = [n for n, c in zip(names, stems) if c in RHYTHM_STEMS]
        music = [n for n, c in zip(names, stems) if c not in RHYTHM_STEMS]
        return {g: m for g, m in (("rhythm", rhythm), ("music", music)) if m}
    raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")


class GraphCaseSet:
    """Cases drawn from the songs of one split of a multitrack source, fixed by ``(seed, index)``.

    Args:
        source: any multitrack source (its ``sample_rate`` is the cases' rate).
        split: ``train``, ``val`` or ``test`` songs of the source; ``None`` all of them.
        console: chains and processor options (its ``sample_rate`` is replaced by the source's).
        clip_seconds: length of a case.
        min_tracks: fewest tracks a case keeps (at most the song's).
        groupings: drawn from uniformly per case (see :func:`case_groups`).
        prior: :class:`MusicalPrior` fields; ``active_probability`` defaults to :data:`GRAPH_PRIOR`.
        audible_db: drawn optional processors changing their input by less are bypassed (0 keeps all).
        seed: case seed.
    """

    def __init__(self, source: MultitrackSource, split: str | None = "train", console: ConsoleSpec | None = None,
                 clip_seconds: float = 3.0, min_tracks: int = 2, groupings: tuple[str, ...] = GROUPINGS,
                 prior: dict | None = None, audible_db: float = 1.0, seed: int = 0) -> None:
        self.source, self.split, self.seed = source, split, seed
        self.songs = source.tracks(split)
        if not self.songs:
            raise ValueError(f"the {split or 'whole'} split of the {source.name} source has no songs")
        spec = console or ConsoleSpec()
        self.console = ConsoleSpec(source.sample_rate, spec.chain, spec.group_chain, spec.processor_options)
        self.processors = self.console.processors()
        self.track_layout, self.group_layout = self.console.layouts(self.processors)
        if self.track_layout.types != self.group_layout.types:
            raise ValueError("graph cases need one chain for tracks and buses (labels share their columns), got "
                             f"{self.console.chain!r} and {self.console.group_chain!r}")
        self.types = tuple(parse_chain(self.console.chain))
        if not groupings or not set(groupings) <= set(GROUPINGS):
            raise ValueError(f"groupings must be one or more of {GROUPINGS}, got {groupings!r}")
        self.groupings = tuple(groupings)
        self.clip_seconds, self.min_tracks = clip_seconds, min_tracks
        self.prior = MusicalPrior(**{"active_probability": GRAPH_PRIOR, **(prior or {})})
        if audible_db < 0:
            raise ValueError(f"audible_db must be >= 0, got {audible_db}")
        self.audible_db = audible_db

    def __getitem__(self, index: int) -> GraphCase:
        rng = np.random.default_rng([self.seed, zlib.crc32((self.split or "all").encode()), index])
        song = self.songs[int(rng.integers(len(self.songs)))]
        multitrack = self.source.multitrack(song)
        k = int(rng.integers(min(self.min_tracks, len(multitrack)), len(multitrack) + 1))
        keep = sorted(rng.choice(len(multitrack), size=k, replace=False).tolist())
        names = [multitrack.names[i] for i in keep]
        stems = [multitrack.stems[i] for i in keep]
        start = float(rng.uniform(0.0, max(0.0, song.duration_seconds - self.clip_seconds)))
        tracks = self.source.read_tracks(song, start, self.clip_seconds)[keep]
        tracks = torch.from_numpy(align_track_levels(tracks))
        groups = case_groups(names, stems, self.groupings[int(rng.integers(len(self.groupings)))])
        graph = build_console(names, groups, self.console.chain, self.console.group_chain)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        console = draw_console(graph, self.processors, self.prior, generator, tracks, self.audible_db)
        with torch.no_grad():
            buses = group_outputs(console.graph, console.render_graph(tracks, keep_nodes=True).node_outputs)
        track_labels, bus_labels = strip_keep(console.graph, self.track_layout, self.group_layout)
        bus_of = {n: g for g, members in enumerate(groups.values()) for n in members}
        return GraphCase(song.track_id, names, stems, list(groups), [bus_of[n] for n in names], tracks, buses,
                         track_labels, bus_labels, console)


class GraphEvidenceDataset(torch.utils.data.Dataset):
    """The evidence rows and labels of ``count`` cases of a :class:`GraphCaseSet` (for a DataLoader's
    workers: the evidence is the slow part).

    An item is ``(rows (strips, D), labels (strips, types))``: the case's track strips, then its
    buses; zero rows for a case whose song cannot be read (logged with the song and the reason).
    """

    def __init__(self, cases: GraphCaseSet, count: int) -> None:
        self.cases, self.count = cases, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        try:
            case = self.cases[index]
            evidence = strip_evidence(case.tracks, case.groups, case.buses, self.cases.console.sample_rate)
        except (MixrepError, OSError, ValueError) as e:  # one unreadable song of a large dataset: skip it
            log.warning("graph case %d of the %s source skipped: %s", index, self.cases.source.name, e)
            return np.zeros((0, len(EVIDENCE_NAMES))), np.zeros((0, len(self.cases.types)))
        rows = np.concatenate([evidence.tracks, evidence.buses])
        labels = torch.cat([case.track_labels, case.bus_labels]).numpy()
        return rows, labels


def evidence_table(cases: GraphCaseSet, count: int, workers: int = 0, progress: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Evidence rows ``(N, D)`` and labels ``(N, types)`` of every strip of ``count`` cases.

    Raises:
        DatasetError: no case could be read.
    """
    from tqdm import tqdm

    loader = torch.utils.data.DataLoader(GraphEvidenceDataset(cases, count), batch_size=None, num_workers=workers)
    rows, labels = [], []
    description = f"{cases.source.name} {cases.split or 'all'} evidence"
    for r, y in tqdm(loader, total=count, disable=not progress, desc=description):
        rows.append(np.asarray(r))
        labels.append(np.asarray(y))
    skipped = sum(len(r) == 0 for r in rows)
    if skipped == count:
        raise DatasetError(f"none of the {count} graph cases of the {cases.source.name} source could be read "
                           "(see the warnings above)")
    if skipped:
        log.warning("%d of %d graph cases skipped (unreadable songs)", skipped, count)
    return np.concatenate(rows), np.concatenate(labels)


CASE_SOURCES_HELP = "synth (the numpy synth, no files) or soundfont:NAME (an installed GM soundfont, e.g. FluidR3_GM)"


def open_case_source(name: str, songs: int, sample_rate: int, corpus_dir: str | Path) -> MultitrackSource:
    """The multitrack source ``name`` (:data:`CASE_SOURCES_HELP`) at ``sample_rate``; a soundfont
    corpus is rendered into (or read from) ``corpus_dir``.

    Raises:
        DatasetError: an unknown name, or a soundfont (or FluidSynth) that is not installed.
    """
    from mixrep.corpora.rendered import render_soundfont_corpus  # FluidSynth only when asked for
    from mixrep.corpora.synthetic import SynthConfig, SyntheticSource

    if name == "synth":
        return SyntheticSource(SynthConfig(num_songs=songs, sample_rate=sample_rate), cache_songs=songs)
    kind, _, soundfont = name.partition(":")
    if kind != "soundfont" or not soundfont:
        raise DatasetError(f"--source {name!r}: use {CASE_SOURCES_HELP}")
    source = render_soundfont_corpus(soundfont, corpus_dir=corpus_dir, seed=0, songs=songs,
                                     song_seconds=12.0, sample_rate=sample_rate, progress=True)
    if source is None:
        raise DatasetError(f"--source {name!r}: soundfont {soundfont!r} or FluidSynth is not installed here "
                           "(as root: bash scripts/install_system_deps.sh)")
    return source

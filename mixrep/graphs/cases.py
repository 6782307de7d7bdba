"""Fitting cases with a known answer: tracks mixed by a console with musical parameters.

:func:`make_case` takes dry tracks (any source; ``mixrep console make-case`` and the convergence
benchmark use the synthetic corpus's stems) and renders them with a full console whose parameters
come from :class:`~mixrep.console.prior.MusicalPrior`; :func:`write_case` stores the tracks, the
mix, the groups and the true parameters (graph JSON in physical units) in the layout
``mixrep console fit`` reads.

Shape:
    Stems ``(tracks, 2, samples)``; mix ``(2, samples)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mixrep.audio.io import write_audio
from mixrep.constants import AUDIO_EXTENSIONS, STEMS
from mixrep.corpora.synthetic import SynthConfig, synthesize_song
from mixrep.errors import DatasetError
from mixrep.graphs.audibility import audible_console_mask
from mixrep.console.console import MixingConsole
from mixrep.console.graph import DEFAULT_CHAIN, MixingGraph
from mixrep.console.functional import LOG10_OVER_20
from mixrep.console.prior import MusicalPrior, after_mix, sample_mask, sample_parameters
from mixrep.console.processors import Processor
from mixrep.files import atomic_write_text

CASE_STEMS, CASE_MIX, CASE_GROUPS, CASE_TRUTH = "stems", "mix.wav", "groups.json", "true_parameters.json"
CASE_BUSES = "buses"
"""Every subgroup's output, ``buses/<group>.wav`` (the reference's stems: graph prediction's input)."""
TRACK_FOLDERS: tuple[str, ...] = ("stems", "tracks")
"""Where a case folder's tracks may be (else beside its mix)."""
AUDIBLE_WINDOW_SECONDS = 20.0
"""The audibility of the drawn processors is judged on at most this much of the song (its middle)."""


@dataclass
class Case:
    """Tracks, their groups, the console that mixed them, its mix and its subgroups' outputs
    (``buses``, ``(groups, 2, samples)`` in ``groups`` order; they sum to the mix up to rounding)."""

    names: list[str]
    groups: dict[str, list[str]]
    stems: Tensor
    console: MixingConsole
    mix: Tensor
    buses: Tensor


def draw_console(graph: MixingGraph, processors: dict[str, Processor], prior: MusicalPrior,
                 generator: torch.Generator, stems: Tensor | None = None, audible_db: float = 0.0) -> MixingConsole:
    """A console of ``graph`` with parameters and a sparse mask drawn from ``prior``.

    With ``audible_db`` > 0, the drawn optional processors (types whose ``prior.active_probability``
    is below 1) that change their own input by less than that many dB while playing ``stems``
    ``(tracks, 2, samples)`` are bypassed (:func:`~mixrep.graphs.audibility.audible_console_mask`):
    the graph then holds what one can hear, the ground truth of graph prediction.
    """
    params = sample_parameters(graph, processors, prior, generator)
    console = MixingConsole(graph.with_mask(sample_mask(graph, prior, generator)), processors, params)
    if audible_db > 0 and prior.optional_types:
        if stems is None:
            raise ValueError("audible_db > 0 needs the stems the console plays")
        console.set_mask(audible_console_mask(console, stems, audible_db, prior.optional_types))
    return console


def make_case(stems: Tensor, names: list[str], groups: dict[str, list[str]], sample_rate: int,
              seed: int = 0, prior: MusicalPrior | None = None, chain: str = DEFAULT_CHAIN,
              group_chain: str | None = None, processor_options: dict | None = None,
              audible_db: float = 0.0) -> Case:
    """Mix ``stems`` with a console of ``chain`` whose parameters are drawn from ``prior``.

    With ``audible_db`` > 0, a drawn optional processor (a type whose ``prior.active_probability``
    is below 1) stays in the true graph only when it changes its own input by at least that many
    dB (:func:`~mixrep.graphs.audibility.audible_mask`, judged on the middle
    ``AUDIBLE_WINDOW_SECONDS`` of the song); the others are bypassed before the mix is rendered, so
    the true graph holds what one can hear (the ground truth of graph prediction, see
    :class:`~mixrep.training.head_data.TransferDataset`). 0 keeps every drawn processor.

    The drawn console is then made as loud as the plain sum of the tracks (the same gain added to
    every subgroup fader, which only scales the output): the fit starts at the right overall level
    and its loss measures the mix, not a master gain (the prior's compressors have no make-up gain).
    """
    if audible_db < 0:
        raise ValueError(f"audible_db must be >= 0 (0 keeps every drawn processor), got {audible_db}")
    prior = prior or MusicalPrior()
    console = MixingConsole.from_tracks(names, groups, chain, group_chain, sample_rate,
                                        processor_options)
    window = min(stems.shape[-1], int(AUDIBLE_WINDOW_SECONDS * sample_rate))
    start = (stems.shape[-1] - window) // 2
    console = draw_console(console.graph, dict(console.processors), prior, torch.Generator().manual_seed(seed),
                           stems[..., start : start + window], audible_db)
    mix = console.render_long(stems)
    offset_db = 10.0 * torch.log10((stems.sum(0) ** 2).mean() / (mix**2).mean().clamp(min=1e-20))
    faders = [v for v in console.graph.nodes_of_type("gain_pan") if after_mix(console.graph)[v]]
    if faders:
        with torch.no_grad():
            ranks = console.graph.type_rank()
            rows = torch.tensor([ranks[v] for v in faders])
            log_gain = console.params["gain_pan"]["log_gain"]
            log_gain[rows] += float(offset_db) * LOG10_OVER_20
            console.project_()
        mix = console.render_long(stems)
    return Case(list(names), groups, stems, console, mix, console.render_buses_long(stems))


def write_case(case: Case, out: str | os.PathLike) -> Path:
    """Write ``stems/<name>.wav``, ``mix.wav``, ``buses/<group>.wav``, ``groups.json`` and
    ``true_parameters.json``."""
    out = Path(out)
    sample_rate = case.console.sample_rate
    for name, stem in zip(case.names, case.stems):
        write_audio(out / CASE_STEMS / f"{name}.wav", stem.cpu().numpy(), sample_rate)
    for name, bus in zip(case.groups, case.buses):
        write_audio(out / CASE_BUSES / f"{name}.wav", bus.cpu().numpy(), sample_rate)
    write_audio(out / CASE_MIX, case.mix.cpu().numpy(), sample_rate)
    atomic_write_text(out / CASE_GROUPS, json.dumps(case.groups, indent=1))
    case.console.save_json(out / CASE_TRUTH)
    return out


def synthetic_tracks(count: int, seconds: float, sample_rate: int, seed: int
                     ) -> tuple[list[str], dict[str, list[str]], torch.Tensor]:
    """``count`` tracks from the synthetic corpus (four stems per song, songs picked by ``seed``):
    names, groups (``rhythm``: drums and bass, ``music``: other and vocals) and
    ``(tracks, 2, samples)`` audio."""
    if count < 1:
        raise DatasetError(f"--tracks must be at least 1, got {count}")
    songs = -(-count // len(STEMS))
    config = SynthConfig(num_songs=10_000, song_seconds=seconds, sample_rate=sample_rate)
    names, audio = [], []
    for s in range(songs):
        song = synthesize_song((seed * 97 + s) % config.num_songs, config)
        for stem, track in zip(STEMS, song.stems):
            names.append(stem if songs == 1 else f"{stem}_{s + 1}")
            audio.append(torch.from_numpy(track))
    names, audio = names[:count], audio[:count]
    roles = {"rhythm": ("drums", "bass"), "music": ("other", "vocals")}
    groups = {g: [n for n in names if n.split("_")[0] in kinds] for g, kinds in roles.items()}
    return names, {g: m for g, m in groups.items() if m}, torch.stack(audio)


@dataclass(frozen=True)
class CaseFolder:
    """Where one case folder's files are (``mixrep console make-case`` writes the layout)."""

    name: str
    tracks: Path
    mix: Path
    groups: Path | None = None
    truth: Path | None = None
    buses: Path | None = None


def find_case_folders(root: Path) -> tuple[list[CaseFolder], list[str]]:
    """Case folders under ``root`` (sorted by name) and the subfolders skipped, with why.

    A case folder holds a mix file ``mix.<ext>`` and its dry tracks, either in a ``stems/`` or
    ``tracks/`` subfolder (the layout :func:`write_case` writes) or next to the mix, with an optional
    ``groups.json``, ``true_parameters.json`` (the graph that made the mix) and ``buses/``.

    Raises:
        DatasetError: ``root`` is not a folder.
    """
    if not root.is_dir():
        raise DatasetError(f"songs folder {root} does not exist or is not a folder")
    songs, skipped = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        mixes = sorted(f for f in folder.iterdir()
                       if f.is_file() and f.stem.lower() == "mix" and f.suffix.lower() in AUDIO_EXTENSIONS)
        if not mixes:
            skipped.append(f"{folder.name}: no mix.<ext> file")
            continue
        tracks = next((folder / n for n in TRACK_FOLDERS if (folder / n).is_dir()), folder)
        groups, truth, buses = folder / CASE_GROUPS, folder / CASE_TRUTH, folder / CASE_BUSES
        songs.append(CaseFolder(folder.name, tracks, mixes[0], groups if groups.is_file() else None,
                                truth if truth.is_file() else None, buses if buses.is_dir() else None))
    return songs, skipped

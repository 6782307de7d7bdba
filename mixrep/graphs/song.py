"""One song through the console: its tracks, mix and full console, checked before any fitting
(:func:`song_console`), and the graph a predictor reads from the song's buses (:func:`predict_song_graph`).

The song is a song folder (:mod:`mixrep.datasets.song_folder`): its groups are the console's buses.

Shape:
    tracks ``(tracks, 2, samples)``, mix ``(2, samples)``, buses ``(groups, 2, samples)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from mixrep.console.console import MixingConsole
from mixrep.console.fit import evaluate
from mixrep.audio.multitrack_files import LENGTH_TOLERANCE_SECONDS
from mixrep.datasets.song_folder import read_song, read_song_and_mix
from mixrep.errors import DatasetError
from mixrep.graphs.evidence import explained_share
from mixrep.graphs.predictor import GraphPrediction, GraphPredictor, predict_console_graph
from mixrep.graphs.recovery import graph_recovery


def require_crop(mix_path: Path, samples: int, sample_rate: int, crop_seconds: float) -> None:
    """Raise ``DatasetError`` unless the song holds one ``crop_seconds`` training crop."""
    if samples < crop_seconds * sample_rate:
        raise DatasetError(f"{mix_path} lasts {samples / sample_rate:.2f} s, shorter than one {crop_seconds} s "
                           "training crop: lower --crop-seconds (and --warmup-seconds) or use longer audio")


MIN_EXPLAINED_SHARE = 0.4
"""Below this share of the mix explained by a linear transfer of the tracks, they are taken for
another song's (:func:`~mixrep.graphs.evidence.explained_share`)."""
MATCH_WINDOW_SECONDS = 20.0
"""The match is judged on the middle of the song, at most this long (memory grows with tracks x length)."""


def require_match(console: MixingConsole, stems: torch.Tensor, mix: torch.Tensor, tracks: Path, mix_path: Path
                  ) -> None:
    """Raise ``DatasetError`` when no linear mix of the tracks comes near the mix (a wrong song), with
    the explained share and the unfitted console's audio loss."""
    window = min(mix.shape[-1], int(MATCH_WINDOW_SECONDS * console.sample_rate))
    start = (mix.shape[-1] - window) // 2
    share = explained_share(stems[..., start:start + window], mix[..., start:start + window], console.sample_rate)
    if share < MIN_EXPLAINED_SHARE:
        loss = evaluate(console, stems, mix)
        raise DatasetError(
            f"the tracks in {tracks} do not sum to anything near the mix {mix_path}: a linear mix of them (any EQ, "
            f"gain and pan per track) explains {share:.0%} of its energy, where a song's own tracks explain over "
            f"{MIN_EXPLAINED_SHARE:.0%}, and the unfitted console's audio loss is {loss:.2f}. Are they from the same "
            "song and edit? Pass --no-match-check to fit anyway")


def full_console(names: list[str], groups: dict[str, list[str]] | None, chain: str, group_chain: str | None,
                 sample_rate: int, tracks: Path) -> MixingConsole:
    """The full console of a song's tracks (one bus per group; one bus without groups).

    Raises:
        DatasetError: the console cannot be built (e.g. a track in no group), naming ``tracks``.
    """
    try:
        return MixingConsole.from_tracks(names, groups, chain, group_chain, sample_rate)
    except ValueError as e:
        raise DatasetError(f"cannot build the console for {tracks}: {e}") from e


class SongConsole(NamedTuple):
    """A song and the full console for it (:func:`song_console`).

    Attributes:
        names: track names; stems: each track's stem class (the song reader's).
        console: the full console; tracks: ``(tracks, 2, samples)``; mix: ``(2, samples)``.
    """

    names: list[str]
    console: MixingConsole
    tracks: torch.Tensor
    mix: torch.Tensor
    stems: list[str]


def song_console(tracks: Path, mix_path: Path, groups: Path | None, chain: str, group_chain: str | None,
                 sample_rate: int, crop_seconds: float, match_check: bool = True, device: str = "cpu"
                 ) -> SongConsole:
    """A song's tracks and mix (:func:`~mixrep.datasets.song_folder.read_song_and_mix`) and the full
    console for them, all on ``device``.

    Args:
        tracks, mix_path, groups: the song folder, its mix and its groups file (``None``: the
            folder's own ``groups.json``, else one bus).
        chain, group_chain: chain letters of every track strip and of every bus (``None``: ``chain``).
        sample_rate: Hz, the console's (files are resampled to it).
        crop_seconds: the fit's training crop: the song must hold one.
        match_check: refuse tracks that do not sum to anything near the mix (:func:`require_match`).

    Raises:
        DatasetError: bad audio or groups, a song shorter than one crop, or tracks of another song.
    """
    song, mix_np = read_song_and_mix(tracks, mix_path, sample_rate, groups)
    stems, mix = torch.from_numpy(song.tracks), torch.from_numpy(mix_np)
    console = full_console(song.names, song.groups, chain, group_chain, sample_rate, tracks)
    require_crop(mix_path, mix.shape[-1], sample_rate, crop_seconds)
    if match_check:
        require_match(console, stems, mix, tracks, mix_path)
    return SongConsole(song.names, console.to(torch.device(device)), stems.to(device), mix.to(device), song.stems)


def read_buses(folder: Path, groups: list[str], sample_rate: int, samples: int) -> torch.Tensor:
    """``(groups, 2, samples)``: ``folder/<group>.<ext>`` for every group, in ``groups`` order.

    Raises:
        DatasetError: a group without a file, a file of no group, or buses of another length.
    """
    buses = read_song(folder, sample_rate=sample_rate)
    names, audio = buses.names, buses.tracks
    missing, extra = sorted(set(groups) - set(names)), sorted(set(names) - set(groups))
    if missing or extra:
        wrong = ([f"missing {missing}"] if missing else []) + ([f"no group {extra}"] if extra else [])
        raise DatasetError(f"the buses in {folder} must be one file per group, named as the groups {groups}: "
                           + "; ".join(wrong))
    if abs(audio.shape[-1] - samples) / sample_rate > LENGTH_TOLERANCE_SECONDS:
        raise DatasetError(f"the buses in {folder} last {audio.shape[-1] / sample_rate:.2f} s but the tracks "
                           f"{samples / sample_rate:.2f} s: they must come from the same edit")
    audio = np.pad(audio, ((0, 0), (0, 0), (0, max(0, samples - audio.shape[-1]))))[..., :samples]
    return torch.from_numpy(audio[[names.index(g) for g in groups]])


def prediction_report(console: MixingConsole, prediction: GraphPrediction, truth_path: Path | None) -> dict:
    """Per node: probability and kept; counts and pruning ratio; precision and recall against a truth."""
    graph = console.graph
    processors = [v for v, t in enumerate(graph.node_types) if t in console.processors]
    kept = [v for v in processors if prediction.keep[v]]
    report = {"seconds": prediction.seconds, "processors": len(processors), "kept": len(kept),
              "pruning_ratio": 1.0 - len(kept) / len(processors) if processors else 0.0,
              "nodes": [{"name": graph.node_names[v], "type": graph.node_types[v],
                         "probability": float(prediction.probability[v]), "kept": bool(prediction.keep[v])}
                        for v in processors]}
    if truth_path is not None:
        try:
            truth = MixingConsole.from_json(truth_path).graph
            recovery = graph_recovery(console.pruned(prediction.removed()).graph, truth)
        except (ValueError, KeyError) as e:
            raise DatasetError(f"cannot compare with the true graph {truth_path}: {e}") from e
        report["recovery"] = {t: {"true": r.true, "kept": r.kept, "hits": r.hits, "precision": r.precision,
                                  "recall": r.recall} for t, r in recovery.items()}
    return report


def predict_song_graph(console: MixingConsole, tracks: torch.Tensor, buses_folder: Path, predictor_path: Path
                       ) -> GraphPrediction:
    """The predicted graph of ``console`` playing ``tracks`` ``(K, 2, samples)`` into the buses of
    ``buses_folder`` (one file per group).

    Raises:
        DatasetError: bad buses, a predictor file that cannot be used, or clips too short for the evidence.
    """
    graph = console.graph
    groups = [graph.node_names[v] for v in graph.nodes_of_type("mix")]
    buses = read_buses(buses_folder, groups, console.sample_rate, tracks.shape[-1])
    predictor = GraphPredictor.load(predictor_path)
    try:
        return predict_console_graph(predictor, console, tracks.cpu(), buses)
    except ValueError as e:
        raise DatasetError(f"cannot predict the graph of the tracks mixed into {buses_folder}: {e}") from e



"""``mixrep console train-graph`` (train a graph predictor on songs mixed by known sparse graphs) and
``mixrep console predict-graph`` (predict which processors mixed a song's tracks into its buses)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mixrep.audio.io import write_audio
from mixrep.console.cli import (
    LENGTH_TOLERANCE_SECONDS,
    add_fit_arguments,
    fit_config_from_args,
    load_song,
    parse_active_probability,
    read_groups,
    read_stems_folder,
    require_crop,
    require_match,
)
from mixrep.console.console import MixingConsole
from mixrep.console.fit import check_finite_output, evaluate, fit
from mixrep.console.graph_predictor import GraphPrediction, GraphPredictor, predict_console_graph
from mixrep.console.prune import graph_recovery
from mixrep.errors import DatasetError
from mixrep.files import atomic_write_text

SOURCES_HELP = "synth (the numpy synth, no files) or soundfont:NAME (an installed GM soundfont, e.g. FluidR3_GM)"


def register_graph(commands: argparse._SubParsersAction) -> None:
    t = commands.add_parser("train-graph", help="train a graph predictor on songs mixed by known sparse graphs")
    t.add_argument("--out", type=Path, required=True, help="predictor JSON to write")
    t.add_argument("--source", default="synth", help=SOURCES_HELP)
    t.add_argument("--songs", type=int, default=96, help="songs of the source (80/10/10 train/val/test split)")
    t.add_argument("--cases", type=int, default=800, help="training cases (train songs)")
    t.add_argument("--val-cases", type=int, default=200, help="validation cases (val songs): the thresholds")
    t.add_argument("--sample-rate", type=int, default=22050)
    t.add_argument("--clip-seconds", type=float, default=3.0)
    t.add_argument("--audible-db", type=float, default=1.0,
                   help="drawn processors changing their input by less are not in the graph (0: all are)")
    t.add_argument("--active-probability", action="append", default=[], metavar="TYPE=P",
                   help="keep each processor of TYPE with probability P (default: eq 0.6, compressor 0.4, "
                        "noisegate 0.3, imager 0.4, delay 0.3, reverb 0.4)")
    t.add_argument("--iterations", type=int, default=300, help="boosting iterations per processor type")
    t.add_argument("--seed", type=int, default=0, help="which cases are drawn")
    t.add_argument("--workers", type=int, default=2, help="processes computing the evidence")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    t.set_defaults(func=run_train_graph)

    p = commands.add_parser("predict-graph", help="predict which processors mixed a song's tracks into its "
                                                  "buses (under a second; the pruning search takes minutes)")
    p.add_argument("--tracks", type=Path, required=True, help="folder of dry track audio files")
    p.add_argument("--buses", type=Path, required=True,
                   help="folder with one audio file per group, named as the group (the reference's stems)")
    p.add_argument("--groups", type=Path, help="JSON {group name: [track file stem, ...]}; default one group "
                                                "named mix")
    p.add_argument("--predictor", type=Path, required=True, help="predictor JSON (mixrep console train-graph)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--mix", type=Path, default=None,
                   help="the song's mix: fit the predicted graph's parameters to it (--steps) and write its render")
    p.add_argument("--true-parameters", type=Path, default=None,
                   help="graph JSON that made the mix (make-case): per-type precision and recall")
    add_fit_arguments(p, steps=400, steps_help="fit steps of the predicted graph (with --mix)")
    p.set_defaults(func=run_predict_graph)


# ----------------------------------------------------------------------------- train-graph

def open_case_source(name: str, songs: int, sample_rate: int):
    """The multitrack source ``name`` (:data:`SOURCES_HELP`) at ``sample_rate``."""
    from mixrep.data.corpora import render_soundfont_corpus
    from mixrep.data.synthetic import SynthConfig, SyntheticSource

    if name == "synth":
        return SyntheticSource(SynthConfig(num_songs=songs, sample_rate=sample_rate), cache_songs=songs)
    kind, _, soundfont = name.partition(":")
    if kind != "soundfont" or not soundfont:
        raise DatasetError(f"--source {name!r}: use {SOURCES_HELP}")
    source = render_soundfont_corpus(soundfont, corpus_dir="outputs/corpora", seed=0, songs=songs,
                                     song_seconds=12.0, sample_rate=sample_rate, progress=True)
    if source is None:
        raise DatasetError(f"--source {name!r}: soundfont {soundfont!r} or FluidSynth is not installed here "
                           "(as root: bash scripts/install_system_deps.sh)")
    return source


def run_train_graph(args: argparse.Namespace) -> int:
    from mixrep.data.graph_cases import GRAPH_PRIOR, GraphCaseSet, evidence_table

    for name in ("cases", "val_cases", "iterations"):
        if getattr(args, name) < 1:
            raise DatasetError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    source = open_case_source(args.source, args.songs, args.sample_rate)
    prior = {"active_probability": {**GRAPH_PRIOR, **parse_active_probability(args.active_probability)}}
    try:
        sets = {split: GraphCaseSet(source, split, clip_seconds=args.clip_seconds, prior=prior,
                                    audible_db=args.audible_db, seed=args.seed) for split in ("train", "val")}
    except ValueError as e:
        raise DatasetError(f"cannot draw graph cases from {args.source}: {e}") from e
    train = evidence_table(sets["train"], args.cases, args.workers, progress=not args.no_progress)
    val = evidence_table(sets["val"], args.val_cases, args.workers, progress=not args.no_progress)
    training = {"source": args.source, "songs": args.songs, "cases": args.cases, "val_cases": args.val_cases,
                "clip_seconds": args.clip_seconds, "audible_db": args.audible_db, "prior": prior, "seed": args.seed}
    predictor = GraphPredictor.fit(*train, sets["train"].types, args.sample_rate, *val,
                                   iterations=args.iterations, training=training, clip_seconds=args.clip_seconds)
    table = {t: row for t, row in predictor.scores(*val).items() if row["learnt"]}
    predictor.training["validation"] = table
    predictor.save(args.out)
    print("type        strips  present  F1     keep-all F1  AUROC  (validation songs, which chose the thresholds)")
    for t, row in table.items():
        print(f"{t:<11} {row['n']:>6} {row['present']:>8.2f} {row['f1']:>6.3f} {row['keep_all_f1']:>12.3f} "
              f"{row['auroc']:>6.3f}")
    print(f"wrote {args.out} ({len(train[0])} training strips of {args.cases} cases)")
    return 0


# ----------------------------------------------------------------------------- predict-graph

def read_buses(folder: Path, groups: list[str], sample_rate: int, samples: int) -> torch.Tensor:
    """``(groups, 2, samples)``: ``folder/<group>.<ext>`` for every group, in ``groups`` order.

    Raises:
        DatasetError: a group without a file, a file of no group, or buses of another length.
    """
    names, audio = read_stems_folder(folder, sample_rate)
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


def run_predict_graph(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.true_parameters is not None and not args.true_parameters.is_file():
        raise DatasetError(f"--true-parameters {args.true_parameters} does not exist")
    config = fit_config_from_args(args) if args.mix is not None else None
    if args.mix is not None:  # the tracks are read once, with the mix
        names, stems, mix = load_song(args.tracks, args.mix, args.sample_rate)
    else:
        names, audio = read_stems_folder(args.tracks, args.sample_rate)
        stems = torch.from_numpy(audio)
    try:
        full = MixingConsole.from_tracks(names, read_groups(args.groups), args.chain, args.group_chain,
                                         args.sample_rate)
    except ValueError as e:
        raise DatasetError(f"cannot build the console for {args.tracks}: {e}") from e
    if args.mix is not None:
        require_crop(args.mix, mix.shape[-1], args.sample_rate, args.crop_seconds)
        if not args.no_match_check:
            require_match(full, stems, mix, args.tracks, args.mix)
    prediction = predict_song_graph(full, stems, args.buses, args.predictor)
    report = prediction_report(full, prediction, args.true_parameters)
    console = full.pruned(prediction.removed())
    if args.mix is not None:
        device = torch.device(args.device)
        console, stems, mix = console.to(device), stems.to(device), mix.to(device)
        report["loss_initial"] = evaluate(console, stems, mix)
        result = fit(console, stems, mix, config)
        report["loss"] = evaluate(console, stems, mix)
        report["fit_seconds"] = result.seconds_per_step * len(result.losses)
        rendered = console.render_long(stems)
        check_finite_output(rendered, "the predicted graph's mix")
        write_audio(args.out / "mix.wav", rendered.cpu().numpy(), args.sample_rate)
    console.save_json(args.out / "graph.json")
    console.draw(args.out / "graph.png", title=f"predicted graph: {report['kept']}/{report['processors']} processors "
                                                f"(pruning ratio {report['pruning_ratio']:.2f})")
    atomic_write_text(args.out / "prediction.json", json.dumps(report, indent=1, allow_nan=True))
    print(f"kept {report['kept']} of {report['processors']} processors (pruning ratio {report['pruning_ratio']:.2f}) "
          f"in {prediction.seconds:.2f} s" + (f"; audio loss after {config.steps} fit steps {report['loss']:.4f}"
                                              if args.mix is not None else ""))
    for t, r in report.get("recovery", {}).items():
        print(f"  {t:<11} true {r['true']:>2}  kept {r['kept']:>2}  precision {r['precision']:.2f}  "
              f"recall {r['recall']:.2f}")
    print(f"wrote {args.out}/graph.json, graph.png, prediction.json" + (", mix.wav" if args.mix is not None else ""))
    return 0

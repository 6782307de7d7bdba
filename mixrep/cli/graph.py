"""``mixrep console train-graph`` (train a graph predictor on songs mixed by known sparse graphs) and
``mixrep console predict-graph`` (predict which processors mixed a song's tracks into its buses)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mixrep.audio.io import write_audio
from mixrep.cli.console_options import add_fit_arguments, fit_config_from_args, parse_active_probability
from mixrep.console.fit import check_finite_output, evaluate, fit
from mixrep.console.style_convert import style_json_path, write_console_style
from mixrep.datasets.song_folder import read_song, read_song_and_mix
from mixrep.errors import DatasetError
from mixrep.files import atomic_write_text
from mixrep.graphs.case_set import CASE_SOURCES_HELP, open_case_source
from mixrep.graphs.predictor import GraphPredictor
from mixrep.graphs.song import full_console, predict_song_graph, prediction_report, require_crop, require_match
from mixrep.plots.console import draw_graph

DEFAULT_CORPUS_DIR = Path("outputs/corpora")
"""Where ``--source soundfont:NAME`` renders its corpus unless ``--corpus-dir`` says otherwise."""


def register_graph(commands: argparse._SubParsersAction) -> None:
    t = commands.add_parser("train-graph", help="train a graph predictor on songs mixed by known sparse graphs")
    t.add_argument("--out", type=Path, required=True, help="predictor JSON to write")
    t.add_argument("--source", default="synth", help=CASE_SOURCES_HELP)
    t.add_argument("--corpus-dir", type=Path, default=DEFAULT_CORPUS_DIR,
                   help="where a soundfont corpus is rendered (or found, rendered before)")
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
    p.add_argument("--groups", type=Path, help="JSON {group: [track, ...]} (default: the folder's "
                                                "groups.json, else one group)")
    p.add_argument("--predictor", type=Path, required=True, help="predictor JSON (mixrep console train-graph)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--mix", type=Path, default=None,
                   help="the song's mix: fit the predicted graph's parameters to it (--steps) and write its render")
    p.add_argument("--true-parameters", type=Path, default=None,
                   help="graph JSON that made the mix (make-case): per-type precision and recall")
    add_fit_arguments(p, steps=400, steps_help="fit steps of the predicted graph (with --mix)")
    p.set_defaults(func=run_predict_graph)


# ----------------------------------------------------------------------------- train-graph

def run_train_graph(args: argparse.Namespace) -> int:
    from mixrep.graphs.case_set import GRAPH_PRIOR, GraphCaseSet, evidence_table

    for name in ("cases", "val_cases", "iterations"):
        if getattr(args, name) < 1:
            raise DatasetError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    source = open_case_source(args.source, args.songs, args.sample_rate, args.corpus_dir)
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

def run_predict_graph(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.true_parameters is not None and not args.true_parameters.is_file():
        raise DatasetError(f"--true-parameters {args.true_parameters} does not exist")
    config = fit_config_from_args(args) if args.mix is not None else None
    if args.mix is not None:  # the tracks are read once, with the mix
        song, mix_np = read_song_and_mix(args.tracks, args.mix, args.sample_rate, args.groups)
        mix = torch.from_numpy(mix_np)
    else:
        song = read_song(args.tracks, args.groups, args.sample_rate)
    stems = torch.from_numpy(song.tracks)
    full = full_console(song.names, song.groups, args.chain, args.group_chain, args.sample_rate, args.tracks)
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
    write_console_style(style_json_path(args.out / "graph.json"), console, song.stems, stems,
                        source="mixrep console predict-graph")
    draw_graph(console.graph, args.out / "graph.png",
               title=f"predicted graph: {report['kept']}/{report['processors']} processors "
                     f"(pruning ratio {report['pruning_ratio']:.2f})")
    atomic_write_text(args.out / "prediction.json", json.dumps(report, indent=1, allow_nan=True))
    print(f"kept {report['kept']} of {report['processors']} processors (pruning ratio {report['pruning_ratio']:.2f}) "
          f"in {prediction.seconds:.2f} s" + (f"; audio loss after {config.steps} fit steps {report['loss']:.4f}"
                                              if args.mix is not None else ""))
    for t, r in report.get("recovery", {}).items():
        print(f"  {t:<11} true {r['true']:>2}  kept {r['kept']:>2}  precision {r['precision']:.2f}  "
              f"recall {r['recall']:.2f}")
    print(f"wrote {args.out}/graph.json, graph.style.json, graph.png, prediction.json" + (", mix.wav" if args.mix is not None else ""))
    return 0

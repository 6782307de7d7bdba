"""``mixrep console prune`` (search a sparse mixing graph for one song) and ``mixrep console
prune-dataset`` (the same over a folder of songs, resumable, with a summary table).

A song folder of ``prune-dataset`` is a case folder (:func:`~mixrep.graphs.cases.find_case_folders`):
a mix file ``mix.<ext>`` and its dry tracks, either in a ``stems/`` or ``tracks/`` subfolder (the
layout ``mixrep console make-case`` writes) or next to the mix; an optional ``groups.json``
(``{group: [track, ...]}``), and an optional ``true_parameters.json`` (the graph that made the mix)
adds per-type precision and recall of the recovered graph.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import torch

from mixrep.audio.io import write_audio
from mixrep.cli.console_options import add_fit_arguments, fit_config_from_args
from mixrep.console.console import MixingConsole
from mixrep.console.fit import check_finite_output
from mixrep.console.style_convert import style_json_path, write_console_style
from mixrep.errors import DatasetError, MixrepError
from mixrep.files import atomic_write_text
from mixrep.graphs.cases import CaseFolder, find_case_folders
from mixrep.graphs.prune import METHODS, PruneConfig, PruneResult, prune_console
from mixrep.graphs.recovery import graph_recovery
from mixrep.graphs.song import predict_song_graph, song_console
from mixrep.plots.console import draw_graph, plot_pruning

log = logging.getLogger(__name__)

TABLE_TYPES: tuple[str, ...] = ("gain_pan", "imager", "eq", "reverb", "compressor", "noisegate", "delay")
"""Column order of tables 2 and 3 of Lee et al. (DAFx 2024) (g s e r c n d)."""
STATE_FILE, RESULT_FILE = "state.pt", "pruning.json"


def register_prune(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("prune", help="fit the full console to a mix, then prune it to a sparse "
                                          "graph (Lee et al. 2024, section 3)")
    p.add_argument("--tracks", type=Path, required=True, help="folder of dry track audio files")
    p.add_argument("--mix", type=Path, required=True, help="target mix audio file")
    p.add_argument("--groups", type=Path, help="JSON {group: [track, ...]} (default: the folder's "
                                                "groups.json, else one group)")
    p.add_argument("--true-parameters", type=Path, default=None,
                   help="graph JSON that made the mix (make-case): per-type precision and recall")
    p.add_argument("--out", type=Path, required=True, help="output folder (holds the resumable state)")
    p.add_argument("--buses", type=Path, default=None,
                   help="with --predictor: folder with one audio file per group, named as the group")
    _add_prune_arguments(p)
    p.set_defaults(func=run_prune)

    d = commands.add_parser("prune-dataset", help="prune every song of a folder, one at a time, "
                                                  "resumable, with a summary table")
    d.add_argument("--songs", type=Path, required=True,
                   help="folder of song folders (mix.<ext> + stems/ or tracks/ or the tracks beside "
                        "it; optional groups.json, true_parameters.json and buses/)")
    d.add_argument("--out", type=Path, required=True, help="one subfolder per song + summary.md/json")
    d.add_argument("--limit", type=int, default=None, help="prune at most this many songs")
    _add_prune_arguments(d)
    d.set_defaults(func=run_prune_dataset)


def _add_prune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=METHODS, default="hybrid", help="candidate sampling")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="tau: keep a removal while the loss stays at most best + tau")
    p.add_argument("--rounds", type=int, default=12, help="rounds of trials + fine-tuning")
    p.add_argument("--finetune-steps", type=int, default=500, help="fine-tuning steps per round")
    p.add_argument("--sparsity-weight", type=float, default=1e-2,
                   help="final dry/wet L1 weight alpha_p (ramped from 0 over 2/3 of the rounds)")
    p.add_argument("--predictor", type=Path, default=None,
                   help="graph predictor JSON (mixrep console train-graph): start the search from the graph it "
                        "predicts from the tracks and the buses (a song folder's buses/) instead of the full console")
    add_fit_arguments(p, steps=6000, steps_help="full-console fit steps (Lee et al. 2024: 6000)")


def prune_config_from_args(args: argparse.Namespace) -> PruneConfig:
    try:
        return PruneConfig(method=args.method, tolerance=args.tolerance, rounds=args.rounds,
                           fit=fit_config_from_args(args), finetune_steps=args.finetune_steps,
                           sparsity_weight=args.sparsity_weight, seed=args.seed,
                           progress=not args.no_progress)
    except ValueError as e:
        raise DatasetError(str(e)) from e


def prune_song(song: CaseFolder, args: argparse.Namespace, out: Path) -> dict:
    """Prune one song into ``out``; returns its summary row (also written as ``pruning.json``)."""
    config = prune_config_from_args(args)
    names, console, stems, mix, classes = song_console(
        song.tracks, song.mix, song.groups, args.chain, args.group_chain, args.sample_rate, args.crop_seconds,
        not args.no_match_check, args.device)
    truth = None
    if song.truth is not None:
        try:
            truth = MixingConsole.from_json(song.truth).graph
        except (ValueError, KeyError) as e:
            raise DatasetError(f"cannot load the true graph {song.truth}: {e}") from e
    start_removed, prediction = [], None
    if args.predictor is not None:
        if song.buses is None:
            raise DatasetError(f"--predictor needs the outputs of {song.name}'s groups: pass --buses DIR (prune) or "
                               "give the song folder a buses/ folder (prune-dataset), one file per group")
        prediction = predict_song_graph(console, stems, song.buses, args.predictor)
        start_removed = prediction.removed()
    result = prune_console(console, stems, mix, config, state_path=out / STATE_FILE, start_removed=start_removed)
    rendered = result.console.render_long(stems)
    check_finite_output(rendered, f"the pruned mix of {song.name}")
    write_audio(out / "mix.wav", rendered.cpu().numpy(), args.sample_rate)
    result.console.save_json(out / "graph.json")
    write_console_style(style_json_path(out / "graph.json"), result.console, classes, stems, source="mixrep console prune")
    draw_graph(result.console.graph, out / "graph.png", title=_title(song.name, result))
    plot_pruning(result, out / "pruning.png", title=_title(song.name, result))
    report = {"song": song.name, "tracks": len(names), "method": config.method,
              "tolerance": config.tolerance, **result.to_dict()}
    if prediction is not None:
        report["predicted"] = {"removed": len(start_removed), "seconds": prediction.seconds}
    if truth is not None:
        try:
            recovery = graph_recovery(result.console.graph, truth)
        except ValueError as e:
            raise DatasetError(f"{song.truth}: {e}") from e
        report["recovery"] = {t: {"true": r.true, "kept": r.kept, "hits": r.hits,
                                  "precision": r.precision, "recall": r.recall}
                              for t, r in recovery.items()}
    atomic_write_text(out / RESULT_FILE, json.dumps(report, indent=1, allow_nan=True))
    return report


def _title(name: str, result: PruneResult) -> str:
    return (f"{name}: {sum(result.counts.values())}/{sum(result.full_counts.values())} processors "
            f"(pruning ratio {result.pruning_ratio:.2f}), loss {result.loss_full:.3f} -> "
            f"{result.loss_final:.3f}")


def run_prune(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    truth = args.true_parameters
    if truth is not None and not truth.is_file():
        raise DatasetError(f"--true-parameters {truth} does not exist")
    report = prune_song(CaseFolder(args.out.name or "song", args.tracks, args.mix, args.groups, truth, args.buses),
                        args, args.out)
    print(_format_table([report]))
    print(f"wrote {args.out}/graph.json, graph.style.json, graph.png, mix.wav, pruning.png, {RESULT_FILE} "
          f"({report['accepted_trials']} of {report['trials']} trials accepted)")
    return 0


def run_prune_dataset(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    prune_config_from_args(args)  # bad settings fail before any song
    songs, skipped = find_case_folders(args.songs)
    for line in skipped:
        log.warning("skipping %s", line)
    if not songs:
        raise DatasetError(f"no song folders (with a mix.<ext> file) in {args.songs}")
    songs = songs[: args.limit] if args.limit is not None else songs
    reports, failed, already = [], [], []
    for k, song in enumerate(songs, 1):
        out = args.out / song.name
        done = out / RESULT_FILE
        if done.is_file():
            reports.append(json.loads(done.read_text()))
            already.append(song.name)
            log.info("[%d/%d] %s: already pruned", k, len(songs), song.name)
            continue
        log.info("[%d/%d] %s", k, len(songs), song.name)
        try:
            reports.append(prune_song(song, args, out))
        except (MixrepError, ValueError) as e:  # one bad song is skipped and logged, not fatal
            log.error("skipping song %s: %s", song.name, e)
            failed.append(f"{song.name}: {e}")
    table = _format_table(reports)
    summary = {"songs": len(reports), "already_pruned": already, "failed": failed, "skipped": skipped,
               "mean": _mean_row(reports), "per_song": [_row(r) for r in reports]}
    atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=1, allow_nan=True))
    atomic_write_text(args.out / "summary.md", table + "\n")
    print(table)
    print(f"{len(reports)} songs pruned into {args.out} ({len(reports) - len(already)} this run, {len(already)} "
          f"already pruned by an earlier run, {len(failed)} failed, {len(skipped)} skipped); "
          f"summary in {args.out}/summary.md and summary.json")
    return 0 if reports else 1


def _row(report: dict) -> dict:
    """One table row: losses, pruning ratios (overall and per type), trials, seconds, recall."""
    row = {"song": report["song"], "loss_full": report["loss_full"], "loss_pruned": report["loss_final"],
           "pruning_ratio": report["pruning_ratio"], "trials": report["trials"],
           "seconds": report["seconds"]}
    for t in TABLE_TYPES:
        row[f"ratio_{t}"] = report["type_pruning_ratios"].get(t, float("nan"))
    for t, r in report.get("recovery", {}).items():
        row[f"recall_{t}"] = r["recall"]
        row[f"precision_{t}"] = r["precision"]
    return row


def _mean_row(reports: list[dict]) -> dict:
    rows = [_row(r) for r in reports]
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "song"]
    mean = {"song": "mean"}
    for k in keys:
        values = [r[k] for r in rows if k in r and not math.isnan(r[k])]
        mean[k] = sum(values) / len(values) if values else float("nan")
    return mean


def _format_table(reports: list[dict]) -> str:
    """Markdown table in the layout of table 3 of Lee et al. (DAFx 2024) (plus recall where a truth is known)."""
    rows = [_row(r) for r in reports]
    if len(rows) > 1:
        rows.append(_mean_row(reports))
    recall = [t for t in TABLE_TYPES if any(f"recall_{t}" in r for r in rows)]
    head = (["song", "L_full", "L_pruned", "rho"] + [f"rho {t}" for t in TABLE_TYPES]
            + [f"recall {t}" for t in recall] + ["trials", "seconds"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = ([r["song"], f"{r['loss_full']:.3f}", f"{r['loss_pruned']:.3f}", f"{r['pruning_ratio']:.2f}"]
                 + [_cell(r.get(f"ratio_{t}")) for t in TABLE_TYPES]
                 + [_cell(r.get(f"recall_{t}")) for t in recall]
                 + [f"{r['trials']:.0f}", f"{r['seconds']:.0f}"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"

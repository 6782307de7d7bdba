"""``mixrep console fit`` (fit a differentiable mixing console to a mix from its stems) and
``mixrep console make-case`` (tracks mixed by a console with known parameters)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from mixrep.audio.io import write_audio
from mixrep.cli.console_options import add_fit_arguments, fit_config_from_args, parse_active_probability
from mixrep.console.fit import check_finite_output, evaluate, fit
from mixrep.console.graph import DEFAULT_CHAIN
from mixrep.console.loss import MixLoss
from mixrep.console.prior import MusicalPrior
from mixrep.console.style_convert import style_json_path, write_console_style
from mixrep.errors import DatasetError
from mixrep.files import atomic_write_text
from mixrep.graphs.cases import CASE_GROUPS, CASE_MIX, CASE_STEMS, make_case, synthetic_tracks, write_case
from mixrep.graphs.recovery import compare_with_truth
from mixrep.graphs.song import song_console
from mixrep.plots.console import draw_graph, plot_spectrogram_error

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    console = subparsers.add_parser("console", help="differentiable mixing console")
    commands = console.add_subparsers(dest="console_command", required=True, metavar="COMMAND")
    p = commands.add_parser("fit", help="fit console parameters so the stems' render matches a mix")
    p.add_argument("--stems", type=Path, required=True, help="folder of dry track audio files")
    p.add_argument("--mix", type=Path, required=True, help="target mix audio file")
    p.add_argument("--groups", type=Path, help="JSON {group: [track, ...]} (default: the folder's "
                                                "groups.json, else one group)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_fit_arguments(p, steps=1000)
    p.add_argument("--true-parameters", type=Path, default=None,
                   help="graph JSON of the console that made the mix (make-case's "
                        "true_parameters.json): report per-track gain and pan errors")
    p.set_defaults(func=run_fit)

    c = commands.add_parser("make-case", help="tracks mixed by a full console with known musical "
                                              "parameters (a fit case with an answer)")
    c.add_argument("--out", type=Path, required=True, help="folder for stems/, mix.wav, groups.json, "
                                                           "true_parameters.json")
    c.add_argument("--tracks", type=int, default=4, help="number of tracks (synthetic stems, four per song)")
    c.add_argument("--seconds", type=float, default=12.0)
    c.add_argument("--sample-rate", type=int, default=16_000)
    c.add_argument("--seed", type=int, default=0, help="picks the songs and the console parameters")
    c.add_argument("--chain", default=DEFAULT_CHAIN)
    c.add_argument("--active-probability", action="append", default=[], metavar="TYPE=P",
                   help="keep each processor of TYPE with probability P (repeatable; 'all=P' for "
                        "every type): a sparse graph, the ground truth of pruning")
    c.add_argument("--audible-db", type=float, default=0.0,
                   help="bypass drawn processors (of types with P < 1) that change their own input by "
                        "less than this many dB, so the true graph holds what one can hear (0: keep all)")
    c.set_defaults(func=run_make_case)

    from mixrep.cli.graph import register_graph  # they import the shared options, not this module
    from mixrep.cli.prune import register_prune

    register_prune(commands)
    register_graph(commands)


def run_fit(args: argparse.Namespace) -> int:
    config = fit_config_from_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    names, console, stems, mix, classes = song_console(
        args.stems, args.mix, args.groups, args.chain, args.group_chain, args.sample_rate, args.crop_seconds,
        not args.no_match_check, args.device)
    log.info("console: %d tracks, %d processors, %d nodes", len(names),
             console.graph.num_processors(), console.graph.num_nodes)
    initial = evaluate(console, stems, mix)
    result = fit(console, stems, mix, config)  # NonFiniteFitError: reported, nothing written
    rendered = console.render_long(stems)
    check_finite_output(rendered, "the fitted mix")
    args.out.mkdir(parents=True, exist_ok=True)
    write_audio(args.out / "mix.wav", rendered.cpu().numpy(), args.sample_rate)
    console.save_json(args.out / "parameters.json")
    write_console_style(style_json_path(args.out / "parameters.json"), console, classes, stems,
                        source="mixrep console fit")
    draw_graph(console.graph, args.out / "graph.png")
    with torch.no_grad():
        final = float(MixLoss(args.sample_rate).to(mix.device)(rendered, mix))
    plot_spectrogram_error(rendered, mix, args.out / "spectrogram_error.png", args.sample_rate,
                           title=f"audio loss {final:.3f}")
    report = {"train": result.losses, "initial": initial, "final": final,
              "seconds_per_step": result.seconds_per_step}
    if args.true_parameters is not None:
        report.update(compare_with_truth(console, args.true_parameters, names, stems))
    atomic_write_text(args.out / "losses.json", json.dumps(report))
    print(f"audio loss {initial:.4f} -> {final:.4f} ({final / initial:.3f} of the initial) in "
          f"{len(result.losses)} steps; wrote {args.out}/mix.wav, parameters.json, parameters.style.json, "
          "spectrogram_error.png, graph.png, losses.json")
    if args.true_parameters is not None:
        print("track      gain error dB   pan error")
        for name in names:
            print(f"{name:10s} {report['gain_error_db'][name]:13.2f} {report['pan_error'][name]:11.3f}")
    return 0


def run_make_case(args: argparse.Namespace) -> int:
    names, groups, stems = synthetic_tracks(args.tracks, args.seconds, args.sample_rate, args.seed)
    prior = MusicalPrior(active_probability=parse_active_probability(args.active_probability))
    if args.audible_db < 0:
        raise DatasetError(f"--audible-db {args.audible_db}: must be >= 0 (0 keeps every drawn processor)")
    case = make_case(stems, names, groups, args.sample_rate, seed=args.seed, prior=prior,
                     chain=args.chain, audible_db=args.audible_db)
    check_finite_output(case.mix, "the case's mix")
    write_case(case, args.out)
    print(f"wrote {len(names)} tracks in groups {groups}, the mix and the true parameters to "
          f"{args.out}; fit with: mixrep console fit --stems {args.out / CASE_STEMS} --mix "
          f"{args.out / CASE_MIX} --groups {args.out / CASE_GROUPS} --sample-rate "
          f"{args.sample_rate} --out FIT_DIR")
    return 0

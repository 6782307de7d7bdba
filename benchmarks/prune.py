"""Pruning on mixes made by known sparse graphs (docs/results.md "Pruning search").

Each case: synthetic-corpus stems (four per song, two subgroups) mixed by a full ``ecnsgdr``
console whose processors are each kept with a per-type probability (``ACTIVE``; gain/pan always)
and whose parameters come from the musical prior (``mixrep.graphs.cases.make_case``). The full
console is fitted once per case; every (method, tolerance) row then prunes a copy of that fitted
console (``mixrep.graphs.prune.prune`` with no further full fit) and is measured on the whole
song: audio loss of the full and the pruned console, pruning ratio overall and per type, and per
type the recall (true processors kept) and precision (kept processors that were true) against the
graph that made the mix. ``L_full+`` is the full console trained for as many more steps as the
pruning phase takes (its fine-tuning), without pruning: ``dL`` is the pruned loss minus that
(the cost of the removals, not of the shorter training). Rows aggregate over the cases: losses and
ratios are means, recall and precision pool the counts of all cases. ``--audible-db D`` bypasses the
drawn processors that change their own input by less than D dB before the mix is rendered
(``make_case(audible_db=D)``): the true graph then holds only what one can hear, as graph
prediction's ground truth does.

    nice -n 15 python benchmarks/prune.py --cases 3 --out runs/prune
    nice -n 15 python benchmarks/prune.py --cases 3 --audible-db 1 --out runs/prune_audible
    python benchmarks/prune.py --table-only --out runs/prune
    nice -n 15 python benchmarks/prune.py --scaling 4 8 16 --fit-steps 50 --rounds 2 \
        --finetune-steps 20 --brute-force-every 2

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time
from pathlib import Path

import torch

from mixrep.console.console import MixingConsole
from mixrep.console.fit import FitConfig, evaluate, fit
from mixrep.console.prior import MusicalPrior
from mixrep.graphs.cases import make_case, synthetic_tracks
from mixrep.graphs.predictor import GraphPredictor, predict_console_graph
from mixrep.graphs.prune import PruneConfig, prune_console
from mixrep.graphs.recovery import graph_recovery

TYPES = ("gain_pan", "imager", "eq", "reverb", "compressor", "noisegate", "delay")
LETTER = dict(zip(TYPES, "gsercnd"))
ACTIVE = {"eq": 0.6, "compressor": 0.4, "noisegate": 0.3, "imager": 0.4, "delay": 0.3, "reverb": 0.4}


def run_case(seed: int, args: argparse.Namespace, rows: list[tuple[str, float]]) -> list[dict]:
    names, groups, stems = synthetic_tracks(args.tracks, args.seconds, args.sample_rate, seed)
    prior = MusicalPrior(active_probability=ACTIVE)
    case = make_case(stems, names, groups, args.sample_rate, seed=seed, prior=prior, audible_db=args.audible_db)
    fit_config = FitConfig(steps=args.fit_steps, crop_seconds=args.crop_seconds,
                           warmup_seconds=args.warmup_seconds, seed=seed, progress=False)
    full = MixingConsole.from_tracks(names, groups, "ecnsgdr", sample_rate=args.sample_rate)
    started = time.perf_counter()
    loss_initial = evaluate(full, stems, case.mix)
    fit(full, stems, case.mix, fit_config)
    fit_seconds = time.perf_counter() - started
    # the pruning phase also trains (rounds x finetune_steps): the full console trained as long
    # is the baseline a pruned graph's loss increase is measured against
    longer = copy.deepcopy(full)
    fit(longer, stems, case.mix, dataclasses.replace(fit_config, steps=args.rounds * args.finetune_steps,
                                                     seed=seed + 1))
    loss_full_same_steps = evaluate(longer, stems, case.mix)
    out = []
    for method, tau in rows:
        config = PruneConfig(method=method, tolerance=tau, rounds=args.rounds,
                             fit=dataclasses.replace(fit_config, steps=0),
                             finetune_steps=args.finetune_steps, brute_force_every=args.brute_force_every,
                             seed=seed, progress=False)
        result = prune_console(copy.deepcopy(full), stems, case.mix, config)
        recovery = graph_recovery(result.console.graph, case.console.graph)
        row = {"case": seed, "method": method, "tolerance": tau, "loss_initial": loss_initial,
               "loss_full_same_steps": loss_full_same_steps,
               "fit_seconds": fit_seconds, **result.summary(),
               "recovery": {t: dataclasses.asdict(r) for t, r in recovery.items()}}
        out.append(row)
        print(f"case {seed} {method:11s} tau {tau:<6g} loss {result.loss_full:.4f} (same steps "
              f"{loss_full_same_steps:.4f}) -> {result.loss_final:.4f} "
              f"ratio {result.pruning_ratio:.2f} trials {len(result.trials)} {result.seconds:.0f} s", flush=True)
    if args.predictor is not None:
        out += predicted_rows(seed, args, case, fit_config, loss_initial, loss_full_same_steps)
    return out


def predicted_rows(seed: int, args: argparse.Namespace, case, fit_config: FitConfig, loss_initial: float,
                   loss_full_same_steps: float) -> list[dict]:
    """Rows that start from the graph ``--predictor`` predicts from the tracks and the case's buses:
    ``predicted`` fits that graph for as many steps as the full console gets in all (full fit +
    fine-tuning), no search; ``predicted+hybrid`` fits it for the full fit's steps, then runs the
    hybrid search (tau 0.01) from it. ``seconds`` count the prediction, the fit and the search."""
    predictor = GraphPredictor.load(args.predictor)
    full = MixingConsole.from_tracks(case.names, case.groups, "ecnsgdr", sample_rate=args.sample_rate)
    prediction = predict_console_graph(predictor, full, case.stems, case.buses)
    settings = {
        "predicted": PruneConfig(rounds=0, fit=dataclasses.replace(
            fit_config, steps=args.fit_steps + args.rounds * args.finetune_steps), seed=seed, progress=False),
        "predicted+hybrid": PruneConfig(tolerance=0.01, rounds=args.rounds, fit=fit_config,
                                        finetune_steps=args.finetune_steps, brute_force_every=args.brute_force_every,
                                        seed=seed, progress=False),
    }
    out = []
    for method, config in settings.items():
        console = MixingConsole.from_tracks(case.names, case.groups, "ecnsgdr", sample_rate=args.sample_rate)
        result = prune_console(console, case.stems, case.mix, config, start_removed=prediction.removed())
        recovery = graph_recovery(result.console.graph, case.console.graph)
        summary = {**result.summary(), "seconds": result.seconds + prediction.seconds}
        out.append({"case": seed, "method": method, "tolerance": config.tolerance if config.rounds else None,
                    "loss_initial": loss_initial, "loss_full_same_steps": loss_full_same_steps, "fit_seconds": 0.0,
                    "prediction_seconds": prediction.seconds, **summary,
                    "recovery": {t: dataclasses.asdict(r) for t, r in recovery.items()}})
        print(f"case {seed} {method:16s} loss {result.loss_full:.4f} -> {result.loss_final:.4f} (full console, "
              f"same steps {loss_full_same_steps:.4f}) ratio {result.pruning_ratio:.2f} trials {len(result.trials)} "
              f"{summary['seconds']:.0f} s", flush=True)
    return out


def audibility(seed: int, args: argparse.Namespace, tolerance: float = 0.01) -> dict[str, tuple[int, int]]:
    """Per type: (true processors, those whose removal from the true graph raises the audio loss
    of its own mix above ``tolerance``): the processors a pruning could be expected to keep."""
    names, groups, stems = synthetic_tracks(args.tracks, args.seconds, args.sample_rate, seed)
    case = make_case(stems, names, groups, args.sample_rate, seed=seed,
                     prior=MusicalPrior(active_probability=ACTIVE), audible_db=args.audible_db)
    graph, out = case.console.graph, {}
    for v, t in enumerate(graph.node_types):
        if t in TYPES and graph.mask[v] > 0:
            loss = evaluate(case.console.pruned([v]), stems, case.mix)
            true, audible = out.get(t, (0, 0))
            out[t] = (true + 1, audible + (loss > tolerance))
    return out


def scaling(tracks: int, args: argparse.Namespace) -> str:
    """Wall time of one pruning run (hybrid, tau 0.01) at ``tracks`` tracks: full fit per step,
    then the pruning phase split into trials (whole-song renders) and fine-tuning."""
    names, groups, stems = synthetic_tracks(tracks, args.seconds, args.sample_rate, 0)
    case = make_case(stems, names, groups, args.sample_rate, seed=0,
                     prior=MusicalPrior(active_probability=ACTIVE), audible_db=args.audible_db)
    fit_config = FitConfig(steps=args.fit_steps, crop_seconds=args.crop_seconds,
                           warmup_seconds=args.warmup_seconds, progress=False)
    full = MixingConsole.from_tracks(names, groups, "ecnsgdr", sample_rate=args.sample_rate)
    fitted = fit(full, stems, case.mix, fit_config)
    config = PruneConfig(tolerance=0.01, rounds=args.rounds, fit=dataclasses.replace(fit_config, steps=0),
                         finetune_steps=args.finetune_steps, brute_force_every=args.brute_force_every,
                         progress=False)
    result = prune_console(full, stems, case.mix, config)
    finetune = sum(r.finetune_seconds for r in result.rounds)
    trials = sum(r.seconds for r in result.rounds) - finetune
    return (f"| {tracks} | {sum(result.full_counts.values())} | {fitted.seconds_per_step:.2f} | "
            f"{len(result.trials)} | {trials / max(len(result.trials), 1):.2f} | {trials:.0f} | "
            f"{finetune:.0f} | {trials / (trials + finetune):.2f} | {result.pruning_ratio:.2f} |")


def table(results: list[dict]) -> str:
    keys = list(dict.fromkeys((r["method"], r["tolerance"]) for r in results))
    head = (["method", "tau", "L_full", "L_full+", "L_pruned", "dL", "rho", "rho_true"]
            + [f"rho_{LETTER[t]}" for t in TYPES] + [f"R_{LETTER[t]}" for t in TYPES]
            + ["P (all)", "trials", "seconds", "total s"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, tau in keys:
        rows = [r for r in results if (r["method"], r["tolerance"]) == (method, tau)]

        precision_hits = sum(sum(v["hits"] for v in r["recovery"].values()) for r in rows)
        precision_kept = sum(sum(v["kept"] for v in r["recovery"].values()) for r in rows)
        cells = [method, "-" if tau is None else f"{tau:g}", f"{_mean(rows, lambda r: r['loss_full']):.3f}",
                 f"{_mean(rows, lambda r: r['loss_full_same_steps']):.3f}",
                 f"{_mean(rows, lambda r: r['loss_final']):.3f}",
                 _mean_std(rows, lambda r: r["loss_final"] - r["loss_full_same_steps"], "+.3f"),
                 _mean_std(rows, lambda r: r["pruning_ratio"], ".2f"),
                 f"{_mean(rows, _true_ratio):.2f}"]
        cells += [_cell(_mean(rows, lambda r, t=t: r["type_pruning_ratios"].get(t))) for t in TYPES]
        cells += [_cell(_pooled(rows, t, "true")) for t in TYPES]
        cells += [_cell(precision_hits / precision_kept if precision_kept else float("nan")),
                  f"{_mean(rows, lambda r: r['trials']):.0f}", f"{_mean(rows, lambda r: r['seconds']):.0f}",
                  f"{_mean(rows, lambda r: r['seconds'] + r['fit_seconds']):.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean(rows: list[dict], value) -> float:
    values = [v for v in (value(r) for r in rows) if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def _mean_std(rows: list[dict], value, spec: str) -> str:
    values = [value(r) for r in rows]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))
    return f"{mean:{spec}} +- {std:.3f}"


def _true_ratio(row: dict) -> float:
    """Pruning ratio of the graph that made the mix (its bypassed share of the full console)."""
    true = sum(r["true"] for r in row["recovery"].values())
    return 1.0 - true / sum(row["full_counts"].values())


def _pooled(rows: list[dict], node_type: str, what: str) -> float:
    """Hits over ``what`` (``"true"``: recall, ``"kept"``: precision), counts pooled over cases."""
    hits = sum(r["recovery"].get(node_type, {}).get("hits", 0) for r in rows)
    total = sum(r["recovery"].get(node_type, {}).get(what, 0) for r in rows)
    return hits / total if total else float("nan")


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3, help="cases (seeds 0..N-1)")
    parser.add_argument("--tracks", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sample-rate", type=int, default=8000)
    parser.add_argument("--crop-seconds", type=float, default=2.0)
    parser.add_argument("--warmup-seconds", type=float, default=0.5)
    parser.add_argument("--fit-steps", type=int, default=400, help="full-console fit (Lee et al. 2024: 6000)")
    parser.add_argument("--rounds", type=int, default=6, help="pruning rounds (Lee et al. 2024: 12)")
    parser.add_argument("--finetune-steps", type=int, default=50, help="per round (Lee et al. 2024: 500)")
    parser.add_argument("--brute-force-every", type=int, default=3, help="hybrid (Lee et al. 2024: 4 of 12 rounds)")
    parser.add_argument("--taus", type=float, nargs="+", default=[0.001, 0.01, 0.1])
    parser.add_argument("--methods", nargs="*", default=["brute-force", "dry-wet"],
                        help="compared with hybrid at tau 0.01")
    parser.add_argument("--audible-db", type=float, default=0.0,
                        help="true graphs hold only processors that change their input by >= this (dB)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json")
    parser.add_argument("--scaling", type=int, nargs="+", default=None, metavar="TRACKS",
                        help="time one hybrid run per track count instead (e.g. 8 16 32)")
    parser.add_argument("--audibility", action="store_true",
                        help="per type, how many true processors matter (> 0.01 loss when removed)")
    parser.add_argument("--table-only", action="store_true", help="print the table of --out's results.json")
    parser.add_argument("--predictor", type=Path, default=None,
                        help="graph predictor JSON: add the rows that start from its predicted graph")
    args = parser.parse_args(argv)
    if args.scaling:
        print("| tracks | processors | fit s/step | trials | s/trial | trials s | fine-tuning s | "
              "trial share | rho |\n|---|---|---|---|---|---|---|---|---|", flush=True)
        for tracks in args.scaling:
            print(scaling(tracks, args), flush=True)
        return
    if args.audibility:
        counts = [audibility(seed, args) for seed in range(args.cases)]
        for t in TYPES:
            true = sum(c.get(t, (0, 0))[0] for c in counts)
            audible = sum(c.get(t, (0, 0))[1] for c in counts)
            print(f"{t:10s} true {true:2d}, removal from the true graph costs > 0.01: {audible:2d}")
        return
    if args.table_only:
        print(table(json.loads((args.out / "results.json").read_text())))
        return
    torch.set_num_threads(args.threads)
    rows = [("hybrid", tau) for tau in args.taus] + [(m, 0.01) for m in args.methods]
    print(f"{args.cases} cases x {len(rows)} rows: {args.tracks} tracks, {args.seconds} s at "
          f"{args.sample_rate} Hz, full fit {args.fit_steps} steps, {args.rounds} rounds x "
          f"{args.finetune_steps} steps; kept-probabilities {ACTIVE} (gain_pan 1), audible_db "
          f"{args.audible_db:g}", flush=True)
    results = []
    for seed in range(args.cases):
        results += run_case(seed, args, rows)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()

"""Convergence of console fits on mixes with a known answer (docs/results.md "Fitting the full console").

Each case: synthetic-corpus stems (four per song) mixed by a full ``ecnsgdr`` console (track and
subgroup chains) whose parameters come from the musical prior, loudness-matched to the plain sum
(``mixrep.graphs.cases.make_case``). A fresh console at its near-transparent initialisation is
fitted with the paper's protocol (AdamW, lr 0.01, 3.8 s crops with a 1 s warm-up) plus the
variant of each row, then measured on the whole song:

* loss ratio: audio loss after / before the fit;
* gain and pan errors: per track, the level and pan of its contribution to the mix against the
  true console's (``mixrep.graphs.recovery``), mean over tracks and worst track.

Every run writes one JSON (and the fitted console's graph JSON) into ``--out`` (runs can be split
over processes and are skipped when present); the table aggregates over seeds (mean +- standard
deviation)::

    python benchmarks/console_fit.py --rows protocol warmup --seeds 0 1 2 --out runs/
    python benchmarks/console_fit.py --aggregate --out runs/
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from mixrep.console.console import MixingConsole
from mixrep.console.fit import FitConfig, evaluate, fit
from mixrep.console.processors import DRY_WET
from mixrep.graphs.cases import make_case, synthetic_tracks
from mixrep.graphs.recovery import level_errors

ROWS: dict[str, dict] = {
    # name: chain of the fitted console, FitConfig overrides, console set-up, tracks, steps
    "unfitted": dict(config={}, steps=0),  # baseline: the errors of the initial console
    "unfitted-8-tracks": dict(config={}, steps=0, tracks=8),
    "gain-only": dict(chain="g", config={}, steps=1000),
    "protocol": dict(config={"learning_rate_scale": {}, "warmup_steps": 0}, steps=1000),
    "wet-start": dict(config={"learning_rate_scale": {}, "warmup_steps": 0}, steps=1000,
                      wet_start=True),
    "warmup": dict(config={"learning_rate_scale": {}, "warmup_steps": 200}, steps=1000),
    "lr-scale": dict(config={"learning_rate_scale": {"gain_pan": 3.0, "dry_wet": 3.0},
                             "warmup_steps": 0}, steps=1000),
    "default-2000": dict(config={}, steps=2000),
    "default-8-tracks": dict(config={}, steps=2000, tracks=8),
}
"""Rows of the table: ``default-*`` use :class:`FitConfig`'s defaults (what ``mixrep console fit``
uses: the ``lr-scale`` row's multipliers, no warm-up)."""


def run(row: str, seed: int, sample_rate: int, seconds: float, out: Path) -> dict:
    spec = ROWS[row]
    names, groups, stems = synthetic_tracks(spec.get("tracks", 4), seconds, sample_rate, seed)
    case = make_case(stems, names, groups, sample_rate, seed=seed)
    console = MixingConsole.from_tracks(names, groups, spec.get("chain", "ecnsgdr"),
                                        sample_rate=sample_rate)
    if spec.get("wet_start"):  # the previous initialisation: every processor 95 % wet
        with torch.no_grad():
            for params in console.params.values():
                params[DRY_WET].fill_(3.0)
    initial = evaluate(console, stems, case.mix)
    config = FitConfig(steps=spec["steps"], seed=seed, progress=False, **spec["config"])
    result = fit(console, stems, case.mix, config)
    final = evaluate(console, stems, case.mix)
    console.save_json(out / f"{row}_seed{seed}.graph.json")  # the fitted console, physical units
    errors = level_errors(console, case.console, stems)
    return {"row": row, "seed": seed, "tracks": len(names), "steps": spec["steps"],
            "sample_rate": sample_rate, "initial_loss": initial, "final_loss": final,
            "loss_ratio": final / initial, "seconds_per_step": result.seconds_per_step,
            "gain_error_db": errors.gain_db.tolist(), "pan_error": errors.pan.tolist(),
            "threads": torch.get_num_threads()}


def _mean_std(values: list[float], digits: int = 3) -> str:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))
    return f"{mean:.{digits}f} +- {std:.{digits}f}"


def _recipe(spec: dict) -> str:
    """The fitting recipe of a row in words: chain, learning rates, warm-up, start."""
    if not spec["steps"]:
        return f"`{spec.get('chain', 'ecnsgdr')}` at its initialisation, not fitted"
    defaults = FitConfig()
    scale = spec["config"].get("learning_rate_scale", defaults.learning_rate_scale)
    rates = ", ".join(f"{k} x{v:g}" for k, v in scale.items()) or "one rate"
    warmup = spec["config"].get("warmup_steps", defaults.warmup_steps)
    parts = [f"`{spec.get('chain', 'ecnsgdr')}`", rates]
    if warmup:
        parts.append(f"{warmup} gain-only steps first")
    if spec.get("wet_start"):
        parts.append("95 % wet start")
    return "; ".join(parts)


def _errors(per_run: list[list[float]], digits: int) -> tuple[str, str]:
    """Mean over tracks and worst track, each as mean +- std over runs (worst: max of all runs)."""
    means = [sum(errors) / len(errors) for errors in per_run]
    worst = [max(errors) for errors in per_run]
    return (_mean_std(means, digits),
            f"{_mean_std(worst, digits)} (max {max(worst):.{digits}f})")


def aggregate(out: Path) -> None:
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*_seed*.json"))
            if not p.name.endswith(".graph.json")]
    print("| row | recipe | tracks | steps | seeds | loss ratio | gain error dB, mean | "
          "gain error dB, worst track | pan error, mean | pan error, worst track | s/step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row, spec in ROWS.items():
        rs = [r for r in runs if r["row"] == row]
        if not rs:
            continue
        gain_mean, gain_worst = _errors([r["gain_error_db"] for r in rs], 2)
        pan_mean, pan_worst = _errors([r["pan_error"] for r in rs], 3)
        print(f"| {row} | {_recipe(spec)} | {rs[0]['tracks']} | {rs[0]['steps']} | {len(rs)} | "
              f"{_mean_std([r['loss_ratio'] for r in rs])} | {gain_mean} | {gain_worst} | "
              f"{pan_mean} | {pan_worst} | {_mean_std([r['seconds_per_step'] for r in rs], 2)} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sample-rate", type=int, default=16_000)
    parser.add_argument("--seconds", type=float, default=12.0, help="song length")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--out", type=Path, default=Path("console_fit_runs"))
    parser.add_argument("--aggregate", action="store_true", help="only print the table")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.aggregate:
        torch.set_num_threads(args.threads)
        for row in args.rows:
            for seed in args.seeds:
                path = args.out / f"{row}_seed{seed}.json"
                if path.exists():
                    continue
                record = run(row, seed, args.sample_rate, args.seconds, args.out)
                path.write_text(json.dumps(record, indent=1))
                print(f"{row} seed {seed}: loss ratio {record['loss_ratio']:.3f}, worst gain error "
                      f"{max(record['gain_error_db']):.2f} dB, {record['seconds_per_step']:.3f} s/step",
                      flush=True)
    aggregate(args.out)


if __name__ == "__main__":
    main()

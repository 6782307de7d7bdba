"""The jointly trained encoder against the contrastive-only one: docs/results.md "Settings decoding".

Trains ``configs/demo.yaml`` twice per seed, with the settings decoders (``--model.settings_weight W``)
and without (``--model.settings_weight 0``, the contrastive-only encoder), then scores each best
checkpoint on ``mixrep evaluate``'s domains (the numpy synth and the soundfont held out from training)
on the same items:

- style retrieval: mAP with same-song distractors and style>song of the encoder, next to the baselines
  of ``mixrep evaluate`` (the strongest of them named);
- settings recovery per settings group on the held-out soundfont (:mod:`mixrep.evaluation.settings`):
  the decoder, ridge / logistic probes on the embedding, on the 116 mix features and on the per-stem
  descriptor (fitted on the training songs), the mean; and the relative decoder on same-song and
  two-song pairs next to ridge probes of the differences.

Printed: mean +- standard deviation (ddof 0) over the seeds. Runs are resumable: a finished run
(``<out>/<kind>-seed<S>/done``) is not trained again, a scored one (``retrieval.json``,
``settings.json``) not scored again.

Run: ``python benchmarks/settings_decoding.py [--seeds 0 1 2] [--weight 1.0] [--out runs/settings]``;
``--score-only`` scores the runs already trained and trains none; ``--table-only`` prints the table
of the scored runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KINDS = ("joint", "contrastive")


def train(kind: str, seed: int, args: argparse.Namespace) -> Path:
    run_dir = Path(args.out) / f"{kind}-seed{seed}"
    if not (run_dir / "done").is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        weight = args.weight if kind == "joint" else 0.0
        command = [sys.executable, "-m", "mixrep.cli", "train", "encoder", "fit", "--config", "configs/demo.yaml",
                   "--seed_everything", str(seed), "--data.seed", str(seed), "--model.settings_weight", str(weight),
                   "--trainer.default_root_dir", str(run_dir), "--trainer.logger.init_args.save_dir", str(run_dir),
                   "--trainer.enable_progress_bar", "false"]
        started = time.perf_counter()
        with open(run_dir / "train.log", "w") as log:
            code = subprocess.call(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"},
                                   stdout=log, stderr=subprocess.STDOUT)
        if code != 0:
            raise SystemExit(f"training {kind} seed {seed} failed (exit {code}); see {run_dir / 'train.log'}")
        (run_dir / "done").write_text(f"{time.perf_counter() - started:.0f}\n")
    return run_dir


def score(run_dir: Path, args: argparse.Namespace, part: str) -> dict:
    """``part`` = ``retrieval`` or ``settings`` of one trained run (cached in ``<run>/<part>.json``)."""
    path = run_dir / f"{part}.json"
    if path.is_file():
        return json.loads(path.read_text())
    from mixrep.evaluation.encoder import default_domains, domain_table_dict, evaluate_checkpoint
    from mixrep.evaluation.settings import evaluate_settings
    from mixrep.inference.style_encoder import load_checkpoint
    from mixrep.training.runs import read_best_record

    version = sorted((run_dir / "tensorboard").glob("version_*"))[-1]
    best = Path(read_best_record(version / "best.json")["best_model_path"])
    started = time.perf_counter()
    if part == "retrieval":
        scores = domain_table_dict(evaluate_checkpoint(best, corpus_dir=args.corpus_dir))
    else:
        held_out = default_domains(load_checkpoint(best))[-1:]  # the held-out soundfont (settings: one domain)
        scores = [r.as_dict() for r in evaluate_settings(best, domains=held_out, corpus_dir=args.corpus_dir)]
    result = {"checkpoint": str(best), part: scores, "seconds": time.perf_counter() - started}
    path.write_text(json.dumps(result, indent=1))
    return result


def _spread(values: list[float]) -> str:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return f"{np.mean(values):.3f} +- {np.std(values):.3f}" if values else "-"


def table(results: dict[str, list[dict]]) -> str:
    """Markdown tables: retrieval per domain, then settings recovery per domain and reader."""
    from mixrep.styles.settings_vector import GROUPS

    lines = ["| encoder | domain | mAP | style>song | best baseline | its mAP |", "|---|---|---|---|---|---|"]
    first = next(iter(results.values()))
    for d, domain in enumerate(first[0]["retrieval"]):
        for kind, runs in results.items():
            rows = [r["retrieval"][d] for r in runs]
            best = max(rows[0]["scores"], key=lambda name: np.mean([r["scores"][name]["map"] for r in rows])
                       if name not in ("trained", "untrained") else -1)
            lines.append(f"| {kind} ({len(runs)} seeds) | {domain['description']} | "
                         f"{_spread([r['scores']['trained']['map'] for r in rows])} | "
                         f"{_spread([r['scores']['trained']['style_over_song'] for r in rows])} | {best} | "
                         f"{_spread([r['scores'][best]['map'] for r in rows])} |")
    lines += ["", "| encoder | domain | reader | " + " | ".join(GROUPS) + " | mean R^2 | presence AUROC |",
              "|---|---|---|" + "---|" * (len(GROUPS) + 2)]
    for d, domain in enumerate(first[0]["settings"]):
        for kind, runs in results.items():
            readers = runs[0]["settings"][d]["groups"]
            for reader in readers:
                per_seed = [r["settings"][d]["groups"][reader] for r in runs]
                cells = [_spread([s.get(g, {}).get("r2") for s in per_seed]) for g in GROUPS]
                means = [np.mean([s[g]["r2"] for g in GROUPS if "r2" in s.get(g, {})]) for s in per_seed]
                aurocs = [np.mean([v["auroc"] for v in s.values() if "auroc" in v]) for s in per_seed]
                lines.append(f"| {kind} | {domain['description']} | {reader} | " + " | ".join(cells)
                             + f" | {_spread(means)} | {_spread(aurocs)} |")
        for kind, runs in results.items():
            for label in runs[0]["settings"][d]["relative"]:
                for reader in runs[0]["settings"][d]["relative"][label]:
                    values = [np.mean(list(r["settings"][d]["relative"][label][reader].values())) for r in runs]
                    lines.append(f"| {kind} | {domain['description']} | {reader}, {label} | mean R^2 "
                                 f"{_spread(values)} |" + " |" * (len(GROUPS) + 1))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--weight", type=float, default=1.0, help="settings_weight of the joint runs")
    parser.add_argument("--out", default="runs/settings")
    parser.add_argument("--corpus-dir", default="outputs/corpora")
    parser.add_argument("--score-only", action="store_true", help="score trained runs, train none")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for seed in args.seeds:
        for kind in KINDS:
            run_dir = Path(args.out) / f"{kind}-seed{seed}"
            if args.table_only or args.score_only:
                if not (run_dir / "done").is_file():
                    continue
            else:
                train(kind, seed, args)
            parts = {}
            for part in ("settings", "retrieval"):
                if args.table_only:
                    if (run_dir / f"{part}.json").is_file():
                        parts.update(json.loads((run_dir / f"{part}.json").read_text()))
                else:
                    parts.update(score(run_dir, args, part))
            if "settings" in parts and "retrieval" in parts:
                results[kind].append(parts)
    print(table({k: v for k, v in results.items() if v}))

if __name__ == "__main__":
    main()

"""Training corpus x evaluation domain, over seeds: docs/results.md "Training corpus x evaluation domain".

Each run trains ``configs/demo.yaml`` (what ``bash scripts/train.sh`` runs) with one training corpus
and one seed, then scores its best checkpoint (what ``make demo`` scores) with ``mixrep evaluate``'s
domains: the numpy synth and a soundfont held out from training. Printed per corpus and domain:
mAP with same-song distractors and style>song of the trained encoder, mean +- standard deviation
over the seeds, next to the best baseline of that domain on the same items (the baseline with the
highest mean mAP among the untrained encoder, mix features, per-stem features and MFCC mean/std).

Training corpora (``--corpora``):

- ``synth``: the numpy synth alone;
- ``soundfont``: the soundfont renderings alone (``data.soundfonts`` of the config; the demo config's default);
- ``both``: both (the demo config's default until 2026-12-04);
- ``old-default``: the previous default recipe (numpy synth, per-stem chains, no feature branch,
  FiLM only), re-measured on today's songs.

Runs are resumable: a finished run (``<out>/<corpus>-seed<S>/result.json``) is not run again. Each
run records its wall time, steps, steps/s, the data-wait share and the load average of the machine
(sampled every 10 s), since the CPU may be shared.

Run: ``python benchmarks/cross_domain.py [--corpora synth soundfont both] [--seeds 0 1 2]
[--out outputs/cross_domain] [--extra "--model.temperature 0.2"]``; ``--table-only`` prints the table of
the finished runs and starts none.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CORPORA: dict[str, list[str]] = {
    "synth": ["--data.source", "synth"],
    "soundfont": ["--data.source", "soundfont"],
    "both": ["--data.source", "[synth, soundfont]"],
    "old-default": ["--data.source", "synth", "--data.styles", "chains", "--model.feature_branch_dim", "0",
                    "--data.clip_seconds", "3.0", "--model.temperature", "0.1", "--trainer.max_epochs", "12",
                    "--data.items_per_epoch", "160"],
}


class LoadSampler:
    """The 1-minute load average, sampled every ``period`` seconds in a thread."""

    def __init__(self, period: float = 10.0) -> None:
        self.period, self.samples = period, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_one(corpus: str, seed: int, args: argparse.Namespace) -> dict:
    run_dir = Path(args.out) / f"{corpus}-seed{seed}"
    result_path = run_dir / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mixrep.cli", "train", "encoder", "fit", "--config", args.config,
               "--seed_everything", str(seed), "--data.seed", str(seed), *CORPORA[corpus], *shlex.split(args.extra),
               "--trainer.default_root_dir", str(run_dir), "--trainer.logger.init_args.save_dir", str(run_dir),
               "--trainer.enable_progress_bar", "false"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    started, cpu_before = time.perf_counter(), _children_cpu_seconds()
    with LoadSampler() as load, open(run_dir / "train.log", "w") as log:
        returncode = subprocess.call(["nice", "-n", str(args.nice), *command], cwd=REPO, env=env, stdout=log,
                                     stderr=subprocess.STDOUT)
    wall, cpu = time.perf_counter() - started, _children_cpu_seconds() - cpu_before
    if returncode != 0:
        raise SystemExit(f"training {corpus} seed {seed} failed (exit {returncode}); see {run_dir / 'train.log'}")
    from mixrep.evaluation.encoder import domain_table_dict, evaluate_checkpoint
    from mixrep.training.runs import read_best_record

    version = sorted((run_dir / "tensorboard").glob("version_*"))[-1]
    best = Path(read_best_record(version / "best.json")["best_model_path"])  # as the run recorded it
    timing = json.loads((version / "timing.json").read_text())
    domains = domain_table_dict(evaluate_checkpoint(best, num_songs=args.songs, num_styles=args.styles,
                                                    corpus_dir=args.corpus_dir))
    # The earlier metric: per-stem chains as the styles (here on the synth domain's songs).
    chains = domain_table_dict(evaluate_checkpoint(best, domains=["synth"], num_songs=args.songs,
                                                   num_styles=args.styles, styles="chains"))
    result = {"corpus": corpus, "seed": seed, "command": shlex.join(command), "checkpoint": str(best),
              "train_wall_seconds": wall, "train_cpu_seconds": cpu, "timing": timing,
              "load_average_mean": float(np.mean(load.samples)), "load_average_max": float(np.max(load.samples)),
              "domains": domains, "synth_chains": chains[0]}
    result_path.write_text(json.dumps(result, indent=1))
    return result


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of every finished child process (and theirs: DataLoader workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


DOMAIN_KINDS = ("synth", "held-out soundfont", "synth, chains")
"""Rows per corpus: the two domains of ``mixrep evaluate`` (mixing-style space) and the synth
domain under the per-stem chains (the earlier style distribution)."""


def domain_of(result: dict, kind: str) -> dict | None:
    if kind == "synth, chains":
        return result.get("synth_chains")
    wanted = (lambda d: d["domain"] == "synth") if kind == "synth" else (lambda d: d["domain"] != "synth")
    return next((d for d in result["domains"] if wanted(d)), None)


def summarise(results: list[dict]) -> str:
    """The corpus x domain table: trained vs best baseline, mean +- std over seeds."""
    def stat(values) -> str:
        return f"{np.mean(values):.3f} +- {np.std(values):.3f}"

    header = (f"{'training corpus':15s} {'domain':18s} {'seeds':>5s} {'trained mAP':>15s} {'best baseline mAP':>28s} "
              f"{'margin':>15s} {'style>song':>15s} {'baseline s>s':>15s} {'wall s':>6s} {'CPU s':>6s} "
              f"{'steps/s':>7s} {'load':>5s}")
    lines = [header, "-" * len(header)]
    held_out = sorted({d["description"] for r in results for d in r["domains"] if d["domain"] != "synth"})
    for corpus in dict.fromkeys(r["corpus"] for r in results):
        runs = [r for r in results if r["corpus"] == corpus]
        for kind in DOMAIN_KINDS:
            per_run = [domain_of(r, kind) for r in runs]
            if any(d is None for d in per_run):
                continue
            baselines = [b for b in per_run[0]["scores"] if b != "trained"]
            best = max(baselines, key=lambda b: np.mean([d["scores"][b]["map"] for d in per_run]))
            trained = np.array([d["scores"]["trained"]["map"] for d in per_run])
            base = np.array([d["scores"][best]["map"] for d in per_run])
            lines.append(
                f"{corpus:15s} {kind:18s} {len(runs):5d} {stat(trained):>15s} {best + ' ' + stat(base):>28s} "
                f"{stat(trained - base):>15s} "
                f"{stat([d['scores']['trained']['style_over_song'] for d in per_run]):>15s} "
                f"{stat([d['scores'][best]['style_over_song'] for d in per_run]):>15s} "
                f"{np.mean([r['train_wall_seconds'] for r in runs]):6.0f} "
                f"{np.mean([r.get('train_cpu_seconds', np.nan) for r in runs]):6.0f} "
                f"{np.mean([r['timing']['steps_per_second'] for r in runs]):7.3f} "
                f"{np.mean([r['load_average_mean'] for r in runs]):5.1f}")
    lines.append(f"held-out soundfont: {', '.join(held_out) or 'none installed'}. mean +- std over seeds; margin = "
                 "trained - best baseline, per seed; wall s / CPU s = training (rendering included on a first run); "
                 "load = mean 1-min load average of the machine")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", nargs="+", default=["synth", "soundfont", "both"], choices=sorted(CORPORA))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--extra", default="", help="arguments added to every training run (quoted)")
    parser.add_argument("--out", default="outputs/cross_domain")
    parser.add_argument("--songs", type=int, default=16, help="songs per evaluation domain")
    parser.add_argument("--styles", type=int, default=8, help="styles per evaluation domain")
    parser.add_argument("--corpus-dir", default="outputs/corpora")
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--table-only", action="store_true",
                        help="summarise the finished runs under --out; start none (missing ones are listed)")
    args = parser.parse_args(argv)
    os.chdir(REPO)
    results = []
    for corpus in args.corpora:
        for seed in args.seeds:
            result_path = Path(args.out) / f"{corpus}-seed{seed}" / "result.json"
            if args.table_only:
                if result_path.is_file():
                    results.append(json.loads(result_path.read_text()))
                else:
                    print(f"{corpus} seed {seed}: not run (no {result_path})")
                continue
            result = run_one(corpus, seed, args)
            held = next((d for d in result["domains"] if d["domain"] != "synth"), None)
            print(f"{corpus} seed {seed}: {result['train_wall_seconds']:.0f} s, synth mAP "
                  f"{result['domains'][0]['scores']['trained']['map']:.3f}"
                  + (f", held-out mAP {held['scores']['trained']['map']:.3f}" if held else ""), flush=True)
            results.append(result)
    print()
    if not results:
        raise SystemExit(f"no finished runs under {args.out}")
    print(summarise(results))


if __name__ == "__main__":
    main()

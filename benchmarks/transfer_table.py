"""The Stage 2 tables of docs/results.md: ``mixrep evaluate-transfer`` over several heads (one per training
seed), mean and spread over seeds of every score, on the same test items for every head.

    nice -n 5 python benchmarks/transfer_table.py --heads runs/seed0/.../best.ckpt runs/seed1/... \
        --items 8 --refine-steps 20 --fit-steps 150 --prune-items 3 --out runs/transfer.json
    python benchmarks/transfer_table.py --table-only --out runs/transfer.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mixrep.evaluation.transfer import METHODS, TransferEvaluation
from mixrep.files import atomic_write_text
from mixrep.inference import StyleTransfer

COLUMNS = ("audio_loss", "level_db", "level_pan", "gain_db", "pan", "eq_db", "rms_db", "stereo_width",
           "bark_mid_db", "bark_side_db", "seconds")


def evaluate(args) -> list[dict]:
    runs, evaluation = [], None
    for head in args.heads:
        transfer = StyleTransfer.from_checkpoint(head)
        if evaluation is None:
            evaluation = TransferEvaluation(transfer, items=args.items, refine_steps=args.refine_steps,
                                            fit_steps=args.fit_steps, bank_items=args.bank_items,
                                            prune_items=args.prune_items, seed=args.seed)
        else:  # the same items; the head-independent baselines are computed once
            evaluation = evaluation.with_head(transfer)
        scores = evaluation.run()
        runs.append({"head": str(head), "scores": scores.to_dict(), "graphs": evaluation.graphs.table()})
        atomic_write_text(args.out, json.dumps(runs, indent=1))  # each seed kept as it finishes
    return runs


def _cell(values: list[float]) -> str:
    values = [v for v in values if v == v]
    if not values:
        return ""
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def tables(runs: list[dict]) -> str:
    lines = [f"{len(runs)} heads (seeds); mean ± std over them", "",
             "| method | reference | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for kind in ("console", "pedalboard"):
        for method in METHODS:
            key = f"{method}/{kind}"
            if key not in runs[0]["scores"]:
                continue
            cells = [_cell([r["scores"][key].get(c, float("nan")) for r in runs]) for c in COLUMNS]
            lines.append(f"| {method} | {kind} | " + " | ".join(cells) + " |")
    lines += ["", "| type | n per seed | kept | head F1 | keep-all F1 | frequency F1 | head AUROC |",
              "|---|---|---|---|---|---|---|"]
    for t in runs[0]["graphs"]:
        g = [r["graphs"][t] for r in runs]
        lines.append(f"| {t} | {g[0]['n']} | {_cell([x['kept'] for x in g])} | {_cell([x['head_f1'] for x in g])} | "
                     f"{_cell([x['all_f1'] for x in g])} | {_cell([x['frequency_f1'] for x in g])} | "
                     f"{_cell([x['head_auroc'] for x in g])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heads", nargs="+", type=Path, default=[])
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--refine-steps", type=int, default=20)
    parser.add_argument("--fit-steps", type=int, default=150)
    parser.add_argument("--bank-items", type=int, default=64)
    parser.add_argument("--prune-items", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--table-only", action="store_true", help="print the tables of an earlier --out")
    args = parser.parse_args()
    runs = json.loads(args.out.read_text()) if args.table_only else evaluate(args)
    print(tables(runs))


if __name__ == "__main__":
    main()

"""``mixrep evaluate``: style retrieval of a checkpoint versus two baselines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate", help="style-retrieval mAP / R@1 of a checkpoint and of two baselines")
    evaluate.add_argument("--checkpoint", type=Path, required=True)
    evaluate.add_argument("--split", default="val", choices=("train", "val", "test"))
    evaluate.add_argument("--songs", type=int, default=16, help="held-out songs in the set")
    evaluate.add_argument("--styles", type=int, default=8, help="mixing styles per song")
    evaluate.add_argument("--seed", type=int, default=1234)
    evaluate.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from mixrep.eval.evaluate import evaluate_checkpoint, format_scores

    scores = evaluate_checkpoint(args.checkpoint, split=args.split, num_songs=args.songs, num_styles=args.styles,
                                 seed=args.seed, device=args.device)
    if args.json:
        print(json.dumps({name: s.as_dict() for name, s in scores.items()}, indent=2))
    else:
        print(format_scores(scores))
    return 0

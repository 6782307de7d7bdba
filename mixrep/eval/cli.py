"""``mixrep evaluate``: cross-domain style retrieval of a checkpoint versus baselines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate", help="style-retrieval mAP / R@1 / style>song of a checkpoint and of baselines, per domain",
        description="Score a checkpoint per domain (default: the numpy synth and a soundfont held out from its "
                    "training) against the untrained encoder, the mix features, the per-stem features and MFCC "
                    "mean/std, on the same songs x styles items.")
    evaluate.add_argument("--checkpoint", type=Path, required=True)
    evaluate.add_argument(
        "--domain", action="append", dest="domains", metavar="SPEC",
        help="repeatable: synth, soundfont[:NAME|PATH] (e.g. soundfont:MuseScore_General), train (the checkpoint's "
             "own corpora, val split), KIND:PATH (slakh, medleydb, moisesdb, tracks, stems, soundfont) or a dataset "
             "PATH (kind detected from its layout); default: synth and a held-out soundfont")
    evaluate.add_argument("--style-space", default="mix_style", choices=("mix_style", "chains"),
                          help="style space of the items: the mixing-style space with its default ranges (default), "
                               "or the checkpoint's per-stem chains")
    evaluate.add_argument("--split", default=None, choices=("train", "val", "test"),
                          help="split of dataset domains (default: every song)")
    evaluate.add_argument("--songs", type=int, default=16, help="songs per domain")
    evaluate.add_argument("--styles", type=int, default=8, help="mixing styles applied to every song")
    evaluate.add_argument("--seed", type=int, default=1234, help="seed of the clip offsets and the styles")
    evaluate.add_argument("--corpus-dir", default="outputs/corpora", help="where rendered soundfont corpora are cached")
    evaluate.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from mixrep.eval.evaluate import domain_table_dict, evaluate_checkpoint, format_domain_scores

    results = evaluate_checkpoint(args.checkpoint, domains=args.domains, num_songs=args.songs,
                                  num_styles=args.styles, styles=args.style_space, seed=args.seed, device=args.device,
                                  split=args.split, corpus_dir=args.corpus_dir)
    if args.json:
        print(json.dumps(domain_table_dict(results), indent=2))
    else:
        print(format_domain_scores(results))
    return 0

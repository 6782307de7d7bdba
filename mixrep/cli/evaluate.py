"""``mixrep evaluate``: cross-domain style retrieval of a checkpoint versus baselines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate", help="style-retrieval mAP / R@1 / style>song of a checkpoint and of baselines, per domain",
        description="Score a checkpoint per domain (default: the numpy synth and a soundfont held out from its "
                    "training) against the untrained encoder, the mix features, the per-stem features, the per-stem "
                    "descriptor and MFCC mean/std, on the same songs x styles items.")
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
    evaluate.add_argument("--settings", action="store_true",
                          help="also score settings recovery per settings group (R^2, presence AUROC) of the "
                               "checkpoint's settings decoder against linear probes on its embedding and on the mix "
                               "features, fitted on its training songs (needs a checkpoint with a decoder)")
    evaluate.set_defaults(func=run_evaluate)
    register_transfer(subparsers)


def register_transfer(subparsers: argparse._SubParsersAction) -> None:
    transfer = subparsers.add_parser(
        "evaluate-transfer", help="a regression head vs the baselines on held-out songs and styles",
        description="Score a Stage 2 head on held-out synthetic songs with held-out style draws, for console-rendered "
                    "and pedalboard-rendered references, against the equal-loudness sum, the mean training "
                    "parameters, retrieval of the nearest training reference, the head with refinement and the "
                    "console fitted to each target (upper bound).")
    transfer.add_argument("--head", type=Path, required=True)
    transfer.add_argument("--items", type=int, default=8, help="items per reference kind")
    transfer.add_argument("--refine-steps", type=int, default=20)
    transfer.add_argument("--fit-steps", type=int, default=150, help="steps of the upper-bound fit (0 skips it)")
    transfer.add_argument("--bank-items", type=int, default=64, help="training references of the retrieval baseline")
    transfer.add_argument("--prune-items", type=int, default=0,
                          help="console items on which the pruning search also runs (vs the predicted sparse graph)")
    transfer.add_argument("--seed", type=int, default=1234, help="style seed of the test items")
    transfer.add_argument("--num-songs", type=int, default=None,
                          help="songs of the synthetic corpus (its test split is used; default: the head's training corpus)")
    transfer.add_argument("--device", default=None)
    transfer.add_argument("--json", type=Path, default=None, help="also write every mean score to this JSON file")
    transfer.set_defaults(func=run_transfer)


def run_transfer(args: argparse.Namespace) -> int:
    from mixrep.evaluation.transfer import TransferEvaluation, format_graph_table, format_transfer_table
    from mixrep.files import atomic_write_text
    from mixrep.inference import StyleTransfer

    transfer = StyleTransfer.from_checkpoint(args.head, device=args.device)
    evaluation = TransferEvaluation(transfer, items=args.items, refine_steps=args.refine_steps, fit_steps=args.fit_steps,
                                    bank_items=args.bank_items, seed=args.seed, num_songs=args.num_songs,
                                    prune_items=args.prune_items)
    scores = evaluation.run()
    print(format_transfer_table(scores))
    print("\ngraph prediction (console references; gain/pan always kept):")
    print(format_graph_table(evaluation.graphs))
    if args.json is not None:
        atomic_write_text(args.json, json.dumps({"scores": scores.to_dict(), "graphs": evaluation.graphs.table()}, indent=1))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from mixrep.evaluation.encoder import domain_table_dict, evaluate_checkpoint, format_domain_scores

    results = evaluate_checkpoint(args.checkpoint, domains=args.domains, num_songs=args.songs,
                                  num_styles=args.styles, styles=args.style_space, seed=args.seed, device=args.device,
                                  split=args.split, corpus_dir=args.corpus_dir)
    settings = []
    if args.settings:
        from mixrep.evaluation.settings import evaluate_settings

        settings = evaluate_settings(args.checkpoint, domains=args.domains, num_songs=args.songs,
                                     seed=args.seed, device=args.device, corpus_dir=args.corpus_dir)
    if args.json:
        payload = domain_table_dict(results)
        print(json.dumps({"retrieval": payload, "settings": [r.as_dict() for r in settings]} if args.settings
                         else payload, indent=2))
    else:
        print(format_domain_scores(results))
        if settings:
            from mixrep.evaluation.settings import format_settings_recovery

            print("\nsettings recovery (R^2 per group, presence AUROC), same items:")
            print(format_settings_recovery(settings))
    return 0

"""The console options shared by ``mixrep console fit``, ``prune``, ``prune-dataset``, ``make-case``,
``train-graph`` and ``predict-graph``: the arguments and what they become.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

import argparse

import torch

from mixrep.console.fit import FitConfig
from mixrep.console.graph import DEFAULT_CHAIN, PROCESSOR_TYPES
from mixrep.constants import SAMPLE_RATE
from mixrep.errors import DatasetError


def add_fit_arguments(p: argparse.ArgumentParser, steps: int, steps_help: str = "optimisation steps "
                      "(Lee et al. 2024: 12000)") -> None:
    """The console and fit options shared by ``fit``, ``prune`` and ``prune-dataset``."""
    p.add_argument("--steps", type=int, default=steps, help=steps_help)
    p.add_argument("--lr", type=float, default=0.01, help="AdamW learning rate")
    p.add_argument("--crop-seconds", type=float, default=3.8)
    p.add_argument("--warmup-seconds", type=float, default=1.0)
    p.add_argument("--chain", default=DEFAULT_CHAIN, help="per-track chain letters (e c n s g d r)")
    p.add_argument("--group-chain", default=None, help="per-group chain (default: --chain)")
    p.add_argument("--sample-rate", type=int, default=SAMPLE_RATE)
    p.add_argument("--warmup-steps", type=int, default=FitConfig.warmup_steps,
                   help="first steps that train only the gain/pan stages")
    p.add_argument("--lr-scale", action="append", default=[], metavar="KEY=FACTOR",
                   help="learning-rate multiplier for a processor type, 'type.param' or 'dry_wet' "
                        "(repeatable; replaces the defaults)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; 1 is fastest on a loaded machine)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--no-match-check", action="store_true",
                   help="fit even when no linear mix of the tracks comes near the mix (tracks of another song)")


def fit_config_from_args(args: argparse.Namespace, steps: int | None = None) -> FitConfig:
    """The :class:`FitConfig` of the fit options (``--lr``, ``--lr-scale``, crops, ``--seed``)."""
    if args.crop_seconds <= args.warmup_seconds:
        raise DatasetError(f"--crop-seconds {args.crop_seconds} must exceed --warmup-seconds {args.warmup_seconds}: "
                           "the loss is computed on the crop after the warm-up")
    scales = dict(FitConfig().learning_rate_scale)
    if args.lr_scale:
        scales = {}
        for item in args.lr_scale:
            key, _, factor = item.partition("=")
            try:
                scales[key] = float(factor)
            except ValueError:
                raise DatasetError(f"--lr-scale {item!r}: expected KEY=FACTOR, e.g. gain_pan=5") from None
    return FitConfig(steps=args.steps if steps is None else steps, learning_rate=args.lr,
                     learning_rate_scale=scales, warmup_steps=args.warmup_steps,
                     crop_seconds=args.crop_seconds, warmup_seconds=args.warmup_seconds,
                     seed=args.seed, progress=not args.no_progress)


def parse_active_probability(items: list[str]) -> dict[str, float]:
    """``["reverb=0.3", "all=0.5"]`` -> ``{type: probability}`` (``all`` first, then specific types)."""
    out: dict[str, float] = {}
    for item in sorted(items, key=lambda i: not i.startswith("all=")):
        key, _, value = item.partition("=")
        try:
            p = float(value)
        except ValueError:
            p = float("nan")
        if key not in PROCESSOR_TYPES + ("all",) or not 0.0 <= p <= 1.0:
            raise DatasetError(f"--active-probability {item!r}: expected TYPE=P with TYPE one of "
                               f"{', '.join(PROCESSOR_TYPES)} or all, and 0 <= P <= 1")
        out.update({t: p for t in PROCESSOR_TYPES} if key == "all" else {key: p})
    return out

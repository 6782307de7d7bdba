"""The ``mixrep`` command line: a thin layer over the Python API.

Each subsystem registers its own sub-commands through a ``register(subparsers)`` function in its
``cli`` module; every handler takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from mixrep.errors import MixrepError

COMMAND_MODULES: tuple[str, ...] = (
    "mixrep.data.cli",
    "mixrep.separation.cli",
    "mixrep.eval.cli",
    "mixrep.console.cli",
    "mixrep.index.cli",
)


def register_embed(subparsers: argparse._SubParsersAction) -> None:
    embed = subparsers.add_parser("embed", help="embed audio files or stem folders with a trained encoder")
    embed.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                       help="audio files (mixtures, separated with Demucs) or, with --stems, stem folders")
    embed.add_argument("--checkpoint", type=Path, required=True)
    embed.add_argument("--out", type=Path, default=Path("embeddings.npz"))
    embed.add_argument("--stems", action="store_true",
                       help="inputs are folders holding drums/bass/other/vocals audio files")
    embed.add_argument("--max-clips", type=int, default=8, help="clips averaged per input")
    embed.add_argument("--device", default=None)
    embed.set_defaults(func=run_embed)


def run_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from mixrep.api import StyleEncoder

    encoder = StyleEncoder.from_checkpoint(args.checkpoint, device=args.device)
    vectors = [encoder.embed_stem_folder(path, args.max_clips) if args.stems else encoder.embed_file(path, args.max_clips)
               for path in args.inputs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, embeddings=np.stack(vectors).astype(np.float32),
             paths=np.array([str(p) for p in args.inputs]), model_hash=encoder.model_hash)
    print(f"wrote {len(vectors)} embeddings of size {encoder.embedding_dim} to {args.out} (model {encoder.model_hash})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixrep", description="mixrep: mixing-style representations of music")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    register_embed(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mixrep`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (MixrepError, ValueError) as e:  # the API's checks on user input raise these
        if args.verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

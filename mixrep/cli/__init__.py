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
from mixrep.files import atomic_write

COMMAND_MODULES: tuple[str, ...] = (
    "mixrep.cli.data",
    "mixrep.cli.separation",
    "mixrep.cli.evaluate",
    "mixrep.cli.train",
    "mixrep.cli.console",
    "mixrep.cli.mix",
    "mixrep.cli.index",
    "mixrep.cli.describe",
    "mixrep.cli.export",
    "mixrep.cli.report",
)


def register_embed(subparsers: argparse._SubParsersAction) -> None:
    embed = subparsers.add_parser(
        "embed", help="embed audio files or stem folders with a trained encoder",
        description="Embed each input; an input that cannot be embedded is skipped and reported, the others "
                    "are written (exit status 1 when some were skipped). Silent inputs are embedded with a warning.")
    embed.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                       help="audio files (mixtures, separated with Demucs) or, with --stems, stem folders")
    embed.add_argument("--checkpoint", type=Path, default=None,
                       help="encoder checkpoint (default: the one shipped with mixrep, docs/pretrained.md)")
    embed.add_argument("--out", type=Path, default=Path("embeddings.npz"))
    embed.add_argument("--stems", action="store_true",
                       help="inputs are folders holding drums/bass/other/vocals audio files")
    embed.add_argument("--max-clips", type=int, default=8, help="clips averaged per input")
    embed.add_argument("--device", default=None)
    embed.add_argument("--weights", type=Path, default=None,
                       help="local Demucs weights for mixtures (.th/.safetensors file or demucs model folder; see "
                            "`mixrep separate --help`), instead of the pretrained model the checkpoint names. A "
                            "checkpoint never chooses a weights file: one it records is ignored")
    embed.set_defaults(func=run_embed)


def run_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from mixrep.inference.style_encoder import StyleEncoder
    from mixrep.retrieval.embedder import aggregate_clips
    from mixrep.retrieval.queries import embed_inputs

    from mixrep.inference.pretrained import checkpoint_or_shipped

    encoder = StyleEncoder.from_checkpoint(checkpoint_or_shipped(args.checkpoint), device=args.device,
                                           separator_weights=args.weights)
    results = embed_inputs(encoder, args.inputs, args.stems, max_clips=args.max_clips,
                           stems_hint="Or, with pre-separated stems, embed stems folders: `mixrep embed --stems`.")
    done = [r for r in results if r.error is None]
    for r in results:
        if r.error is not None:
            print(f"skipped {r.path}: {r.error}", file=sys.stderr)
    if not done:
        raise MixrepError(f"none of the {len(results)} inputs could be embedded (see above); nothing written")
    out = args.out if args.out.name.endswith(".npz") else args.out.with_name(f"{args.out.name}.npz")  # as np.savez
    with atomic_write(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, embeddings=np.stack([aggregate_clips(r.embeddings) for r in done]).astype(np.float32),
                 paths=np.array([str(r.path) for r in done]), silent=np.array([r.silent for r in done]),
                 model_hash=encoder.model_hash)
    skipped = len(results) - len(done)
    print(f"wrote {len(done)} embeddings of size {encoder.embedding_dim} to {out} (model {encoder.model_hash})"
          + (f"; {skipped} inputs skipped" if skipped else ""))
    return 1 if skipped else 0


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

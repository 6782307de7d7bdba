"""The ``mixrep`` command line: a thin layer over the Python API.

Each subsystem registers its own sub-commands through a ``register(subparsers)`` function in its
``cli`` module; every handler takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mixrep.errors import MixrepError

COMMAND_MODULES: tuple[str, ...] = (
    "mixrep.data.cli",
    "mixrep.separation.cli",
    "mixrep.console.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixrep", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
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
    except MixrepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

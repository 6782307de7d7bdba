"""Write the inference copy of a style-encoder checkpoint as the one mixrep ships, and print its SHA-256.

    python scripts/ship_checkpoint.py CHECKPOINT [--out mixrep/weights/style-encoder.ckpt]

Then set ``SHIPPED_SHA256`` in mixrep/inference/pretrained.py to the printed value and record the
training command, data and scores in docs/pretrained.md.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import torch

from mixrep.files import atomic_write_bytes, digest
from mixrep.inference.pretrained import SHIPPED_CHECKPOINT
from mixrep.inference.style_encoder import load_checkpoint
from mixrep.models.checkpoint import inference_copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=SHIPPED_CHECKPOINT)
    args = parser.parse_args()
    buffer = io.BytesIO()
    torch.save(inference_copy(load_checkpoint(args.checkpoint), str(args.checkpoint)), buffer)
    atomic_write_bytes(args.out, buffer.getvalue())
    print(f"wrote {args.out} ({len(buffer.getvalue()) / 1e6:.2f} MB), sha256 {digest(buffer.getvalue())}")


if __name__ == "__main__":
    main()

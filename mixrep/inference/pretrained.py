"""The style-encoder checkpoint shipped with mixrep: what ``embed``, ``search``, ``index build`` and
``describe`` use when no ``--checkpoint`` is given.

The file lives in the package (``mixrep/weights/``), stripped to what inference reads (the encoder's
weights with its settings decoders, its self-description and the data settings it was trained with;
no optimizer state). Its SHA-256 is recorded here and checked before it is loaded, like any
checkpoint's own hashes (:mod:`mixrep.models.checkpoint`). How it was trained, on what, and its
scores: ``docs/pretrained.md``.
"""

from __future__ import annotations

from pathlib import Path

from mixrep.errors import CheckpointError
from mixrep.files import digest, file_chunks

SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "style-encoder.ckpt"
SHIPPED_SHA256 = "5cbb15d049d4433676fc52ea9e1f689db416846b7d688af1e015d05bb5199de3"
"""SHA-256 of :data:`SHIPPED_CHECKPOINT` (set when the file is replaced; see docs/pretrained.md)."""


def shipped_checkpoint() -> Path:
    """The shipped checkpoint, checked against :data:`SHIPPED_SHA256`.

    Raises:
        CheckpointError: the file is missing (an installation without package data) or altered.
    """
    if not SHIPPED_CHECKPOINT.is_file() or not SHIPPED_SHA256:
        raise CheckpointError(f"no checkpoint was given and the shipped one ({SHIPPED_CHECKPOINT}) is missing: "
                              f"pass --checkpoint (train one with `make demo`), or reinstall mixrep with its data")
    found = digest(file_chunks([SHIPPED_CHECKPOINT]))
    if found != SHIPPED_SHA256:
        raise CheckpointError(f"the shipped checkpoint {SHIPPED_CHECKPOINT} has SHA-256 {found}, not the recorded "
                              f"{SHIPPED_SHA256} (modified or damaged): reinstall mixrep, or pass --checkpoint")
    return SHIPPED_CHECKPOINT


def checkpoint_or_shipped(path: str | Path | None) -> Path:
    """``path`` when given, else :func:`shipped_checkpoint`."""
    return Path(path) if path is not None else shipped_checkpoint()

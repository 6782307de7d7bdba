"""Reading a Stage 2 head checkpoint (written by :class:`~mixrep.training.regression.RegressionModule`).

The checkpoint carries a ``"mixrep_head"`` section (plain builtins)::

    {"kind": "mixrep.regression_head", "version": 1, "head_config": {...HeadConfig...},
     "console": {...ConsoleSpec...}, "trained_against_encoder": "<encoder hash>",
     "finetuned_encoder": false, "content_hash": "<hash of the head weights>"}

with the head's weights under ``state_dict`` prefix ``head.``, next to the style encoder it was
trained with (the encoder's own ``"mixrep"`` section and ``encoder.`` weights).
"""

from __future__ import annotations

from dataclasses import dataclass

from mixrep.data.transfer import ConsoleSpec
from mixrep.errors import CheckpointError
from mixrep.models.checkpoint import check_metadata, checked_weights
from mixrep.models.regression import HeadConfig, RegressionHead

HEAD_KIND = "mixrep.regression_head"
HEAD_VERSION = 1
WEIGHTS_PREFIX = "head."


@dataclass(frozen=True)
class HeadCheckpoint:
    """What :func:`read_head` returns."""

    head: RegressionHead
    console: ConsoleSpec
    trained_against_encoder: str
    finetuned_encoder: bool
    content_hash: str


def read_head(checkpoint: dict, where: str) -> HeadCheckpoint:
    """Rebuild the head a checkpoint describes and check its weights.

    Raises:
        CheckpointError: not a head checkpoint (e.g. a style-encoder checkpoint), a newer version,
            or weights or settings that do not match their recorded hashes
            (:func:`~mixrep.models.checkpoint.check_metadata`).
    """
    meta = checkpoint.get("mixrep_head") if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict) or meta.get("kind") != HEAD_KIND:
        raise CheckpointError(f"{where} is not a mixrep regression-head checkpoint (no 'mixrep_head' section); train "
                              f"one with `bash scripts/train.sh --config configs/regression.yaml`")
    if not isinstance(meta.get("version"), int) or meta["version"] > HEAD_VERSION:
        raise CheckpointError(f"{where} is a version {meta.get('version')} head checkpoint; this mixrep reads up to "
                              f"{HEAD_VERSION}: upgrade mixrep")
    check_metadata(checkpoint, where)
    try:
        config = HeadConfig.from_dict(meta["head_config"])
        console = ConsoleSpec(**meta["console"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: unreadable head config: {e}") from e
    weights = checked_weights(checkpoint, WEIGHTS_PREFIX, meta.get("content_hash"), where, "the head weights")
    head = RegressionHead(config)
    head.load_state_dict(weights)
    return HeadCheckpoint(head.eval(), console, str(meta.get("trained_against_encoder")),
                          bool(meta.get("finetuned_encoder")), meta["content_hash"])

"""What a checkpoint says about itself: the one contract of the style encoder's and the Stage 2
head's checkpoints, written by training (:func:`encoder_section`, :func:`head_section`,
:func:`seal`) and read by inference (:func:`read_encoder`, :func:`read_head`).

A Lightning ``.ckpt`` of :class:`~mixrep.training.contrastive.ContrastiveStyleModule` carries a
``"mixrep"`` section (plain builtins, so ``torch.load(weights_only=True)`` reads it)::

    {"kind": "mixrep.style_encoder", "version": 3,
     "encoder_class": "mixrep.models.encoder.MixStyleEncoder",
     "encoder_config": {...EncoderConfig fields...},
     "frontend": {...FrontEndConfig fields...},
     "content_hash": "<16 hex digits of the encoder weights>",
     "metadata_hash": "<16 hex digits of everything else read at load time>"}

and the encoder's weights under ``state_dict`` with the prefix ``encoder.``. A head checkpoint
(:class:`~mixrep.training.regression.RegressionModule`) carries, next to that encoder, a
``"mixrep_head"`` section::

    {"kind": "mixrep.regression_head", "version": 1, "head_config": {...HeadConfig...},
     "console": {...ConsoleSpec...}, "trained_against_encoder": "<encoder hash>",
     "finetuned_encoder": false, "content_hash": "<hash of the head weights>"}

with the head's weights under the prefix ``head.``. This module owns both directions of both
sections, so loading needs neither Lightning nor anything else above the models layer.

The two hashes cover every part of the file that loading reads (:data:`SEALED_SECTIONS`: this
section, a regression head's ``"mixrep_head"`` and the data-module hyper-parameters), so an edited
or damaged checkpoint is refused. They detect damage and careless edits, not an attacker, who can
recompute them: safety rests on what a checkpoint can do, not on the hashes. A checkpoint is read
with ``torch.load(weights_only=True)`` and nothing in it names a file that gets loaded: it may name
a pretrained separator, never a weights file (see :mod:`mixrep.inference.style_encoder`). Version 2 files (no
``metadata_hash``) still load, with their weights checked.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from mixrep.console.spec import ConsoleSpec
from mixrep.errors import CheckpointError
from mixrep.files import digest
from mixrep.models.encoder import EncoderConfig, MixStyleEncoder
from mixrep.models.head import HeadConfig, RegressionHead

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "mixrep.style_encoder"
CHECKPOINT_VERSION = 3
"""3: adds ``metadata_hash``; 2: the full front-end config (version 1 stored five of its fields; all load)."""
SEALED_SECTIONS = ("mixrep", "mixrep_head", "datamodule_hyper_parameters")
"""The checkpoint entries besides the weights that loading reads: :func:`metadata_hash` covers them."""
WEIGHTS_PREFIX = "encoder."
ENCODER_CLASSES: dict[str, type[MixStyleEncoder]] = {
    f"{MixStyleEncoder.__module__}.{MixStyleEncoder.__qualname__}": MixStyleEncoder,
}
"""Encoder classes a checkpoint may name, by import path."""


def _state_parts(state_dict: dict[str, torch.Tensor]) -> Iterator[bytes | str]:
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        yield f"{name}:{tensor.dtype}:{tuple(tensor.shape)}"
        buffer = io.BytesIO()
        np.save(buffer, tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy())
        yield buffer.getvalue()


def state_dict_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 (first 16 hex digits) of a state dict's names, dtypes, shapes and values."""
    return digest(_state_parts(state_dict), "sha256", digits=16)


def prefixed_weights(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state_dict`` under ``prefix``, with the prefix removed."""
    return {k.removeprefix(prefix): v for k, v in state_dict.items() if k.startswith(prefix)}


def checked_weights(checkpoint: dict, prefix: str, recorded_hash: str | None, where: str,
                    what: str) -> dict[str, torch.Tensor]:
    """A checkpoint's weights under ``prefix``, refused unless they match ``recorded_hash``.

    Raises:
        CheckpointError: the weights' hash differs (naming ``what`` and ``where``).
    """
    weights = prefixed_weights(checkpoint.get("state_dict", {}), prefix)
    if state_dict_hash(weights) != recorded_hash:
        raise CheckpointError(f"{where}: {what} do not match their recorded hash {recorded_hash} "
                              f"(file modified or corrupt)")
    return weights


def metadata_hash(checkpoint: dict) -> str:
    """SHA-256 (first 16 hex digits) of the :data:`SEALED_SECTIONS` a checkpoint holds, less the hash itself.

    Canonical JSON (sorted keys; tuples as lists; anything else by ``str``), so the value survives
    ``torch.save``/``torch.load`` unchanged.
    """
    sealed = {key: checkpoint[key] for key in SEALED_SECTIONS if key in checkpoint}
    sealed["mixrep"] = {k: v for k, v in dict(sealed.get("mixrep", {})).items() if k != "metadata_hash"}
    return digest(json.dumps(sealed, sort_keys=True, default=str), "sha256", digits=16)


def seal(checkpoint: dict) -> None:
    """Record :func:`metadata_hash` in the checkpoint's ``"mixrep"`` section; call it last, once every
    sealed section is written (Lightning writes the data-module hyper-parameters before the module's
    ``on_save_checkpoint`` hook)."""
    checkpoint["mixrep"]["metadata_hash"] = metadata_hash(checkpoint)


def check_metadata(checkpoint: dict, where: str) -> None:
    """Refuse a version-3 checkpoint whose sealed sections do not match their recorded hash.

    Raises:
        CheckpointError: naming the file and what to do.
    """
    meta = checkpoint.get("mixrep") if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("version"), int) or meta["version"] < 3:
        return  # written before the metadata hash: only its weights are checked
    recorded = meta.get("metadata_hash")
    if recorded != metadata_hash(checkpoint):
        raise CheckpointError(f"{where}: its settings ({', '.join(SEALED_SECTIONS)}) do not match their recorded "
                              f"hash {recorded} (file modified or corrupt); nothing was loaded from it: use the "
                              f"checkpoint as training wrote it")


def encoder_section(encoder: MixStyleEncoder, frontend: dict, state_dict: dict[str, torch.Tensor]) -> dict:
    """The ``"mixrep"`` section describing ``encoder`` and the front-end config dict it was trained with.

    The content hash is that of the weights the checkpoint stores (``state_dict``, the module's
    under ``encoder.``), not of ``encoder``'s own: with weight averaging (EMA) the two differ.
    """
    return {
        "kind": CHECKPOINT_KIND,
        "version": CHECKPOINT_VERSION,
        "encoder_class": f"{type(encoder).__module__}.{type(encoder).__qualname__}",
        "encoder_config": {k: list(v) if isinstance(v, tuple) else v for k, v in encoder.config.to_dict().items()},
        "frontend": dict(frontend),
        "content_hash": state_dict_hash(prefixed_weights(state_dict, WEIGHTS_PREFIX)),
    }


def encoder_config_from_dict(data: dict, where: str) -> EncoderConfig:
    """:class:`EncoderConfig` from a checkpoint's dict; unknown fields are dropped with a warning."""
    data = dict(data)
    known = set(EncoderConfig.__dataclass_fields__)
    for name in sorted(set(data) - known):
        log.warning("%s: ignoring unknown encoder argument %r", where, name)
        data.pop(name)
    for name in ("channels", "pool_size"):
        if name in data:
            data[name] = tuple(data[name])
    return EncoderConfig(**data)


def read_encoder(checkpoint: dict, where: str) -> tuple[MixStyleEncoder, dict, str]:
    """Rebuild the encoder a checkpoint describes and check its weights.

    Args:
        checkpoint: the loaded checkpoint dict.
        where: the file it came from (for messages).

    Returns:
        ``(encoder, frontend config dict, content hash)``; the encoder is on the CPU in eval mode.

    Raises:
        CheckpointError: no ``mixrep`` section of the right kind, an unknown encoder class or
            version, or weights or settings that do not match their recorded hashes.
    """
    meta = checkpoint.get("mixrep") if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict) or meta.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(f"{where} is not a mixrep style-encoder checkpoint (no 'mixrep' section of kind "
                              f"{CHECKPOINT_KIND!r}); pass a checkpoint written by `bash scripts/train.sh`")
    version = meta.get("version", 1)
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(f"{where} is a version {version} checkpoint; this mixrep reads versions up to "
                              f"{CHECKPOINT_VERSION}: upgrade mixrep")
    class_name = meta.get("encoder_class")
    if class_name not in ENCODER_CLASSES:
        raise CheckpointError(f"{where} holds an encoder of class {class_name!r}, which this mixrep does not know "
                              f"(known: {', '.join(ENCODER_CLASSES)}); use the mixrep version that trained it")
    try:
        config = encoder_config_from_dict(meta["encoder_config"], where)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: unreadable encoder config {meta.get('encoder_config')!r}: {e}") from e
    check_metadata(checkpoint, where)
    weights = checked_weights(checkpoint, WEIGHTS_PREFIX, meta.get("content_hash"), where, "the weights")
    encoder = ENCODER_CLASSES[class_name](config)
    try:
        encoder.load_state_dict(weights)
    except RuntimeError as e:  # weights of another architecture than the config describes
        raise CheckpointError(f"{where}: its weights do not fit the encoder its config describes ({e}); use the "
                              f"mixrep version that trained it") from e
    return encoder.eval(), dict(meta.get("frontend", {})), meta["content_hash"]


def inference_copy(checkpoint: dict, where: str) -> dict:
    """What inference reads of a style-encoder checkpoint, and nothing else: the ``"mixrep"`` section,
    the sealed data-module settings and the encoder's weights (no optimizer state, loops or callbacks).
    The recorded hashes still hold, so the copy loads and verifies like the original.

    Raises:
        CheckpointError: the checkpoint does not verify (:func:`read_encoder`'s checks).
    """
    read_encoder(checkpoint, where)  # refuse to copy what would not load
    copy = {key: checkpoint[key] for key in SEALED_SECTIONS if key in checkpoint}
    copy["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith(WEIGHTS_PREFIX)}
    return copy


HEAD_KIND = "mixrep.regression_head"
HEAD_VERSION = 1
HEAD_WEIGHTS_PREFIX = "head."


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
    weights = checked_weights(checkpoint, HEAD_WEIGHTS_PREFIX, meta.get("content_hash"), where, "the head weights")
    head = RegressionHead(config)
    head.load_state_dict(weights)
    return HeadCheckpoint(head.eval(), console, str(meta.get("trained_against_encoder")),
                          bool(meta.get("finetuned_encoder")), meta["content_hash"])


def head_section(head_config: HeadConfig, console: ConsoleSpec, state_dict: dict, encoder_hash: str,
                 finetuned_encoder: bool) -> dict:
    """The ``"mixrep_head"`` section of a head checkpoint (what :func:`read_head` reads back)."""
    return {
        "kind": HEAD_KIND, "version": HEAD_VERSION, "head_config": head_config.to_dict(),
        "console": console.to_dict(), "trained_against_encoder": encoder_hash,
        "finetuned_encoder": bool(finetuned_encoder),
        "content_hash": state_dict_hash(prefixed_weights(state_dict, HEAD_WEIGHTS_PREFIX)),
    }

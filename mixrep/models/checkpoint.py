"""What a style-encoder checkpoint says about itself: written by training, read by the API.

A Lightning ``.ckpt`` of :class:`~mixrep.training.contrastive.ContrastiveStyleModule` carries a
``"mixrep"`` section (plain builtins, so ``torch.load(weights_only=True)`` reads it)::

    {"kind": "mixrep.style_encoder", "version": 2,
     "encoder_class": "mixrep.models.encoder.MixStyleEncoder",
     "encoder_config": {...EncoderConfig fields...},
     "frontend": {...FrontEndConfig fields...},
     "content_hash": "<16 hex digits of the encoder weights>"}

and the encoder's weights under ``state_dict`` with the prefix ``encoder.``. This module owns
both directions (:func:`encoder_section`, :func:`read_encoder`), so loading needs neither
Lightning nor anything else above the models layer.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import numpy as np
import torch

from mixrep.errors import CheckpointError
from mixrep.files import digest
from mixrep.models.encoder import EncoderConfig, MixStyleEncoder

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "mixrep.style_encoder"
CHECKPOINT_VERSION = 2
"""2: the full front-end config (version 1 stored five of its fields; both load)."""
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
            version, or weights that do not match their recorded hash.
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
    weights = checked_weights(checkpoint, WEIGHTS_PREFIX, meta.get("content_hash"), where, "the weights")
    encoder = ENCODER_CLASSES[class_name](config)
    encoder.load_state_dict(weights)
    return encoder.eval(), dict(meta.get("frontend", {})), meta["content_hash"]

"""Callbacks: the style-retrieval validation metric."""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import torch

from mixrep.eval.metrics import style_retrieval_scores
from mixrep.eval.style_set import StyleSet, build_style_set

log = logging.getLogger(__name__)


@torch.no_grad()
def embed_style_set(encoder: torch.nn.Module, style_set: StyleSet, batch_size: int = 32) -> np.ndarray:
    """L2-normalised embeddings ``(items, dim)`` of every item, in eval mode."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    try:
        chunks = [encoder.embed(style_set.mels[i:i + batch_size].to(device),
                                style_set.features[i:i + batch_size].to(device)).float().cpu()
                  for i in range(0, len(style_set), batch_size)]
    finally:
        encoder.train(was_training)
    return torch.cat(chunks).numpy()


class StyleRetrievalEval(L.Callback):
    """Logs ``val/map``, ``val/recall_at_1`` and ``val/style_over_song`` after every validation.

    The set (held-out ``val`` songs x random mixing styles, see :mod:`mixrep.eval.style_set`)
    is rendered once from the data module's source with its front-end settings.

    Args:
        num_songs: held-out songs in the set.
        num_styles: mixing styles applied to each of them.
        seed: seed of the clip offsets and styles.
    """

    def __init__(self, num_songs: int = 16, num_styles: int = 8, seed: int = 1234) -> None:
        self.num_songs, self.num_styles, self.seed = num_songs, num_styles, seed
        self.style_set: StyleSet | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.style_set is not None:
            return
        dm = trainer.datamodule
        frontend = pl_module.frontend()
        self.style_set = build_style_set(
            dm.source, split="val", num_songs=self.num_songs, num_styles=self.num_styles,
            clip_seconds=frontend["clip_seconds"], n_mels=frontend["n_mels"], n_fft=frontend["n_fft"],
            hop_length=frontend["hop_length"], augment=dm.augment, seed=self.seed)
        log.info("style-retrieval set: %d songs x %d styles", len(self.style_set.track_ids), self.num_styles)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert self.style_set is not None
        embeddings = embed_style_set(pl_module.encoder, self.style_set)
        scores = style_retrieval_scores(embeddings, self.style_set.song_ids, self.style_set.style_ids)
        # Every process computes the same values on the same set: no reduction needed.
        pl_module.log("val/map", scores.map, prog_bar=True)
        pl_module.log("val/recall_at_1", scores.recall_at_1)
        pl_module.log("val/style_over_song", scores.style_over_song)

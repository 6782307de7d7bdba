"""Callbacks: the style-retrieval validation metric."""

from __future__ import annotations

import logging

import lightning as L

from mixrep.eval.metrics import style_retrieval_scores
from mixrep.eval.style_set import StyleSet, build_style_set, embed_style_set

log = logging.getLogger(__name__)


class StyleRetrievalEval(L.Callback):
    """Logs ``val/map``, ``val/recall_at_1`` and ``val/style_over_song`` after every validation.

    The set (held-out ``val`` songs x random mixing styles, see :mod:`mixrep.eval.style_set`)
    is rendered once, at the first validation, from the data module's source and encoded by the
    model's own front end on the model's device.

    Args:
        num_songs: held-out songs in the set.
        num_styles: mixing styles applied to each of them.
        seed: seed of the clip offsets and styles.
    """

    def __init__(self, num_songs: int = 16, num_styles: int = 8, seed: int = 1234) -> None:
        self.num_songs, self.num_styles, self.seed = num_songs, num_styles, seed
        self.style_set: StyleSet | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.style_set is None:
            dm = trainer.datamodule
            self.style_set = build_style_set(dm.source, pl_module.frontend, split="val", num_songs=self.num_songs,
                                             num_styles=self.num_styles, augment=dm.augment, seed=self.seed)
            log.info("style-retrieval set: %d songs x %d styles", len(self.style_set.track_ids), self.num_styles)
        embeddings = embed_style_set(pl_module.encoder, self.style_set)
        scores = style_retrieval_scores(embeddings, self.style_set.song_ids, self.style_set.style_ids)
        # Every process computes the same values on the same set: no reduction needed.
        pl_module.log("val/map", scores.map, prog_bar=True)
        pl_module.log("val/recall_at_1", scores.recall_at_1)
        pl_module.log("val/style_over_song", scores.style_over_song)

"""Callbacks: the style-retrieval validation metric."""

from __future__ import annotations

import logging
import time

import lightning as L

from mixrep.retrieval.metrics import style_retrieval_scores
from mixrep.retrieval.style_set import StyleSet, build_style_set, embed_style_set

log = logging.getLogger(__name__)


class StyleRetrievalEval(L.Callback):
    """Logs ``val/map``, ``val/recall_at_1`` and ``val/style_over_song`` after every validation.

    The set (held-out ``val`` songs x random mixing styles, see :mod:`mixrep.retrieval.style_set`)
    is rendered once, at the first validation, from the data module's source with styles of the
    data module's style space (``data.styles``: what training draws from) and encoded by the
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
                                             num_styles=self.num_styles, styles=dm.style_space, seed=self.seed)
            log.info("style-retrieval set: %d songs x %d styles", len(self.style_set.track_ids), self.num_styles)
        embeddings = embed_style_set(pl_module.encoder, self.style_set)
        scores = style_retrieval_scores(embeddings, self.style_set.song_ids, self.style_set.style_ids)
        # Every process computes the same values on the same set: no reduction needed.
        pl_module.log("val/map", scores.map, prog_bar=True)
        pl_module.log("val/recall_at_1", scores.recall_at_1)
        pl_module.log("val/style_over_song", scores.style_over_song)


class TrainingTimer(L.Callback):
    """Where a training run's wall time goes: waiting for batches vs computing steps.

    The data wait of a step is the time from the end of the previous step (or the start of the
    epoch) to the start of this one: the DataLoader's ``next`` (workers not keeping up) plus the
    host-to-device copy; the step time runs from batch start to batch end (front end, forward,
    backward, optimizer). Logged per step as ``time/data_wait_s`` and ``time/step_s``; the totals
    (and steps per second) are in :attr:`summary` after fitting and printed by the CLI.
    """

    def __init__(self) -> None:
        self.data_seconds = self.step_seconds = 0.0
        self.steps = 0
        self.fit_seconds = 0.0
        self._mark: float | None = None
        self._batch_start = 0.0
        self._fit_start = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._mark = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._batch_start = time.perf_counter()
        if self._mark is not None:
            wait = self._batch_start - self._mark
            self.data_seconds += wait
            pl_module.log("time/data_wait_s", wait, on_step=True, on_epoch=False, batch_size=1)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._mark = time.perf_counter()
        step = self._mark - self._batch_start
        self.step_seconds += step
        self.steps += 1
        pl_module.log("time/step_s", step, on_step=True, on_epoch=False, batch_size=1)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_seconds = time.perf_counter() - self._fit_start

    @property
    def summary(self) -> dict[str, float]:
        """``steps``, ``fit_seconds`` (all of ``fit``: validation and checkpoints too),
        ``data_seconds``, ``step_seconds``, ``steps_per_second`` (over data + step time)."""
        busy = self.data_seconds + self.step_seconds
        return {"steps": self.steps, "fit_seconds": self.fit_seconds, "data_seconds": self.data_seconds,
                "step_seconds": self.step_seconds, "steps_per_second": self.steps / busy if busy else 0.0}

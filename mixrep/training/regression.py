"""Stage 2: the LightningModule training :class:`~mixrep.models.head.RegressionHead`.

Each step embeds the references with the frozen style encoder (fine-tunable with
``finetune_encoder``), predicts every strip's and bus's raw parameters, renders the B songs'
consoles in one pass (:class:`~mixrep.console.ConsoleBatch`), and minimises

* the console's audio loss (:class:`~mixrep.console.MixLoss`) between the rendered prediction
  and the target, both RMS-normalised (a mix's absolute level carries no style; ``mixrep mix``
  sets the loudness at the end), plus
* ``parameter_weight`` x the parameter loss where theta is known (console references): the L1
  distance of prediction and truth in normalised raw units (each raw value's position in its
  safe range; raw units are dB, log-time, log-ratio, so this is a normalised physical scale),
  averaged per processor type, then over types.

Both are logged to TensorBoard with the physical errors of gain (dB, relative to the song's mean)
and pan. Checkpoints describe themselves: the encoder (``"mixrep"`` section, weights under
``encoder.``, so :class:`~mixrep.inference.style_encoder.StyleEncoder` loads it from the head checkpoint too) and the
head (``"mixrep_head"`` section: head config, console spec, the hash of the encoder it was trained
against, weights under ``head.``).
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from mixrep.console import ConsoleBatch, MixLoss, rms_normalise
from mixrep.console.spec import ConsoleSpec
from mixrep.console.strips import StripLayout
from mixrep.errors import CheckpointError
from mixrep.inference.style_encoder import StyleEncoder
from mixrep.models.checkpoint import encoder_section, head_section, seal
from mixrep.models.head import HeadConfig, RegressionHead
from mixrep.training.head_data import TransferBatch, collate_transfer
from mixrep.training.runs import file_sha256, resolve_encoder_checkpoint
from mixrep.training.schedules import warmup_cosine


def parameter_loss(pred: Tensor, truth: Tensor, valid: Tensor, layout: StripLayout,
                   active: Tensor | None = None) -> Tensor:
    """Mean over processor types of the mean normalised L1 error on valid rows where that
    processor is active (an inactive processor's settings are not ground truth).

    Shape:
        pred, truth ``(B, S, size)``; valid ``(B, S)`` bool; active ``(B, S, types)`` -> scalar
        (0 when nothing is valid).
    """
    error = (layout.normalise(pred) - layout.normalise(truth)).abs()
    terms = []
    for i, cols in enumerate(layout.type_slices().values()):
        rows = valid if active is None else valid & (active[..., i] > 0.5)
        if bool(rows.any()):
            terms.append(error[rows][:, cols].mean())
    return torch.stack(terms).mean() if terms else pred.new_zeros(())


def keep_loss(logits: Tensor, keep: Tensor, valid: Tensor) -> Tensor:
    """Binary cross-entropy of graph prediction on valid rows: logits, keep ``(B, S, types)``."""
    if not bool(valid.any()):
        return logits.new_zeros(())
    return torch.nn.functional.binary_cross_entropy_with_logits(logits[valid], keep[valid])


def gain_pan_errors(pred: Tensor, truth: Tensor, valid: Tensor, layout: StripLayout, processor) -> dict[str, Tensor]:
    """Relative gain error (dB, each song's mean removed) and pan error of the gain/pan strips.

    Shape:
        pred, truth ``(B, K, size)`` track rows, valid ``(B, K)`` -> scalars ``gain_mae_db``, ``pan_mae``.
    """
    entry = next(e for e in layout.entries if e.node_type == "gain_pan" and e.name == "log_gain")
    cols = slice(entry.offset, entry.offset + entry.size)
    p = processor.to_physical(log_gain=pred[..., cols])
    t = processor.to_physical(log_gain=truth[..., cols])
    w = valid.to(pred.dtype)
    count = w.sum(1, keepdim=True).clamp(min=1.0)

    def rel(g: Tensor) -> Tensor:  # each song's mean removed
        return g - (g * w).sum(1, keepdim=True) / count

    n = w.sum().clamp(min=1.0)
    return {"gain_mae_db": ((rel(p["gain_db"]) - rel(t["gain_db"])).abs() * w).sum() / n,
            "pan_mae": ((p["pan"] - t["pan"]).abs() * w).sum() / n}


class RegressionModule(L.LightningModule):
    """Trains a regression head against a frozen (or fine-tuned) style encoder.

    Args:
        encoder_checkpoint: a style-encoder checkpoint (``mixrep train encoder`` writes one), or ``demo``: the
            best one ``make demo`` recorded (:func:`~mixrep.training.runs.resolve_encoder_checkpoint`); the
            hyperparameters hold its absolute path.
        encoder_sha256: the sha256 that file must have (a saved config's); ``None``: recorded, not checked.
        finetune_encoder: train the encoder too (at ``lr * encoder_lr_ratio``).
        sample_rate, chain, group_chain, processor_options: the console (linked from the data module).
        n_mels, channels, track_dim, hidden, basis_size: the head (:class:`HeadConfig`).
        reference_features: give the head the reference's front-end mix features next to its
            embedding (per-stem loudness, spectrum, stereo, dynamics).
        start_items: training items drawn before the first step to standardise the reference
            vectors and to start the head at the mean training parameters (0: transparent start).
        audio_weight, parameter_weight, keep_weight: weights of the audio loss, the parameter loss
            and the graph-prediction loss (binary cross-entropy of each processor being active).
        lr, weight_decay, warmup_steps, min_lr_ratio: AdamW with warmup + cosine decay.
    """

    def __init__(self, encoder_checkpoint: str, encoder_sha256: str | None = None, finetune_encoder: bool = False,
                 encoder_lr_ratio: float = 0.1, sample_rate: int = 22050, chain: str = "ecnsgdr",
                 group_chain: str = "ecnsgdr", processor_options: dict | None = None, n_mels: int = 64,
                 channels: tuple[int, ...] = (16, 32, 64), track_dim: int = 128, hidden: int = 256,
                 basis_size: int = 12, reference_features: bool = True, start_items: int = 64, audio_weight: float = 1.0,
                 parameter_weight: float = 1.0, keep_weight: float = 0.1, lr: float = 1e-3, weight_decay: float = 0.01,
                 warmup_steps: int = 20, min_lr_ratio: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        encoder_checkpoint = resolve_encoder_checkpoint(encoder_checkpoint)
        sha256 = file_sha256(encoder_checkpoint)
        if encoder_sha256 is not None and encoder_sha256 != sha256:
            raise CheckpointError(f"the style encoder {encoder_checkpoint} has sha256 {sha256}, not the "
                                  f"{encoder_sha256} this run's config names: the file changed since that config was "
                                  f"written. Pass the encoder it names, or --model.encoder_sha256 null to train "
                                  f"against this one")
        self.hparams.update(encoder_checkpoint=str(encoder_checkpoint), encoder_sha256=sha256)
        style = StyleEncoder.from_checkpoint(encoder_checkpoint, device="cpu")
        if style.sample_rate != sample_rate:
            raise CheckpointError(f"the encoder {encoder_checkpoint} runs at {style.sample_rate} Hz but the console at "
                                  f"{sample_rate} Hz; set data.sample_rate to {style.sample_rate}")
        self.encoder, self.frontend = style.model, style.frontend
        self.frontend_config = style.frontend.config
        self.encoder_hash = style.model_hash
        self.encoder.requires_grad_(finetune_encoder)
        options = {"eq": {"bins": 256}, "reverb": {"ir_seconds": 1.5}} if processor_options is None else processor_options
        self.console_spec = ConsoleSpec(sample_rate, chain, group_chain, options)
        self.processors = torch.nn.ModuleDict(self.console_spec.processors())
        self.track_layout, self.group_layout = self.console_spec.layouts(dict(self.processors))
        features = self.frontend.num_features if reference_features else 0
        self.head_config = HeadConfig(tuple(self.track_layout.describe()), tuple(self.group_layout.describe()),
                                      style.embedding_dim + features, sample_rate, reference_features=features,
                                      feature_names=tuple(self.frontend.feature_names) if features else (),
                                      n_mels=n_mels, channels=tuple(channels),
                                      track_dim=track_dim, hidden=hidden, basis_size=basis_size)
        self.head = RegressionHead(self.head_config)
        self.register_buffer("prepared", torch.zeros((), dtype=torch.bool))
        self.mix_loss = MixLoss(sample_rate)
        self._batches: dict[tuple, ConsoleBatch] = {}

    # ------------------------------------------------------------------ forward pieces
    def embed(self, reference: Tensor) -> Tensor:
        """``(B, 4, 2, samples)`` reference stems -> ``(B, reference_dim)`` reference vectors: the
        style embedding, then the mix features when ``reference_features`` is set."""
        with torch.set_grad_enabled(self.hparams.finetune_encoder and self.training):
            mel, features = self.frontend(reference)
            embedding = self.encoder.embed(mel, features)
        return torch.cat([embedding, features], -1) if self.head_config.reference_features else embedding

    @torch.no_grad()
    def start_from(self, items: list[dict]) -> None:
        """Standardise the reference vectors and start the head at the mean parameters of ``items``."""
        batch = collate_transfer(items).to(self.device)
        self.head.set_reference_statistics(self.embed(batch.reference))
        known = batch.has_theta
        if bool(known.any()):
            tracks = batch.track_theta[batch.track_mask & known[:, None]]
            groups = batch.group_theta[(batch.group_theta != 0).any(-1) & known[:, None]]
            self.head.track_decoder.start_at(tracks.mean(0))
            self.head.group_decoder.start_at(groups.mean(0))
            group_rows = (batch.group_theta != 0).any(-1) & known[:, None]
            self.head.start_keep_at(batch.track_keep[batch.track_mask & known[:, None]].mean(0),
                                    batch.group_keep[group_rows].mean(0))
        self.prepared.fill_(True)

    def on_fit_start(self) -> None:
        if bool(self.prepared) or not self.hparams.start_items:
            return  # resumed, or a transparent start
        data = self.trainer.datamodule.dataset("train", self.hparams.start_items)
        self.start_from([data[i] for i in range(self.hparams.start_items)])

    def console_batch(self, names: list[list[str]], stems: list[list[str]]) -> ConsoleBatch:
        key = tuple((tuple(n), tuple(s)) for n, s in zip(names, stems))
        if key not in self._batches:
            if len(self._batches) > 256:
                self._batches.clear()
            self._batches[key] = ConsoleBatch([self.console_spec.graph(n, s) for n, s in zip(names, stems)])
        return self._batches[key]

    def render(self, batch: TransferBatch, track_rows: Tensor, group_rows: Tensor, group_mask: Tensor) -> Tensor:
        """Render every song of the batch with predicted rows: ``(B, 2, samples)``."""
        consoles = self.console_batch(batch.names, batch.stems)
        params = consoles.params_from_strips(self.track_layout.unflatten(track_rows),
                                             self.group_layout.unflatten(group_rows), batch.track_mask, group_mask)
        return consoles.render(batch.tracks, params, dict(self.processors), track_mask=batch.track_mask).outputs

    def losses(self, batch: TransferBatch) -> dict[str, Tensor]:
        reference = self.embed(batch.reference)
        out = self.head(batch.tracks, batch.track_mask, batch.groups, reference)
        mix = self.render(batch, out.track_rows, out.group_rows, out.group_mask)
        audio = self.mix_loss(rms_normalise(mix), rms_normalise(batch.target))
        known = batch.has_theta
        track_valid = batch.track_mask & known[:, None]
        group_valid = out.group_mask & known[:, None]
        param = (parameter_loss(out.track_rows, batch.track_theta, track_valid, self.track_layout, batch.track_keep)
                 + parameter_loss(out.group_rows, batch.group_theta, group_valid, self.group_layout, batch.group_keep)) / 2
        keep = (keep_loss(out.track_keep, batch.track_keep, track_valid)
                + keep_loss(out.group_keep, batch.group_keep, group_valid)) / 2
        result = {"loss": self.hparams.audio_weight * audio + self.hparams.parameter_weight * param
                  + self.hparams.keep_weight * keep, "audio_loss": audio, "parameter_loss": param, "keep_loss": keep}
        if bool(known.any()):
            result.update(gain_pan_errors(out.track_rows, batch.track_theta, track_valid, self.track_layout,
                                          self.processors["gain_pan"]))
        return result

    # ------------------------------------------------------------------ Lightning hooks
    def training_step(self, batch: TransferBatch, batch_idx: int) -> Tensor:
        terms = self.losses(batch)
        for name, value in terms.items():
            self.log(f"train/{name}", value, prog_bar=name in ("loss", "gain_mae_db"), batch_size=len(batch.kinds))
        return terms["loss"]

    def validation_step(self, batch: TransferBatch, batch_idx: int) -> None:
        terms = self.losses(batch)
        for name, value in terms.items():
            self.log(f"val/{name}", value, prog_bar=name == "audio_loss", batch_size=len(batch.kinds))

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        return batch.to(device) if isinstance(batch, TransferBatch) else super().transfer_batch_to_device(
            batch, device, dataloader_idx)

    def configure_optimizers(self):
        groups = [{"params": self.head.parameters(), "lr": self.hparams.lr}]
        if self.hparams.finetune_encoder:
            groups.append({"params": self.encoder.parameters(), "lr": self.hparams.lr * self.hparams.encoder_lr_ratio})
        optimizer = torch.optim.AdamW(groups, weight_decay=self.hparams.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(
            step, self.hparams.warmup_steps, total, self.hparams.min_lr_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["mixrep"] = encoder_section(self.encoder, self.frontend_config.to_dict(), checkpoint["state_dict"])
        checkpoint["mixrep_head"] = head_section(self.head_config, self.console_spec, checkpoint["state_dict"],
                                                 self.encoder_hash, self.hparams.finetune_encoder)
        seal(checkpoint)

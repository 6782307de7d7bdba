"""Stage 1: the contrastive LightningModule training :class:`~mixrep.models.encoder.MixStyleEncoder`."""

from __future__ import annotations

import hashlib
import io

import lightning as L
import numpy as np
import torch

from mixrep.audio.features import num_features
from mixrep.constants import SAMPLE_RATE
from mixrep.models.encoder import EncoderConfig, MixStyleEncoder
from mixrep.training.losses import info_nce
from mixrep.training.schedules import warmup_cosine

CHECKPOINT_KIND = "mixrep.style_encoder"
CHECKPOINT_VERSION = 1


def state_dict_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 (first 16 hex digits) of a state dict's names, dtypes, shapes and values."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        buffer = io.BytesIO()
        np.save(buffer, tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy())
        digest.update(buffer.getvalue())
    return digest.hexdigest()[:16]


class ContrastiveStyleModule(L.LightningModule):
    """Trains the style encoder with InfoNCE on (anchor, positive, negative) triplets.

    Args:
        n_mels, band_size, band_overlap, channels, embedding_dim, use_film, band_split, pooling,
            dropout: encoder hyperparameters (see :class:`~mixrep.models.encoder.EncoderConfig`).
        temperature: InfoNCE temperature.
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warmup steps before the cosine decay.
        min_lr_ratio: final learning rate as a share of ``lr``.
        gather_negatives: under DDP, gather every process's triplets so each anchor sees the
            whole global batch as negatives (gradients flow through the gather).
        sample_rate, n_fft, hop_length, clip_seconds: the front end the encoder was trained
            with; linked from the data module by the CLI and stored in checkpoints.
        seed: seeds the per-step RNG (dropout) so a resumed run continues identically.
    """

    def __init__(self, n_mels: int = 128, band_size: int = 20, band_overlap: int = 10,
                 channels: tuple[int, int] = (32, 64), embedding_dim: int = 768, use_film: bool = True,
                 band_split: bool = True, pooling: str = "attention", dropout: float = 0.1,
                 temperature: float = 0.1, lr: float = 2e-4, weight_decay: float = 0.01, warmup_steps: int = 500,
                 min_lr_ratio: float = 0.01, gather_negatives: bool = True, sample_rate: int = SAMPLE_RATE,
                 n_fft: int = 2048, hop_length: int = 512, clip_seconds: float = 4.0, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder_config = EncoderConfig(
            num_features=num_features(), n_mels=n_mels, band_size=band_size, band_overlap=band_overlap,
            channels=tuple(channels), embedding_dim=embedding_dim, use_film=use_film, band_split=band_split,
            pooling=pooling, dropout=dropout)
        self.encoder = MixStyleEncoder(self.encoder_config)

    def forward(self, mel: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings ``(batch, embedding_dim)`` of ``(batch, 8, n_mels, frames)`` mels."""
        return self.encoder.embed(mel, features)

    def _embed_triplets(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        # One forward pass over all three sides: BatchNorm sees the whole batch at once.
        sides = ("anchor", "positive", "negative")
        mel = torch.cat([batch[f"{s}_mel"] for s in sides])
        features = torch.cat([batch[f"{s}_features"] for s in sides])
        return self.encoder(mel, features).chunk(3)

    def _gather(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not (self.hparams.gather_negatives and self.trainer.world_size > 1):
            return tensors
        return tuple(self.all_gather(t, sync_grads=True).flatten(0, 1) for t in tensors)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Dropout is a function of (seed, step): a resumed run continues identically.
        torch.manual_seed(self.hparams.seed * 1_000_003 + self.global_step)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        anchor, positive, negative = self._embed_triplets(batch)
        out = info_nce(*self._gather(anchor, positive, negative), temperature=self.hparams.temperature)
        if not torch.isfinite(out.loss):
            tracks = batch["track_index"].tolist()
            raise FloatingPointError(
                f"non-finite training loss ({out.loss.item()}) at epoch {self.current_epoch}, batch {batch_idx} "
                f"(global step {self.global_step}, track indices {tracks}); stopping before a checkpoint "
                f"is written. Lower the learning rate or inspect these tracks with `mixrep data preview`.")
        size = anchor.shape[0]
        self.log("train/loss", out.loss, prog_bar=True, batch_size=size)
        self.log("train/acc", out.accuracy, prog_bar=True, batch_size=size)
        self.log("train/embedding_norm", anchor.detach().norm(dim=-1).mean(), batch_size=size)
        return out.loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        anchor, positive, negative = self._embed_triplets(batch)
        out = info_nce(anchor, positive, negative, temperature=self.hparams.temperature)
        size = anchor.shape[0]
        self.log("val/loss", out.loss, sync_dist=True, batch_size=size)
        self.log("val/acc", out.accuracy, sync_dist=True, batch_size=size)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(self.hparams.warmup_steps, max(1, total // 10))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, warmup, total, self.hparams.min_lr_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def frontend(self) -> dict[str, float | int]:
        """The front-end settings an input must be prepared with."""
        h = self.hparams
        return {"sample_rate": h.sample_rate, "n_mels": h.n_mels, "n_fft": h.n_fft, "hop_length": h.hop_length,
                "clip_seconds": h.clip_seconds}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Self-description read by mixrep.api.StyleEncoder: no Lightning or config files needed.
        weights = {k: v for k, v in self.encoder.state_dict().items()}
        checkpoint["mixrep"] = {
            "kind": CHECKPOINT_KIND,
            "version": CHECKPOINT_VERSION,
            "encoder_class": f"{MixStyleEncoder.__module__}.{MixStyleEncoder.__qualname__}",
            "encoder_config": {k: list(v) if isinstance(v, tuple) else v
                               for k, v in self.encoder_config.to_dict().items()},
            "frontend": self.frontend(),
            "content_hash": state_dict_hash(weights),
        }

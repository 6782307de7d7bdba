"""Stage 1: the contrastive LightningModule training :class:`~mixrep.models.encoder.MixStyleEncoder`."""

from __future__ import annotations

import lightning as L
import torch

from mixrep.constants import SAMPLE_RATE
from mixrep.errors import CheckpointError
from mixrep.frontend import FEATURE_GROUPS, FrontEnd, FrontEndConfig, num_features
from mixrep.models.checkpoint import encoder_config_from_dict, encoder_section, seal
from mixrep.models.encoder import EncoderConfig, MixStyleEncoder
from mixrep.styles.settings_vector import SETTINGS_VERSION
from mixrep.training.losses import info_nce, relative_settings_loss, settings_loss
from mixrep.training.schedules import warmup_cosine
from mixrep.training.triplets import SIDES, encode_triplets


DECODABLE_STYLE_SPACES: tuple[str, ...] = ("mix_style",)
"""The style spaces (:mod:`mixrep.styles.spaces`) whose styles have settings vectors to train decoders on."""
NO_SETTINGS_VECTORS = ("settings_weight > 0 needs training styles with settings vectors: use the data option "
                       "styles: mix_style (the chains style space has none), or settings_weight: 0")


def check_decoder_styles(settings_weight: float, styles: str) -> None:
    """Refuse training settings decoders on a style space without settings vectors, before any data is built.

    Raises:
        ValueError: ``settings_weight > 0`` and ``styles`` is not one of :data:`DECODABLE_STYLE_SPACES`.
    """
    if settings_weight > 0 and styles not in DECODABLE_STYLE_SPACES:
        raise ValueError(f"{NO_SETTINGS_VECTORS} (got styles: {styles})")


class ContrastiveStyleModule(L.LightningModule):
    """Trains the style encoder with InfoNCE on (anchor, positive, negative) triplets.

    Args:
        n_mels, band_size, band_overlap, channels, embedding_dim, use_film, band_split, pooling,
            dropout, feature_branch_dim: encoder hyperparameters (see
            :class:`~mixrep.models.encoder.EncoderConfig`).
        temperature: InfoNCE temperature.
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warmup steps before the cosine decay.
        min_lr_ratio: final learning rate as a share of ``lr``.
        gather_negatives: under DDP, gather every process's triplets so each anchor sees the
            whole global batch as negatives (gradients flow through the gather).
        n_fft, hop_length, f_min, log_floor, features: the front end (see
            :class:`~mixrep.frontend.FrontEndConfig`; ``n_mels`` is shared with the encoder).
        sample_rate, clip_seconds: the stems' rate and clip length, linked from the data module
            by the CLI; with the rest of the front end they are stored in checkpoints.
        seed: seeds the per-step RNG (dropout) so a resumed run continues identically.
        settings_weight: weight of the settings decoder's loss
            (:func:`~mixrep.training.losses.settings_loss`) next to InfoNCE on every side of every
            triplet; ``> 0`` gives the encoder its settings decoders (needs the ``mix_style`` style
            space, whose styles have settings vectors); 0: retrieval only.
        relative_weight: weight of the relative decoder's loss
            (:func:`~mixrep.training.losses.relative_settings_loss`) on two pairs per triplet:
            anchor -> negative (the same song in two styles) and positive -> negative (two songs).
            Used only with ``settings_weight > 0``.
        decoder_hidden_dim, decoder_input: the decoders' width and what they read (see
            :class:`~mixrep.models.encoder.EncoderConfig`).

    Batches hold raw stems (``anchor_stems``...); each step first runs the front end on them on
    the training device (:func:`~mixrep.training.triplets.encode_triplets`), then the encoder.
    """

    def __init__(self, n_mels: int = 128, band_size: int = 20, band_overlap: int = 10,
                 channels: tuple[int, int] = (32, 64), embedding_dim: int = 768, use_film: bool = True,
                 band_split: bool = True, pooling: str = "attention", dropout: float = 0.1,
                 feature_branch_dim: int = 0, temperature: float = 0.1, lr: float = 2e-4, weight_decay: float = 0.01,
                 warmup_steps: int = 500, min_lr_ratio: float = 0.01, gather_negatives: bool = True, sample_rate: int = SAMPLE_RATE,
                 n_fft: int = 2048, hop_length: int = 512, f_min: float = 20.0, log_floor: float = 1e-5,
                 features: tuple[str, ...] = FEATURE_GROUPS, clip_seconds: float = 4.0, seed: int = 0,
                 settings_weight: float = 0.0, relative_weight: float = 0.5, decoder_hidden_dim: int = 256,
                 decoder_input: str = "representation") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.frontend_config = FrontEndConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                                              n_mels=n_mels, f_min=f_min, log_floor=log_floor,
                                              clip_seconds=clip_seconds, features=tuple(features))
        self.frontend = FrontEnd(self.frontend_config)
        self.encoder_config = EncoderConfig(
            num_features=num_features(tuple(features)), n_mels=n_mels, band_size=band_size, band_overlap=band_overlap,
            channels=tuple(channels), embedding_dim=embedding_dim, use_film=use_film, band_split=band_split,
            pooling=pooling, dropout=dropout, feature_branch_dim=feature_branch_dim,
            settings_version=SETTINGS_VERSION if settings_weight > 0 else 0, decoder_hidden_dim=decoder_hidden_dim,
            decoder_input=decoder_input)
        if settings_weight < 0 or relative_weight < 0:
            raise ValueError(f"settings_weight ({settings_weight}) and relative_weight ({relative_weight}) must be >= 0")
        self.encoder = MixStyleEncoder(self.encoder_config)

    def forward(self, mel: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings ``(batch, embedding_dim)`` of ``(batch, 8, n_mels, frames)`` mels."""
        return self.encoder.embed(mel, features)

    def _embed_triplets(self, batch: dict[str, torch.Tensor]) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """Un-normalised embeddings of the three sides, and what the decoders read of them."""
        # The front end runs here, on the training device, on all three sides at once (stems in,
        # log-mel + features out); then one encoder pass, so BatchNorm sees the whole batch.
        batch = encode_triplets(batch, self.frontend)
        mel = torch.cat([batch[f"{s}_mel"] for s in SIDES])
        features = torch.cat([batch[f"{s}_features"] for s in SIDES])
        representation = self.encoder.representation(mel, features)
        projection = self.encoder.projection(representation)
        return projection.chunk(3), self.encoder.decoder_input_of(representation, projection).chunk(3)

    def _gather(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not (self.hparams.gather_negatives and self.trainer.world_size > 1):
            return tensors
        return tuple(self.all_gather(t, sync_grads=True).flatten(0, 1) for t in tensors)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Dropout is a function of (seed, step): a resumed run continues identically.
        torch.manual_seed(self.hparams.seed * 1_000_003 + self.global_step)

    def decoder_losses(self, batch: dict[str, torch.Tensor], inputs: tuple[torch.Tensor, ...]
                       ) -> dict[str, torch.Tensor]:
        """``settings`` and ``relative`` losses of a batch's three sides, from what the decoders read of
        them (``inputs``; empty without decoders).

        Raises:
            ValueError: the encoder has decoders but the batch has no settings vectors (a style
                space without them, such as ``chains``).
        """
        if not self.encoder.decodes_settings:
            return {}
        if "anchor_settings" not in batch:
            raise ValueError(NO_SETTINGS_VECTORS)
        unit = list(inputs)
        targets = [(batch[f"{side}_settings"], batch[f"{side}_settings_mask"]) for side in SIDES]
        settings = sum(settings_loss(self.encoder.decode_settings(e), *t) for e, t in zip(unit, targets)) / 3
        anchor, positive, negative = unit
        (ta, ma), (tp, mp), (tn, mn) = targets
        relative = (relative_settings_loss(self.encoder.decode_relative(anchor, negative), ta, tn, ma, mn)
                    + relative_settings_loss(self.encoder.decode_relative(positive, negative), tp, tn, mp, mn)) / 2
        return {"settings": settings, "relative": relative}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        (anchor, positive, negative), inputs = self._embed_triplets(batch)
        out = info_nce(*self._gather(anchor, positive, negative), temperature=self.hparams.temperature)
        decoded = self.decoder_losses(batch, inputs)
        loss = out.loss
        if decoded:
            loss = loss + self.hparams.settings_weight * decoded["settings"] \
                + self.hparams.settings_weight * self.hparams.relative_weight * decoded["relative"]
        if not torch.isfinite(loss):
            tracks = batch["track_index"].tolist()
            raise FloatingPointError(
                f"non-finite training loss ({loss.item()}) at epoch {self.current_epoch}, batch {batch_idx} "
                f"(global step {self.global_step}, track indices {tracks}); stopping before a checkpoint "
                f"is written. Lower the learning rate or inspect these tracks with `mixrep data preview`.")
        size = anchor.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/info_nce", out.loss, batch_size=size)
        self.log("train/acc", out.accuracy, prog_bar=True, batch_size=size)
        self.log("train/embedding_norm", anchor.detach().norm(dim=-1).mean(), batch_size=size)
        for name, value in decoded.items():
            self.log(f"train/{name}_loss", value, batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        (anchor, positive, negative), inputs = self._embed_triplets(batch)
        out = info_nce(anchor, positive, negative, temperature=self.hparams.temperature)
        size = anchor.shape[0]
        self.log("val/loss", out.loss, sync_dist=True, batch_size=size)
        self.log("val/acc", out.accuracy, sync_dist=True, batch_size=size)
        for name, value in self.decoder_losses(batch, inputs).items():
            self.log(f"val/{name}_loss", value, sync_dist=True, batch_size=size)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(self.hparams.warmup_steps, max(1, total // 10))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, warmup, total, self.hparams.min_lr_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Self-description read by mixrep.inference.style_encoder.StyleEncoder: no Lightning or config files needed.
        checkpoint["mixrep"] = encoder_section(self.encoder, self.frontend_config.to_dict(), checkpoint["state_dict"])
        seal(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse to resume from a checkpoint of another model or front end, naming what differs."""
        meta = checkpoint.get("mixrep")
        if not isinstance(meta, dict):
            return
        where = "the checkpoint being resumed"
        saved_encoder = encoder_config_from_dict(meta.get("encoder_config", {}), where).to_dict()
        saved_frontend = FrontEndConfig.from_dict(meta.get("frontend", {}), where)
        differences = [f"encoder {k}: checkpoint {v!r}, this run {self.encoder_config.to_dict()[k]!r}"
                       for k, v in saved_encoder.items() if self.encoder_config.to_dict()[k] != v]
        differences += [f"front end {k}: checkpoint {saved!r}, this run {current!r}"
                        for k, (saved, current) in saved_frontend.differences(self.frontend_config).items()]
        if differences:
            raise CheckpointError(
                "cannot resume: the checkpoint's model differs from this run's (" + "; ".join(differences) + "). "
                "Resume with the config and --model/--data arguments of the run that wrote it, e.g. "
                "`bash scripts/train.sh --config <its config> --ckpt_path <checkpoint>`")

"""The mixing-style encoder: 8-channel stem log-mels + mix features -> one embedding per clip.

Pipeline (every step is a plain ``nn.Module``; Lightning code lives in ``mixrep.training``):

1. ``BatchNorm2d`` over the 8 stem channels (running statistics, so absolute levels between
   clips are kept; only the global dB offset and scale of each stem channel are normalised);
2. :class:`~mixrep.models.bandsplit.SubBandCNN`: overlapping mel sub-bands, per-band
   ``Conv2D -> BatchNorm -> FiLM -> ReLU -> MaxPool -> Conv2D -> BatchNorm -> ReLU`` with separate
   weights per band (grouped convolutions), mel axis of each band averaged -> per-frame vectors
   (with FiLM, the first BatchNorm's affine parameters are the FiLM ones: conditional BN);
3. FiLM ``(gamma, beta)`` for every band and channel of the first layer from the mix features
   (:class:`~mixrep.models.film.FiLMGenerator`, which batch-normalises the raw features);
4. temporal attention pooling (or mean pooling) over frames;
5. optionally (``feature_branch_dim > 0``) a learned branch over the normalised mix features
   (:class:`~mixrep.models.feature_branch.FeatureBranch`), concatenated with the pooled vector;
6. projection MLP to ``embedding_dim``;
7. optionally (``settings_version > 0``) the settings decoders of :mod:`mixrep.models.decoder`:
   the mix's settings (:meth:`MixStyleEncoder.decode_settings`) and the difference between two
   mixes' (:meth:`MixStyleEncoder.decode_relative`), read from :meth:`MixStyleEncoder.decoder_input`:
   the *representation* (the pooled vector before the projection, step 5's output) or the
   L2-normalised embedding (``decoder_input``).

:meth:`MixStyleEncoder.forward` returns the un-normalised projection (the contrastive loss
normalises it); :meth:`MixStyleEncoder.embed` returns L2-normalised embeddings for retrieval.

Shape:
    mel: ``(batch, 8, n_mels, frames)`` log-mel, channels ``drums L, drums R, bass L, bass R,
    other L, other R, vocals L, vocals R`` (``STEMS`` order, stereo interleaved per stem);
    features: ``(batch, num_features)`` raw mix features; output ``(batch, embedding_dim)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mixrep.constants import CHANNELS, STEMS
from mixrep.models.bandsplit import BandLayout, SubBandCNN
from mixrep.models.decoder import RelativeDecoder, SettingsDecoder
from mixrep.models.feature_branch import FeatureBranch
from mixrep.models.film import FiLMGenerator
from mixrep.models.pooling import AttentionPooling, MeanPooling
from mixrep.styles.settings_vector import SETTINGS_VERSION

INPUT_CHANNELS: int = len(STEMS) * CHANNELS
"""Spectrogram channels the encoder takes: 4 stems x stereo = 8."""


@dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    """Hyperparameters of :class:`MixStyleEncoder`.

    Attributes:
        num_features: length of the mix-feature vector (required; ignored without FiLM and
            without the feature branch).
        n_mels: mel bins of the input spectrogram.
        band_size: mel bins per sub-band.
        band_overlap: mel bins shared by neighbouring sub-bands.
        channels: ``(first, second)`` convolution channels per sub-band.
        embedding_dim: size of the output embedding.
        use_film: condition the first layer on the mix features (ablation: ``False``).
        band_split: split the mel axis into sub-bands (ablation: ``False`` = one band covering
            every mel bin, so per-band channels are not multiplied by the band count).
        pooling: ``"attention"`` (learned) or ``"mean"`` (ablation) over frames.
        dropout: dropout probability inside the projection MLP.
        pool_size: ``(mels, frames)`` max-pooling after the first layer.
        film_hidden_dim: hidden width of the FiLM generator MLP.
        attention_hidden_dim: hidden width of the attention scoring MLP.
        feature_branch_dim: output size of the learned branch over the mix features whose output
            joins the pooled CNN features before the projection (0: no branch, the prototype's).
        settings_version: the settings-vector layout its decoders predict
            (:data:`~mixrep.styles.settings_vector.SETTINGS_VERSION`); 0: no decoders (an encoder
            trained for retrieval only, as every checkpoint written before the decoders).
        decoder_hidden_dim: hidden width of the settings decoders.
        decoder_input: what the decoders read: ``"representation"``, the pooled vector before the
            projection (what a contrastive projection head is there to protect: the loss shapes the
            projection, and the representation below it keeps more of the input; Chen et al., "A
            Simple Framework for Contrastive Learning of Visual Representations", ICML 2020, sec. 4.2),
            or ``"embedding"``, the L2-normalised embedding retrieval uses.
    """

    num_features: int
    n_mels: int = 128
    band_size: int = 20
    band_overlap: int = 10
    channels: tuple[int, int] = (32, 64)
    embedding_dim: int = 768
    use_film: bool = True
    band_split: bool = True
    pooling: Literal["attention", "mean"] = "attention"
    dropout: float = 0.1
    pool_size: tuple[int, int] = (2, 2)
    film_hidden_dim: int = 128
    attention_hidden_dim: int = 128
    feature_branch_dim: int = 0
    settings_version: int = 0
    decoder_hidden_dim: int = 256
    decoder_input: Literal["embedding", "representation"] = "embedding"

    @property
    def uses_features(self) -> bool:
        """Whether the encoder reads the mix features (FiLM or the feature branch)."""
        return self.use_film or self.feature_branch_dim > 0

    def __post_init__(self) -> None:
        if self.uses_features and self.num_features < 1:
            raise ValueError(
                f"use_film=True or feature_branch_dim > 0 needs num_features >= 1, got {self.num_features}: "
                f"pass the length of the mix-feature vector, or set use_film=False and feature_branch_dim=0"
            )
        if self.feature_branch_dim < 0:
            raise ValueError(f"feature_branch_dim must be >= 0, got {self.feature_branch_dim}")
        if self.pooling not in ("attention", "mean"):
            raise ValueError(f"pooling must be 'attention' or 'mean', got {self.pooling!r}")
        if len(self.channels) != 2 or min(self.channels) < 1:
            raise ValueError(
                f"channels must be two positive ints (first, second), got {self.channels}"
            )
        if self.decoder_input not in ("embedding", "representation"):
            raise ValueError(f"decoder_input must be 'embedding' or 'representation', got {self.decoder_input!r}")
        if self.settings_version not in (0, SETTINGS_VERSION):
            raise ValueError(f"settings_version {self.settings_version} is not a settings layout this mixrep knows "
                             f"(0 or {SETTINGS_VERSION}): upgrade mixrep to read this encoder's decoder")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def demo(cls, num_features: int, **overrides: object) -> EncoderConfig:
        """CPU-sized encoder of ``configs/demo.yaml``: 64 mels, channels (16, 32), 128-d embedding, a 64-d
        feature branch."""
        return replace(
            cls(num_features=num_features, n_mels=64, channels=(16, 32), embedding_dim=128, feature_branch_dim=64),
            **overrides,
        )

    @classmethod
    def prototype(cls, num_features: int, **overrides: object) -> EncoderConfig:
        """The prototype's size (GPU): 128 mels, channels (32, 64), 768-d embedding."""
        return replace(cls(num_features=num_features), **overrides)

    def band_layout(self) -> BandLayout:
        """Sub-band positions; one band over all mels when ``band_split`` is off."""
        if self.band_split:
            return BandLayout(self.n_mels, self.band_size, self.band_overlap)
        return BandLayout(self.n_mels, self.n_mels, 0)

    def to_dict(self) -> dict[str, object]:
        """Plain dict (for checkpoints): ``EncoderConfig(**cfg.to_dict())`` rebuilds it."""
        return asdict(self)


class MixStyleEncoder(nn.Module):
    """Band-split CNN with FiLM conditioning and temporal attention pooling.

    Works for any clip length with at least :attr:`min_frames` frames (2 with the default
    ``pool_size``); shorter inputs raise ``ValueError``. In training mode the BatchNorm layers
    need more than one value per channel, i.e. a batch of 2 or more clips.

    Args:
        config: hyperparameters.

    Shape:
        mel: ``(batch, 8, n_mels, frames)``; features: ``(batch, num_features)`` ->
        ``(batch, embedding_dim)``.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        hidden_channels, out_channels = config.channels
        self.input_norm = nn.BatchNorm2d(INPUT_CHANNELS)
        self.cnn = SubBandCNN(
            config.band_layout(),
            in_channels=INPUT_CHANNELS,
            hidden_channels=hidden_channels,
            out_channels=out_channels,
            pool_size=config.pool_size,
            conditioned=config.use_film,
        )
        self.film = (
            FiLMGenerator(config.num_features, self.cnn.film_channels, config.film_hidden_dim)
            if config.use_film
            else None
        )
        frame_dim = self.cnn.output_dim
        self.pooling: AttentionPooling | MeanPooling = (
            AttentionPooling(frame_dim, config.attention_hidden_dim)
            if config.pooling == "attention"
            else MeanPooling()
        )
        self.feature_branch = (
            FeatureBranch(config.num_features, config.feature_branch_dim) if config.feature_branch_dim > 0 else None
        )
        self.projection = nn.Sequential(
            nn.Linear(frame_dim + config.feature_branch_dim, config.embedding_dim),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.embedding_dim, config.embedding_dim),
        )
        self.representation_dim = frame_dim + config.feature_branch_dim
        self.settings_decoder = self.relative_decoder = None
        if config.settings_version:
            width = self.representation_dim if config.decoder_input == "representation" else config.embedding_dim
            self.settings_decoder = SettingsDecoder(width, config.decoder_hidden_dim)
            self.relative_decoder = RelativeDecoder(width, config.decoder_hidden_dim)

    @property
    def decodes_settings(self) -> bool:
        """Whether this encoder has settings decoders (``config.settings_version > 0``)."""
        return self.settings_decoder is not None

    @property
    def min_frames(self) -> int:
        """Fewest spectrogram frames a clip may have."""
        return self.cnn.min_frames

    @property
    def n_bands(self) -> int:
        """Number of mel sub-bands (1 when ``band_split`` is off)."""
        return self.cnn.n_bands

    def _check_inputs(self, mel: torch.Tensor, features: torch.Tensor | None) -> None:
        cfg = self.config
        if mel.ndim != 4 or mel.shape[1] != INPUT_CHANNELS or mel.shape[2] != cfg.n_mels:
            raise ValueError(
                f"mel must be (batch, {INPUT_CHANNELS} = stems x stereo, n_mels={cfg.n_mels}, "
                f"frames), got shape {tuple(mel.shape)}"
            )
        if mel.shape[3] < self.min_frames:
            raise ValueError(
                f"clip has {mel.shape[3]} frames; the encoder needs at least {self.min_frames}: "
                f"use a longer clip"
            )
        if not torch.isfinite(mel).all():
            raise ValueError(
                "mel contains NaN or infinite values: floor the power before the log "
                "(e.g. 10 * log10(max(power, 1e-10)))"
            )
        if not cfg.uses_features:
            return
        if features is None:
            raise ValueError("this encoder reads the mix features (FiLM or the feature branch): pass the mix features")
        if features.shape != (mel.shape[0], cfg.num_features):
            raise ValueError(
                f"features must be (batch={mel.shape[0]}, num_features={cfg.num_features}), "
                f"got shape {tuple(features.shape)}"
            )
        if not torch.isfinite(features).all():
            raise ValueError(
                "mix features contain NaN or infinite values (e.g. -inf dB of a silent stem): "
                "floor levels in the feature extractor"
            )

    def frame_features(
        self, mel: torch.Tensor, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-frame band features before pooling.

        Shape:
            ``(batch, 8, n_mels, frames)`` -> ``(batch, frames // pool_size[1], n_bands *
            channels[1])``.
        """
        self._check_inputs(mel, features)
        x = self.input_norm(mel)
        if self.film is None:
            return self.cnn(x)
        assert features is not None  # checked above
        film_parameters = self.film(features)
        return self.cnn(x, film_parameters.gamma, film_parameters.beta)

    def frame_weights(
        self, mel: torch.Tensor, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pooling weight of every (pooled) frame, ``(batch, frames')``, summing to 1."""
        return self.pooling.weights(self.frame_features(mel, features))

    def representation(self, mel: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled vector before the projection (and the feature branch's output beside it),
        ``(batch, representation_dim)``."""
        pooled = self.pooling(self.frame_features(mel, features))
        if self.feature_branch is not None:
            assert features is not None  # checked in frame_features
            pooled = torch.cat([pooled, self.feature_branch(features)], dim=-1)
        return pooled

    def forward(self, mel: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Un-normalised embeddings ``(batch, embedding_dim)``."""
        return self.projection(self.representation(mel, features))

    def decoder_input_of(self, representation: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
        """What the decoders read, from a batch's representation and (un-normalised) projection:
        one of the two per ``config.decoder_input`` (the embedding L2-normalised)."""
        return representation if self.config.decoder_input == "representation" else F.normalize(projection, dim=-1)

    def decoder_input(self, mel: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """What the decoders read of a batch of clips, ``(batch, decoder input size)``."""
        representation = self.representation(mel, features)
        return self.decoder_input_of(representation, self.projection(representation))

    def embed(self, mel: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised embeddings ``(batch, embedding_dim)`` (cosine similarity = dot product)."""
        return F.normalize(self(mel, features), dim=-1)

    def _decoders(self) -> tuple[SettingsDecoder, RelativeDecoder]:
        if self.settings_decoder is None or self.relative_decoder is None:
            raise ValueError("this encoder has no settings decoder (it was trained for retrieval only, "
                             "settings_version=0): use a checkpoint trained with settings_weight > 0")
        return self.settings_decoder, self.relative_decoder

    def decode_settings(self, embedding: torch.Tensor) -> torch.Tensor:
        """The settings vector of a batch of decoder inputs (:meth:`decoder_input`): normalised
        values, and logits for the presence entries, ``(batch, NUM_SETTINGS)``.

        Raises:
            ValueError: the encoder has no settings decoder.
        """
        return self._decoders()[0](embedding)

    def decode_relative(self, embedding_a: torch.Tensor, embedding_b: torch.Tensor) -> torch.Tensor:
        """The settings difference ``b - a`` (normalised values; presence columns 0) of two batches of
        decoder inputs (:meth:`decoder_input`) -> ``(batch, NUM_SETTINGS)``.

        Raises:
            ValueError: the encoder has no settings decoder.
        """
        return self._decoders()[1](embedding_a, embedding_b)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["INPUT_CHANNELS", "EncoderConfig", "MixStyleEncoder", "count_parameters"]

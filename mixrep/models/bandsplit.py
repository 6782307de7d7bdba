"""Band-split CNN: overlapping mel sub-bands, each with its own small CNN, run as grouped convs.

After SubSpectralNet (Phaye et al., "SubSpectralNet - Using Sub-Spectrogram based Convolutional
Neural Networks for Acoustic Scene Classification", ICASSP 2019): the mel axis is cut into
overlapping sub-bands and every sub-band gets separate convolution weights, so a filter learned
for the low end is not reused for the vocal presence range.

All sub-bands run at once: :func:`split_bands` unfolds the mel axis into ``n_bands`` windows and
moves the band index into the channel axis (band-major), and every convolution uses
``groups=n_bands``, which gives each band its own weights in one kernel call.

Shape:
    Input ``(batch, channels, mels, frames)``; band-split tensors
    ``(batch, n_bands * channels, band_size, frames)`` with channel index ``band * channels + c``;
    :class:`SubBandCNN` output ``(batch, frames_out, n_bands * out_channels)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mixrep.models.film import film


@dataclass(frozen=True)
class BandLayout:
    """Where the overlapping mel sub-bands lie.

    Attributes:
        n_mels: mel bins of the input.
        band_size: mel bins per band.
        band_overlap: mel bins shared by neighbouring bands.
    """

    n_mels: int
    band_size: int
    band_overlap: int

    def __post_init__(self) -> None:
        if self.n_mels < 1 or self.band_size < 1:
            raise ValueError(f"n_mels and band_size must be positive, got {self}")
        if self.band_size > self.n_mels:
            raise ValueError(
                f"band_size={self.band_size} is larger than n_mels={self.n_mels}: "
                f"use band_size <= n_mels (band_size = n_mels gives one band)"
            )
        if not 0 <= self.band_overlap < self.band_size:
            raise ValueError(
                f"band_overlap={self.band_overlap} must be in [0, band_size={self.band_size})"
            )

    @property
    def hop(self) -> int:
        """Mel bins between the starts of neighbouring bands."""
        return self.band_size - self.band_overlap

    @property
    def n_bands(self) -> int:
        """Number of bands needed to cover every mel bin (the last one may be padded)."""
        return math.ceil((self.n_mels - self.band_size) / self.hop) + 1

    @property
    def padded_mels(self) -> int:
        """Mel length after padding so the last band is complete."""
        return (self.n_bands - 1) * self.hop + self.band_size

    def edges(self) -> list[tuple[int, int]]:
        """``[(start, stop), ...]`` mel indices of every band, clipped to ``n_mels``."""
        return [
            (band * self.hop, min(band * self.hop + self.band_size, self.n_mels))
            for band in range(self.n_bands)
        ]

    def bands_containing(self, mel: int) -> list[int]:
        """Indices of the bands that see mel bin ``mel``."""
        return [band for band, (start, stop) in enumerate(self.edges()) if start <= mel < stop]


def split_bands(x: torch.Tensor, layout: BandLayout) -> torch.Tensor:
    """Cut the mel axis into overlapping bands and stack them band-major in the channel axis.

    The last band is completed by repeating the top mel bin (``replicate`` padding): zero
    padding would insert a fake 0 dB (loud) region into a log-mel spectrogram.

    Args:
        x: spectrogram-like tensor.
        layout: band positions.

    Returns:
        Channel ``band * channels + c`` holds channel ``c`` of band ``band``.

    Shape:
        ``(batch, channels, n_mels, frames)`` -> ``(batch, n_bands * channels, band_size, frames)``.
    """
    if x.ndim != 4 or x.shape[2] != layout.n_mels:
        raise ValueError(
            f"expected (batch, channels, mels={layout.n_mels}, frames), got shape {tuple(x.shape)}"
        )
    batch, channels, _, frames = x.shape
    pad = layout.padded_mels - layout.n_mels
    if pad:
        x = F.pad(x, (0, 0, 0, pad), mode="replicate")
    # (batch, channels, n_bands, frames, band_size): unfold appends the window axis last.
    bands = x.unfold(2, layout.band_size, layout.hop)
    bands = bands.permute(0, 2, 1, 4, 3)  # (batch, n_bands, channels, band_size, frames)
    return bands.reshape(batch, layout.n_bands * channels, layout.band_size, frames)


class SubBandCNN(nn.Module):
    """Per-band ``Conv2D -> BatchNorm -> FiLM -> ReLU -> MaxPool -> Conv2D -> BatchNorm -> ReLU``.

    Each band has its own weights (grouped convolutions with ``groups=n_bands``); BatchNorm over
    the band-major channels is per band and per channel. With ``conditioned=True`` the first
    BatchNorm has no affine parameters of its own and FiLM supplies them per example
    (conditional batch normalisation, de Vries et al., NeurIPS 2017): ``BN_affine`` followed by
    FiLM is again an affine map per channel, so the separate affine would only cost another pass
    over the largest activation. With ``conditioned=False`` (the no-FiLM ablation) the first
    BatchNorm is affine and ``gamma``/``beta`` must not be passed.

    The remaining frequency axis of every band is averaged, so each frame gets a vector of
    ``n_bands * out_channels`` features in which the band index is kept (band ``b`` owns entries
    ``b * out_channels`` to ``(b + 1) * out_channels - 1``).

    Args:
        layout: band positions on the mel axis.
        in_channels: input channels per band (8 = 4 stems x stereo).
        hidden_channels: channels of the first convolution, per band (the FiLM-modulated layer).
        out_channels: channels of the second convolution, per band.
        pool_size: ``(mels, frames)`` max-pooling after the first layer.
        kernel_size: odd square kernel size of both convolutions ("same" padding).
        conditioned: whether ``forward`` takes FiLM ``gamma`` and ``beta``.

    Shape:
        x: ``(batch, in_channels, n_mels, frames)``; gamma, beta (only when conditioned):
        ``(batch, n_bands * hidden_channels)`` -> ``(batch, frames // pool_size[1],
        n_bands * out_channels)``.
    """

    def __init__(
        self,
        layout: BandLayout,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        pool_size: tuple[int, int] = (2, 2),
        kernel_size: int = 3,
        conditioned: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        if pool_size[0] > layout.band_size:
            raise ValueError(
                f"pool_size[0]={pool_size[0]} pools more mel bins than a band has "
                f"(band_size={layout.band_size})"
            )
        self.layout = layout
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.pool_size = tuple(pool_size)
        self.conditioned = conditioned
        n_bands = layout.n_bands
        padding = kernel_size // 2
        self.conv1 = nn.Conv2d(
            n_bands * in_channels,
            n_bands * hidden_channels,
            kernel_size,
            padding=padding,
            groups=n_bands,
            bias=False,  # followed by BatchNorm
        )
        self.norm1 = nn.BatchNorm2d(n_bands * hidden_channels, affine=not conditioned)
        self.pool = nn.MaxPool2d(self.pool_size)
        self.conv2 = nn.Conv2d(
            n_bands * hidden_channels,
            n_bands * out_channels,
            kernel_size,
            padding=padding,
            groups=n_bands,
            bias=False,
        )
        self.norm2 = nn.BatchNorm2d(n_bands * out_channels)

    @property
    def n_bands(self) -> int:
        """Number of mel sub-bands."""
        return self.layout.n_bands

    @property
    def film_channels(self) -> int:
        """Number of ``(gamma, beta)`` pairs the FiLM layer takes: ``n_bands * hidden_channels``."""
        return self.layout.n_bands * self.hidden_channels

    @property
    def output_dim(self) -> int:
        """Features per output frame: ``n_bands * out_channels``."""
        return self.layout.n_bands * self.out_channels

    @property
    def min_frames(self) -> int:
        """Fewest input frames that leave at least one frame after max-pooling."""
        return self.pool_size[1]

    def forward(
        self,
        x: torch.Tensor,
        gamma: torch.Tensor | None = None,
        beta: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-frame band features, FiLM-modulated by ``gamma``/``beta`` when conditioned."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (batch, channels={self.in_channels}, mels, frames), "
                f"got shape {tuple(x.shape)}"
            )
        if self.conditioned != (gamma is not None and beta is not None):
            raise ValueError(
                f"this SubBandCNN has conditioned={self.conditioned}: pass both gamma and beta "
                f"exactly when it is conditioned"
            )
        h = self.norm1(self.conv1(split_bands(x, self.layout)))
        if gamma is not None and beta is not None:
            h = film(h, gamma, beta)
        h = self.pool(F.relu(h, inplace=True))
        h = F.relu(self.norm2(self.conv2(h)), inplace=True)
        # (batch, n_bands * out_channels, mels', frames') -> average the band's mel axis.
        return h.mean(dim=2).transpose(1, 2)

"""The front end as one module: stems -> (8-channel log-mel, mix features), batched, any device."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import nn

from mixrep.frontend.config import FrontEndConfig
from mixrep.frontend.features import check_stems, compute_mix_features, feature_names
from mixrep.frontend.mel import MEL_CHANNELS, mel_filterbank, stem_log_mel

CPU_CHUNK_BYTES = 16 << 20
"""On a CPU, clips are transformed in groups of about this many bytes of stems (x2 for the
spectra): transforms that stay in cache run about 2x faster than whole batches (one 4 s clip at
44.1 kHz per group; seven 1.5 s clips at 22.05 kHz), and groups are still large enough that the
per-operation overhead stays small (``benchmarks/frontend.py``)."""
CPU_MEL_CHUNK_BYTES = 4 << 20
"""On a CPU, stem channels framed for the STFT at once: about this many bytes of frames."""
ACCELERATOR_CHUNK_ITEMS = 32
"""Clips processed per step on GPUs and other devices: bounds the transient memory (a 10 s
clip at 44.1 kHz with 128 mels needs about 110 MB of spectra)."""


class FrontEndOutput(NamedTuple):
    """What :class:`FrontEnd` returns.

    Attributes:
        mel: ``(batch, 8, n_mels, frames)`` log-mel power, channel ``2 * stem + channel``.
        features: ``(batch, num_features)`` mix features in physical units.
    """

    mel: torch.Tensor
    features: torch.Tensor


class FrontEnd(nn.Module):
    """Stems to model inputs: the stacked log-mel of :mod:`mixrep.frontend.mel` and the mix
    features of :mod:`mixrep.frontend.features`, in one batched, differentiable pass.

    Computation runs in float32 (float64 inputs stay float64, for gradient checks) with autocast
    off, on the device of the input; the module has no parameters and its buffers are not saved
    in state dicts (they follow from :attr:`config`). Gradients flow to the stems through both
    outputs.

    Args:
        config: the settings (stored in checkpoints as ``config.to_dict()``).
        chunk_items: clips transformed at once; ``None`` picks by :data:`CPU_CHUNK_BYTES` on a CPU
            and :data:`ACCELERATOR_CHUNK_ITEMS` elsewhere. Results do not depend on it.

    Shape:
        ``(batch, 4, 2, samples)`` -> :class:`FrontEndOutput` of ``(batch, 8, n_mels, frames)``
        and ``(batch, num_features)``.
    """

    def __init__(self, config: FrontEndConfig | None = None, chunk_items: int | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else FrontEndConfig()
        if chunk_items is not None and chunk_items < 1:
            raise ValueError(f"chunk_items must be >= 1, got {chunk_items}")
        self.chunk_items = chunk_items
        self.register_buffer("window", torch.hann_window(self.config.n_fft), persistent=False)
        self.register_buffer("filterbank", mel_filterbank(self.config), persistent=False)
        self._sparse: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the feature vector's entries, in order."""
        return feature_names(self.config.features)

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    @property
    def out_channels(self) -> int:
        """Channels of the log-mel: stems x stereo (8)."""
        return MEL_CHANNELS

    def frames_for(self, samples: int) -> int:
        """Log-mel frames of a clip of ``samples`` samples."""
        return self.config.frames_for(samples)

    def _sparse_filterbank(self, filterbank: torch.Tensor) -> torch.Tensor | None:
        # Sparse products pay off on CPUs; on GPUs the dense product is fast and deterministic.
        if filterbank.device.type != "cpu":
            return None
        key = (filterbank.device, filterbank.dtype)
        if key not in self._sparse:
            with warnings.catch_warnings():  # "sparse CSR support is in beta": used for one product only
                warnings.simplefilter("ignore", UserWarning)
                self._sparse[key] = filterbank.to_sparse_csr()
        return self._sparse[key]

    def forward(self, stems: torch.Tensor) -> FrontEndOutput:
        """Compute the log-mel and the mix features.

        Args:
            stems: waveforms in :data:`~mixrep.constants.STEMS` order at ``config.sample_rate``,
                any float dtype (float16 transport is upcast), on any device.

        Raises:
            ValueError: wrong shape, clip shorter than 0.1 s, non-finite samples.

        Shape:
            ``(batch, 4, 2, samples)`` -> ``mel (batch, 8, n_mels, frames)``,
            ``features (batch, num_features)``.
        """
        config = self.config
        check_stems(stems, config.sample_rate, "FrontEnd")
        if stems.shape[-1] <= config.n_fft // 2:
            raise ValueError(f"FrontEnd with n_fft={config.n_fft} needs clips longer than {config.n_fft // 2} samples "
                             f"(centred frames are reflect-padded); got {stems.shape[-1]}")
        dtype = torch.float64 if stems.dtype == torch.float64 else torch.float32
        stems = stems.to(dtype)
        window, filterbank = self.window.to(stems.device, dtype), self.filterbank.to(stems.device, dtype)
        sparse = self._sparse_filterbank(filterbank)
        on_cpu = stems.device.type == "cpu"
        samples = stems.shape[-1]
        chunk = self.chunk_items or (max(1, CPU_CHUNK_BYTES // (samples * MEL_CHANNELS * 4 * 2)) if on_cpu
                                     else ACCELERATOR_CHUNK_ITEMS)
        frame_bytes = self.frames_for(samples) * config.n_fft * 4
        rows = max(1, CPU_MEL_CHUNK_BYTES // frame_bytes) if on_cpu else None
        mels, features = [], []
        with torch.autocast(device_type=stems.device.type, enabled=False):
            for part in stems.split(chunk):
                mels.append(stem_log_mel(part, window, filterbank, config.hop_length, config.log_floor, sparse,
                                         rows_per_call=rows))
                features.append(compute_mix_features(part, config.sample_rate, config.features))
        return FrontEndOutput(torch.cat(mels), torch.cat(features))

    def extra_repr(self) -> str:
        c = self.config
        return (f"sample_rate={c.sample_rate}, n_fft={c.n_fft}, hop_length={c.hop_length}, n_mels={c.n_mels}, "
                f"features={self.num_features}")

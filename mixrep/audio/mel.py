"""Mel front end: one log-mel spectrogram per stem channel, stacked stem-major.

Output channel ``2 * stem + channel``: drums L, drums R, bass L, bass R, other L, other R,
vocals L, vocals R (:data:`mixrep.constants.STEMS` order, left before right).

Values are ``log(mel_power + log_floor)`` (natural log) of the power mel spectrogram of
``torchaudio.transforms.MelSpectrogram`` (Hann window, centred frames, HTK mel scale, no
filter normalisation); digital silence gives ``log(log_floor)`` (-11.5 with the default 1e-5)
everywhere. A full-scale sine peaks around +12 with ``n_fft=2048``.

Shape:
    ``(batch, stems=4, channels=2, samples)`` -> ``(batch, 8, n_mels, frames)``, and
    ``(4, 2, samples)`` -> ``(8, n_mels, frames)``; ``frames = samples // hop_length + 1``.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from mixrep.constants import CHANNELS, SAMPLE_RATE, STEMS


class StemMelSpectrogram(nn.Module):
    """Log-mel spectrogram of every stem channel; dtype and device follow the module.

    Args:
        sample_rate: Hz.
        n_fft: FFT size in samples (also the window length).
        hop_length: frame hop in samples.
        n_mels: number of mel bands.
        f_min: lowest mel filter edge, Hz.
        f_max: highest mel filter edge, Hz; ``None`` for ``sample_rate / 2``.
        log_floor: added to the mel power before the log, so silence stays finite.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mels: int = 128,
        f_min: float = 20.0,
        f_max: float | None = None,
        log_floor: float = 1e-5,
    ) -> None:
        super().__init__()
        if log_floor <= 0:
            raise ValueError(f"log_floor must be > 0 to keep log-mel finite on silence, got {log_floor}")
        f_max = sample_rate / 2.0 if f_max is None else f_max
        if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}, sample_rate={sample_rate}")
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.log_floor = log_floor
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            power=2.0,
            center=True,
        )

    @property
    def out_channels(self) -> int:
        """Number of output channels: stems x stereo channels (8)."""
        return len(STEMS) * CHANNELS

    def frames_for(self, samples: int) -> int:
        """Number of frames produced for ``samples`` input samples (centred STFT)."""
        return samples // self.hop_length + 1

    def forward(self, stems: torch.Tensor) -> torch.Tensor:
        """Compute the stacked log-mel spectrograms.

        Args:
            stems: float waveforms in :data:`~mixrep.constants.STEMS` order; cast to the module's
                dtype, must be on the module's device.

        Returns:
            Log-mel power, channel ``2 * stem + channel``.

        Shape:
            ``(batch, 4, 2, samples)`` -> ``(batch, 8, n_mels, frames)``;
            ``(4, 2, samples)`` -> ``(8, n_mels, frames)``.
        """
        unbatched = stems.dim() == 3
        batch = stems.unsqueeze(0) if unbatched else stems
        expected = (len(STEMS), CHANNELS)
        if batch.dim() != 4 or tuple(batch.shape[1:3]) != expected:
            raise ValueError(
                f"StemMelSpectrogram expects (batch, {expected[0]}, {expected[1]}, samples) or "
                f"({expected[0]}, {expected[1]}, samples), got {tuple(stems.shape)}"
            )
        window = self.mel.spectrogram.window
        if batch.device != window.device:
            raise ValueError(f"stems are on {batch.device} but StemMelSpectrogram is on {window.device}; move one of them")
        channels = batch.reshape(batch.shape[0], self.out_channels, batch.shape[-1]).to(window.dtype)
        log_mel = torch.log(self.mel(channels) + self.log_floor)
        return log_mel.squeeze(0) if unbatched else log_mel

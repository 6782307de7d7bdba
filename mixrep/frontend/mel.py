"""Log-mel spectrograms of every stem channel, stacked stem-major.

Output channel ``2 * stem + channel``: drums L, drums R, bass L, bass R, other L, other R,
vocals L, vocals R (:data:`mixrep.constants.STEMS` order, left before right).

Values are ``log(mel_power + log_floor)`` (natural log) of the power mel spectrogram: periodic
Hann window of ``n_fft`` samples, centred frames with reflect padding, HTK mel scale, triangular
filters without normalisation (the same numbers as ``torchaudio.transforms.MelSpectrogram`` with
``power=2``). Digital silence gives ``log(log_floor)`` everywhere (-11.5 with the default 1e-5);
a full-scale sine peaks around +12 with ``n_fft=2048``.

Shape:
    ``(batch, stems=4, channels=2, samples)`` -> ``(batch, 8, n_mels, frames)``,
    ``frames = samples // hop_length + 1``.
"""

from __future__ import annotations

import torch
import torchaudio

from mixrep.constants import CHANNELS, STEMS
from mixrep.frontend.config import FrontEndConfig

MEL_CHANNELS = len(STEMS) * CHANNELS
"""Channels of the stacked log-mel: stems x stereo (8)."""


def mel_filterbank(config: FrontEndConfig) -> torch.Tensor:
    """Triangular HTK mel filters ``(n_fft // 2 + 1, n_mels)`` (float32, unnormalised)."""
    return torchaudio.functional.melscale_fbanks(config.n_fft // 2 + 1, config.f_min, config.top_hz, config.n_mels,
                                                 config.sample_rate, norm=None, mel_scale="htk")


def stem_log_mel(stems: torch.Tensor, window: torch.Tensor, filterbank: torch.Tensor, hop_length: int,
                 log_floor: float, sparse_filterbank: torch.Tensor | None = None,
                 rows_per_call: int | None = None) -> torch.Tensor:
    """Stacked log-mel of a batch of stems.

    Frames are laid out frame-major (as the FFT produces them) so the mel projection is one
    matrix product without transposing the spectrogram.

    Args:
        stems: float waveforms (the dtype of the computation); more than ``n_fft // 2`` samples.
        window: periodic Hann window of ``n_fft`` samples, same dtype and device.
        filterbank: ``(n_fft // 2 + 1, n_mels)`` mel filters, same dtype and device.
        hop_length: frame hop in samples.
        log_floor: added to the mel power before the log.
        sparse_filterbank: ``filterbank`` as a CSR matrix; when given the projection is a
            dense-times-sparse product (each FFT bin feeds at most two mel filters), which halves
            its cost on a CPU.
        rows_per_call: transform this many stem channels at a time (``None``: all at once). One
            channel's frames (2.8 MB for 4 s at 44.1 kHz) stay in a CPU's cache through the FFT,
            power and projection: 1.7x faster than eight at a time on this project's CPU.

    Shape:
        ``(batch, 4, 2, samples)`` -> ``(batch, 8, n_mels, frames)``.
    """
    batch, _, _, samples = stems.shape
    n_fft = window.shape[0]
    pad = n_fft // 2
    projection = sparse_filterbank if sparse_filterbank is not None else filterbank
    signals = stems.reshape(batch * MEL_CHANNELS, samples)
    mels = []
    for rows in signals.split(rows_per_call or signals.shape[0]):
        # Centred frames with reflect padding, as torch.stft(center=True, pad_mode="reflect").
        padded = torch.cat([rows[:, 1:pad + 1].flip(-1), rows, rows[:, -pad - 1:-1].flip(-1)], dim=-1)
        spectrum = torch.fft.rfft(padded.unfold(-1, n_fft, hop_length) * window)  # (rows, frames, bins)
        power = spectrum.real.square() + spectrum.imag.square()
        mels.append(torch.log(power @ projection + log_floor))  # (rows, frames, n_mels)
    log_mel = torch.cat(mels).transpose(-1, -2)
    return log_mel.reshape(batch, MEL_CHANNELS, log_mel.shape[-2], log_mel.shape[-1])

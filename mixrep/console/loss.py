"""The audio loss of Lee et al. (DAFx 2024), section 2.3, eqs. 3-6.

``L_a = 0.5 L_lr + 0.25 L_m + 0.25 L_s``, each term a multi-resolution mel-STFT loss
(FFT 512/1024/4096, hop 1/4, 96 mels, A-weighted) with a log-magnitude L1 term and a
spectral-convergence term, as in auraloss (Steinmetz & Reiss 2020) and Parallel WaveGAN
(Yamamoto et al. 2020). Built from torch.stft and torchaudio's mel filterbank.

Two implementation choices, stated once:

* A-weighting is applied as the IEC 61672 A-curve on the STFT bins (``|X(f)| * R_A(f)``),
  the frequency-domain form of filtering before the STFT; auraloss instead runs a short FIR
  approximation of the curve in time.
* The log term averages over all mel bins and frames (auraloss's ``L1Loss`` mean), so values are
  on the paper's scale (about 0.4 for a good console match); spectral convergence uses
  ``sqrt(sum + eps)`` norms so silence gives a finite loss and gradient.

Shape:
    Mixes ``(2, samples)`` or ``(batch, 2, samples)``.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import Tensor, nn

from mixrep.constants import SAMPLE_RATE

MAG_EPS = 1e-8
"""Magnitude floor before the log (auraloss's ``eps``)."""
NORM_EPS = 1e-20
"""Added under the square roots of the Frobenius norms: finite gradients at exactly zero."""


RMS_EPS = 1e-16
"""Added under the RMS's square root: silence has RMS 1e-8 and stays silent when normalised."""


def rms(audio: Tensor, keepdim: bool = False) -> Tensor:
    """RMS over channels and samples: ``(..., channels, samples)`` -> ``(...)`` (or with the two dims kept)."""
    return audio.pow(2).mean((-2, -1), keepdim=keepdim).add(RMS_EPS).sqrt()


def rms_normalise(audio: Tensor) -> Tensor:
    """Each ``(..., channels, samples)`` signal scaled to unit RMS (silence stays silent), the form
    :class:`MixLoss` compares mixes in for Stage 2."""
    return audio / rms(audio, keepdim=True)


def a_weighting(frequencies_hz: Tensor) -> Tensor:
    """IEC 61672 A-weighting as an amplitude factor, 1 at 1 kHz.

    Shape:
        ``(bins,)`` Hz -> ``(bins,)``.
    """
    f2 = frequencies_hz.double() ** 2
    ra = (12194.0**2 * f2**2) / (
        (f2 + 20.6**2) * torch.sqrt((f2 + 107.7**2) * (f2 + 737.9**2)) * (f2 + 12194.0**2)
    )
    return (ra * 10.0 ** (2.0 / 20.0)).float()  # +2.00 dB normalises 1 kHz to 0 dB


class MelSTFTLoss(nn.Module):
    """One resolution: A-weighted mel magnitudes, log-L1 + spectral convergence."""

    def __init__(self, n_fft: int, sample_rate: int = SAMPLE_RATE, n_mels: int = 96,
                 hop_length: int | None = None) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length or n_fft // 4
        bins = n_fft // 2 + 1
        freqs = torch.linspace(0, sample_rate / 2, bins)
        fbank = torchaudio.functional.melscale_fbanks(
            bins, 0.0, sample_rate / 2, n_mels, sample_rate, norm="slaney", mel_scale="slaney"
        )  # (bins, mels)
        self.register_buffer("weighted_fbank", a_weighting(freqs)[:, None] * fbank, persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def spectrum(self, x: Tensor) -> Tensor:
        """Complex STFT: ``(..., samples)`` -> ``(..., bins, frames)``."""
        lead = x.shape[:-1]
        spec = torch.stft(x.reshape(-1, x.shape[-1]), self.n_fft, self.hop_length,
                          window=self.window.to(x.dtype), return_complex=True)
        return spec.reshape(*lead, *spec.shape[-2:])

    def mel_of_spectrum(self, spec: Tensor) -> Tensor:
        """A-weighted mel magnitudes of a complex STFT: ``(..., bins, frames)`` -> ``(..., mels, frames)``."""
        mag = torch.sqrt(spec.real**2 + spec.imag**2 + MAG_EPS**2)
        return torch.einsum("...ft,fm->...mt", mag, self.weighted_fbank.to(mag.dtype))

    def mel(self, x: Tensor) -> Tensor:
        """A-weighted mel magnitude spectrogram: ``(..., samples)`` -> ``(..., mels, frames)``."""
        return self.mel_of_spectrum(self.spectrum(x))

    def forward(self, estimate: Tensor, target: Tensor) -> Tensor:
        """Mean over leading axes of (log-L1 + spectral convergence)."""
        return self.loss_of_mels(self.mel(estimate), self.mel(target))

    @staticmethod
    def loss_of_mels(est: Tensor, ref: Tensor) -> Tensor:
        """Log-L1 + spectral convergence of two mel spectrograms, mean over leading axes."""
        log_term = (torch.log(est + MAG_EPS) - torch.log(ref + MAG_EPS)).abs().mean((-1, -2))
        diff = torch.sqrt(((est - ref) ** 2).sum((-1, -2)) + NORM_EPS)
        norm = torch.sqrt((ref**2).sum((-1, -2)) + NORM_EPS) + MAG_EPS
        return (log_term + diff / norm).mean()


class MixLoss(nn.Module):
    """``L_a`` of Lee et al. (DAFx 2024), eqs. 3-4: left/right, mid and side multi-resolution mel-STFT loss.

    Args:
        sample_rate: Hz.
        fft_sizes: resolutions (Lee et al. 2024: 512, 1024, 4096; hop = 1/4).
        weights: ``(alpha_lr, alpha_m, alpha_s)`` (Lee et al. 2024: 0.5, 0.25, 0.25).
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, fft_sizes=(512, 1024, 4096), n_mels: int = 96,
                 weights: tuple[float, float, float] = (0.5, 0.25, 0.25)) -> None:
        super().__init__()
        self.resolutions = nn.ModuleList(MelSTFTLoss(n, sample_rate, n_mels) for n in fft_sizes)
        self.weights = weights

    def terms(self, estimate: Tensor, target: Tensor) -> dict[str, Tensor]:
        """``{"lr", "mid", "side", "total"}`` losses (scalars)."""
        if estimate.shape != target.shape or estimate.shape[-2] != 2:
            raise ValueError(
                f"expected matching (..., 2, samples) mixes, got {tuple(estimate.shape)} and "
                f"{tuple(target.shape)}"
            )

        views = {
            "lr": lambda z: z,
            "mid": lambda z: (z[..., 0, :, :] + z[..., 1, :, :]) / 2,
            "side": lambda z: (z[..., 0, :, :] - z[..., 1, :, :]) / 2,
        }
        terms = dict.fromkeys(views, 0.0)
        for r in self.resolutions:
            # one STFT of left and right; the mid and side spectra follow by linearity (exact)
            est, ref = r.spectrum(estimate), r.spectrum(target)  # (..., 2, bins, frames)
            for name, view in views.items():
                terms[name] = terms[name] + r.loss_of_mels(r.mel_of_spectrum(view(est)),
                                                           r.mel_of_spectrum(view(ref)))
        a_lr, a_m, a_s = self.weights
        terms["total"] = a_lr * terms["lr"] + a_m * terms["mid"] + a_s * terms["side"]
        return terms

    def forward(self, estimate: Tensor, target: Tensor) -> Tensor:
        return self.terms(estimate, target)["total"]


def log_spectrogram_db(x: Tensor, n_fft: int = 2048, hop_length: int = 512) -> Tensor:
    """Log-magnitude STFT in dB (for plots): ``(samples,)`` -> ``(bins, frames)``."""
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(x, n_fft, hop_length, window=window, return_complex=True).abs()
    return 20.0 * torch.log10(spec + 1e-6)




STFT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))
"""``(n_fft, hop_length, window_length)`` of :func:`multi_resolution_stft_distance`: the setting of
Yamamoto, Song & Kim, "Parallel WaveGAN", ICASSP 2020, section 2.3 (auraloss's default)."""
STFT_MAGNITUDE_FLOOR = 1e-4
"""Magnitudes below this count as this (auraloss's ``eps`` of 1e-8 on the power): bins near float32's
rounding noise do not dominate the log term."""


@torch.no_grad()
def multi_resolution_stft_distance(estimate: Tensor, target: Tensor) -> float:
    """Spectral convergence plus log-magnitude L1 of linear STFTs, averaged over :data:`STFT_RESOLUTIONS`
    and computed per channel: the plain distance between two renders of one song (0 when equal).

    Shape:
        ``(channels, samples)`` each (the same shape).
    """
    if estimate.shape != target.shape:
        raise ValueError(f"the two renders differ in shape: {tuple(estimate.shape)} and {tuple(target.shape)}")
    total = 0.0
    for n_fft, hop_length, window_length in STFT_RESOLUTIONS:
        window = torch.hann_window(window_length, dtype=estimate.dtype, device=estimate.device)

        def magnitude(x: Tensor) -> Tensor:
            spec = torch.stft(x, n_fft, hop_length, window_length, window=window, return_complex=True)
            return spec.abs().clamp(min=STFT_MAGNITUDE_FLOOR)

        est, ref = magnitude(estimate), magnitude(target)
        convergence = torch.linalg.vector_norm(ref - est) / torch.linalg.vector_norm(ref)
        total += float(convergence + (ref.log() - est.log()).abs().mean())
    return total / len(STFT_RESOLUTIONS)

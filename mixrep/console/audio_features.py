"""Differentiable mix features, a feature-matching loss and the evaluation view of its errors.

Two families of features of a stereo mix, all differentiable with torch autograd, batched, and
finite (value and gradient) on digital silence:

* **Diff-MST's audio features** (Vanka et al. 2024, "Diff-MST: Differentiable Mixing Style
  Transfer", after De Man et al. 2014, "An analysis and evaluation of audio features
  for multitrack music mixtures"): RMS energy, crest factor, stereo width, stereo imbalance (all
  over the whole excerpt, as Diff-MST computes them) and a Bark-band spectrum of mid and side
  (STFT frames averaged over time).
* **automix-toolkit's evaluation features** (Martínez-Ramírez et al. 2022, "Automatic music
  mixing with deep learning and out-of-domain data"): loudness, spectral shape (centroid,
  bandwidth, roll-off, flatness of the mid signal), panning (Tzanetakis et al. 2007 stereo panning
  spectrum, RMS per band) and dynamics (Ma et al. 2015: frame RMS spread, crest, dynamic spread),
  computed frame-wise and averaged over frames.

Implementation choices, stated once:

* Energies go through ``10 log10(power + POWER_EPS)`` (never ``sqrt`` at zero), so silence reads
  -100 dB with a finite gradient; ratios divide by ``denominator + POWER_EPS``.
* The STFT power is scaled so that the one-sided bins of a frame sum to its (windowed) mean square:
  Bark bands are band powers in dB FS, and the triangular Bark filters overlap to a partition of
  unity, so the band powers sum to the total.
* Bark bands are 10 log10 of time-averaged power (an RMS magnitude in dB), where Diff-MST takes the
  natural log of the time-averaged magnitude; the shape information is the same, in dB.
* Loudness is ungated BS.1770 K-weighting applied to the STFT bins (the K filter's magnitude
  response from pyloudnorm's filter design): ``-0.691 + 10 log10(sum over channels of the mean
  K-weighted power)``. It matches pyloudnorm's integrated loudness on stationary material (no
  gating); :func:`integrated_loudness_lufs` gives the exact, gated, non-differentiable number.
* Roll-off is made differentiable by counting the bins below the 85 % cumulative-energy point with
  a sigmoid (temperature ``ROLLOFF_TEMPERATURE`` of cumulative fraction) instead of an argmax.
* Frame-wise spectral and dynamics features are plain means over frames (automix-toolkit's
  averaging), so long silences inside an excerpt pull the spectral features toward their silent
  values (centroid and bandwidth 0 Hz, roll-off the Nyquist frequency, flatness 1).

Features (:data:`FEATURE_UNITS` lists them with their units), each of shape ``(batch, *dims)``:

==========================  ==============  ===============================================
name                        shape           meaning, unit
==========================  ==============  ===============================================
``rms_db``                  ``(batch, 2)``  RMS per channel, dB FS
``crest_db``                ``(batch, 2)``  peak / RMS per channel, dB
``stereo_width``            ``(batch,)``    side / mid energy ratio (0 mono, 1 one side)
``stereo_imbalance``        ``(batch,)``    ``(E_R - E_L) / (E_R + E_L)``, -1 hard left
``bark_mid_db``             ``(batch, 24)`` Bark-band power of mid ``(L + R) / 2``, dB FS
``bark_side_db``            ``(batch, 24)`` Bark-band power of side ``(L - R) / 2``, dB FS
``loudness_lufs``           ``(batch,)``    ungated K-weighted loudness, LUFS (approx.)
``spectral_centroid_hz``    ``(batch,)``    magnitude-weighted mean frequency of mid, Hz
``spectral_bandwidth_hz``   ``(batch,)``    magnitude-weighted std of frequency of mid, Hz
``spectral_rolloff_hz``     ``(batch,)``    frequency below which 85 % of mid energy lies, Hz
``spectral_flatness``       ``(batch,)``    geometric / arithmetic mean of mid power, 0..1
``panning_rms``             ``(batch, 4)``  RMS panning index, bands all/<250/250-2500/>2500 Hz
``frame_rms_std_db``        ``(batch,)``    std over frames of frame RMS, dB
``frame_crest_db``          ``(batch,)``    mean over frames of frame peak / RMS, dB
``dynamic_spread_db``       ``(batch,)``    mean over frames of mean(sample level - RMS), dB
==========================  ==============  ===============================================

Shape:
    Mixes ``(batch, 2, samples)`` or ``(2, samples)`` (read as a batch of one), at least
    ``n_fft`` samples long.
"""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import scipy.signal
import torch
import torch.nn.functional as F
from pyloudnorm.iirfilter import IIRfilter
from torch import Tensor, nn

POWER_EPS = 1e-10
"""Added to every power (mean square) before a log or a division: silence reads -100 dB."""
AMPLITUDE_EPS = math.sqrt(POWER_EPS)
"""Added to every amplitude before ``20 log10``, the same -100 dB floor."""
ROLLOFF_FRACTION = 0.85
"""Share of the spectral energy below the roll-off frequency (librosa's default)."""
ROLLOFF_TEMPERATURE = 0.01
"""Sigmoid temperature, in cumulative-energy fraction, of the differentiable roll-off."""
PANNING_BANDS_HZ = ((0.0, None), (0.0, 250.0), (250.0, 2500.0), (2500.0, None))
"""automix-toolkit's panning bands: all, lows, mids, highs (``None``: the Nyquist frequency)."""
LOUDNESS_OFFSET_DB = -0.691
"""ITU-R BS.1770 constant between the K-weighted mean square in dB and LUFS."""

FEATURE_UNITS: dict[str, str] = {
    "rms_db": "dB FS",
    "crest_db": "dB",
    "stereo_width": "side/mid energy ratio",
    "stereo_imbalance": "(E_R - E_L) / (E_R + E_L)",
    "bark_mid_db": "dB FS",
    "bark_side_db": "dB FS",
    "loudness_lufs": "LUFS (ungated K-weighted approximation)",
    "spectral_centroid_hz": "Hz",
    "spectral_bandwidth_hz": "Hz",
    "spectral_rolloff_hz": "Hz",
    "spectral_flatness": "ratio 0..1",
    "panning_rms": "panning index RMS 0..1",
    "frame_rms_std_db": "dB",
    "frame_crest_db": "dB",
    "dynamic_spread_db": "dB",
}
"""Every feature :class:`MixFeatures` computes, in output order, with its unit."""

DEFAULT_WEIGHTS: dict[str, float] = {
    "rms_db": 0.1,
    "crest_db": 0.1,
    "stereo_width": 1.0,
    "stereo_imbalance": 1.0,
    "bark_mid_db": 0.1,
    "bark_side_db": 0.1,
    "loudness_lufs": 0.1,
    "spectral_centroid_hz": 1e-3,
    "spectral_bandwidth_hz": 1e-3,
    "spectral_rolloff_hz": 2.5e-4,
    "spectral_flatness": 1.0,
    "panning_rms": 1.0,
    "frame_rms_std_db": 0.1,
    "frame_crest_db": 0.1,
    "dynamic_spread_db": 0.1,
}
"""Loss weights: one unit of loss per 10 dB, per 1 kHz of centroid/bandwidth, per 4 kHz of
roll-off, and per full range of the unitless features."""


def hz_to_bark(frequency_hz: np.ndarray) -> np.ndarray:
    """Traunmüller (1990) critical-band rate, Bark.

    Shape:
        Any shape, Hz -> the same shape, Bark.
    """
    return 26.81 * frequency_hz / (1960.0 + frequency_hz) - 0.53


def bark_filterbank(n_fft: int, sample_rate: int, n_bands: int = 24, f_min_hz: float = 20.0,
                    f_max_hz: float = 20000.0) -> Tensor:
    """Triangular filters equally spaced on the Bark scale, overlapping to a partition of unity.

    Args:
        n_fft: FFT size; the filters act on its ``n_fft // 2 + 1`` one-sided bins.
        sample_rate: Hz.
        n_bands: number of Bark bands.
        f_min_hz, f_max_hz: edges of the lowest and highest band (``f_max_hz`` is capped at the
            Nyquist frequency).

    Returns:
        ``(n_fft // 2 + 1, n_bands)`` weights in [0, 1].

    Raises:
        ValueError: if a band holds no FFT bin (``n_fft`` too small for ``n_bands``).
    """
    f_max_hz = min(f_max_hz, sample_rate / 2)
    if not 0 <= f_min_hz < f_max_hz:
        raise ValueError(f"Bark bands need 0 <= f_min_hz < f_max_hz, got {f_min_hz} and {f_max_hz} Hz")
    bins_bark = hz_to_bark(np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1))
    edges = np.linspace(hz_to_bark(np.array(f_min_hz)), hz_to_bark(np.array(f_max_hz)), n_bands + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_bark[:, None] - lower) / (centre - lower)
    falling = (upper - bins_bark[:, None]) / (upper - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, 1.0)
    empty = np.flatnonzero(weights.sum(axis=0) == 0)
    if empty.size:
        raise ValueError(f"Bark bands {empty.tolist()} of {n_bands} hold no FFT bin at n_fft={n_fft}, "
                         f"sample_rate={sample_rate}: use a larger n_fft or fewer bands")
    return torch.from_numpy(weights).float()


def k_weighting(frequencies_hz: np.ndarray, sample_rate: int) -> Tensor:
    """Power response ``|H_K(f)|^2`` of the ITU-R BS.1770 K filter (pyloudnorm's design).

    Shape:
        ``(bins,)`` Hz -> ``(bins,)``.
    """
    response = np.ones_like(frequencies_hz, dtype=np.complex128)
    # pyloudnorm's two BS.1770 stages: a +4 dB high shelf at 1.5 kHz and a 38 Hz high pass.
    for stage in (IIRfilter(4.0, 1 / math.sqrt(2), 1500.0, sample_rate, "high_shelf"),
                  IIRfilter(0.0, 0.5, 38.0, sample_rate, "high_pass")):
        response *= scipy.signal.freqz(stage.b, stage.a, worN=frequencies_hz, fs=sample_rate)[1]
    return torch.from_numpy(np.abs(response) ** 2).float()


def as_batch(mix: Tensor, n_fft: int) -> Tensor:
    """``(2, samples)`` -> ``(1, 2, samples)``; checks the mix is stereo and one frame long.

    Shape:
        ``(batch, 2, samples)`` or ``(2, samples)`` -> ``(batch, 2, samples)``.
    """
    if mix.ndim == 2:
        mix = mix.unsqueeze(0)
    if mix.ndim != 3 or mix.shape[1] != 2:
        raise ValueError(f"a mix must be stereo, (batch, 2, samples) or (2, samples); got shape "
                         f"{tuple(mix.shape)}: duplicate a mono signal into two channels first")
    if mix.shape[-1] < n_fft:
        raise ValueError(f"a mix of {mix.shape[-1]} samples is shorter than one analysis frame of "
                         f"n_fft={n_fft} samples: pass a longer excerpt or a smaller n_fft")
    if not mix.is_floating_point():
        raise ValueError(f"a mix must be a floating-point tensor, got {mix.dtype}")
    return mix


def _db(power: Tensor) -> Tensor:
    return 10.0 * torch.log10(power + POWER_EPS)


def _safe_sqrt(x: Tensor) -> Tensor:
    return torch.sqrt(x + POWER_EPS)


class MixFeatures(nn.Module):
    """Every feature of :data:`FEATURE_UNITS` of a stereo mix, differentiably.

    Args:
        sample_rate: Hz.
        n_fft: STFT frame (and dynamics frame) length in samples; hop ``n_fft // 4``, periodic
            Hann window, frames inside the signal only (``center=False``).
        n_bark_bands: Bark bands of the mid and side spectra (Diff-MST: 24).

    Shape:
        ``(batch, 2, samples)`` or ``(2, samples)`` -> ``{name: (batch, *dims)}``.
    """

    def __init__(self, sample_rate: int, n_fft: int = 4096, n_bark_bands: int = 24) -> None:
        super().__init__()
        if sample_rate <= 0 or n_fft < 16:
            raise ValueError(f"need sample_rate > 0 and n_fft >= 16, got {sample_rate} and {n_fft}")
        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, n_fft // 4
        frequencies = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
        window = torch.hann_window(n_fft, periodic=True)
        # One-sided bins count twice (DC and Nyquist once); dividing by n_fft * sum(w^2) makes a
        # frame's bins sum to its windowed mean square (Parseval).
        one_sided = torch.full((n_fft // 2 + 1,), 2.0)
        one_sided[0] = 1.0
        if n_fft % 2 == 0:
            one_sided[-1] = 1.0
        bands = torch.zeros(n_fft // 2 + 1, len(PANNING_BANDS_HZ))
        for index, (low, high) in enumerate(PANNING_BANDS_HZ):
            high = sample_rate / 2 if high is None else high
            bands[:, index] = torch.from_numpy((frequencies >= low) & (frequencies <= high)).float()
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("power_scale", one_sided / (n_fft * window.pow(2).sum()), persistent=False)
        self.register_buffer("frequencies_hz", torch.from_numpy(frequencies).float(), persistent=False)
        self.register_buffer("bark", bark_filterbank(n_fft, sample_rate, n_bark_bands), persistent=False)
        self.register_buffer("k_weight", k_weighting(frequencies, sample_rate), persistent=False)
        self.register_buffer("panning_bands", bands / bands.sum(0), persistent=False)

    def power_spectrogram(self, signal: Tensor) -> Tensor:
        """Scaled STFT power, each frame's bins summing to its windowed mean square.

        Shape:
            ``(..., samples)`` -> ``(..., frames, n_fft // 2 + 1)``.
        """
        leading = signal.shape[:-1]
        spectrum = torch.stft(signal.reshape(-1, signal.shape[-1]), self.n_fft, self.hop_length,
                              window=self.window.to(signal.dtype), center=False, return_complex=True)
        power = spectrum.real.pow(2) + spectrum.imag.pow(2)  # smooth at 0, unlike |X|
        power = power.transpose(-1, -2) * self.power_scale.to(signal.dtype)
        return power.reshape(*leading, *power.shape[-2:])

    def forward(self, mix: Tensor) -> dict[str, Tensor]:
        """All features, keyed and ordered as :data:`FEATURE_UNITS`.

        Shape:
            ``(batch, 2, samples)`` or ``(2, samples)`` -> ``{name: (batch, *dims)}``.
        """
        mix = as_batch(mix, self.n_fft)
        features = self._global(mix)
        left, right = mix[:, 0], mix[:, 1]
        mid, side = (left + right) / 2, (left - right) / 2
        mid_side = self.power_spectrogram(torch.stack([mid, side], 1))  # (batch, 2, frames, bins)
        bark = _db(mid_side.mean(2) @ self.bark.to(mix.dtype))  # (batch, 2, bands)
        features["bark_mid_db"], features["bark_side_db"] = bark[:, 0], bark[:, 1]
        channels = self.power_spectrogram(mix)  # (batch, 2, frames, bins)
        features["loudness_lufs"] = self._loudness(channels)
        features.update(self._spectral(mid_side[:, 0]))
        features["panning_rms"] = self._panning(channels)
        features.update(self._dynamics(mix))
        return {name: features[name] for name in FEATURE_UNITS}

    @staticmethod
    def _global(mix: Tensor) -> dict[str, Tensor]:
        """Diff-MST's whole-excerpt features."""
        power = mix.pow(2).mean(-1)  # (batch, 2)
        peak = mix.abs().amax(-1)
        mid_power = (mix[:, 0] + mix[:, 1]).pow(2).mean(-1)
        side_power = (mix[:, 0] - mix[:, 1]).pow(2).mean(-1)
        return {
            "rms_db": _db(power),
            "crest_db": 20.0 * torch.log10(peak + AMPLITUDE_EPS) - _db(power),
            "stereo_width": side_power / (mid_power + POWER_EPS),
            "stereo_imbalance": (power[:, 1] - power[:, 0]) / (power.sum(-1) + POWER_EPS),
        }

    def _loudness(self, channels: Tensor) -> Tensor:
        weighted = (channels * self.k_weight.to(channels.dtype)).sum(-1)  # (batch, 2, frames)
        return LOUDNESS_OFFSET_DB + _db(weighted.mean(-1).sum(-1))

    def _spectral(self, power: Tensor) -> dict[str, Tensor]:
        """Spectral shape of ``(batch, frames, bins)`` power, frame-wise then averaged."""
        frequencies = self.frequencies_hz.to(power.dtype)
        magnitude = _safe_sqrt(power) - AMPLITUDE_EPS  # finite gradient at 0, exactly 0 there
        total = magnitude.sum(-1, keepdim=True) + AMPLITUDE_EPS
        share = magnitude / total
        centroid = (share * frequencies).sum(-1)
        bandwidth = _safe_sqrt((share * (frequencies - centroid[..., None]).pow(2)).sum(-1))
        cumulative = torch.cumsum(power, -1) / (power.sum(-1, keepdim=True) + POWER_EPS)
        below = torch.sigmoid((ROLLOFF_FRACTION - cumulative) / ROLLOFF_TEMPERATURE)
        rolloff = below[..., :-1].sum(-1) * (frequencies[1] - frequencies[0])  # at most Nyquist
        flatness = torch.exp(torch.log(power + POWER_EPS).mean(-1)) / (power.mean(-1) + POWER_EPS)
        return {"spectral_centroid_hz": centroid.mean(-1), "spectral_bandwidth_hz": bandwidth.mean(-1),
                "spectral_rolloff_hz": rolloff.mean(-1), "spectral_flatness": flatness.mean(-1)}

    def _panning(self, channels: Tensor) -> Tensor:
        """Per bin panning index ``(P_R - P_L) / (P_R + P_L)``, RMS per band, mean over frames."""
        left, right = channels[:, 0], channels[:, 1]  # (batch, frames, bins)
        index = (right - left) / (right + left + POWER_EPS)
        return _safe_sqrt(index.pow(2) @ self.panning_bands.to(channels.dtype)).mean(1)

    def _dynamics(self, mix: Tensor) -> dict[str, Tensor]:
        """automix-toolkit's frame RMS / crest / dynamic spread per channel, averaged over channels."""
        def frame_mean(x: Tensor) -> Tensor:  # (batch, 2, samples) -> (batch, 2, frames)
            return F.avg_pool1d(x, self.n_fft, self.hop_length)

        rms_db = _db(frame_mean(mix.pow(2)))
        peak_db = 20.0 * torch.log10(F.max_pool1d(mix.abs(), self.n_fft, self.hop_length) + AMPLITUDE_EPS)
        level_db = frame_mean(_db(mix.pow(2)))  # mean over each frame of the sample levels
        return {
            "frame_rms_std_db": _safe_sqrt(rms_db.var(-1, correction=0)).mean(1),
            "frame_crest_db": (peak_db - rms_db).mean((1, 2)),
            "dynamic_spread_db": (level_db - rms_db).mean((1, 2)),
        }


def mix_features(mix: Tensor, sample_rate: int, n_fft: int = 4096) -> dict[str, Tensor]:
    """Every feature of :data:`FEATURE_UNITS` (builds a :class:`MixFeatures` on the mix's device).

    Shape:
        ``(batch, 2, samples)`` or ``(2, samples)`` -> ``{name: (batch, *dims)}``.
    """
    return MixFeatures(sample_rate, n_fft).to(mix.device)(mix)


def _check_pair(estimate: Tensor, target: Tensor) -> None:
    if estimate.shape != target.shape:
        raise ValueError(f"estimate and target shapes differ: {tuple(estimate.shape)} vs "
                         f"{tuple(target.shape)}; crop or pad them to the same (batch, 2, samples)")


class AudioFeatureLoss(nn.Module):
    """Weighted sum of L1 distances between the mix features of an estimate and a target.

    Each term is ``weight * mean |f(estimate) - f(target)|`` over the batch and the feature's
    dimensions, in the feature's units (so the default weights put dB, Hz and ratios on one scale).

    Args:
        sample_rate: Hz.
        weights: ``{feature name: weight}``; names left out keep :data:`DEFAULT_WEIGHTS`, a weight
            of 0 drops the term. ``None``: the defaults.
        n_fft: analysis frame length in samples (see :class:`MixFeatures`).

    Shape:
        estimate, target ``(batch, 2, samples)`` or ``(2, samples)`` -> scalar.
    """

    def __init__(self, sample_rate: int, weights: dict[str, float] | None = None, n_fft: int = 4096) -> None:
        super().__init__()
        unknown = sorted(set(weights or {}) - set(FEATURE_UNITS))
        if unknown:
            raise ValueError(f"unknown feature weights {unknown}; features are {list(FEATURE_UNITS)}")
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.features = MixFeatures(sample_rate, n_fft)

    def terms(self, estimate: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Every weighted term (scalar tensors) by feature name, plus their sum as ``"total"``."""
        _check_pair(estimate, target)
        estimated, wanted = self.features(estimate), self.features(target)
        terms = {name: weight * F.l1_loss(estimated[name], wanted[name])
                 for name, weight in self.weights.items() if weight != 0}
        terms["total"] = torch.stack(list(terms.values())).sum() if terms else estimate.new_zeros(())
        return terms

    def forward(self, estimate: Tensor, target: Tensor) -> Tensor:
        """The total loss, a scalar."""
        return self.terms(estimate, target)["total"]


def feature_errors(estimate: Tensor, target: Tensor, sample_rate: int, n_fft: int = 4096) -> dict[str, float]:
    """The evaluation view: mean absolute error of every feature, in the feature's own units.

    Errors average over the batch and the feature's dimensions (channels for ``rms_db`` and
    ``crest_db``, Bark bands, panning bands): ``rms_db`` 1.0 means the channel RMS levels are
    off by 1 dB on average, ``stereo_width`` 0.1 by 0.1 of side/mid energy ratio,
    ``spectral_centroid_hz`` 200.0 by 200 Hz. Units: :data:`FEATURE_UNITS`. No gradient.

    Shape:
        estimate, target ``(batch, 2, samples)`` or ``(2, samples)``.
    """
    _check_pair(estimate, target)
    features = MixFeatures(sample_rate, n_fft).to(estimate.device)
    with torch.no_grad():
        estimated, wanted = features(estimate), features(target)
    return {name: float((estimated[name] - wanted[name]).abs().mean()) for name in FEATURE_UNITS}


def integrated_loudness_lufs(mix: Tensor, sample_rate: int) -> np.ndarray:
    """ITU-R BS.1770-4 gated integrated loudness per mix (pyloudnorm), not differentiable.

    Returns:
        ``(batch,)`` float64 LUFS; ``-inf`` for a silent mix.

    Shape:
        ``(batch, 2, samples)`` or ``(2, samples)``, at least 0.4 s.
    """
    mix = as_batch(mix, 1)
    if mix.shape[-1] < int(0.4 * sample_rate):
        raise ValueError(f"integrated loudness needs at least 0.4 s of audio, got "
                         f"{mix.shape[-1] / sample_rate:.3f} s")
    meter = pyloudnorm.Meter(sample_rate)
    audio = mix.detach().cpu().double().numpy()
    return np.array([meter.integrated_loudness(item.T) if item.any() else -np.inf for item in audio])

"""Torch models of the processors of the mixing-style space, differentiable in every continuous setting.

The mixing-style space (:mod:`mixrep.styles.mix_style`) renders with pedalboard (JUCE) and scipy;
these functions compute the same processors in torch so a style can be rendered, and fitted, by
gradient descent. Linear processors are given as their complex frequency response sampled at the
bins of a real FFT: multiplying a zero-padded signal's spectrum by it filters the signal exactly as
the recursive filter does (phase included), up to the response's tail beyond the padding.

Filters:
    * EQ bands: the biquads of JUCE's ``dsp::IIR::Coefficients`` (``makeLowShelf``,
      ``makeHighShelf``, ``makePeakFilter``), which pedalboard's ``LowShelfFilter``,
      ``HighShelfFilter`` and ``PeakFilter`` use; these are the shelving and peaking filters of
      R. Bristow-Johnson, "Cookbook formulae for audio EQ biquad filter coefficients" (gain
      ``A = 10 ** (gain_db / 40)``, ``alpha = sin(w0) / (2 Q)``).
    * Butterworth high-pass, low-pass and band-pass as :func:`scipy.signal.butter` designs them
      (analog prototype with poles on the unit circle, pre-warped cut-offs, low-pass to high-pass
      or band-pass transform, bilinear transform), evaluated at ``s = j 2 fs tan(w / 2)``: the
      response of :func:`mixrep.audio.primitives.butterworth`, cut-off clamps included.

Shape:
    Settings broadcast together (e.g. ``(strips,)`` or ``(strips, bands)``); a response has the
    settings' shape plus ``(bins,)`` with ``bins = n_fft // 2 + 1``, complex.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

EQ_KINDS: tuple[str, ...] = ("low_shelf", "peak", "high_shelf")
"""The EQ band kinds of :class:`~mixrep.styles.mix_style.EqBand`."""

EQ_TOP_FRACTION = 0.45
"""EQ band frequencies above this fraction of the sample rate are moved down to it (as the renderer does)."""

LOWPASS_TOP_FRACTION = 0.475
"""Butterworth cut-offs are kept below this fraction of the sample rate (``primitives.butterworth``)."""


def rfft_frequencies(n_fft: int, sample_rate: int, dtype: torch.dtype = torch.float64,
                     device: torch.device | None = None) -> Tensor:
    """Frequencies in Hz of the bins of ``torch.fft.rfft`` of length ``n_fft``. Shape ``(n_fft // 2 + 1,)``."""
    return torch.arange(n_fft // 2 + 1, dtype=dtype, device=device) * (sample_rate / n_fft)


def _as_tensor(x: Tensor | float, like: Tensor) -> Tensor:
    return torch.as_tensor(x, dtype=like.dtype, device=like.device)


def biquad_coefficients(kind: str, frequency_hz: Tensor, gain_db: Tensor, q: Tensor, sample_rate: int
                        ) -> tuple[Tensor, Tensor]:
    """Numerator and denominator ``(b0, b1, b2)``, ``(a0, a1, a2)`` of one JUCE EQ biquad.

    Args:
        kind: ``low_shelf``, ``peak`` or ``high_shelf``.
        frequency_hz, gain_db, q: the band's settings (broadcast together); frequencies above
            :data:`EQ_TOP_FRACTION` of the rate are clamped there, as the pedalboard renderer does.

    Returns:
        ``(b, a)``, each of the settings' shape plus ``(3,)``.
    """
    if kind not in EQ_KINDS:
        raise ValueError(f"unknown EQ band kind {kind!r}; use one of {list(EQ_KINDS)}")
    frequency_hz, gain_db, q = torch.broadcast_tensors(frequency_hz, gain_db, q)
    frequency_hz = torch.clamp(frequency_hz, 2.0, EQ_TOP_FRACTION * sample_rate)
    amplitude = torch.pow(10.0, gain_db / 40.0)
    omega = 2.0 * math.pi * frequency_hz / sample_rate
    cos, sin = torch.cos(omega), torch.sin(omega)
    if kind == "peak":
        alpha = sin / (2.0 * q)
        b = (1.0 + alpha * amplitude, -2.0 * cos, 1.0 - alpha * amplitude)
        a = (1.0 + alpha / amplitude, -2.0 * cos, 1.0 - alpha / amplitude)
    else:
        beta = sin * torch.sqrt(amplitude) / q
        plus, minus = amplitude + 1.0, amplitude - 1.0
        sign = 1.0 if kind == "low_shelf" else -1.0  # a high shelf is the low shelf with cos -> -cos
        b = (amplitude * (plus - sign * minus * cos + beta), sign * 2.0 * amplitude * (minus - sign * plus * cos),
             amplitude * (plus - sign * minus * cos - beta))
        a = (plus + sign * minus * cos + beta, -sign * 2.0 * (minus + sign * plus * cos), plus + sign * minus * cos - beta)
    return torch.stack(b, dim=-1), torch.stack(a, dim=-1)


def biquad_response(b: Tensor, a: Tensor, frequencies_hz: Tensor, sample_rate: int) -> Tensor:
    """Complex response ``B(z) / A(z)`` at ``z = exp(j 2 pi f / fs)``.

    Shape:
        ``b``, ``a`` ``(..., 3)``; ``frequencies_hz`` ``(bins,)`` -> ``(..., bins)`` complex.
    """
    omega = 2.0 * math.pi * frequencies_hz / sample_rate
    z1 = torch.polar(torch.ones_like(omega), -omega)  # z^-1
    z2 = z1 * z1

    def poly(c: Tensor) -> Tensor:
        return c[..., 0:1] + c[..., 1:2] * z1 + c[..., 2:3] * z2

    return poly(b) / poly(a)


def eq_band_response(kind: str, frequency_hz: Tensor, gain_db: Tensor, q: Tensor, frequencies_hz: Tensor,
                     sample_rate: int) -> Tensor:
    """Complex response of one EQ band (:func:`biquad_coefficients` then :func:`biquad_response`).

    Shape:
        settings ``(...)``, ``frequencies_hz`` ``(bins,)`` -> ``(..., bins)`` complex.
    """
    b, a = biquad_coefficients(kind, frequency_hz, gain_db, q, sample_rate)
    return biquad_response(b, a, frequencies_hz, sample_rate)


def _butterworth_poles(order: int, dtype: torch.dtype, device: torch.device | None) -> Tensor:
    """Poles of the analog Butterworth low-pass prototype (cut-off 1 rad/s), as scipy's ``buttap``."""
    k = torch.arange(-order + 1, order, 2, dtype=torch.float64, device=device)
    return (-torch.exp(1j * math.pi * k / (2 * order))).to(dtype)


def butterworth_response(highpass_hz: Tensor | None, lowpass_hz: Tensor | None, frequencies_hz: Tensor,
                         sample_rate: int, order: int = 2) -> Tensor:
    """Complex response of :func:`mixrep.audio.primitives.butterworth` (``None`` skips that side).

    With both sides it is scipy's band-pass of order ``2 * order`` (not a cascade), as the
    renderer designs it; cut-offs are clamped as there (low-pass below 0.475 fs, high-pass below
    half the low-pass).

    Shape:
        cut-offs ``(...)`` (broadcast), ``frequencies_hz`` ``(bins,)`` -> ``(..., bins)`` complex;
        all ones when both are ``None``.
    """
    complex_dtype = torch.complex128 if frequencies_hz.dtype == torch.float64 else torch.complex64
    omega = 2.0 * math.pi * frequencies_hz / sample_rate
    if highpass_hz is None and lowpass_hz is None:
        return torch.ones_like(omega, dtype=complex_dtype)
    top = LOWPASS_TOP_FRACTION * sample_rate
    if lowpass_hz is not None:
        lowpass_hz = torch.clamp(lowpass_hz, max=top)
    if highpass_hz is not None:
        ceiling = 0.5 * (lowpass_hz if lowpass_hz is not None else _as_tensor(top, highpass_hz))
        highpass_hz = torch.minimum(highpass_hz, ceiling)
    fs2 = 2.0 * sample_rate
    # s on the analog axis that the bilinear transform maps to each digital frequency; clamped off
    # DC and Nyquist, where s is 0 or infinite (the response there is its limit, 0 outside the band).
    s = 1j * fs2 * torch.tan(torch.clamp(omega, 1e-9, math.pi * (1 - 1e-9)) / 2.0).to(complex_dtype)

    def warped(hz: Tensor) -> Tensor:
        return (fs2 * torch.tan(math.pi * hz / sample_rate)).unsqueeze(-1).to(complex_dtype)

    if highpass_hz is not None and lowpass_hz is not None:
        low, high = warped(highpass_hz), warped(lowpass_hz)
        centre_sq, bandwidth = low * high, high - low
        normalised = (s * s + centre_sq) / (s * bandwidth)
    elif highpass_hz is not None:
        normalised = warped(highpass_hz) / s
    else:
        normalised = s / warped(lowpass_hz)
    poles = _butterworth_poles(order, complex_dtype, frequencies_hz.device)
    response = torch.ones_like(normalised)
    for pole in poles:
        response = response * (-pole) / (normalised - pole)  # unity gain in the pass band
    return response

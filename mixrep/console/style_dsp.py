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

Buses (exact, checked against the plugins' impulse responses):
    * Delay: pedalboard's ``Delay(mix=1.0)``, ``z^-D / (1 - g z^-D)`` with pedalboard's whole-sample
      ``D`` (:func:`feedback_delay_response`).
    * Reverb: pedalboard's ``Reverb``, which is ``juce::Reverb`` (Jezar's Freeverb: 8 parallel
      low-pass-feedback combs and 4 series all-passes per channel), linear and time-invariant for
      fixed settings, as its rational 2 x 2 response (:func:`freeverb_response`).

Shape:
    Settings broadcast together (e.g. ``(strips,)`` or ``(strips, bands)``); a response has the
    settings' shape plus ``(bins,)`` with ``bins = n_fft // 2 + 1``, complex.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mixrep.styles.mix_style import EQ_KINDS


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


def _delay_phasor(delay_samples: Tensor, frequencies_hz: Tensor, sample_rate: int) -> Tensor:
    """``z ** -delay = exp(-j w delay)`` at each frequency. Shape ``(...)``, ``(bins,)`` -> ``(..., bins)`` complex."""
    omega = 2.0 * math.pi * frequencies_hz / sample_rate
    phase = -delay_samples.unsqueeze(-1).to(omega.dtype) * omega
    return torch.polar(torch.ones_like(phase), phase)


def delay_samples(delay_seconds: Tensor, sample_rate: int) -> Tensor:
    """The delay in samples pedalboard's ``Delay`` applies: ``floor(float32(delay_seconds) * sample_rate)``.

    The value is that whole number; the gradient is the continuous delay's, ``sample_rate`` per
    second (a straight-through estimate: the whole-sample delay itself is piecewise constant).

    Shape:
        ``(...)`` -> ``(...)``, the dtype of ``delay_seconds``.
    """
    continuous = delay_seconds * sample_rate
    whole = torch.floor(delay_seconds.detach().to(torch.float32).to(torch.float64) * sample_rate).to(continuous.dtype)
    return continuous + (whole - continuous).detach()


def feedback_delay_response(delay_seconds: Tensor, feedback: Tensor, frequencies_hz: Tensor, sample_rate: int,
                            whole_samples: bool = True) -> Tensor:
    """Complex response of pedalboard's ``Delay(delay_seconds, feedback, mix=1.0)``: ``z^-D / (1 - g z^-D)``.

    pedalboard delays by whole samples, ``D = floor(float32(delay_seconds) * fs)`` (measured on
    its impulse responses); ``whole_samples=True`` uses that ``D`` (exact) with the continuous
    delay's gradient (:func:`delay_samples`); ``False`` uses the continuous ``D = delay_seconds * fs``,
    a fractional delay that differs from pedalboard's by less than one sample (22.7 us at 44.1 kHz).

    Shape:
        settings ``(...)`` (broadcast), ``frequencies_hz`` ``(bins,)`` -> ``(..., bins)`` complex.
    """
    delay_seconds, feedback = torch.broadcast_tensors(delay_seconds, feedback)
    delay = delay_samples(delay_seconds, sample_rate) if whole_samples else delay_seconds * sample_rate
    phasor = _delay_phasor(delay, frequencies_hz, sample_rate)
    return phasor / (1.0 - feedback.unsqueeze(-1).to(phasor.real.dtype) * phasor)


FREEVERB_COMB_TUNINGS: tuple[int, ...] = (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617)
"""Comb filter lengths in samples at 44.1 kHz (Jezar's Freeverb, as ``juce::Reverb`` uses them)."""

FREEVERB_ALLPASS_TUNINGS: tuple[int, ...] = (556, 441, 341, 225)
"""All-pass lengths in samples at 44.1 kHz."""

FREEVERB_STEREO_SPREAD = 23
"""The right channel's filters are this many samples (at 44.1 kHz) longer than the left's."""

FREEVERB_INPUT_GAIN = 0.015
"""``juce::Reverb`` feeds ``(left + right) * 0.015`` into every comb."""


def freeverb_lengths(sample_rate: int) -> tuple[list[list[int]], list[list[int]]]:
    """Comb and all-pass lengths per channel ``[left, right]`` as ``juce::Reverb::setSampleRate`` sets them
    (``int(fs) * tuning // 44100``, integer arithmetic)."""
    rate = int(sample_rate)

    def scaled(tunings: tuple[int, ...]) -> list[list[int]]:
        return [[rate * (t + spread) // 44100 for t in tunings] for spread in (0, FREEVERB_STEREO_SPREAD)]

    return scaled(FREEVERB_COMB_TUNINGS), scaled(FREEVERB_ALLPASS_TUNINGS)


def freeverb_response(room_size: Tensor, damping: Tensor, width: Tensor, frequencies_hz: Tensor, sample_rate: int
                      ) -> Tensor:
    """Complex response of the reverb bus: pedalboard's ``Reverb(room_size, damping, width,
    wet_level=1/3, dry_level=0)``, which is ``juce::Reverb`` (Freeverb), as a 2 x 2 matrix.

    ``juce::Reverb`` feeds ``g (L + R)``, ``g = 0.015``, into 8 parallel combs per channel, each a
    delay of ``N`` samples in a loop with a one-pole low-pass (damping ``d = 0.4 damping``) and the
    feedback ``f = 0.28 room_size + 0.7``:
    ``C_N(z) = z^-N (1 - d z^-1) / (1 - d z^-1 - f (1 - d) z^-N)``; their sum goes through 4
    series all-passes ``A_N(z) = (1.5 z^-N - 1) / (1 - 0.5 z^-N)`` (Freeverb's, which are not
    exactly all-pass); the right channel's lengths are 23 samples (at 44.1 kHz) longer. The wet
    gains are ``wet1 = 3 wet_level (1 + width) / 2``, ``wet2 = 3 wet_level (1 - width) / 2``:
    ``out_L = wet1 P_L + wet2 P_R``, ``out_R = wet1 P_R + wet2 P_L`` (``P`` a channel's path).
    With ``wet_level = 1/3`` the wet gain is 1. The filter is linear and time-invariant, so this
    is its exact response (pedalboard's float32 arithmetic aside).

    Shape:
        settings ``(...)`` (broadcast), ``frequencies_hz`` ``(bins,)`` ->
        ``(..., out=2, in=2, bins)`` complex; both input columns are equal (the reverb hears L + R).
    """
    room_size, damping, width = torch.broadcast_tensors(room_size, damping, width)
    combs, allpasses = freeverb_lengths(sample_rate)
    omega = 2.0 * math.pi * frequencies_hz / sample_rate
    z1 = torch.polar(torch.ones_like(omega), -omega)
    d = (0.4 * damping).unsqueeze(-1).to(omega.dtype)
    f = (0.28 * room_size + 0.7).unsqueeze(-1).to(omega.dtype)
    lowpass = 1.0 - d * z1
    paths = []
    for comb_lengths, allpass_lengths in zip(combs, allpasses):
        path = torch.zeros(1, dtype=z1.dtype, device=z1.device)
        for n in comb_lengths:
            zn = _zpow(omega, n)
            path = path + zn * lowpass / (lowpass - f * (1.0 - d) * zn)
        for n in allpass_lengths:
            zn = _zpow(omega, n)
            path = path * (1.5 * zn - 1.0) / (1.0 - 0.5 * zn)
        paths.append(FREEVERB_INPUT_GAIN * path)
    left, right = paths
    w = width.unsqueeze(-1).to(omega.dtype)
    wet1, wet2 = 0.5 * (1.0 + w), 0.5 * (1.0 - w)
    out_left, out_right = wet1 * left + wet2 * right, wet1 * right + wet2 * left
    return torch.stack([torch.stack([out_left, out_left], dim=-2), torch.stack([out_right, out_right], dim=-2)],
                       dim=-3)


def _zpow(omega: Tensor, n: int) -> Tensor:
    """``z ** -n`` for a whole ``n``. Shape ``(bins,)`` -> ``(bins,)`` complex."""
    phase = -n * omega
    return torch.polar(torch.ones_like(phase), phase)

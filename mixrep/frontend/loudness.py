"""Integrated loudness (ITU-R BS.1770-4) in torch: K-weighting at any rate, gating, batched.

K-weighting is the two biquads of BS.1770-4 (Tables 1 and 2): a high shelf (+4 dB above about
1.5 kHz, modelling the head) followed by a high pass (RLB weighting, 38 Hz). The standard gives
their coefficients at 48 kHz only; :func:`k_weighting_sos` computes them at any rate from the
analogue prototype parameters that reproduce those coefficients exactly (B. De Man, "Evaluation of
implementations of the EBU R128 loudness measurement", AES Convention 145, 2018: shelf gain
3.99984 dB, Q 0.70718, 1681.97 Hz; high pass Q 0.50033, 38.1355 Hz, bilinear transform). At 48 kHz
they equal the published coefficients to 1e-9; ``pyloudnorm.Meter``'s default K-weighting uses
rounder cookbook parameters (4 dB, Q 1/sqrt(2), 1500 Hz; 38 Hz, Q 0.5) and reads 0.03 to 0.05 LU
lower at 44.1/48 kHz (up to 0.09 LU at 22.05 kHz); ``pyloudnorm.Meter(rate, filter_class="DeMan")``
uses the exact parameters and agrees with this module within 0.001 LU (tested).

Filtering runs in the frequency domain so it batches on any device and is differentiable: the
clip's DFT (shared with the spectral features, see :mod:`mixrep.frontend.features`) times the
filter's frequency response is the *circular* convolution with the filter's impulse response;
the response decays below 1e-11 within :data:`IR_SECONDS` (the high pass's slowest pole), so the
circular result differs from the causal IIR output only in the first ``IR_SECONDS``, where the
tail of the clip wrapped around. :func:`k_weight` subtracts that wrapped tail (a short
convolution of the clip's last ``IR_SECONDS`` with the impulse response), which makes the output
the IIR filter's (zero initial state, as ``scipy.signal.lfilter``) to float32 precision.

Gating follows BS.1770-4 eq. 1-7 with ``pyloudnorm``'s block boundaries: 400 ms blocks every
100 ms, absolute gate -70 LUFS, relative gate -10 LU, channel weights 1 (stereo). A clip shorter
than one block is measured as a single block spanning it; a clip without any block above the
absolute gate (silence) reads :data:`LOUDNESS_FLOOR_LUFS`.

Shape:
    :func:`k_weight`: ``(..., samples)`` signals and their ``(..., samples // 2 + 1)`` rFFT ->
    ``(..., samples)``; :func:`gated_loudness`: ``(..., samples)`` channel-summed K-weighted
    power -> ``(...)`` LUFS.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.signal
import torch

LOUDNESS_FLOOR_LUFS = -70.0
"""BS.1770 absolute gate: quieter blocks are ignored; an all-quiet signal reads this value."""
BLOCK_SECONDS = 0.4
BLOCK_STEP_SECONDS = 0.1
RELATIVE_GATE_LU = -10.0
LOUDNESS_OFFSET_DB = -0.691
"""The constant of BS.1770 eq. 2 (K-weighting's gain at 997 Hz compensated)."""
IR_SECONDS = 0.1
"""Length of K-weighting impulse response kept; the rest is below 1e-11 of its first sample."""

# Analogue prototype parameters reproducing BS.1770-4's 48 kHz coefficients (De Man, 2018).
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
_SHELF_HZ = 1681.974450955533
_SHELF_BOOST_EXPONENT = 0.4996667741545416
_HIGHPASS_Q = 0.5003270373238773
_HIGHPASS_HZ = 38.13547087602444


@functools.lru_cache(maxsize=32)
def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """K-weighting as two second-order sections ``[b0, b1, b2, 1, a1, a2]`` at ``sample_rate``.

    Returns:
        ``(2, 6)`` float64: the high shelf, then the high pass (``scipy.signal.sosfilt`` order).
    """
    k = math.tan(math.pi * _SHELF_HZ / sample_rate)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh**_SHELF_BOOST_EXPONENT
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf = [(vh + vb * k / _SHELF_Q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / _SHELF_Q + k * k) / a0,
             1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _SHELF_Q + k * k) / a0]
    k = math.tan(math.pi * _HIGHPASS_HZ / sample_rate)
    a0 = 1.0 + k / _HIGHPASS_Q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _HIGHPASS_Q + k * k) / a0]
    return np.array([shelf, highpass])


def _sos_response(sos: np.ndarray, num_bins: int, n: int) -> np.ndarray:
    """Frequency response of ``sos`` at the first ``num_bins`` bins of an ``n``-point DFT (complex128)."""
    z_inv = np.exp(-2j * np.pi * np.arange(num_bins) / n)
    response = np.ones(num_bins, dtype=np.complex128)
    for b0, b1, b2, a0, a1, a2 in sos:
        response *= (b0 + b1 * z_inv + b2 * z_inv**2) / (a0 + a1 * z_inv + a2 * z_inv**2)
    return response


@functools.lru_cache(maxsize=32)
def _k_weighting_layout(samples: int, sample_rate: int) -> dict[str, np.ndarray | int]:
    """Responses and sizes for one clip length: the DFT response, the wrap-correction filter."""
    sos = k_weighting_sos(sample_rate)
    tail = min(samples, int(math.ceil(IR_SECONDS * sample_rate)))
    fft_size = 1 << (2 * tail - 1).bit_length()  # linear convolution of two tails fits, power of two
    return {
        "response": _sos_response(sos, samples // 2 + 1, samples),
        "tail": tail,
        "fft_size": fft_size,
        "tail_response": np.fft.rfft(scipy.signal.sosfilt(sos, np.eye(1, tail)[0]), fft_size),
    }


@functools.lru_cache(maxsize=16)
def _device_layout(samples: int, sample_rate: int, device: torch.device, dtype: torch.dtype) -> dict:
    layout = _k_weighting_layout(samples, sample_rate)
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    return {
        "response": torch.from_numpy(layout["response"]).to(device=device, dtype=complex_dtype),
        "tail_response": torch.from_numpy(layout["tail_response"]).to(device=device, dtype=complex_dtype),
        "tail": layout["tail"],
        "fft_size": layout["fft_size"],
    }


def k_weight(signals: torch.Tensor, spectrum: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """K-weight real signals given with their rFFT: the causal BS.1770 filter, zero initial state.

    Args:
        signals: real waveforms (float32 or float64).
        spectrum: ``torch.fft.rfft(signals)`` (passed in so callers share one FFT).
        sample_rate: Hz.

    Returns:
        The K-weighted waveforms, same shape and dtype as ``signals``.

    Shape:
        ``signals``: ``(..., samples)``, ``spectrum``: ``(..., samples // 2 + 1)`` -> ``(..., samples)``.
    """
    samples = signals.shape[-1]
    layout = _device_layout(samples, sample_rate, signals.device, signals.dtype)
    circular = torch.fft.irfft(spectrum * layout["response"], n=samples)
    # The causal output's tail beyond the clip wrapped onto its start: remove it.
    tail, fft_size = layout["tail"], layout["fft_size"]
    last = signals[..., samples - tail:]
    wrapped = torch.fft.irfft(torch.fft.rfft(last, n=fft_size) * layout["tail_response"], n=fft_size)
    circular[..., :tail - 1] -= wrapped[..., tail:2 * tail - 1]  # in place: irfft's backward needs no output
    return circular


@functools.lru_cache(maxsize=32)
def loudness_blocks(samples: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Gating blocks ``[lower[j], upper[j])`` and the block length used to normalise their energy.

    Block ``j`` spans ``[int(0.4 * 0.25 * j * rate), int(0.4 * (0.25 * j + 1) * rate))`` clipped
    to the clip, for ``round((seconds - 0.4) / 0.1) + 1`` blocks (pyloudnorm's indexing); a clip
    shorter than one block is one block spanning it.
    """
    step = BLOCK_STEP_SECONDS / BLOCK_SECONDS
    if samples < BLOCK_SECONDS * sample_rate:
        return np.zeros(1, dtype=np.int64), np.full(1, samples, dtype=np.int64), samples
    duration = samples / sample_rate
    count = int(np.round((duration - BLOCK_SECONDS) / (BLOCK_SECONDS * step))) + 1
    lower = np.array([int(BLOCK_SECONDS * (j * step) * sample_rate) for j in range(count)], dtype=np.int64)
    upper = np.array([min(int(BLOCK_SECONDS * (j * step + 1) * sample_rate), samples) for j in range(count)],
                     dtype=np.int64)
    return lower, upper, int(BLOCK_SECONDS * sample_rate)


@functools.lru_cache(maxsize=32)
def _regular_step(samples: int, sample_rate: int) -> int | None:
    """The block step in samples when block ``j`` is exactly segments ``j .. j + 3`` of that length."""
    lower, upper, block_samples = loudness_blocks(samples, sample_rate)
    step = int(lower[1] - lower[0]) if len(lower) > 1 else 0
    regular = (step > 0 and 4 * step == block_samples and np.array_equal(lower, np.arange(len(lower)) * step)
               and np.array_equal(upper, np.minimum(lower + block_samples, samples)))
    return step if regular else None


def _block_power(power: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Mean power of every gating block ``(..., blocks)`` in float64 (energy / 400 ms of samples)."""
    samples = power.shape[-1]
    lower, upper, block_samples = loudness_blocks(samples, sample_rate)
    step = _regular_step(samples, sample_rate)
    if step is None:  # irregular boundaries (e.g. 11025 Hz): exact running sums in float64
        running = torch.nn.functional.pad(power.double().cumsum(dim=-1), (1, 0))
        lower_t, upper_t = torch.from_numpy(lower).to(power.device), torch.from_numpy(upper).to(power.device)
        return (running[..., upper_t] - running[..., lower_t]) / block_samples
    # 100 ms segments summed in float32 (short sums), blocks of four in float64.
    whole = samples // step
    segments = power[..., :whole * step].unflatten(-1, (whole, step)).sum(dim=-1).double()
    if whole * step < samples:
        segments = torch.cat([segments, power[..., whole * step:].sum(dim=-1, keepdim=True).double()], dim=-1)
    segments = torch.nn.functional.pad(segments, (0, 3))
    blocks = len(lower)
    return sum(segments[..., k:k + blocks] for k in range(4)) / block_samples


def gated_loudness(power: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Integrated loudness of K-weighted signals (BS.1770-4 eq. 4-7), floored at -70 LUFS.

    Args:
        power: per-sample K-weighted power summed over channels (``left**2 + right**2``).
        sample_rate: Hz.

    Returns:
        LUFS, dtype of ``power``; differentiable (gates are piecewise constant).

    Shape:
        ``(..., samples)`` -> ``(...)``.
    """
    block_power = _block_power(power, sample_rate)  # (..., blocks) float64
    absolute_power = 10.0 ** ((LOUDNESS_FLOOR_LUFS - LOUDNESS_OFFSET_DB) / 10.0)
    above_absolute = (block_power >= absolute_power).double()
    count = above_absolute.sum(dim=-1, keepdim=True)
    mean_absolute = (block_power * above_absolute).sum(dim=-1, keepdim=True) / count.clamp(min=1.0)
    relative_power = mean_absolute * 10.0 ** (RELATIVE_GATE_LU / 10.0)
    gated = ((block_power > relative_power) & (block_power > absolute_power)).double()
    gated_count = gated.sum(dim=-1)
    mean_gated = (block_power * gated).sum(dim=-1) / gated_count.clamp(min=1.0)
    measured = gated_count > 0
    lufs = LOUDNESS_OFFSET_DB + 10.0 * torch.log10(torch.where(measured, mean_gated, torch.ones_like(mean_gated)))
    lufs = torch.where(measured, lufs.clamp(min=LOUDNESS_FLOOR_LUFS), torch.full_like(lufs, LOUDNESS_FLOOR_LUFS))
    return lufs.to(power.dtype)

"""Pure, differentiable audio processors of the mixing console (no state, no ``nn.Parameter``).

Every function takes audio batched over graph nodes and the raw parameters of each node *inside
their safe ranges* (the modules of :mod:`mixrep.console.processors` clamp raw values to the ranges
their ``parameter_specs()`` declare before calling these) and maps raw to physical itself; the
mapping of each processor lives in exactly one place, its ``*_physical`` helper below, which the
modules reuse for reporting.

Every processor takes an optional dry/wet ``weight`` ``(nodes,)``: without it the function returns
the processed ("wet") signal ``f(u)`` of Lee et al. (DAFx 2024); with it, ``w f(u) + (1 - w) u`` (their eq.
2), computed the cheap way for each processor (folded into its FIR, its gain, its stereo matrix or
its gain envelope) instead of as a separate pass over the audio.

The processors follow appendix B of Lee et al. (DAFx 2024); deviations are stated where they occur.

Shape:
    Audio is ``(nodes, channels=2, samples)``. A raw parameter declared with size ``(k, ...)``
    arrives as ``(nodes, k, ...)``; ``weight`` is ``(nodes,)`` in ``[0, 1]``.

References:
    Sungho Lee, Marco A. Martínez-Ramírez, Wei-Hsiang Liao, Stefan Uhlich, Giorgio Fabbro, Kyogu Lee,
    Yuki Mitsufuji, "Searching for Music Mixing Graphs: A Pruning Approach", DAFx 2024.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

LOG10_OVER_20 = math.log(10.0) / 20.0
"""Multiply a gain in dB by this to get a natural-log amplitude gain (nepers)."""
ENERGY_NP_TO_DB = 10.0 / math.log(10.0)
"""Multiply a natural-log *energy* ratio by this to get dB (10 log10)."""
LOG_EPS = 1e-10
"""Floor of energies/norms before a log (-100 dB); keeps silence finite."""
GAIN_DB_RANGE = (-80.0, 24.0)
"""Per-channel gain range of gain/panning in dB; -80 dB is the silent channel of a hard pan."""


# --------------------------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def fast_fft_length(minimum: int) -> int:
    """Smallest FFT length >= ``minimum`` of the form ``2^a 3^b 5^c 7^d`` with ``a >= 6``.

    The 5-smooth lengths of ``scipy.fft.next_fast_len`` include slow ones for pocketfft (torch's
    CPU FFT): 168750 = 2 * 3^3 * 5^5 takes 1.4x and 177147 = 3^11 2.9x the time of the nearby
    169344 and 179200; requiring a factor 64 avoids them (18 % less time over the lengths a
    console uses, measured on this machine; cuFFT is fast on these lengths too).
    """
    n = max(64, -(-int(minimum) // 64) * 64)
    while True:
        odd = n
        while odd % 2 == 0:
            odd //= 2
        for p in (3, 5, 7):
            while odd % p == 0:
                odd //= p
        if odd == 1:
            return n
        n += 64


def _sum_to(x: Tensor, shape: torch.Size) -> Tensor:
    """Sum ``x`` over the leading axes that were broadcast from ``shape`` (all but the last)."""
    lead = x.ndim - len(shape)
    if lead:
        x = x.sum(tuple(range(lead)))
    dims = tuple(i for i, s in enumerate(shape[:-1]) if s == 1 and x.shape[i] != 1)
    return x.sum(dims, keepdim=True) if dims else x


class _FFTConvolve(torch.autograd.Function):
    """``y = crop(irfft(rfft(x) rfft(h)))`` with a backward of three real FFTs.

    Autograd's own backward of the same expression zero-pads twice, takes the backward of each
    ``rfft`` through a complex-to-complex transform and multiplies full complex spectra several
    times; here the gradients are the cross-correlations ``g * h`` and ``g * x`` evaluated with the
    forward's saved spectra: one ``rfft`` of the padded output gradient and one ``irfft`` per input.
    """

    @staticmethod
    def forward(ctx, x: Tensor, h: Tensor, center: int, n_fft: int) -> Tensor:  # type: ignore[override]
        spectrum_x = torch.fft.rfft(x, n=n_fft)
        spectrum_h = torch.fft.rfft(h, n=n_fft)
        length = x.shape[-1]
        y = torch.fft.irfft(spectrum_x * spectrum_h, n=n_fft)[..., center : center + length]
        need_x, need_h = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.save_for_backward(spectrum_x if need_h else None, spectrum_h if need_x else None)
        ctx.meta = (x.shape, h.shape, center, n_fft)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        spectrum_x, spectrum_h = ctx.saved_tensors
        x_shape, h_shape, center, n_fft = ctx.meta
        length, taps = x_shape[-1], h_shape[-1]
        spectrum_g = torch.fft.rfft(F.pad(grad, (center, n_fft - center - length)))
        grad_x = grad_h = None
        if ctx.needs_input_grad[0]:
            product = _sum_to(spectrum_g * spectrum_h.conj(), x_shape)
            grad_x = torch.fft.irfft(product, n=n_fft)[..., :length]
        if ctx.needs_input_grad[1]:
            product = _sum_to(spectrum_g * spectrum_x.conj(), h_shape)
            grad_h = torch.fft.irfft(product, n=n_fft)[..., :taps]
        return grad_x, grad_h, None, None


def fft_convolve(x: Tensor, h: Tensor, center: int = 0) -> Tensor:
    """Linear convolution via a single real FFT, cropped to the input length.

    Computes ``y[n] = sum_k h[k] x[n + center - k]`` for ``0 <= n < L``: ``center`` is the index
    of the kernel's zero lag (0 for causal kernels, ``(K - 1) / 2`` for zero-phase ones). The FFT
    is the smallest fast length free of circular wrap-around on the kept span, no longer.

    Args:
        x: signals, ``(..., L)``.
        h: kernels broadcastable against ``x`` except in the last axis, ``(..., K)``.
        center: zero-lag index of ``h``, ``0 <= center < K``.

    Shape:
        ``(..., L)``, broadcast leading axes of ``x`` and ``h``.
    """
    length, taps = x.shape[-1], h.shape[-1]
    if not 0 <= center < taps:
        raise ValueError(f"center {center} outside the kernel of {taps} taps")
    n_fft = fast_fft_length(max(length + taps - 1 - center, length + center))
    return _FFTConvolve.apply(x, h, center, n_fft)


def with_dry(kernel: Tensor, weight: Tensor | None, center: int) -> Tensor:
    """Fold the dry/wet mix into an FIR: ``w h + (1 - w) delta[n - center]``.

    Shape:
        kernel: ``(nodes, channels, taps)``; weight: ``(nodes,)`` or ``None`` (kernel unchanged).
    """
    if weight is None:
        return kernel
    w = weight.to(kernel.dtype)[:, None, None]
    dry = (1.0 - w).expand(-1, kernel.shape[1], 1)
    wet = w * kernel
    return torch.cat([wet[..., :center], wet[..., center : center + 1] + dry,
                      wet[..., center + 1 :]], -1)


def zero_phase_fir(log_magnitude: Tensor) -> Tensor:
    """Zero-phase, Hann-windowed FIR from a sampled log-magnitude response (Lee et al. 2024, eq. 12).

    ``K`` log-magnitudes at bins ``k * sr / (2K - 1)`` give a symmetric FIR of ``2K - 1`` taps
    whose zero lag sits at index ``K - 1``.

    Args:
        log_magnitude: natural-log magnitude per bin, ``(..., K)``.

    Shape:
        ``(..., 2K - 1)``.
    """
    bins = log_magnitude.shape[-1]
    taps = 2 * bins - 1
    fir = torch.fft.irfft(torch.exp(log_magnitude).to(_complex_of(log_magnitude)), n=taps)
    fir = torch.roll(fir, bins - 1, dims=-1)
    return fir * _hann(taps, log_magnitude.dtype, log_magnitude.device)


def _complex_of(x: Tensor) -> torch.dtype:
    return torch.complex128 if x.dtype == torch.float64 else torch.complex64


@lru_cache(maxsize=64)
def _hann_cpu(length: int, dtype: torch.dtype) -> Tensor:
    return torch.hann_window(length, periodic=False, dtype=dtype)


def _hann(length: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    return _hann_cpu(length, dtype).to(device)


def dry_wet(dry: Tensor, wet: Tensor, weight: Tensor) -> Tensor:
    """``weight * wet + (1 - weight) * dry`` (Lee et al. 2024, eq. 2).

    Shape:
        dry, wet: ``(nodes, 2, samples)``; weight: ``(nodes,)`` in ``[0, 1]``.
    """
    return torch.lerp(dry, wet, weight[:, None, None].to(dry.dtype))


def _blend_gain(gain: Tensor, weight: Tensor | None) -> Tensor:
    """``w g + (1 - w)`` for a gain ``g`` of shape ``(nodes, ...)``: dry/wet of a gain stage."""
    if weight is None:
        return gain
    w = weight.to(gain.dtype).reshape(-1, *([1] * (gain.ndim - 1)))
    return 1.0 + w * (gain - 1.0)


def mid(x: Tensor) -> Tensor:
    """Mid channel ``(left + right) / 2``. Shape: ``(nodes, 2, samples)`` -> ``(nodes, 1, samples)``."""
    return x.mean(dim=-2, keepdim=True)


# --------------------------------------------------------------------------------------------
# Gain/panning and stereo imager
# --------------------------------------------------------------------------------------------
def gain_pan(x: Tensor, log_gain: Tensor, weight: Tensor | None = None) -> Tensor:
    """Channel-wise gain ``exp(log_gain)`` (Lee et al. 2024, eq. 10).

    Shape:
        x: ``(nodes, 2, samples)``; log_gain: ``(nodes, 2)`` nepers per channel.
    """
    return x * _blend_gain(torch.exp(log_gain), weight)[..., None]


def pan_to_log_gain(gain_db: Tensor, pan: Tensor, floor_db: float = GAIN_DB_RANGE[0]) -> Tensor:
    """Constant-power pan law mapped onto gain/panning's raw ``log_gain``.

    ``left = g sqrt(2) cos(theta)``, ``right = g sqrt(2) sin(theta)``, ``theta = (pan + 1) pi / 4``,
    so ``left^2 + right^2 = 2 g^2`` for every pan and centre (``pan = 0``) gives ``g`` per channel.
    The cosine is evaluated as ``sin((1 - pan) pi / 4)``, exactly 0 at ``pan = 1``; a channel
    below ``floor_db`` (the silent side of a hard pan) gets ``floor_db``, gain/panning's lowest gain.

    Args:
        gain_db: overall gain ``20 log10 g``, ``(nodes,)``.
        pan: ``-1`` hard left, ``0`` centre, ``+1`` hard right, ``(nodes,)``.
        floor_db: lowest per-channel gain in dB.

    Shape:
        ``(nodes, 2)``.
    """
    quarter = math.pi / 4.0
    base = gain_db * LOG10_OVER_20 + 0.5 * math.log(2.0)
    sides = torch.stack([torch.sin((1.0 - pan) * quarter), torch.sin((1.0 + pan) * quarter)], -1)
    floor = floor_db * LOG10_OVER_20
    return torch.clamp(base[..., None] + torch.log(sides.clamp(min=1e-30)), min=floor)


def gain_pan_physical(log_gain: Tensor) -> dict[str, Tensor]:
    """``gain_db`` (constant-power overall gain), ``pan`` in [-1, 1], and per-channel dB."""
    gains = torch.exp(log_gain)
    overall = torch.sqrt((gains**2).sum(-1) / 2.0)
    theta = torch.atan2(gains[..., 1], gains[..., 0])
    return {
        "gain_db": 20.0 * torch.log10(overall),
        "pan": theta * (4.0 / math.pi) - 1.0,
        "left_gain_db": log_gain[..., 0] / LOG10_OVER_20,
        "right_gain_db": log_gain[..., 1] / LOG10_OVER_20,
    }


def stereo_imager(x: Tensor, log_width: Tensor, weight: Tensor | None = None) -> Tensor:
    """Scale the side channel by ``exp(log_width)`` (Lee et al. 2024, eq. 11).

    ``left' = (l + r) / 2 + w (l - r) / 2`` and ``right' = (l + r) / 2 - w (l - r) / 2``. The
    imager is affine in the width and the identity at width 1, so its dry/wet mix is the imager
    at width ``weight * width + 1 - weight``.

    Shape:
        x: ``(nodes, 2, samples)``; log_width: ``(nodes, 1)``.
    """
    width = _blend_gain(torch.exp(log_width), weight)[..., None]  # (nodes, 1, 1)
    same, cross = 0.5 * (1.0 + width), 0.5 * (1.0 - width)
    matrix = torch.cat([torch.cat([same, cross], -1), torch.cat([cross, same], -1)], -2)
    return torch.bmm(matrix.to(x.dtype), x)  # (nodes, 2, 2) @ (nodes, 2, samples)


def stereo_imager_physical(log_width: Tensor) -> dict[str, Tensor]:
    """``width`` (side gain ratio; 0 mono, 1 unchanged) and ``width_db``."""
    return {"width": torch.exp(log_width[..., 0]), "width_db": log_width[..., 0] / LOG10_OVER_20}


# --------------------------------------------------------------------------------------------
# Equaliser
# --------------------------------------------------------------------------------------------
def equalizer(x: Tensor, log_magnitude: Tensor, weight: Tensor | None = None) -> Tensor:
    """Zero-phase FIR equaliser, the same FIR on both channels (Lee et al. 2024, eqs. 12-13).

    Shape:
        x: ``(nodes, 2, samples)``; log_magnitude: ``(nodes, K)`` (``K = 1024`` gives 2047 taps).
    """
    center = log_magnitude.shape[-1] - 1
    fir = with_dry(zero_phase_fir(log_magnitude)[:, None, :], weight, center)
    return fft_convolve(x, fir, center=center)


def equalizer_physical(log_magnitude: Tensor) -> dict[str, Tensor]:
    """``gain_db`` per bin; bin ``k`` sits at ``k * sample_rate / (2K - 1)`` Hz."""
    return {"gain_db": log_magnitude / LOG10_OVER_20}


# --------------------------------------------------------------------------------------------
# Compressor and noise gate
# --------------------------------------------------------------------------------------------
def _scan_decay(state: Tensor, decay: Tensor) -> Tensor:
    """Inclusive scan ``s_j = c_j + d s_{j-1}`` along the last axis in ``log2(J)`` steps.

    Shape:
        state ``c``: ``(..., J)``; decay ``d``: broadcastable to ``(..., 1)``.
    """
    shift = 1
    while shift < state.shape[-1]:
        state = torch.cat([state[..., :shift], state[..., shift:] + decay * state[..., :-shift]], -1)
        decay = decay * decay
        shift *= 2
    return state


def one_pole_smooth(x: Tensor, alpha: Tensor, block: int) -> Tensor:
    """Exact one-pole smoother ``g[n] = a g[n-1] + (1 - a) x[n]``, ``g[-1] = 0`` (Lee et al. 2024, eq. 16).

    Evaluated in parallel, without truncating the impulse response: within blocks of ``block``
    samples ``g = (1 - a) a^n cumsum(a^-k x[k])``, and the state carried across blocks by a
    log-depth scan. Deviation from Lee et al. (eq. 18 approximates the filter by a frequency-sampled
    FIR of fixed length, which cuts long time constants short): the recursion is computed exactly.

    Args:
        x: non-negative signal (an energy), ``(nodes, channels, samples)``.
        alpha: smoothing coefficient per node in (0, 1), ``(nodes,)``.
        block: block length; ``block * -log(alpha)`` must stay below ~80 (float32 range), which
            the dynamics processors guarantee through their shortest time constant.

    Shape:
        ``(nodes, channels, samples)``.
    """
    nodes, channels, length = x.shape
    blocks = -(-length // block)
    padded = F.pad(x, (0, blocks * block - length)).reshape(nodes, channels, blocks, block)
    if padded.data_ptr() == x.data_ptr():  # no padding needed: never write into the input
        padded = padded.clone()
    log_alpha = torch.log(alpha).reshape(nodes, 1, 1, 1)
    k = torch.arange(block, dtype=x.dtype, device=x.device)
    up, down = torch.exp(-k * log_alpha), (1.0 - alpha).reshape(nodes, 1, 1, 1) * torch.exp(k * log_alpha)
    step = torch.exp((k + 1.0) * log_alpha)
    if torch.is_grad_enabled() and (x.requires_grad or alpha.requires_grad):
        within = torch.cumsum(padded * up, -1) * down
    else:  # no graph to keep: the same steps in place, on the padded copy
        within = padded.mul_(up).cumsum_(-1).mul_(down)
    carried = _scan_decay(within[..., -1], torch.exp(block * log_alpha[..., 0]))  # (n, c, blocks)
    previous = F.pad(carried[..., :-1], (1, 0))[..., None]
    if torch.is_grad_enabled() and (x.requires_grad or alpha.requires_grad):
        smoothed = within + previous * step
    else:
        smoothed = within.addcmul_(previous, step)
    return smoothed.reshape(nodes, channels, blocks * block)[..., :length]


def log_energy_envelope(x: Tensor, alpha: Tensor, block: int) -> Tensor:
    """Natural log of the smoothed energy of the mid channel ``(l + r) / 2`` (Lee et al. 2024, eqs. 16-19).

    Shape:
        x: ``(nodes, 2, samples)``; alpha: ``(nodes,)`` -> ``(nodes, 1, samples)``.
    """
    smoothed = one_pole_smooth(mid(x) ** 2, alpha, block)
    return torch.log(torch.clamp(smoothed, min=LOG_EPS))


def quadratic_knee(excess: Tensor, knee: Tensor) -> Tensor:
    """``0`` below ``-W``, ``(e + W)^2 / 4W`` inside ``|e| < W``, ``e`` above ``W``.

    The soft ramp shared by the compressor and the gate curves (Lee et al. 2024, eqs. 21 and 23), written
    without branches (so no gradient of an unused branch can turn into ``inf * 0``).
    """
    inside = torch.clamp(excess + knee, min=0.0)
    inside = torch.minimum(inside, 2.0 * knee)
    return inside * inside / (4.0 * knee) + torch.relu(excess - knee)


def compressor_gain(level: Tensor, threshold: Tensor, slope: Tensor, knee: Tensor) -> Tensor:
    """Gain ``G_y - G_u`` of the compressor curve with a quadratic knee (Lee et al. 2024, eqs. 20-21).

    With ratio ``R`` and ``slope = 1 - 1/R``, ``G_y`` is ``T + (G_u - T) / R`` above ``T + W``,
    ``G_u - slope (G_u - T + W)^2 / 4W`` in the knee and ``G_u`` below: the gain is
    ``-slope * knee(G_u - T)``.

    Args:
        level: input log energy ``G_u``.
        threshold: ``T``; slope: ``1 - 1/R`` in ``[0, 1)`` (0: no compression); knee: half knee
            width ``W > 0`` (all broadcastable, log-energy units).
    """
    return -slope * quadratic_knee(level - threshold, knee)


def noise_gate_gain(level: Tensor, threshold: Tensor, slope: Tensor, knee: Tensor) -> Tensor:
    """Gain ``G_y - G_u`` of the downward-expander curve with a quadratic knee (Lee et al. 2024, eq. 23).

    With ratio ``R`` and ``slope = R - 1``: below ``T - W`` the level falls ``R`` times faster than
    the input (``G_y = T + R (G_u - T)``), in the knee ``G_y = G_u - slope (G_u - T - W)^2 / 4W``,
    above ``T + W`` unchanged: the gain is ``-slope * knee(T - G_u)``.
    """
    return -slope * quadratic_knee(threshold - level, knee)


class _DynamicsGain(torch.autograd.Function):
    """Fused gain computer of the compressor and the gate: energy -> smoothed log level -> knee
    curve -> amplitude gain -> dry/wet blend, with an analytic backward.

    Autograd through the same steps keeps a dozen full-length intermediates per node; here the
    forward runs in place and saves only the energy and its smoothed envelope, and the backward
    recomputes the elementwise steps and runs the smoother's adjoint (the same recursion in
    reverse time) once: with ``v = H^T dL/ds``, ``dL/de = v`` and
    ``dL/dalpha = sum_n v[n] (s[n-1] - e[n]) / (1 - alpha)``.
    """

    @staticmethod
    def _curve(smoothed: Tensor, threshold: Tensor, knee: Tensor, expander: bool):
        excess = torch.clamp(smoothed, min=LOG_EPS).log_().sub_(threshold)
        if expander:
            excess.neg_()
        inside = (excess + knee).clamp_(min=0.0)
        inside = torch.minimum(inside, 2.0 * knee, out=inside)
        knee_term = excess.sub_(knee).clamp_(min=0.0)  # relu(excess - W), reusing the buffer
        return inside, knee_term

    @staticmethod
    def forward(ctx, energy, alpha, threshold, slope, knee, weight, block, expander):  # type: ignore[override]
        smoothed = one_pole_smooth(energy, alpha, block)
        inside, knee_term = _DynamicsGain._curve(smoothed, threshold, knee, expander)
        q = inside.square_().div_(4.0 * knee).add_(knee_term)
        gain = q.mul_(-0.5 * slope).exp_()
        if weight is not None:  # w G + (1 - w)
            w = weight[:, None, None]
            gain.mul_(w).add_(1.0 - w)
        ctx.save_for_backward(energy, smoothed, alpha, threshold, slope, knee, weight)
        ctx.block, ctx.expander = block, expander
        return gain

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        energy, smoothed, alpha, threshold, slope, knee, weight = ctx.saved_tensors
        inside, knee_term = _DynamicsGain._curve(smoothed, threshold, knee, ctx.expander)
        u = inside / (2.0 * knee)  # d knee(excess) / d excess
        q = inside.square_().div_(4.0 * knee).add_(knee_term)
        curve = torch.exp(-0.5 * slope * q)  # G
        grad_weight = None
        if weight is not None:
            grad_weight = (grad * (curve - 1.0)).sum((-1, -2))
            grad = grad * weight[:, None, None]
        grad_exponent = grad.mul(curve)  # dL/d(-0.5 slope q)
        grad_slope = (grad_exponent * q).sum(-1, keepdim=True).mul_(-0.5)
        grad_q = grad_exponent.mul_(-0.5 * slope)
        grad_knee = (grad_q * u * (1.0 - u)).sum(-1, keepdim=True)
        grad_excess = grad_q.mul_(u)
        grad_threshold = grad_excess.sum(-1, keepdim=True)
        if not ctx.expander:
            grad_threshold = grad_threshold.neg_()
        else:
            grad_excess = grad_excess.neg_()  # excess = T - level
        grad_smoothed = torch.where(smoothed > LOG_EPS, grad_excess / smoothed.clamp(min=LOG_EPS),
                                    torch.zeros_like(smoothed))
        adjoint = one_pole_smooth(grad_smoothed.flip(-1), alpha, ctx.block).flip(-1)
        previous = F.pad(smoothed[..., :-1], (1, 0))
        grad_alpha = (adjoint * (previous - energy)).sum((-1, -2)) / (1.0 - alpha)
        return adjoint, grad_alpha, grad_threshold, grad_slope, grad_knee, grad_weight, None, None


def dynamics_gain(x: Tensor, z_alpha: Tensor, log_threshold: Tensor, slope: Tensor,
                  log_knee: Tensor, block: int, expander: bool, weight: Tensor | None = None) -> Tensor:
    """The time-varying amplitude gain a compressor (``expander=False``) or gate applies to ``x``,
    dry/wet included: their output is ``x * dynamics_gain(x, ...)``.

    Deviation from Lee et al. (DAFx 2024), eq. 22 (``exp(G_y - G_u)``): the curve lives in log *energy*, so the
    amplitude gain is its square root; the steady-state output level then follows the curve.
    Same values as ``exp(0.5 * compressor_gain(log_energy_envelope(x), ...))``, fused.

    Shape:
        x: ``(nodes, 2, samples)`` -> ``(nodes, 1, samples)``.
    """
    return _DynamicsGain.apply(mid(x) ** 2, torch.sigmoid(z_alpha[:, 0]), log_threshold[:, :, None],
                               slope[:, :, None], torch.exp(log_knee)[:, :, None],
                               None if weight is None else weight.to(x.dtype), block, expander)


def _dynamics(x: Tensor, z_alpha, log_threshold, slope, log_knee, block: int, expander: bool,
              weight: Tensor | None) -> Tensor:
    return x * dynamics_gain(x, z_alpha, log_threshold, slope, log_knee, block, expander, weight)


def compressor(
    x: Tensor, z_alpha: Tensor, log_threshold: Tensor, slope: Tensor, log_knee: Tensor,
    block: int, weight: Tensor | None = None,
) -> Tensor:
    """Feed-forward compressor on the mid-channel energy envelope (Lee et al. 2024, appendix B.5).

    Raw parameters (each ``(nodes, 1)``): ``alpha = sigmoid(z_alpha)`` smoothing coefficient;
    ``T = log_threshold`` (natural-log energy, ``threshold_db = 4.343 T``); ``slope = 1 - 1/R``
    (dB of reduction per dB above the threshold; Lee et al.'s ratio ``R = 1 / (1 - slope)``); half
    knee ``W = exp(log_knee)`` (log energy). ``block``: see :func:`one_pole_smooth`.

    Parameter space: the slope, not the ratio, is the raw value, so ``slope = 0`` is an exactly
    transparent compressor that still has a gradient wherever the level nears the threshold.

    Shape:
        x: ``(nodes, 2, samples)`` -> same.
    """
    return _dynamics(x, z_alpha, log_threshold, slope, log_knee, block, False, weight)


def noise_gate(
    x: Tensor, z_alpha: Tensor, log_threshold: Tensor, slope: Tensor, log_knee: Tensor,
    block: int, weight: Tensor | None = None,
) -> Tensor:
    """Noise gate (downward expander), the compressor with the curve of Lee et al. (DAFx 2024), eq. 23
    (appendix B.6).

    ``slope = R - 1``: extra dB of attenuation per dB below the threshold (0: transparent).

    Shape:
        x: ``(nodes, 2, samples)`` -> same; other parameters as :func:`compressor`.
    """
    return _dynamics(x, z_alpha, log_threshold, slope, log_knee, block, True, weight)


def time_constant_to_z_alpha(time_constant_ms: Tensor | float, sample_rate: int) -> Tensor:
    """Raw ``z_alpha = logit(alpha)`` of a smoother with ``alpha = exp(-1 / (sr * tau))``."""
    inverse_samples = 1000.0 / (sample_rate * torch.as_tensor(time_constant_ms, dtype=torch.float64))
    return -torch.log(torch.expm1(inverse_samples))  # logit(exp(-u)) = -log(exp(u) - 1)


def slope_to_ratio(slope: Tensor, expander: bool) -> Tensor:
    """Lee et al.'s ratio ``R`` of a compressor (``1 / (1 - slope)``) or gate (``1 + slope``)."""
    return 1.0 + slope if expander else 1.0 / (1.0 - slope)


def ratio_to_slope(ratio: Tensor, expander: bool) -> Tensor:
    """Inverse of :func:`slope_to_ratio`."""
    return ratio - 1.0 if expander else 1.0 - 1.0 / ratio


def dynamics_physical(
    z_alpha: Tensor, log_threshold: Tensor, slope: Tensor, log_knee: Tensor, sample_rate: int,
    expander: bool,
) -> dict[str, Tensor]:
    """``time_constant_ms`` of the smoother, ``threshold_db`` (mid mean-square level re full
    scale), ``ratio``, and ``knee_db`` (full knee width)."""
    return {
        # -log(alpha) = log(1 + exp(-z)) = softplus(-z), exact for alpha near 1
        "time_constant_ms": 1000.0 / (sample_rate * F.softplus(-z_alpha[..., 0])),
        "threshold_db": log_threshold[..., 0] * ENERGY_NP_TO_DB,
        "ratio": slope_to_ratio(slope[..., 0], expander),
        "knee_db": 2.0 * torch.exp(log_knee[..., 0]) * ENERGY_NP_TO_DB,
    }


def dynamics_raw(
    time_constant_ms: Tensor, threshold_db: Tensor, ratio: Tensor, knee_db: Tensor, sample_rate: int,
    expander: bool,
) -> dict[str, Tensor]:
    """Inverse of :func:`dynamics_physical` (each input ``(nodes,)``, outputs ``(nodes, 1)``)."""
    return {
        "z_alpha": time_constant_to_z_alpha(time_constant_ms, sample_rate).to(threshold_db.dtype)[..., None],
        "log_threshold": (threshold_db / ENERGY_NP_TO_DB)[..., None],
        "slope": ratio_to_slope(ratio, expander)[..., None],
        "log_knee": torch.log(knee_db / (2.0 * ENERGY_NP_TO_DB))[..., None],
    }


# --------------------------------------------------------------------------------------------
# Multitap delay
# --------------------------------------------------------------------------------------------
class _SurrogateGradient(torch.autograd.Function):
    """Identity forward; backward normalises the complex gradient and pulls ``|z|`` to 1 (eq. 26).

    ``|z|`` is the squashed radius ``tanh(|raw|)`` (see :func:`squash_radius`); the pull moves the
    raw value outwards along its own direction.
    """

    @staticmethod
    def forward(ctx, z: Tensor, gamma: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(z)
        ctx.gamma = gamma
        return z.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (z,) = ctx.saved_tensors
        grad_norm = torch.sqrt((grad**2).sum(-1, keepdim=True) + 1e-30)
        z_norm = torch.sqrt((z**2).sum(-1, keepdim=True) + 1e-30)
        unit_grad = torch.where(grad_norm > 1e-20, grad / grad_norm, torch.zeros_like(grad))
        return unit_grad + ctx.gamma * (torch.tanh(z_norm) - 1.0) * z / z_norm, None


def squash_radius(z_delay: Tensor) -> Tensor:
    """``z * tanh(|z|) / |z|``: any raw surrogate lands strictly inside the unit disk (as grafx's
    ``SurrogateDelay``), so ``|z|^k`` never overflows. Shape: ``(..., 2)`` -> same."""
    radius = torch.sqrt((z_delay**2).sum(-1, keepdim=True) + 1e-30)
    return z_delay * (torch.tanh(radius) / radius)


def delay_samples(z_delay: Tensor, slot_samples: int) -> Tensor:
    """Continuous delay inside each slot from the surrogate sinusoid ``z = re + j im``.

    ``z = r exp(-j 2 pi d / S)`` puts the soft impulse at ``d`` samples (``0 <= d < S``).

    Shape:
        ``(..., 2)`` -> ``(...)`` in samples.
    """
    angle = torch.atan2(z_delay[..., 1], z_delay[..., 0])
    return torch.remainder(-angle, 2.0 * math.pi) * (slot_samples / (2.0 * math.pi))


class _StraightThroughDelay(torch.autograd.Function):
    """Identity on the hard kernel; the gradient w.r.t. the (squashed) surrogate ``z`` is that of
    the same kernel built from damped sinusoids (Lee et al. 2024, eqs. 25-26, straight-through).

    Tap ``m``'s surrogate is ``s_m = c_m * irfft(z_m^k, S)`` placed at ``m S`` (``c_m`` its tap
    FIR), so with ``g_m`` the kernel gradient over that span and ``r_m = g_m (x) c_m`` their
    correlation (lags ``0 .. S-1``), ``dL/dz_m = sum_k (w_k / S) k z_m^(k-1) conj(rfft(r_m)_k)``
    (``w_k`` the real-FFT weights). Computed in closed form on the taps' spectra: the surrogate
    kernel itself is never built.
    """

    @staticmethod
    def forward(ctx, kernel: Tensor, z: Tensor, tap_fir: Tensor, slot_samples: int) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(z, tap_fir)
        ctx.slot_samples = slot_samples
        return kernel.view_as(kernel)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        z, tap_fir = ctx.saved_tensors
        slots, fir_taps = ctx.slot_samples, tap_fir.shape[-1]
        nodes, channels, n_taps, _ = z.shape
        span = slots + fir_taps - 1
        # g_m: the kernel gradient over tap m's span [m S, m S + S + 2B - 2)
        padded = F.pad(grad, (0, (n_taps + 1) * slots - grad.shape[-1]))
        blocks = padded.reshape(nodes, channels, n_taps + 1, slots)
        g = torch.cat([blocks[:, :, :-1], blocks[:, :, 1:, : span - slots]], -1)
        n_fft = fast_fft_length(span)
        r = torch.fft.irfft(torch.fft.rfft(g, n=n_fft) * torch.fft.rfft(tap_fir, n=n_fft).conj(),
                            n=n_fft)[..., :slots]
        q = torch.fft.rfft(r, n=slots).conj()  # (nodes, 2, M, S // 2 + 1)
        k = torch.arange(q.shape[-1], dtype=z.dtype, device=z.device)
        weights = torch.full_like(k, 2.0)
        weights[0] = 1.0
        if slots % 2 == 0:
            weights[-1] = 1.0
        radius = torch.sqrt((z**2).sum(-1) + 1e-30)[..., None]
        angle = torch.atan2(z[..., 1], z[..., 0])[..., None]
        power = torch.polar(radius ** (k - 1.0).clamp(min=0.0), (k - 1.0) * angle)  # z^(k-1)
        total = ((weights * k / slots) * power * q).sum(-1)
        return None if not ctx.needs_input_grad[0] else grad, torch.stack(
            [total.real, -total.imag], -1), None, None


def multitap_delay_fir(
    z_delay: Tensor, log_magnitude: Tensor, slot_samples: int, gamma: float = 0.01,
    surrogate_gradient: bool = True, weight: Tensor | None = None,
) -> Tensor:
    """Multitap delay FIR per channel (Lee et al. 2024, eqs. 24-26), zero lag at index ``B - 1``.

    Tap ``m`` of a channel is a hard impulse at ``m * S + round(d_m)`` filtered by its own
    zero-phase FIR (``2B - 1`` taps from ``B`` log-magnitudes). The delay ``d_m`` gets its gradient
    from the surrogate damped sinusoid ``irfft(z^k)`` (``z`` squashed into the unit disk) by the
    straight-through trick, and with ``surrogate_gradient`` that gradient is normalised and
    regularised towards ``|z| = 1`` (strength ``gamma``) as in eq. 26. With a dry/wet ``weight``
    the taps are scaled by it and the dry impulse ``1 - weight`` sits at the zero lag.

    Args:
        z_delay: ``(nodes, 2, M, 2)`` raw real/imaginary parts per channel and tap.
        log_magnitude: ``(nodes, 2, M, B)`` per-tap EQ log-magnitudes.
        slot_samples: ``S``, samples per tap slot.
        weight: ``(nodes,)`` dry/wet or ``None`` (echoes only).

    Shape:
        ``(nodes, 2, M * S + 2B - 2)``.
    """
    nodes, channels, n_taps, _ = z_delay.shape
    tap_fir = zero_phase_fir(log_magnitude)  # (nodes, 2, M, 2B - 1)
    fir_taps = tap_fir.shape[-1]
    total = n_taps * slot_samples + fir_taps - 1
    # Hard kernel: every tap FIR scattered at its integer delay (exact, no FFT).
    hard_index = torch.round(delay_samples(z_delay.detach(), slot_samples)).long() % slot_samples
    slot_start = torch.arange(n_taps, device=z_delay.device) * slot_samples
    positions = (slot_start + hard_index)[..., None] + torch.arange(fir_taps, device=z_delay.device)
    values = tap_fir.reshape(nodes, channels, -1)
    positions = positions.reshape(nodes, channels, -1)
    if weight is not None:
        w = weight.to(tap_fir.dtype)[:, None, None]
        center = torch.full((nodes, channels, 1), (fir_taps - 1) // 2, device=z_delay.device)
        values = torch.cat([w * values, (1.0 - w).expand(nodes, channels, 1)], -1)
        positions = torch.cat([positions, center], -1)
    kernel = tap_fir.new_zeros(nodes, channels, total).scatter_add(-1, positions, values)
    if not (z_delay.requires_grad and torch.is_grad_enabled()):
        return kernel
    if surrogate_gradient:
        z_delay = _SurrogateGradient.apply(z_delay, gamma)
    scaled_fir = tap_fir.detach() if weight is None else tap_fir.detach() * weight.detach()[:, None, None, None]
    return _StraightThroughDelay.apply(kernel, squash_radius(z_delay), scaled_fir, slot_samples)


def multitap_delay(
    x: Tensor, z_delay: Tensor, log_magnitude: Tensor, slot_samples: int, gamma: float = 0.01,
    surrogate_gradient: bool = True, weight: Tensor | None = None,
) -> Tensor:
    """Apply :func:`multitap_delay_fir` channel-wise (wet: the echoes only, no dry path).

    Shape:
        x: ``(nodes, 2, samples)`` -> same.
    """
    fir = multitap_delay_fir(z_delay, log_magnitude, slot_samples, gamma, surrogate_gradient, weight)
    return fft_convolve(x, fir, center=log_magnitude.shape[-1] - 1)


def delay_physical(z_delay: Tensor, log_magnitude: Tensor, slot_samples: int, sample_rate: int):
    """``delay_ms`` of every tap from the start of the signal (``(…, 2, M)``), ``tap_gain_db``
    (mean of the tap's EQ curve in dB, ``(…, 2, M)``), the per-tap EQ curve ``tap_eq_db``
    (``(…, 2, M, B)``), and the squashed surrogate radius ``z_radius`` in (0, 1)."""
    n_taps = z_delay.shape[-2]
    slot_start = torch.arange(n_taps, dtype=z_delay.dtype, device=z_delay.device) * slot_samples
    hard = torch.round(delay_samples(z_delay, slot_samples)) % slot_samples
    tap_eq_db = log_magnitude / LOG10_OVER_20
    return {
        "delay_ms": (slot_start + hard) * (1000.0 / sample_rate),
        "tap_gain_db": tap_eq_db.mean(-1),
        "tap_eq_db": tap_eq_db,
        "z_radius": torch.tanh(torch.sqrt((z_delay**2).sum(-1))),
    }


def delay_raw(delay_ms: Tensor, z_radius: Tensor, slot_samples: int, sample_rate: int) -> Tensor:
    """Raw surrogate ``z_delay`` ``(..., 2)`` placing each tap at ``delay_ms`` (taken modulo its
    slot) with squashed radius ``z_radius`` in (0, 1)."""
    within = torch.remainder(torch.round(delay_ms * sample_rate / 1000.0), slot_samples)
    angle = -2.0 * math.pi * within / slot_samples
    raw_radius = torch.atanh(torch.clamp(z_radius, 1e-6, 1.0 - 1e-6))
    return torch.stack([raw_radius * torch.cos(angle), raw_radius * torch.sin(angle)], -1)


# --------------------------------------------------------------------------------------------
# Reverb
# --------------------------------------------------------------------------------------------
def reverb_decay(delta_log_magnitude: Tensor) -> Tensor:
    """Log-magnitude decay per STFT frame, ``-softplus(raw) < 0`` (a reverb always decays)."""
    return -F.softplus(delta_log_magnitude)


def filtered_noise_reverb_ir(
    noise_frames: Tensor, init_log_magnitude: Tensor, delta_log_magnitude: Tensor,
    n_fft: int, hop_length: int, ir_samples: int,
) -> Tensor:
    """Stereo impulse response from mid/side noise shaped by a decaying STFT mask (eqs. 14-15).

    ``M[k, m] = exp(H0[k] + m * Hd[k])`` with ``Hd = -softplus(delta_log_magnitude)``; the
    masked mid/side noise is inverted by iSTFT and converted to stereo as ``l = m + s``,
    ``r = m - s``.

    Args:
        noise_frames: fixed mid/side noise STFT, frames first: ``(2, frames, n_fft // 2 + 1)``
            complex (``torch.stft(...).transpose(-1, -2)``).
        init_log_magnitude, delta_log_magnitude: ``(nodes, 2, n_fft // 2 + 1)``.

    Shape:
        ``(nodes, 2, ir_samples)``.
    """
    frames = noise_frames.shape[-2]
    m = torch.arange(frames, dtype=init_log_magnitude.dtype, device=init_log_magnitude.device)
    log_mask = init_log_magnitude[..., None, :] + reverb_decay(delta_log_magnitude)[..., None, :] * m[:, None]
    shaped = noise_frames * torch.exp(log_mask)  # (nodes, 2, frames, bins)
    ir = _inverse_stft_frames(shaped, n_fft, hop_length, ir_samples)
    return torch.cat([ir[:, 0:1] + ir[:, 1:2], ir[:, 0:1] - ir[:, 1:2]], dim=1)


@lru_cache(maxsize=16)
def _istft_envelope(n_fft: int, hop_length: int, frames: int, dtype: torch.dtype) -> Tensor:
    """Sum of the squared Hann windows of ``frames`` frames overlap-added (torch.istft's norm)."""
    window = torch.hann_window(n_fft, dtype=dtype)
    envelope = torch.zeros(n_fft + hop_length * (frames - 1), dtype=dtype)
    for f in range(frames):
        envelope[f * hop_length : f * hop_length + n_fft] += window**2
    return envelope


@lru_cache(maxsize=16)
def _istft_weights(n_fft: int, frames: int, dtype: torch.dtype) -> Tensor:
    """``window[t] / envelope[f * hop + t]`` for half-overlapping frames, ``(frames, n_fft)``."""
    hop = n_fft // 2
    window = torch.hann_window(n_fft, dtype=torch.float64)
    envelope = _istft_envelope(n_fft, hop, frames, torch.float64).clamp(min=1e-11)
    index = torch.arange(frames)[:, None] * hop + torch.arange(n_fft)
    return (window / envelope[index]).to(dtype)


def inverse_stft(spectra: Tensor, n_fft: int, hop_length: int, length: int) -> Tensor:
    """``torch.istft`` (Hann window, centred frames) for a hop that divides ``n_fft``, with the
    overlap-add done by ``n_fft / hop`` shifted additions instead of a scatter.

    Shape:
        spectra: ``(..., n_fft // 2 + 1, frames)`` complex -> ``(..., length)``.
    """
    if n_fft % hop_length:
        lead = spectra.shape[:-2]
        window = torch.hann_window(n_fft, dtype=spectra.real.dtype, device=spectra.device)
        flat = spectra.reshape(-1, *spectra.shape[-2:])
        return torch.istft(flat, n_fft, hop_length, window=window, length=length).reshape(*lead, length)
    return _inverse_stft_frames(spectra.transpose(-1, -2), n_fft, hop_length, length)


def _inverse_stft_frames(spectra: Tensor, n_fft: int, hop_length: int, length: int) -> Tensor:
    """:func:`inverse_stft` of frames-first spectra ``(..., frames, n_fft // 2 + 1)``."""
    frames = spectra.shape[-2]
    real_dtype = spectra.real.dtype
    overlap = n_fft // hop_length
    if overlap == 2 and length <= (frames - 1) * hop_length + hop_length // 2:
        # Half-overlapping frames (the reverb's): window and envelope folded into one weight per
        # frame and offset, then block j = second half of frame j + first half of frame j + 1
        # (the first half of frame 0 is the centre padding istft trims).
        weights = _istft_weights(n_fft, frames, real_dtype).to(spectra.device)
        weighted = torch.fft.irfft(spectra, n=n_fft) * weights  # (..., frames, n_fft)
        h = hop_length
        blocks = weighted[..., :-1, h:] + weighted[..., 1:, :h]  # (..., frames - 1, h)
        out = torch.cat([blocks.flatten(-2), weighted[..., -1, h:]], -1)
        return out[..., :length]
    window = _hann_periodic(n_fft, real_dtype, spectra.device)
    segments = torch.fft.irfft(spectra, n=n_fft) * window  # (..., frames, n_fft)
    total = hop_length * (frames + overlap - 1)
    out = None
    for j in range(overlap):
        part = segments[..., j * hop_length : (j + 1) * hop_length].reshape(*segments.shape[:-2], -1)
        part = F.pad(part, (j * hop_length, total - j * hop_length - part.shape[-1]))
        out = part if out is None else out + part
    envelope = _istft_envelope(n_fft, hop_length, frames, real_dtype).to(spectra.device)
    start = n_fft // 2
    return out[..., start : start + length] / envelope[start : start + length].clamp(min=1e-11)


@lru_cache(maxsize=16)
def _hann_periodic_cpu(length: int, dtype: torch.dtype) -> Tensor:
    return torch.hann_window(length, dtype=dtype)


def _hann_periodic(length: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    return _hann_periodic_cpu(length, dtype).to(device)


def reverb(
    x: Tensor, noise_frames: Tensor, init_log_magnitude: Tensor, delta_log_magnitude: Tensor,
    n_fft: int, hop_length: int, ir_samples: int, weight: Tensor | None = None,
) -> Tensor:
    """Filtered-noise mid/side reverb, channel-wise convolution (Lee et al. 2024, appendix B.4).

    Shape:
        x: ``(nodes, 2, samples)`` -> same.
    """
    ir = filtered_noise_reverb_ir(
        noise_frames, init_log_magnitude, delta_log_magnitude, n_fft, hop_length, ir_samples
    )
    return fft_convolve(x, with_dry(ir, weight, 0))


def reverb_physical(
    init_log_magnitude: Tensor, delta_log_magnitude: Tensor, hop_length: int, sample_rate: int
) -> dict[str, Tensor]:
    """``initial_db`` of the mask and ``rt60_seconds`` (time for a 60 dB decay), per mid/side
    channel and STFT bin ``k * sample_rate / n_fft`` Hz."""
    decay_per_second = -reverb_decay(delta_log_magnitude) * (sample_rate / hop_length)
    return {
        "initial_db": init_log_magnitude / LOG10_OVER_20,
        "rt60_seconds": math.log(1000.0) / decay_per_second,
    }


def reverb_raw(
    initial_db: Tensor, rt60_seconds: Tensor, hop_length: int, sample_rate: int
) -> dict[str, Tensor]:
    """Inverse of :func:`reverb_physical`."""
    decay = math.log(1000.0) / (rt60_seconds * (sample_rate / hop_length))
    # inverse softplus: log(exp(d) - 1), written stably
    delta = decay + torch.log(-torch.expm1(-decay))
    return {"init_log_magnitude": initial_db * LOG10_OVER_20, "delta_log_magnitude": delta}

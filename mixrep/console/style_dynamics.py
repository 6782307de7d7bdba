"""Torch models of the mixing-style space's dynamics: channel compressor, saturation, bus compressor,
limiter and loudness, differentiable in every continuous setting.

The mixing-style space (:mod:`mixrep.styles.mix_style`) renders its dynamics with pedalboard (JUCE)
and NumPy; these functions compute the same processors in torch, so a style can be rendered, and
fitted, by gradient descent.

Compressors follow the feed-forward design of D. Giannoulis, M. Massberg and J. D. Reiss,
"Digital Dynamic Range Compressor Design - A Tutorial and Analysis", JAES 2012: a level detector,
a hard-knee static curve (``1 - 1/ratio`` of the level above the threshold removed), and a
one-pole smoother with an attack coefficient while the level (or gain reduction) grows and a
release coefficient while it falls.

* Channel compressor: ``pedalboard.Compressor`` is ``juce::dsp::Compressor``. Per channel, a
  ``juce::dsp::BallisticsFilter`` (peak mode) follows the rectified signal,
  ``env[n] = |x[n]| + c (env[n-1] - |x[n]|)`` with ``c = exp(-2 pi 1000 / (fs * time_ms))``
  (``attack_ms`` while ``|x[n]| > env[n-1]``, else ``release_ms``; so the time constant is
  ``time_ms / (2 pi)``), and the gain is ``(env / threshold) ** (1/ratio - 1)`` where
  ``env >= threshold``, else 1: Giannoulis et al.'s smooth branching peak detector, run on the
  linear level before the gain computer (they place it after, on the gain in dB). The rectifier of the JUCE
  build inside pedalboard is ``|x|`` (measured: a step of alternating sign compresses exactly as a
  positive step; the newest JUCE source half-wave rectifies, ``max(0, x)``, before the filter).
* Bus compressor: :func:`mix_style.compressor_gain`, the smooth branching detector after the
  gain computer, on the gain in dB, from block peaks of 32 samples.

The attack / release recursions are sequential with a branch per sample. They run in a compiled
(numba) loop inside a :class:`torch.autograd.Function`: the forward pass records which branch
each sample took; the backward pass is the time-reversed linear recursion with those branches,
which gives the gradients for the signal and both coefficients (hence every setting) exactly.
Tensors on another device make a round trip through the CPU for this loop (the rest stays on
their device).

Relative settings, as the renderer: compressor thresholds are relative to the RMS of the whole
``(2, samples)`` signal entering the compressor, the saturation is gain-staged from it, and a
silent input (RMS ``-inf``) bypasses them; values and gradients stay finite there.

Shape:
    Signals ``(..., channels=2, samples)``; settings are tensors (or floats) of shape ``(...)``
    that broadcast against the signal's leading dims ``(...)``; the result has the broadcast
    leading shape. Internally the recursions and gain curves are computed in float64 and the
    result is cast back to the signal's dtype.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional
from torch import Tensor
from torch.autograd.function import once_differentiable

from mixrep.styles.mix_style import SATURATION_REFERENCE_DBFS

DETECTOR_BLOCK = 32
"""Samples per step of the bus compressor's gain computer (``mix_style._DETECTOR_BLOCK``)."""

# ----------------------------------------------------------------------------- the ballistics kernel


@numba.njit(cache=True)
def _ballistics_forward_kernel(values, attack, release, rising, out, attack_taken):  # pragma: no cover - compiled
    rows, samples = values.shape
    for r in range(rows):
        state = 0.0
        for i in range(samples):
            value = values[r, i]
            take = value > state if rising else value < state
            coefficient = attack[r] if take else release[r]
            state = value + coefficient * (state - value)
            out[r, i] = state
            attack_taken[r, i] = take


@numba.njit(cache=True)
def _ballistics_backward_kernel(grad_out, values, out, attack_taken, attack, release,
                                grad_values, grad_attack, grad_release):  # pragma: no cover - compiled
    rows, samples = values.shape
    for r in range(rows):
        carry = 0.0  # c[i+1] * adjoint[i+1]
        for i in range(samples - 1, -1, -1):
            adjoint = grad_out[r, i] + carry
            coefficient = attack[r] if attack_taken[r, i] else release[r]
            grad_values[r, i] = (1.0 - coefficient) * adjoint
            previous = out[r, i - 1] if i > 0 else 0.0
            if attack_taken[r, i]:
                grad_attack[r] += adjoint * (previous - values[r, i])
            else:
                grad_release[r] += adjoint * (previous - values[r, i])
            carry = coefficient * adjoint


def _to_numpy(x: Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu", torch.float64).numpy())


class _Ballistics(torch.autograd.Function):
    """``y[n] = v[n] + c[n] (y[n-1] - v[n])``, ``y[-1] = 0``, ``c[n]`` the attack coefficient while
    ``v[n]`` moves away from the state (up if ``rising``, down otherwise), else the release one.

    Shape: values ``(rows, samples)``, coefficients ``(rows,)`` -> ``(rows, samples)``.
    """

    @staticmethod
    def forward(ctx, values: Tensor, attack_coef: Tensor, release_coef: Tensor, rising: bool) -> Tensor:
        v, a, r = _to_numpy(values), _to_numpy(attack_coef), _to_numpy(release_coef)
        out = np.empty_like(v)
        taken = np.empty(v.shape, dtype=np.bool_)
        _ballistics_forward_kernel(v, a, r, rising, out, taken)
        ctx.arrays = (v, out, taken, a, r)
        ctx.coefficient_like = attack_coef
        return torch.from_numpy(out).to(device=values.device, dtype=values.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        v, out, taken, a, r = ctx.arrays
        grad_values = np.empty_like(v)
        grad_attack, grad_release = np.zeros_like(a), np.zeros_like(r)
        _ballistics_backward_kernel(_to_numpy(grad_out), v, out, taken, a, r, grad_values, grad_attack, grad_release)

        def back(x: np.ndarray, like: Tensor) -> Tensor:
            return torch.from_numpy(x).to(device=like.device, dtype=like.dtype)

        like = ctx.coefficient_like
        return back(grad_values, grad_out), back(grad_attack, like), back(grad_release, like), None


def _ballistics(values: Tensor, attack_coef: Tensor, release_coef: Tensor, rising: bool) -> Tensor:
    """:class:`_Ballistics` over any leading dims. ``(..., samples)``, coefficients ``(...)`` -> ``(..., samples)``."""
    lead = values.shape[:-1]
    flat = values.reshape(-1, values.shape[-1])
    out = _Ballistics.apply(flat, attack_coef.expand(lead).reshape(-1), release_coef.expand(lead).reshape(-1),
                            rising)
    return out.reshape(values.shape)


# ----------------------------------------------------------------------------- shared checks and levels


def _check_signal(audio: Tensor, what: str) -> None:
    if not isinstance(audio, Tensor) or audio.ndim < 2 or audio.shape[-2] != 2 or audio.shape[-1] < 1:
        shape = tuple(audio.shape) if isinstance(audio, Tensor) else type(audio).__name__
        raise ValueError(f"{what} expects a stereo signal tensor (..., 2, samples) with samples >= 1; got {shape}")
    if not audio.is_floating_point():
        raise ValueError(f"{what} expects a floating-point signal; got {audio.dtype}")


def _broadcast(audio: Tensor, what: str, **settings: Tensor | float) -> tuple[Tensor, dict[str, Tensor]]:
    """The signal (checked) expanded to the broadcast leading shape of it and the settings, the settings in float64."""
    _check_signal(audio, what)
    tensors = {name: torch.as_tensor(value, dtype=torch.float64, device=audio.device) for name, value in
               settings.items()}
    try:
        # numpy's, not torch.broadcast_shapes: that one imports torch.fx's symbolic shapes (seconds)
        lead = np.broadcast_shapes(tuple(audio.shape[:-2]), *(tuple(t.shape) for t in tensors.values()))
    except ValueError as error:
        shapes = {name: tuple(t.shape) for name, t in tensors.items()}
        raise ValueError(f"{what}: settings {shapes} do not broadcast against the signal's leading dims "
                         f"{tuple(audio.shape[:-2])} (signal (..., 2, samples), settings (...))") from error
    for name, t in tensors.items():
        if not torch.isfinite(t).all():
            raise ValueError(f"{what}: {name} must be finite; got {t.detach().cpu().tolist()}")
    return audio.expand(*lead, *audio.shape[-2:]), {name: t.expand(lead) for name, t in tensors.items()}


def _require(condition: Tensor, what: str, message: str, value: Tensor) -> None:
    if not bool(condition.all()):
        raise ValueError(f"{what}: {message}; got {value.detach().cpu().tolist()}")


def _compressor_settings(audio: Tensor, what: str, threshold_db: Tensor | float, ratio: Tensor | float,
                         attack_ms: Tensor | float, release_ms: Tensor | float, makeup_db: Tensor | float
                         ) -> tuple[Tensor, dict[str, Tensor]]:
    """:func:`_broadcast` of a compressor's settings, checked (ratio >= 1, times > 0)."""
    audio, s = _broadcast(audio, what, threshold_db=threshold_db, ratio=ratio, attack_ms=attack_ms,
                          release_ms=release_ms, makeup_db=makeup_db)
    _require(s["ratio"] >= 1.0, what, "ratio must be >= 1", s["ratio"])
    for name in ("attack_ms", "release_ms"):
        _require(s[name] > 0.0, what, f"{name} must be > 0", s[name])
    return audio, s


def rms_level_db(audio: Tensor) -> tuple[Tensor, Tensor]:
    """RMS level in dBFS of each ``(2, samples)`` signal (``mixrep.audio.primitives.rms_db``) and
    whether it is silent; a silent signal gets a finite stand-in level (0 dB) so that the branch
    it bypasses stays finite, values and gradients. ``(..., 2, samples)`` -> ``(...)``, ``(...)``."""
    energy = audio.to(torch.float64).square().mean(dim=(-2, -1))
    silent = energy <= 0.0
    return 10.0 * torch.log10(torch.where(silent, torch.ones_like(energy), energy)), silent


def db_to_gain(gain_db: Tensor) -> Tensor:
    """Linear gain of a gain in dB, elementwise (:func:`mixrep.audio.primitives.db_to_gain` for tensors)."""
    return torch.pow(10.0, gain_db / 20.0)


def _juce_coefficient(time_ms: Tensor, sample_rate: int) -> Tensor:
    """``juce::dsp::BallisticsFilter``'s ``exp(-2 pi 1000 / (fs time_ms))`` (JUCE sets 0 below 1 microsecond,
    where this is below ``exp(-140)``)."""
    return torch.exp(-2.0 * math.pi * 1000.0 / (sample_rate * time_ms))


# ----------------------------------------------------------------------------- channel strip


def channel_compressor(audio: Tensor, threshold_db: Tensor | float, ratio: Tensor | float, attack_ms: Tensor | float,
                       release_ms: Tensor | float, makeup_db: Tensor | float, sample_rate: int) -> Tensor:
    """A channel strip's compressor and make-up gain: ``pedalboard.Compressor`` then ``pedalboard.Gain``.

    The threshold is relative to the RMS of the whole ``(2, samples)`` input, as in the renderer's
    ``_render_strip``; each channel has its own detector (JUCE's compressor is not linked).

    Args:
        audio: the strip's signal.
        threshold_db: threshold in dB relative to the input's RMS level.
        ratio: compression ratio (>= 1).
        attack_ms, release_ms: detector times in ms (> 0), JUCE's definition (module docstring).
        makeup_db: gain after the compressor, dB.
        sample_rate: Hz.

    Returns:
        The compressed signal; a silent input is returned unchanged.

    Raises:
        ValueError: the signal is not ``(..., 2, samples)``, settings do not broadcast or are
            out of range (ratio < 1, times <= 0, non-finite).

    Shape:
        ``(..., 2, samples)`` and settings ``(...)`` -> ``(..., 2, samples)`` (broadcast leading dims).
    """
    audio, s = _compressor_settings(audio, "channel_compressor", threshold_db, ratio, attack_ms, release_ms, makeup_db)
    level_db, silent = rms_level_db(audio)
    threshold = db_to_gain(level_db + s["threshold_db"])[..., None, None]
    signal = audio.to(torch.float64)
    attack = _juce_coefficient(s["attack_ms"], sample_rate)[..., None].expand(*silent.shape, 2)
    release = _juce_coefficient(s["release_ms"], sample_rate)[..., None].expand(*silent.shape, 2)
    envelope = _ballistics(signal.abs(), attack, release, rising=True)
    # (env / threshold) ** (1/ratio - 1) above the threshold, 1 below: the clamp is the hard knee
    exponent = (1.0 / s["ratio"] - 1.0)[..., None, None]
    gain = torch.pow(torch.clamp(envelope / threshold, min=1.0), exponent)
    out = signal * gain * db_to_gain(s["makeup_db"])[..., None, None]
    return torch.where(silent[..., None, None], signal, out).to(audio.dtype)


def saturation(audio: Tensor, drive_db: Tensor | float, level_db: Tensor | float | None = None) -> Tensor:
    """A strip's gain-staged saturation: ``pedalboard.Distortion`` (``tanh(10 ** (drive_db / 20) x)``)
    between a trim that brings the level to :data:`~mixrep.styles.mix_style.SATURATION_REFERENCE_DBFS`
    and the gain that undoes the drive and the trim (unity small-signal gain).

    Args:
        audio: the signal entering the saturator.
        drive_db: drive in dB.
        level_db: the RMS level (dBFS) the trim refers to, ``(...)``; default the RMS of
            ``audio``. The renderer measures it once per strip, before the compressor, so a strip
            with both passes the level of the compressor's input here. A non-finite level
            (silence) bypasses the saturator.

    Returns:
        The saturated signal; a silent input (or level) is returned unchanged.

    Shape:
        ``(..., 2, samples)`` and settings ``(...)`` -> ``(..., 2, samples)`` (broadcast leading dims).
    """
    what = "saturation"
    audio, s = _broadcast(audio, what, drive_db=drive_db)
    if level_db is None:
        level, silent = rms_level_db(audio)
    else:
        level = torch.as_tensor(level_db, dtype=torch.float64, device=audio.device)
        if torch.isnan(level).any():
            raise ValueError(f"{what}: level_db must not be NaN; got {level.detach().cpu().tolist()}")
        silent = ~torch.isfinite(level)
        level = torch.where(silent, torch.zeros_like(level), level)
        lead = np.broadcast_shapes(tuple(audio.shape[:-2]), tuple(level.shape))
        audio, level, silent = audio.expand(*lead, *audio.shape[-2:]), level.expand(lead), silent.expand(lead)
        s["drive_db"] = s["drive_db"].expand(lead)
    trim_db = SATURATION_REFERENCE_DBFS - level
    pre = db_to_gain(trim_db + s["drive_db"])[..., None, None]
    post = db_to_gain(-trim_db - s["drive_db"])[..., None, None]
    signal = audio.to(torch.float64)
    out = torch.tanh(signal * pre) * post
    return torch.where(silent[..., None, None], signal, out).to(audio.dtype)


# ----------------------------------------------------------------------------- master bus


def bus_compressor_gain(mix: Tensor, threshold_db: Tensor | float, ratio: Tensor | float, attack_ms: Tensor | float,
                        release_ms: Tensor | float, makeup_db: Tensor | float, sample_rate: int) -> Tensor:
    """The master's linked compressor gain, the torch version of :func:`mix_style.compressor_gain`.

    The detector is the peak of both channels per block of :data:`DETECTOR_BLOCK` samples; the
    static curve removes ``1 - 1/ratio`` of the level above ``threshold_db`` (relative to the mix
    RMS); the gain in dB is smoothed one-pole (``exp(-1 / (time_ms 1e-3 fs / 32))``, attack while
    the gain falls, release while it recovers), linearly interpolated from block centres to samples
    and raised by ``makeup_db`` (Giannoulis et al. 2012, smooth branching detector on the gain in dB).

    Returns:
        Linear gain to multiply every stem with; all ones for a silent mix.

    Shape:
        ``(..., 2, samples)`` and settings ``(...)`` -> ``(..., samples)``.
    """
    mix, s = _compressor_settings(mix, "bus_compressor_gain", threshold_db, ratio, attack_ms, release_ms, makeup_db)
    samples = mix.shape[-1]
    blocks = -(-samples // DETECTOR_BLOCK)
    level_db, silent = rms_level_db(mix)
    peak = F.pad(mix.to(torch.float64).abs().amax(dim=-2), (0, blocks * DETECTOR_BLOCK - samples))
    peak = peak.reshape(*peak.shape[:-1], blocks, DETECTOR_BLOCK).amax(dim=-1)
    peak_db = 20.0 * torch.log10(torch.clamp(peak, min=1e-9))
    over_db = torch.relu(peak_db - (level_db + s["threshold_db"])[..., None])
    target_db = -over_db * (1.0 - 1.0 / s["ratio"])[..., None]
    block_rate = sample_rate / DETECTOR_BLOCK
    attack = torch.exp(-1.0 / (s["attack_ms"] * 1e-3 * block_rate))
    release = torch.exp(-1.0 / (s["release_ms"] * 1e-3 * block_rate))
    gain_db = _ballistics(target_db, attack, release, rising=False)
    # np.interp from the block centres (k + 0.5) * 32 to every sample, held at both ends
    position = torch.arange(samples, dtype=torch.float64, device=mix.device) / DETECTOR_BLOCK - 0.5
    lower = torch.clamp(torch.floor(position), 0, blocks - 1)
    weight = torch.clamp(position - lower, 0.0, 1.0)
    lower = lower.long()
    upper = torch.clamp(lower + 1, max=blocks - 1)
    curve_db = gain_db[..., lower] * (1.0 - weight) + gain_db[..., upper] * weight + s["makeup_db"][..., None]
    gain = torch.where(silent[..., None], torch.ones_like(curve_db), db_to_gain(curve_db))
    return gain.to(mix.dtype)


def limiter_gain(mix: Tensor, ceiling_db: Tensor | float, release_ms: Tensor | float, sample_rate: int,
                 lookahead_ms: float = 1.5) -> Tensor:
    """Look-ahead brick-wall limiter gain, the torch version of :func:`mix_style.limiter_gain`:
    ``|mix * gain| <= ceiling`` at every sample.

    The required gain ``min(1, ceiling / peak)`` is min-filtered backwards over the look-ahead
    window, averaged forwards over it (a ramp that is down before each peak), kept below the
    required gain, and its recovery limited to 6 dB per ``release_ms`` (a running minimum).

    Shape:
        ``(..., 2, samples)`` and settings ``(...)`` -> ``(..., samples)`` (linear, <= 1).
    """
    what = "limiter_gain"
    mix, s = _broadcast(mix, what, ceiling_db=ceiling_db, release_ms=release_ms)
    _require(s["release_ms"] > 0.0, what, "release_ms must be > 0", s["release_ms"])
    if not lookahead_ms >= 0.0:
        raise ValueError(f"{what}: lookahead_ms must be >= 0; got {lookahead_ms}")
    samples = mix.shape[-1]
    lead = mix.shape[:-2]
    ceiling = db_to_gain(s["ceiling_db"])[..., None]
    peak = mix.to(torch.float64).abs().amax(dim=-2)
    required = torch.clamp(ceiling / torch.clamp(peak, min=1e-12), max=1.0)
    window = max(1, int(round(lookahead_ms * 1e-3 * sample_rate)))
    rows = required.reshape(-1, 1, samples)
    # minimum over [i - window + 1, i] (edge held), then the mean over [i, i + window - 1] (edge held)
    held = -F.max_pool1d(-F.pad(rows, (window - 1, 0), mode="replicate"), window, stride=1)
    ramp = F.avg_pool1d(F.pad(held, (0, window - 1), mode="replicate"), window, stride=1)
    ramp = torch.minimum(ramp.reshape(*lead, samples), required)
    ramp_db = 20.0 * torch.log10(torch.clamp(ramp, min=1e-12))
    slope = (6.0 / torch.clamp(s["release_ms"] * 1e-3 * sample_rate, min=1.0))[..., None]  # dB per sample
    index = torch.arange(samples, dtype=torch.float64, device=mix.device)
    released = torch.cummin(ramp_db - slope * index, dim=-1).values + slope * index
    return db_to_gain(torch.minimum(released, ramp_db)).to(mix.dtype)


def _k_weighting(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two biquads ``(b, a)`` of BS.1770's K-weighting as pyloudnorm designs them at any rate:
    R. Bristow-Johnson's high shelf (+4 dB, 1500 Hz, Q = 1/sqrt(2)) and high-pass (38 Hz, Q = 0.5)."""
    def omega(hz: float, q: float) -> tuple[float, float, float]:
        w0 = 2.0 * math.pi * hz / sample_rate
        return math.cos(w0), math.sin(w0) / (2.0 * q), w0

    cos, alpha, _ = omega(1500.0, 1.0 / math.sqrt(2.0))
    amp = 10.0 ** (4.0 / 40.0)
    root = 2.0 * math.sqrt(amp) * alpha
    shelf = (np.array([amp * ((amp + 1) + (amp - 1) * cos + root), -2 * amp * ((amp - 1) + (amp + 1) * cos),
                       amp * ((amp + 1) + (amp - 1) * cos - root)]),
             np.array([(amp + 1) - (amp - 1) * cos + root, 2 * ((amp - 1) - (amp + 1) * cos),
                       (amp + 1) - (amp - 1) * cos - root]))
    cos, alpha, _ = omega(38.0, 0.5)
    highpass = (np.array([(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]), np.array([1 + alpha, -2 * cos, 1 - alpha]))
    return [shelf, highpass]


LOUDNESS_BLOCK_SECONDS = 0.4
"""BS.1770 gating block (75 % overlap)."""


def loudness_lufs(mix: Tensor, sample_rate: int) -> Tensor:
    """ITU-R BS.1770-4 integrated loudness in LUFS, as pyloudnorm (``mix_style.integrated_loudness``) measures it.

    K-weighting (pyloudnorm's biquads), mean square per 400 ms block with 75 % overlap (pyloudnorm's
    block bounds), absolute gate at -70 LUFS, relative gate 10 LU below the gated mean. The
    gates select blocks (no gradient through the selection); the gradient flows through the energy
    of the selected blocks. ``torchaudio.functional.loudness`` is not used: it clamps the filtered
    signal to [-1, 1] (about 0.7 LU low on a mix at -4 LUFS) and drops pyloudnorm's last, partial
    block (about 0.8 LU low on a 0.45 s mix).

    Returns:
        Loudness per mix; ``-inf`` for a silent mix (its gradient is zero, not NaN).

    Raises:
        ValueError: the signal is not ``(..., 2, samples)`` or shorter than 0.4 s.

    Shape:
        ``(..., 2, samples)`` -> ``(...)``.
    """
    what = "loudness_lufs"
    _check_signal(mix, what)
    samples = mix.shape[-1]
    if samples < int(LOUDNESS_BLOCK_SECONDS * sample_rate):
        raise ValueError(f"{what} needs at least {LOUDNESS_BLOCK_SECONDS} s of audio, got "
                         f"{samples / sample_rate:.3f} s")
    signal = mix.to(torch.float64)
    for b, a in _k_weighting(sample_rate):
        signal = torchaudio.functional.lfilter(signal, torch.as_tensor(a, device=mix.device),
                                               torch.as_tensor(b, device=mix.device), clamp=False)
    # pyloudnorm's blocks: j * 100 ms to j * 100 ms + 400 ms, bounds truncated to samples
    block, step = LOUDNESS_BLOCK_SECONDS, 0.25
    count = int(np.round((samples / sample_rate - block) / (block * step))) + 1
    starts = torch.tensor([int(block * j * step * sample_rate) for j in range(count)], device=mix.device)
    stops = torch.tensor([int(block * (j * step + 1) * sample_rate) for j in range(count)], device=mix.device)
    cumulative = F.pad(torch.cumsum(signal.square(), dim=-1), (1, 0))
    stops = torch.clamp(stops, max=samples)
    energy = (cumulative[..., stops] - cumulative[..., starts]) / (block * sample_rate)  # (..., 2, blocks)
    block_energy = energy.sum(dim=-2)  # channel weights 1 for left and right
    silent_block = block_energy <= 0.0
    block_lufs = torch.where(silent_block, torch.full_like(block_energy, -math.inf),
                             -0.691 + 10.0 * torch.log10(torch.where(silent_block, torch.ones_like(block_energy),
                                                                     block_energy)))

    def gated_mean(mask: Tensor) -> Tensor:
        weights = mask.to(torch.float64)
        return (block_energy * weights).sum(dim=-1) / torch.clamp(weights.sum(dim=-1), min=1.0)

    absolute = block_lufs >= -70.0
    relative_db = -0.691 + 10.0 * torch.log10(torch.clamp(gated_mean(absolute), min=1e-300)) - 10.0
    gated = gated_mean(absolute & (block_lufs > relative_db[..., None]) & (block_lufs > -70.0))
    silent = gated <= 0.0
    lufs = -0.691 + 10.0 * torch.log10(torch.where(silent, torch.ones_like(gated), gated))
    return torch.where(silent, torch.full_like(lufs, -math.inf), lufs).to(mix.dtype)

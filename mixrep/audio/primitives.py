"""Small building blocks shared by the style augmentations, the mixing-style space and the corpora.

- levels: :func:`db_to_gain`, :func:`rms_db`
- placement: :func:`pan_gains` (constant-power pan law), :func:`stereo_width` (mid/side)
- filters: :func:`butterworth` (high-pass / low-pass / band-pass, any even slope)
- draws: :func:`uniform`, :func:`log_uniform`
- configs: :func:`dataclass_from_dict` (nested dataclass configs from JSON/YAML dicts)

Shape:
    Audio is ``(channels, samples)`` or ``(..., channels, samples)`` float32; filters run along
    the last axis.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

import numpy as np
import scipy.signal

T = TypeVar("T")


def db_to_gain(gain_db: float) -> float:
    """Linear amplitude factor of a gain in dB (``+6.02 dB`` doubles the amplitude)."""
    return math.pow(10.0, gain_db / 20.0)


def gain_to_db(gain: float, floor: float = 1e-12) -> float:
    """Gain in dB of a linear amplitude factor, the inverse of :func:`db_to_gain`; factors below
    ``floor`` (0 included) count as ``floor`` (-240 dB by default), so the result stays finite."""
    return 20.0 * math.log10(max(float(gain), floor))


def rms_db(audio: np.ndarray) -> float:
    """RMS level in dBFS over every sample of ``audio``; ``-inf`` for digital silence."""
    flat = np.asarray(audio, dtype=np.float32).ravel()
    energy = float(np.dot(flat, flat)) / max(flat.size, 1)
    return 10.0 * math.log10(energy) if energy > 0.0 else float("-inf")


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power pan law: ``(left, right)`` gains for ``pan`` in [-1 (left), 1 (right)].

    ``left = cos(theta)``, ``right = sin(theta)`` with ``theta = (pan + 1) * pi / 4``, so
    ``left**2 + right**2 = 1`` at every position and the centre is -3 dB per side.
    """
    angle = (float(np.clip(pan, -1.0, 1.0)) + 1.0) * math.pi / 4.0
    return math.cos(angle), math.sin(angle)


def stereo_width(audio: np.ndarray, width: float) -> np.ndarray:
    """Scale the side signal by ``width`` (0 = mono, 1 = unchanged, > 1 wider).

    Shape:
        ``(..., channels=2, samples)`` -> same shape.
    """
    mid = (audio[..., 0, :] + audio[..., 1, :]) * np.float32(0.5)
    side = (audio[..., 0, :] - audio[..., 1, :]) * np.float32(0.5 * width)
    return np.stack([mid + side, mid - side], axis=-2)


def butterworth(
    audio: np.ndarray,
    sample_rate: int,
    highpass_hz: float | None = None,
    lowpass_hz: float | None = None,
    order: int = 2,
) -> np.ndarray:
    """Butterworth high-pass, low-pass or band-pass along the last axis (6 dB/octave per order).

    Cut-offs are kept below 0.95 x Nyquist (low-pass) and below half the low-pass (high-pass),
    so every request is realisable; ``None`` skips that side.

    Shape:
        ``(..., samples)`` -> same shape, float32.
    """
    if highpass_hz is None and lowpass_hz is None:
        return audio
    top = 0.475 * sample_rate
    if lowpass_hz is not None:
        lowpass_hz = min(lowpass_hz, top)
    if highpass_hz is not None:
        highpass_hz = min(highpass_hz, 0.5 * (lowpass_hz if lowpass_hz is not None else top))
    if highpass_hz is not None and lowpass_hz is not None:
        sos = scipy.signal.butter(order, [highpass_hz, lowpass_hz], "bandpass", fs=sample_rate, output="sos")
    elif highpass_hz is not None:
        sos = scipy.signal.butter(order, highpass_hz, "highpass", fs=sample_rate, output="sos")
    else:
        sos = scipy.signal.butter(order, lowpass_hz, "lowpass", fs=sample_rate, output="sos")
    return scipy.signal.sosfilt(sos.astype(np.float32), audio, axis=-1).astype(np.float32, copy=False)


def uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """One draw uniform in ``[low, high]``."""
    return float(rng.uniform(bounds[0], bounds[1]))


def log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """One draw whose logarithm is uniform in ``[log low, log high]`` (frequencies, times, ratios)."""
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def dataclass_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a (nested) dataclass config from a plain dict, inverse of ``dataclasses.asdict``.

    Missing fields keep their defaults; lists become tuples where the default is a tuple (JSON
    has no tuples); nested dataclass fields recurse.

    Raises:
        ValueError: a key that is not a field of ``cls`` (with the valid names).
    """
    defaults = cls()
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            kwargs[name] = dataclass_from_dict(type(default), value)
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)

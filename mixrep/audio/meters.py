"""Level meters that read a long signal chunk by chunk: integrated loudness and true peak.

Memory stays bounded by the chunk, not the song (a 10-minute stereo mix at 44.1 kHz is 200 MB of
float32; ``pyloudnorm.Meter.integrated_loudness`` makes float64 copies of it).

* :class:`LoudnessMeter`: ITU-R BS.1770-4 integrated loudness, pyloudnorm's meter streamed: the same
  K-weighting biquads (``pyloudnorm.Meter(rate)``'s filters, run with ``scipy.signal.lfilter``
  carrying their state across chunks), the same 400 ms blocks every 100 ms with pyloudnorm's block
  boundaries, the absolute (-70 LUFS) and relative (-10 LU) gates. It reads what
  :func:`~mixrep.styles.mix_style.integrated_loudness` reads on the whole signal (tested to 1e-6 LU).
* :func:`true_peak_db`: ITU-R BS.1770-4 Annex 2 true peak: the signal oversampled (4x below
  96 kHz, 2x below 192 kHz) and its largest absolute value in dBTP. The oversampling is
  ``torchaudio.functional.resample``'s windowed-sinc interpolator (16 zero crossings), run per chunk with enough
  context on both sides that the chunked result equals the whole-signal one.

Shape:
    ``(channels, samples)`` float arrays (any number of channels; loudness weights them all 1,
    as for stereo).
"""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import torch
import torchaudio
from scipy.signal import lfilter

BLOCK_SECONDS = 0.4
"""BS.1770-4 gating block."""
BLOCK_OVERLAP = 0.75
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0


class LoudnessMeter:
    """Integrated loudness of ``total_samples`` samples fed in order by :meth:`add`.

    Args:
        sample_rate: Hz.
        total_samples: the length of the whole signal (sets the blocks, as pyloudnorm does).

    Raises:
        ValueError: a signal shorter than one 400 ms block.
    """

    def __init__(self, sample_rate: int, total_samples: int) -> None:
        if total_samples < int(BLOCK_SECONDS * sample_rate):
            raise ValueError(f"loudness needs at least {BLOCK_SECONDS} s of audio, got "
                             f"{total_samples / sample_rate:.3f} s")
        self.sample_rate, self.total = int(sample_rate), int(total_samples)
        meter = pyloudnorm.Meter(self.sample_rate)
        self._filters = [(f.b, f.a) for f in meter._filters.values()]
        step = 1.0 - BLOCK_OVERLAP
        blocks = int(np.round((self.total / self.sample_rate - BLOCK_SECONDS) / (BLOCK_SECONDS * step))) + 1
        j = np.arange(blocks)
        lower = np.array([int(BLOCK_SECONDS * (i * step) * self.sample_rate) for i in j])
        upper = np.array([int(BLOCK_SECONDS * (i * step + 1) * self.sample_rate) for i in j])
        self._lower, self._upper = np.minimum(lower, self.total), np.minimum(upper, self.total)
        self._marks = np.unique(np.concatenate([self._lower, self._upper]))
        self._energy_at = np.zeros(len(self._marks))  # cumulative K-weighted energy at each mark
        self._state: list[np.ndarray] | None = None
        self._position, self._energy, self._nonzero = 0, 0.0, False

    def add(self, chunk: np.ndarray) -> None:
        """Feed the next ``(channels, samples)`` of the signal."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if self._state is None:
            self._state = [np.zeros((chunk.shape[0], len(a) - 1)) for _, a in self._filters]
        self._nonzero = self._nonzero or bool(chunk.any())
        weighted = chunk
        for i, (b, a) in enumerate(self._filters):
            weighted, self._state[i] = lfilter(b, a, weighted, axis=-1, zi=self._state[i])
        energy = np.cumsum(np.square(weighted).sum(0))
        start, stop = self._position, self._position + chunk.shape[-1]
        inside = (self._marks > start) & (self._marks <= stop)
        self._energy_at[inside] = self._energy + energy[self._marks[inside] - start - 1]
        self._energy += float(energy[-1]) if len(energy) else 0.0
        self._position = stop

    def integrated(self) -> float:
        """Integrated loudness in LUFS (``-inf`` for silence).

        Raises:
            ValueError: fewer samples fed than ``total_samples``.
        """
        if self._position != self.total:
            raise ValueError(f"the meter was fed {self._position} of {self.total} samples")
        if not self._nonzero:
            return float("-inf")
        at = dict(zip(self._marks.tolist(), self._energy_at))
        at[0] = 0.0
        z = np.array([at[u] - at[lo] for lo, u in zip(self._lower.tolist(), self._upper.tolist())])
        z = np.maximum(z, 0.0) / (BLOCK_SECONDS * self.sample_rate)
        with np.errstate(divide="ignore"):
            block_lufs = -0.691 + 10.0 * np.log10(z)
        gated = z[block_lufs >= ABSOLUTE_GATE_LUFS]
        if len(gated) == 0:
            return float("-inf")
        relative = -0.691 + 10.0 * math.log10(gated.mean()) + RELATIVE_GATE_LU
        kept = z[(block_lufs > relative) & (block_lufs > ABSOLUTE_GATE_LUFS)]
        if len(kept) == 0:
            return float("-inf")
        return float(-0.691 + 10.0 * math.log10(kept.mean()))


def chunked_loudness(audio: np.ndarray, sample_rate: int, chunk_samples: int = 1 << 20) -> float:
    """Integrated loudness of ``(channels, samples)`` in LUFS, read ``chunk_samples`` at a time."""
    meter = LoudnessMeter(sample_rate, audio.shape[-1])
    for start in range(0, audio.shape[-1], chunk_samples):
        meter.add(audio[..., start: start + chunk_samples])
    return meter.integrated()


def oversampling_factor(sample_rate: int) -> int:
    """BS.1770-4 Annex 2: oversample to at least 192 kHz for signals below it (4x at 44.1/48 kHz)."""
    return 4 if sample_rate < 96_000 else 2 if sample_rate < 192_000 else 1


TRUE_PEAK_FILTER_WIDTH = 16
"""Zero crossings of the interpolator's windowed sinc on each side (torchaudio's default is 6): a
full-scale tone at a quarter of the rate reads within 0.02 dB of 0 dBTP."""
TRUE_PEAK_CONTEXT = 256
"""Samples of context on each side of a chunk (the interpolator's kernel spans 2 x 16 + 1)."""


def true_peak_db(audio: np.ndarray, sample_rate: int, chunk_samples: int = 1 << 18) -> float:
    """True peak of ``(channels, samples)`` in dBTP (``-inf`` for silence), chunk by chunk."""
    factor = oversampling_factor(sample_rate)
    length, peak = audio.shape[-1], 0.0
    for start in range(0, length, chunk_samples):
        a, b = max(0, start - TRUE_PEAK_CONTEXT), min(length, start + chunk_samples + TRUE_PEAK_CONTEXT)
        chunk = torch.from_numpy(np.ascontiguousarray(audio[..., a:b], dtype=np.float32))
        if factor > 1:
            chunk = torchaudio.functional.resample(chunk, 1, factor, lowpass_filter_width=TRUE_PEAK_FILTER_WIDTH)
        inner = chunk[..., (start - a) * factor: (min(length, start + chunk_samples) - a) * factor]
        peak = max(peak, float(inner.abs().max()) if inner.numel() else 0.0)
    return 20.0 * math.log10(peak) if peak > 0 else float("-inf")

"""The comparison figure of ``mixrep mix``: reference, raw sum and result side by side.

Four panels: loudness per stem (dB RMS relative to the mix), long-term average spectra of the
mixes (dB, each normalised to its mean), stereo width per band (side / mid energy in dB) and
dynamics (short-term RMS distribution in dB relative to the mix's RMS).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from mixrep.constants import STEMS
from mixrep.inference.balance import console_stems

FIGURE_SECONDS = 10.0
"""Length of the excerpt (the song's start) the figure measures: its stems are rendered with every
node's output kept, at the tracks' rate (16 tracks of 30 s at 44.1 kHz took 2.4 GB more than the
rest of ``mixrep mix``; 10 s take a third of it)."""


def _db(x: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(x, 1e-12))


def _spectrum(mono: np.ndarray, n_fft: int = 4096) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(mono, n_fft)[:: n_fft // 2]
    if len(frames) == 0:
        frames = np.pad(mono, (0, n_fft - len(mono)))[None]
    return (np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)) ** 2).mean(0)


def mix_profile(stems: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """What the figure draws for one mix given as stems ``(4, 2, samples)`` (summed to the mix)."""
    mix = stems.sum(0)
    mix_power = float(np.mean(mix**2)) + 1e-12
    mid, side = (mix[0] + mix[1]) / 2, (mix[0] - mix[1]) / 2
    spectrum = _db(_spectrum(mid))
    bands = np.geomspace(40.0, sample_rate / 2 * 0.95, 9)
    freqs = np.fft.rfftfreq(4096, 1.0 / sample_rate)
    mid_s, side_s = _spectrum(mid), _spectrum(side)
    width = [float(_db(side_s[(freqs >= lo) & (freqs < hi)].sum() / (mid_s[(freqs >= lo) & (freqs < hi)].sum() + 1e-12)))
             for lo, hi in itertools.pairwise(bands)]
    hop = max(1, int(0.4 * sample_rate))
    short = np.array([np.mean(mix[:, i: i + hop] ** 2) for i in range(0, mix.shape[-1] - hop + 1, hop)] or [mix_power])
    return {"stem_db": _db(np.mean(stems**2, axis=(1, 2)) / mix_power), "freqs": freqs,
            "spectrum_db": spectrum - spectrum.mean(), "band_hz": np.sqrt(bands[:-1] * bands[1:]),
            "width_db": np.array(width), "short_db": _db(short / mix_power)}


@torch.no_grad()
def transfer_profiles(console, tracks: np.ndarray, gains: np.ndarray, stems: list[str], sample_rate: int,
                      reference: np.ndarray, reference_rate: int, seconds: float = FIGURE_SECONDS
                      ) -> dict[str, dict[str, np.ndarray]]:
    """The figure's profiles of the reference, the raw sum and the result on the first ``seconds``.

    Args:
        console: the console that rendered the mix, at ``sample_rate``; tracks ``(K, 2, samples)``
            raw at ``sample_rate`` with their level-alignment ``gains`` ``(K,)``; stems: class per track.
        reference: ``(4, 2, samples)`` at ``reference_rate``.
    """
    excerpt = min(tracks.shape[-1], int(seconds * sample_rate))
    aligned = torch.from_numpy(np.ascontiguousarray(tracks[..., :excerpt], dtype=np.float32))
    aligned = aligned * torch.from_numpy(gains.astype(np.float32))[:, None, None]
    device = next(iter(console.parameters())).device
    result_stems = console_stems(console, aligned.to(device), stems).cpu().numpy()
    raw_stems = np.zeros_like(result_stems)
    for track, stem in zip(aligned.numpy(), stems):
        raw_stems[STEMS.index(stem)] += track
    return {"reference": mix_profile(np.asarray(reference[..., : int(seconds * reference_rate)]), reference_rate),
            "raw sum": mix_profile(raw_stems, sample_rate), "result": mix_profile(result_stems, sample_rate)}

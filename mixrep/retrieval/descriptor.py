"""A strong handcrafted per-stem mixing descriptor: the baseline a style embedding must beat.

Each of the four stems gets the same :data:`FIELDS` (67 numbers), in physical units, from one STFT
per stem channel (Hann frames of about :data:`FRAME_SECONDS`, hop a quarter frame) and the
waveform itself. The descriptor is the four stems' fields side by side, named
``<stem>.<field>`` (:data:`DESCRIPTOR_NAMES`, e.g. ``drums.band_125hz_db``); z-scored over a set it
is the ``stem_descriptor`` baseline of :mod:`mixrep.retrieval.baselines`.

Octave bands are the ten bands centred on ``1 kHz * 2**k``, ``k = -5 .. 4`` (labelled 31 Hz .. 16 kHz),
each from ``fc / sqrt(2)`` to ``fc * sqrt(2)``, the top one running to the Nyquist frequency; a band
above it (16 kHz at 22.05 kHz) holds no bin and reads the floors (a constant column, which
z-scoring zeroes). "Power" below is the mean over the two channels of the mean square, so a
centred mono source reads the level of one channel.

=====================================  ========================================================================
field                                  meaning (per stem)
=====================================  ========================================================================
``band_<fc>_db``                       octave-band level, dBFS (absolute: the stem's gain moves every band)
``band_<fc>_spread_db``                std over frames of the band's level in dB, each frame floored
                                       :data:`SPREAD_RANGE_DB` below the band's clip level (a gap counts as a
                                       40 dB dip): how much the band's level moves
``centroid_log2_hz_mean`` / ``_std``   spectral centroid of each frame, log2 Hz, mean / std over frames
                                       weighted by frame power
``tilt_db_per_octave``                 least-squares slope of the octave bands' power spectral density (dB)
                                       against log2 frequency (white noise 0, pink noise -3)
``flatness_db``                        spectral flatness (geometric / arithmetic mean of the power spectrum;
                                       J. D. Johnston, "Transform coding of audio signals using perceptual
                                       noise criteria", IEEE JSAC 1988), dB, power-weighted mean over frames
``rolloff_log2_hz``                    frequency below which 85 % of the clip's power lies, log2 Hz
``crest_db``                           peak / RMS over the clip, dB
``rms_50ms_p10_db`` .. ``p90_db``      10th, 50th and 90th percentiles of the RMS level (dBFS) of 50 ms
                                       windows (hop 25 ms); likewise ``rms_400ms_*`` (hop 100 ms)
``lufs``                               integrated loudness, ITU-R BS.1770-4 (:mod:`mixrep.frontend.loudness`)
``lr_correlation``                     zero-lag correlation of left and right, -1 .. 1
``side_mid_db``                        side / mid energy, dB (mono -40, clipped to +-40)
``width``                              power-weighted standard deviation over STFT cells of the pan position
                                       ``(|R|^2 - |L|^2) / (|L|^2 + |R|^2)``: 0 when every cell sits at one
                                       position (mono, or one hard-panned source), up to 1 for sources spread
                                       hard left and hard right
``balance_db``                         right / left energy, dB (positive: right louder; clipped to +-40)
``band_<fc>_coherence``                magnitude-squared L/R coherence of each bin over frames, power-weighted
                                       mean over the band's bins (1: the channels differ by a gain and a
                                       delay; 0: independent, e.g. diffuse reverb)
``band_<fc>_side_mid_db``              side / mid energy in the band, dB (clipped to +-40)
``band_<fc>_balance_db``               right / left energy in the band, dB (clipped to +-40)
=====================================  ========================================================================

Floors keep every value finite: powers get :data:`POWER_FLOOR` (-100 dBFS), so a silent stem reads
-100 dBFS levels, zero spreads, 0 dB crest, balance and side/mid, correlation, coherence and width 0,
:data:`~mixrep.frontend.loudness.LOUDNESS_FLOOR_LUFS`, and the spectrum of a white floor (flatness 0 dB).

Shape:
    :func:`stem_descriptor`: ``(batch, stems=4, channels=2, samples)`` -> ``(batch, 4 * len(FIELDS))``
    float32 (torch, on the input's device).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from mixrep.constants import STEMS
from mixrep.frontend.features import LEVEL_FLOOR_DB, STEREO_RATIO_LIMIT_DB, check_stems
from mixrep.frontend.loudness import gated_loudness, k_weight

FRAME_SECONDS = 0.186
"""STFT frame length; the FFT size is the power of two nearest to it (4096 at 22.05 kHz, 8192 at 44.1 kHz),
so the 31 Hz band holds several bins."""
BAND_CENTRES_HZ: tuple[float, ...] = tuple(1000.0 * 2.0**k for k in range(-5, 5))
BAND_LABELS: tuple[str, ...] = ("31hz", "63hz", "125hz", "250hz", "500hz", "1khz", "2khz", "4khz", "8khz", "16khz")
SPREAD_RANGE_DB = 40.0
"""Frame band levels are floored this far below the band's clip level before their spread is taken."""
ROLLOFF_FRACTION = 0.85
RMS_WINDOWS_SECONDS: tuple[tuple[float, float], ...] = ((0.05, 0.025), (0.4, 0.1))
"""(window, hop) of the short-term RMS levels whose percentiles are fields."""
PERCENTILES: tuple[int, ...] = (10, 50, 90)
MIN_SECONDS = 0.4
"""Shortest clip: one 400 ms RMS window."""
POWER_FLOOR = 10.0 ** (LEVEL_FLOOR_DB / 10.0)
_TINY = torch.finfo(torch.float32).tiny

FIELDS: tuple[str, ...] = (
    *(f"band_{b}_db" for b in BAND_LABELS),
    *(f"band_{b}_spread_db" for b in BAND_LABELS),
    "centroid_log2_hz_mean", "centroid_log2_hz_std", "tilt_db_per_octave", "flatness_db", "rolloff_log2_hz",
    "crest_db",
    *(f"rms_{round(w * 1000)}ms_p{p}_db" for w, _ in RMS_WINDOWS_SECONDS for p in PERCENTILES),
    "lufs", "lr_correlation", "side_mid_db", "width", "balance_db",
    *(f"band_{b}_coherence" for b in BAND_LABELS),
    *(f"band_{b}_side_mid_db" for b in BAND_LABELS),
    *(f"band_{b}_balance_db" for b in BAND_LABELS),
)
"""The per-stem fields, in vector order (see the module docstring)."""
DESCRIPTOR_NAMES: tuple[str, ...] = tuple(f"{stem}.{field}" for stem in STEMS for field in FIELDS)
"""Column names of :func:`stem_descriptor`'s output: the stems in :data:`~mixrep.constants.STEMS` order."""


def fft_size(sample_rate: int) -> int:
    """The STFT size at ``sample_rate``: the power of two nearest to :data:`FRAME_SECONDS`."""
    return 1 << round(math.log2(FRAME_SECONDS * sample_rate))


@functools.lru_cache(maxsize=16)
def _layout(sample_rate: int, device: torch.device) -> dict:
    """Bin frequencies, the band membership matrix and the analysis range for one rate."""
    n_fft = fft_size(sample_rate)
    freqs_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    centres = np.asarray(BAND_CENTRES_HZ)
    lower, upper = centres / math.sqrt(2.0), centres * math.sqrt(2.0)
    upper[-1] = max(upper[-1], sample_rate / 2.0 + 1.0)  # the top band runs to the Nyquist bin
    bands = ((freqs_hz[:, None] >= lower) & (freqs_hz[:, None] < upper)).astype(np.float32)  # (bins, bands)
    bins_per_band = bands.sum(axis=0)
    in_range = (freqs_hz >= lower[0]) & (freqs_hz < upper[-1])
    one_sided = np.full(n_fft // 2 + 1, 2.0)  # one-sided power: DC and Nyquist once
    one_sided[0] = one_sided[-1] = 1.0
    window = torch.hann_window(n_fft, dtype=torch.float64)
    window = window / math.sqrt(n_fft * float(window.square().sum()))  # the bins of a frame sum to its mean square
    x = np.log2(centres) - np.log2(centres).mean()
    return {
        "n_fft": n_fft,
        "window": window.float().to(device),
        "one_sided": torch.from_numpy(one_sided).float().to(device),
        "bands": torch.from_numpy(bands).to(device),
        "bins_per_band": torch.from_numpy(bins_per_band).to(device),
        "occupied": torch.from_numpy(bins_per_band > 0).to(device),
        "x_octaves": torch.from_numpy(x).float().to(device),
        "in_range": torch.from_numpy(in_range).to(device),
        "log2_hz": torch.from_numpy(np.log2(np.maximum(freqs_hz, 1.0))).float().to(device),
        "freqs_hz": torch.from_numpy(freqs_hz).float().to(device),
    }


def _db(power: torch.Tensor) -> torch.Tensor:
    """dB of a power with the floor; rounding that makes a power slightly negative (side of a mono pair) reads 0."""
    return 10.0 * torch.log10(power.clamp(min=0.0) + POWER_FLOOR)


def _ratio_db(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    return (_db(numerator) - _db(denominator)).clamp(-STEREO_RATIO_LIMIT_DB, STEREO_RATIO_LIMIT_DB)


def _weighted_mean_std(values: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of ``values`` along the last axis with non-negative ``weights`` (uniform if all zero)."""
    total = weights.sum(dim=-1, keepdim=True)
    weights = torch.where(total > 0, weights / total.clamp(min=_TINY), 1.0 / weights.shape[-1])
    mean = (weights * values).sum(dim=-1)
    return mean, (weights * (values - mean[..., None]).square()).sum(dim=-1).clamp(min=0.0).sqrt()


def _short_term_percentiles(power: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Percentiles of the short-term RMS levels: ``(signals, samples)`` power -> ``(signals, 6)`` dBFS."""
    samples = power.shape[-1]
    running = torch.nn.functional.pad(power.double().cumsum(dim=-1), (1, 0))
    quantiles = torch.tensor([p / 100.0 for p in PERCENTILES], dtype=torch.float64, device=power.device)
    columns = []
    for window_seconds, hop_seconds in RMS_WINDOWS_SECONDS:
        window = min(samples, round(window_seconds * sample_rate))
        starts = torch.arange(0, samples - window + 1, round(hop_seconds * sample_rate), device=power.device)
        levels = (running[:, starts + window] - running[:, starts]) / window
        columns.append(torch.quantile(_db(levels), quantiles, dim=-1).T)
    return torch.cat(columns, dim=-1).float()


@torch.no_grad()
def stem_descriptor(stems: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """The descriptor of every clip: the :data:`FIELDS` of each stem, stems side by side.

    Args:
        stems: ``(batch, 4, 2, samples)`` in :data:`~mixrep.constants.STEMS` order, any float dtype
            and device, at least :data:`MIN_SECONDS` long.
        sample_rate: Hz.

    Returns:
        ``(batch, 4 * len(FIELDS))`` float32 on the stems' device, columns named by :data:`DESCRIPTOR_NAMES`.

    Raises:
        ValueError: wrong shape, a clip shorter than :data:`MIN_SECONDS`, or non-finite samples.
    """
    check_stems(stems, sample_rate, what="the stem descriptor")
    batch, num_stems, channels, samples = stems.shape
    if samples < MIN_SECONDS * sample_rate:
        raise ValueError(f"the stem descriptor needs clips of at least {MIN_SECONDS} s "
                         f"({math.ceil(MIN_SECONDS * sample_rate)} samples at {sample_rate} Hz); got {samples} samples")
    x = stems.float().reshape(batch * num_stems, channels, samples)  # (signals, 2, samples)
    layout = _layout(int(sample_rate), x.device)
    n_fft = layout["n_fft"]
    spectrum = torch.stft(x.reshape(-1, samples), n_fft, hop_length=n_fft // 4, window=layout["window"],
                          center=False, return_complex=True)
    spectrum = spectrum.unflatten(0, (batch * num_stems, channels))  # (signals, 2, bins, frames)
    left, right = spectrum[:, 0], spectrum[:, 1]
    one_sided = layout["one_sided"]
    channel_power = torch.view_as_real(spectrum).square().sum(dim=-1) * one_sided[:, None]
    power_left, power_right = channel_power.unbind(dim=1)
    power = 0.5 * (power_left + power_right)  # (signals, bins, frames)
    bands = layout["bands"]

    # Octave-band levels and their movement over frames.
    frame_band_power = torch.einsum("skt,kb->sbt", power, bands)
    band_db = _db(frame_band_power.mean(dim=-1))  # (signals, bands)
    frame_band_db = torch.maximum(_db(frame_band_power), band_db[..., None] - SPREAD_RANGE_DB)
    band_spread_db = frame_band_db.std(dim=-1, correction=0)

    # Spectral shape over the analysis range (a white floor keeps silence defined).
    in_range = layout["in_range"]
    shaped = power[:, in_range] + POWER_FLOOR / int(in_range.sum())  # (signals, range bins, frames)
    frame_power = shaped.sum(dim=1)  # (signals, frames)
    centroid_hz = (shaped * layout["freqs_hz"][in_range, None]).sum(dim=1) / frame_power
    centroid_mean, centroid_std = _weighted_mean_std(torch.log2(centroid_hz), frame_power)
    flatness_db = 10.0 * (shaped.log().mean(dim=1) / math.log(10.0)) - 10.0 * torch.log10(shaped.mean(dim=1))
    flatness_db, _ = _weighted_mean_std(flatness_db, frame_power)
    long_term = shaped.mean(dim=-1).cumsum(dim=-1)
    rolloff_bin = (long_term < ROLLOFF_FRACTION * long_term[:, -1:]).sum(dim=-1)
    rolloff_log2_hz = layout["log2_hz"][in_range][rolloff_bin.clamp(max=int(in_range.sum()) - 1)]
    occupied = layout["occupied"]
    density_db = _db(frame_band_power.mean(dim=-1)[:, occupied] / layout["bins_per_band"][occupied])
    x_octaves = layout["x_octaves"][occupied] - layout["x_octaves"][occupied].mean()
    tilt = (density_db * x_octaves).sum(dim=-1) / x_octaves.square().sum()

    # Dynamics and loudness from the waveform.
    sample_power = x.square().mean(dim=1)  # (signals, samples)
    mean_square = sample_power.mean(dim=-1)
    crest_db = _db(x.abs().amax(dim=(1, 2)).square()) - _db(mean_square)
    percentiles_db = _short_term_percentiles(sample_power, sample_rate)
    weighted = k_weight(x, torch.fft.rfft(x), int(sample_rate))
    lufs = gated_loudness(weighted.square().sum(dim=1), int(sample_rate))

    # Stereo image over the clip and per band.
    ll, rr = x[:, 0].square().mean(dim=-1), x[:, 1].square().mean(dim=-1)
    lr = (x[:, 0] * x[:, 1]).mean(dim=-1)
    correlation = lr / (ll * rr + POWER_FLOOR**2).sqrt()
    side_mid_db = _ratio_db((ll + rr - 2 * lr) / 4, (ll + rr + 2 * lr) / 4)
    balance_db = _ratio_db(rr, ll)
    # Pan p = d / e per cell (d = R - L power, e = R + L): power-weighted mean sum(d) / sum(e),
    # second moment sum(d^2 / e) / sum(e).
    cell_power, difference = power_left + power_right, power_right - power_left
    total = cell_power.sum(dim=(1, 2))
    pan_mean = difference.sum(dim=(1, 2)) / total.clamp(min=_TINY)
    pan_square = (difference.square() / cell_power.clamp(min=_TINY)).sum(dim=(1, 2)) / total.clamp(min=_TINY)
    width = (pan_square - pan_mean.square()).clamp(min=0.0).sqrt()
    bin_ll, bin_rr = power_left.sum(dim=-1), power_right.sum(dim=-1)  # (signals, bins)
    bin_lr = (left * right.conj()).sum(dim=-1) * one_sided
    coherence = bin_lr.abs().square() / (bin_ll * bin_rr + POWER_FLOOR**2)
    band_ll, band_rr, band_lr = bin_ll @ bands, bin_rr @ bands, bin_lr.real @ bands
    band_coherence = ((bin_ll + bin_rr) * coherence) @ bands / (band_ll + band_rr + POWER_FLOOR)
    band_side_mid_db = _ratio_db((band_ll + band_rr - 2 * band_lr) / 4, (band_ll + band_rr + 2 * band_lr) / 4)
    band_balance_db = _ratio_db(band_rr, band_ll)

    columns = [band_db, band_spread_db,
               torch.stack([centroid_mean, centroid_std, tilt, flatness_db, rolloff_log2_hz, crest_db], dim=-1),
               percentiles_db,
               torch.stack([lufs, correlation, side_mid_db, width, balance_db], dim=-1),
               band_coherence, band_side_mid_db, band_balance_db]
    fields = torch.cat([c.float() for c in columns], dim=-1)
    assert fields.shape[-1] == len(FIELDS), (fields.shape, len(FIELDS))
    return fields.reshape(batch, num_stems * len(FIELDS))


__all__ = ["DESCRIPTOR_NAMES", "FIELDS", "stem_descriptor"]

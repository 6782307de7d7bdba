"""TEST REFERENCE ONLY: the NumPy mix features mixrep computed before the torch front end.

The package computes the features once, in torch (:mod:`mixrep.frontend.features`); this is the
previous per-clip NumPy/SciPy implementation, kept so the tests can check the torch version
against an independent one (time-domain IIR K-weighting with ``scipy.signal.sosfilt``, a windowed
``scipy.fft.rfft`` per stem, ``np.add.reduceat`` gating). It is not imported by ``mixrep``.

Its K-weighting coefficients are a parameter: the front end's BS.1770 sections by default, or
pyloudnorm's cookbook approximation (what the old implementation used) through the public
``pyloudnorm.IIRfilter`` class.

One fixed-length float32 vector per clip, computed for each stem and for the mix (the sum of
the stems). The model conditions on it through FiLM; values stay in raw physical units (dB, LUFS,
LU, dB/octave, correlation) and the model normalises them itself (LayerNorm).

Features per signal (``<signal>`` is a stem name from :data:`mixrep.constants.STEMS` or ``mix``):

==============================  ==============================================  ===================
name                            meaning                                         typical range
==============================  ==============================================  ===================
``rms_db``                      RMS over both channels, dBFS                    -60 .. 0 (floor -100)
``crest_db``                    peak / RMS, dB                                  3 .. 25 (silence 0)
``lufs``                        integrated loudness, ITU-R BS.1770-4, LUFS      -50 .. 0 (floor -70)
``rel_loudness_lu``  (stems)    stem LUFS - mix LUFS, LU                        -30 .. 0
``band{i}_db``                  band energy relative to the 20 Hz-20 kHz total  -60 .. 0 (floor -100)
``tilt_db_per_octave``          least-squares slope of band PSD, dB/octave      -8 .. 2 (white 0)
``flatness_db``                 spectral flatness (geo/arith mean), dB          -60 .. -2 (silence 0)
``ild_db``                      left / right energy, dB                         -6 .. 6 (clip +-40)
``lr_correlation``              zero-lag L/R correlation                        -1 .. 1 (silence 0)
``mid_side_db``                 mid / side energy, dB                           0 .. 40 (clip +-40)
``dominance_band{i}`` (stems)   stem's share of the stems' energy in band i     0 .. 1 (silence 1/4)
==============================  ==============================================  ===================

Floors make every value finite: mean-square levels get a -100 dBFS floor (so digital silence
reads ``rms_db = -100``), the power spectrum gets a white floor at -100 dBFS (so silence reads as
flat, zero-tilt noise, as ``librosa.feature.spectral_flatness`` does with its ``amin``), loudness
is floored at the BS.1770 absolute gate of -70 LUFS and the two stereo energy ratios saturate at
+-40 dB (a 40 dB difference is hard-panned / mono for every practical purpose).

Loudness follows ITU-R BS.1770-4 (K-weighting, 400 ms blocks with 75 % overlap, absolute gate
-70 LUFS, relative gate -10 LU) with pyloudnorm's block boundaries; it is vectorised over the stems because the K-weighting is
linear, so the mix's filtered signal is the sum of the filtered stems. Clips shorter than one
400 ms block (where pyloudnorm refuses to measure) are measured as a single block spanning the
whole clip. Band energies come from one Hann-windowed ``rfft`` per stem channel; the mix
spectrum is the sum of the stem spectra.

Shape:
    ``stems``: ``(stems=4, channels=2, samples)``; the feature vector: ``(num_features(),)``.
"""

from __future__ import annotations

import functools

import numpy as np
import pyloudnorm
import scipy.fft
import scipy.signal

from mixrep.audio.io import check_sample_rate
from mixrep.constants import CHANNELS, STEMS
from mixrep.frontend.loudness import k_weighting_sos

NUM_BANDS = 8
"""Log-spaced bands between :data:`BAND_MIN_HZ` and ``min(BAND_MAX_HZ, sample_rate / 2)``."""
BAND_MIN_HZ = 20.0
BAND_MAX_HZ = 20_000.0
LEVEL_FLOOR_DB = -100.0
"""Floor of every mean-square level (dBFS) and of the relative band levels (dB)."""
LOUDNESS_FLOOR_LUFS = -70.0
"""BS.1770 absolute gate: quieter blocks are ignored, an all-quiet signal reads this value."""
MIN_SECONDS = 0.1
"""Shortest clip accepted: every band must contain at least one FFT bin."""
STEREO_RATIO_LIMIT_DB = 40.0
"""``ild_db`` and ``mid_side_db`` are clipped to +- this value."""

_POWER_FLOOR = 10.0 ** (LEVEL_FLOOR_DB / 10.0)
_MIX = "mix"
_LOUDNESS_BLOCK_SECONDS = 0.4
_LOUDNESS_OVERLAP = 0.75
_RELATIVE_GATE_LU = -10.0

_COMMON_FIELDS = (
    ("rms_db", "crest_db", "lufs")
    + tuple(f"band{i}_db" for i in range(NUM_BANDS))
    + ("tilt_db_per_octave", "flatness_db", "ild_db", "lr_correlation", "mid_side_db")
)
_STEM_ONLY_FIELDS = ("rel_loudness_lu",) + tuple(f"dominance_band{i}" for i in range(NUM_BANDS))


@functools.cache
def feature_names() -> tuple[str, ...]:
    """Names of the entries of :func:`mix_features`, ``"<signal>.<field>"``, in vector order.

    The stems come first in :data:`~mixrep.constants.STEMS` order, then ``mix``; a stem has the
    common fields followed by ``rel_loudness_lu`` and ``dominance_band0..7``.
    """
    names = [f"{stem}.{field}" for stem in STEMS for field in _COMMON_FIELDS + _STEM_ONLY_FIELDS]
    names += [f"{_MIX}.{field}" for field in _COMMON_FIELDS]
    return tuple(names)


def num_features() -> int:
    """Length of the vector :func:`mix_features` returns (116 with 4 stems and 8 bands)."""
    return len(feature_names())


def band_edges_hz(sample_rate: int) -> np.ndarray:
    """Edges of the :data:`NUM_BANDS` log-spaced bands, Hz, shape ``(NUM_BANDS + 1,)``."""
    top_hz = min(BAND_MAX_HZ, sample_rate / 2.0)
    return np.geomspace(BAND_MIN_HZ, top_hz, NUM_BANDS + 1)


def pyloudnorm_cookbook_sos(sample_rate: int) -> np.ndarray:
    """pyloudnorm's default K-weighting (cookbook shelf 4 dB / 1500 Hz, high pass 38 Hz) as SOS."""
    stages = [pyloudnorm.IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sample_rate, "high_shelf"),
              pyloudnorm.IIRfilter(0.0, 0.5, 38.0, sample_rate, "high_pass")]
    return np.stack([np.concatenate([stage.b, stage.a]) for stage in stages])


@functools.cache
def _spectral_layout(samples: int, sample_rate: int) -> dict[str, np.ndarray]:
    """Window, band bin ranges and least-squares weights for one clip length, cached."""
    window = scipy.signal.get_window("hann", samples, fftbins=True).astype(np.float32)
    num_bins = samples // 2 + 1
    freqs_hz = np.arange(num_bins) * sample_rate / samples
    edges_hz = band_edges_hz(sample_rate)
    edge_bins = np.searchsorted(freqs_hz, edges_hz)  # band b covers bins [edge_bins[b], edge_bins[b+1])
    bins_per_band = np.diff(edge_bins)
    assert (bins_per_band > 0).all(), f"empty band for {samples} samples at {sample_rate} Hz: {bins_per_band}"
    # Log-frequency of each band's geometric centre, centred for the least-squares slope.
    x_octaves = np.log2(np.sqrt(edges_hz[:-1] * edges_hz[1:]))
    x_octaves = x_octaves - x_octaves.mean()
    # One-sided power scaling so that the bins sum to the (window-compensated) mean square.
    scale = np.full(num_bins, 2.0 / (samples * np.sum(window.astype(np.float64) ** 2)))
    scale[0] /= 2.0
    if samples % 2 == 0:
        scale[-1] /= 2.0
    return {
        "window": window,
        "scale": scale[edge_bins[0] : edge_bins[-1]],
        "edge_bins": edge_bins,
        "band_starts": edge_bins[:-1] - edge_bins[0],
        "bins_per_band": bins_per_band,
        "x_octaves": x_octaves,
    }


def _db(power: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(power)


@functools.cache
def _loudness_blocks(samples: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment bounds and per-block segment ranges of BS.1770 gating, pyloudnorm's indexing.

    Block ``j`` spans samples ``[int(0.4 * 0.25 * j * rate), int(0.4 * (0.25 * j + 1) * rate))``;
    it is the sum of segments ``lo[j]:hi[j]`` of ``np.add.reduceat(x, bounds)``. A clip shorter
    than one block is one block spanning the clip.
    """
    step = 1.0 - _LOUDNESS_OVERLAP
    if samples < _LOUDNESS_BLOCK_SECONDS * sample_rate:
        return np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.int64)
    duration = samples / sample_rate
    num_blocks = int(np.round((duration - _LOUDNESS_BLOCK_SECONDS) / (_LOUDNESS_BLOCK_SECONDS * step))) + 1
    j = np.arange(num_blocks)
    lower = np.array([int(_LOUDNESS_BLOCK_SECONDS * (i * step) * sample_rate) for i in j])
    upper = np.array([min(int(_LOUDNESS_BLOCK_SECONDS * (i * step + 1) * sample_rate), samples) for i in j])
    bounds = np.unique(np.concatenate([lower, upper]))
    bounds = bounds[bounds < samples]
    lo = np.searchsorted(bounds, lower)
    hi = np.searchsorted(bounds, upper)  # == len(bounds) for a block ending at the clip's end
    return bounds, lo, hi


def _loudness_lufs(k_weighted: np.ndarray, sample_rate: int) -> np.ndarray:
    """Gated integrated loudness (ITU-R BS.1770-4, eq. 1-7) of K-weighted stereo signals.

    Same block boundaries and normalisation as ``pyloudnorm.Meter.integrated_loudness``
    (channel weights 1); clips shorter than one 400 ms block are one block.

    Shape:
        ``k_weighted``: ``(signals, channels, samples)`` -> ``(signals,)`` LUFS, floored at -70.
    """
    samples = k_weighted.shape[-1]
    bounds, lo, hi = _loudness_blocks(samples, sample_rate)
    block_samples = min(_LOUDNESS_BLOCK_SECONDS * sample_rate, samples)
    segment_sums = np.add.reduceat(np.square(k_weighted), bounds, axis=-1, dtype=np.float64).sum(axis=1)
    cumulative = np.concatenate([np.zeros((k_weighted.shape[0], 1)), np.cumsum(segment_sums, axis=-1)], axis=-1)
    block_power = (cumulative[:, hi] - cumulative[:, lo]) / block_samples  # (signals, blocks), sum over channels
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + _db(block_power)
    lufs = np.full(k_weighted.shape[0], LOUDNESS_FLOOR_LUFS)
    for s in range(k_weighted.shape[0]):
        above_absolute = block_lufs[s] >= LOUDNESS_FLOOR_LUFS
        if not above_absolute.any():
            continue
        relative_gate = -0.691 + _db(block_power[s, above_absolute].mean()) + _RELATIVE_GATE_LU
        gated = (block_lufs[s] > relative_gate) & (block_lufs[s] > LOUDNESS_FLOOR_LUFS)
        if gated.any():
            lufs[s] = max(-0.691 + _db(block_power[s, gated].mean()), LOUDNESS_FLOOR_LUFS)
    return lufs


def _check_stems(stems: np.ndarray) -> np.ndarray:
    stems = np.asarray(stems)
    expected = (len(STEMS), CHANNELS)
    if stems.ndim != 3 or stems.shape[:2] != expected:
        raise ValueError(
            f"mix_features expects stems of shape ({expected[0]}, {expected[1]}, samples) in "
            f"{STEMS} order, got {stems.shape}"
        )
    return np.ascontiguousarray(stems, dtype=np.float32)


def mix_features(stems: np.ndarray, sample_rate: int, k_sos: np.ndarray | None = None) -> np.ndarray:
    """Compute the mix feature vector of a clip (see the module docstring for every field).

    Args:
        stems: stems in :data:`~mixrep.constants.STEMS` order; their sum is the mix.
        sample_rate: Hz.
        k_sos: K-weighting sections (default: the front end's BS.1770 ones).

    Returns:
        float32 vector ordered as :func:`feature_names`, finite for any finite input (silence,
        mono, clipped, clips of :data:`MIN_SECONDS` and longer, including those shorter than a
        400 ms loudness block).

    Raises:
        ValueError: wrong shape, clip shorter than :data:`MIN_SECONDS`, non-finite samples or unsupported sample rate.

    Shape:
        ``stems``: ``(stems=4, channels=2, samples)`` -> ``(num_features(),)``.
    """
    stems = _check_stems(stems)
    sample_rate = check_sample_rate(sample_rate)
    num_stems, _, samples = stems.shape
    if samples < MIN_SECONDS * sample_rate:
        raise ValueError(
            f"mix_features needs at least {MIN_SECONDS} s ({int(np.ceil(MIN_SECONDS * sample_rate))} samples "
            f"at {sample_rate} Hz) so every band holds an FFT bin, got {samples} samples; use longer clips"
        )
    channels = stems.reshape(num_stems * CHANNELS, samples)

    # Second moments of every stem channel pair; the mix's follow by linearity. (5, 2, 2)
    gram = (channels @ channels.T).astype(np.float64).reshape(num_stems, CHANNELS, num_stems, CHANNELS)
    if not np.isfinite(gram).all():
        raise ValueError("mix_features got non-finite or overflowing samples; check the separator/reader output")
    covariance = np.concatenate([gram[range(num_stems), :, range(num_stems), :], gram.sum(axis=(0, 2))[None]]) / samples
    energy_l = covariance[:, 0, 0] + _POWER_FLOOR
    energy_r = covariance[:, 1, 1] + _POWER_FLOOR
    cross = covariance[:, 0, 1]

    # Dynamics.
    mix = stems.sum(axis=0)
    peak = np.concatenate(
        [np.maximum(stems.max(axis=(1, 2)), -stems.min(axis=(1, 2))), [max(mix.max(), -mix.min())]]
    ).astype(np.float64)
    mean_square = (covariance[:, 0, 0] + covariance[:, 1, 1]) / 2.0
    rms_db = _db(mean_square + _POWER_FLOOR)
    crest_db = _db(peak**2 + _POWER_FLOOR) - rms_db
    k_sos = k_weighting_sos(sample_rate) if k_sos is None else k_sos
    k_stems = scipy.signal.sosfilt(k_sos.astype(np.float32), stems, axis=-1)
    lufs = _loudness_lufs(np.concatenate([k_stems, k_stems.sum(axis=0)[None]]), sample_rate)

    # Spectrum: one windowed rfft per stem channel; the mix spectrum is their sum (linearity).
    layout = _spectral_layout(samples, sample_rate)
    lo_bin, hi_bin = layout["edge_bins"][0], layout["edge_bins"][-1]
    stem_spectra = scipy.fft.rfft(stems * layout["window"], axis=-1)[..., lo_bin:hi_bin]
    spectra = np.concatenate([stem_spectra, stem_spectra.sum(axis=0)[None]])  # (5, 2, bins) complex64
    ri = spectra.view(np.float32)
    power = np.einsum("scb,scb->sb", ri, ri).reshape(len(spectra), -1, 2).sum(axis=-1)
    bin_floor = _POWER_FLOOR / (hi_bin - lo_bin)  # white floor: -100 dBFS spread over the range
    power = power * layout["scale"].astype(np.float32) + np.float32(bin_floor)  # (5, bins), sums to mean square
    band_power = np.add.reduceat(power, layout["band_starts"], axis=-1, dtype=np.float64)  # (5, bands)
    total_power = band_power.sum(axis=-1, keepdims=True)
    band_db = np.maximum(_db(band_power / total_power), LEVEL_FLOOR_DB)
    band_psd_db = _db(band_power / layout["bins_per_band"])
    x = layout["x_octaves"]
    tilt = (band_psd_db - band_psd_db.mean(axis=-1, keepdims=True)) @ x / np.dot(x, x)
    mean_log_power = np.mean(np.log(power), axis=-1, dtype=np.float64)
    flatness_db = np.minimum(mean_log_power * (10.0 / np.log(10.0)) - _db(total_power[:, 0] / power.shape[-1]), 0.0)

    # Stereo image.
    ild_db = np.clip(_db(energy_l / energy_r), -STEREO_RATIO_LIMIT_DB, STEREO_RATIO_LIMIT_DB)
    correlation = cross / np.sqrt(energy_l * energy_r)
    energy_mid = np.maximum(energy_l + energy_r + 2.0 * cross, 0.0) / 4.0 + _POWER_FLOOR
    energy_side = np.maximum(energy_l + energy_r - 2.0 * cross, 0.0) / 4.0 + _POWER_FLOOR
    mid_side_db = np.clip(_db(energy_mid / energy_side), -STEREO_RATIO_LIMIT_DB, STEREO_RATIO_LIMIT_DB)

    # Masking: each stem's share of the summed stem energy per band (silent band -> equal shares).
    stem_band_power = band_power[:num_stems]
    dominance = stem_band_power / stem_band_power.sum(axis=0, keepdims=True)

    common = np.concatenate(
        [
            np.stack([rms_db, crest_db, lufs], axis=1),
            band_db,
            np.stack([tilt, flatness_db, ild_db, correlation, mid_side_db], axis=1),
        ],
        axis=1,
    )  # (5, len(_COMMON_FIELDS))
    rel_loudness = lufs[:num_stems] - lufs[num_stems]
    per_stem = np.concatenate([common[:num_stems], rel_loudness[:, None], dominance], axis=1)
    vector = np.concatenate([per_stem.reshape(-1), common[num_stems]]).astype(np.float32)
    assert vector.shape == (num_features(),), f"feature vector {vector.shape} != ({num_features()},)"
    return vector

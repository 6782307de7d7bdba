"""Handcrafted mix features in torch: dynamics, loudness, spectrum, stereo image, inter-stem masking.

One fixed-length vector per clip, computed for each stem and for the mix (the sum of the stems),
batched and differentiable with respect to the stems. The model conditions on it through FiLM;
values stay in raw physical units (dB, LUFS, LU, dB/octave, correlation) and the model normalises
them itself.

Fields per signal (``<signal>`` is a stem name from :data:`mixrep.constants.STEMS` or ``mix``),
by group (:data:`~mixrep.frontend.config.FEATURE_GROUPS`):

=====================  ==============================  ==============================================  ===================
group                  name                            meaning                                         typical range
=====================  ==============================  ==============================================  ===================
dynamics               ``rms_db``                      RMS over both channels, dBFS                    -60 .. 0 (floor -100)
dynamics               ``crest_db``                    peak / RMS, dB                                  3 .. 25 (silence 0)
loudness               ``lufs``                        integrated loudness, ITU-R BS.1770-4, LUFS      -50 .. 0 (floor -70)
loudness               ``rel_loudness_lu`` (stems)     stem LUFS - mix LUFS, LU                        -30 .. 0
spectrum               ``band{i}_db``                  band energy relative to the 20 Hz-20 kHz total  -60 .. 0 (floor -100)
spectrum               ``tilt_db_per_octave``          least-squares slope of band PSD, dB/octave      -8 .. 2 (white 0)
spectrum               ``flatness_db``                 spectral flatness (geo/arith mean), dB          -60 .. -2 (silence 0)
stereo                 ``ild_db``                      left / right energy, dB                         -6 .. 6 (clip +-40)
stereo                 ``lr_correlation``              zero-lag L/R correlation                        -1 .. 1 (silence 0)
stereo                 ``mid_side_db``                 mid / side energy, dB                           0 .. 40 (clip +-40)
masking                ``dominance_band{i}`` (stems)   stem's share of the stems' energy in band i     0 .. 1 (silence 1/4)
=====================  ==============================  ==============================================  ===================

Floors make every value finite: mean-square levels get a -100 dBFS floor (digital silence reads
``rms_db = -100``), the power spectrum a white floor at -100 dBFS (silence reads as flat,
zero-tilt noise, as ``librosa.feature.spectral_flatness`` with its ``amin``), loudness is floored
at the BS.1770 absolute gate of -70 LUFS, and the stereo energy ratios saturate at +-40 dB.

How it is computed, and what is shared:

- One rFFT over the whole clip per stem channel serves loudness *and* the spectral features. The
  K-weighting is applied to it in the frequency domain (:func:`~mixrep.frontend.loudness.k_weight`);
  the Hann-windowed spectrum the band levels need is the same DFT convolved with Hann's three
  frequency taps (``0.5 X[k] - 0.25 (X[k-1] + X[k+1])``, exact for the periodic window). The mix's
  spectra and K-weighted signals are the sums of the stems' (linearity), so the mix costs no FFT.
- The spectral features cannot share the log-mel's STFT: they are defined on the whole-clip
  periodogram (0.25 Hz bins for 4 s clips) because the lowest band (20-47 Hz) holds one or two bins
  of a 2048-point frame at 44.1 kHz and a Hann main lobe of such a frame spans +-43 Hz, which would
  move band 0, the tilt and the flatness of bass-heavy stems by many dB. Loudness cannot use the
  STFT either: K-weighting per frame is exact only for the filter's response smoothed over the
  main lobe, which is not the 38 Hz high pass. So each stem channel gets two transforms, each used
  for everything it can serve.
- Levels, crest factor and the stereo measures come from the second moments of every pair of stem
  channels (one matrix product per clip); the mix's are their sums.

Shape:
    ``stems``: ``(batch, stems=4, channels=2, samples)`` -> ``(batch, num_features(groups))``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from mixrep.constants import CHANNELS, STEMS
from mixrep.frontend.config import FEATURE_GROUPS, MIN_SECONDS
from mixrep.frontend.loudness import gated_loudness, k_weight

NUM_BANDS = 8
"""Log-spaced bands between :data:`BAND_MIN_HZ` and ``min(BAND_MAX_HZ, sample_rate / 2)``."""
BAND_MIN_HZ = 20.0
BAND_MAX_HZ = 20_000.0
LEVEL_FLOOR_DB = -100.0
"""Floor of every mean-square level (dBFS) and of the relative band levels (dB)."""
STEREO_RATIO_LIMIT_DB = 40.0
"""``ild_db`` and ``mid_side_db`` are clipped to +- this value."""

_POWER_FLOOR = 10.0 ** (LEVEL_FLOOR_DB / 10.0)
_MIX = "mix"
_BANDS = tuple(f"band{i}_db" for i in range(NUM_BANDS))
_DOMINANCE = tuple(f"dominance_band{i}" for i in range(NUM_BANDS))
_COMMON_FIELDS = ("rms_db", "crest_db", "lufs") + _BANDS + (
    "tilt_db_per_octave", "flatness_db", "ild_db", "lr_correlation", "mid_side_db")
_STEM_ONLY_FIELDS = ("rel_loudness_lu",) + _DOMINANCE
_GROUP_OF_FIELD = {
    "rms_db": "dynamics", "crest_db": "dynamics", "lufs": "loudness", "rel_loudness_lu": "loudness",
    **{name: "spectrum" for name in _BANDS + ("tilt_db_per_octave", "flatness_db")},
    "ild_db": "stereo", "lr_correlation": "stereo", "mid_side_db": "stereo",
    **{name: "masking" for name in _DOMINANCE},
}


@functools.cache
def _all_names() -> tuple[str, ...]:
    names = [f"{stem}.{field}" for stem in STEMS for field in _COMMON_FIELDS + _STEM_ONLY_FIELDS]
    return tuple(names + [f"{_MIX}.{field}" for field in _COMMON_FIELDS])


@functools.cache
def _indices(groups: tuple[str, ...]) -> tuple[int, ...]:
    unknown = set(groups) - set(FEATURE_GROUPS)
    if unknown:
        raise ValueError(f"unknown feature groups {sorted(unknown)}; choose from {list(FEATURE_GROUPS)}")
    return tuple(i for i, name in enumerate(_all_names()) if _GROUP_OF_FIELD[name.split(".", 1)[1]] in groups)


def feature_names(groups: tuple[str, ...] = FEATURE_GROUPS) -> tuple[str, ...]:
    """Names ``"<signal>.<field>"`` of the feature vector, in vector order.

    Stems come first in :data:`~mixrep.constants.STEMS` order, then ``mix``; a stem has the common
    fields followed by ``rel_loudness_lu`` and ``dominance_band0..7``. Groups left out are
    removed without reordering the rest (116 names with every group).
    """
    names = _all_names()
    return tuple(names[i] for i in _indices(tuple(groups)))


def num_features(groups: tuple[str, ...] = FEATURE_GROUPS) -> int:
    """Length of the feature vector (116 with every group, 4 stems and 8 bands)."""
    return len(_indices(tuple(groups)))


def band_edges_hz(sample_rate: int) -> np.ndarray:
    """Edges of the :data:`NUM_BANDS` log-spaced bands, Hz, shape ``(NUM_BANDS + 1,)``."""
    return np.geomspace(BAND_MIN_HZ, min(BAND_MAX_HZ, sample_rate / 2.0), NUM_BANDS + 1)


@functools.lru_cache(maxsize=32)
def _spectral_layout(samples: int, sample_rate: int) -> dict[str, np.ndarray | int]:
    """Bin ranges of the bands, the power scaling and the tilt regressor for one clip length."""
    freqs_hz = np.arange(samples // 2 + 1) * sample_rate / samples
    edges_hz = band_edges_hz(sample_rate)
    edge_bins = np.searchsorted(freqs_hz, edges_hz)  # band b covers bins [edge_bins[b], edge_bins[b + 1])
    bins_per_band = np.diff(edge_bins)
    assert (bins_per_band > 0).all(), f"empty band for {samples} samples at {sample_rate} Hz: {bins_per_band}"
    # Log-frequency of each band's geometric centre, centred for the least-squares slope.
    x_octaves = np.log2(np.sqrt(edges_hz[:-1] * edges_hz[1:]))
    x_octaves = x_octaves - x_octaves.mean()
    # One-sided periodogram scaling: the bins of a Hann-windowed DFT sum to the mean square.
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(samples) / samples)
    scale = np.full(samples // 2 + 1, 2.0 / (samples * np.sum(window**2)))
    scale[0] /= 2.0
    if samples % 2 == 0:
        scale[-1] /= 2.0
    lo, hi = int(edge_bins[0]), int(edge_bins[-1])
    return {"lo": lo, "hi": hi, "scale": scale[lo:hi], "band_bounds": edge_bins - lo,
            "bins_per_band": bins_per_band.astype(np.float64), "x_octaves": x_octaves}


@functools.lru_cache(maxsize=16)
def _device_layout(samples: int, sample_rate: int, device: torch.device, dtype: torch.dtype) -> dict:
    layout = _spectral_layout(samples, sample_rate)
    return {
        "lo": layout["lo"], "hi": layout["hi"],
        "scale": torch.from_numpy(layout["scale"]).to(device=device, dtype=dtype),
        "band_bounds": torch.from_numpy(layout["band_bounds"]).to(device),
        "bins_per_band": torch.from_numpy(layout["bins_per_band"]).to(device),
        "x_octaves": torch.from_numpy(layout["x_octaves"]).to(device),
    }


def hann_windowed_bins(spectrum: torch.Tensor, lo: int, hi: int, samples: int) -> torch.Tensor:
    """Bins ``[lo, hi)`` of the DFT of the periodic-Hann-windowed signal, from its plain rFFT.

    ``DFT(x * w)[k] = 0.5 X[k] - 0.25 (X[k - 1] + X[k + 1])`` for ``w[n] = 0.5 - 0.5 cos(2 pi n / N)``;
    bins above ``N // 2`` are the conjugates of their mirror images.

    Shape:
        ``(..., samples // 2 + 1)`` complex -> ``(..., hi - lo)`` complex; needs ``1 <= lo < hi <= samples // 2 + 1``.
    """
    last = samples // 2
    neighbours = spectrum[..., lo - 1:min(hi + 1, last + 1)]
    if hi + 1 > last + 1:  # bin `last + 1` mirrors bin `samples - last - 1`
        neighbours = torch.cat([neighbours, spectrum[..., samples - last - 1:samples - last].conj()], dim=-1)
    return 0.5 * neighbours[..., 1:-1] - 0.25 * (neighbours[..., :-2] + neighbours[..., 2:])


def _db(power: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(power)


def check_stems(stems: torch.Tensor, sample_rate: int, what: str = "the front end") -> None:
    """Raise ``ValueError`` unless ``stems`` is ``(batch, 4, 2, samples)``, long enough and finite."""
    if stems.ndim != 4 or tuple(stems.shape[1:3]) != (len(STEMS), CHANNELS):
        raise ValueError(f"{what} expects stems of shape (batch, {len(STEMS)}, {CHANNELS}, samples) in the order "
                         f"{', '.join(STEMS)}; got {tuple(stems.shape)}")
    minimum = int(math.ceil(MIN_SECONDS * sample_rate))
    if stems.shape[-1] < minimum:
        raise ValueError(f"{what} needs clips of at least {MIN_SECONDS} s ({minimum} samples at {sample_rate} Hz) so "
                         f"every feature band holds an FFT bin; got {stems.shape[-1]} samples")
    if not bool(torch.isfinite(stems.sum())):  # one pass; NaN or inf anywhere makes the sum non-finite
        raise ValueError(f"{what} got stems with NaN or infinite samples; check the separator or reader output")


def mix_features(stems: torch.Tensor, sample_rate: int, groups: tuple[str, ...] = FEATURE_GROUPS) -> torch.Tensor:
    """The mix-feature vectors of a batch of clips (see the module docstring for every field).

    Args:
        stems: stems in :data:`~mixrep.constants.STEMS` order (their sum is the mix), float32 or
            float64 on any device; gradients flow to them.
        sample_rate: Hz.
        groups: which feature groups to return (vector order as :func:`feature_names`).

    Returns:
        Features in the dtype of ``stems``, finite for any finite input (silence, mono, clipped,
        clips of :data:`~mixrep.frontend.config.MIN_SECONDS` and longer).

    Raises:
        ValueError: wrong shape, clip too short, non-finite samples.

    Shape:
        ``(batch, 4, 2, samples)`` -> ``(batch, num_features(groups))``.
    """
    check_stems(stems, sample_rate, "mix_features")
    return compute_mix_features(stems, sample_rate, groups)


def compute_mix_features(stems: torch.Tensor, sample_rate: int, groups: tuple[str, ...] = FEATURE_GROUPS
                         ) -> torch.Tensor:
    """:func:`mix_features` without the input checks (for callers that checked already)."""
    batch, num_stems, channels, samples = stems.shape
    layout = _device_layout(samples, sample_rate, stems.device, stems.dtype)

    # Dynamics and stereo image: second moments of every stem channel pair (one matrix product);
    # the mix's follow by linearity.
    flat = stems.reshape(batch, num_stems * channels, samples)
    gram = (flat @ flat.transpose(1, 2)).reshape(batch, num_stems, channels, num_stems, channels)
    covariance = torch.cat([torch.diagonal(gram, dim1=1, dim2=3).permute(0, 3, 1, 2),
                            gram.sum(dim=(1, 3))[:, None]], dim=1) / samples  # (batch, 5, 2, 2)
    energy_left = covariance[..., 0, 0] + _POWER_FLOOR
    energy_right = covariance[..., 1, 1] + _POWER_FLOOR
    cross = covariance[..., 0, 1]
    mix = stems.sum(dim=1)  # (batch, 2, samples)
    peak = torch.cat([torch.maximum(stems.amax(dim=(2, 3)), -stems.amin(dim=(2, 3))),
                      torch.maximum(mix.amax(dim=(1, 2)), -mix.amin(dim=(1, 2)))[:, None]], dim=1)
    rms_db = _db((covariance[..., 0, 0] + covariance[..., 1, 1]) / 2 + _POWER_FLOOR)
    crest_db = _db(peak.square() + _POWER_FLOOR) - rms_db
    ild_db = _db(energy_left / energy_right).clamp(-STEREO_RATIO_LIMIT_DB, STEREO_RATIO_LIMIT_DB)
    correlation = cross / torch.sqrt(energy_left * energy_right)
    energy_mid = (energy_left + energy_right + 2.0 * cross).clamp(min=0.0) / 4.0 + _POWER_FLOOR
    energy_side = (energy_left + energy_right - 2.0 * cross).clamp(min=0.0) / 4.0 + _POWER_FLOOR
    mid_side_db = _db(energy_mid / energy_side).clamp(-STEREO_RATIO_LIMIT_DB, STEREO_RATIO_LIMIT_DB)

    # One DFT per stem channel, shared by loudness and the spectrum.
    spectrum = torch.fft.rfft(stems, dim=-1)  # (batch, 4, 2, samples // 2 + 1)
    k_weighted = k_weight(stems, spectrum, sample_rate)  # (batch, 4, 2, samples)
    k_mix = k_weighted.sum(dim=1)
    lufs = torch.cat([gated_loudness(k_weighted[:, :, 0].square() + k_weighted[:, :, 1].square(), sample_rate),
                      gated_loudness(k_mix[:, 0].square() + k_mix[:, 1].square(), sample_rate)[:, None]], dim=1)

    windowed = hann_windowed_bins(spectrum, layout["lo"], layout["hi"], samples)  # (batch, 4, 2, bins)
    windowed_mix = windowed.sum(dim=1)
    bin_power = torch.cat([(windowed.real.square() + windowed.imag.square()).sum(dim=2),
                           (windowed_mix.real.square() + windowed_mix.imag.square()).sum(dim=1)[:, None]], dim=1)
    num_bins = bin_power.shape[-1]  # (batch, 5, bins), summed over channels
    bin_power = bin_power * layout["scale"] + _POWER_FLOOR / num_bins  # white -100 dBFS floor over the range
    running = torch.nn.functional.pad(bin_power.double().cumsum(dim=-1), (1, 0))
    bounds = layout["band_bounds"]
    band_power = running[..., bounds[1:]] - running[..., bounds[:-1]]  # (batch, 5, bands) float64
    total_power = band_power.sum(dim=-1, keepdim=True)
    band_db = _db(band_power / total_power).clamp(min=LEVEL_FLOOR_DB)
    band_psd_db = _db(band_power / layout["bins_per_band"])
    x = layout["x_octaves"]
    tilt = ((band_psd_db - band_psd_db.mean(dim=-1, keepdim=True)) * x).sum(dim=-1) / x.square().sum()
    mean_log_power = torch.log(bin_power).double().mean(dim=-1)
    flatness_db = (mean_log_power * (10.0 / math.log(10.0)) - _db(total_power[..., 0] / num_bins)).clamp(max=0.0)

    # Masking: each stem's share of the summed stem energy per band (silent band -> equal shares).
    stem_band_power = band_power[:, :num_stems]
    dominance = stem_band_power / stem_band_power.sum(dim=1, keepdim=True)

    dtype = stems.dtype
    common = torch.cat([
        torch.stack([rms_db, crest_db, lufs], dim=-1).to(dtype),
        band_db.to(dtype),
        torch.stack([tilt.to(dtype), flatness_db.to(dtype), ild_db, correlation, mid_side_db], dim=-1),
    ], dim=-1)  # (batch, 5, len(_COMMON_FIELDS))
    rel_loudness = (lufs[:, :num_stems] - lufs[:, num_stems:]).to(dtype)
    per_stem = torch.cat([common[:, :num_stems], rel_loudness[..., None], dominance.to(dtype)], dim=-1)
    vector = torch.cat([per_stem.reshape(batch, -1), common[:, num_stems]], dim=-1)
    assert vector.shape == (batch, len(_all_names())), f"feature vector {tuple(vector.shape)} != ({batch}, 116)"
    indices = _indices(tuple(groups))
    return vector if len(indices) == vector.shape[1] else vector[:, list(indices)]

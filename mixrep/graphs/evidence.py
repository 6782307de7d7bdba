"""Evidence of processing: what a song's raw tracks and its mixed buses say about each channel strip.

Graph prediction asks which processors of a console mixed a song. Given the song's raw tracks and
the outputs of its buses (the reference's stems), each bus is analysed against the tracks that
feed it, in the STFT domain (no fitting, no gradients; a fraction of a second per song):

1. **Linear transfer.** Per frequency bin, a ridge least-squares fit of the bus output from its
   tracks' left/right spectra (a 2 x 2 complex matrix per track and bin) gives every track's
   contribution. Its band gains (16 log-spaced bands) tell an EQ: their spread over the bands
   where the track has energy, their tilt, and the part that the bus's tracks do not share
   (track EQ) against the part they share (bus EQ). The matrix in mid/side form tells an imager
   (side-to-side over mid-to-mid gain; pans leave that ratio at 1).
2. **Dynamics.** Per frame, one real gain per contribution (least squares over bins): a
   compressor lowers the gain where the input is loud, so the slope of gain (dB) against input
   level (dB), the gains' spread and their correlation with the level tell it; the same for the
   bus's common gain against the level of the bus input.
3. **Time spread.** What the frame-wise model leaves over (band energy per frame) is fitted by
   non-negative weights on every track's delayed direct energy (lags up to ~2 s): a delay or
   reverb shows as energy at positive lags (its ratio to the direct energy), a delay as a few
   peaked lags, a reverb as early, smooth weights. The same fit of the residual's side channel
   tells a reverb or a delay whose taps differ between left and right, which widen what they echo.

A track strip's evidence row is its own analysis, its bus's, and the max and mean of its bus's
tracks (so a classifier sees the context); a bus row has zeros for the own part. Rows are in
:data:`EVIDENCE_NAMES` order, the input of :class:`~mixrep.graphs.predictor.GraphPredictor`.

Shape:
    tracks ``(K, 2, samples)``, bus outputs ``(G, 2, samples)``, ``groups`` the bus of each track;
    evidence rows ``(K, D)`` for track strips and ``(G, D)`` for buses, ``D = len(EVIDENCE_NAMES)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.optimize
import torch
from torch import Tensor

EPS = 1e-12
BANDS = 16
"""Log-spaced analysis bands from :data:`LOWEST_HZ` to Nyquist."""
LOWEST_HZ = 60.0
WINDOW_SECONDS = 0.093
"""STFT window (2048 samples at 22.05 kHz, the next power of two at other rates); hop a quarter."""
MAX_LAG_SECONDS = 2.1
"""Longest lag of the time-spread fit (the console's delay reaches 2 s)."""
ACTIVE_RANGE_DB = 40.0
"""Frames and bands this far below a track's loudest take no part in its statistics."""

OWN_NAMES = ("eq_spread_db", "eq_own_spread_db", "eq_tilt_db_per_band", "log_width", "raw_side_db",
             "gain_slope", "gain_spread_db", "gain_level_corr", "tail_ratio_db", "tail_peak_share",
             "tail_lag_frames", "tail_early_share", "side_tail_ratio_db", "track_share_db")
"""Per track: its analysis (zeros on bus rows)."""
BUS_NAMES = ("bus_eq_spread_db", "bus_eq_tilt_db_per_band", "bus_log_width", "bus_raw_side_db", "bus_gain_slope",
             "bus_gain_spread_db", "bus_residual_db", "bus_residual_side_db", "bus_tail_ratio_db", "bus_quiet_db",
             "bus_tracks")
"""Per bus: the analysis its tracks share."""
EVIDENCE_NAMES: tuple[str, ...] = (*OWN_NAMES, *BUS_NAMES, *(f"max_{n}" for n in OWN_NAMES),
                                   *(f"mean_{n}" for n in OWN_NAMES), "is_track")


@dataclass(frozen=True)
class StripEvidence:
    """Evidence rows of a song's strips.

    Attributes:
        tracks: ``(K, D)`` float64, one row per track strip.
        buses: ``(G, D)`` float64, one row per bus (zeros for a bus no track feeds).
        bus_present: ``(G,)`` bool, buses that some track feeds.
    """

    tracks: np.ndarray
    buses: np.ndarray
    bus_present: np.ndarray


def analysis_sizes(sample_rate: int) -> tuple[int, int, int]:
    """``(n_fft, hop, max_lag_frames)`` at ``sample_rate`` Hz."""
    n_fft = 2 ** int(math.ceil(math.log2(WINDOW_SECONDS * sample_rate)))
    hop = n_fft // 4
    return n_fft, hop, max(1, int(round(MAX_LAG_SECONDS * sample_rate / hop)))


def _stft(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """``(..., samples)`` -> ``(..., bins, frames)`` complex128."""
    flat = x.reshape(-1, x.shape[-1]).double()
    spec = torch.stft(flat, n_fft, hop, window=torch.hann_window(n_fft, dtype=torch.float64), return_complex=True)
    return spec.reshape(*x.shape[:-1], *spec.shape[-2:])


def _band_edges(bins: int, sample_rate: int) -> list[tuple[int, int]]:
    hz = np.geomspace(LOWEST_HZ, sample_rate / 2, BANDS + 1)
    index = np.clip(np.round(hz / (sample_rate / 2) * (bins - 1)).astype(int), 1, bins - 1)
    return [(int(index[i]), int(max(index[i + 1], index[i] + 1))) for i in range(BANDS)]


def _band_frames(power: Tensor, edges: list[tuple[int, int]]) -> np.ndarray:
    """``(..., bins, frames)`` power -> ``(..., BANDS, frames)``."""
    return torch.stack([power[..., a:b, :].sum(-2) for a, b in edges], -2).numpy()


def _weighted_spread(values: np.ndarray, weights: np.ndarray) -> float:
    w = weights / (weights.sum() + EPS)
    mean = (w * values).sum()
    return float(np.sqrt((w * (values - mean) ** 2).sum()))


def _weighted_slope(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    """Least-squares slope of ``y`` on ``x`` (0 where ``x`` does not vary)."""
    w = weights / (weights.sum() + EPS)
    dx = x - (w * x).sum()
    var = (w * dx * dx).sum()
    return float((w * dx * (y - (w * y).sum())).sum() / var) if var > 1e-9 else 0.0


def _gain_statistics(level_db: np.ndarray, gain_db: np.ndarray) -> tuple[float, float, float]:
    """Slope, spread and correlation of a gain against the input level over the active frames."""
    active = level_db > level_db.max() - ACTIVE_RANGE_DB
    if active.sum() < 6:
        return 0.0, 0.0, 0.0
    level, gain = level_db[active], gain_db[active]
    spread = float(gain.std())
    corr = float(np.corrcoef(level, gain)[0, 1]) if spread > 1e-6 and level.std() > 1e-6 else 0.0
    return _weighted_slope(level, gain, np.ones_like(level)), spread, corr


def _lag_weights(columns: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative least squares of ``target`` ``(BANDS, frames)`` on the lag ``columns``; 0 for
    the columns of a silent track (their lags carry nothing)."""
    norm = np.sqrt((columns ** 2).sum(0))
    usable = norm > 1e-9 * max(float(norm.max()), EPS)
    weights = np.zeros(columns.shape[1])
    if usable.any():
        scaled = columns[:, usable] / norm[usable]
        weights[usable] = scipy.optimize.nnls(scaled, target.ravel(), maxiter=50 * columns.shape[1])[0] / norm[usable]
    return weights


def _linear_transfer(raw: Tensor, out: Tensor, ridge: float = 1e-3) -> Tensor:
    """Ridge least squares per bin of ``out`` ``(2, bins, frames)`` from ``raw`` ``(K, 2, bins, frames)``:
    ``out_c = sum_(k, d) transfer[f, k, c, d] raw_(k, d)``; returns ``(bins, K, 2, 2)`` complex."""
    k, _, bins, frames = raw.shape
    x = raw.permute(2, 3, 0, 1).reshape(bins, frames, 2 * k)
    gram = x.conj().transpose(1, 2) @ x
    scale = gram.diagonal(dim1=1, dim2=2).real.mean(-1).clamp(min=EPS)
    gram = gram + ridge * scale[:, None, None] * torch.eye(2 * k, dtype=gram.dtype)
    a = torch.linalg.solve(gram, x.conj().transpose(1, 2) @ out.permute(1, 2, 0))
    return a.reshape(bins, k, 2, 2).transpose(-1, -2)


def explained_share(tracks: Tensor, mix: Tensor, sample_rate: int) -> float:
    """Share of the mix's energy that the per-bin linear transfer of the tracks explains (1 - residual
    energy over mix energy; NaN for a silent mix): near 1 for a mix of these tracks, whatever EQ,
    fader, pan or width it applied, lower with dynamics and echoes, near 0 for another song's mix.

    Measured with :func:`~mixrep.graphs.cases.synthetic_tracks` songs mixed by ``make-case``
    consoles of the musical prior (full and sparse, 8 kHz, six songs each against the next one's
    mix): 0.83 to 0.99 for their own tracks against 0.03 to 0.16 for another song's (4 tracks, 3 and
    6 s); with 2 tracks and 1.2 s (38 frames for 4 unknowns per bin) another song reached 0.65.

    Shape:
        tracks ``(K, 2, samples)``, mix ``(2, samples)``.
    """
    n_fft, hop, _ = analysis_sizes(sample_rate)
    raw, out = _stft(torch.as_tensor(tracks).cpu(), n_fft, hop), _stft(torch.as_tensor(mix).cpu(), n_fft, hop)
    explained = torch.einsum("fkcd,kdft->cft", _linear_transfer(raw, out), raw)
    total = float(out.abs().pow(2).sum())
    return 1.0 - float((out - explained).abs().pow(2).sum()) / total if total > EPS else float("nan")


def _bus_evidence(raw: Tensor, out: Tensor, edges: list[tuple[int, int]], max_lag: int,
                  ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Analysis of one bus: ``raw`` ``(K, 2, bins, frames)`` and ``out`` ``(2, bins, frames)`` spectra ->
    ``(K, len(OWN_NAMES))`` per-track rows and the ``(len(BUS_NAMES),)`` bus row."""
    k, _, bins, frames = raw.shape
    # 1. linear transfer per bin
    transfer = _linear_transfer(raw, out, ridge)
    parts = torch.einsum("fkcd,kdft->kcft", transfer, raw)  # each track's contribution (K, 2, bins, frames)

    power_in = _band_frames(raw.abs().pow(2).sum(1), edges).sum(-1) + EPS  # (K, BANDS)
    power_part = _band_frames(parts.abs().pow(2).sum(1), edges).sum(-1) + EPS
    band_gain_db = 10.0 * np.log10(power_part / power_in)
    active = power_in > power_in.max(-1, keepdims=True) * 10.0 ** (-ACTIVE_RANGE_DB / 10.0)
    weight = np.where(active, power_in / power_in.sum(-1, keepdims=True), 0.0)
    common_db = (band_gain_db * weight).sum(0) / (weight.sum(0) + EPS)
    band = np.arange(BANDS, dtype=float)
    eq_spread = [_weighted_spread(band_gain_db[i], weight[i]) for i in range(k)]
    eq_own = [_weighted_spread(band_gain_db[i] - common_db, weight[i]) for i in range(k)]
    eq_tilt = [abs(_weighted_slope(band, band_gain_db[i], weight[i])) for i in range(k)]

    to_ms = torch.tensor([[0.5, 0.5], [0.5, -0.5]], dtype=torch.complex128)
    ms = to_ms @ transfer.to(torch.complex128) @ torch.linalg.inv(to_ms)
    raw_ms = torch.einsum("cd,kdft->kcft", to_ms, raw.to(torch.complex128))
    side_weight = raw_ms[:, 1].abs().pow(2).sum(-1).T.numpy() + EPS  # (bins, K)
    mid_power = raw_ms[:, 0].abs().pow(2).sum((-1, -2)).numpy()
    side_power = raw_ms[:, 1].abs().pow(2).sum((-1, -2)).numpy()
    log_ratio = torch.log(ms[:, :, 1, 1].abs() / ms[:, :, 0, 0].abs().clamp(min=EPS) + EPS).numpy()
    log_width = (log_ratio * side_weight).sum(0) / side_weight.sum(0)
    raw_side_db = np.maximum(10.0 * np.log10((side_power + EPS) / (mid_power + EPS)), -ACTIVE_RANGE_DB)
    silent = power_in.sum(-1) <= BANDS * EPS * 10.0
    raw_side_db = np.where(silent, -ACTIVE_RANGE_DB, raw_side_db)
    log_width = np.where(raw_side_db > -ACTIVE_RANGE_DB, log_width, 0.0)  # no side signal: width unseen

    # 2. dynamics: one real gain per contribution and frame
    target = out.permute(2, 0, 1).reshape(frames, -1)
    basis = parts.permute(3, 0, 1, 2).reshape(frames, k, -1)
    gram_t = torch.einsum("tkn,tjn->tkj", basis.conj(), basis).real
    scale_t = gram_t.diagonal(dim1=1, dim2=2).mean(-1).clamp(min=EPS)
    gram_t = gram_t + 1e-2 * scale_t[:, None, None] * torch.eye(k, dtype=gram_t.dtype)
    gains = torch.linalg.solve(gram_t, torch.einsum("tkn,tn->tk", basis.conj(), target).real[..., None])[..., 0]
    level_db = 10.0 * np.log10(raw.abs().pow(2).sum((1, 2)).numpy().T + EPS)  # (frames, K)
    gain_db = 20.0 * np.log10(np.abs(gains.numpy()) + 1e-6)
    dynamics = [_gain_statistics(level_db[:, i], gain_db[:, i]) for i in range(k)]
    summed = parts.sum(0)
    bus_level_db = 10.0 * np.log10(summed.abs().pow(2).sum((0, 1)).numpy() + EPS)
    bus_gain_db = 10.0 * np.log10((out.abs().pow(2).sum((0, 1)).numpy() + EPS) / (10.0 ** (bus_level_db / 10.0)))
    bus_slope, bus_spread, _ = _gain_statistics(bus_level_db, bus_gain_db)

    # 3. time spread: the residual's band energy on delayed direct energies
    direct = parts * gains.T[:, None, None, :]
    energy_out = _band_frames(out.abs().pow(2).sum(0), edges)  # (BANDS, frames)
    energy_direct = _band_frames(direct.abs().pow(2).sum(1), edges)  # (K, BANDS, frames)
    left_over = out - direct.sum(0)
    residual = _band_frames(left_over.abs().pow(2).sum(0), edges)
    residual_side = _band_frames((left_over[0] - left_over[1]).abs().pow(2) / 2.0, edges)  # (L - R) / sqrt 2
    lags = min(max_lag, frames - 2)
    columns = np.zeros((BANDS * frames, k * lags))
    for i in range(k):
        for lag in range(1, lags + 1):
            shifted = np.zeros((BANDS, frames))
            shifted[:, lag:] = energy_direct[i][:, :-lag]
            columns[:, i * lags + lag - 1] = shifted.ravel()
    weights = _lag_weights(columns, residual).reshape(k, lags)
    side_weights = _lag_weights(columns, residual_side).reshape(k, lags)
    direct_energy = energy_direct.sum((1, 2)) + EPS
    tail_energy = np.array([(columns[:, i * lags:(i + 1) * lags] @ weights[i]).sum() for i in range(k)])
    side_tail_energy = np.array([(columns[:, i * lags:(i + 1) * lags] @ side_weights[i]).sum() for i in range(k)])
    lag_axis = np.arange(1, lags + 1)
    total = weights.sum(1) + EPS
    frame_direct = energy_direct.sum((0, 1))
    quiet = frame_direct < frame_direct.max() * 1e-2
    quiet_db = 10.0 * np.log10((energy_out[:, quiet].sum() + EPS) / (energy_out.sum() + EPS)) if quiet.any() else -60.0

    own = np.stack([
        eq_spread, eq_own, eq_tilt, log_width, raw_side_db, *np.array(dynamics).T,
        10.0 * np.log10(tail_energy / direct_energy + 1e-6), weights.max(1) / total,
        (weights * lag_axis).sum(1) / total, weights[:, :4].sum(1) / total,
        10.0 * np.log10(side_tail_energy / direct_energy + 1e-6),
        10.0 * np.log10(power_in.sum(-1) / power_in.sum())], 1)
    bus_log_width = float((log_width * side_power).sum() / (side_power.sum() + EPS))
    bus = np.array([
        _weighted_spread(common_db, weight.sum(0)), abs(_weighted_slope(band, common_db, weight.sum(0))), bus_log_width,
        float(10.0 * np.log10((side_power.sum() + EPS) / (mid_power.sum() + EPS))), bus_slope, bus_spread,
        float(10.0 * np.log10(residual.sum() / (energy_out.sum() + EPS) + 1e-6)),
        float(10.0 * np.log10(residual_side.sum() / (residual.sum() + EPS) + 1e-6)),
        float(10.0 * np.log10(tail_energy.sum() / direct_energy.sum() + 1e-6)), quiet_db, float(k)])
    return own, bus


def strip_evidence(tracks: Tensor, groups: Sequence[int], buses: Tensor, sample_rate: int) -> StripEvidence:
    """Evidence rows of every track strip and bus of one song.

    Args:
        tracks: ``(K, 2, samples)`` raw tracks (what enters the track strips).
        groups: length ``K``, the bus (``0 .. G-1``) each track feeds.
        buses: ``(G, 2, samples)`` the buses' outputs (the reference's stems); a bus fed by no
            track is ignored (its row stays zero).
        sample_rate: Hz.

    Returns:
        :class:`StripEvidence` with rows in :data:`EVIDENCE_NAMES` order.
    """
    tracks, buses = torch.as_tensor(tracks), torch.as_tensor(buses)
    if tracks.ndim != 3 or tracks.shape[1] != 2 or buses.ndim != 3 or buses.shape[1] != 2:
        raise ValueError(f"expected tracks (K, 2, samples) and buses (G, 2, samples), got {tuple(tracks.shape)} "
                         f"and {tuple(buses.shape)}")
    if tracks.shape[-1] != buses.shape[-1]:
        raise ValueError(f"tracks and buses must have the same length, got {tracks.shape[-1]} and {buses.shape[-1]} "
                         "samples")
    groups = [int(g) for g in groups]
    if len(groups) != tracks.shape[0] or any(not 0 <= g < buses.shape[0] for g in groups):
        raise ValueError(f"groups must name a bus 0..{buses.shape[0] - 1} for each of the {tracks.shape[0]} tracks, "
                         f"got {groups}")
    n_fft, hop, max_lag = analysis_sizes(sample_rate)
    if tracks.shape[-1] < 4 * n_fft:
        raise ValueError(f"clips of {tracks.shape[-1]} samples are too short for graph evidence: at least "
                         f"{4 * n_fft} ({4 * n_fft / sample_rate:.2f} s at {sample_rate} Hz)")
    raw, out = _stft(tracks, n_fft, hop), _stft(buses, n_fft, hop)
    edges = _band_edges(raw.shape[-2], sample_rate)
    width = len(EVIDENCE_NAMES)
    track_rows = np.zeros((len(groups), width))
    bus_rows = np.zeros((buses.shape[0], width))
    present = np.zeros(buses.shape[0], dtype=bool)
    n_own = len(OWN_NAMES)
    for g in sorted(set(groups)):
        members = [i for i, gi in enumerate(groups) if gi == g]
        own, bus = _bus_evidence(raw[members], out[g], edges, max_lag)
        context = np.concatenate([bus, own.max(0), own.mean(0)])
        for row, i in enumerate(members):
            track_rows[i] = np.concatenate([own[row], context, [1.0]])
        bus_rows[g, n_own:n_own + len(context)] = context
        present[g] = True
    if not (np.isfinite(track_rows).all() and np.isfinite(bus_rows).all()):
        raise ValueError("graph evidence is not finite: the tracks or buses hold NaN or infinite samples")
    return StripEvidence(track_rows, bus_rows, present)

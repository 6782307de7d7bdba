"""The stages of ``mixrep mix`` around the prediction that touch the whole song, each bounded in memory.

Only two arrays grow with the song: the tracks as read ``(tracks, 2, samples)`` float32 at their
own rate (the input) and the mix ``(2, samples)`` float32 (the output). Everything else works on
bounded pieces:

* :func:`track_rms` (then :func:`~mixrep.console.spec.level_gains`): each track's gain to :data:`~mixrep.console.spec.TRACK_RMS_DB`
  dBFS RMS (the level alignment of training), from its energy summed chunk by chunk; the tracks are
  not copied.
* :func:`analysis_excerpt`: the level-aligned middle :data:`ANALYSIS_SECONDS` of the song at the
  model's rate, what the head, balance matching (its middle 10 s) and refinement (random clips)
  see. A song shorter than that is used whole.
* :func:`render_song`: the console rebuilt at the tracks' rate
  (:func:`~mixrep.console.rate.console_at_rate`) renders the whole song in exact chunks (each with
  the graph's history and lookahead as context) straight into the output array, each chunk's
  tracks level-aligned on the fly.
* :func:`finish_levels`: the mix set to the reference's integrated loudness (never raised by more
  than :data:`MAX_LOUDNESS_BOOST_DB`), then lowered by a plain gain if its true peak exceeds the
  ceiling (default :data:`TRUE_PEAK_CEILING_DB` dBTP), in place; loudness and true peak are
  measured chunk by chunk (:mod:`mixrep.audio.meters`).

Shape:
    tracks ``(tracks, 2, samples)``; mix ``(2, samples)``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torchaudio
from torch import Tensor

from mixrep.audio.meters import chunked_loudness, true_peak_db
from mixrep.console import MixingConsole

log = logging.getLogger(__name__)

ANALYSIS_SECONDS = 30.0
"""Length of the excerpt (the middle of the song) the head, balance matching and refinement see."""
MAX_LOUDNESS_BOOST_DB = 40.0
"""The loudness matching raises the rendered mix by at most this (it may lower it by any amount).
The level-aligned tracks sum to about -17 LUFS and a reference sits near -14 LUFS, so a musical
console needs a few dB; a render 40 dB under the reference is a broken prediction (faders near
their -80 dB floor), and raising it further would raise its noise, not its music. The true-peak
ceiling applies after it, so no boost can clip."""
TRUE_PEAK_CEILING_DB = -1.0
"""Default true-peak ceiling of the written mix, dBTP (EBU R 128's maximum for distribution)."""
SILENT_REFERENCE_LUFS = -70.0
"""A reference quieter than this (BS.1770's absolute gate: no block counts) has no level to match."""
CHUNK_SAMPLES = 1 << 19
"""Samples per chunk of the level measurements (half a million: 4 MB of float64 per channel)."""
RENDER_CHUNK_SAMPLES = 441_000
"""Samples per rendered chunk (10 s at 44.1 kHz; at least the console's history and lookahead, which
every chunk renders as context)."""


def track_rms(tracks: np.ndarray | Tensor) -> np.ndarray:
    """RMS ``(tracks,)`` of every track over both channels, summed chunk by chunk in float64."""
    energy = np.zeros(tracks.shape[0])
    for start in range(0, tracks.shape[-1], CHUNK_SAMPLES):
        chunk = np.asarray(tracks[..., start: start + CHUNK_SAMPLES], dtype=np.float64)
        energy += np.square(chunk).sum((-2, -1))
    return np.sqrt(energy / max(1, tracks.shape[-1] * tracks.shape[-2]))


def _aligned(tracks: np.ndarray | Tensor, gains: np.ndarray, start: int, stop: int) -> Tensor:
    """Tracks ``[start, stop)`` times their gains, a new float32 tensor ``(tracks, 2, stop - start)``."""
    piece = torch.from_numpy(np.ascontiguousarray(tracks[..., start:stop], dtype=np.float32))
    return piece * torch.from_numpy(gains.astype(np.float32))[:, None, None]


def middle_span(length: int, sample_rate: int, seconds: float = ANALYSIS_SECONDS) -> tuple[int, int]:
    """``(start, stop)`` samples of the middle ``seconds`` of ``length`` samples (all of them when shorter)."""
    keep = min(length, int(round(seconds * sample_rate)))
    start = (length - keep) // 2
    return start, start + keep


def analysis_excerpt(tracks: np.ndarray | Tensor, gains: np.ndarray, sample_rate: int, model_rate: int,
                     seconds: float = ANALYSIS_SECONDS) -> Tensor:
    """The level-aligned middle ``seconds`` of ``tracks`` at ``model_rate``: ``(tracks, 2, samples)``."""
    excerpt = _aligned(tracks, gains, *middle_span(tracks.shape[-1], sample_rate, seconds))
    if sample_rate == model_rate:
        return excerpt
    # track by track: torchaudio's polyphase resampler needs several times its input in scratch
    return torch.stack([torchaudio.functional.resample(track, sample_rate, model_rate) for track in excerpt])


@torch.no_grad()
def render_song(console: MixingConsole, tracks: np.ndarray | Tensor, gains: np.ndarray,
                chunk_samples: int = RENDER_CHUNK_SAMPLES) -> np.ndarray:
    """Render the whole song ``(tracks, 2, samples)`` (at ``console``'s rate, each track times its
    gain) into a new ``(2, samples)`` float32 array, in exact chunks (see
    :meth:`~mixrep.console.MixingConsole.render_long`), so memory is bounded by the chunk."""
    device = next(iter(console.parameters())).device
    out = np.empty((2, tracks.shape[-1]), dtype=np.float32)
    for start, stop, a, b in console.chunk_spans(tracks.shape[-1], chunk_samples):
        rendered = console.render(_aligned(tracks, gains, a, b).to(device))
        out[:, start:stop] = rendered[:, start - a: stop - a].cpu().numpy()
    return out


@dataclass(frozen=True)
class OutputLevels:
    """What :func:`finish_levels` measured and did.

    Attributes:
        sample_rate: Hz of the written mix.
        lufs: its integrated loudness (``-inf`` if silent).
        true_peak_db: its true peak, dBTP.
        loudness_gain_db: the gain that matched the reference's loudness (0 when either is silent).
        ceiling_gain_db: the gain (<= 0) that brought the true peak under the ceiling.
        ceiling_db: the ceiling, dBTP.
    """

    sample_rate: int
    lufs: float
    true_peak_db: float
    loudness_gain_db: float
    ceiling_gain_db: float
    ceiling_db: float

    def to_dict(self) -> dict:
        """JSON-able, rounded to 0.01 dB (``None`` for ``-inf``)."""
        return {k: (v if isinstance(v, int) else round(v, 2) if math.isfinite(v) else None)
                for k, v in asdict(self).items()}


def finish_levels(mix: np.ndarray, sample_rate: int, target_lufs: float,
                  ceiling_db: float = TRUE_PEAK_CEILING_DB, max_boost_db: float = MAX_LOUDNESS_BOOST_DB) -> OutputLevels:
    """Set ``mix`` ``(2, samples)`` in place to ``target_lufs`` (raised by at most ``max_boost_db``),
    then lower it so its true peak is at most ``ceiling_db`` dBTP.

    A silent mix, or a non-finite target, keeps its level (the ceiling still applies).
    """
    loudness = chunked_loudness(mix, sample_rate, CHUNK_SAMPLES)
    gain_db = 0.0
    if math.isfinite(target_lufs) and math.isfinite(loudness):
        gain_db = target_lufs - loudness
        if gain_db > max_boost_db:
            log.warning("the mix is %.1f dB quieter than the reference; raised by %.0f dB only "
                        "(MAX_LOUDNESS_BOOST_DB)", gain_db, max_boost_db)
            gain_db = max_boost_db
        np.multiply(mix, np.float32(10.0 ** (gain_db / 20.0)), out=mix)
    peak_db = true_peak_db(mix, sample_rate, CHUNK_SAMPLES)
    ceiling_gain_db = min(0.0, ceiling_db - peak_db) if math.isfinite(peak_db) else 0.0
    if ceiling_gain_db < 0.0:
        np.multiply(mix, np.float32(10.0 ** (ceiling_gain_db / 20.0)), out=mix)
        log.info("true-peak ceiling %.1f dBTP: the mix (true peak %+.2f dBTP) lowered by %.2f dB",
                 ceiling_db, peak_db, -ceiling_gain_db)
    return OutputLevels(int(sample_rate), loudness + gain_db + ceiling_gain_db, peak_db + ceiling_gain_db,
                        gain_db, ceiling_gain_db, float(ceiling_db))

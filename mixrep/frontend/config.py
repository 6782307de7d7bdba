"""The front end's settings: one typed, serialisable dataclass stored in every checkpoint."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from mixrep.constants import SAMPLE_RATE

log = logging.getLogger(__name__)

FEATURE_GROUPS: tuple[str, ...] = ("dynamics", "loudness", "spectrum", "stereo", "masking")
"""Groups of mix features a front end can compute (see :mod:`mixrep.frontend.features`):

- ``dynamics``: ``rms_db``, ``crest_db``;
- ``loudness``: ``lufs`` and, for stems, ``rel_loudness_lu``;
- ``spectrum``: ``band{i}_db``, ``tilt_db_per_octave``, ``flatness_db``;
- ``stereo``: ``ild_db``, ``lr_correlation``, ``mid_side_db``;
- ``masking``: ``dominance_band{i}`` (stems only).
"""

MIN_SECONDS = 0.1
"""Shortest clip the front end accepts: every feature band must hold at least one FFT bin."""


@dataclass(frozen=True)
class FrontEndConfig:
    """How stems become model inputs: log-mel settings, mix-feature set, clip length.

    Attributes:
        sample_rate: rate of the stems, Hz.
        n_fft: STFT size in samples (also the Hann window length) of the log-mel.
        hop_length: STFT hop in samples; ``frames = samples // hop_length + 1`` (centred frames).
        n_mels: mel bands (HTK scale, triangular filters without normalisation).
        f_min: lowest mel filter edge, Hz.
        f_max: highest mel filter edge, Hz; ``None`` for ``sample_rate / 2``.
        log_floor: added to the mel power before the natural log, so silence reads ``log(log_floor)``.
        clip_seconds: clip length the encoder was trained on (what file embedding cuts); the front
            end itself takes any length of at least :data:`MIN_SECONDS`.
        features: the mix-feature groups, a subset of :data:`FEATURE_GROUPS` (vector order is
            fixed by :func:`~mixrep.frontend.features.feature_names`, whatever the order here).
    """

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    f_min: float = 20.0
    f_max: float | None = None
    log_floor: float = 1e-5
    clip_seconds: float = 4.0
    features: tuple[str, ...] = FEATURE_GROUPS

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        if not 8_000 <= self.sample_rate <= 192_000 or self.sample_rate != int(self.sample_rate):
            raise ValueError(f"front end sample_rate={self.sample_rate!r} must be an integer rate in Hz "
                             f"between 8000 and 192000")
        if self.n_fft < 16 or self.hop_length < 1 or self.n_mels < 1:
            raise ValueError(f"front end needs n_fft >= 16, hop_length >= 1 and n_mels >= 1; got n_fft={self.n_fft}, "
                             f"hop_length={self.hop_length}, n_mels={self.n_mels}")
        if self.log_floor <= 0:
            raise ValueError(f"log_floor={self.log_floor} must be > 0 to keep the log-mel finite on silence")
        if not 0.0 <= self.f_min < self.top_hz <= self.sample_rate / 2.0:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={self.f_min}, "
                             f"f_max={self.f_max}, sample_rate={self.sample_rate}")
        if self.clip_seconds < MIN_SECONDS:
            raise ValueError(f"clip_seconds={self.clip_seconds} must be at least {MIN_SECONDS} s")
        unknown = [g for g in self.features if g not in FEATURE_GROUPS]
        if unknown or len(set(self.features)) != len(self.features):
            raise ValueError(f"front end features={list(self.features)}: each must be one of {list(FEATURE_GROUPS)}, "
                             f"at most once")

    @property
    def top_hz(self) -> float:
        """The highest mel filter edge in Hz (``f_max`` or Nyquist)."""
        return self.sample_rate / 2.0 if self.f_max is None else float(self.f_max)

    @property
    def clip_samples(self) -> int:
        """Samples in one training clip."""
        return int(round(self.clip_seconds * self.sample_rate))

    def frames_for(self, samples: int) -> int:
        """Log-mel frames of a clip of ``samples`` samples (centred STFT)."""
        return samples // self.hop_length + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins (JSON and ``torch.load(weights_only=True)`` safe); tuples become lists."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "front-end config") -> FrontEndConfig:
        """Inverse of :meth:`to_dict`. Missing fields take their defaults (older checkpoints stored
        only ``sample_rate``, ``n_fft``, ``hop_length``, ``n_mels`` and ``clip_seconds``, and the
        defaults are what they used); unknown fields are dropped with a warning naming ``where``."""
        known = {f.name for f in dataclasses.fields(cls)}
        for name in sorted(set(data) - known):
            log.warning("%s: ignoring unknown front-end field %r", where, name)
        return cls(**{k: v for k, v in data.items() if k in known})

    def differences(self, other: FrontEndConfig) -> dict[str, tuple[Any, Any]]:
        """``{field: (self's value, other's value)}`` for every field that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}

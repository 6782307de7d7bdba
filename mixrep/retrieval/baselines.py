"""Baselines of the style-retrieval evaluation: embeddings that need no training.

Each maps the items of a :class:`~mixrep.retrieval.style_set.StyleSet` to vectors scored exactly like the
encoder's embeddings (cosine), z-scored per dimension over the set:

- ``mix_features``: the 116 handcrafted mix features the encoder is conditioned on (per stem and
  for the mix: levels, loudness, band levels, tilt, flatness, stereo image, masking);
- ``stem_features``: their per-stem part alone (every field of the four stems, no mix field);
- ``stem_descriptor``: a richer handcrafted description of each stem
  (:mod:`mixrep.retrieval.descriptor`: octave-band levels and their movement, spectral shape,
  short-term level percentiles, loudness, and the stereo image overall and per octave band),
  the strong baseline: a learned embedding earns its keep only where it beats this;
- ``mfcc``: mean and standard deviation over frames of 20 MFCCs of the mono mix, a
  content-leaning timbre descriptor that shows how much song identity a metric rewards.

The untrained encoder, the fourth baseline, is scored by :mod:`mixrep.evaluation.encoder`.

Shape:
    mixes ``(batch, channels=2, samples)`` -> :func:`mfcc_statistics` ``(batch, 2 * n_mfcc)``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torchaudio

from mixrep.constants import STEMS
from mixrep.retrieval.metrics import standardize

N_MFCC = 20
MFCC_MELS = 40


@functools.lru_cache(maxsize=8)
def _mfcc_transform(sample_rate: int, n_fft: int, hop_length: int) -> torchaudio.transforms.MFCC:
    return torchaudio.transforms.MFCC(sample_rate=sample_rate, n_mfcc=N_MFCC, log_mels=False,
                                      melkwargs={"n_fft": n_fft, "hop_length": hop_length, "n_mels": MFCC_MELS,
                                                 "f_min": 20.0, "center": True})


@torch.no_grad()
def mfcc_statistics(mixes: torch.Tensor, sample_rate: int, n_fft: int = 2048, hop_length: int = 512) -> torch.Tensor:
    """Mean and standard deviation over frames of the MFCCs of each mono mix.

    The mel power is converted to dB (torchaudio's ``AmplitudeToDB``, 80 dB range per item) before
    the DCT, as in ``librosa.feature.mfcc``.

    Shape:
        ``(batch, channels, samples)`` -> ``(batch, 2 * N_MFCC)`` float32 (means, then stds).
    """
    transform = _mfcc_transform(int(sample_rate), int(n_fft), int(hop_length))
    coefficients = transform(mixes.float().mean(dim=1).cpu())  # (batch, n_mfcc, frames)
    return torch.cat([coefficients.mean(dim=-1), coefficients.std(dim=-1)], dim=-1)


def stem_feature_columns(feature_names: tuple[str, ...]) -> np.ndarray:
    """Indices of the per-stem fields (``drums.rms_db``...) among ``feature_names``."""
    columns = [i for i, name in enumerate(feature_names) if name.split(".", 1)[0] in STEMS]
    if not columns:
        raise ValueError("the feature vector has no per-stem field")
    return np.asarray(columns)


def feature_baselines(features: np.ndarray, feature_names: tuple[str, ...], mfcc: np.ndarray,
                      descriptor: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The handcrafted baselines' embeddings of a set, each z-scored over it.

    ``stem_descriptor`` is among them when ``descriptor`` (:func:`~mixrep.retrieval.descriptor.stem_descriptor`
    of every item) is given.

    Shape:
        features ``(items, num_features)``, mfcc ``(items, 2 * N_MFCC)``, descriptor
        ``(items, 4 * len(FIELDS))`` -> each ``(items, dim)``.
    """
    features = np.asarray(features, dtype=np.float64)
    baselines = {
        "mix_features": standardize(features),
        "stem_features": standardize(features[:, stem_feature_columns(feature_names)]),
    }
    if descriptor is not None:
        if len(descriptor) != len(features):
            raise ValueError(f"the descriptor has {len(descriptor)} rows but the set has {len(features)} items")
        baselines["stem_descriptor"] = standardize(descriptor)
    baselines["mfcc"] = standardize(mfcc)
    return baselines

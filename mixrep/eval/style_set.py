"""The held-out style-retrieval set: songs x mixing styles, encoded once.

A *style* is one :class:`~mixrep.audio.augment.StyleChain` (per-stem gains, EQ, compression,
reverb...) applied identically to a clip of every held-out song. Item ``(song m, style s)`` is
``apply_chain(clip_m, chain_s)``; see :mod:`mixrep.eval.metrics` for what counts as relevant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mixrep.audio.augment import AugmentConfig, apply_chain, sample_chain
from mixrep.audio.features import mix_features
from mixrep.audio.mel import StemMelSpectrogram
from mixrep.data.tracks import Source
from mixrep.errors import DatasetError


@dataclass
class StyleSet:
    """Encoded evaluation items.

    Shape:
        mels: ``(items, 8, n_mels, frames)``; features: ``(items, num_features)``;
        song_ids, style_ids: ``(items,)`` int64.
    """

    mels: torch.Tensor
    features: torch.Tensor
    song_ids: np.ndarray
    style_ids: np.ndarray
    track_ids: list[str]

    def __len__(self) -> int:
        return len(self.song_ids)


def build_style_set(source: Source, *, split: str = "val", num_songs: int = 16, num_styles: int = 8,
                    clip_seconds: float = 4.0, n_mels: int = 128, n_fft: int = 2048, hop_length: int = 512,
                    augment: AugmentConfig | None = None, seed: int = 1234) -> StyleSet:
    """Render and encode ``num_songs x num_styles`` items from the ``split`` tracks of ``source``.

    Each song contributes one clip (a seeded offset); each style is a chain drawn from
    ``augment`` with a seeded generator, so the set is identical across runs and machines.
    Tracks that fail to read are skipped (the source logs them).

    Raises:
        DatasetError: fewer than two songs could be read.
    """
    rng = np.random.default_rng(seed)
    augment = augment or AugmentConfig()
    tracks = [t for t in source.tracks(split) if t.duration_seconds >= clip_seconds]
    chains = [sample_chain(augment, rng) for _ in range(num_styles)]
    frontend = StemMelSpectrogram(source.sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    mels, features, song_ids, style_ids, track_ids = [], [], [], [], []
    for track in tracks:
        if len(track_ids) == num_songs:
            break
        start = float(rng.uniform(0.0, track.duration_seconds - clip_seconds))
        try:
            clip = source.read_stems(track, start, clip_seconds)
        except Exception as e:  # noqa: BLE001 - any unreadable track is skipped, not fatal
            source.skipped.skip(track.track_id, "unreadable", str(e))
            continue
        song = len(track_ids)
        track_ids.append(track.track_id)
        for style, chain in enumerate(chains):
            stems = apply_chain(clip, chain, source.sample_rate)
            with torch.no_grad():
                mels.append(frontend(torch.from_numpy(np.ascontiguousarray(stems))))
            features.append(torch.from_numpy(mix_features(stems, source.sample_rate)))
            song_ids.append(song)
            style_ids.append(style)
    if len(track_ids) < 2:
        raise DatasetError(f"the style-retrieval set needs >= 2 readable {split!r} songs of at least "
                           f"{clip_seconds} s in source {source.name!r}; found {len(track_ids)}")
    return StyleSet(torch.stack(mels), torch.stack(features), np.asarray(song_ids), np.asarray(style_ids),
                    track_ids)

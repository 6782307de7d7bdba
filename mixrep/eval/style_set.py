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
from mixrep.errors import DatasetError
from mixrep.frontend import FrontEnd
from mixrep.models.encoder import MixStyleEncoder
from mixrep.tracks import Source


@dataclass
class StyleSet:
    """Encoded evaluation items.

    Shape:
        mels: ``(items, 8, n_mels, frames)``; features: ``(items, num_features)`` (both on the
        CPU); song_ids, style_ids: ``(items,)`` int64.
    """

    mels: torch.Tensor
    features: torch.Tensor
    song_ids: np.ndarray
    style_ids: np.ndarray
    track_ids: list[str]

    def __len__(self) -> int:
        return len(self.song_ids)


@torch.no_grad()
def build_style_set(source: Source, frontend: FrontEnd, *, split: str = "val", num_songs: int = 16,
                    num_styles: int = 8, augment: AugmentConfig | None = None, seed: int = 1234) -> StyleSet:
    """Render ``num_songs x num_styles`` items from the ``split`` tracks of ``source`` and encode them.

    Each song contributes one clip of ``frontend.config.clip_seconds`` (a seeded offset); each
    style is a chain drawn from ``augment`` with a seeded generator, so the set is identical
    across runs and machines. Chains run on the CPU; the styled stems of one song are encoded as a
    batch by ``frontend`` on its device. Tracks that fail to read are skipped (the source logs them).

    Raises:
        DatasetError: fewer than two songs could be read.
        ValueError: the source's sample rate is not the front end's.
    """
    clip_seconds, sample_rate = frontend.config.clip_seconds, frontend.config.sample_rate
    if source.sample_rate != sample_rate:
        raise ValueError(f"source {source.name!r} reads stems at {source.sample_rate} Hz but the front end expects "
                         f"{sample_rate} Hz; open the source at the encoder's rate")
    device = frontend.window.device
    rng = np.random.default_rng(seed)
    augment = augment or AugmentConfig()
    tracks = [t for t in source.tracks(split) if t.duration_seconds >= clip_seconds]
    chains = [sample_chain(augment, rng) for _ in range(num_styles)]
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
        styled = np.stack([apply_chain(clip, chain, sample_rate) for chain in chains])
        mel, feature = frontend(torch.from_numpy(styled).to(device))
        mels.append(mel.cpu())
        features.append(feature.cpu())
        song_ids += [song] * num_styles
        style_ids += list(range(num_styles))
    if len(track_ids) < 2:
        raise DatasetError(f"the style-retrieval set needs >= 2 readable {split!r} songs of at least "
                           f"{clip_seconds} s in source {source.name!r}; found {len(track_ids)}")
    return StyleSet(torch.cat(mels), torch.cat(features), np.asarray(song_ids), np.asarray(style_ids), track_ids)


@torch.no_grad()
def embed_style_set(encoder: MixStyleEncoder, style_set: StyleSet, batch_size: int = 32) -> np.ndarray:
    """L2-normalised embeddings ``(items, dim)`` of every item, in eval mode (the mode is restored)."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    try:
        chunks = [encoder.embed(style_set.mels[i:i + batch_size].to(device),
                                style_set.features[i:i + batch_size].to(device)).float().cpu()
                  for i in range(0, len(style_set), batch_size)]
    finally:
        encoder.train(was_training)
    return torch.cat(chunks).numpy()

"""The held-out style-retrieval set: songs x mixing styles, encoded once.

A *style* is drawn once from a style space (:mod:`mixrep.styles.spaces`: the per-stem ``chains`` or
the ``mix_style`` space of channel strips, buses, master and loudness target) and applied
identically to one clip of every song. Item ``(song m, style s)`` is ``apply(clip_m, style_s)``; see
:mod:`mixrep.retrieval.metrics` for what counts as relevant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mixrep.errors import DatasetError
from mixrep.frontend import FrontEnd
from mixrep.models.encoder import MixStyleEncoder
from mixrep.retrieval.baselines import mfcc_statistics
from mixrep.retrieval.descriptor import stem_descriptor
from mixrep.styles.spaces import ChainStyles, StyleSpace, read_clip, track_names
from mixrep.tracks import Source

SILENT_CLIP_DBFS = -70.0
"""A song whose evaluation clip is quieter than this (RMS of the dry mix) is left out."""


@dataclass
class StyleSet:
    """Encoded evaluation items.

    Attributes:
        feature_names: the names of the ``features`` columns.
        mfcc: mean and std of the mix's MFCCs per item (the ``mfcc`` baseline).
        styles: the style space's description of each style (JSON-ready).
        clips: per song (``track_ids`` order) its clip's track names and their stem classes, what a
            style's settings vector depends on (:func:`~mixrep.styles.settings_vector.settings_vector`).
        descriptor: the per-stem descriptor of each item's styled stems (the ``stem_descriptor``
            baseline; columns :data:`~mixrep.retrieval.descriptor.DESCRIPTOR_NAMES`).

    Shape:
        mels: ``(items, 8, n_mels, frames)``; features: ``(items, num_features)`` (both on the
        CPU); mfcc: ``(items, 40)``; descriptor: ``(items, 4 * len(FIELDS))`` float32; song_ids,
        style_ids: ``(items,)`` int64.
    """

    mels: torch.Tensor
    features: torch.Tensor
    song_ids: np.ndarray
    style_ids: np.ndarray
    track_ids: list[str]
    feature_names: tuple[str, ...] = ()
    mfcc: np.ndarray | None = None
    styles: list[dict | None] | None = None
    clips: list[tuple[tuple[str, ...], tuple[str, ...]]] | None = None
    descriptor: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.song_ids)

    @property
    def num_songs(self) -> int:
        return len(self.track_ids)

    @property
    def num_styles(self) -> int:
        return int(len(np.unique(self.style_ids)))


def _rms_dbfs(audio: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-20))


@torch.no_grad()
def build_style_set(source: Source, frontend: FrontEnd, *, split: str | None = "val", num_songs: int = 16,
                    num_styles: int = 8, styles: StyleSpace | None = None, seed: int = 1234) -> StyleSet:
    """Render ``num_songs x num_styles`` items from the ``split`` songs of ``source`` and encode them.

    Each song contributes one clip of ``frontend.config.clip_seconds`` (a seeded offset), read track
    by track when the style space mixes tracks; then ``num_styles`` styles are drawn from ``styles``
    (default: the default chains) with a seeded generator, each for every track name of the clips,
    so the set is identical across runs and machines. Styles are applied on the CPU; the styled
    stems of one song are encoded as a batch by ``frontend`` on its device. Songs that fail to read
    or whose clip is silent are skipped (counted in ``source.skipped``).

    Args:
        split: ``train``, ``val``, ``test`` or ``None`` (every song).

    Raises:
        DatasetError: fewer than two songs could be read.
        ValueError: the source's sample rate is not the front end's.
    """
    clip_seconds, sample_rate = frontend.config.clip_seconds, frontend.config.sample_rate
    if source.sample_rate != sample_rate:
        raise ValueError(f"source {source.name!r} reads stems at {source.sample_rate} Hz but the front end expects "
                         f"{sample_rate} Hz; open the source at the encoder's rate")
    styles = styles if styles is not None else ChainStyles()
    device = frontend.window.device
    rng = np.random.default_rng(seed)
    clips, track_ids = [], []
    for track in source.tracks(split):
        if len(clips) == num_songs:
            break
        if track.duration_seconds < clip_seconds:
            continue
        start = float(rng.uniform(0.0, track.duration_seconds - clip_seconds))
        try:
            clip = read_clip(source, track, start, clip_seconds, styles.reads_tracks)
        except Exception as e:  # noqa: BLE001 - any unreadable track is skipped, not fatal
            source.skipped.skip(track.track_id, "unreadable", str(e))
            continue
        if _rms_dbfs(clip.audio.sum(axis=0)) < SILENT_CLIP_DBFS:
            source.skipped.skip(track.track_id, "silent", f"the evaluation clip at {start:.2f} s is silent")
            continue
        clips.append(clip)
        track_ids.append(track.track_id)
    if len(clips) < 2:
        where = "every" if split is None else f"the {split!r}"
        raise DatasetError(f"the style-retrieval set needs >= 2 readable, non-silent songs of at least "
                           f"{clip_seconds} s among {where} songs of source {source.name!r}; found {len(clips)}")
    drawn = [styles.draw(rng, track_names(*clips)) for _ in range(num_styles)]
    mels, features, mfcc, descriptor = [], [], [], []
    config = frontend.config
    for clip in clips:
        styled = torch.from_numpy(np.stack([styles.apply(clip, style, sample_rate) for style in drawn]))
        mel, feature = frontend(styled.to(device))
        mels.append(mel.cpu())
        features.append(feature.cpu())
        mfcc.append(mfcc_statistics(styled.sum(dim=1), sample_rate, config.n_fft, config.hop_length))
        descriptor.append(stem_descriptor(styled, sample_rate))
    song_ids = np.repeat(np.arange(len(clips)), num_styles)
    style_ids = np.tile(np.arange(num_styles), len(clips))
    return StyleSet(torch.cat(mels), torch.cat(features), song_ids, style_ids, track_ids,
                    feature_names=frontend.feature_names, mfcc=torch.cat(mfcc).numpy(),
                    styles=[styles.describe(style) for style in drawn],
                    clips=[(clip.names, clip.stems) for clip in clips], descriptor=torch.cat(descriptor).numpy())


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

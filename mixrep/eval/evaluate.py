"""Score a trained encoder on the style-retrieval set against two baselines.

Baselines, scored on exactly the same items:

- ``untrained``: the same architecture with freshly initialised weights (seeded);
- ``mix_features``: the handcrafted mix-feature vector alone, z-scored per feature over the set.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mixrep.api import StyleEncoder, load_checkpoint
from mixrep.audio.augment import AugmentConfig
from mixrep.data.datamodule import build_source
from mixrep.eval.metrics import StyleRetrievalScores, standardize, style_retrieval_scores
from mixrep.eval.style_set import StyleSet, build_style_set, embed_style_set
from mixrep.models.encoder import MixStyleEncoder
from mixrep.tracks import Source


def source_from_checkpoint(checkpoint: dict) -> tuple[Source, AugmentConfig]:
    """Re-open the data source (and augmentation config) a loaded checkpoint was trained on."""
    data = dict(checkpoint.get("datamodule_hyper_parameters", {}))
    augment = AugmentConfig.from_dict(data.pop("augment", None) or {})
    keys = ("sample_rate", "synth_songs", "synth_song_seconds", "fma_subset", "separator", "weights_path", "cache_dir")
    options = {k: data[k] for k in keys if k in data}
    if "seed" in data:
        options["synth_seed"] = data["seed"]
    return build_source(data.get("source", "synth"), data.get("root"), **options), augment


def score_encoders(encoder: StyleEncoder, style_set: StyleSet, seed: int = 0) -> dict[str, StyleRetrievalScores]:
    """Scores of the trained encoder and both baselines on ``style_set``."""
    torch.manual_seed(seed)
    untrained = MixStyleEncoder(encoder.model.config).to(encoder.device)
    song_ids, style_ids = style_set.song_ids, style_set.style_ids
    return {
        "trained": style_retrieval_scores(embed_style_set(encoder.model, style_set), song_ids, style_ids),
        "untrained": style_retrieval_scores(embed_style_set(untrained, style_set), song_ids, style_ids),
        "mix_features": style_retrieval_scores(standardize(style_set.features.numpy()), song_ids, style_ids),
    }


def evaluate_checkpoint(path: str | Path, *, source: Source | None = None, split: str = "val", num_songs: int = 16,
                        num_styles: int = 8, seed: int = 1234, device: str | None = None
                        ) -> dict[str, StyleRetrievalScores]:
    """Build the style-retrieval set from the checkpoint's own data source (or ``source``) and
    score the checkpoint and the baselines on it."""
    checkpoint = load_checkpoint(path)  # read once: it also holds the optimizer state
    encoder = StyleEncoder.from_loaded(checkpoint, path, device=device)
    trained_source, augment = source_from_checkpoint(checkpoint)
    source = source or trained_source
    style_set = build_style_set(source, encoder.frontend, split=split, num_songs=num_songs, num_styles=num_styles,
                                augment=augment, seed=seed)
    return score_encoders(encoder, style_set)


def format_scores(scores: dict[str, StyleRetrievalScores]) -> str:
    """A plain-text table: one row per model."""
    lines = [f"{'model':14s} {'mAP':>7s} {'R@1':>7s} {'style>song':>11s} {'queries':>8s}"]
    for name, s in scores.items():
        lines.append(f"{name:14s} {s.map:7.3f} {s.recall_at_1:7.3f} {s.style_over_song:11.3f} {s.queries:8d}")
    return "\n".join(lines)

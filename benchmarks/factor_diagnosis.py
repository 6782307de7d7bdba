"""Where an encoder loses to the per-stem descriptor: style retrieval per style factor, with and without
same-song distractors (docs/results.md "Settings decoding", diagnosis).

Each factor is a mixing-style space that varies one family of decisions and leaves the rest neutral
(``--factors``): ``balance`` (faders), ``eq`` (EQ and filters), ``dynamics`` (compressor, saturation,
master compressor and limiter), ``space`` (delay and reverb sends and buses), ``stereo`` (pan and
width), and ``all`` (the default space). Every checkpoint and the handcrafted baselines are scored on
the same items of the held-out soundfont domain (``mixrep evaluate``'s): mAP with same-song distractors
(the evaluation's metric: other styles of the query's own song count as non-relevant) and mAP over
other songs only (same-song items removed from the ranking).

Run: ``python benchmarks/factor_diagnosis.py --checkpoints NAME=CKPT ... [--songs 16] [--styles 8]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import average_precision_score

from mixrep.evaluation.encoder import default_domains, open_domain
from mixrep.inference.style_encoder import StyleEncoder, load_checkpoint
from mixrep.retrieval.baselines import feature_baselines
from mixrep.retrieval.metrics import cosine_similarity, style_retrieval_scores
from mixrep.retrieval.style_set import build_style_set, embed_style_set
from mixrep.styles.mix_style import MixStyleConfig
from mixrep.styles.spaces import MixStyles

OFF = {"fader": {"spread_db": 0.0}, "pan": {"prob": 0.0}, "filters": {"highpass_prob": 0.0, "lowpass_prob": 0.0},
       "eq": {"prob": 0.0}, "compressor": {"prob": 0.0}, "saturation": {"prob": 0.0}, "width": {"prob": 0.0},
       "delay": {"prob": 0.0}, "reverb": {"prob": 0.0},
       "master": {"eq_prob": 0.0, "compressor_prob": 0.0, "limiter_prob": 0.0}}
ON = {
    "balance": {"fader": {"spread_db": 6.0}},
    "eq": {"filters": {"highpass_prob": 0.6, "lowpass_prob": 0.25}, "eq": {"prob": 1.0},
           "master": {"eq_prob": 1.0}},
    "dynamics": {"compressor": {"prob": 0.8}, "saturation": {"prob": 0.5},
                 "master": {"compressor_prob": 0.7, "limiter_prob": 0.7}},
    "space": {"delay": {"prob": 0.6}, "reverb": {"prob": 1.0}},
    "stereo": {"pan": {"prob": 1.0}, "width": {"prob": 1.0}},
}


def factor_config(factor: str) -> MixStyleConfig:
    """The default space (``all``) or one factor on and every other decision neutral."""
    if factor == "all":
        return MixStyleConfig()
    merged = {group: dict(values) for group, values in OFF.items()}
    for group, values in ON[factor].items():
        merged[group].update(values)
    return MixStyleConfig.from_dict(merged)


def map_over_other_songs(embeddings: np.ndarray, song_ids: np.ndarray, style_ids: np.ndarray) -> float:
    """mAP of style retrieval with every item of the query's own song removed from the ranking."""
    similarity = cosine_similarity(embeddings)
    aps = []
    for i in range(len(embeddings)):
        others = song_ids != song_ids[i]
        relevant = style_ids[others] == style_ids[i]
        if relevant.any():
            aps.append(average_precision_score(relevant, similarity[i, others]))
    return float(np.mean(aps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", required=True, metavar="NAME=CKPT")
    parser.add_argument("--factors", nargs="+", default=["all", "balance", "eq", "dynamics", "space", "stereo"])
    parser.add_argument("--songs", type=int, default=16)
    parser.add_argument("--styles", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--corpus-dir", default="outputs/corpora")
    args = parser.parse_args()
    encoders = {}
    for spec in args.checkpoints:
        name, _, path = spec.partition("=")
        checkpoint = load_checkpoint(path)
        encoders[name] = (StyleEncoder.from_loaded(checkpoint, path), checkpoint)
    first, checkpoint = next(iter(encoders.values()))
    domain = default_domains(checkpoint)[-1]  # the held-out soundfont (the synth when none is installed)
    source, description, split = open_domain(domain, checkpoint, first.sample_rate, songs=args.songs,
                                             min_seconds=first.clip_seconds, corpus_dir=args.corpus_dir)
    print(f"{description}, {args.songs} songs x {args.styles} styles per factor; "
          f"mAP with same-song distractors / over other songs\n")
    names = [*encoders, "stem_descriptor", "mix_features", "stem_features"]
    print("| factor | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    started = time.perf_counter()
    for factor in args.factors:
        style_set = build_style_set(source, first.frontend, split=split, num_songs=args.songs, num_styles=args.styles,
                                    styles=MixStyles(factor_config(factor)), seed=args.seed)
        embeddings = {name: embed_style_set(encoder.model, style_set) for name, (encoder, _) in encoders.items()}
        baselines = feature_baselines(style_set.features.numpy(), style_set.feature_names, style_set.mfcc,
                                      style_set.descriptor)
        embeddings.update({k: baselines[k] for k in ("stem_descriptor", "mix_features", "stem_features")})
        cells = []
        for name in names:
            e = embeddings[name]
            with_distractors = style_retrieval_scores(e, style_set.song_ids, style_set.style_ids).map
            cells.append(f"{with_distractors:.3f} / {map_over_other_songs(e, style_set.song_ids, style_set.style_ids):.3f}")
        print(f"| {factor} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

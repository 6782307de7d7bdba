"""Which field groups of the stem descriptor carry its style retrieval: each group alone and left out.

Builds one domain's style-retrieval set as ``mixrep evaluate`` does (the checkpoint's front end and
rate, the ``mix_style`` space with default ranges; pick a ``--seed`` other than the evaluation's
1234 to keep the evaluation items out of design decisions), then prints the mAP of the z-scored
descriptor, of each field group alone and of the descriptor without it, and of the descriptor
with band levels relative to the stem's total level instead of absolute.

Usage: python benchmarks/descriptor_ablation.py --checkpoint CKPT [--domain synth] [--seed 99]
       [--songs 16] [--styles 8] [--corpus-dir outputs/corpora]
"""

from __future__ import annotations

import argparse

import numpy as np

from mixrep.evaluation.encoder import evaluation_styles, open_domain
from mixrep.inference.style_encoder import StyleEncoder, load_checkpoint
from mixrep.retrieval.descriptor import BAND_LABELS, DESCRIPTOR_NAMES, FIELDS
from mixrep.retrieval.metrics import standardize, style_retrieval_scores
from mixrep.retrieval.style_set import build_style_set

BANDS = tuple(f"band_{b}_" for b in BAND_LABELS)
GROUPS = {
    "band levels": lambda f: f.startswith(BANDS) and f.endswith("hz_db"),
    "band spreads": lambda f: f.endswith("_spread_db"),
    "spectral shape": lambda f: f.startswith(("centroid", "tilt", "flatness", "rolloff")),
    "crest factor": lambda f: f == "crest_db",
    "rms percentiles": lambda f: f.startswith("rms_"),
    "loudness": lambda f: f == "lufs",
    "stereo (clip)": lambda f: f in ("lr_correlation", "side_mid_db", "width", "balance_db"),
    "band coherence": lambda f: f.endswith("_coherence"),
    "band side/mid": lambda f: f.startswith(BANDS) and f.endswith("_side_mid_db"),
    "band balance": lambda f: f.startswith(BANDS) and f.endswith("_balance_db"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--domain", default="synth")
    parser.add_argument("--seed", type=int, default=99)
    parser.add_argument("--songs", type=int, default=16)
    parser.add_argument("--styles", type=int, default=8)
    parser.add_argument("--corpus-dir", default="outputs/corpora")
    args = parser.parse_args(argv)
    checkpoint = load_checkpoint(args.checkpoint)
    encoder = StyleEncoder.from_loaded(checkpoint, args.checkpoint, device="cpu")
    source, description, split = open_domain(args.domain, checkpoint, encoder.sample_rate, songs=args.songs,
                                             min_seconds=encoder.clip_seconds, corpus_dir=args.corpus_dir)
    style_set = build_style_set(source, encoder.frontend, split=split, num_songs=args.songs, num_styles=args.styles,
                                styles=evaluation_styles("mix_style", checkpoint), seed=args.seed)
    descriptor = style_set.descriptor.astype(np.float64)
    fields = np.array([name.split(".", 1)[1] for name in DESCRIPTOR_NAMES])

    def score(columns: np.ndarray) -> float:
        return style_retrieval_scores(standardize(columns), style_set.song_ids, style_set.style_ids).map

    chance = (style_set.num_songs - 1) / (len(style_set) - 1)
    print(f"{description}, {style_set.num_songs} songs x {style_set.num_styles} styles, seed {args.seed} "
          f"(chance mAP about {chance:.3f})")
    print(f"{'fields':>16} {'columns':>7} {'alone':>6} {'without':>7}")
    print(f"{'all':>16} {descriptor.shape[1]:>7} {score(descriptor):>6.3f} {'':>7}")
    for group, member in GROUPS.items():
        mask = np.array([member(f) for f in fields])
        print(f"{group:>16} {mask.sum():>7} {score(descriptor[:, mask]):>6.3f} {score(descriptor[:, ~mask]):>7.3f}")
    relative = descriptor.copy()
    band_level = np.array([GROUPS["band levels"](f) for f in fields])
    for stem in range(len(DESCRIPTOR_NAMES) // len(FIELDS)):
        columns = np.flatnonzero(band_level)
        columns = columns[(columns >= stem * len(FIELDS)) & (columns < (stem + 1) * len(FIELDS))]
        total_db = 10 * np.log10(np.sum(10 ** (descriptor[:, columns] / 10), axis=1, keepdims=True))
        relative[:, columns] -= total_db
    print(f"band levels relative to the stem's total: {score(relative):.3f}")


if __name__ == "__main__":
    main()

"""Can a processor's presence be read off a reference at all?
(docs/results.md "Stage 2: processor presence from mix features".)

Console references of the Stage 2 training prior (all six synthetic tracks, sparse graphs drawn with
``configs/regression.yaml``'s ``active_probability``, processors counted present when audible in the
reference, ``--audible-db``), described by the 116 front-end mix features of
their four stems. Per track and per stem bus, and per processor type: is it in the graph? Logistic
regression (regularisation chosen by inner cross-validation), 5-fold cross-validated AUROC (mean over
the tracks / buses), from

- ``reference``: the reference's features (what the head has of it);
- ``reference - raw X``: minus those of the item's raw tracks of song X summed per stem (what the head
  also has: the tracks it mixes, another song);
- ``reference - raw Y`` / ``reference, raw Y`` (oracle): minus / beside those of the reference song's own
  raw tracks, which no user has. If even the oracle stays near 0.5, presence under this prior is not
  identifiable from these features, whatever the head.

Needs no checkpoint. 300 items took 52 min to draw on 2 loaded cores (rendering the graph and the
per-stem loudness normalisation dominate).

    python benchmarks/presence_probe.py --items 300 [--audible-db 0]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
import yaml
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from mixrep.console.spec import ConsoleSpec, normalise_loudness
from mixrep.constants import STEMS
from mixrep.corpora.synthetic import TRACKS
from mixrep.frontend.features import mix_features
from mixrep.training.head_data import TransferDataset


class RecordingDataset(TransferDataset):
    """A :class:`TransferDataset` that keeps the two crops (raw X, raw Y) of the last item it drew."""

    crops: list[np.ndarray]

    def __getitem__(self, index: int) -> dict:
        self.crops = []
        return super().__getitem__(index)

    def _crop(self, song, rng, keep):
        out = super()._crop(song, rng, keep)
        self.crops.append(out)
        return out


def stem_features(tracks: np.ndarray, stems: list[str], sample_rate: int) -> np.ndarray:
    """Mix features ``(116,)`` of raw tracks ``(k, 2, samples)`` summed per stem, loudness-normalised
    as references are."""
    summed = np.zeros((len(STEMS), 2, tracks.shape[-1]), np.float32)
    for track, stem in zip(tracks, stems):
        summed[STEMS.index(stem)] += track
    return features(normalise_loudness(summed, sample_rate), sample_rate)


def features(stems: np.ndarray, sample_rate: int) -> np.ndarray:
    return mix_features(torch.from_numpy(np.ascontiguousarray(stems))[None].float(), sample_rate)[0].numpy()


def auroc(z: np.ndarray, y: np.ndarray) -> float:
    if min(y.sum(), (~y).sum()) < 5:  # a class too rare for 5 folds
        return float("nan")
    model = LogisticRegressionCV(Cs=6, max_iter=3000)
    p = cross_val_predict(model, z, y, cv=5, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--config", default="configs/regression.yaml")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--audible-db", type=float, default=1.0,
                        help="ground truth: drawn processors that change their input by less are absent "
                             "(TransferDataset's audible_db; 0: every drawn processor counts)")
    parser.add_argument("--save", help="write the features and ground truth to this .npz")
    args = parser.parse_args()
    data = yaml.safe_load(open(args.config))["data"]
    spec = ConsoleSpec(sample_rate=data["sample_rate"], chain=data["chain"], group_chain=data["group_chain"])
    dataset = RecordingDataset(spec, "train", args.items, num_songs=data["num_songs"],
                               clip_seconds=data["clip_seconds"], pedalboard_fraction=0.0, min_tracks=len(TRACKS),
                               prior=data["prior"], audible_db=args.audible_db, seed=args.seed)
    sr = spec.sample_rate
    rows: dict[str, list] = {"reference": [], "raw_x": [], "raw_y": [], "track_keep": [], "group_keep": []}
    start = time.perf_counter()
    for i in range(args.items):
        item = dataset[i]
        raw_x, raw_y = dataset.crops
        rows["reference"].append(features(item["reference"].numpy(), sr))
        rows["raw_x"].append(stem_features(raw_x, item["stems"], sr))
        rows["raw_y"].append(stem_features(raw_y, item["stems"], sr))
        rows["track_keep"].append(item["track_keep"].numpy())
        rows["group_keep"].append(item["group_keep"].numpy())
    arrays = {k: np.stack(v) for k, v in rows.items()}
    if args.save:
        np.savez(args.save, **arrays)
    print(f"{args.items} console references in {time.perf_counter() - start:.0f} s; 5-fold cross-validated AUROC")
    ref, x, y = arrays["reference"], arrays["raw_x"], arrays["raw_y"]
    types = [t for t in dataset.track_layout.types if t != "gain_pan"]
    for strip, keeps in (("track", arrays["track_keep"]), ("bus", arrays["group_keep"])):
        shares = [keeps[..., dataset.track_layout.types.index(t)].mean() for t in types]
        print(f"present ({strip} strips): " + ", ".join(f"{t} {share:.2f}" for t, share in zip(types, shares)))
    inputs = {"reference": ref, "reference - raw X": ref - x, "reference - raw Y (oracle)": ref - y,
              "reference, raw Y (oracle)": np.concatenate([ref, y], 1)}
    print("| input | strip | " + " | ".join(types) + " |")
    print("|---|---|" + "---|" * len(types))
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name, v in inputs.items():
        z = (v - v.mean(0)) / (v.std(0) + 1e-6)
        for strip, keeps in (("track", arrays["track_keep"]), ("bus", arrays["group_keep"])):
            scores = [np.nanmean([auroc(z, keeps[:, k, dataset.track_layout.types.index(t)] > 0.5)
                                  for k in range(keeps.shape[1])]) for t in types]
            print(f"| {name} | {strip} | " + " | ".join(f"{s:.2f}" for s in scores) + " |", flush=True)


if __name__ == "__main__":
    main()

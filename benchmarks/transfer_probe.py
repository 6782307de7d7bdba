"""How much a reference tells about the console that mixed it (docs/results.md "Stage 2: what a reference tells").

Linear probes (ridge regression, 5-fold cross-validated) from what the Stage 2 head is given about a
reference (the frozen style embedding, the 116 front-end mix features, both) to the ground truth
of console references (all six synthetic tracks, parameters from the training prior): each track's
fader gain relative to the song's mean (dB), its effective level in the mix relative to the mean
(dB, every processor included: :func:`mixrep.console.track_levels`), and whether each processor
type is in the graph (logistic regression, AUROC per track position, averaged). Against predicting the mean (the "mean
parameters" baseline of ``evaluate-transfer``).

    nice -n 5 python benchmarks/transfer_probe.py --head runs/seed0/.../best.ckpt --items 240
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from mixrep.console import ConsoleBatch, MixingConsole
from mixrep.console.functional import gain_pan_physical
from mixrep.console.strips import mask_from_keep
from mixrep.corpora.synthetic import TRACKS
from mixrep.graphs.recovery import track_levels
from mixrep.inference import StyleTransfer
from mixrep.training.head_data import TransferDataset


def collect(transfer: StyleTransfer, items: int, seed: int) -> dict[str, np.ndarray]:
    data = transfer.data_config
    dataset = TransferDataset(transfer.spec, "train", items, num_songs=data.get("num_songs", 96),
                              clip_seconds=data.get("clip_seconds", 3.0), pedalboard_fraction=0.0,
                              min_tracks=len(TRACKS), prior=data.get("prior"), seed=seed)
    entry = next(e for e in transfer.track_layout.entries if e.node_type == "gain_pan" and e.name == "log_gain")
    vectors, gains, levels, keeps = [], [], [], []

    for i in range(items):
        item = dataset[i]
        vectors.append(transfer.reference_embedding(item["reference"], transfer.sample_rate).cpu().numpy())
        gain = gain_pan_physical(item["track_theta"][:, entry.offset: entry.offset + entry.size])["gain_db"]
        gains.append((gain - gain.mean()).numpy())
        graph = transfer.spec.graph(item["names"], item["stems"])
        params = ConsoleBatch([graph]).params_from_strips(
            transfer.track_layout.unflatten(item["track_theta"][None]),
            transfer.group_layout.unflatten(item["group_theta"][None]), torch.ones(1, len(TRACKS), dtype=torch.bool),
            torch.ones(1, 4, dtype=torch.bool))
        console = MixingConsole(graph, transfer.processors, params)
        console.set_mask(mask_from_keep(graph, item["track_keep"], item["group_keep"], transfer.track_layout,
                                        transfer.group_layout))
        level = track_levels(console, item["tracks"]).gain_db
        levels.append((level - level.mean()).numpy())
        keeps.append(item["track_keep"].numpy())
    return {"vectors": np.stack(vectors), "gains": np.stack(gains), "levels": np.stack(levels), "keeps": np.stack(keeps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--head", required=True, help="a head checkpoint (its encoder, console and training prior)")
    parser.add_argument("--items", type=int, default=240)
    parser.add_argument("--seed", type=int, default=99)
    args = parser.parse_args()
    transfer = StyleTransfer.from_checkpoint(args.head)
    data = collect(transfer, args.items, args.seed)
    dim = transfer.encoder.embedding_dim
    inputs = {"embedding": data["vectors"][:, :dim], "mix features": data["vectors"][:, dim:],
              "both": data["vectors"]}
    print(f"{args.items} console references, 6 tracks each; 5-fold cross-validated linear probes")
    print("| probe input | fader gain MAE (dB) | effective level MAE (dB) | " +
          " | ".join(f"{t} AUROC" for t in transfer.track_layout.types if t != "gain_pan") + " |")
    print("|---|---|---|" + "---|" * (len(transfer.track_layout.types) - 1))
    print(f"| mean (no input) | {np.abs(data['gains']).mean():.2f} | {np.abs(data['levels']).mean():.2f} | "
          + " | ".join("0.50" for t in transfer.track_layout.types if t != "gain_pan") + " |")
    for name, x in inputs.items():
        if x.shape[1] == 0:
            continue
        z = (x - x.mean(0)) / (x.std(0) + 1e-6)
        ridge = RidgeCV(alphas=np.logspace(-2, 4, 13))
        gain = np.abs(cross_val_predict(ridge, z, data["gains"], cv=5) - data["gains"]).mean()
        level = np.abs(cross_val_predict(ridge, z, data["levels"], cv=5) - data["levels"]).mean()
        aurocs = []
        for j, t in enumerate(transfer.track_layout.types):
            if t == "gain_pan":
                continue
            per_track = []
            for k in range(len(TRACKS)):  # is track k's processor of type t in the graph? mean over the tracks
                y = data["keeps"][:, k, j] > 0.5
                if y.all() or not y.any():
                    continue
                p = cross_val_predict(LogisticRegressionCV(max_iter=2000), z, y, cv=5, method="predict_proba")[:, 1]
                per_track.append(roc_auc_score(y, p))
            aurocs.append(float(np.mean(per_track)) if per_track else float("nan"))
        print(f"| {name} | {gain:.2f} | {level:.2f} | " + " | ".join(f"{a:.2f}" for a in aurocs) + " |")


if __name__ == "__main__":
    main()

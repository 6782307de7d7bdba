"""Graph prediction against its baselines, over seeds, on held-out songs of two domains
(docs/results.md "Graph prediction on the same song").

Each seed trains a :class:`~mixrep.graphs.predictor.GraphPredictor` (what ``mixrep console
train-graph`` does) on cases of the numpy synth's train songs (:class:`~mixrep.graphs.case_set.
GraphCaseSet`: raw tracks, their buses, the known sparse graph; seed = the training and validation
cases drawn), and scores it on two fixed test sets no seed trains on:

- ``synth``: cases of the numpy synth's test songs;
- ``soundfont``: cases of songs of another seed played by a soundfont (default MuseScore_General):
  sampled instruments, another domain than training.

Per processor type: ``n`` strips, the share that holds it, F1 of the predictor at its validation
thresholds and its AUROC, against keeping everything (F1 of predicting every strip present) and
keeping each type at its training frequency (the expected F1 of keeping each strip with that
probability, ``2 p q / (p + q)`` for prevalence ``p`` and frequency ``q``; AUROC 0.5 for both
baselines). Mean +- standard deviation over seeds. Evidence tables are cached under ``--out``.

    python benchmarks/graph_prediction.py --seeds 0 1 2 --train-cases 800 --test-cases 300 --out runs/graphs

``--by-audibility`` then scores the first seed's predictor on the synth test cases again, keeping
only the present processors that change their own input by at least 2, 3 or 6 dB
(:func:`~mixrep.graphs.audibility.processor_change_db`; every absent one stays): how well the
clearly audible ones are told from the absent ones.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from mixrep.console.batch import GROUP, TRACK
from mixrep.console.strips import strip_nodes
from mixrep.corpora.rendered import render_soundfont_corpus
from mixrep.corpora.synthetic import SynthConfig, SyntheticSource
from mixrep.graphs.audibility import processor_change_db
from mixrep.graphs.case_set import GraphCaseSet, evidence_table
from mixrep.graphs.evidence import strip_evidence
from mixrep.graphs.predictor import GraphPredictor

SAMPLE_RATE = 22050


def cached_table(path: Path, make) -> tuple[np.ndarray, np.ndarray]:
    if path.exists():
        data = np.load(path)
        return data["rows"], data["labels"]
    started = time.perf_counter()
    rows, labels = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, rows=rows, labels=labels)
    print(f"{path.name}: {len(rows)} strips in {time.perf_counter() - started:.0f} s", flush=True)
    return rows, labels


def by_audibility(predictor: GraphPredictor, cases: GraphCaseSet, count: int, floors=(2.0, 3.0, 6.0)) -> None:
    """AUROC per type with only the present processors changing their input by at least each floor (dB)."""
    rows, labels, change = [], [], []
    for i in range(count):
        case = cases[i]
        evidence = strip_evidence(case.tracks, case.groups, case.buses, cases.console.sample_rate)
        with torch.no_grad():
            nodes = case.console.render_graph(case.tracks, keep_nodes=True).node_outputs
        change_db = processor_change_db(case.console.graph, nodes, cases.console.sample_rate)
        strips = strip_nodes(case.console.graph)
        for kind, kind_rows, kind_labels in ((TRACK, evidence.tracks, case.track_labels),
                                             (GROUP, evidence.buses, case.bus_labels)):
            for k, nodes_of_strip in enumerate(strips[kind]):
                rows.append(kind_rows[k])
                labels.append(kind_labels[k].numpy())
                change.append([float(change_db[nodes_of_strip[t]]) if t in nodes_of_strip else 0.0
                               for t in predictor.types])
    probability = predictor.probabilities(np.array(rows))
    labels, change = np.array(labels) > 0.5, np.array(change)
    print(f"\nsynth test cases, seed {predictor.training.get('seed')}'s predictor: AUROC (present strips) with only "
          "the present processors changing their input by at least:\n")
    print("| type | all | " + " | ".join(f">= {f:g} dB" for f in floors) + " |")
    print("|---|---|" + "---|" * len(floors))
    for j, t in enumerate(predictor.types):
        if predictor.models[t] is None:
            continue
        cells = []
        for floor in (0.0, *floors):
            kept = ~labels[:, j] | (change[:, j] >= floor)
            truth = labels[kept, j]
            cells.append(f"{roc_auc_score(truth, probability[kept, j]):.3f} ({truth.sum()})"
                         if 0 < truth.sum() < len(truth) else "-")
        print(f"| {t} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train-cases", type=int, default=800)
    p.add_argument("--val-cases", type=int, default=200)
    p.add_argument("--test-cases", type=int, default=300)
    p.add_argument("--songs", type=int, default=96, help="songs of the numpy synth (80/10/10 split)")
    p.add_argument("--soundfont", default="MuseScore_General")
    p.add_argument("--soundfont-songs", type=int, default=24)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("runs/graphs"))
    p.add_argument("--by-audibility", action="store_true", help="AUROC against clearly audible processors only")
    args = p.parse_args(argv)

    synth = SyntheticSource(SynthConfig(num_songs=args.songs, sample_rate=SAMPLE_RATE), cache_songs=args.songs)
    tests = {"synth": cached_table(args.out / "test-synth.npz", lambda: evidence_table(
        GraphCaseSet(synth, "test", seed=1000), args.test_cases, args.workers))}
    soundfont = render_soundfont_corpus(args.soundfont, corpus_dir=args.out / "corpora", seed=7,
                                        songs=args.soundfont_songs, song_seconds=12.0, sample_rate=SAMPLE_RATE,
                                        progress=False)
    if soundfont is not None:
        tests["soundfont"] = cached_table(args.out / f"test-{args.soundfont}.npz", lambda: evidence_table(
            GraphCaseSet(soundfont, None, seed=1000), args.test_cases, args.workers))
    results = []
    for seed in args.seeds:
        train = cached_table(args.out / f"train-{args.train_cases}-seed{seed}.npz", lambda: evidence_table(
            GraphCaseSet(synth, "train", seed=seed), args.train_cases, args.workers))
        val = cached_table(args.out / f"val-{args.val_cases}-seed{seed}.npz", lambda: evidence_table(
            GraphCaseSet(synth, "val", seed=seed), args.val_cases, args.workers))
        types = GraphCaseSet(synth, "train").types
        predictor = GraphPredictor.fit(*train, types, SAMPLE_RATE, *val, training={"seed": seed})
        predictor.save(args.out / f"predictor-seed{seed}.json")
        results.append({domain: predictor.scores(*table) for domain, table in tests.items()})
    (args.out / "results.json").write_text(json.dumps(results, indent=1))

    print(f"\n{len(args.seeds)} seeds; mean +- std over them\n")
    print("| domain | type | n | present | predictor F1 | keep-all F1 | frequency F1 | predictor AUROC |")
    print("|---|---|---|---|---|---|---|---|")
    for domain in tests:
        for t in results[0][domain]:
            cells = {k: np.array([r[domain][t][k] for r in results]) for k in results[0][domain][t]}
            if np.isnan(cells["auroc"]).all() or not cells["learnt"].all():
                continue  # no strip holds it, or too few training strips did (predicted at its frequency)
            ms = {k: f"{np.nanmean(v):.3f} +- {np.nanstd(v):.3f}" for k, v in cells.items() if k != "learnt"}
            print(f"| {domain} | {t} | {int(cells['n'][0])} | {cells['present'][0]:.2f} | {ms['f1']} | "
                  f"{np.mean(cells['keep_all_f1']):.3f} | {ms['frequency_f1']} | {ms['auroc']} |")
    if args.by_audibility:
        by_audibility(GraphPredictor.load(args.out / f"predictor-seed{args.seeds[0]}.json"),
                      GraphCaseSet(synth, "test", seed=1000), args.test_cases)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

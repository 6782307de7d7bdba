"""Predicting a sparse mixing graph from a song's raw tracks and its mixed buses, in well under a second.

The pruning search (:mod:`mixrep.graphs.prune`) finds which processors a mix used by fitting and
removing, minutes per song. :class:`GraphPredictor` answers the same question at once: per
processor type, a gradient-boosted tree classifier (scikit-learn's
``HistGradientBoostingClassifier``) on the strip's evidence (:mod:`mixrep.graphs.evidence`) gives
the probability that the processor is in the graph; a strip keeps the processors whose probability
reaches the type's threshold (chosen on validation songs to maximise F1). Types whose training
labels hardly vary (gain/pan in a console: always there) are predicted at their training frequency.

It is trained on songs mixed by known random sparse graphs
(:class:`~mixrep.graphs.case_set.GraphCaseSet`, ``mixrep console train-graph``) and stored as one
JSON file: thresholds, frequencies and what it was trained on in plain text, each classifier in
skops' format (no pickle: loading refuses any type beyond skops' defaults and the exact ones it
writes, :data:`TRUSTED_TYPES`), and a content hash checked on load. :func:`predict_console_graph`
applies it to a console: keep probabilities per node and the mask of the predicted sparse graph.

Shape:
    evidence rows ``(strips, D)``; probabilities ``(strips, types)``; per node ``(V,)``.
"""

from __future__ import annotations

import base64
import json
import math
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch import Tensor

from mixrep.console.batch import GROUP, TRACK
from mixrep.console.console import MixingConsole
from mixrep.console.strips import strip_nodes
from mixrep.errors import MixrepError
from mixrep.files import atomic_write_text, digest
from mixrep.graphs.evidence import EVIDENCE_NAMES, strip_evidence

FORMAT = "mixrep-graph-predictor"
VERSION = 3
MIN_POSITIVES = 10
"""A type with fewer present (or absent) training strips is predicted at its training frequency."""
CLIP_SECONDS = 3.0
"""Default length of the training cases; a song is judged on clips of its predictor's length, averaged."""
TRUSTED_TYPES = frozenset({"sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"})
"""The only types a stored classifier may hold beyond skops' defaults: exactly those a fitted
``HistGradientBoostingClassifier`` brings (``skops.io.get_untrusted_types`` of what :meth:`GraphPredictor.save`
writes). Never a prefix: scikit-learn modules re-export functions such as ``os.remove``, which a
crafted file could otherwise name and have skops call."""


class GraphPredictorError(MixrepError):
    """A graph-predictor file that cannot be used (corrupt, edited, or of another evidence layout)."""


def best_f1_threshold(truth: np.ndarray, probability: np.ndarray) -> float:
    """The probability threshold with the highest F1 on ``(truth, probability)`` (0.5 without positives)."""
    truth = truth.astype(bool)
    if not truth.any():
        return 0.5
    order = np.argsort(-probability, kind="stable")
    hits = np.cumsum(truth[order])
    kept = np.arange(1, len(order) + 1)
    f1 = 2.0 * hits / (kept + truth.sum())
    best = int(np.argmax(f1))
    return float(probability[order][best])


def _classifier(iterations: int, learning_rate: float):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=iterations, learning_rate=learning_rate, early_stopping=False,
                                          random_state=0)


def _dump(model) -> str | None:
    if model is None:
        return None
    import skops.io

    return base64.b64encode(skops.io.dumps(model, compression=zipfile.ZIP_DEFLATED)).decode("ascii")


def _load_model(blob: str | None, path: Path, node_type: str):
    if blob is None:
        return None
    import skops.io

    try:
        data = base64.b64decode(blob, validate=True)
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as e:  # not base64, not a zip, no schema: skops raises many kinds
        raise GraphPredictorError(f"the {node_type} classifier in {path} is unreadable ({type(e).__name__}: {e}); "
                                  f"train the predictor again") from e
    foreign = sorted(set(untrusted) - TRUSTED_TYPES)
    if foreign:
        raise GraphPredictorError(f"the {node_type} classifier in {path} holds types a graph predictor never writes "
                                  f"({', '.join(foreign[:3])}); refusing to load it (nothing in it was run): train "
                                  f"the predictor again with `mixrep console train-graph`")
    return skops.io.loads(data, trusted=untrusted)


@dataclass
class GraphPredictor:
    """Per-type gradient-boosted classifiers on strip evidence.

    Attributes:
        sample_rate: Hz of the evidence (inputs at other rates are resampled).
        types: the predicted processor types (columns of every probability row).
        models: per type, its classifier, or ``None`` for a type predicted at its training frequency.
        threshold: ``(types,)`` keep thresholds (validation F1 optimum; 0.5 for constant types).
        frequency: per type, the share of training strips that held it.
        training: what it was trained on and its validation figures.
        clip_seconds: length of the training cases; a song is judged on clips of this length.
    """

    sample_rate: int
    types: tuple[str, ...]
    models: dict[str, object | None]
    threshold: np.ndarray
    frequency: dict[str, float]
    training: dict = field(default_factory=dict)
    clip_seconds: float = CLIP_SECONDS

    @classmethod
    def fit(cls, rows: np.ndarray, labels: np.ndarray, types: tuple[str, ...], sample_rate: int,
            val_rows: np.ndarray, val_labels: np.ndarray, iterations: int = 300, learning_rate: float = 0.05,
            training: dict | None = None, clip_seconds: float = CLIP_SECONDS) -> GraphPredictor:
        """Fit on evidence ``rows`` ``(N, D)`` and 0/1 ``labels`` ``(N, types)`` of ``clip_seconds`` cases;
        thresholds on the validation rows. ``iterations`` and ``learning_rate`` are the boosting's."""
        rows, labels = np.asarray(rows, np.float64), np.asarray(labels, np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(EVIDENCE_NAMES) or labels.shape != (len(rows), len(types)):
            raise ValueError(f"expected rows (N, {len(EVIDENCE_NAMES)}) and labels (N, {len(types)}), got "
                             f"{rows.shape} and {labels.shape}")
        models, frequency = {}, {}
        for j, t in enumerate(types):
            y = labels[:, j] > 0.5
            frequency[t] = float(y.mean())
            enough = min(y.sum(), (~y).sum()) >= MIN_POSITIVES
            models[t] = _classifier(iterations, learning_rate).fit(rows, y) if enough else None
        predictor = cls(int(sample_rate), tuple(types), models, np.full(len(types), 0.5), frequency,
                        dict(training or {}), float(clip_seconds))
        val_probability = predictor.probabilities(val_rows)
        for j, t in enumerate(types):
            if models[t] is not None:
                predictor.threshold[j] = best_f1_threshold(np.asarray(val_labels)[:, j] > 0.5, val_probability[:, j])
        return predictor

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """``(N, D)`` evidence rows -> ``(N, types)`` keep probabilities."""
        rows = np.asarray(rows, np.float64)
        columns = [np.full(len(rows), self.frequency[t]) if self.models[t] is None
                   else self.models[t].predict_proba(rows)[:, 1] for t in self.types]
        return np.stack(columns, 1) if columns else np.zeros((len(rows), 0))

    def keep(self, probabilities: np.ndarray) -> np.ndarray:
        """``(N, types)`` probabilities -> bool, at each type's threshold."""
        return probabilities >= self.threshold

    def scores(self, rows: np.ndarray, labels: np.ndarray) -> dict[str, dict]:
        """Per type on evidence ``rows`` with 0/1 ``labels`` ``(N, types)``: ``n`` strips, the ``present``
        share, whether it was ``learnt`` (else kept at its frequency), F1 at the thresholds and AUROC
        (NaN where one class is missing), and the baselines: F1 of keeping every strip and the expected
        F1 of keeping each strip with the type's training frequency ``q`` (``2 p q / (p + q)`` at
        prevalence ``p``; both baselines have AUROC 0.5)."""
        from sklearn.metrics import f1_score, roc_auc_score

        probability = self.probabilities(rows)
        keep = self.keep(probability)
        out = {}
        for j, t in enumerate(self.types):
            truth = np.asarray(labels)[:, j] > 0.5
            p, q = float(truth.mean()), self.frequency[t]
            out[t] = {"n": int(len(truth)), "present": p, "learnt": self.models[t] is not None,
                      "f1": float(f1_score(truth, keep[:, j], zero_division=0.0)),
                      "auroc": float(roc_auc_score(truth, probability[:, j])) if 0 < truth.sum() < len(truth)
                      else float("nan"),
                      "keep_all_f1": float(f1_score(truth, np.ones_like(truth), zero_division=0.0)),
                      "frequency_f1": 2 * p * q / max(p + q, 1e-12)}
        return out

    # ------------------------------------------------------------------ storage
    def to_dict(self) -> dict:
        body = {"format": FORMAT, "version": VERSION, "sample_rate": self.sample_rate, "types": list(self.types),
                "evidence": list(EVIDENCE_NAMES), "threshold": self.threshold.tolist(), "frequency": self.frequency,
                "training": self.training, "clip_seconds": self.clip_seconds,
                "models": {t: _dump(self.models[t]) for t in self.types}}
        return {**body, "sha256": digest(json.dumps(body, sort_keys=True))}

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> GraphPredictor:
        """Read a predictor written by :meth:`save`.

        Raises:
            GraphPredictorError: unreadable, not a predictor, edited since it was written (hash),
                made for another evidence layout, or holding types beyond skops' defaults and
                :data:`TRUSTED_TYPES`.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise GraphPredictorError(f"cannot read graph predictor {path}: {e}") from e
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise GraphPredictorError(f"{path} is not a graph predictor (no \"format\": \"{FORMAT}\"); train one "
                                      "with `mixrep console train-graph`")
        stored = data.pop("sha256", None)
        if stored != digest(json.dumps(data, sort_keys=True)):
            raise GraphPredictorError(f"graph predictor {path} does not match its content hash: it was edited or "
                                      "damaged since it was written; train it again")
        if data.get("version") != VERSION or tuple(data.get("evidence", ())) != EVIDENCE_NAMES:
            raise GraphPredictorError(f"graph predictor {path} was made for another evidence layout (version "
                                      f"{data.get('version')}); train it again with this mixrep")
        types = tuple(data["types"])
        models = {t: _load_model(data["models"][t], path, t) for t in types}
        return cls(int(data["sample_rate"]), types, models, np.array(data["threshold"]),
                   {k: float(v) for k, v in data["frequency"].items()}, data.get("training", {}),
                   float(data["clip_seconds"]))


@dataclass(frozen=True)
class GraphPrediction:
    """A console's predicted sparse graph.

    Attributes:
        probability: ``(V,)`` keep probability of every node (1 for non-processors and for the
            types the predictor does not cover).
        keep: ``(V,)`` bool, the nodes of the predicted graph.
        seconds: wall time of the prediction (evidence included).
    """

    probability: Tensor
    keep: Tensor
    seconds: float

    def removed(self) -> list[int]:
        """Node ids of the processors the prediction leaves out."""
        return [int(v) for v in torch.nonzero(~self.keep).flatten()]


def song_probabilities(predictor: GraphPredictor, tracks: Tensor, groups: list[int], buses: Tensor,
                       max_clips: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Keep probabilities of every strip, averaged over up to ``max_clips`` evenly spaced clips of the
    predictor's ``clip_seconds`` (the length of its training cases) at its rate.

    Shape:
        tracks ``(K, 2, samples)``, buses ``(G, 2, samples)`` -> ``(K, types)`` and ``(G, types)``.
    """
    clip = int(round(predictor.clip_seconds * predictor.sample_rate))
    samples = tracks.shape[-1]
    count = 1 if samples <= clip else min(max_clips, int(math.ceil(samples / clip)))
    starts = [0] if count == 1 else np.linspace(0, samples - clip, count).round().astype(int).tolist()
    track_p, bus_p = [], []
    for start in starts:
        evidence = strip_evidence(tracks[..., start:start + clip], groups, buses[..., start:start + clip],
                                  predictor.sample_rate)
        track_p.append(predictor.probabilities(evidence.tracks))
        bus_p.append(predictor.probabilities(evidence.buses))
    return np.mean(track_p, 0), np.mean(bus_p, 0)


def predict_console_graph(predictor: GraphPredictor, console: MixingConsole, tracks: Tensor, buses: Tensor
                          ) -> GraphPrediction:
    """Predict which processors of ``console`` (a :func:`~mixrep.console.graph.build_console` graph)
    mixed ``tracks`` into ``buses``.

    Args:
        tracks: ``(K, 2, samples)`` in the console's input order, at ``console.sample_rate``.
        buses: ``(G, 2, samples)`` every subgroup's output (the reference's stems), in mix-node order.
    """
    started = time.perf_counter()
    strips = strip_nodes(console.graph)
    if tracks.shape[0] != len(strips[TRACK]) or buses.shape[0] != len(strips[GROUP]):
        raise ValueError(f"the console has {len(strips[TRACK])} tracks and {len(strips[GROUP])} groups, got "
                         f"{tracks.shape[0]} tracks and {buses.shape[0]} bus outputs")
    groups = _track_groups(console)
    tracks, buses = tracks.detach().float().cpu(), buses.detach().float().cpu()
    if console.sample_rate != predictor.sample_rate:
        tracks = torchaudio.functional.resample(tracks, console.sample_rate, predictor.sample_rate)
        buses = torchaudio.functional.resample(buses, console.sample_rate, predictor.sample_rate)
    track_p, bus_p = song_probabilities(predictor, tracks, groups, buses)
    probability = torch.ones(console.graph.num_nodes)
    keep = torch.ones(console.graph.num_nodes, dtype=torch.bool)
    for kind, p in ((TRACK, track_p), (GROUP, bus_p)):
        k = predictor.keep(p)
        for i, nodes in enumerate(strips[kind]):
            for t, v in nodes.items():
                if t in predictor.types:
                    j = predictor.types.index(t)
                    probability[v], keep[v] = float(p[i, j]), bool(k[i, j])
    keep &= console.graph.mask > 0
    return GraphPrediction(probability, keep, time.perf_counter() - started)


def _track_groups(console: MixingConsole) -> list[int]:
    """The group (mix-node order) each input track feeds."""
    graph = console.graph
    mixes = {v: g for g, v in enumerate(graph.nodes_of_type("mix"))}
    successors: list[list[int]] = [[] for _ in range(graph.num_nodes)]
    for src, dst in graph.edges():
        successors[src].append(dst)
    out = []
    for v in graph.nodes_of_type("input"):
        frontier, seen = [v], set()
        while frontier and not any(u in mixes for u in frontier):
            frontier = [w for u in frontier for w in successors[u] if w not in seen]
            seen.update(frontier)
        found = [mixes[u] for u in frontier if u in mixes]
        if not found:
            raise ValueError(f"input {graph.node_names[v]!r} feeds no mix node: graph prediction needs a console "
                             "whose every track feeds a subgroup")
        out.append(found[0])
    return out


__all__ = ["GraphPrediction", "GraphPredictor", "GraphPredictorError", "best_f1_threshold",
           "predict_console_graph", "song_probabilities"]

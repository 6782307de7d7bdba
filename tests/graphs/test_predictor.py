"""Graph prediction: thresholds, storage, console mapping, and a predictor that learns from real cases."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mixrep.console import MixingConsole, MusicalPrior
from mixrep.corpora.synthetic import SynthConfig, SyntheticSource
from mixrep.graphs.case_set import GraphCaseSet, evidence_table
from mixrep.graphs.cases import make_case
from mixrep.graphs.evidence import EVIDENCE_NAMES, strip_evidence
from mixrep.graphs.predictor import (
    CLIP_SECONDS,
    GraphPredictor,
    GraphPredictorError,
    best_f1_threshold,
    predict_console_graph,
    song_probabilities,
)
from tests.console.conftest import harmonic_tracks

TYPES = ("eq", "compressor", "gain_pan")
D = len(EVIDENCE_NAMES)


def separable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose first column tells the eq label, second the compressor's; gain_pan always present."""
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.random(n) < 0.3, rng.random(n) < 0.5, np.ones(n, bool)], 1).astype(float)
    rows = rng.normal(size=(n, D))
    rows[:, 0] += 3.0 * labels[:, 0]
    rows[:, 1] -= 3.0 * labels[:, 1]
    return rows, labels


@pytest.fixture(scope="module")
def predictor() -> GraphPredictor:
    return GraphPredictor.fit(*separable(400, 0), TYPES, 22050, *separable(200, 1), training={"note": "test"})


def test_best_f1_threshold_is_the_f1_optimum():
    truth = np.array([1, 1, 0, 1, 0, 0], bool)
    probability = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    # keeping the top 4 gives precision 3/4, recall 1: F1 6/7, above every other cut
    assert best_f1_threshold(truth, probability) == 0.6
    assert best_f1_threshold(np.zeros(6, bool), probability) == 0.5


def test_fit_learns_separable_labels_and_constant_types(predictor):
    rows, labels = separable(300, 2)
    p = predictor.probabilities(rows)
    assert p.shape == (300, 3)
    assert roc_auc_score(labels[:, 0], p[:, 0]) > 0.9 and roc_auc_score(labels[:, 1], p[:, 1]) > 0.9  # chance: 0.5
    assert predictor.frequency["gain_pan"] == 1.0 and predictor.models["gain_pan"] is None
    keep = predictor.keep(p)
    assert keep[:, 2].all()  # a type always present is always kept
    assert (keep[:, 0] == (labels[:, 0] > 0)).mean() > 0.8


def test_save_load_round_trip_and_damage_is_refused(predictor, tmp_path):
    path = predictor.save(tmp_path / "p.json")
    loaded = GraphPredictor.load(path)
    rows, _ = separable(20, 3)
    np.testing.assert_allclose(loaded.probabilities(rows), predictor.probabilities(rows))
    assert loaded.types == TYPES and loaded.training == {"note": "test"}
    data = json.loads(path.read_text())
    data["threshold"][0] += 0.1
    path.write_text(json.dumps(data))
    with pytest.raises(GraphPredictorError, match="content hash"):
        GraphPredictor.load(path)
    path.write_text("{}")
    with pytest.raises(GraphPredictorError, match="not a graph predictor"):
        GraphPredictor.load(path)
    path.write_text("not json")
    with pytest.raises(GraphPredictorError, match="cannot read"):
        GraphPredictor.load(path)
    body = predictor.to_dict()
    body.pop("sha256")
    body["evidence"] = body["evidence"][:-1]
    from mixrep.files import digest

    path.write_text(json.dumps({**body, "sha256": digest(json.dumps(body, sort_keys=True))}))
    with pytest.raises(GraphPredictorError, match="another evidence layout"):
        GraphPredictor.load(path)


class Payload:
    """Not a scikit-learn type: a stored classifier must not bring one in."""

    def __init__(self) -> None:
        self.command = "rm -rf /"


def test_a_classifier_of_foreign_types_is_refused(predictor, tmp_path):
    import base64

    import skops.io

    from mixrep.files import digest

    body = predictor.to_dict()
    body.pop("sha256")
    body["models"]["eq"] = base64.b64encode(skops.io.dumps(Payload())).decode("ascii")
    path = tmp_path / "p.json"
    path.write_text(json.dumps({**body, "sha256": digest(json.dumps(body, sort_keys=True))}))
    with pytest.raises(GraphPredictorError, match="types a graph predictor never writes"):
        GraphPredictor.load(path)


def skops_call(module: str, name: str, argument: str) -> bytes:
    """A skops file whose schema makes loading call ``module.name(argument)`` (a ConstructorFromReduceNode)."""
    import io
    import zipfile

    import skops.io

    schema = json.loads(zipfile.ZipFile(io.BytesIO(skops.io.dumps((argument,)))).read("schema.json"))
    arguments = {k: v for k, v in schema.items() if k not in ("protocol", "_skops_version")}
    root = {"__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode", "content": arguments,
            "__id__": 1, "protocol": schema["protocol"], "_skops_version": schema["_skops_version"]}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", json.dumps(root))
    return out.getvalue()


@pytest.mark.parametrize("module, name, target, existed", [
    ("sklearn.datasets._species_distributions", "remove", "victim.txt", True),  # os.remove, re-exported
    ("sklearn.datasets._rcv1", "makedirs", "created", False),  # os.makedirs, re-exported
])
def test_a_classifier_calling_a_function_sklearn_re_exports_is_refused_before_it_runs(
        predictor, tmp_path, module, name, target, existed):
    import base64

    import skops.io

    from mixrep.files import digest

    target = tmp_path / target
    if existed:
        target.write_text("keep me")
    blob = skops_call(module, name, str(target))
    assert skops.io.get_untrusted_types(data=blob) == [f"{module}.{name}"]
    body = predictor.to_dict()
    body.pop("sha256")
    body["models"]["eq"] = base64.b64encode(blob).decode("ascii")
    path = tmp_path / "p.json"
    path.write_text(json.dumps({**body, "sha256": digest(json.dumps(body, sort_keys=True))}))  # the hash is public
    with pytest.raises(GraphPredictorError, match=rf"p.json holds types a graph predictor never writes \({module}.{name}\)"):
        GraphPredictor.load(path)
    assert target.exists() == existed


def test_a_saved_predictor_holds_only_the_trusted_types(predictor, tmp_path):
    import base64

    import skops.io

    from mixrep.graphs.predictor import TRUSTED_TYPES

    blobs = [b for b in predictor.to_dict()["models"].values() if b is not None]
    assert blobs and {t for b in blobs for t in skops.io.get_untrusted_types(data=base64.b64decode(b))} == TRUSTED_TYPES


def test_fit_rejects_rows_of_another_layout():
    rows, labels = separable(50, 0)
    with pytest.raises(ValueError, match="expected rows"):
        GraphPredictor.fit(rows[:, :-1], labels, TYPES, 22050, rows, labels)


def test_prediction_maps_strips_onto_console_nodes(predictor):
    rate = 8000
    stems = harmonic_tracks([110.0, 220.0, 330.0], 3.0, rate)
    names, groups = ["a", "b", "c"], {"x": ["a", "b"], "y": ["c"]}
    case = make_case(stems, names, groups, rate, seed=0, chain="ecg", group_chain="g",
                     prior=MusicalPrior(active_probability={"eq": 0.5, "compressor": 0.5}))
    console = MixingConsole.from_tracks(names, groups, "ecg", "g", rate)
    prediction = predict_console_graph(predictor, console, stems, case.buses)
    graph = console.graph
    assert prediction.probability.shape == prediction.keep.shape == (graph.num_nodes,)
    processors = [v for v, t in enumerate(graph.node_types) if t in ("eq", "compressor")]
    assert all(0.0 < float(prediction.probability[v]) < 1.0 for v in processors)
    gains = graph.nodes_of_type("gain_pan")
    assert all(prediction.keep[v] for v in gains)  # gain_pan: always present in training
    removed = prediction.removed()
    assert set(removed) <= set(processors)
    assert console.pruned(removed).graph.num_processors() == graph.num_processors() - len(removed)
    with pytest.raises(ValueError, match="3 tracks and 2 groups"):
        predict_console_graph(predictor, console, stems[:2], case.buses)


@pytest.mark.slow
def test_a_predictor_trained_on_cases_beats_keep_everything_on_other_songs():
    """Trained on 60 cases of train songs, scored on 40 cases of test songs: better than chance
    (AUROC) on every type that varies, and better than keeping everything (F1) for the compressor."""
    source = SyntheticSource(SynthConfig(num_songs=24, sample_rate=16000, song_seconds=6.0), cache_songs=24)
    train = GraphCaseSet(source, "train", seed=0)
    val, test = GraphCaseSet(source, "val", seed=0), GraphCaseSet(source, "test", seed=0)
    predictor = GraphPredictor.fit(*evidence_table(train, 60), train.types, 16000, *evidence_table(val, 20))
    rows, labels = evidence_table(test, 40)
    p = predictor.probabilities(rows)
    scored = 0
    for j, t in enumerate(predictor.types):
        truth = labels[:, j] > 0.5
        if truth.sum() >= 5 and (~truth).sum() >= 5 and predictor.models[t] is not None:
            assert roc_auc_score(truth, p[:, j]) > 0.6, t
            scored += 1
    assert scored >= 3
    j = predictor.types.index("compressor")
    truth, kept = labels[:, j] > 0.5, predictor.keep(p)[:, j]
    f1 = 2 * (truth & kept).sum() / (truth.sum() + kept.sum())
    assert f1 > 2 * truth.mean() / (1 + truth.mean())


@pytest.mark.parametrize("clip_seconds", [CLIP_SECONDS, 2.0])
def test_a_song_is_judged_on_training_length_clips_and_their_mean(predictor, clip_seconds):
    predictor = dataclasses.replace(predictor, clip_seconds=clip_seconds)
    rate = predictor.sample_rate
    tracks = harmonic_tracks([110.0, 330.0], 7.0, rate)
    buses = torch.stack([tracks[0] * 0.5, tracks[1] * 2.0])
    track_p, bus_p = song_probabilities(predictor, tracks, [0, 1], buses)
    clip = int(clip_seconds * rate)
    count = -(-7 // int(clip_seconds))  # clips needed to cover 7 s
    starts = np.linspace(0, tracks.shape[-1] - clip, count).round().astype(int)
    per_clip = [predictor.probabilities(strip_evidence(tracks[..., s:s + clip], [0, 1], buses[..., s:s + clip],
                                                       rate).tracks) for s in starts]
    np.testing.assert_allclose(track_p, np.mean(per_clip, 0), atol=1e-3)
    assert track_p.shape == (2, 3) and bus_p.shape == (2, 3)

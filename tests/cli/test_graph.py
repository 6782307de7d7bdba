"""``mixrep console train-graph``, ``predict-graph`` and ``prune --predictor``: outputs and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mixrep import cli
from mixrep.audio.io import read_audio
from mixrep.console import MixingConsole
from mixrep.graphs.evidence import EVIDENCE_NAMES
from mixrep.graphs.predictor import GraphPredictor

RATE = "8000"
FIT = ["--sample-rate", RATE, "--chain", "eg", "--group-chain", "g", "--crop-seconds", "0.75",
       "--warmup-seconds", "0.25", "--threads", "1", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    out = tmp_path_factory.mktemp("graph") / "case"
    assert cli.main(["console", "make-case", "--out", str(out), "--tracks", "3", "--seconds", "2",
                     "--sample-rate", RATE, "--chain", "eg", "--active-probability", "eq=0.5", "--seed", "2"]) == 0
    return out


@pytest.fixture(scope="module")
def predictor_file(tmp_path_factory):
    """A predictor of eq and gain_pan fitted on random rows (what it predicts does not matter here)."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(200, len(EVIDENCE_NAMES)))
    labels = np.stack([rows[:, 0] > 0.3, np.ones(200, bool)], 1).astype(float)
    predictor = GraphPredictor.fit(rows, labels, ("eq", "gain_pan"), 22050, rows, labels)
    return predictor.save(tmp_path_factory.mktemp("predictor") / "predictor.json")


def test_make_case_writes_buses_that_sum_to_the_mix(case):
    groups = json.loads((case / "groups.json").read_text())
    buses = [read_audio(case / "buses" / f"{g}.wav", 8000) for g in groups]
    np.testing.assert_allclose(sum(buses), read_audio(case / "mix.wav", 8000), atol=1e-5)


def test_predict_graph_writes_the_graph_its_probabilities_and_recovery(case, predictor_file, tmp_path, capsys):
    out = tmp_path / "predicted"
    args = ["console", "predict-graph", "--tracks", str(case / "stems"), "--buses", str(case / "buses"),
            "--groups", str(case / "groups.json"), "--predictor", str(predictor_file), "--out", str(out),
            "--true-parameters", str(case / "true_parameters.json"), *FIT]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "kept" in printed and "recall" in printed
    report = json.loads((out / "prediction.json").read_text())
    assert report["processors"] == len(report["nodes"]) == 3 * 2 + 2  # eq + gain/pan per track, a gain/pan per group
    assert all(0.0 <= n["probability"] <= 1.0 for n in report["nodes"])
    assert all(n["kept"] for n in report["nodes"] if n["type"] == "gain_pan")
    assert set(report["recovery"]) == {"eq", "gain_pan"}
    console = MixingConsole.from_json(out / "graph.json")
    assert console.graph.num_processors() == report["kept"]
    assert (out / "graph.png").is_file()
    style = json.loads((out / "graph.style.json").read_text())  # the predicted graph in the style's settings
    assert sorted(style["style"]["strips"]) == sorted(console.track_names)

    fitted = tmp_path / "fitted"
    assert cli.main([*args[:-len(FIT) - 4], "--out", str(fitted), "--mix", str(case / "mix.wav"),
                     "--steps", "5", *FIT]) == 0
    report = json.loads((fitted / "prediction.json").read_text())
    assert report["loss"] <= report["loss_initial"] * 1.5 and (fitted / "mix.wav").is_file()


def test_predict_graph_bad_input_is_a_clear_error(case, predictor_file, tmp_path, capsys):
    base = ["console", "predict-graph", "--tracks", str(case / "stems"), "--groups", str(case / "groups.json"),
            "--out", str(tmp_path / "o"), *FIT]
    assert cli.main([*base, "--buses", str(case / "stems"), "--predictor", str(predictor_file)]) == 2
    err = capsys.readouterr().err
    assert "one file per group" in err and "missing" in err
    damaged = tmp_path / "damaged.json"
    data = json.loads(predictor_file.read_text())
    data["threshold"][0] = 0.01
    damaged.write_text(json.dumps(data))
    assert cli.main([*base, "--buses", str(case / "buses"), "--predictor", str(damaged)]) == 2
    assert "content hash" in capsys.readouterr().err
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"all": ["drums", "piano"]}))
    assert cli.main([*base[:5], str(groups), *base[6:], "--buses", str(case / "buses"),
                     "--predictor", str(predictor_file)]) == 2
    message = capsys.readouterr().err
    assert f"{groups} names tracks that are not in" in message and "['piano']" in message, message
    assert not (tmp_path / "o").exists()  # nothing written on an error


def test_prune_from_the_predicted_graph(case, predictor_file, tmp_path, capsys):
    base = ["console", "prune", "--tracks", str(case / "stems"), "--mix", str(case / "mix.wav"),
            "--groups", str(case / "groups.json"), "--predictor", str(predictor_file), "--steps", "10",
            "--rounds", "1", "--finetune-steps", "3", *FIT]
    assert cli.main([*base, "--out", str(tmp_path / "a")]) == 2
    assert "--predictor needs the outputs" in capsys.readouterr().err
    assert cli.main([*base, "--buses", str(case / "buses"), "--out", str(tmp_path / "b")]) == 0
    report = json.loads((tmp_path / "b" / "pruning.json").read_text())
    assert report["predicted"]["removed"] == len(report["removed"]) - sum(
        t["accepted"] * len(t["candidates"]) for t in report["history"]["trials"])
    assert sum(report["full_counts"].values()) == 8


def test_prune_dataset_reads_each_songs_buses(case, predictor_file, tmp_path, capsys):
    songs = tmp_path / "songs"
    shutil.copytree(case, songs / "song_a")
    shutil.copytree(case, songs / "song_b")
    shutil.rmtree(songs / "song_b" / "buses")  # no buses: skipped and logged, the other song is pruned
    out = tmp_path / "pruned"
    assert cli.main(["console", "prune-dataset", "--songs", str(songs), "--out", str(out), "--predictor",
                     str(predictor_file), "--steps", "5", "--rounds", "1", "--finetune-steps", "2", *FIT]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["songs"] == 1 and "song_b: --predictor needs the outputs" in summary["failed"][0]
    assert "predicted" in json.loads((out / "song_a" / "pruning.json").read_text())


def test_train_graph_writes_a_predictor(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert cli.main(["console", "train-graph", "--out", str(out), "--songs", "12", "--cases", "4",
                     "--val-cases", "2", "--sample-rate", RATE, "--clip-seconds", "2", "--workers", "0",
                     "--no-progress"]) == 0
    assert "AUROC" in capsys.readouterr().out
    predictor = GraphPredictor.load(out)
    assert predictor.sample_rate == 8000 and predictor.training["cases"] == 4
    assert predictor.types == ("eq", "compressor", "noisegate", "imager", "gain_pan", "delay", "reverb")
    assert cli.main(["console", "train-graph", "--out", str(out), "--cases", "0"]) == 2
    assert "--cases must be at least 1" in capsys.readouterr().err
    assert cli.main(["console", "train-graph", "--out", str(out), "--source", "tape"]) == 2
    assert "--source 'tape'" in capsys.readouterr().err

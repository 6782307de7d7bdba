"""``mixrep console prune`` and ``prune-dataset``: outputs, resumability, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from mixrep import cli
from mixrep.audio.io import read_audio, write_audio
from mixrep.console import MixingConsole
from mixrep.styles.mix_style import MixStyle

RATE = "8000"
FAST = ["--sample-rate", RATE, "--chain", "eg", "--group-chain", "g", "--steps", "30", "--rounds", "1",
        "--finetune-steps", "5", "--crop-seconds", "0.75", "--warmup-seconds", "0.25",
        "--threads", "1", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    out = tmp_path_factory.mktemp("prune") / "case"
    assert cli.main(["console", "make-case", "--out", str(out), "--tracks", "2", "--seconds", "1.2",
                     "--sample-rate", RATE, "--chain", "eg", "--active-probability", "eq=0.5",
                     "--seed", "1"]) == 0
    return out


def test_prune_writes_graph_drawing_mix_and_history(case, tmp_path, capsys):
    out = tmp_path / "pruned"
    assert cli.main(["console", "prune", "--tracks", str(case / "stems"), "--mix", str(case / "mix.wav"),
                     "--groups", str(case / "groups.json"), "--true-parameters",
                     str(case / "true_parameters.json"), "--method", "brute-force", "--tolerance", "0.01",
                     "--out", str(out), *FAST]) == 0
    table = capsys.readouterr().out
    assert "| L_full | L_pruned | rho | rho gain_pan |" in table and "recall eq" in table
    for name in ("graph.json", "graph.style.json", "graph.png", "mix.wav", "pruning.png", "pruning.json", "state.pt"):
        assert (out / name).is_file(), name
    style = json.loads((out / "graph.style.json").read_text())  # the pruned graph in the style's settings
    assert sorted(MixStyle.from_dict(style["style"]).strips) == sorted(p.stem for p in (case / "stems").iterdir())
    assert set(style["conversion"]["eq_fit_error_db"]) <= set(style["style"]["strips"]) | {"master"}
    report = json.loads((out / "pruning.json").read_text())
    assert report["trials"] == len(report["history"]["trials"]) > 0
    assert set(report["recovery"]) == {"eq", "gain_pan"}
    console = MixingConsole.from_json(out / "graph.json")  # physical units round-trip
    assert console.graph.num_processors() == sum(report["counts"].values())
    assert not set(report["removed"]) & set(console.graph.node_names)
    stems = torch.stack([torch.from_numpy(read_audio(case / "stems" / f"{n}.wav", 8000))
                         for n in console.track_names])
    np.testing.assert_allclose(console.render_long(stems).numpy(), read_audio(out / "mix.wav", 8000),
                               atol=2e-4)


def test_prune_bad_input_is_a_clear_error(case, tmp_path, capsys):
    base = ["console", "prune", "--tracks", str(case / "stems"), "--out", str(tmp_path / "o"), *FAST]
    assert cli.main([*base, "--mix", str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav does not exist" in capsys.readouterr().err
    mix = read_audio(case / "mix.wav", 8000)
    write_audio(tmp_path / "long.wav", np.concatenate([mix, mix], -1), 8000)
    assert cli.main([*base, "--mix", str(tmp_path / "long.wav")]) == 2
    assert "must come from the same edit" in capsys.readouterr().err
    assert cli.main([*base, "--mix", str(case / "mix.wav"), "--crop-seconds", "5",
                     "--warmup-seconds", "1"]) == 2
    assert "shorter than one 5.0 s training crop" in capsys.readouterr().err
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"all": ["drums", "piano"]}))
    assert cli.main([*base, "--mix", str(case / "mix.wav"), "--groups", str(groups)]) == 2
    message = capsys.readouterr().err
    assert f"{groups} names tracks that are not in" in message and "['piano']" in message, message


def test_prune_resumes_only_its_own_run(case, tmp_path, capsys):
    out = tmp_path / "o"
    base = ["console", "prune", "--tracks", str(case / "stems"), "--mix", str(case / "mix.wav"),
            "--out", str(out)]
    fast = FAST.copy()
    fast[fast.index("--rounds") + 1] = "0"
    assert cli.main([*base, *fast]) == 0
    first = json.loads((out / "pruning.json").read_text())
    assert cli.main([*base, *fast]) == 0  # finished state: same result, no work
    assert json.loads((out / "pruning.json").read_text())["loss_full"] == first["loss_full"]
    other_rate = fast.copy()
    other_rate[other_rate.index("--sample-rate") + 1] = "16000"
    capsys.readouterr()
    assert cli.main([*base, *other_rate]) == 2
    err = capsys.readouterr().err
    assert "made by another run" in err and "sample rate" in err


def test_prune_dataset_collects_songs_skips_bad_ones_and_resumes(case, tmp_path, capsys):
    songs = tmp_path / "songs"
    shutil.copytree(case, songs / "case_song")  # make-case layout: stems/ + mix.wav + groups.json
    plain = songs / "plain_song"  # tracks beside the mix, no groups
    plain.mkdir()
    for f in (case / "stems").iterdir():
        shutil.copy(f, plain / f.name)
    shutil.copy(case / "mix.wav", plain / "mix.wav")
    broken = songs / "broken_song"
    broken.mkdir()
    (broken / "mix.wav").write_bytes(b"not audio")
    (broken / "drums.wav").write_bytes(b"not audio")
    (songs / "notes").mkdir()  # no mix: skipped
    out = tmp_path / "pruned"
    args = ["console", "prune-dataset", "--songs", str(songs), "--out", str(out), *FAST]
    assert cli.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["songs"] == 2 and [s["song"] for s in summary["per_song"]] == ["case_song", "plain_song"]
    assert len(summary["failed"]) == 1 and summary["failed"][0].startswith("broken_song")
    assert summary["skipped"] == ["notes: no mix.<ext> file"]
    assert summary["mean"]["pruning_ratio"] == pytest.approx(
        np.mean([s["pruning_ratio"] for s in summary["per_song"]]))
    assert "recall_eq" in summary["per_song"][0] and "recall_eq" not in summary["per_song"][1]
    assert "| mean |" in (out / "summary.md").read_text()
    for song in ("case_song", "plain_song"):
        assert (out / song / "graph.json").is_file() and (out / song / "mix.wav").is_file()
    assert summary["already_pruned"] == []
    stamp = (out / "case_song" / "pruning.json").stat().st_mtime_ns
    capsys.readouterr()
    assert cli.main(args) == 0  # finished songs are not pruned again
    assert (out / "case_song" / "pruning.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "summary.json").read_text())["already_pruned"] == ["case_song", "plain_song"]
    assert "(0 this run, 2 already pruned by an earlier run, 1 failed, 1 skipped)" in capsys.readouterr().out


def test_tracks_of_another_song_are_refused(case, tmp_path, capsys):
    other = tmp_path / "other"
    assert cli.main(["console", "make-case", "--out", str(other), "--tracks", "2", "--seconds", "1.2",
                     "--sample-rate", RATE, "--chain", "eg", "--seed", "2"]) == 0
    base = ["console", "prune", "--tracks", str(case / "stems"), "--mix", str(other / "mix.wav"),
            "--out", str(tmp_path / "o"), *FAST]
    assert cli.main(base) == 2
    err = capsys.readouterr().err
    assert "do not sum to anything near the mix" in err and "unfitted console's audio loss" in err
    assert not (tmp_path / "o").exists()
    assert cli.main([*base, "--no-match-check"]) == 0  # the user knows better: fitted anyway

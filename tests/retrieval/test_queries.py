"""``mixrep embed`` and ``mixrep search`` with several inputs: a bad one is skipped and reported."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from test_faults import run_cli, write_stems

from mixrep.audio.io import write_audio
from mixrep.cli import main as mixrep_main
from mixrep.datasets.registry import open_source
from mixrep.inference.style_encoder import StyleEncoder
from mixrep.retrieval.builder import build_library_index
from mixrep.retrieval.queries import embed_inputs


@pytest.fixture(scope="module")
def encoder(tiny_checkpoint) -> StyleEncoder:
    return StyleEncoder.from_checkpoint(tiny_checkpoint, device="cpu")


@pytest.fixture
def songs(tmp_path) -> dict[str, Path]:
    return {
        "a": write_stems(tmp_path / "songs" / "a", 2.0, 0),
        "b": write_stems(tmp_path / "songs" / "b", 2.0, 1),
        "c": write_stems(tmp_path / "songs" / "c", 2.0, 2),
        "incomplete": write_stems(tmp_path / "bad" / "incomplete", 2.0, 3, missing="bass"),
        "silent": write_stems(tmp_path / "bad" / "silent", 2.0, 4, level=0.0),
    }


def test_embed_skips_a_bad_input_reports_it_and_writes_the_rest(tiny_checkpoint, songs, tmp_path, capsys, caplog):
    out = tmp_path / "emb.npz"
    inputs = [songs["a"], songs["incomplete"], songs["silent"], songs["b"]]
    with caplog.at_level(logging.WARNING):
        code = mixrep_main(["embed", "--checkpoint", str(tiny_checkpoint), "--stems", *map(str, inputs),
                            "--out", str(out)])
    assert code == 1  # some inputs skipped
    captured = capsys.readouterr()
    assert f"skipped {songs['incomplete']}: invalid: stems folder {songs['incomplete']} has no bass file" in captured.err
    assert "wrote 3 embeddings" in captured.out and "1 inputs skipped" in captured.out
    data = np.load(out)
    assert data["paths"].tolist() == [str(songs["a"]), str(songs["silent"]), str(songs["b"])]
    assert data["silent"].tolist() == [False, True, False] and data["embeddings"].shape == (3, 16)
    assert f"{songs['silent']} is silent" in caplog.text


def test_embed_a_folder_without_stems_says_to_pass_stems(tiny_checkpoint, songs, tmp_path, capsys):
    code = mixrep_main(["embed", "--checkpoint", str(tiny_checkpoint), str(songs["a"]), "--out", str(tmp_path / "e.npz")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{songs['a']} is a folder, not an audio file" in err and "needs --stems" in err
    assert "does not exist" not in err and not (tmp_path / "e.npz").exists()


def test_search_skips_a_bad_query_reports_it_and_answers_the_rest(encoder, songs, tmp_path, monkeypatch, capsys):
    build_library_index(encoder, open_source("stems", songs["a"].parent, min_seconds=1.0), tmp_path / "idx",
                        progress=False)
    queries = [songs["a"], songs["incomplete"], tmp_path / "nowhere", songs["c"]]
    code = run_cli(["search", "--index", str(tmp_path / "idx"), "--checkpoint", "x", "--stems", "--json",
                    "--query", *map(str, queries), "-k", "2"], monkeypatch, encoder)
    assert code == 1
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert [r["query"] for r in results] == [str(q) for q in queries]
    assert [len(r["results"]) for r in results] == [2, 0, 0, 2]
    assert sorted(Path(h["path"]).name for h in results[0]["results"]) == ["b", "c"]  # never itself
    assert results[1]["error"].startswith("invalid: stems folder") and "does not exist" in results[2]["error"]
    assert f"skipped query {songs['incomplete']}" in captured.err
    # Every query bad: an error, exit code 2.
    assert run_cli(["search", "--index", str(tmp_path / "idx"), "--checkpoint", "x", "--stems",
                    "--query", str(songs["incomplete"])], monkeypatch, encoder) == 2


def test_stems_queries_pick_the_files_the_stems_source_indexes(encoder, tmp_path):
    # One rule (mixrep.files.pick_stem_files) for `embed/search --stems` and `index build --source stems`.
    folder = write_stems(tmp_path / "lib" / "song", 2.0, 0)
    write_audio(folder / "drums.flac", np.zeros((2, 44_100), np.float32), 22_050)  # lossless twin: wav wins
    (folder / "bass.wav").rename(folder / "Bass.WAV")  # names match ignoring case
    [query] = embed_inputs(encoder, [folder], True, "")
    [track] = open_source("stems", tmp_path / "lib", min_seconds=1.0).tracks()
    assert query.error is None and query.files == list(track.stem_paths)
    assert [p.name for p in query.files] == ["drums.wav", "Bass.WAV", "other.wav", "vocals.wav"]
    [refused] = embed_inputs(encoder, [folder / "drums.wav"], True, "")
    assert "is a file, not a folder of stems" in str(refused.error) and "without --stems" in str(refused.error)


def test_embed_writes_its_npz_atomically_with_the_name_np_savez_gives(tiny_checkpoint, songs, tmp_path, capsys):
    out = tmp_path / "emb"  # no .npz: np.savez's rule appends it
    assert mixrep_main(["embed", "--checkpoint", str(tiny_checkpoint), "--stems", str(songs["a"]),
                        "--out", str(out)]) == 0
    assert f"to {out}.npz" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(("emb", ".emb"))] == ["emb.npz"]
    assert np.load(f"{out}.npz")["embeddings"].shape == (1, 16)

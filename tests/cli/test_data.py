"""`mixrep corpus synth` and `mixrep data preview` end to end."""

from __future__ import annotations

import json

import numpy as np

from mixrep.audio.io import read_audio
from mixrep.cli import main
from mixrep.corpora.synthetic import SynthConfig, synthesize_song


def test_corpus_synth_writes_stem_folders_that_match_the_in_memory_corpus(tmp_path):
    out = tmp_path / "corpus"
    assert main(["corpus", "synth", "--out", str(out), "--songs", "3", "--song-seconds", "4", "--seed", "5"]) == 0
    metadata = json.loads((out / "metadata.json").read_text())
    songs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(songs) == 3 and metadata
    expected = synthesize_song(1, SynthConfig(num_songs=3, song_seconds=4.0, seed=5)).stems
    for k, stem in enumerate(("drums", "bass", "other", "vocals")):
        np.testing.assert_allclose(read_audio(songs[1] / f"{stem}.flac"), expected[k], atol=2 / 2**15)


def test_data_preview_prints_triplets_and_writes_pngs(tmp_path, capsys):
    out = tmp_path / "preview"
    assert main(["data", "preview", "--source", "synth", "--count", "2", "--clip-seconds", "2", "--n-mels", "32",
                 "--strategy", "same_chain", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("anchor    mel (8, 32, ") == 2 and "features (116,)" in printed
    pngs = sorted(out.glob("triplet_*.png"))
    assert [p.name for p in pngs] == ["triplet_0.png", "triplet_1.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000 for p in pngs)


def test_data_preview_on_a_missing_root_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "preview", "--source", "stems", "--root", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert str(tmp_path / "nope") in capsys.readouterr().err

"""``mixrep separate`` end to end, offline, with a tiny Demucs saved as a local weights file."""

from __future__ import annotations

import numpy as np
import pytest
from tests.separation.conftest import noise, offline_demucs, save_demucs_package, tiny_htdemucs

import mixrep.cli
from mixrep.audio.io import write_audio
from mixrep.separation.cache import StemCache


def test_separate_a_folder_skips_the_corrupt_file_and_resumes_without_work(tmp_path, capsys):
    root = tmp_path / "music"
    for k in range(3):
        write_audio(root / f"song{k}.wav", noise(8.5, seed=k), 44_100)
    (root / "broken.mp3").write_bytes(b"not audio at all" * 100)
    weights = save_demucs_package(tiny_htdemucs(), tmp_path / "weights" / "tiny.th")
    argv = ["separate", "--source", "folder", "--root", str(root), "--cache", str(tmp_path / "cache"),
            "--model", "tiny", "--weights", str(weights), "--device", "cpu"]

    assert mixrep.cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "3 tracks separated" in out and "0 already cached" in out and "1 skipped" in out
    cache = StemCache(tmp_path / "cache")
    entries = sorted(cache.root.glob("??/*.npy"))
    assert len(entries) == 3
    for entry in entries:
        stems = np.load(entry, mmap_mode="r")
        assert stems.shape == (4, 2, int(8.5 * 44_100)) and np.isfinite(stems).all() and np.abs(stems).max() > 0
    written = [e.stat().st_mtime_ns for e in entries]

    assert mixrep.cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "0 tracks separated" in out and "3 already cached" in out and "1 skipped" in out
    assert [e.stat().st_mtime_ns for e in entries] == written


def test_separate_without_weights_fails_once_with_advice_it_can_follow(tmp_path, monkeypatch, capsys):
    root = tmp_path / "music"
    for k in range(2):
        write_audio(root / f"song{k}.wav", noise(8.5, seed=k), 44_100)  # the folder source needs 8 s
    calls = offline_demucs(monkeypatch, tmp_path / "hub")
    assert mixrep.cli.main(["separate", "--source", "folder", "--root", str(root), "--cache", str(tmp_path / "c"),
                            "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert calls == ["htdemucs"]  # one attempt, not one per track
    assert "--weights PATH" in err and "python -m demucs -n htdemucs" in err
    assert "--source stems" not in err  # `separate` takes no such option


def test_separate_help_says_th_packages_are_pickles(capsys):
    with pytest.raises(SystemExit):
        mixrep.cli.main(["separate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "is a pickle, which can run code when loaded: use only files from trusted sources" in help_text
    assert "checksum" in help_text and "verified before anything is unpickled" in help_text

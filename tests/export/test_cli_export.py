"""``mixrep export settings | pedalboard | reaper`` end to end on a tiny song folder, and their refusals."""

from __future__ import annotations

import json

import numpy as np

from mixrep.audio.io import audio_info, read_audio
from mixrep.cli import main
from mixrep.constants import STEMS
from mixrep.datasets.song_folder import read_song
from mixrep.export.dawproject import read_dawproject
from mixrep.export.reaper import read_reaper_project
from mixrep.styles.mix_style import render_mix
from mixrep.styles.style_file import read_style_json
from tests.export.conftest import NAMES, RATE


def test_settings_then_pedalboard_then_reaper(song_folder, tmp_path, capsys):
    settings = tmp_path / "s.json"
    assert main(["export", "settings", "--tracks", str(song_folder), "--out", str(settings), "--seed", "4"]) == 0
    read = read_style_json(settings)
    assert read.sample_rate == RATE and set(read.names) == set(NAMES) and "seed 4" in read.source

    out = tmp_path / "out" / "mix.wav"
    assert main(["export", "pedalboard", "--settings", str(settings), "--tracks", str(song_folder), "--out", str(out),
                 "--stems-out", str(tmp_path / "stems")]) == 0
    song = read_song(song_folder)
    expected = render_mix(song.tracks, read.style, RATE, song.names, song.stems)
    np.testing.assert_array_equal(read_audio(out, RATE), expected.sum(axis=0))
    assert sorted(p.stem for p in (tmp_path / "stems").iterdir()) == sorted(STEMS)

    rpp = song_folder / "song.rpp"
    assert main(["export", "reaper", "--settings", str(settings), "--tracks", str(song_folder), "--out", str(rpp)]) == 0
    project = read_reaper_project(rpp)
    assert sorted(t.items[0] for t in project.tracks if t.items) == sorted(f"{n}.wav" for n in NAMES)
    assert f"wrote {rpp}" in capsys.readouterr().out

    daw = tmp_path / "song.dawproject"
    assert main(["export", "dawproject", "--settings", str(settings), "--tracks", str(song_folder),
                 "--out", str(daw)]) == 0
    assert sorted(t.name for t in read_dawproject(daw) if t.role == "regular") == sorted(NAMES)


def test_a_bad_settings_file_is_refused_before_reading_the_song(song_folder, tmp_path, capsys, monkeypatch):
    settings = tmp_path / "s.json"
    main(["export", "settings", "--tracks", str(song_folder), "--out", str(settings)])
    document = json.loads(settings.read_text())
    next(iter(document["style"]["strips"].values()))["pan"] = 7
    settings.write_text(json.dumps(document))
    import mixrep.datasets.song_folder as song_module
    monkeypatch.setattr(song_module, "read_song", lambda *a, **k: (_ for _ in ()).throw(AssertionError("read")))
    for target, out in (("pedalboard", "mix.wav"), ("reaper", "song.rpp")):
        code = main(["export", target, "--settings", str(settings), "--tracks", str(song_folder),
                     "--out", str(tmp_path / out)])
        assert code == 2
        err = capsys.readouterr().err
        assert f"settings file {settings}" in err and ".pan is 7, outside [-1, 1]" in err
        assert not (tmp_path / out).exists()


def test_an_unwritable_output_is_refused_before_reading_the_song(song_folder, tmp_path, capsys):
    settings = tmp_path / "s.json"
    main(["export", "settings", "--tracks", str(song_folder), "--out", str(settings)])
    (tmp_path / "file").write_text("x")
    code = main(["export", "reaper", "--settings", str(settings), "--tracks", str(song_folder),
                 "--out", str(tmp_path / "file" / "song.rpp")])
    assert code == 2 and "is a file, not a folder" in capsys.readouterr().err


def test_tracks_are_read_at_the_settings_files_rate(song_folder, tmp_path):
    settings = tmp_path / "s.json"
    main(["export", "settings", "--tracks", str(song_folder), "--out", str(settings)])
    document = json.loads(settings.read_text())
    document["sample_rate"] = 44_100
    settings.write_text(json.dumps(document))
    out = tmp_path / "mix.wav"
    assert main(["export", "pedalboard", "--settings", str(settings), "--tracks", str(song_folder),
                 "--out", str(out)]) == 0
    seconds, rate, _ = audio_info(out)
    assert rate == 44_100 and abs(seconds - 1.0) < 1e-3  # resampled to the file's rate


def test_audio_outputs_inside_the_tracks_folder_are_refused(song_folder, tmp_path, capsys):
    settings = tmp_path / "s.json"
    main(["export", "settings", "--tracks", str(song_folder), "--out", str(settings)])
    for extra in (["--out", str(song_folder / "mix.wav")],
                  ["--out", str(tmp_path / "mix.wav"), "--stems-out", str(song_folder)]):
        code = main(["export", "pedalboard", "--settings", str(settings), "--tracks", str(song_folder), *extra])
        assert code == 2 and "inside the tracks folder" in capsys.readouterr().err
    assert sorted(p.name for p in song_folder.iterdir()) == sorted(f"{n}.wav" for n in NAMES)

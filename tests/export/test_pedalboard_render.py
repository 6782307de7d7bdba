"""A settings file rendered with pedalboard: the files hold exactly render_mix's output, written all or none."""

from __future__ import annotations

import numpy as np
import pytest

from mixrep.audio.io import read_audio
from mixrep.constants import STEMS
from mixrep.errors import OutputError
from mixrep.export import pedalboard_render
from mixrep.export.pedalboard_render import render_style_files
from mixrep.styles.mix_style import render_mix
from mixrep.styles.style_file import StyleFileError, read_style_json, write_style_json
from tests.export.conftest import NAMES, RATE, STEM_CLASSES, full_style, song_audio


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / "s.json"
    write_style_json(path, full_style(), names=NAMES, stems=STEM_CLASSES, sample_rate=RATE)
    return read_style_json(path)


def test_the_written_mix_and_stems_are_render_mix_of_the_settings(settings, tmp_path):
    tracks = song_audio()
    written = render_style_files(settings, tracks, NAMES, STEM_CLASSES, RATE, tmp_path / "mix.wav", tmp_path / "stems")
    assert [p.name for p in written] == ["mix.wav", *(f"{s}.wav" for s in STEMS)]
    expected = render_mix(tracks, full_style(), RATE, NAMES, STEM_CLASSES)
    np.testing.assert_array_equal(read_audio(tmp_path / "mix.wav", RATE), expected.sum(axis=0))
    for stem, audio in zip(STEMS, expected):
        np.testing.assert_array_equal(read_audio(tmp_path / "stems" / f"{stem}.wav", RATE), audio)


def test_another_sample_rate_than_the_files_is_refused_before_rendering(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(pedalboard_render, "render_mix", lambda *a, **k: pytest.fail("rendered"))
    with pytest.raises(StyleFileError, match=f"made at {RATE} Hz; read the tracks at {RATE} Hz"):
        render_style_files(settings, song_audio(), NAMES, STEM_CLASSES, 44_100, tmp_path / "mix.wav")
    assert not (tmp_path / "mix.wav").exists()


def test_a_track_without_a_strip_is_named_before_rendering(tmp_path, monkeypatch):
    style = full_style()
    del style.strips["other"]
    monkeypatch.setattr(pedalboard_render, "render_mix", lambda *a, **k: pytest.fail("rendered"))
    with pytest.raises(StyleFileError, match=r"tracks\[2\] \('keys', stem 'other'\) has no strip"):
        render_style_files(style, song_audio(), NAMES, STEM_CLASSES, RATE, tmp_path / "mix.wav")


def test_an_unwritable_output_is_refused_before_rendering(settings, tmp_path, monkeypatch):
    (tmp_path / "stems").write_text("a file")
    monkeypatch.setattr(pedalboard_render, "render_mix", lambda *a, **k: pytest.fail("rendered"))
    with pytest.raises(OutputError, match="is a file, not a folder"):
        render_style_files(settings, song_audio(), NAMES, STEM_CLASSES, RATE, tmp_path / "mix.wav", tmp_path / "stems")


def test_a_failure_while_writing_leaves_no_file(settings, tmp_path, monkeypatch):
    calls = []

    def failing_write(path, audio, sample_rate):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(path, audio, sample_rate)

    original = pedalboard_render.write_audio
    monkeypatch.setattr(pedalboard_render, "write_audio", failing_write)
    with pytest.raises(OSError, match="disk full"):
        render_style_files(settings, song_audio(), NAMES, STEM_CLASSES, RATE, tmp_path / "mix.wav", tmp_path / "stems")
    assert not (tmp_path / "mix.wav").exists()
    assert list((tmp_path / "stems").iterdir()) == []

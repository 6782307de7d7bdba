"""FluidSynth rendering: pitch, note length, velocity, dry output, determinism, bad soundfonts."""

from __future__ import annotations

import numpy as np
import pytest

from mixrep.audio.fluidsynth import (
    MidiEvent,
    SoundFontSynth,
    check_soundfont,
    installed_soundfonts,
)
from mixrep.errors import DatasetError
from tests.sf2_fixture import write_sf2

fluidsynth = pytest.importorskip("fluidsynth", reason="pyfluidsynth / libfluidsynth3 not installed "
                                 "(apt-get install libfluidsynth3; pip install pyfluidsynth)")

RATE = 22_050


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    path = write_sf2(tmp_path_factory.mktemp("sf") / "test.sf2")
    with SoundFontSynth(path, RATE) as s:
        yield s


def peak_hz(x: np.ndarray) -> float:
    mono = x.mean(axis=0)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    return float(np.argmax(spectrum) * RATE / len(mono))


def note(key: int, on: float, off: float, velocity: int = 100, channel: int = 0) -> list[MidiEvent]:
    return [MidiEvent(on, "note_on", channel, key, velocity), MidiEvent(off, "note_off", channel, key)]


def test_notes_sound_at_their_pitch_for_their_length(synth):
    out = synth.render(note(81, 0.1, 0.6), 1.0, {0: (0, 33)})
    assert out.shape == (2, RATE) and out.dtype == np.float32
    assert peak_hz(out[:, int(0.15 * RATE): int(0.55 * RATE)]) == pytest.approx(880.0, abs=3.0)
    assert np.abs(out[:, : int(0.09 * RATE)]).max() == 0.0  # nothing before the note-on
    assert np.abs(out[:, int(0.75 * RATE):]).max() < 1e-3 * np.abs(out).max()  # released, and no reverb tail
    low = synth.render(note(57, 0.0, 0.5), 0.5, {0: (0, 33)})
    assert peak_hz(low) == pytest.approx(220.0, abs=3.0)


def test_velocity_sets_the_level_and_rendering_is_deterministic(synth):
    loud = synth.render(note(69, 0.0, 0.4, 127), 0.5, {0: (0, 0)})
    quiet = synth.render(note(69, 0.0, 0.4, 40), 0.5, {0: (0, 0)})
    assert np.abs(quiet).max() < 0.5 * np.abs(loud).max()
    synth.render(note(60, 0.0, 0.4), 0.5, {0: (0, 5)})  # something else in between
    np.testing.assert_array_equal(loud, synth.render(note(69, 0.0, 0.4, 127), 0.5, {0: (0, 0)}))


def test_drum_kits_and_missing_presets(synth):
    assert synth.available(128, [0, 8, 25]) == [0, 25]
    hits = synth.render(note(36, 0.0, 0.1, channel=9), 0.3, {9: (128, 25)})
    assert np.abs(hits).max() > 0.0
    with pytest.raises(DatasetError, match="no preset bank 128 program 8"):
        synth.render([], 0.1, {9: (128, 8)})


def test_bad_soundfont_paths_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        check_soundfont(tmp_path / "missing.sf2")
    with pytest.raises(DatasetError, match="is not a file"):
        check_soundfont(tmp_path)
    text = tmp_path / "notes.sf2"
    text.write_text("not a soundfont")
    with pytest.raises(DatasetError, match=r"notes\.sf2 is not a SoundFont"):
        SoundFontSynth(text, RATE)
    wave = tmp_path / "sound.sf2"
    wave.write_bytes(b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + b"\0" * 28)
    with pytest.raises(DatasetError, match="is not a SoundFont"):
        check_soundfont(wave)
    truncated = tmp_path / "truncated.sf2"
    truncated.write_bytes(write_sf2(tmp_path / "whole.sf2").read_bytes()[:200])
    with pytest.raises(DatasetError, match="could not load"):
        SoundFontSynth(truncated, RATE)


@pytest.mark.skipif(not installed_soundfonts(), reason="no system GM soundfont (apt-get install fluid-soundfont-gm)")
@pytest.mark.parametrize("path", installed_soundfonts() or [None])
def test_system_soundfonts_play_general_midi(path):
    with SoundFontSynth(path, RATE) as s:
        assert s.available(0, [0, 33, 73]) == [0, 33, 73] and s.has_preset(128, 0)
        piano = s.render(note(69, 0.0, 0.8), 1.0, {0: (0, 0)})
        assert peak_hz(piano[:, : int(0.8 * RATE)]) == pytest.approx(440.0, rel=0.02)
        kick = s.render(note(36, 0.0, 0.2, channel=9), 0.5, {9: (128, 0)})
        assert np.abs(kick).max() > 1e-3

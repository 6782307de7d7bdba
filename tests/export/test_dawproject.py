"""The DAWproject file: every setting written and read back, the audio inside, names that cannot break the XML."""

from __future__ import annotations

import math
import zipfile

import pytest

from mixrep.audio.io import write_audio
from mixrep.export.dawproject import DawProjectError, read_dawproject, write_dawproject
from mixrep.styles.mix_style import mix_levels
from tests.export.conftest import NAMES, RATE, STEM_CLASSES, full_style, song_audio

BANDS = {"low_shelf": "lowShelf", "high_shelf": "highShelf", "peak": "bell"}


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_every_setting_is_written_and_reads_back(song_folder):
    files = [song_folder / f"{n}.wav" for n in NAMES]
    path = write_dawproject(song_folder / "song.dawproject", full_style(), files, NAMES, STEM_CLASSES, RATE,
                            song_audio())
    style, levels = full_style(), mix_levels(song_audio(), full_style(), RATE, NAMES, STEM_CLASSES)
    tracks = {t.name: t for t in read_dawproject(path)}
    assert list(tracks) == ["Master", "Delay", "Reverb", "drums bus", "kick", "bass bus", "bass", "other bus", "keys",
                            "vocals bus", "vox"]
    with zipfile.ZipFile(path) as archive:
        for i, name in enumerate(NAMES):
            assert archive.read(f"audio/{i}_{name}.wav") == (song_folder / f"{name}.wav").read_bytes()
    for i, (name, stem) in enumerate(zip(NAMES, STEM_CLASSES)):
        strip, track = style.strip_for(name, stem), tracks[name]
        assert track.parent == f"{stem} bus" and tracks[track.parent].parent == "Master"
        assert close(track.volume_db, strip.fader_db) and close(track.pan, strip.pan)
        assert track.files == [f"audio/{i}_{name}.wav"]
        devices = list(track.devices)
        expected = ([("highPass", strip.highpass_hz, None, 1 / math.sqrt(2))] if strip.highpass_hz else []) + \
                   ([("lowPass", strip.lowpass_hz, None, 1 / math.sqrt(2))] if strip.lowpass_hz else []) + \
                   [(BANDS[b.kind], b.frequency_hz, b.gain_db, b.q) for b in strip.eq]
        if expected:
            assert devices.pop(0).bands == expected
        if strip.compressor:
            c, values = strip.compressor, devices.pop(0).values
            assert values == {"Threshold": levels.strip_input_db[i] + c.threshold_db, "Ratio": c.ratio,
                              "Attack": c.attack_ms / 1000, "Release": c.release_ms / 1000, "OutputGain": c.makeup_db}
        assert devices == []
        sends = [(bus, db) for bus, db in (("Delay", strip.delay_send_db), ("Reverb", strip.reverb_send_db))
                 if db is not None]
        assert [s[0] for s in track.sends] == [s[0] for s in sends]
        assert all(close(a[1], b[1]) for a, b in zip(track.sends, sends))
    assert tracks["Delay"].devices[0].values == {"Time": 0.25, "Feedback": 0.35, "Wet": 1.0, "Dry": 0.0}
    assert tracks["Reverb"].devices[0].values == {"room_size": 0.6, "damping": 0.4, "width": 0.9, "Wet": 1.0,
                                                  "Dry": 0.0}
    master = tracks["Master"]
    eq, comp, limiter = master.devices
    assert eq.bands == [(BANDS[b.kind], b.frequency_hz, b.gain_db, b.q) for b in style.master.eq]
    assert comp.values["Threshold"] == levels.master_input_db + style.master.compressor.threshold_db
    lim = style.master.limiter
    assert close(limiter.values["InputGain"], lim.ceiling_db + lim.drive_db - levels.limiter_input_peak_db)
    assert limiter.values["Threshold"] == lim.ceiling_db and limiter.values["Release"] == lim.release_ms / 1000
    assert close(master.volume_db, levels.loudness_gain_db)
    assert "kick: saturation 9.0 dB drive, stereo width 0.50" in master.comment


def test_names_cannot_break_the_xml_and_audio_can_stay_outside(tmp_path):
    names = ('kick"/><Track name="x', "bass\n<evil/>", "keys & 'co'", "vox]]>")
    files = [write_audio(tmp_path / f"t{i}.wav", t, RATE) for i, t in enumerate(song_audio())]
    path = write_dawproject(tmp_path / "s.dawproject", full_style(), files, names, STEM_CLASSES, RATE, song_audio(),
                            embed_audio=False)
    tracks = read_dawproject(path)
    assert [t.name for t in tracks if t.role == "regular"] == list(names)
    assert [t.files for t in tracks if t.role == "regular"] == [[str(f.resolve())] for f in files]
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["project.xml", "metadata.xml"]


def test_a_file_that_is_not_a_dawproject_is_named(tmp_path):
    path = tmp_path / "bad.dawproject"
    path.write_text("not a zip")
    with pytest.raises(DawProjectError, match=f"cannot read the DAWproject {path}"):
        read_dawproject(path)


def test_a_malformed_value_is_named(song_folder, tmp_path):
    files = [song_folder / f"{n}.wav" for n in NAMES]
    good = write_dawproject(tmp_path / "s.dawproject", full_style(), files, NAMES, STEM_CLASSES, RATE, song_audio(),
                            embed_audio=False)
    with zipfile.ZipFile(good) as archive:
        xml = archive.read("project.xml").decode().replace('unit="hertz" value="40.0"', 'unit="hertz" value="loud"')
    bad = tmp_path / "bad.dawproject"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("project.xml", xml)
    with pytest.raises(DawProjectError, match="malformed value"):
        read_dawproject(bad)

"""The REAPER project: every setting written and parsed back, REAPER's own plug-in states, safe names and paths."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import numpy as np
import pytest

from mixrep.audio.io import write_audio
from mixrep.export.reaper import (
    BUTTERWORTH_Q,
    read_reaper_project,
    write_reaper_project,
)
from mixrep.export.reaper_plugins import (
    PLUGINS,
    ReaCompSettings,
    octaves_to_q,
    q_to_octaves,
    reacomp_data,
    state_lines,
)
from mixrep.export.rpp_text import RppError, parse, quote, tokens
from mixrep.audio.primitives import butterworth, rms_db
from mixrep.styles.mix_style import equalise, integrated_loudness, mix_levels, render_mix
from tests.export.conftest import NAMES, RATE, STEM_CLASSES, full_style, song_audio

REL = 1e-5  # plug-in states hold f32 values; VOLPAN and AUXRECV are written with 10 digits


@pytest.fixture
def project(song_folder):
    files = [song_folder / f"{n}.wav" for n in NAMES]
    path = write_reaper_project(song_folder / "song.rpp", full_style(), files, NAMES, STEM_CLASSES, RATE, song_audio())
    return read_reaper_project(path)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-6)


def check_eq(fx, bands, highpass_hz=None, lowpass_hz=None):
    assert fx.plugin == "ReaEQ"
    expected = []
    if highpass_hz is not None:
        expected.append(("highpass", highpass_hz, 0.0, BUTTERWORTH_Q))
    if lowpass_hz is not None:
        expected.append(("lowpass", lowpass_hz, 0.0, BUTTERWORTH_Q))
    expected += [(b.kind, b.frequency_hz, b.gain_db, b.q) for b in bands]
    got = [(b.kind, b.frequency_hz, b.gain_db, octaves_to_q(b.octaves)) for b in fx.settings]
    assert [g[0] for g in got] == [e[0] for e in expected]
    for g, e in zip(got, expected):
        assert all(close(x, y) for x, y in zip(g[1:], e[1:])), (g, e)


def check_comp(fx, settings, input_db):
    assert fx.plugin == "ReaComp"
    c = fx.settings
    assert close(c.threshold_db, input_db + settings.threshold_db)
    assert close(c.ratio, settings.ratio) and close(c.attack_ms, settings.attack_ms)
    assert close(c.release_ms, settings.release_ms) and close(c.makeup_db, settings.makeup_db)
    assert c.rms_ms == 0.0  # peak detection, as the renderer's compressors


def test_every_setting_is_written_and_reads_back(project):
    style = full_style()
    levels = mix_levels(song_audio(), style, RATE, NAMES, STEM_CLASSES)
    names = [t.name for t in project.tracks]
    assert names == ["drums bus", "kick", "bass bus", "bass", "other bus", "keys", "vocals bus", "vox", "Delay",
                     "Reverb"]
    assert project.sample_rate == RATE
    for i, (name, stem) in enumerate(zip(NAMES, STEM_CLASSES)):
        index = names.index(name)
        track = project.tracks[index]
        strip = style.strip_for(name, stem)
        assert project.parent(index).name == f"{stem} bus" and project.tracks[index - 1].folder == 1
        assert track.folder == 2  # the only (so last) track of its folder
        assert close(track.volume_db, strip.fader_db) and close(track.pan, strip.pan)
        assert track.items == [f"{name}.wav"] and close(track.item_seconds[0], 1.0)
        fx = list(track.fx)
        if strip.eq or strip.highpass_hz or strip.lowpass_hz:
            check_eq(fx.pop(0), strip.eq, strip.highpass_hz, strip.lowpass_hz)
        if strip.compressor is not None:
            check_comp(fx.pop(0), strip.compressor, levels.strip_input_db[i])
        assert fx == []
    delay, reverb = project.track("Delay"), project.track("Reverb")
    expected_sends = {
        "Delay": [(names.index(n), style.strip_for(n, s).delay_send_db) for n, s in zip(NAMES, STEM_CLASSES)
                  if style.strip_for(n, s).delay_send_db is not None],
        "Reverb": [(names.index(n), style.strip_for(n, s).reverb_send_db) for n, s in zip(NAMES, STEM_CLASSES)
                   if style.strip_for(n, s).reverb_send_db is not None],
    }
    for bus in (delay, reverb):
        got = bus.receives
        assert [g[0] for g in got] == [e[0] for e in expected_sends[bus.name]]
        assert all(close(g[1], e[1]) for g, e in zip(got, expected_sends[bus.name]))
        assert bus.folder == 0 and close(bus.volume_db, 0.0)
    d = delay.fx[0].settings
    assert delay.fx[0].plugin == "ReaDelay" and close(d.length_ms, 250.0) and close(d.feedback, 0.35)
    assert close(d.wet_db, 0.0) and d.dry_db == -math.inf
    r = reverb.fx[0].settings
    assert reverb.fx[0].plugin == "ReaVerbate" and close(r.wet_db, 0.0) and r.dry_db == -math.inf
    assert close(r.room_size, 0.6) and close(r.damping, 0.4) and close(r.width, 0.9)
    eq, comp, limit = project.master_fx
    check_eq(eq, style.master.eq)
    check_comp(comp, style.master.compressor, levels.master_input_db)
    assert limit.plugin == "ReaLimit"
    assert close(limit.settings.threshold_db, levels.limiter_input_peak_db - style.master.limiter.drive_db)
    assert close(limit.settings.ceiling_db, style.master.limiter.ceiling_db)
    assert close(project.master_volume_db, levels.loudness_gain_db)
    assert any("kick: saturation 9.0 dB drive, stereo width 0.50" in line for line in project.notes)


def test_mix_levels_are_the_levels_the_relative_settings_refer_to():
    style, tracks = full_style(), song_audio()
    levels = mix_levels(tracks, style, RATE, NAMES, STEM_CLASSES)
    kick = style.strips["kick"]
    filtered = equalise(butterworth(tracks[0], RATE, kick.highpass_hz, kick.lowpass_hz), kick.eq, RATE)
    assert levels.strip_input_db[0] == rms_db(filtered)
    mix = render_mix(tracks, style, RATE, NAMES, STEM_CLASSES).sum(axis=0)
    assert math.isclose(integrated_loudness(mix, RATE), style.loudness_lufs, abs_tol=0.01)
    # the limiter leaves the peak at the ceiling, and the loudness gain comes after it
    peak_db = 20 * math.log10(np.abs(mix).max())
    assert math.isclose(peak_db - levels.loudness_gain_db, style.master.limiter.ceiling_db, abs_tol=0.05)


def test_q_and_octaves_follow_the_cookbook_formula():
    assert math.isclose(q_to_octaves(math.sqrt(2.0)), 1.0, rel_tol=1e-12)  # one octave is Q = sqrt 2
    assert math.isclose(q_to_octaves(BUTTERWORTH_Q), 1.8999686, rel_tol=1e-6)
    for q in (0.3, 0.7071, 1.0, 4.0, 20.0):
        assert math.isclose(octaves_to_q(q_to_octaves(q)), q, rel_tol=1e-12)


# REAPER 7's own saved state of a default ReaComp (threshold 0 dB, 4:1, 3 ms, 100 ms, RMS 5 ms) and the
# VST headers REAPER writes for each Cockos plug-in, as found in projects REAPER saved.
REAPER_REACOMP_DEFAULT = ("776t3g3wrd4AAIA/ED74PKabxDsK16M8AAAAAAAAAAAAAIA/AAAAAAAAAAAAAAAAnNEHMwAAgD8AAAAAzcxMPQAAAAAAAAAAAAAAAA"
                          "AAgD4AAAAAAAAAAAAAAAA=")
REAPER_HEADERS = {
    "ReaComp": ("bWNlcu9e7f4EAAAAAQAAAAAAAAACAAAAAAAAAAQAAAAAAAAACAAAAAAAAAACAAAAAQAAAAAAAAACAAAAAAAAAFwAAAAAAAAAAAAQAA==",
                92),
    "ReaEQ": ("cWVlcu5e7f4CAAAAAQAAAAAAAAACAAAAAAAAAAIAAAABAAAAAAAAAAIAAAAAAAAAzQAAAAEAAAAAABAA", 205),
    "ReaDelay": ("bGRlcu5e7f4CAAAAAQAAAAAAAAACAAAAAAAAAAIAAAABAAAAAAAAAAIAAAAAAAAATAAAAAEAAAAAABAA", 76),
    "ReaVerbate": ("OGJ2cu9e7f4CAAAAAQAAAAAAAAACAAAAAAAAAAIAAAABAAAAAAAAAAIAAAAAAAAAKAAAAAAAAAAAABAA", 40),
    "ReaLimit": ("dG1scu5e7f4CAAAAAQAAAAAAAAACAAAAAAAAAAIAAAABAAAAAAAAAAIAAAAAAAAAMAAAAAEAAAAAABAA", 48),
}


def test_reacomp_defaults_encode_to_reapers_own_default_state():
    data = reacomp_data(ReaCompSettings(0.0, 4.0, 3.0, 100.0, 0.0, rms_ms=5.0))
    assert data == base64.b64decode(REAPER_REACOMP_DEFAULT)


@pytest.mark.parametrize("name", sorted(REAPER_HEADERS))
def test_the_vst_header_is_the_one_reaper_writes(name):
    header, size = REAPER_HEADERS[name]
    lines = state_lines(PLUGINS[name], bytes(size))
    assert lines[0] == header and lines[-1] == "AAAQAAAA"
    assert all(len(line) <= 128 for line in lines)


@pytest.mark.parametrize("text", ['plain', 'two words', 'say "hi"', "it's \"x\"", "a`b'c\"d", ""])
def test_quoted_tokens_read_back_exactly_or_are_refused(text):
    try:
        token = quote(text)
    except RppError:
        assert all(mark in text for mark in "\"'`")
        return
    assert tokens(f"NAME {token} 1") == ["NAME", text, "1"]


def test_names_with_quotes_and_line_breaks_cannot_add_lines(tmp_path):
    names = ('kick"\n  >\n<TRACK\nNAME evil', "bass 'b' \"c\"", "a`b'c\"d", "vox\r\nISBUS 1 1")
    files = []
    for i, track in enumerate(song_audio()):
        files.append(write_audio(tmp_path / f"t{i}.wav", track, RATE))
    style = full_style()
    path = write_reaper_project(tmp_path / "song.rpp", style, files, names, STEM_CLASSES, RATE, song_audio())
    project = read_reaper_project(path)
    assert len(project.tracks) == 10
    got = [t.name for t in project.tracks if not t.name.endswith(" bus") and t.name not in ("Delay", "Reverb")]
    assert got == ['kick"   > <TRACK NAME evil', "bass 'b' \"c\"", "a'b'c\"d", "vox  ISBUS 1 1"]
    assert [t.folder for t in project.tracks[:8]] == [1, 2] * 4
    root = parse(path.read_text())
    assert len(root.blocks("TRACK")) == 10


def test_a_file_path_an_rpp_line_cannot_hold_is_refused_before_writing(tmp_path):
    bad = tmp_path / "evil\nname.wav"
    files = [write_audio(tmp_path / f"t{i}.wav", t, RATE) for i, t in enumerate(song_audio())]
    files[1] = write_audio(bad, song_audio()[1], RATE)
    with pytest.raises(RppError, match="control character"):
        write_reaper_project(tmp_path / "song.rpp", full_style(), files, NAMES, STEM_CLASSES, RATE, song_audio())
    assert not (tmp_path / "song.rpp").exists()


def test_paths_are_relative_under_the_project_folder_and_absolute_elsewhere(tmp_path, song_folder):
    files = [song_folder / f"{n}.wav" for n in NAMES]
    inside = write_reaper_project(song_folder / "p.rpp", full_style(), files, NAMES, STEM_CLASSES, RATE, song_audio())
    assert read_reaper_project(inside).track("kick").items == ["kick.wav"]
    outside = write_reaper_project(tmp_path / "other" / "p.rpp", full_style(), files, NAMES, STEM_CLASSES, RATE,
                                   song_audio())
    assert read_reaper_project(outside).track("kick").items == [str((song_folder / "kick.wav").resolve())]
    absolute = write_reaper_project(song_folder / "a.rpp", full_style(), files, NAMES, STEM_CLASSES, RATE,
                                    song_audio(), relative_paths=False)
    assert Path(read_reaper_project(absolute).track("kick").items[0]).is_absolute()


def test_a_broken_project_is_named(tmp_path):
    path = tmp_path / "bad.rpp"
    path.write_text("<REAPER_PROJECT 0.1\n  <TRACK\n    NAME \"x\n  >\n>\n")
    with pytest.raises(RppError, match=f"{path}: unclosed quote"):
        read_reaper_project(path)
    path.write_text("<REAPER_PROJECT 0.1\n  <TRACK\n")
    with pytest.raises(RppError, match="left open"):
        read_reaper_project(path)

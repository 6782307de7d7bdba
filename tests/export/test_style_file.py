"""The settings file: a round trip, and every field of an untrusted file checked with its path and a fix."""

from __future__ import annotations

import json
import math

import pytest

from mixrep.styles.style_file import (
    FORMAT,
    StyleFileError,
    fit_to_rate,
    read_style_json,
    sample_style_for_song,
    write_style_json,
)
from tests.export.conftest import NAMES, RATE, STEM_CLASSES, full_style


def write(tmp_path, style=None, **kwargs):
    path = tmp_path / "s.json"
    write_style_json(path, style or full_style(), names=kwargs.pop("names", NAMES),
                     stems=kwargs.pop("stems", STEM_CLASSES), sample_rate=kwargs.pop("sample_rate", RATE),
                     source="test")
    return path


def test_a_settings_file_reads_back_exactly_what_was_written(tmp_path):
    path = write(tmp_path)
    document = json.loads(path.read_text())
    assert (document["format"], document["version"], document["sample_rate"]) == (FORMAT, 1, RATE)
    read = read_style_json(path)
    assert read.style == full_style()
    assert (read.names, read.stems, read.sample_rate, read.source) == (NAMES, STEM_CLASSES, RATE, "test")


def test_stem_indices_are_written_as_stem_names(tmp_path):
    path = write(tmp_path, stems=(0, 1, 2, 3))
    assert read_style_json(path).stems == STEM_CLASSES


def edit(tmp_path, change):
    path = write(tmp_path)
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    return path


def strip(document, name="kick"):
    return document["style"]["strips"][name]


BAD_FIELDS = [
    (lambda d: strip(d)["compressor"].update(ratio=0.5), "style.strips.kick.compressor.ratio", ">= 1"),
    (lambda d: strip(d)["eq"][1].update(q=-1.0), "style.strips.kick.eq[1].q", "(0, 100]"),
    (lambda d: strip(d)["eq"][0].update(frequency_hz=20000.0), "style.strips.kick.eq[0].frequency_hz", "Nyquist"),
    (lambda d: strip(d)["eq"][2].update(kind="notch"), "style.strips.kick.eq[2].kind", "low_shelf"),
    (lambda d: strip(d).update(pan=1.5), "style.strips.kick.pan", "[-1, 1]"),
    (lambda d: strip(d).update(fader_db="loud"), "style.strips.kick.fader_db", "not a number"),
    (lambda d: strip(d).update(fader_db=True), "style.strips.kick.fader_db", "not a number"),
    (lambda d: strip(d).update(highpass_hz=0.0), "style.strips.kick.highpass_hz", "(0,"),
    (lambda d: strip(d).update(fadr_db=1.0), "style.strips.kick", "unknown field(s) ['fadr_db']"),
    (lambda d: strip(d)["compressor"].pop("attack_ms"), "style.strips.kick.compressor", "lacks ['attack_ms']"),
    (lambda d: d["style"]["delay"].update(feedback=1.0), "style.delay.feedback", "below 1"),
    (lambda d: d["style"]["reverb"].update(room_size=2.0), "style.reverb.room_size", "[0, 1]"),
    (lambda d: d["style"]["master"]["limiter"].update(ceiling_db=3.0), "style.master.limiter.ceiling_db", "dBFS"),
    (lambda d: d["style"].update(loudness_lufs=5.0), "style.loudness_lufs", "LUFS"),
    (lambda d: d["tracks"][2].update(stem="guitars"), "tracks[2].stem", "drums"),
    (lambda d: d["tracks"][3].update(name="kick"), "tracks", "repeats the name(s) ['kick']"),
    (lambda d: d["tracks"][0].update(name="a\nb"), "tracks[0].name", "control characters"),
    (lambda d: d["style"]["strips"].pop("vocals"), "tracks[3]", "add a strip named 'vox' or 'vocals'"),
    (lambda d: d.update(sample_rate=44100.5), "sample_rate", "whole number"),
    (lambda d: d.update(version=2), "version", "upgrade mixrep"),
    (lambda d: d.update(format="other"), "format", "mixrep settings file"),
    (lambda d: d.update(extra=1), "(top level)", "unknown field(s) ['extra']"),
]


@pytest.mark.parametrize("change,field,fix", BAD_FIELDS, ids=[f for _, f, _ in BAD_FIELDS])
def test_every_bad_field_is_named_with_its_path_and_a_fix(tmp_path, change, field, fix):
    path = edit(tmp_path, change)
    with pytest.raises(StyleFileError) as error:
        read_style_json(path)
    message = str(error.value)
    assert str(path) in message and f"{field} " in message and fix in message


def test_non_finite_numbers_are_refused(tmp_path):
    path = write(tmp_path)
    path.write_text(path.read_text().replace('"release_ms": 120.0', '"release_ms": NaN'))
    with pytest.raises(StyleFileError, match=r"style\.strips\.kick\.compressor\.release_ms is nan"):
        read_style_json(path)


@pytest.mark.parametrize("text,problem", [("{not json", "cannot be read as JSON"), ("[1, 2]", "format"),
                                          ("[" * 200_000, "cannot be read as JSON")])
def test_a_file_that_is_not_a_settings_file_is_refused(tmp_path, text, problem):
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(StyleFileError, match=problem):
        read_style_json(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(StyleFileError, match="does not exist.*mixrep export settings"):
        read_style_json(tmp_path / "none.json")


def test_writing_a_bad_style_leaves_the_old_file_untouched(tmp_path):
    path = write(tmp_path)
    before = path.read_bytes()
    bad = full_style()
    bad.strips["kick"] = bad.strips["kick"].__class__(pan=3.0)
    with pytest.raises(StyleFileError, match="style.strips.kick.pan"):
        write(tmp_path, bad)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_a_sampled_style_fits_the_rate_and_every_track_has_a_strip(tmp_path):
    style = sample_style_for_song(NAMES, STEM_CLASSES, 16_000, seed=3)
    for s in style.strips.values():
        assert all(b.frequency_hz < 8000 for b in s.eq)
        assert s.lowpass_hz is None or s.lowpass_hz < 8000
    assert style == sample_style_for_song(NAMES, STEM_CLASSES, 16_000, seed=3)
    path = write(tmp_path, style, sample_rate=16_000)
    assert read_style_json(path).style == style


def test_fit_to_rate_moves_only_frequencies_above_the_renderers_limits():
    style = full_style()
    fitted = fit_to_rate(style, 12_000)  # EQ limit 5400 Hz, cut-off limit 5700 Hz
    kick = fitted.strips["kick"]
    assert kick.eq[2].frequency_hz == 5400.0 and kick.lowpass_hz == 5700.0
    assert kick.eq[:2] == style.strips["kick"].eq[:2]
    assert fit_to_rate(style, 44_100) == style
    assert not math.isnan(kick.fader_db)

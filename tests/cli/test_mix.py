"""`mixrep mix`: what it reads and writes (issue 27's input/output faults, issue 33's output stage).

Checks that must run before any model is loaded are tested with a head path that does not exist:
they pass only if the refusal comes first.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from mixrep.audio.io import read_audio, write_audio
from mixrep.cli import main as mixrep_main

SR = 22050
NO_HEAD = "/nonexistent/head.ckpt"


def tone(seconds: float, hz: float, seed: int, sr: int = SR, stereo: bool = True, top_hz: float | None = None
         ) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.2 * np.sin(2 * np.pi * hz * t) * (1 + np.sin(2 * np.pi * 2 * t)) + 0.02 * rng.standard_normal(t.size)
    if top_hz is not None:
        x = x + 0.1 * np.sin(2 * np.pi * top_hz * t)
    x = x.astype(np.float32)
    return np.stack([x, 0.8 * x]) if stereo else x[None]


def make_song(root, sr: int = SR, seconds: float = 3.0, top_hz: float | None = None):
    tracks = root / "song"
    tracks.mkdir(parents=True)
    write_audio(tracks / "drums.wav", tone(seconds, 60, 0, sr, top_hz=top_hz), sr)
    write_audio(tracks / "bass.wav", tone(seconds, 110, 1, sr, stereo=False), sr)
    write_audio(tracks / "vox.wav", tone(seconds, 440, 2, sr, top_hz=top_hz), sr)
    reference = root / "reference"
    reference.mkdir()
    for i, stem in enumerate(("drums", "bass", "other", "vocals")):
        write_audio(reference / f"{stem}.wav", tone(2.5, 80 * (i + 1), 10 + i) * (0.5 + 0.2 * i), SR)
    return tracks, reference


def mix_args(tracks, reference, head, out, *extra) -> list[str]:
    return ["mix", "--tracks", str(tracks), "--reference-stems", str(reference), "--head", str(head),
            "--out", str(out), *extra]


def listing(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------- item 3: outputs among the inputs

def test_an_output_on_an_input_or_inside_the_tracks_folder_is_refused_before_any_work(tmp_path, capsys):
    tracks, reference = make_song(tmp_path)
    before = listing(tracks)
    for out, extra in ((tracks / "drums.wav", ()), (tracks / "drums.wav", ("--force",)), (tracks / "mix.wav", ()),
                       (reference / "vocals.wav", ("--force",)), (tmp_path / "o.wav", ("--params-out", str(tracks / "vox.wav")))):
        assert mixrep_main(mix_args(tracks, reference, NO_HEAD, out, *extra)) == 2
        message = capsys.readouterr().err
        assert "is an input" in message or "inside the tracks folder" in message, message
    assert listing(tracks) == before  # the raw drums.wav is untouched, no drums.json / drums.png added


def test_force_allows_an_output_inside_the_tracks_folder(tiny_head, tmp_path):
    tracks, reference = make_song(tmp_path)
    assert mixrep_main(mix_args(tracks, reference, tiny_head, tracks / "mix.wav", "--force")) == 0
    assert read_audio(tracks / "mix.wav", SR).shape == (2, 3 * SR)


# ----------------------------------------------------------------------------- item 5: all outputs or none

def test_unwritable_output_locations_are_refused_before_any_work(tmp_path, capsys):
    tracks, reference = make_song(tmp_path)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    m = str(tmp_path / "m.wav")
    for extra, expected in ((("--out", str(blocker / "mix.wav")), f"{blocker} is a file"),
                            (("--out", m, "--params-out", str(blocker / "x.json")), f"{blocker} is a file"),
                            (("--out", m, "--figure", str(blocker / "sub" / "x.png")), f"{blocker} is a file"),
                            (("--out", str(tmp_path / "m.xyz")), "cannot write .xyz"),
                            (("--out", str(tmp_path)), "is a folder"),
                            (("--out", m, "--params-out", m), "are both")):
        args = ["mix", "--tracks", str(tracks), "--reference-stems", str(reference), "--head", NO_HEAD, *extra]
        assert mixrep_main(args) == 2
        message = capsys.readouterr().err
        assert expected in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "reference", "song"]


def test_a_read_only_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    """Tests run as root, where chmod does not stop a write: the probe's file creation is made to fail."""
    import mixrep.files as files
    from mixrep.errors import OutputError

    def read_only(folder, prefix, suffix):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files, "_create_temp", read_only)
    with pytest.raises(OutputError, match=f"cannot write --out {tmp_path / 'ro' / 'mix.wav'}: {tmp_path} is not writable"):
        files.check_output_file(tmp_path / "ro" / "mix.wav", "--out")


def test_a_write_failing_midway_leaves_nothing_behind(tiny_head, tmp_path, monkeypatch, capsys):
    import mixrep.inference.outputs as outputs

    tracks, reference = make_song(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "mix.json").write_text("old settings")  # an old output survives a failed run

    def failing_plot(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "plot_transfer", failing_plot)
    assert mixrep_main(mix_args(tracks, reference, tiny_head, out_dir / "mix.wav")) == 2
    assert "none of" in capsys.readouterr().err
    assert listing(out_dir) == {"mix.json": b"old settings"}  # no mix.wav, no temporary files


def test_staged_files_publish_all_or_restore_every_old_file(tmp_path, monkeypatch):
    import os

    from mixrep.files import StagedFiles

    (tmp_path / "b.txt").write_text("old b")
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if str(dst).endswith("c.txt"):
            raise PermissionError(13, "denied")
        return real_replace(src, dst)

    with StagedFiles() as staged:
        for name in ("a.txt", "b.txt", "c.txt"):
            staged.write_text(tmp_path / name, f"new {name}")
        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(PermissionError):
            staged.commit()
        monkeypatch.setattr(os, "replace", real_replace)
    assert listing(tmp_path) == {"b.txt": b"old b"}
    with StagedFiles() as staged:
        for name in ("a.txt", "b.txt"):
            staged.write_text(tmp_path / name, f"new {name}")
        staged.commit()
    assert listing(tmp_path) == {"a.txt": b"new a.txt", "b.txt": b"new b.txt"}


# ----------------------------------------------------------------------------- item 4: silent references

@pytest.mark.parametrize("level", [0.0, 10 ** (-90 / 20)])
def test_a_silent_or_near_silent_reference_is_refused_and_nothing_is_written(tiny_head, tmp_path, capsys, level):
    tracks, reference = make_song(tmp_path)
    for stem in ("drums", "bass", "other", "vocals"):
        write_audio(reference / f"{stem}.wav", tone(2.5, 100, 0) / 0.25 * level, SR)
    out = tmp_path / "out" / "mix.wav"
    assert mixrep_main(mix_args(tracks, reference, tiny_head, out)) == 2
    message = capsys.readouterr().err
    assert "silent" in message and str(reference) in message, message
    assert not (tmp_path / "out").exists()


def test_loudness_matching_never_boosts_beyond_its_bound_and_the_ceiling_applies_after_it():
    from mixrep.audio.meters import chunked_loudness, true_peak_db
    from mixrep.inference.output_stage import MAX_LOUDNESS_BOOST_DB, finish_levels

    quiet = tone(3.0, 300, 0) * 1e-2  # about -45 LUFS
    before = chunked_loudness(quiet, SR)
    mix = quiet.copy()
    levels = finish_levels(mix, SR, target_lufs=0.0, ceiling_db=-1.0)
    assert levels.loudness_gain_db == MAX_LOUDNESS_BOOST_DB
    assert chunked_loudness(mix, SR) == pytest.approx(before + MAX_LOUDNESS_BOOST_DB, abs=0.01)
    loud = tone(3.0, 300, 0)
    levels = finish_levels(loud, SR, target_lufs=0.0, ceiling_db=-1.0)  # +18 dB: over the ceiling
    assert levels.ceiling_gain_db < -5 and true_peak_db(loud, SR) <= -1.0 + 0.01
    assert levels.true_peak_db == pytest.approx(true_peak_db(loud, SR), abs=0.01)


# ----------------------------------------------------------------------------- issue 33: the true-peak ceiling

def test_a_loud_reference_style_gives_a_mix_under_the_true_peak_ceiling(tiny_head, tmp_path):
    from mixrep.audio.meters import true_peak_db

    tracks, reference = make_song(tmp_path)
    for i, stem in enumerate(("drums", "bass", "other", "vocals")):  # a very loud reference (about -3 LUFS)
        write_audio(reference / f"{stem}.wav", np.clip(tone(2.5, 80 * (i + 1), 10 + i) * 4, -1, 1), SR)
    out = tmp_path / "mix.wav"
    assert mixrep_main(mix_args(tracks, reference, tiny_head, out)) == 0
    written = read_audio(out, SR)
    assert true_peak_db(written, SR) <= -1.0 + 0.1
    output = json.loads(out.with_suffix(".json").read_text())["output"]
    assert output["sample_rate"] == SR and output["ceiling_db"] == -1.0
    assert output["ceiling_gain_db"] < 0 and output["true_peak_db"] == pytest.approx(true_peak_db(written, SR), abs=0.05)
    assert mixrep_main(mix_args(tracks, reference, tiny_head, out, "--true-peak-db", "-6")) == 0
    assert true_peak_db(read_audio(out, SR), SR) <= -6.0 + 0.1


# ----------------------------------------------------------------------------- item 6: one groups.json schema

def test_groups_name_stem_classes_or_buses_and_the_track_to_class_form_gets_the_converted_file(tmp_path, capsys):
    from mixrep.datasets.song_folder import read_song
    from mixrep.errors import DatasetError

    tracks, reference = make_song(tmp_path)
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"drums": ["drums"], "bass": ["bass.wav"], "other": ["vox"]}))
    assert read_song(tracks, groups).stems == ["bass", "drums", "other"]
    assert read_song(tracks, groups).groups == {"drums": ["drums"], "bass": ["bass"], "other": ["vox"]}
    shutil.copy(groups, tracks / "groups.json")  # the same file inside the tracks folder
    assert read_song(tracks).stems == ["bass", "drums", "other"]
    (tracks / "groups.json").unlink()
    assert read_song(tracks).stems == ["bass", "drums", "vocals"]  # by name: vox -> vocals

    groups.write_text(json.dumps({"drums": "drums", "vox.wav": "other"}))  # the {track: class} form
    assert mixrep_main(mix_args(tracks, reference, NO_HEAD, tmp_path / "m.wav", "--groups", str(groups))) == 2
    message = capsys.readouterr().err
    assert "maps tracks to groups" in message and '{"drums": ["drums"], "other": ["vox.wav"]}' in message, message
    groups.write_text(json.dumps({"drums": ["drums"], "other": ["drums"]}))
    with pytest.raises(DatasetError, match="both drums and other"):
        read_song(tracks, groups)
    groups.write_text(json.dumps({"drums": ["kick"]}))
    with pytest.raises(DatasetError, match=r"names tracks that are not in .*\['kick'\]"):
        read_song(tracks, groups)


def test_mix_accepts_the_groups_file_make_case_writes(tiny_head, tmp_path):
    from mixrep.datasets.song_folder import read_song

    case = tmp_path / "case"
    assert mixrep_main(["console", "make-case", "--out", str(case), "--tracks", "4", "--seconds", "2",
                        "--sample-rate", "22050"]) == 0
    made = json.loads((case / "groups.json").read_text())
    assert made == {"rhythm": ["drums", "bass"], "music": ["other", "vocals"]}  # console buses, not classes
    song = read_song(case / "stems", case / "groups.json")
    assert song.groups == made and song.stems == ["bass", "drums", "other", "vocals"]  # classed by name
    reference = make_song(tmp_path / "ref")[1]
    out = tmp_path / "mixed.wav"
    assert mixrep_main(mix_args(case / "stems", reference, tiny_head, out, "--groups", str(case / "groups.json"))) == 0
    assert read_audio(out, SR).shape[-1] == song.tracks.shape[-1]


def test_tracks_off_in_length_by_more_than_the_tolerance_are_refused_naming_the_files(tmp_path, capsys):
    from mixrep.audio.multitrack_files import LENGTH_TOLERANCE_SECONDS

    tracks, reference = make_song(tmp_path)
    write_audio(tracks / "bass.wav", tone(3.0 - 2 * LENGTH_TOLERANCE_SECONDS, 110, 1), SR)
    assert mixrep_main(mix_args(tracks, reference, NO_HEAD, tmp_path / "m.wav")) == 2
    message = capsys.readouterr().err
    assert "differ in length" in message and "bass.wav" in message, message
    write_audio(tracks / "bass.wav", tone(3.0 - LENGTH_TOLERANCE_SECONDS / 2, 110, 1), SR)  # within: read
    assert mixrep_main(mix_args(tracks, reference, NO_HEAD, tmp_path / "m.wav")) == 2
    assert "differ in length" not in capsys.readouterr().err  # it got as far as the missing head


# ----------------------------------------------------------------------------- item 11: messages

def test_bad_track_and_reference_files_are_named_with_a_remedy(tmp_path, capsys):
    tracks, reference = make_song(tmp_path)
    write_audio(tracks / "pad.wav", np.zeros((6, 3 * SR), np.float32), SR)
    assert mixrep_main(mix_args(tracks, reference, NO_HEAD, tmp_path / "m.wav")) == 2
    message = capsys.readouterr().err
    assert "pad.wav has 6 channels" in message and "downmix" in message, message
    (tracks / "pad.wav").unlink()

    short = tmp_path / "short"
    shutil.copytree(reference, short)
    write_audio(short / "bass.wav", tone(0.5, 100, 0), SR)
    assert mixrep_main(mix_args(tracks, short, NO_HEAD, tmp_path / "m.wav")) == 2
    message = capsys.readouterr().err
    assert str(short / "bass.wav") in message and "at least" in message, message

    empty = tmp_path / "empty"
    empty.mkdir()
    assert mixrep_main(mix_args(empty, reference, NO_HEAD, tmp_path / "m.wav")) == 2
    message = capsys.readouterr().err
    assert "one song's tracks as files in one folder" in message and "<song>/" not in message, message


def test_a_track_with_a_huge_sample_is_called_corrupt_not_silent(tmp_path, capsys, caplog):
    tracks, reference = make_song(tmp_path)
    broken = tone(3.0, 300, 5)
    broken[0, SR] = 1e30
    write_audio(tracks / "vox.wav", broken, SR)
    assert mixrep_main(mix_args(tracks, reference, NO_HEAD, tmp_path / "m.wav")) == 2
    message = capsys.readouterr().err
    assert "vox.wav" in message and "corrupt" in message and "+600 dBFS" in message, message
    assert "silent" not in caplog.text


def test_the_api_refuses_a_huge_sample_naming_the_track(tiny_head):
    from mixrep.inference import StyleTransfer

    transfer = StyleTransfer.from_checkpoint(tiny_head)
    raw = np.stack([tone(2.0, 100, 0), tone(2.0, 200, 1)])
    raw[1, 0, 7] = 1e30
    with pytest.raises(ValueError, match="pad has a sample"):
        transfer.mix(raw, np.stack([tone(2.0, 100 * (i + 1), i) for i in range(4)]), names=["kick", "pad"])


# ----------------------------------------------------------------------------- item 9: the tracks' own rate

def _band_share_db(audio: np.ndarray, sr: int, low_hz: float) -> float:
    """Energy above ``low_hz`` relative to the whole signal's, dB."""
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64), axis=-1)) ** 2
    freqs = np.fft.rfftfreq(audio.shape[-1], 1.0 / sr)
    return 10 * math.log10(spectrum[..., freqs >= low_hz].sum() / spectrum.sum())


@pytest.mark.parametrize("sr", [44100, 96000])
def test_a_high_rate_song_is_mixed_at_its_rate_with_its_top_octave(tiny_head, tmp_path, sr):
    tracks, reference = make_song(tmp_path, sr=sr, seconds=2.0, top_hz=15000)
    out = tmp_path / "mix.wav"
    assert mixrep_main(mix_args(tracks, reference, tiny_head, out)) == 0
    from mixrep.audio.io import audio_info

    assert audio_info(out)[1] == sr
    mix = read_audio(out, sr)
    raw = sum(read_audio(p, sr) for p in tracks.iterdir())
    assert mix.shape == raw.shape
    # the raw sum has its 15 kHz tones about 12 dB under the whole; the mix keeps them within 15 dB of that
    # (the head's EQs shape them); a mix rendered at 22.05 kHz has nothing above 11.025 kHz
    assert _band_share_db(mix, sr, 11_500) > _band_share_db(raw, sr, 11_500) - 15 > -40
    settings = json.loads(out.with_suffix(".json").read_text())
    assert settings["output"]["sample_rate"] == sr


def test_an_8_khz_song_is_written_at_8_khz(tiny_head, tmp_path):
    from mixrep.audio.io import audio_info

    tracks, reference = make_song(tmp_path, sr=8000, seconds=2.0)
    out = tmp_path / "mix.flac"
    assert mixrep_main(mix_args(tracks, reference, tiny_head, out)) == 0
    assert audio_info(out)[1] == 8000 and read_audio(out, 8000).shape == (2, 16000)


# ----------------------------------------------------------------------------- item 10: bounded stages

def test_the_song_is_rendered_chunk_by_chunk_and_the_head_sees_a_bounded_excerpt(tiny_head):
    import torch

    from mixrep.console.render import dependency_span
    from mixrep.inference import StyleTransfer
    from mixrep.console.spec import level_gains
    from mixrep.inference.output_stage import analysis_excerpt, render_song, track_rms

    transfer = StyleTransfer.from_checkpoint(tiny_head)
    raw = np.stack([tone(12.0, 100, 0), tone(12.0, 200, 1)])
    gains = level_gains(track_rms(raw))
    excerpt = analysis_excerpt(raw, gains, SR, SR, seconds=4.0)
    assert excerpt.shape == (2, 2, 4 * SR)
    torch.testing.assert_close(excerpt, torch.from_numpy(raw[..., 4 * SR: 8 * SR]) * torch.from_numpy(
        gains.astype(np.float32))[:, None, None])
    embedding = transfer.reference_embedding(np.stack([tone(2.0, 100 * (i + 1), i) for i in range(4)]), SR)
    console = transfer.predict(excerpt, ["kick", "pad"], ["drums", "other"], embedding)
    history, lookahead = dependency_span(console.graph, dict(console.processors))
    seen = []
    render = console.render
    console.render = lambda x, *a, **k: seen.append(x.shape[-1]) or render(x, *a, **k)
    chunk = max(SR, history + lookahead)
    mixed = render_song(console, raw, gains, chunk_samples=chunk)
    assert len(seen) > 1 and max(seen) <= chunk + history + lookahead < raw.shape[-1] + 1
    console.render = render
    whole = console.render_long(torch.from_numpy(raw) * torch.from_numpy(gains.astype(np.float32))[:, None, None],
                                chunk_seconds=100.0)
    np.testing.assert_allclose(mixed, whole.numpy(), atol=1e-5)


# ----------------------------------------------------------------------------- issue 29: one settings format, exports

def test_mix_writes_its_settings_in_the_one_format_and_exports_them(tiny_head, tmp_path, capsys):
    from mixrep.datasets.song_folder import read_song
    from mixrep.export.dawproject import read_dawproject
    from mixrep.export.reaper import read_reaper_project
    from mixrep.styles.mix_style import render_mix
    from mixrep.styles.style_file import read_style_json

    tracks, reference = make_song(tmp_path)
    out = tmp_path / "out" / "mix.wav"
    assert mixrep_main(mix_args(tracks, reference, tiny_head, out, "--export", "pedalboard,reaper,dawproject")) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out.with_suffix('.pedalboard.wav')} (multi-resolution STFT distance to the mix" in printed
    report = json.loads(out.with_suffix(".json").read_text())
    settings = read_style_json(out.with_suffix(".style.json"))  # the one format, checked as untrusted input
    assert settings.names == ("bass", "drums", "vox") and settings.sample_rate == SR
    assert report["style"] == json.loads(json.dumps(settings.style.to_dict()))  # tuples read back as lists
    assert np.mean([settings.style.strips[n].fader_db for n in settings.names]) == pytest.approx(0.0, abs=1e-6)
    assert isinstance(report["conversion"], dict)
    # the pedalboard file is the settings file rendered on the raw tracks (a user can redo it)
    song = read_song(tracks)
    assert song.names == list(settings.names)
    again = render_mix(song.tracks, settings.style, SR, song.names, song.stems).sum(axis=0)
    written = read_audio(out.with_suffix(".pedalboard.wav"), SR)
    np.testing.assert_allclose(written, again, atol=1e-4)
    pedalboard = report["exports"]["pedalboard"]
    assert 0 <= pedalboard["stft_distance_to_mix"] and 0 <= pedalboard["raw_sum_stft_distance_to_mix"]
    project = read_reaper_project(out.with_suffix(".rpp"))
    for name in settings.names:
        strip = settings.style.strips[name]
        track = project.track(name)
        assert track.volume_db == pytest.approx(strip.fader_db, abs=0.01)
        assert track.items and (out.parent / track.items[0]).resolve() == (tracks / f"{name}.wav").resolve()
    assert {t.name for t in read_dawproject(out.with_suffix(".dawproject"))} >= set(settings.names)
    # the listening page finds the pedalboard render and the settings file beside the mix by default
    page = tmp_path / "page.html"
    assert mixrep_main(["report", "mix", "--out", str(out), "--tracks", str(tracks), "--reference-stems",
                        str(reference), "--html", str(page)]) == 0
    html = page.read_text()
    assert html.count("<audio") == 4 and "pedalboard render" in html
    assert str(out.with_suffix(".style.json")) in html and "mixrep.mix_style" in html


def test_an_unknown_export_is_refused_before_any_work(tmp_path, capsys):
    tracks, reference = make_song(tmp_path)
    assert mixrep_main(mix_args(tracks, reference, NO_HEAD, tmp_path / "mix.wav", "--export", "pedalboard,logic")) == 2
    assert "--export 'pedalboard,logic': unknown logic; use a comma-separated list of pedalboard, reaper, dawproject" \
        in capsys.readouterr().err
    assert not (tmp_path / "mix.wav").exists()

"""Multitrack readers on small fixtures written in each dataset's real layout (short audio)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml

from mixrep.audio.io import write_audio
from mixrep.audio.multitrack import MultitrackSource
from mixrep.constants import STEMS
from mixrep.datasets.multitrack_sources import MedleyDBSource, MoisesDBSource, SlakhSource
from mixrep.datasets.song_folder import TrackFolderSource, stem_from_name
from mixrep.errors import DatasetError

RATE = 16_000
SECONDS = 1.0
OPTIONS = {"sample_rate": RATE, "min_seconds": 0.5}


def tone(frequency_hz: float, seconds: float = SECONDS, rate: int = RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    x = (0.2 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
    return np.stack([x] * channels)


def write(path: Path, frequency_hz: float, **kwargs) -> Path:
    rate = kwargs.get("rate", RATE)
    return write_audio(path, tone(frequency_hz, **kwargs), rate)


def frequency_of(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x.mean(axis=0)))
    return float(np.argmax(spectrum) * RATE / x.shape[-1])


def check_reads(source: MultitrackSource, song_id: str, expected: dict[str, tuple[str, float]]) -> None:
    """The song's tracks are ``{name: (stem, frequency)}`` and sum into the right stems."""
    assert isinstance(source, MultitrackSource)
    track = next(t for t in source.tracks() if t.track_id == song_id)
    song = source.multitrack(track)
    assert dict(zip(song.names, song.stems)) == {name: stem for name, (stem, _) in expected.items()}
    tracks = source.read_tracks(track, 0.25, 0.5)
    assert tracks.shape == (len(expected), 2, RATE // 2) and tracks.dtype == np.float32
    for audio, name in zip(tracks, song.names):
        assert frequency_of(audio) == pytest.approx(expected[name][1], abs=4.0), name
    stems = source.read_stems(track, 0.25, 0.5)
    assert stems.shape == (4, 2, RATE // 2)
    for k, stem in enumerate(STEMS):
        members = [i for i, s in enumerate(song.stems) if s == stem]
        np.testing.assert_allclose(stems[k], tracks[members].sum(axis=0) if members else 0.0, atol=1e-6)


# ----------------------------------------------------------------------------- Slakh2100


def slakh_song(folder: Path, stems: dict[str, dict], rates: dict[str, int] | None = None) -> None:
    metadata = {"UUID": folder.name, "audio_dir": "stems", "lmd_midi_dir": "lmd/x.mid", "midi_dir": "MIDI",
                "normalization_factor": -13.0, "normalized": True, "overall_gain": 0.2, "target_peak": -1.0,
                "stems": {}}
    for index, (key, entry) in enumerate(stems.items()):
        metadata["stems"][key] = {"audio_rendered": True, "integrated_loudness": -20.0, "is_drum": False,
                                  "midi_saved": True, "plugin_name": "x.nkm", **entry}
        if metadata["stems"][key]["audio_rendered"]:
            write(folder / "stems" / f"{key}.flac", 200.0 + 100 * index, rate=(rates or {}).get(key, RATE))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.yaml").write_text(yaml.safe_dump(metadata))
    write(folder / "mix.flac", 100.0)


@pytest.fixture
def slakh_root(tmp_path: Path) -> Path:
    root = tmp_path / "slakh2100_flac_redux"
    slakh_song(root / "train" / "Track00001", {
        "S00": {"inst_class": "Bass", "program_num": 33, "midi_program_name": "Electric Bass (finger)"},
        "S01": {"inst_class": "Drums", "is_drum": True, "program_num": 0, "midi_program_name": "Drums"},
        "S02": {"inst_class": "Piano", "program_num": 0, "midi_program_name": "Acoustic Grand Piano"},
        "S03": {"inst_class": "Guitar", "program_num": 27, "audio_rendered": False, "midi_saved": False},
    })
    slakh_song(root / "validation" / "Track00002", {
        "S00": {"inst_class": "Synth Lead", "program_num": 81, "midi_program_name": "Lead 2 (sawtooth)"},
        "S01": {"inst_class": "Kazoo Orchestra", "program_num": 120, "midi_program_name": "Kazoo"},
    })
    slakh_song(root / "omitted" / "Track00003", {"S00": {"inst_class": "Bass", "program_num": 33}})
    slakh_song(root / "test" / "Track00004", {"S00": {"inst_class": "Bass", "program_num": 33},
                                              "S01": {"inst_class": "Piano", "program_num": 0}},
               rates={"S01": 22_050})
    return root


def test_slakh_reads_stems_by_class_and_skips_unrendered_omitted_and_mismatched(slakh_root, caplog):
    with caplog.at_level(logging.WARNING):
        source = SlakhSource(slakh_root, **OPTIONS)
    assert [(t.track_id, t.split) for t in source.tracks()] == [("Track00001", "train"), ("Track00002", "val")]
    check_reads(source, "Track00001", {"S00": ("bass", 200.0), "S01": ("drums", 300.0), "S02": ("other", 400.0)})
    song = source.multitrack(source.tracks()[0])
    assert song.tracks[0].program == 33 and song.tracks[0].instrument == "Electric Bass (finger)"
    assert song.tracks[1].is_drum and song.tracks[1].program is None
    assert song.tracks[2].metadata["midi_saved"] is True
    assert source.multitrack(source.tracks()[1]).stems == ("other", "other")
    assert source.unknown_instruments == {"Kazoo Orchestra": 1}
    assert "unknown instrument 'Kazoo Orchestra'" in caplog.text
    assert source.skipped.counts == {"not_rendered": 1, "omitted": 1, "rate_mismatch": 1}
    mismatch = next(r for _, kind, r in source.skipped.entries if kind == "rate_mismatch")
    assert "S01.flac: 22050 Hz" in mismatch
    assert [t.track_id for t in SlakhSource(slakh_root, split="val", **OPTIONS).tracks()] == ["Track00002"]
    assert len(SlakhSource(slakh_root, include_omitted=True, **OPTIONS).tracks()) == 3


def test_slakh_without_songs_or_with_bad_metadata(tmp_path, slakh_root):
    with pytest.raises(DatasetError, match="no Slakh songs"):
        SlakhSource(tmp_path / "slakh2100_flac_redux" / "train" / "Track00001" / "stems", **OPTIONS)
    (slakh_root / "train" / "Track00001" / "metadata.yaml").write_text("stems: [unclosed")
    source = SlakhSource(slakh_root, **OPTIONS)
    assert source.skipped.counts["bad_metadata"] == 1 and len(source.tracks()) == 1


# ----------------------------------------------------------------------------- MedleyDB


def medleydb_song(audio: Path, song: str, raws: list[tuple[str, str, float]], lengths: dict[str, float] | None = None):
    folder = audio / song
    stems = {}
    for index, (stem_key, instrument, frequency) in enumerate(raws, start=1):
        filename = f"{song}_RAW_{index:02d}_01.wav"
        write(folder / f"{song}_RAW" / filename, frequency, seconds=(lengths or {}).get(filename, SECONDS))
        stems.setdefault(stem_key, {"component": "", "filename": f"{song}_STEM_{index:02d}.wav",
                                    "instrument": instrument, "raw": {}})
        stems[stem_key]["raw"][f"R{len(stems[stem_key]['raw']) + 1:02d}"] = {"filename": filename, "instrument": instrument}
    metadata = {"album": "", "artist": "Artist", "composer": "", "excerpt": "no", "genre": "Rock", "has_bleed": "yes",
                "instrumental": "no", "mix_filename": f"{song}_MIX.wav", "origin": "", "producer": "",
                "raw_dir": f"{song}_RAW", "stem_dir": f"{song}_STEMS", "stems": stems, "title": song, "version": 1.2}
    (folder / f"{song}_METADATA.yaml").write_text(yaml.safe_dump(metadata))


def test_medleydb_reads_raw_tracks_with_the_taxonomy(tmp_path, caplog):
    audio = tmp_path / "MedleyDB" / "Audio"
    medleydb_song(audio, "Artist_SongA", [("S01", "drum set", 200.0), ("S02", "electric bass", 300.0),
                                          ("S03", "female singer", 400.0), ("S04", "kazoo", 500.0),
                                          ("S05", "tambourine", 600.0)])
    medleydb_song(audio, "Artist_SongB", [("S01", "piano", 200.0), ("S02", "violin", 300.0)],
                  lengths={"Artist_SongB_RAW_02_01.wav": 2.0})
    with caplog.at_level(logging.WARNING):
        source = MedleyDBSource(tmp_path / "MedleyDB", **OPTIONS)
    check_reads(source, "Artist_SongA", {"RAW_01_01": ("drums", 200.0), "RAW_02_01": ("bass", 300.0),
                                         "RAW_03_01": ("vocals", 400.0), "RAW_04_01": ("other", 500.0),
                                         "RAW_05_01": ("drums", 600.0)})
    assert source.tracks()[0].metadata["has_bleed"] == "yes"
    assert source.unknown_instruments == {"kazoo": 1} and "'kazoo'" in caplog.text
    (_, kind, reason), = source.skipped.entries
    assert kind == "length_mismatch" and "Artist_SongB_RAW_02_01.wav lasts 2.000 s" in reason


def test_a_single_broken_song_is_an_error_naming_it(tmp_path):
    audio = tmp_path / "Audio"
    medleydb_song(audio, "Only_Song", [("S01", "piano", 200.0), ("S02", "violin", 300.0)],
                  lengths={"Only_Song_RAW_01_01.wav": 0.6})
    with pytest.raises(DatasetError, match=r"Only_Song cannot be used \(length_mismatch\).*Only_Song_RAW_01_01.wav"):
        MedleyDBSource(tmp_path, **OPTIONS)


# ----------------------------------------------------------------------------- MoisesDB


def test_moisesdb_reads_tracks_by_stem_name(tmp_path):
    root = tmp_path / "moisesdb" / "moisesdb_v0.1"
    song = root / "0a1b2c3d-uuid"
    layout = [("vocals", "lead female singer", "t1", 200.0), ("vocals", "background vocals", "t2", 300.0),
              ("percussion", "a-tonal percussion (claps, shakers, congas, cowbell etc)", "t3", 400.0),
              ("guitar", "clean electric guitar", "t4", 500.0), ("bass", "bass guitar", "t5", 600.0),
              ("theremin_stem", "theremin", "t6", 700.0)]
    stems: dict[str, dict] = {}
    for stem_name, track_type, track_id, frequency in layout:
        write(song / stem_name / f"{track_id}.wav", frequency, channels=2)
        stems.setdefault(stem_name, {"stemName": stem_name, "id": f"s-{stem_name}", "tracks": []})
        stems[stem_name]["tracks"].append({"trackType": track_type, "id": track_id, "extension": "wav", "has_bleed": False})
    (song / "data.json").write_text(json.dumps({"song": "Song", "artist": "Band", "genre": "pop",
                                                "stems": list(stems.values())}))
    source = MoisesDBSource(tmp_path / "moisesdb", **OPTIONS)
    check_reads(source, "0a1b2c3d-uuid", {
        "vocals-lead-female-singer": ("vocals", 200.0), "vocals-background-vocals": ("vocals", 300.0),
        "percussion-a-tonal-percussion-claps-shakers-congas-cowbell-etc": ("drums", 400.0),
        "guitar-clean-electric-guitar": ("other", 500.0), "bass-bass-guitar": ("bass", 600.0),
        "theremin-stem-theremin": ("other", 700.0)})
    assert source.unknown_instruments == {"theremin_stem": 1}
    assert source.multitrack(source.tracks()[0]).tracks[0].channels == 2


# ----------------------------------------------------------------------------- plain folders


def test_track_folders_use_groups_json_then_track_names(tmp_path):
    root = tmp_path / "sessions"
    for name, frequency in (("Kick In", 200.0), ("Bass DI", 300.0), ("Lead Vox", 400.0), ("mystery", 500.0)):
        write(root / "song1" / f"{name}.wav", frequency)
    for name, frequency in (("a", 200.0), ("b", 300.0)):
        write(root / "song2" / f"{name}.flac", frequency)
    # groups named after stem classes class their tracks (file name or name); a console's buses do not
    (root / "song2" / "groups.json").write_text(json.dumps({"vocals": ["a.flac"], "bass": ["b"]}))
    (root / "song1" / "groups.json").write_text(json.dumps({"rhythm": ["Kick In", "Bass DI"], "music": ["mystery"]}))
    source = TrackFolderSource(root, **OPTIONS)
    check_reads(source, "song1", {"Bass DI": ("bass", 300.0), "Kick In": ("drums", 200.0),
                                  "Lead Vox": ("vocals", 400.0), "mystery": ("other", 500.0)})
    check_reads(source, "song2", {"a": ("vocals", 200.0), "b": ("bass", 300.0)})
    assert source.unknown_instruments == {"mystery": 1}


def test_track_folder_bad_input(tmp_path):
    one = tmp_path / "one_song"
    write(one / "kick.wav", 200.0)
    write(one / "bass.wav", 300.0, rate=22_050)
    with pytest.raises(DatasetError, match=r"one_song cannot be used \(rate_mismatch\).*bass.wav: 22050 Hz"):
        TrackFolderSource(one, **OPTIONS)
    (one / "bass.wav").unlink()
    write(one / "bass.wav", 300.0)
    (one / "groups.json").write_text(json.dumps({"kick": "drums", "bass.wav": "bass"}))  # the {track: class} form
    with pytest.raises(DatasetError, match=r'groups.json maps tracks to groups .*write \{"drums": \["kick"\], '
                                           r'"bass": \["bass.wav"\]\}'):
        TrackFolderSource(one, **OPTIONS)
    (one / "groups.json").write_text(json.dumps({"drums": ["kick"], "bass": ["kick"]}))
    with pytest.raises(DatasetError, match="kick is listed under both drums and bass"):
        TrackFolderSource(one, **OPTIONS)
    (one / "groups.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cannot parse"):
        TrackFolderSource(one, **OPTIONS)
    (one / "groups.json").unlink()
    write_audio(one / "silent pad.wav", np.zeros((1, RATE), np.float32), RATE)
    source = TrackFolderSource(one, check_silence=True, **OPTIONS)
    assert source.multitrack(source.tracks()[0]).names == ("bass", "kick")
    assert source.skipped.counts == {"silent_track": 1}
    assert len(TrackFolderSource(one, **OPTIONS).multitrack(source.tracks()[0])) == 3  # kept without the check
    (one / "kick.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk")
    with pytest.raises(DatasetError, match=r"one_song cannot be used \(corrupt\).*kick.wav"):
        TrackFolderSource(one, **OPTIONS)
    with pytest.raises(DatasetError, match="does not exist"):
        TrackFolderSource(tmp_path / "nowhere", **OPTIONS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no audio files"):
        TrackFolderSource(tmp_path / "empty", **OPTIONS)


@pytest.mark.parametrize(("name", "stem"), [("Kick In", "drums"), ("OH L", "drums"), ("Bass Drum", "drums"),
                                            ("Bass Amp", "bass"), ("BVs", "vocals"), ("Lead Vocal", "vocals"),
                                            ("Rhodes", None), ("Gtr 2", "other")])
def test_track_names_suggest_stem_classes(name, stem):
    assert stem_from_name(name) == stem

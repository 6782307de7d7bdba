"""The one song-folder reader: one groups.json schema for the console and for stem classes, one length
tolerance, a mix beside the tracks, errors that name the file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixrep.audio.io import write_audio
from mixrep.audio.multitrack_files import LENGTH_TOLERANCE_SECONDS
from mixrep.datasets.song_folder import read_groups, read_song, read_song_and_mix
from mixrep.errors import DatasetError
from mixrep.graphs.song import song_console

RATE = 8000


def tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(round(seconds * RATE))) / RATE
    return np.stack([0.2 * np.sin(2 * np.pi * hz * t)] * 2).astype(np.float32)


@pytest.fixture
def song(tmp_path):
    folder = tmp_path / "song"
    for name, hz in (("kick", 60.0), ("bass", 110.0), ("gtr", 330.0), ("vox", 440.0)):
        write_audio(folder / f"{name}.wav", tone(2.0, hz), RATE)
    return folder


def test_the_groups_make_case_writes_are_buses_for_the_console_and_name_classes_nothing(song, tmp_path):
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"rhythm": ["kick", "bass.wav"], "music": ["gtr", "vox"]}))
    read = read_song(song, groups)
    assert read.names == ["bass", "gtr", "kick", "vox"]
    assert read.groups == {"rhythm": ["kick", "bass"], "music": ["gtr", "vox"]}  # file names become names
    assert read.stems == ["bass", "other", "drums", "vocals"]  # buses are not classes: classed by name
    write_audio(tmp_path / "mix.wav", read.tracks.sum(0), RATE)
    names, console, _, _, _ = song_console(song, tmp_path / "mix.wav", groups, "g", None, RATE, crop_seconds=1.0)
    assert sorted(console.graph.node_names[v] for v in console.graph.nodes_of_type("mix")) == ["music", "rhythm"]


def test_groups_named_after_stem_classes_class_their_tracks(song, tmp_path):
    (song / "groups.json").write_text(json.dumps({"drums": ["gtr"], "vocals": ["bass"]}))  # the folder's own
    assert read_song(song).stems == ["vocals", "drums", "drums", "vocals"]


def test_the_track_to_class_form_is_refused_with_the_file_rewritten(tmp_path):
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"kick": "drums", "snare.wav": "drums", "bass": "bass"}))
    with pytest.raises(DatasetError) as error:
        read_groups(path)
    message = str(error.value)
    assert str(path) in message and "{group: [track, ...]}" in message
    assert json.loads(message[message.index("write ") + 6:]) == {"drums": ["kick", "snare.wav"], "bass": ["bass"]}
    for bad in ([1, 2], {"drums": "kick", "bass": ["bass"]}, {"drums": [1]}):
        path.write_text(json.dumps(bad))
        with pytest.raises(DatasetError, match="must map group names to lists of track names"):
            read_groups(path)
    with pytest.raises(DatasetError, match="does not exist"):
        read_groups(tmp_path / "missing.json")


def test_lengths_beyond_the_one_tolerance_are_refused_naming_the_files(song, tmp_path):
    write_audio(song / "vox.wav", tone(2.0 - 1.5 * LENGTH_TOLERANCE_SECONDS, 440.0), RATE)
    with pytest.raises(DatasetError, match=r"differ in length: vox.wav lasts 1.850 s, .* lasts 2.000 s"):
        read_song(song)
    write_audio(song / "vox.wav", tone(2.0 - 0.5 * LENGTH_TOLERANCE_SECONDS, 440.0), RATE)
    assert read_song(song).tracks.shape == (4, 2, int(round((2.0 - 0.5 * LENGTH_TOLERANCE_SECONDS) * RATE)))
    mix = tmp_path / "mix.wav"
    write_audio(mix, tone(2.0 + 1.5 * LENGTH_TOLERANCE_SECONDS, 200.0), RATE)
    with pytest.raises(DatasetError, match=f"the mix {mix} lasts 2.15 s"):
        read_song_and_mix(song, mix, RATE)


def test_a_mix_kept_beside_its_tracks_is_not_a_track(song):
    write_audio(song / "mix.wav", tone(2.0, 200.0), RATE)
    tracks, mix = read_song_and_mix(song, song / "mix.wav", RATE)
    assert tracks.names == ["bass", "gtr", "kick", "vox"] and tracks.tracks.shape[-1] == mix.shape[-1] == 2 * RATE

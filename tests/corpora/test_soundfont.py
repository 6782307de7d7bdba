"""The sampled-instrument corpus on a tiny generated soundfont: rendering, MIDI files, caching, bad input."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from mixrep.audio.multitrack import MultitrackSource
from mixrep.constants import STEMS
from mixrep.corpora.midi import read_midi
from mixrep.corpora.soundfont import (
    SoundfontCorpusConfig,
    SoundfontSource,
    gm_stem,
    open_soundfont_corpus,
    render_corpus,
)
from mixrep.corpora.synthetic import SyntheticSource
from mixrep.errors import DatasetError
from tests.sf2_fixture import write_sf2

pytest.importorskip("fluidsynth", reason="pyfluidsynth / libfluidsynth3 not installed "
                    "(apt-get install libfluidsynth3; pip install pyfluidsynth)")
mido = pytest.importorskip("mido")

RATE = 16_000
CONFIG = SoundfontCorpusConfig(num_songs=2, seed=3, song_seconds=2.0, sample_rate=RATE, midi_max_seconds=5.0)


def write_midi(path: Path, notes: list[tuple[int, int, int, float, float]], programs: dict[int, int] | None = None) -> Path:
    """A type-1 file at 120 bpm (480 ticks per beat): ``notes`` are (channel, key, velocity, on_s, off_s)."""
    midi = mido.MidiFile(type=1, ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    events = [(0.0, mido.Message("program_change", channel=c, program=p)) for c, p in (programs or {}).items()]
    for channel, key, velocity, on, off in notes:
        events += [(on, mido.Message("note_on", channel=channel, note=key, velocity=velocity)),
                   (off, mido.Message("note_off", channel=channel, note=key, velocity=0))]
    now = 0
    for seconds, message in sorted(events, key=lambda e: e[0]):
        ticks = int(round(seconds * 960))  # 120 bpm: 960 ticks per second
        track.append(message.copy(time=ticks - now))
        now = ticks
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))
    return path


@pytest.fixture(scope="module")
def soundfont(tmp_path_factory) -> Path:
    return write_sf2(tmp_path_factory.mktemp("sf") / "tiny.sf2")


@pytest.fixture
def midi_dir(tmp_path) -> Path:
    folder = tmp_path / "lmd"
    # A4 on a piano (program 0), E2 on a fingered bass (33), a kick on the drum channel, a second piano channel
    write_midi(folder / "a" / "song one.mid", [(0, 69, 100, 0.5, 1.5), (1, 40, 100, 0.5, 1.5), (9, 36, 110, 0.5, 0.7),
                                              (2, 81, 90, 1.0, 1.4)], programs={0: 0, 1: 33, 2: 0})
    write_midi(folder / "empty.mid", [])
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\xff\xff garbage")
    return folder


def peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x.mean(axis=0) * np.hanning(x.shape[-1])))
    return float(np.argmax(spectrum) * RATE / x.shape[-1])


def test_midi_files_become_one_part_per_channel_and_program(midi_dir):
    song = read_midi(midi_dir / "a" / "song one.mid")
    assert [(p.channel, p.program, p.is_drum, p.notes) for p in song.parts] == [
        (0, 0, False, 1), (1, 33, False, 1), (2, 0, False, 1), (9, 0, True, 1)]
    assert song.seconds == pytest.approx(1.5 + 1.0, abs=0.01)  # last note-off + release tail
    on = [e for e in song.parts[0].events if e.kind == "note_on"][0]
    assert (on.seconds, on.channel, on.data1, on.data2) == (pytest.approx(0.5, abs=1e-3), 0, 69, 100)
    assert song.parts[3].events[0].channel == 9
    with pytest.raises(DatasetError, match=r"empty.mid has no notes"):
        read_midi(midi_dir / "empty.mid")
    with pytest.raises(DatasetError, match=r"cannot parse MIDI file .*broken.mid"):
        read_midi(midi_dir / "broken.mid")
    with pytest.raises(DatasetError, match=r"no notes in its first 0.2 s"):
        read_midi(midi_dir / "a" / "song one.mid", max_seconds=0.2)


def test_render_and_read_generated_songs_and_midi_files(tmp_path, soundfont, midi_dir):
    report = render_corpus(tmp_path / "corpus", CONFIG, soundfont, midi_dir, progress=False)
    assert (report.rendered, report.cached) == (3, 0)
    assert report.skipped.counts == {"corrupt_midi": 1, "no_notes": 1}
    assert report.track_seconds == pytest.approx(2 * 6 * 2.0 + 4 * 2.5, abs=0.1)
    assert not list((tmp_path / "corpus").rglob(".*"))  # no temporary files left behind

    source = SoundfontSource(tmp_path / "corpus", sample_rate=RATE, min_seconds=1.0)
    assert isinstance(source, MultitrackSource)
    assert [t.track_id for t in source.tracks()] == ["midi-a-song-one", "sf-0000", "sf-0001"]
    generated = source.tracks()[1]
    song = source.multitrack(generated)
    assert song.names == ("kick", "snare", "hats", "bass", "chords", "lead")
    assert song.stems[:4] == ("drums", "drums", "drums", "bass") and song.stems[5] in ("vocals", "other")
    assert generated.metadata["soundfont"] == "tiny" and "bass" in generated.metadata
    tracks = source.read_tracks(generated, 0.0, 2.0)
    assert tracks.shape == (6, 2, 2 * RATE)
    assert max(np.abs(tracks.sum(axis=0)).max(), np.abs(tracks).max()) == pytest.approx(10 ** (-1 / 20), abs=2e-3)
    np.testing.assert_allclose(source.read_stems(generated, 0.0, 2.0)[0], tracks[:3].sum(axis=0), atol=1e-6)

    midi = source.multitrack(source.tracks()[0])
    assert midi.names == ("acoustic-grand-piano", "electric-bass-finger", "acoustic-grand-piano-2", "drums")
    assert midi.stems == ("other", "bass", "other", "drums")
    audio = source.read_tracks(source.tracks()[0], 0.6, 0.8)
    assert peak_hz(audio[0]) == pytest.approx(440.0, abs=3.0)
    assert peak_hz(audio[1]) == pytest.approx(82.4, abs=3.0)
    assert np.abs(source.read_tracks(source.tracks()[0], 0.0, 0.45)).max() == 0.0  # silent before the first note


def test_rendering_is_cached_resumable_and_deterministic(tmp_path, soundfont):
    out = tmp_path / "corpus"
    render_corpus(out, CONFIG, soundfont, progress=False)
    first = (out / "sf-0001" / "bass.flac").read_bytes()
    again = render_corpus(out, CONFIG, soundfont, progress=False)
    assert (again.rendered, again.cached) == (0, 2)
    # a run killed after writing some tracks but before song.json: the song is rendered again
    (out / "sf-0001" / "song.json").unlink()
    resumed = render_corpus(out, CONFIG, soundfont, progress=False)
    assert (resumed.rendered, resumed.cached) == (1, 1)
    assert (out / "sf-0001" / "bass.flac").read_bytes() == first
    # another configuration renders every song again
    longer = render_corpus(out, SoundfontCorpusConfig(**{**CONFIG.to_dict(), "song_seconds": 2.5}), soundfont,
                           progress=False)
    assert longer.rendered == 2
    assert json.loads((out / "sf-0000" / "song.json").read_text())["seconds"] == 2.5


def test_bad_input_is_named(tmp_path, soundfont, midi_dir, monkeypatch):
    with pytest.raises(DatasetError, match=r"soundfont .*nope.sf2 does not exist"):
        render_corpus(tmp_path / "c", CONFIG, tmp_path / "nope.sf2", progress=False)
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    with pytest.raises(DatasetError, match=r"fake.sf2 is not a SoundFont"):
        render_corpus(tmp_path / "c", CONFIG, fake, progress=False)
    with pytest.raises(DatasetError, match=r"MIDI folder .*missing does not exist"):
        render_corpus(tmp_path / "c", CONFIG, soundfont, tmp_path / "missing", progress=False)
    only_bad = tmp_path / "bad_midi"
    only_bad.mkdir()
    (only_bad / "broken.mid").write_bytes((midi_dir / "broken.mid").read_bytes())
    with pytest.raises(DatasetError, match=r"no song could be rendered .*1 tracks skipped \(1 corrupt_midi\)"):
        render_corpus(tmp_path / "c", SoundfontCorpusConfig(num_songs=0, sample_rate=RATE), soundfont, only_bad,
                      progress=False)
    # a soundfont without basses: generated songs cannot be cast, MIDI tracks of missing programs are skipped
    no_bass = write_sf2(tmp_path / "no_bass.sf2", programs=range(0, 32))
    with pytest.raises(DatasetError, match=r"has none of the bass programs"):
        render_corpus(tmp_path / "c", CONFIG, no_bass, progress=False)
    report = render_corpus(tmp_path / "c2", SoundfontCorpusConfig(num_songs=0, sample_rate=RATE), no_bass,
                           midi_dir / "a", progress=False)
    assert report.rendered == 1 and report.skipped.counts == {"missing_preset": 1}
    monkeypatch.setattr("mixrep.corpora.soundfont.default_soundfont", lambda: None)
    with pytest.raises(DatasetError, match="no soundfont found"):
        render_corpus(tmp_path / "c", CONFIG, progress=False)


def test_without_a_soundfont_the_synthetic_corpus_stands_in(tmp_path, soundfont, monkeypatch, caplog):
    monkeypatch.setattr("mixrep.corpora.soundfont.default_soundfont", lambda: None)
    with caplog.at_level(logging.WARNING):
        fallback = open_soundfont_corpus(tmp_path / "c", CONFIG, sample_rate=RATE)
    assert isinstance(fallback, SyntheticSource) and len(fallback.tracks()) == CONFIG.num_songs
    assert sum("pure-numpy synthetic corpus" in r.message for r in caplog.records) == 1
    source = open_soundfont_corpus(tmp_path / "c", CONFIG, soundfont=soundfont, sample_rate=RATE, min_seconds=1.0)
    assert isinstance(source, SoundfontSource) and len(source.tracks()) == 2
    with pytest.raises(DatasetError, match="does not exist"):  # a soundfont the user named must work
        open_soundfont_corpus(tmp_path / "c", CONFIG, soundfont=tmp_path / "nope.sf2")


@pytest.mark.parametrize(("program", "drum", "stem"), [(0, False, "other"), (33, False, "bass"), (43, False, "bass"),
                                                       (52, False, "vocals"), (85, False, "vocals"), (116, False, "drums"),
                                                       (25, True, "drums"), (81, False, "other")])
def test_gm_programs_map_to_stem_classes(program, drum, stem):
    assert gm_stem(program, drum) == stem and stem in STEMS


def test_cli_renders_lists_and_open_source_reads_the_corpus(tmp_path, soundfont, capsys):
    from mixrep.cli import main
    from mixrep.datasets.registry import open_source

    out = tmp_path / "corpus"
    args = ["corpus", "soundfont", "--out", str(out), "--soundfont", str(soundfont), "--songs", "2", "--song-seconds",
            "2", "--sample-rate", str(RATE), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 songs in" in printed and "2 rendered, 0 cached" in printed and "MB on disk" in printed
    assert main(args) == 0 and "0 rendered, 2 cached" in capsys.readouterr().out
    assert main([*args[:5], str(tmp_path / "nope.sf2")]) == 2
    assert "nope.sf2 does not exist" in capsys.readouterr().err
    source = open_source("soundfont", out, sample_rate=RATE, min_seconds=1.0)
    assert isinstance(source, SoundfontSource) and len(source.tracks()) == 2
    assert open_source("soundfont", out, sample_rate=RATE, min_seconds=1.0, soundfont=soundfont,
                       num_songs=3, song_seconds=2.0).tracks()[2].track_id == "sf-0002"
    with pytest.raises(DatasetError, match="num_songs"):
        open_source("soundfont", out, sample_rate=RATE, num_songs=-1)
    main(["corpus", "soundfonts"])  # lists what is installed (or says how to install), never fails hard


def test_corpus_files_get_the_umask_mode_not_mkstemps_0600(tmp_path, soundfont):
    previous = os.umask(0o002)
    try:
        render_corpus(tmp_path / "corpus", CONFIG, soundfont, progress=False)
    finally:
        os.umask(previous)
    files = sorted(p for p in (tmp_path / "corpus").rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"corpus.json", "song.json", "bass.flac"}
    assert {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in files} == {
        p.relative_to(tmp_path).as_posix(): 0o664 for p in files}

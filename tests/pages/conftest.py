"""Fixtures of the listening-page tests: what `mixrep mix`, `mixrep search --json` and `mixrep describe --json`
leave on disk, small (2 s at 22.05 kHz), with a track whose name is hostile HTML."""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mixrep.audio.io import write_audio
from mixrep.constants import STEMS
from mixrep.styles.mix_style import ChannelStrip, CompressorSettings, EqBand, MixStyle

RATE = 22_050
SECONDS = 2.0
HOSTILE = "vox <img src=x onerror=alert(1)> & \"q\" 'x'"
"""A track name that would run code if a page forgot to escape it (no slash: it is a file name)."""


def tone(frequency_hz: float, amplitude: float, seconds: float = SECONDS, rate: int = RATE) -> np.ndarray:
    """``(2, samples)``: a sine, right channel at half level (so the channels differ)."""
    t = np.arange(round(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * frequency_hz * t)
    return np.stack([wave, 0.5 * wave]).astype(np.float32)


@dataclass(frozen=True)
class MixRun:
    """The files of one `mixrep mix` run and its inputs."""

    tracks: Path
    reference_stems: Path
    reference: Path
    out: Path
    settings: Path
    figure: Path
    render: Path


def mix_style_settings() -> dict:
    """A settings JSON in the mix-style vocabulary (:meth:`MixStyle.to_dict`), with a hostile strip name."""
    strip = ChannelStrip(fader_db=-3.25, pan=-0.4, highpass_hz=80.0, eq=(EqBand("peak", 2500.0, 3.0, 1.2),),
                         compressor=CompressorSettings(-18.0, 4.0, 10.0, 120.0))
    style = MixStyle({"drums": strip, HOSTILE: ChannelStrip(fader_db=1.5)}, loudness_lufs=-14.0)
    return {"tracks": ["kick", "bass", HOSTILE], "style": style.to_dict(), "output": {"lufs": -14.02, "true_peak_db": -1.0}}


@pytest.fixture(scope="session")
def figure_png(tmp_path_factory) -> Path:
    """The comparison figure as `mixrep mix` draws it (plot_transfer of three mixes' profiles)."""
    from mixrep.inference.figure import mix_profile
    from mixrep.plots.transfer import plot_transfer

    stems = np.stack([tone(100.0 * (i + 1), 0.1 * (i + 1)) for i in range(len(STEMS))])
    profiles = {name: mix_profile(stems * gain, RATE) for name, gain in (("reference", 1.0), ("raw sum", 0.5),
                                                                          ("result", 0.8))}
    return plot_transfer(profiles, tmp_path_factory.mktemp("figure") / "mix.png", "test")


@pytest.fixture
def mix_run(tmp_path, figure_png) -> MixRun:
    tracks, stems = tmp_path / "tracks", tmp_path / "reference"
    tracks.mkdir()
    stems.mkdir()
    for name, frequency in (("kick", 60.0), ("bass", 110.0), (HOSTILE, 440.0)):
        write_audio(tracks / f"{name}.wav", tone(frequency, 0.6), RATE)  # their sum peaks above 1
    for i, stem in enumerate(STEMS):
        write_audio(stems / f"{stem}.flac", tone(200.0 * (i + 1), 0.1), RATE)
    write_audio(tmp_path / "reference.wav", tone(330.0, 0.3), RATE)
    out = tmp_path / "out" / "mix.wav"
    out.parent.mkdir()
    write_audio(out, tone(220.0, 0.5), RATE)
    write_audio(out.with_suffix(".pedalboard.wav"), tone(225.0, 0.5, seconds=1.5), RATE)
    out.with_suffix(".json").write_text(json.dumps(mix_style_settings()))
    out.with_suffix(".png").write_bytes(figure_png.read_bytes())
    return MixRun(tracks, stems, tmp_path / "reference.wav", out, out.with_suffix(".json"), out.with_suffix(".png"),
                  out.with_suffix(".pedalboard.wav"))


@pytest.fixture
def search_results(tmp_path, mix_run) -> Path:
    """What `mixrep search --json` prints: a file query with two hits, a query by id, a failed query."""
    hits = [{"rank": 1, "track_id": 3, "score": 0.9123, "path": str(mix_run.reference), "duration_seconds": SECONDS,
             "tags": {}},
            {"rank": 2, "track_id": 7, "score": 0.5, "path": str(mix_run.reference_stems), "duration_seconds": SECONDS,
             "tags": {}}]
    results = [{"query": str(mix_run.out), "results": hits, "error": None, "silent": False},
               {"query": "id:3", "results": hits[1:], "error": None, "silent": True},
               {"query": f"/music/{HOSTILE}.wav", "results": [], "error": f"cannot open {HOSTILE}", "silent": False}]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    return path


@pytest.fixture
def describe_result(tmp_path, mix_run) -> Path:
    """What `mixrep describe --json` writes for a stems folder."""
    settings = {"drums.fader_db": {"group": "balance", "unit": "dB", "value": -2.5, "spread": 0.75},
                "drums.compressor": {"group": "compressor", "unit": "", "value": 0.83, "spread": 0.0},
                "master.eq_100hz_db": {"group": "master", "unit": "dB", "value": 1.25, "spread": 0.0}}
    path = tmp_path / "describe.json"
    path.write_text(json.dumps({"input": str(mix_run.reference_stems), "model_hash": "abc", "clips": 3,
                                "settings": settings}))
    return path


AUDIO_SRC = re.compile(r'<audio [^>]*data-label="([^"]*)"[^>]*src="data:(audio/[a-z]+);base64,([^"]+)"')


def embedded_audio(html: str) -> list[tuple[str, str, np.ndarray, int]]:
    """``(label, mime, audio (channels, samples), sample rate)`` of every player of a page, decoded."""
    from pedalboard.io import AudioFile

    out = []
    for label, mime, data in AUDIO_SRC.findall(html):
        with AudioFile(io.BytesIO(base64.b64decode(data))) as f:
            out.append((label, mime, f.read(f.frames), int(f.samplerate)))
    return out

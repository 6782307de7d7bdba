"""The listening page in a real browser: headless Chromium opens it, every player loads its audio with
the expected duration, and the screenshot shows a drawn page. Skipped, with the reason, where no
Chromium is installed (`make test` installs Debian's `chromium` as root: scripts/install_system_deps.sh)."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from mixrep.pages import mix_page, player_spec, search_page, tracks_spec
from mixrep.pages.html import document, players
from mixrep.pages.media import encode_clip, read_clip

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium or chromium-browser on PATH: install Debian's chromium (apt-get install "
                             "chromium; `make test` does as root) to open the listening page in a browser")

DURATION_TOLERANCE_SECONDS = 0.02
"""Vorbis reports a few samples more than it was given (3 ms at 22.05 kHz)."""


class AudioElements(HTMLParser):
    """The attributes of every ``<audio>`` element of a document."""

    def __init__(self):
        super().__init__()
        self.found: list[dict[str, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "audio":
            self.found.append(dict(attrs))


def open_in_chromium(page: Path, tmp_path: Path) -> tuple[list[dict[str, str]], Path]:
    """Open ``page`` headless: the ``<audio>`` attributes of the DOM after its scripts ran, and a screenshot.

    Runs as root in CI, hence ``--no-sandbox``; its own profile folder, so runs side by side do not share one.
    """
    screenshot = tmp_path / "page.png"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio", "--disable-dev-shm-usage",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--window-size=1280,1800",
               f"--screenshot={screenshot}", "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    parser = AudioElements()
    parser.feed(done.stdout)
    return parser.found, screenshot


def assert_drawn_png(path: Path) -> None:
    from PIL import Image

    assert path.is_file() and path.stat().st_size > 0, f"no screenshot at {path}"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "the screenshot is (nearly) uniform: nothing drawn"


def test_mix_page_plays_in_chromium(tmp_path, mix_run):
    specs = [player_spec("reference", mix_run.reference_stems, "--reference-stems"),
             tracks_spec("raw sum", sorted(mix_run.tracks.iterdir()), mix_run.tracks),
             player_spec("result", mix_run.out, "--out"), player_spec("pedalboard render", mix_run.render, "--render")]
    page = mix_page(tmp_path / "page.html", specs, mix_run.settings, mix_run.figure, "mix", seconds=30.0)
    audio, screenshot = open_in_chromium(page.path, tmp_path)
    assert [a["data-label"] for a in audio] == ["reference", "raw sum", "result", "pedalboard render"]
    for element, expected in zip(audio, (2.0, 2.0, 2.0, 1.5)):  # the files are shorter than the excerpt
        assert element.get("data-state") == "loaded", f"{element['data-label']}: {element.get('data-state')}"
        assert abs(float(element["data-duration"]) - expected) < DURATION_TOLERANCE_SECONDS, element["data-duration"]
    assert_drawn_png(screenshot)


def test_search_page_plays_in_chromium(tmp_path, search_results):
    page = search_page(tmp_path / "search.html", search_results, "search", seconds=1.0)
    audio, screenshot = open_in_chromium(page.path, tmp_path)
    assert [a["data-label"] for a in audio] == ["query", "hit 1", "hit 2", "hit 2"]
    assert all(a.get("data-state") == "loaded" and abs(float(a["data-duration"]) - 1.0) < DURATION_TOLERANCE_SECONDS
               for a in audio), audio
    assert_drawn_png(screenshot)


def test_a_broken_player_is_reported_as_error(tmp_path, mix_run):
    """The check above can fail: audio Chromium cannot decode is marked ``error``, not ``loaded``."""
    good = encode_clip(read_clip("good", [mix_run.out], 1.0), "flac")
    broken = type(good)(good.clip, "data:audio/ogg;base64,T2dnUwAAAAAAAAAA", 12, good.format)
    page = tmp_path / "broken.html"
    page.write_text(document("broken", players([good, broken])), encoding="utf-8")
    audio, _ = open_in_chromium(page, tmp_path)
    assert [a.get("data-state") for a in audio] == ["loaded", "error"]
    assert abs(float(audio[0]["data-duration"]) - 1.0) < DURATION_TOLERANCE_SECONDS

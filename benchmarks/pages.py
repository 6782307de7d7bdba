"""Listening pages: the size of each embedded player and of the page, and the time to build it.

Renders two songs of the synthetic corpus (``--seconds`` long at 44.1 kHz): the first one's six
tracks are the raw tracks, their sum stands in for the result and, at -3 dB, for the pedalboard
render; the second one's stems are the reference. Builds the mix page (:func:`mixrep.pages.mix_page`,
with the figure and settings left out: only the audio is measured) once per audio format and
prints each player's encoded size.

Usage: python benchmarks/pages.py [--seconds 40] [--excerpt-seconds 30]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mixrep.audio.io import write_audio
from mixrep.constants import STEMS
from mixrep.corpora.synthetic import TRACKS, SynthConfig, synthesize_song
from mixrep.pages import mix_page, player_spec, tracks_spec
from mixrep.pages.html import size_text
from mixrep.pages.media import AUDIO_FORMATS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--excerpt-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    config = SynthConfig(num_songs=2, song_seconds=args.seconds, sample_rate=44_100)
    song, reference = synthesize_song(0, config), synthesize_song(1, config)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for (name, _), track in zip(TRACKS, song.tracks):
            write_audio(root / "tracks" / f"{name}.wav", track, config.sample_rate)
        for stem, audio in zip(STEMS, reference.stems):
            write_audio(root / "reference" / f"{stem}.wav", audio, config.sample_rate)
        write_audio(root / "mix.wav", song.mix, config.sample_rate)
        write_audio(root / "render.wav", song.mix * 10 ** (-3 / 20), config.sample_rate)
        specs = [player_spec("reference", root / "reference", "reference"),
                 tracks_spec("raw sum", sorted((root / "tracks").iterdir()), root / "tracks"),
                 player_spec("result", root / "mix.wav", "result"),
                 player_spec("pedalboard render", root / "render.wav", "render")]
        print(f"synthetic songs of {args.seconds:g} s at {config.sample_rate} Hz, excerpt {args.excerpt_seconds:g} s\n")
        print("| audio format | " + " | ".join(s.label for s in specs) + " | page | build s |")
        print("|---" * (len(specs) + 3) + "|")
        for audio_format in AUDIO_FORMATS:
            start = time.perf_counter()
            page = mix_page(root / f"page-{audio_format}.html", specs, None, None, "benchmark",
                            seconds=args.excerpt_seconds, audio_format=audio_format)
            elapsed = time.perf_counter() - start
            print(f"| {AUDIO_FORMATS[audio_format].label} | "
                  + " | ".join(size_text(p.size_bytes) for p in page.players)
                  + f" | {size_text(page.size_bytes)} | {elapsed:.1f} |")


if __name__ == "__main__":
    main()

"""Soundfont corpus: rendering speed (track-seconds rendered per second) and disk per song, per soundfont.

For every installed General-MIDI soundfont (or ``--soundfont``), renders ``--songs`` generated
songs into a fresh temporary folder with :func:`mixrep.corpora.soundfont.render_corpus`, then once
more (all cached). The load of the soundfont (once per process) is timed apart; "render" is
everything per song: a fresh FluidSynth per track, the synthesis, the peak normalisation and the
FLAC writes.

Usage: python benchmarks/soundfont.py [--songs 8] [--seconds 16] [--sample-rate 44100] [--soundfont PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mixrep.audio.fluidsynth import SoundFontSynth, installed_soundfonts
from mixrep.corpora.soundfont import SoundfontCorpusConfig, render_corpus


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--sample-rate", type=int, default=44_100)
    parser.add_argument("--soundfont", type=Path, action="append", default=None)
    args = parser.parse_args(argv)
    soundfonts = args.soundfont or installed_soundfonts()
    if not soundfonts:
        raise SystemExit("no soundfont installed (apt-get install fluid-soundfont-gm) and none given")
    config = SoundfontCorpusConfig(num_songs=args.songs, song_seconds=args.seconds, sample_rate=args.sample_rate)
    print(f"{args.songs} generated songs of {args.seconds:g} s at {args.sample_rate} Hz (6 tracks each)\n")
    print("| soundfont | size MB | load s | render s | track-seconds per s | cached run s | MB per song |")
    print("|---|---|---|---|---|---|---|")
    for path in soundfonts:
        start = time.perf_counter()
        SoundFontSynth(path, args.sample_rate).close()
        load = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "corpus"
            report = render_corpus(out, config, path, progress=False)
            start = time.perf_counter()
            render_corpus(out, config, path, progress=False)
            cached = time.perf_counter() - start
            disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
        speed = report.track_seconds / report.render_seconds
        print(f"| {path.name} | {path.stat().st_size / 1e6:.1f} | {load:.2f} | {report.render_seconds:.2f} | "
              f"{speed:.0f} | {cached:.3f} | {disk / report.songs:.2f} |")


if __name__ == "__main__":
    main()

"""Cost of the mixing-style space per item, next to today's augmentation chain, measured side by side.

One item = one 4 s clip restyled once. Rows: ``apply_chain`` (the current per-stem augmentation),
``render_stems`` (style space, one strip per stem), ``render_mix`` over the six tracks of a synthetic
song (one strip per track), each with the default ranges and with every effect forced on (worst
case). CPU time of one thread, median and 90th percentile over ``--items`` draws.

Usage: python benchmarks/style_space.py [--items 40] [--seconds 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mixrep.constants import STEMS
from mixrep.corpora.synthetic import TRACKS, SynthConfig, synthesize_song
from mixrep.styles.chains import AugmentConfig, apply_chain, sample_chain
from mixrep.styles.mix_style import MixStyleConfig, render_mix, render_stems, sample_mix_style



def timed(fn, items: int) -> tuple[float, float]:
    fn(0)  # warm-up
    costs = []
    for i in range(1, items + 1):
        start = time.thread_time()
        fn(i)
        costs.append(time.thread_time() - start)
    return float(np.median(costs)), float(np.percentile(costs, 90))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    names = [name for name, _ in TRACKS]
    groups = [stem for _, stem in TRACKS]
    default, full = MixStyleConfig(), MixStyleConfig().every_processor()
    print(f"{args.seconds:g} s items, CPU seconds of one thread per item, median (p90) over {args.items} draws\n")
    print(f"| rate | {'renderer':<40} | {'median ms':>9} | {'p90 ms':>7} | x apply_chain |")
    print(f"|---|{'-' * 42}|---|---|---|")
    for rate in (44_100, 22_050):
        song = synthesize_song(0, SynthConfig(num_songs=1, song_seconds=max(args.seconds, 1.0), sample_rate=rate))
        n = int(args.seconds * rate)
        tracks, stems = song.tracks[..., :n].copy(), song.stems[..., :n].copy()
        rows = {
            "apply_chain (augment, default)": lambda i: apply_chain(
                stems, sample_chain(AugmentConfig(), np.random.default_rng(i)), rate),
            "render_stems (4 strips, default)": lambda i: render_stems(
                stems, sample_mix_style(default, np.random.default_rng(i)), rate),
            "render_stems (4 strips, every effect)": lambda i: render_stems(
                stems, sample_mix_style(full, np.random.default_rng(i)), rate),
            "render_mix (6 tracks, default)": lambda i: render_mix(
                tracks, sample_mix_style(default, np.random.default_rng(i), (*STEMS, *names)), rate, names, groups),
            "render_mix (6 tracks, every effect)": lambda i: render_mix(
                tracks, sample_mix_style(full, np.random.default_rng(i), (*STEMS, *names)), rate, names, groups),
        }
        baseline = None
        for label, fn in rows.items():
            median, p90 = timed(fn, args.items)
            baseline = baseline or median
            print(f"| {rate} | {label:<40} | {1000 * median:>9.1f} | {1000 * p90:>7.1f} | {median / baseline:>12.2f}x |")


if __name__ == "__main__":
    main()

"""Time the synthetic corpus: one song per row, CPU time of one thread (numpy only, one core).

Usage: python benchmarks/bench_synthetic.py [--songs 10] [--seconds 16] [--sample-rate 44100]
"""

from __future__ import annotations

import argparse
import statistics
import time

from mixrep.corpora.synthetic import SynthConfig, synthesize_song


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--sample-rate", type=int, default=44_100)
    args = parser.parse_args(argv)
    config = SynthConfig(num_songs=args.songs, song_seconds=args.seconds, sample_rate=args.sample_rate)
    synthesize_song(0, config)  # warm-up (imports, allocator)
    print(f"{'song':>6} {'tempo_bpm':>9} {'key':>4} {'scale':>15} {'other':>9} {'cpu_s':>7} {'wall_s':>7}")
    cpu, wall = [], []
    for i in range(args.songs):
        c0, w0 = time.thread_time(), time.perf_counter()
        song = synthesize_song(i, config)
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
        m = song.metadata
        print(f"{i:>6} {m['tempo_bpm']:>9.1f} {m['key']:>4} {m['scale']:>15} {m['parts']['other']['mode']:>9} "
              f"{cpu[-1]:>7.3f} {wall[-1]:>7.3f}")
    print(f"{args.seconds:g} s songs at {args.sample_rate} Hz: median {statistics.median(cpu):.3f} s CPU "
          f"(max {max(cpu):.3f}), median {statistics.median(wall):.3f} s wall")


if __name__ == "__main__":
    main()

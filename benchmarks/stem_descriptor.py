"""Time the per-stem descriptor against the other per-item work of a style-retrieval set.

A style set computes, per song, one batch of ``styles`` items: the front end (log-mel and mix
features), the MFCC statistics of the mix and the stem descriptor. This prints the wall time of
each over ``songs`` such batches of random stems on the CPU: wall time and process CPU time (all
threads; less sensitive than wall time to other work on the machine), with ``--threads`` torch threads.

Usage: python benchmarks/stem_descriptor.py [--songs 16] [--styles 8] [--seconds 3] [--sample-rate 22050] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from mixrep.frontend import FrontEnd, FrontEndConfig
from mixrep.retrieval.baselines import mfcc_statistics
from mixrep.retrieval.descriptor import stem_descriptor


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=16)
    parser.add_argument("--styles", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sample-rate", type=int, default=22_050)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rate = args.sample_rate
    frontend = FrontEnd(FrontEndConfig(sample_rate=rate, clip_seconds=args.seconds))
    batch = torch.randn(args.styles, 4, 2, int(args.seconds * rate), generator=torch.Generator().manual_seed(0)) * 0.1
    steps = {
        "front end": lambda: frontend(batch),
        "mfcc": lambda: mfcc_statistics(batch.sum(dim=1), rate),
        "stem descriptor": lambda: stem_descriptor(batch, rate),
    }
    print(f"{args.songs} songs x {args.styles} styles, {args.seconds:g} s clips at {rate} Hz, "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'step':>16} {'wall_s':>7} {'cpu_s':>7} {'cpu_ms_per_item':>15}")
    with torch.no_grad():
        for name, step in steps.items():
            step()  # warm-up (caches, allocator)
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(args.songs):
                step()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"{name:>16} {wall:>7.2f} {cpu:>7.2f} {1000 * cpu / (args.songs * args.styles):>15.1f}")


if __name__ == "__main__":
    main()

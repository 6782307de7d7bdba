"""Benchmark of console rendering: batched (algorithm 2) versus one-by-one, the FFT floor, a fit
step, and batches of songs.

For 8-, 16- and 64-track consoles (groups of four tracks, full ``ecnsgdr`` chains) on 3.8 s of
stereo audio at 44.1 kHz, prints forward and forward+backward times of the batched renderer (in
its default cache-sized processor calls on the CPU, and with whole partitions per call), of the
one-by-one renderer, the time of one ``fit`` step (render, audio loss, backward, AdamW step,
projection), and the ratio of the batched forward time to the time of the FFT convolutions it
must do anyway (the same ``fft_convolve`` calls of the EQs, delays and reverbs, same batch sizes
and kernel lengths, kernels' FFTs included; the dynamics' exact smoother needs no FFT): how close
rendering runs to its arithmetic floor.

The second table renders B songs with different track counts forward+backward as one disjoint
graph (:class:`~mixrep.console.batch.ConsoleBatch`) and one song at a time (songs per second).

Measurements are interleaved (every quantity once per round, ``--repeats`` rounds) and the best
round is kept, so load from other processes disturbs all columns alike::

    python benchmarks/console.py [--tracks 8 16 64] [--repeats 3] [--threads 1] [--device cuda]
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from mixrep.console import functional as Fn
from mixrep.console.batch import ConsoleBatch
from mixrep.console.console import MixingConsole
from mixrep.console.fit import FitConfig, fit
from mixrep.console.loss import MixLoss
from mixrep.console.processors import DRY_WET, Equalizer, MultitapDelay, Reverb
from mixrep.console.render import BatchedRenderer, nodes_per_call
from mixrep.constants import SAMPLE_RATE


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_of_interleaved(functions: dict, device: torch.device, repeats: int) -> dict[str, float]:
    """Time every function once per round (after one warm-up round); best round per function."""
    for fn in functions.values():
        fn()
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _console(tracks: int, device: torch.device, seed: int = 0,
             sample_rate: int = SAMPLE_RATE) -> MixingConsole:
    names = [f"t{i}" for i in range(tracks)]
    groups = {f"g{k}": names[k : k + 4] for k in range(0, tracks, 4)}
    console = MixingConsole.from_tracks(names, groups, sample_rate=sample_rate).to(device)
    with torch.no_grad():  # non-trivial parameters: every processor active
        gen = torch.Generator().manual_seed(seed)
        for t, p in console.parameter_dict().items():
            values = console.processors[t].random_parameters(len(p[DRY_WET]), gen)
            values[DRY_WET] = torch.zeros(len(p[DRY_WET]))
            for k, v in values.items():
                p[k].copy_(v)
    return console


def _floor_calls(console: MixingConsole, samples: int, device: torch.device):
    """The FFT convolutions of every batched partition, as (signal, kernel, center) tensors, in the
    renderer's processor calls (cache-sized chunks on the CPU)."""
    calls = []
    chunk = nodes_per_call(torch.empty(1, 2, samples, device=device)) or 10**9
    for node_type, nodes in console.renderer().partitions:
        proc = console.processors[node_type] if node_type in console.processors else None  # noqa: SIM401 (ModuleDict)
        for start in range(0, len(nodes), chunk):
            n = min(chunk, len(nodes) - start)
            if isinstance(proc, Equalizer):
                calls.append(((n, 2, samples), (n, 1, 2 * proc.bins - 1), proc.bins - 1))
            elif isinstance(proc, MultitapDelay):
                taps = proc.taps * proc.slot_samples + 2 * proc.fir_bins - 2
                calls.append(((n, 2, samples), (n, 2, taps), proc.fir_bins - 1))
            elif isinstance(proc, Reverb):
                calls.append(((n, 2, samples), (n, 2, proc.ir_samples), 0))
    return [(torch.randn(x, device=device), torch.randn(h, device=device), c) for x, h, c in calls]


def bench(tracks: int, repeats: int, device: torch.device, seconds: float,
          sample_rate: int) -> dict[str, float]:
    console = _console(tracks, device, sample_rate=sample_rate)
    samples = int(seconds * sample_rate)
    stems = 0.1 * torch.randn(tracks, 2, samples, device=device)
    mix = 0.1 * torch.randn(2, samples, device=device)
    params, processors = console.parameter_dict(), dict(console.processors)
    whole = BatchedRenderer(console.graph, max_nodes_per_call=10**9)
    loss_fn = MixLoss(sample_rate).to(device)
    step_config = FitConfig(steps=1, crop_seconds=seconds, warmup_seconds=1.0, progress=False)
    floor = _floor_calls(console, samples, device)

    def forward(one_by_one: bool):
        with torch.no_grad():
            console.render_graph(stems, one_by_one=one_by_one)

    def forward_backward(render):
        console.zero_grad(set_to_none=True)
        render().outputs.square().mean().backward()

    def floor_forward():
        with torch.no_grad():
            for x, h, c in floor:
                Fn.fft_convolve(x, h, c)

    times = _best_of_interleaved({
        "batched_fwd": lambda: forward(False),
        "one_by_one_fwd": lambda: forward(True),
        "batched_fwd_bwd": lambda: forward_backward(lambda: console.render_graph(stems)),
        "whole_fwd_bwd": lambda: forward_backward(lambda: whole(stems, params, processors)),
        "one_by_one_fwd_bwd": lambda: forward_backward(
            lambda: console.render_graph(stems, one_by_one=True)),
        "fit_step": lambda: fit(console, stems, mix, step_config, loss_fn),
        "fft_floor_fwd": floor_forward,
    }, device, repeats)
    return {"tracks": tracks, "nodes": console.graph.num_nodes, "batches": len(console.renderer()),
            **times}


def bench_songs(songs: int, repeats: int, device: torch.device, seconds: float,
                sample_rate: int) -> dict[str, float]:
    """B songs of 2 to 8 tracks: one disjoint-graph render versus one song at a time."""
    rng = random.Random(0)
    consoles = [_console(rng.randint(2, 8), device, b, sample_rate) for b in range(songs)]
    samples = int(seconds * sample_rate)
    stems = [0.1 * torch.randn(len(c.track_names), 2, samples, device=device) for c in consoles]
    processors = dict(consoles[0].processors)
    batch = ConsoleBatch([c.graph for c in consoles])

    def together():
        for c in consoles:
            c.zero_grad(set_to_none=True)
        out = batch.render(stems, [c.parameter_dict() for c in consoles], processors)
        out.outputs.square().mean().backward()

    def one_at_a_time():
        for c, s in zip(consoles, stems):
            c.zero_grad(set_to_none=True)
            c.render(s).square().mean().backward()

    times = _best_of_interleaved({"batch": together, "loop": one_at_a_time}, device, repeats)
    return {"songs": songs, "tracks": sum(len(c.track_names) for c in consoles), **times}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, nargs="*", default=[8, 16, 64])
    parser.add_argument("--songs", type=int, nargs="*", default=[8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.8)
    parser.add_argument("--sample-rate", type=int, default=SAMPLE_RATE)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}"
          f", {torch.get_num_threads()} threads), {args.seconds} s stereo at {args.sample_rate} Hz, "
          f"best of {args.repeats} interleaved rounds")
    header = ("| tracks | nodes | batches | batched fwd s | 1-by-1 fwd s | speed-up | "
              "batched fwd+bwd s | whole-partition fwd+bwd s | 1-by-1 fwd+bwd s | speed-up | "
              "fit step s | FFT floor fwd s | fwd / floor |")
    if args.tracks:
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
    for tracks in args.tracks:
        r = bench(tracks, args.repeats, device, args.seconds, args.sample_rate)
        print(f"| {r['tracks']} | {r['nodes']} | {r['batches']} | {r['batched_fwd']:.3f} | "
              f"{r['one_by_one_fwd']:.3f} | {r['one_by_one_fwd'] / r['batched_fwd']:.2f}x | "
              f"{r['batched_fwd_bwd']:.3f} | {r['whole_fwd_bwd']:.3f} | {r['one_by_one_fwd_bwd']:.3f} | "
              f"{r['one_by_one_fwd_bwd'] / r['batched_fwd_bwd']:.2f}x | {r['fit_step']:.3f} | "
              f"{r['fft_floor_fwd']:.3f} | {r['batched_fwd'] / r['fft_floor_fwd']:.2f}x |", flush=True)
    if args.songs:
        print()
        print("| songs | tracks | one batch fwd+bwd s | one at a time s | batch songs/s | "
              "loop songs/s | speed-up |")
        print("|---|---|---|---|---|---|---|")
        for songs in args.songs:
            r = bench_songs(songs, args.repeats, device, args.seconds, args.sample_rate)
            print(f"| {r['songs']} | {r['tracks']} | {r['batch']:.3f} | {r['loop']:.3f} | "
                  f"{songs / r['batch']:.2f} | {songs / r['loop']:.2f} | "
                  f"{r['loop'] / r['batch']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

"""Benchmark of console rendering: batched (algorithm 2) versus one-by-one, and the FFT floor.

For 8-, 16- and 64-track consoles (groups of four tracks, full ``ecnsgdr`` chains) on 3.8 s of
stereo audio at 44.1 kHz, prints forward and forward+backward times of the batched and the
one-by-one renderer, and the ratio of the batched forward time to the time of the FFT
convolutions it must do anyway (the same ``fft_convolve`` calls, same batch sizes and kernel
lengths, kernels' FFTs included): how close rendering runs to its arithmetic floor.

    python benchmarks/console.py [--tracks 8 16 64] [--repeats 3] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch

from mixrep.console import functional as Fn
from mixrep.console.console import MixingConsole
from mixrep.console.graph import DRY_WET
from mixrep.console.processors import Compressor, Equalizer, MultitapDelay, NoiseGate, Reverb
from mixrep.constants import SAMPLE_RATE


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up (plans, caches, allocator)
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)  # least disturbed by other processes on a shared machine


def _floor_calls(console: MixingConsole, samples: int, device: torch.device):
    """The FFT convolutions of every batched partition, as (signal, kernel, center) tensors."""
    calls = []
    for node_type, nodes in console.renderer().partitions:
        n = len(nodes)
        proc = console.processors[node_type] if node_type in console.processors else None
        if isinstance(proc, Equalizer):
            calls.append(((n, 2, samples), (n, 1, 2 * proc.bins - 1), proc.bins - 1))
        elif isinstance(proc, (Compressor, NoiseGate)):
            calls.append(((n, 1, samples), (n, 1, proc.envelope_taps), 0))
        elif isinstance(proc, MultitapDelay):
            taps = proc.taps * proc.slot_samples + 2 * proc.fir_bins - 2
            calls.append(((n, 2, samples), (n, 2, taps), proc.fir_bins - 1))
        elif isinstance(proc, Reverb):
            calls.append(((n, 2, samples), (n, 2, proc.ir_samples), 0))
    tensors = [(torch.randn(x, device=device), torch.randn(h, device=device), c)
               for x, h, c in calls]
    return tensors


def bench(tracks: int, repeats: int, device: torch.device, seconds: float) -> dict[str, float]:
    names = [f"t{i}" for i in range(tracks)]
    groups = {f"g{k}": names[k : k + 4] for k in range(0, tracks, 4)}
    console = MixingConsole.from_tracks(names, groups).to(device)
    with torch.no_grad():  # non-trivial parameters: every processor active
        gen = torch.Generator().manual_seed(0)
        for t, p in console.parameter_dict().items():
            values = console.processors[t].random_parameters(len(p[DRY_WET]), gen)
            for k, v in values.items():
                p[k].copy_(v)
    samples = int(seconds * SAMPLE_RATE)
    stems = 0.1 * torch.randn(tracks, 2, samples, device=device)

    def forward(one_by_one: bool):
        with torch.no_grad():
            console.render_graph(stems, one_by_one=one_by_one)

    def forward_backward(one_by_one: bool):
        console.zero_grad(set_to_none=True)
        out = console.render_graph(stems, one_by_one=one_by_one).outputs
        out.square().mean().backward()

    floor = _floor_calls(console, samples, device)

    def floor_forward():
        with torch.no_grad():
            for x, h, c in floor:
                Fn.fft_convolve(x, h, c)

    row = {
        "tracks": tracks,
        "nodes": console.graph.num_nodes,
        "batches": len(console.renderer()),
        "batched_fwd": _time(lambda: forward(False), device, repeats),
        "one_by_one_fwd": _time(lambda: forward(True), device, repeats),
        "batched_fwd_bwd": _time(lambda: forward_backward(False), device, repeats),
        "one_by_one_fwd_bwd": _time(lambda: forward_backward(True), device, repeats),
        "fft_floor_fwd": _time(floor_forward, device, repeats),
    }
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, nargs="+", default=[8, 16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}"
          f", {torch.get_num_threads()} threads), {args.seconds} s stereo at {SAMPLE_RATE} Hz, "
          f"best of {args.repeats}")
    header = ("| tracks | nodes | batches | batched fwd s | 1-by-1 fwd s | speed-up | "
              "batched fwd+bwd s | 1-by-1 fwd+bwd s | speed-up | FFT floor fwd s | fwd / floor |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for tracks in args.tracks:
        r = bench(tracks, args.repeats, device, args.seconds)
        print(f"| {r['tracks']} | {r['nodes']} | {r['batches']} | {r['batched_fwd']:.3f} | "
              f"{r['one_by_one_fwd']:.3f} | {r['one_by_one_fwd'] / r['batched_fwd']:.2f}x | "
              f"{r['batched_fwd_bwd']:.3f} | {r['one_by_one_fwd_bwd']:.3f} | "
              f"{r['one_by_one_fwd_bwd'] / r['batched_fwd_bwd']:.2f}x | {r['fft_floor_fwd']:.3f} | "
              f"{r['batched_fwd'] / r['fft_floor_fwd']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

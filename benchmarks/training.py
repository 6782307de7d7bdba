"""Training throughput of the encoder: triplets per second and peak memory per step.

One step = encoder forward on anchor + positive + negative (3 x batch clips in one call),
InfoNCE, backward, AdamW step. Inputs are random log-mels and mix features of the right shape:
data loading, separation, mel and feature extraction are not included (the data benchmark
measures them).

Each configuration runs in a fresh subprocess so its memory figure is its own:

- CPU: peak resident set size of the process (``resource.getrusage(...).ru_maxrss``, the
  kernel's high-water mark) minus the RSS just before the first step (``/proc/self/statm``),
  i.e. the extra memory the training steps needed (activations, gradients, optimizer state);
- CUDA: ``torch.cuda.max_memory_allocated()`` during the steps (tensor allocations only).

Usage::

    python benchmarks/training.py                      # demo + prototype, CPU or CUDA
    python benchmarks/training.py --configs demo --steps 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

from mixrep.devices import resolve_device
from mixrep.frontend import num_features
from mixrep.models.encoder import INPUT_CHANNELS, EncoderConfig, MixStyleEncoder, count_parameters
from mixrep.training.losses import info_nce

HOP_LENGTH = 512
NUM_FEATURES = num_features()
"""Length of the real mix-feature vector (it only sizes the FiLM generator's first layer)."""


@dataclass(frozen=True)
class BenchConfig:
    """One benchmarked setting."""

    name: str
    encoder: EncoderConfig
    clip_seconds: float
    batch: int
    default_steps: int
    sample_rate: int

    @property
    def frames(self) -> int:
        """Frames of a centred STFT with hop 512: ``1 + samples // hop``."""
        return 1 + int(round(self.clip_seconds * self.sample_rate)) // HOP_LENGTH


CONFIGS: dict[str, BenchConfig] = {
    # configs/demo.yaml: 22.05 kHz, 3 s clips, 64 mels, batch 16; configs/fma.yaml: the prototype.
    "demo": BenchConfig("demo", EncoderConfig.demo(NUM_FEATURES), 3.0, 16, default_steps=5, sample_rate=22_050),
    "prototype": BenchConfig(
        "prototype", EncoderConfig.prototype(NUM_FEATURES), 10.0, 24, default_steps=1, sample_rate=44_100
    ),
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_worker(name: str, steps: int, device: str) -> dict[str, object]:
    """Time ``steps`` training steps (after one warm-up step) of config ``name``."""
    bench = CONFIGS[name]
    cfg = bench.encoder
    torch.manual_seed(0)
    encoder = MixStyleEncoder(cfg).to(device).train()
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=2e-4)
    clips = 3 * bench.batch
    mel = -40.0 + 10.0 * torch.randn(clips, INPUT_CHANNELS, cfg.n_mels, bench.frames, device=device)
    features = torch.randn(clips, NUM_FEATURES, device=device)

    def step() -> float:
        emb = encoder(mel, features)
        anchor, positive, negative = emb.split(bench.batch)
        out = info_nce(anchor, positive, negative)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        return out.loss.item()  # synchronises CUDA

    cuda = device.startswith("cuda")
    rss_before = _rss_bytes()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    step()  # warm-up: allocator, oneDNN/cuDNN kernel selection, optimizer state
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    if cuda:
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        peak_mib = max(peak_rss - rss_before, 0) / 2**20
    mean_seconds = sum(seconds) / len(seconds)
    return {
        "name": name,
        "device": device,
        "threads": torch.get_num_threads(),
        "n_mels": cfg.n_mels,
        "frames": bench.frames,
        "clip_seconds": bench.clip_seconds,
        "batch": bench.batch,
        "embedding_dim": cfg.embedding_dim,
        "n_bands": encoder.n_bands,
        "parameters": count_parameters(encoder),
        "steps": steps,
        "seconds_per_step": mean_seconds,
        "triplets_per_second": bench.batch / mean_seconds,
        "peak_mib": peak_mib,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps (after 1 warm-up)")
    parser.add_argument("--device", default="auto", help="auto (a GPU when present), cpu, cuda, cuda:N")
    parser.add_argument("--worker", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.device = str(resolve_device(args.device))

    if args.worker:
        steps = args.steps or CONFIGS[args.worker].default_steps
        print(json.dumps(run_worker(args.worker, steps, args.device)))
        return

    rows = []
    for name in args.configs:
        command = [sys.executable, __file__, "--worker", name, "--device", args.device]
        if args.steps:
            command += ["--steps", str(args.steps)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"benchmark worker {name!r} failed:\n{result.stderr}")
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))

    memory = "peak CUDA allocated" if args.device.startswith("cuda") else "peak RSS - RSS before"
    print(
        "Encoder training step: forward(anchor+positive+negative) + InfoNCE + backward + AdamW.\n"
        "Inputs are random log-mels/mix features: data loading, separation and feature\n"
        "extraction are NOT included (see the data benchmark).\n"
        f"Memory: {memory} (MiB). Warm-up step excluded; times are means over the timed steps."
    )
    header = (
        f"{'config':<10} {'device':<6} {'thr':>3} {'mels':>4} {'frames':>6} {'batch':>5} "
        f"{'emb':>4} {'bands':>5} {'params':>10} {'steps':>5} {'s/step':>8} "
        f"{'triplets/s':>10} {'mem MiB':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['name']:<10} {r['device']:<6} {r['threads']:>3} {r['n_mels']:>4} "
            f"{r['frames']:>6} {r['batch']:>5} {r['embedding_dim']:>4} {r['n_bands']:>5} "
            f"{r['parameters']:>10,} {r['steps']:>5} {r['seconds_per_step']:>8.2f} "
            f"{r['triplets_per_second']:>10.2f} {r['peak_mib']:>8.0f}"
        )


if __name__ == "__main__":
    main()

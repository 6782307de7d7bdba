"""Clips per second of ``StyleEncoder.embed_stems`` at batch 1 and 32 (front end + encoder).

Weights do not change the cost, so the encoders are freshly initialised at the demo size
(22.05 kHz, 64 mels, 3 s clips, 128-d) and the prototype size (44.1 kHz, 128 mels, 10 s clips,
768-d), unless ``--checkpoint`` gives a trained one. Run: ``python benchmarks/embedding.py``.
"""

from __future__ import annotations

import argparse
import time

import torch

from mixrep.devices import resolve_device
from mixrep.frontend import FrontEndConfig, num_features
from mixrep.inference.style_encoder import StyleEncoder
from mixrep.models.encoder import EncoderConfig, MixStyleEncoder

SIZES = {
    "demo": (EncoderConfig.demo(num_features()),
             FrontEndConfig(sample_rate=22_050, n_mels=64, n_fft=1024, hop_length=512, clip_seconds=3.0)),
    "prototype": (EncoderConfig.prototype(num_features()),
                  FrontEndConfig(sample_rate=44_100, n_mels=128, n_fft=2048, hop_length=512, clip_seconds=10.0)),
}


def clips_per_second(encoder: StyleEncoder, batch: int, repeats: int) -> float:
    stems = 0.1 * torch.randn(batch, 4, 2, int(encoder.clip_seconds * encoder.sample_rate))
    encoder.embed_stems(stems, encoder.sample_rate)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        encoder.embed_stems(stems, encoder.sample_rate)
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="time a trained checkpoint instead")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    encoders = {}
    if args.checkpoint:
        encoders["checkpoint"] = StyleEncoder.from_checkpoint(args.checkpoint, device=device)
    else:
        for name in args.sizes:
            config, frontend = SIZES[name]
            torch.manual_seed(0)
            encoders[name] = StyleEncoder(MixStyleEncoder(config), frontend, model_hash="untrained", device=device)
    print(f"embed_stems throughput on {device} ({torch.get_num_threads()} threads), torch {torch.__version__}")
    print(f"{'encoder':12s} {'clip s':>7s} {'rate Hz':>8s} {'batch':>6s} {'clips/s':>9s}")
    for name, encoder in encoders.items():
        for batch in args.batches:
            repeats = max(1, 64 // batch)
            rate = clips_per_second(encoder, batch, repeats)
            print(f"{name:12s} {encoder.clip_seconds:7.1f} {encoder.sample_rate:8d} {batch:6d} {rate:9.2f}")


if __name__ == "__main__":
    main()

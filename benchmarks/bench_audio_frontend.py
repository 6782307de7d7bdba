"""Per-clip cost of the audio front end: mix features, style augmentation, mel spectrogram.

Prints a table of median / p90 milliseconds per 4 s, 44.1 kHz clip of 4 stereo stems on one
thread. Run: ``python benchmarks/bench_audio_frontend.py [--seconds 4] [--repeats 30]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mixrep.audio.augment import AugmentConfig, StyleAugmenter, apply_chain, sample_chain
from mixrep.audio.features import mix_features
from mixrep.audio.mel import StemMelSpectrogram
from mixrep.constants import SAMPLE_RATE


def _time_ms(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm caches (windows, filters, pedalboard plugins)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), float(np.percentile(times, 90))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    samples = int(args.seconds * SAMPLE_RATE)
    stems = (0.1 * rng.standard_normal((4, 2, samples))).astype(np.float32)
    config = AugmentConfig()
    augmenter = StyleAugmenter(config)
    all_on = AugmentConfig.all_effects(prob=1.0)
    full_chain = sample_chain(all_on, np.random.default_rng(1))
    mel = StemMelSpectrogram()
    batch = torch.from_numpy(stems)

    rows = [
        ("mix_features", lambda: mix_features(stems, SAMPLE_RATE)),
        ("StyleAugmenter (default probs)", lambda: augmenter(stems, rng, SAMPLE_RATE)),
        ("apply_chain (every effect on every stem)", lambda: apply_chain(stems, full_chain, SAMPLE_RATE)),
        ("StemMelSpectrogram", lambda: mel(batch)),
    ]
    print(f"{args.seconds:g} s clip, 4 stereo stems at {SAMPLE_RATE} Hz, {args.repeats} repeats, 1 thread")
    print(f"{'step':45s} {'median ms':>10s} {'p90 ms':>10s}")
    for name, fn in rows:
        median, p90 = _time_ms(fn, args.repeats)
        print(f"{name:45s} {median:10.1f} {p90:10.1f}")


if __name__ == "__main__":
    main()

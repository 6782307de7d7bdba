"""Per-clip cost of the front end: the torch FrontEnd against the previous per-item NumPy path.

Rows, per 4 s clip of 4 stereo stems at 44.1 kHz (``--seconds``, ``--sample-rate``), median over
``--repeats`` rounds in which every row runs once (interleaved, so load from other processes hits
all rows alike):

- ``FrontEnd, CPU`` at several chunk sizes (clips transformed at once), whole batch of ``--batch``;
- its two halves alone: the log-mel and the mix features;
- ``before``: what each DataLoader worker did per item until now: the NumPy/SciPy mix features
  (kept as a test reference in ``tests/frontend/reference_features.py``) plus torchaudio's
  ``MelSpectrogram`` on the 8 stem channels;
- a style chain (``StyleAugmenter``, default probabilities), which stays on the CPU workers;
- with ``--device cuda`` (when a GPU is present): the FrontEnd on the GPU, whole batch.

Run from the repository root: ``python benchmarks/frontend.py [--threads 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchaudio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the NumPy reference

from mixrep.frontend import FrontEnd, FrontEndConfig  # noqa: E402
from mixrep.frontend.features import compute_mix_features  # noqa: E402
from mixrep.frontend.mel import stem_log_mel  # noqa: E402
from mixrep.styles.chains import StyleAugmenter  # noqa: E402
from tests.frontend.reference_features import mix_features as numpy_mix_features  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sample-rate", type=int, default=44_100)
    parser.add_argument("--n-mels", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8, help="clips per FrontEnd call")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default=None, help="also time the FrontEnd on this device (e.g. cuda)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = FrontEndConfig(sample_rate=args.sample_rate, n_mels=args.n_mels, clip_seconds=args.seconds)
    rng = np.random.default_rng(0)
    stems_np = (0.1 * rng.standard_normal((args.batch, 4, 2, config.clip_samples))).astype(np.float32)
    stems = torch.from_numpy(stems_np)
    frontend = FrontEnd(config)
    old_mel = torchaudio.transforms.MelSpectrogram(config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
                                                   n_mels=config.n_mels, f_min=config.f_min, power=2.0)
    augmenter = StyleAugmenter()

    def frontend_chunks(chunk: int):
        def run() -> None:
            frontend.chunk_items = chunk
            frontend(stems)
        return run

    sparse = frontend._sparse_filterbank(frontend.filterbank)
    rows = {
        f"FrontEnd, CPU, chunks of {c} clip{'s' if c > 1 else ''}": frontend_chunks(c)
        for c in sorted({1, 2, args.batch})
    }
    rows["  log-mel alone (chunks of 1)"] = lambda: [
        stem_log_mel(p, frontend.window, frontend.filterbank, config.hop_length, config.log_floor, sparse,
                     rows_per_call=1)
        for p in stems.split(1)]
    rows["  mix features alone (chunks of 1)"] = lambda: [compute_mix_features(p, config.sample_rate)
                                                          for p in stems.split(1)]
    rows["before: NumPy features + torchaudio mel, per item"] = lambda: [
        (numpy_mix_features(s, config.sample_rate), torch.log(old_mel(torch.from_numpy(s).reshape(8, -1)) + 1e-5))
        for s in stems_np]
    rows["  NumPy features alone"] = lambda: [numpy_mix_features(s, config.sample_rate) for s in stems_np]
    rows["style chain (StyleAugmenter, default), per item"] = lambda: [
        augmenter(s, np.random.default_rng(i), config.sample_rate) for i, s in enumerate(stems_np)]
    if args.device:
        device = torch.device(args.device)
        gpu_frontend = FrontEnd(config).to(device)
        gpu_stems = stems.to(device)

        def on_device() -> None:
            gpu_frontend(gpu_stems)
            if device.type == "cuda":
                torch.cuda.synchronize()
        rows[f"FrontEnd on {device}, whole batch"] = on_device

    times: dict[str, list[float]] = {name: [] for name in rows}
    with torch.no_grad():
        for fn in rows.values():
            fn()  # warm-up: caches of layouts, filterbanks, plugins
        for _ in range(args.repeats):
            for name, fn in rows.items():
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) / args.batch)
    print(f"front end per clip: {args.seconds:g} s, 4 stereo stems at {config.sample_rate} Hz, {config.n_mels} mels, "
          f"batch {args.batch}, {args.threads} thread(s), median of {args.repeats}; torch {torch.__version__}")
    print(f"{'step':52s} {'ms/clip':>9s}")
    for name, values in times.items():
        print(f"{name:52s} {1000 * statistics.median(values):9.1f}")


if __name__ == "__main__":
    main()

"""Stage 2 speed (docs/results.md "Stage 2 speed"): training step and ``mixrep mix`` wall time.

1. Training step, forward + backward of the head, the console render and the loss, for one batch
   of B synthetic songs: the batch rendered as one disjoint graph (``ConsoleBatch``, what training
   does) against the same songs rendered one at a time, in one run; songs/s of each, and items/s of
   the data pipeline (one worker's work: two renders per item).
2. ``mixrep mix`` for 4, 16 and 32 tracks of 30 s: reference embedding + head prediction, balance
   matching (three renders of 10 s), the whole-song render, and one refinement step (mean of
   ``--refine-steps``).

    nice -n 5 python benchmarks/transfer.py --head outputs/regression/.../last.ckpt
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mixrep.console.spec import align_track_levels
from mixrep.inference import StyleTransfer
from mixrep.inference.balance import match_balance
from mixrep.inference.style_encoder import load_checkpoint
from mixrep.training.head_data import TransferDataset, collate_transfer
from mixrep.training.regression import RegressionModule


def seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def training_rows(args) -> list[str]:
    transfer = StyleTransfer.from_checkpoint(args.head)
    spec = transfer.spec
    data = TransferDataset(spec, "val", args.batch, num_songs=args.songs, clip_seconds=args.clip_seconds)
    start = time.perf_counter()
    items = [data[i] for i in range(args.batch)]
    items_per_second = args.batch / (time.perf_counter() - start)
    batch = collate_transfer(items)
    checkpoint = load_checkpoint(args.head)  # the Lightning module, rebuilt from the head checkpoint
    hyper = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}  # LightningCLI's own
    hyper["encoder_checkpoint"] = str(args.head)
    module = RegressionModule(**hyper)
    module.load_state_dict(checkpoint["state_dict"])

    def batched():
        module.losses(batch)["loss"].backward()

    def one_at_a_time():
        for i in range(args.batch):
            module.losses(collate_transfer([items[i]]))["loss"].backward()

    rows = []
    t_batched = seconds(batched, args.repeats)
    t_loop = seconds(one_at_a_time, args.repeats)
    rows.append(f"| training step, B = {args.batch} songs of {args.clip_seconds:g} s, batched graph | "
                f"{t_batched:.2f} s | {args.batch / t_batched:.2f} songs/s |")
    rows.append(f"| the same songs one at a time | {t_loop:.2f} s | {args.batch / t_loop:.2f} songs/s "
                f"(batched {t_loop / t_batched:.2f}x) |")
    rows.append(f"| data pipeline (one process) | {1 / items_per_second:.2f} s per item | {items_per_second:.2f} items/s |")
    return rows


def mix_rows(args) -> list[str]:
    transfer = StyleTransfer.from_checkpoint(args.head)
    sr = transfer.sample_rate
    rng = np.random.default_rng(0)
    rows = []
    reference = rng.standard_normal((4, 2, 30 * sr)).astype(np.float32) * 0.05
    stems = ("drums", "bass", "other", "vocals")
    for k in args.tracks:
        raw = torch.from_numpy(rng.standard_normal((k, 2, 30 * sr)).astype(np.float32) * 0.1)
        names, classes = [f"t{i}" for i in range(k)], [stems[i % 4] for i in range(k)]
        aligned = align_track_levels(raw)
        ref = torch.from_numpy(reference)
        start = time.perf_counter()
        embedding = transfer.reference_embedding(reference, sr)
        console = transfer.predict(aligned, names, classes, embedding)
        predict = time.perf_counter() - start
        start = time.perf_counter()
        match_balance(console, aligned, classes, ref)
        balance = time.perf_counter() - start
        start = time.perf_counter()
        console.render_long(aligned)
        render = time.perf_counter() - start
        start = time.perf_counter()
        transfer.refine(console, aligned, classes, embedding, ref, args.refine_steps)
        refine = (time.perf_counter() - start) / max(1, args.refine_steps)
        rows.append(f"| {k} tracks x 30 s | {predict:.2f} s | {balance:.2f} s | {render:.2f} s | {refine:.2f} s |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--head", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--clip-seconds", type=float, default=3.0)
    parser.add_argument("--songs", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tracks", type=int, nargs="+", default=[4, 16, 32])
    parser.add_argument("--refine-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print("| training | time | throughput |\n|---|---|---|")
    print("\n".join(training_rows(args)))
    print("\n| mixrep mix | embed + predict | balance matching | render whole song | refinement per step |\n"
          "|---|---|---|---|---|")
    print("\n".join(mix_rows(args)))


if __name__ == "__main__":
    main()

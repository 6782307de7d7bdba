"""Peak memory of ``mixrep mix`` against song length and track count (issue 27, item 10).

Builds synthetic song folders (each track a different band of noise with a slow level envelope,
WAV at ``--sample-rate``) of every length in ``--minutes`` and track count in ``--tracks``, a short
reference (four stems of 20 s), and unless ``--head`` is given a tiny regression head trained
through the project's CLI (the test suite's tiny encoder and head: egd track chain, 64-bin EQ).
Each ``python -m mixrep.cli mix`` runs in its own process under ``/usr/bin/time -v``; the table
gives its peak resident memory, its wall time, and the sizes that must grow with the song: the
tracks as read (float32) and the written mix (float32).

    python benchmarks/transfer_memory.py                       # 1, 5, 10 minutes x 4, 16 tracks
    python benchmarks/transfer_memory.py --code-root ../mixrep-old --minutes 1 --tracks 4 16

``--code-root`` runs another checkout's ``mixrep`` (the same head) to compare.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixrep.audio.io import write_audio  # noqa: E402

CHUNK_SECONDS = 30


def write_track(path: Path, seconds: float, sample_rate: int, seed: int) -> None:
    """A band of noise with a slow level envelope, written in 30 s pieces joined into one WAV."""
    from pedalboard.io import AudioFile

    rng = np.random.default_rng(seed)
    centre = 60.0 * 2 ** (seed % 8)
    with AudioFile(str(path), "w", samplerate=sample_rate, num_channels=2, bit_depth=32) as f:
        done = 0
        total = int(seconds * sample_rate)
        while done < total:
            n = min(total - done, CHUNK_SECONDS * sample_rate)
            noise = rng.standard_normal((2, n))
            spectrum = np.fft.rfft(noise, axis=-1)
            freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
            spectrum *= np.exp(-0.5 * np.log2(np.maximum(freqs, 1.0) / centre) ** 2)
            band = np.fft.irfft(spectrum, n, axis=-1)
            t = (done + np.arange(n)) / sample_rate
            band *= 0.1 * (1.2 + np.sin(2 * np.pi * t / (3.0 + seed))) / np.abs(band).max()
            f.write(band.astype(np.float32))
            done += n


def make_song(folder: Path, minutes: float, tracks: int, sample_rate: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = ["kick", "snare", "bass", "keys", "guitar", "vox", "pad", "synth"]
    for i in range(tracks):
        write_track(folder / f"{names[i % len(names)]}{i // len(names) + 1}.wav", minutes * 60, sample_rate, i)


def make_reference(folder: Path, sample_rate: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, stem in enumerate(("drums", "bass", "other", "vocals")):
        rng = np.random.default_rng(100 + i)
        write_audio(folder / f"{stem}.wav", (0.05 * (i + 1) * rng.standard_normal((2, 20 * sample_rate))).astype(np.float32),
                    sample_rate)


def tiny_head(root: Path) -> Path:
    """The test suite's tiny encoder and head, trained through the CLI (about a minute on a CPU)."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import tiny_fit_args  # noqa: E402
    from transfer.conftest import tiny_regression_args  # noqa: E402

    from mixrep.cli.train import train_encoder
    from mixrep.cli.train_head import train_head
    from mixrep.training.runs import last_checkpoint_path

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        encoder = Path(last_checkpoint_path(train_encoder(tiny_fit_args(root / "encoder")).trainer))
        return Path(last_checkpoint_path(train_head(tiny_regression_args(root / "head", encoder)).trainer))
    finally:
        os.chdir(cwd)


def measure(code_root: Path, song: Path, reference: Path, head: Path, out: Path) -> tuple[float, float, str]:
    """``(peak RSS GiB, wall seconds, error tail)`` of one ``mixrep mix`` run."""
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": "2"}
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "mixrep.cli", "mix", "--tracks", str(song),
               "--reference-stems", str(reference), "--head", str(head), "--out", str(out)]
    start = time.perf_counter()
    run = subprocess.run(command, env=env, capture_output=True, text=True, cwd=code_root)
    wall = time.perf_counter() - start
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    error = "" if run.returncode == 0 else run.stderr.strip().splitlines()[-1][:80]
    return (int(peak.group(1)) / 2**20 if peak else float("nan")), wall, error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10])
    parser.add_argument("--tracks", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--head", type=Path, default=None, help="a regression head (default: train the tiny one)")
    parser.add_argument("--code-root", type=Path, default=REPO, help="the checkout whose mixrep runs")
    parser.add_argument("--workdir", type=Path, default=None, help="where songs go (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        head = args.head or tiny_head(root / "models")
        reference = root / "reference"
        make_reference(reference, args.sample_rate)
        print(f"code: {args.code_root}; head: {head}; tracks at {args.sample_rate} Hz; reference 20 s")
        print("| minutes | tracks | tracks read (GiB) | mix written (GiB) | peak RSS (GiB) | seconds |")
        print("|---:|---:|---:|---:|---:|---:|")
        for minutes in args.minutes:
            for tracks in args.tracks:
                song = root / f"song_{minutes:g}min_{tracks}tracks"
                make_song(song, minutes, tracks, args.sample_rate)
                samples = int(minutes * 60 * args.sample_rate)
                peak, wall, error = measure(args.code_root, song, reference, head, root / "out" / f"{song.name}.wav")
                print(f"| {minutes:g} | {tracks} | {tracks * 2 * samples * 4 / 2**30:.2f} | {2 * samples * 4 / 2**30:.2f} "
                      f"| {peak:.2f} | {wall:.0f} |" + (f" failed: {error}" if error else ""), flush=True)
                for path in song.iterdir():
                    path.unlink()
                song.rmdir()


if __name__ == "__main__":
    main()

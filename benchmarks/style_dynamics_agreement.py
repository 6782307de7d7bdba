"""Agreement of the torch dynamics (``mixrep.console.style_dynamics``) with the renderer they model.

Random settings from the mixing-style space's ranges (``MixStyleConfig`` with every dynamics
processor on) on the tracks and mixes of synthetic songs; each row compares the torch model with
the reference: the channel strip's compressor and saturation against ``mix_style._render_strip``
(pedalboard), the bus compressor and limiter gains against ``mix_style.compressor_gain`` /
``limiter_gain``, the loudness against pyloudnorm. Errors in dB are over samples within 60 dB of the
reference's peak (its output, or its gain). Also the static curve (a 1 kHz tone, thresholds across
its level), the attack/release times (time to 63 % of a gain step) and the cost of a forward and
backward pass.

Usage: python benchmarks/style_dynamics_agreement.py [--songs 4] [--seconds 4]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pedalboard
import torch

from mixrep.audio.primitives import db_to_gain, rms_db
from mixrep.console.style_dynamics import (
    bus_compressor_gain, channel_compressor, limiter_gain, loudness_lufs, saturation,
)
from mixrep.constants import STEMS
from mixrep.corpora.synthetic import TRACKS, SynthConfig, synthesize_song
from mixrep.styles import mix_style
from mixrep.styles.mix_style import ChannelStrip, MixStyleConfig, sample_mix_style

RATE = 44100
DYNAMICS_ON = {"compressor": {"prob": 1.0}, "saturation": {"prob": 1.0},
               "master": {"compressor_prob": 1.0, "limiter_prob": 1.0}}


def db_errors(model: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """Max abs error (linear), max and mean |dB| error over samples within 60 dB of the reference's peak."""
    loud = np.abs(reference) > 1e-3 * np.abs(reference).max()
    error_db = np.abs(20.0 * np.log10(np.abs(model[loud]) / np.abs(reference[loud])))
    return float(np.abs(model - reference).max()), float(error_db.max()), float(error_db.mean())


def row(label: str, count: int, errors: list[tuple[float, float, float]], note: str = "") -> None:
    values = np.asarray(errors)
    print(f"| {label} | {count} | {values[:, 0].max():.2e} | {values[:, 1].max():.2e} | {values[:, 2].mean():.2e} "
          f"| {note} |")


def time_to_63(gain_db: np.ndarray, start: int) -> float:
    covered = (gain_db[start:] - gain_db[start - 1]) / (gain_db[-1] - gain_db[start - 1])
    return float(np.argmax(covered >= 1.0 - math.exp(-1.0))) / RATE


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    config = MixStyleConfig.from_dict(DYNAMICS_ON)
    names = [name for name, _ in TRACKS]
    synth = SynthConfig(num_songs=args.songs, song_seconds=args.seconds, sample_rate=RATE)
    strips, saturated, bus, limited, loudness = [], [], [], [], []
    for song_index in range(args.songs):
        song = synthesize_song(song_index, synth)
        style = sample_mix_style(config, np.random.default_rng(song_index), (*STEMS, *names))
        for track, name in zip(song.tracks, names):
            if not track.any():  # a silent track: both bypass (tests/console/test_style_dynamics.py)
                continue
            strip = style.strips[name]
            c = strip.compressor
            reference = mix_style._render_strip(track, ChannelStrip(compressor=c), RATE)
            model = channel_compressor(torch.from_numpy(track), c.threshold_db, c.ratio, c.attack_ms, c.release_ms,
                                       c.makeup_db, RATE).numpy()
            strips.append(db_errors(model, reference))
            # the whole dynamics section: compressor, then saturation trimmed from the level before it
            reference = mix_style._render_strip(
                track, ChannelStrip(compressor=c, saturation_drive_db=strip.saturation_drive_db), RATE)
            model = saturation(torch.from_numpy(model), strip.saturation_drive_db, level_db=rms_db(track)).numpy()
            saturated.append(db_errors(model, reference))
        mix = song.tracks.sum(axis=0)
        c = style.master.compressor
        reference = mix_style.compressor_gain(mix, c, RATE)
        model = bus_compressor_gain(torch.from_numpy(mix), c.threshold_db, c.ratio, c.attack_ms, c.release_ms,
                                    c.makeup_db, RATE).numpy()
        bus.append(db_errors(model, reference))
        limiter = style.master.limiter
        driven = (mix * (db_to_gain(limiter.ceiling_db + limiter.drive_db) / np.abs(mix).max())).astype(np.float32)
        reference = mix_style.limiter_gain(driven, limiter.ceiling_db, limiter.release_ms, RATE)
        model = limiter_gain(torch.from_numpy(driven).double(), limiter.ceiling_db, limiter.release_ms, RATE).numpy()
        over_db = 20.0 * np.log10(np.abs(driven * model).max()) - limiter.ceiling_db
        limited.append((*db_errors(model, reference), over_db))
        for scale in (0.1, 1.0, 4.0):
            loudness.append(abs(loudness_lufs(torch.from_numpy(scale * mix), RATE).item()
                                - mix_style.integrated_loudness(scale * mix, RATE)))
    strip_count = len(strips)
    print(f"{args.songs} synthetic songs x {len(names)} tracks ({strip_count} not silent), {args.seconds:g} s at "
          f"{RATE} Hz, settings drawn from MixStyleConfig ranges with every dynamics processor on\n")
    print("| processor (torch vs reference) | signals | max abs error | max dB error | mean dB error | notes |")
    print("|---|---|---|---|---|---|")
    row("channel compressor + make-up vs pedalboard", strip_count, strips)
    row("compressor + saturation vs pedalboard", strip_count, saturated)
    row("bus compressor gain vs mix_style.compressor_gain", args.songs, bus)
    row("limiter gain vs mix_style.limiter_gain", args.songs, [e[:3] for e in limited],
        f"max output peak - ceiling {max(e[3] for e in limited):+.2e} dB")
    print(f"| loudness vs pyloudnorm | {len(loudness)} | | | | max {max(loudness):.2e} LU |")

    # static curve: a steady 1 kHz tone, the threshold (relative to its RMS) across its level
    t = np.arange(RATE // 2) / RATE
    tone = np.tile(0.5 * np.sin(2 * np.pi * 1000.0 * t), (2, 1)).astype(np.float32)
    steady = slice(RATE // 4, None)
    static = []
    for threshold_db in np.arange(-24.0, 7.0, 3.0):
        for ratio in (1.5, 2.0, 4.0, 8.0):
            settings = dict(threshold_db=float(threshold_db), ratio=ratio, attack_ms=1.0, release_ms=50.0)
            reference = mix_style._render_strip(tone, ChannelStrip(compressor=mix_style.CompressorSettings(**settings)),
                                                RATE)
            model = channel_compressor(torch.from_numpy(tone), *settings.values(), 0.0, RATE).numpy()
            static.append(abs(rms_db(model[:, steady]) - rms_db(reference[:, steady])))
    # time constants: a level step up (attack) and down below the threshold (release)
    step = np.full((2, 2 * RATE), 0.02, dtype=np.float32)
    step[:, RATE // 4:RATE] = 0.8
    times = []
    for attack_ms, release_ms in ((0.5, 30.0), (5.0, 100.0), (40.0, 400.0)):
        settings = (0.0, 4.0, attack_ms, release_ms, 0.0)
        plugin = pedalboard.Compressor(threshold_db=rms_db(step), ratio=4.0, attack_ms=attack_ms,
                                       release_ms=release_ms)
        reference = plugin(step, RATE)
        model = channel_compressor(torch.from_numpy(step), *settings, RATE).numpy()
        for signal in (reference, model):
            gain_db = 20.0 * np.log10(signal[0] / step[0])
            times.append((time_to_63(gain_db[:RATE], RATE // 4), time_to_63(gain_db[RATE // 4:], RATE - RATE // 4)))
    relative = [abs(m - r) / r for r, m in zip(times[0::2], times[1::2]) for r, m in zip(r, m)]
    print(f"| static curve, 1 kHz tone, thresholds -24..+6 dB, ratios 1.5..8 | {len(static)} | | "
          f"{max(static):.2e} | {np.mean(static):.2e} | output RMS level |")
    print(f"| attack / release time to 63 % of the gain step | {len(relative)} | | | | "
          f"max relative error {max(relative):.2e} |")

    # cost: forward + backward of the channel compressor on one song's tracks (the loop runs on the CPU)
    tracks = torch.from_numpy(synthesize_song(0, synth).tracks).double()
    threshold = torch.full((len(names),), -12.0, dtype=torch.float64, requires_grad=True)
    channel_compressor(tracks, threshold, 4.0, 5.0, 50.0, 0.0, RATE).sum().backward()  # compile / load the kernels
    start = time.perf_counter()
    channel_compressor(tracks, threshold, 4.0, 5.0, 50.0, 0.0, RATE).sum().backward()
    torch_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for track in tracks.float().numpy():
        pedalboard.Compressor(threshold_db=-20.0, ratio=4.0, attack_ms=5.0, release_ms=50.0)(track, RATE)
    pedalboard_seconds = time.perf_counter() - start
    print(f"\nchannel compressor on {len(names)} tracks x {args.seconds:g} s: torch forward + backward "
          f"{1000 * torch_seconds:.0f} ms, pedalboard forward {1000 * pedalboard_seconds:.0f} ms")


if __name__ == "__main__":
    main()

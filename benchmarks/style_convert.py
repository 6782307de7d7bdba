"""Round trip of the mixing-style settings through the differentiable console.

Draws ``--styles`` mix styles (four stem strips each, the default :class:`MixStyleConfig`),
converts each to a console (:func:`console_from_style`, no tracks) and back
(:func:`style_from_console`), and prints per setting the largest error of the round trip, and
the EQ fit's RMS error in dB on the 20 Hz - 20 kHz log grid (per strip: median, 90th percentile,
largest, share under 0.5 dB; the master EQ separately), with the seconds per style. The console's
EQ holds the style's curve exactly at its bins, but renders it through a Hann-windowed FIR: the
``console EQ as rendered`` row is the RMS dB distance between that FIR's response and the
style's curve on the same grid (points above -34 dB). The reverb rows compare the console reverb's
impulse response with Freeverb's (send included) per octave band: RT60 (Schroeder integral) and
energy::

    python benchmarks/style_convert.py [--styles 12] [--sample-rate 44100] [--threads 1]

With ``--graph parameters.json --stems DIR`` it instead reads that console (e.g. what ``mixrep
console fit`` wrote) and prints its EQ fit error per track, without and with the tracks (the
tracks weight the fit where they have energy), and the multi-resolution STFT distance between the
console's render and the nearest settings rendered with pedalboard (what ``mixrep mix --export
pedalboard`` writes), next to the loudness-matched plain sum's distance to the console's render::

    python benchmarks/style_convert.py --graph FIT/parameters.json --stems CASE/stems
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from mixrep.audio.io import read_audio
from mixrep.console import MixingConsole
from mixrep.console import functional as Fn
from mixrep.console.loss import multi_resolution_stft_distance
from mixrep.console.spec import normalise_loudness
from mixrep.console.strips import strip_nodes
from mixrep.console.style_convert import _strip_eq_response_db, console_from_style, eq_fit_grid, style_from_console
from mixrep.constants import STEMS
from mixrep.styles.mix_style import MixStyleConfig, integrated_loudness, render_mix, sample_mix_style


def _rendered_eq_errors(console, style, grid: torch.Tensor, sample_rate: int) -> list[float]:
    """RMS dB distance between each EQ strip's rendered FIR response and the style's curve on ``grid``."""
    ranks, out = console.graph.type_rank(), []
    log_magnitude = console.parameter_dict()["eq"]["log_magnitude"].detach().double()
    n_fft = 1 << 16
    frequencies = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    for k, name in enumerate(STEMS):
        strip = style.strips[name]
        if not (strip.eq or strip.highpass_hz is not None or strip.lowpass_hz is not None):
            continue
        v = strip_nodes(console.graph)["track"][k]["eq"]
        fir = Fn.zero_phase_fir(log_magnitude[ranks[v]])
        response = 20.0 * torch.log10(torch.fft.rfft(fir, n=n_fft).abs().clamp(min=1e-12))
        rendered = torch.from_numpy(np.interp(grid.numpy(), frequencies.numpy(), response.numpy()))
        target = _strip_eq_response_db(strip, grid, sample_rate)
        keep = target > -34.0
        out.append(float(((rendered - target)[keep] ** 2).mean().sqrt()))
    return out


OCTAVES_HZ = (250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)


def _band_decay(ir: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per octave band of a mono IR: RT60 in seconds (Schroeder integral, -5 to -25 dB, x3) and energy in dB."""
    spectrum = np.fft.rfft(ir)
    frequencies = np.fft.rfftfreq(len(ir), 1.0 / sample_rate)
    rt60, energy = [], []
    for centre in OCTAVES_HZ:
        band = np.fft.irfft(spectrum * ((frequencies >= centre / math.sqrt(2)) & (frequencies < centre * math.sqrt(2))),
                            n=len(ir))
        tail = np.cumsum(band[::-1] ** 2)[::-1]
        edc = 10.0 * np.log10(np.maximum(tail / tail[0], 1e-30))
        start, stop = np.argmax(edc <= -5.0), np.argmax(edc <= -25.0)
        rt60.append(3.0 * (stop - start) / sample_rate if stop > start else float("nan"))
        energy.append(10.0 * math.log10(max(tail[0], 1e-30)))
    return np.asarray(rt60), np.asarray(energy)


def _reverb_distance(console, style, sample_rate: int) -> list[tuple[float, float]]:
    """For each strip sending to the reverb: the console reverb's (relative RT60 error, energy error in dB)
    against Freeverb's, median over octave bands, mid channel, send included."""
    from mixrep.console.style_convert import _freeverb_ir

    reverb = console.processors["reverb"]
    ranks, out = console.graph.type_rank(), []
    params = console.parameter_dict()["reverb"]
    for k, name in enumerate(STEMS):
        strip = style.strips[name]
        if style.reverb is None or strip.reverb_send_db is None:
            continue
        r = ranks[strip_nodes(console.graph)["track"][k]["reverb"]]
        with torch.no_grad():
            ours = reverb.impulse_response(params["init_log_magnitude"][r:r + 1], params["delta_log_magnitude"][r:r + 1])
        ours = ours[0].double().numpy().mean(0)  # the wet path (dry/wet 0.5 with the +6 dB gain: unity)
        theirs = _freeverb_ir(style.reverb.room_size, style.reverb.damping, style.reverb.width, sample_rate,
                              reverb.ir_samples).mean(0) * 10.0 ** (strip.reverb_send_db / 20.0)
        rt_ours, e_ours = _band_decay(ours, sample_rate)
        rt_theirs, e_theirs = _band_decay(theirs, sample_rate)
        out.append((float(np.nanmedian(np.abs(rt_ours - rt_theirs) / rt_theirs)), float(np.median(e_ours - e_theirs))))
    return out


def _convert_graph(graph: Path, stems_dir: Path | None) -> int:
    console = MixingConsole.from_json(graph)
    tracks = None
    if stems_dir is not None:
        tracks = torch.stack([torch.from_numpy(read_audio(stems_dir / f"{n}.wav", console.sample_rate))
                              for n in console.track_names])
    rows = {}
    for label, given in (("without tracks", None), ("with the tracks", tracks)):
        if label == "with the tracks" and tracks is None:
            continue
        start = time.perf_counter()
        rows[label] = (style_from_console(console, tracks=given).report.eq_fit_error_db, time.perf_counter() - start)
    names = list(next(iter(rows.values()))[0])
    print("| EQ fit error (weighted dB RMS) | " + " | ".join(names) + " | seconds |")
    print("|---|" + "---|" * (len(names) + 1))
    for label, (errors, seconds) in rows.items():
        print(f"| {label} | " + " | ".join(f"{errors[n]:.2f}" for n in names) + f" | {seconds:.1f} |")
    if tracks is not None:
        _rendered_distance(console, tracks)
    return 0


def _rendered_distance(console: MixingConsole, tracks: torch.Tensor) -> None:
    """The console's render against the nearest settings rendered with pedalboard, and the plain sum's scale."""
    rate = console.sample_rate
    mix = console.render_long(tracks).numpy()
    style = style_from_console(console, tracks=tracks).style  # loudness target: the console's mix
    names = console.track_names
    pedalboard = render_mix(tracks.numpy(), style, rate, names, ["other"] * len(names)).sum(axis=0)
    plain = normalise_loudness(tracks.numpy().sum(axis=0)[None], rate, integrated_loudness(mix, rate))[0]
    print()
    print("| render | multi-resolution STFT distance to the console's render |")
    print("|---|---|")
    for label, audio in (("nearest settings, pedalboard", pedalboard), ("plain sum, loudness-matched", plain)):
        print(f"| {label} | {multi_resolution_stft_distance(torch.from_numpy(audio), torch.from_numpy(mix)):.3f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", type=int, default=12)
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--graph", type=Path, default=None, help="a console's graph JSON to convert instead")
    parser.add_argument("--stems", type=Path, default=None, help="with --graph: its tracks' folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.graph is not None:
        return _convert_graph(args.graph, args.stems)
    rng = np.random.default_rng(args.seed)
    fader, pan, width, send, strip_errors, master_errors, seconds = [], [], [], [], [], [], []
    rendered_errors, reverb_distances = [], []
    grid = eq_fit_grid(args.sample_rate)
    for _ in range(args.styles):
        style = sample_mix_style(MixStyleConfig(), rng, STEMS)
        start = time.perf_counter()
        console = console_from_style(style, list(STEMS), list(STEMS), sample_rate=args.sample_rate).console
        back = style_from_console(console)
        seconds.append(time.perf_counter() - start)
        rendered_errors += _rendered_eq_errors(console, style, grid, args.sample_rate)
        reverb_distances += _reverb_distance(console, style, args.sample_rate)
        for name in STEMS:
            a, b = style.strips[name], back.style.strips[name]
            makeup = a.compressor.makeup_db if a.compressor is not None else 0.0
            fader.append(abs(a.fader_db + makeup - b.fader_db))
            pan.append(abs(a.pan - b.pan))
            width.append(abs((a.width if a.width is not None else 1.0) - (b.width if b.width is not None else 1.0)))
            for x, y in ((a.delay_send_db if style.delay else None, b.delay_send_db),
                         (a.reverb_send_db if style.reverb else None, b.reverb_send_db)):
                if x is not None and y is not None:
                    send.append(abs(x - y))
            if a.eq or a.highpass_hz is not None or a.lowpass_hz is not None:
                strip_errors.append(back.report.eq_fit_error_db[name])
        if style.master.eq:
            master_errors.append(back.report.eq_fit_error_db["master"])
    print(f"{args.styles} styles x {len(STEMS)} strips at {args.sample_rate} Hz, "
          f"{np.mean(seconds):.1f} s per style (both ways)")
    print("| setting | round-trip error (largest) |")
    print("|---|---|")
    print(f"| fader + make-up (dB) | {max(fader):.2e} |")
    print(f"| pan | {max(pan):.2e} |")
    print(f"| width | {max(width):.2e} |")
    print(f"| delay / reverb send (dB) | {max(send) if send else float('nan'):.2e} |")
    print()
    print("| EQ fit | curves | median dB RMS | 90th pct | largest | under 0.5 dB |")
    print("|---|---|---|---|---|---|")
    for label, errors in (("strip (HP/LP + shelves + 2 peaks)", strip_errors), ("master (shelves)", master_errors),
                          ("console EQ as rendered (FIR) vs the style's curve", rendered_errors)):
        e = np.asarray(errors)
        if len(e):
            print(f"| {label} | {len(e)} | {np.median(e):.3f} | {np.percentile(e, 90):.3f} | {e.max():.3f} | "
                  f"{(e < 0.5).mean():.2f} |")
    if reverb_distances:
        rt, level = np.asarray(reverb_distances).T
        print()
        print("| reverb: console (filtered noise) vs Freeverb, mid channel | strips | median | largest |")
        print("|---|---|---|---|")
        print(f"| RT60 relative error (median over octave bands 250 Hz - 8 kHz) | {len(rt)} | {np.median(rt):.2f} | "
              f"{rt.max():.2f} |")
        print(f"| energy difference dB (median over the bands) | {len(level)} | {np.median(level):+.2f} | "
              f"{level[np.abs(level).argmax()]:+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

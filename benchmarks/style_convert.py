"""Round trip of the mixing-style settings through the differentiable console.

Draws ``--styles`` mix styles (four stem strips each, the default :class:`MixStyleConfig`),
converts each to a console (:func:`console_from_style`, no tracks) and back
(:func:`style_from_console`), and prints per setting the largest error of the round trip, and
the EQ fit's RMS error in dB on the 20 Hz - 20 kHz log grid (per strip: median, 90th percentile,
largest, share under 0.5 dB; the master EQ separately), with the seconds per style::

    python benchmarks/style_convert.py [--styles 12] [--sample-rate 44100] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mixrep.console.style_convert import console_from_style, style_from_console
from mixrep.constants import STEMS
from mixrep.styles.mix_style import MixStyleConfig, sample_mix_style


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", type=int, default=12)
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    fader, pan, width, send, strip_errors, master_errors, seconds = [], [], [], [], [], [], []
    for _ in range(args.styles):
        style = sample_mix_style(MixStyleConfig(), rng, STEMS)
        start = time.perf_counter()
        console = console_from_style(style, list(STEMS), list(STEMS), sample_rate=args.sample_rate).console
        back = style_from_console(console)
        seconds.append(time.perf_counter() - start)
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
    for label, errors in (("strip (HP/LP + shelves + 2 peaks)", strip_errors), ("master (shelves)", master_errors)):
        e = np.asarray(errors)
        if len(e):
            print(f"| {label} | {len(e)} | {np.median(e):.3f} | {np.percentile(e, 90):.3f} | {e.max():.3f} | "
                  f"{(e < 0.5).mean():.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The torch renderer of the mixing-style space (``render_style``) against the pedalboard one (``render_mix``).

Renders random styles (``sample_mix_style(MixStyleConfig(), rng, names=...)``) on songs of the
soundfont corpus with both renderers and prints, mean +- std over the style/song pairs:

* the multi-resolution STFT distance torch vs pedalboard (spectral convergence + log-magnitude L1,
  averaged over FFT sizes 512 / 1024 / 2048 with hops 50 / 120 / 240 and windows 240 / 600 / 1200,
  the setting of Yamamoto, Song & Kim, "Parallel WaveGAN", ICASSP 2020, as auraloss uses it), on
  the mix, per channel;
* feature errors of the mix: integrated loudness (pyloudnorm, LU), per-stem RMS level (dB, stems
  above -80 dBFS), spectral centroid of the mid (Hz), Bark-band power of the mid (dB, mean over 24
  bands) and side/mid energy ratio (``mixrep.console.audio_features.MixFeatures``);
* the same numbers between the pedalboard renderings of two different random styles of the same
  song: the scale that says how small the agreement error is;
* per-processor rows: styles in which only that processor is present (every other setting
  neutral: faders 0 dB, pan centre; the loudness target always applies), drawn with that
  processor's ranges, so a distance is attributed to a processor. Their scale is the distance
  between two draws of that processor.

Run: ``python benchmarks/style_renderer_agreement.py [--songs 4] [--styles 4] [--pairs-per-processor 4]
[--seconds 6] [--corpus DIR]``
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pedalboard
import torch

from mixrep.audio.fluidsynth import installed_soundfonts
from mixrep.console.audio_features import MixFeatures
from mixrep.console.loss import multi_resolution_stft_distance
from mixrep.console.style_render import StyleTensors, bus_fft_lengths, render_buses, render_style
from mixrep.constants import STEMS
from mixrep.corpora.soundfont import SoundfontCorpusConfig, SoundfontSource, render_corpus
from mixrep.styles.mix_style import (
    ChannelStrip,
    MasterBus,
    MixStyle,
    MixStyleConfig,
    ReverbBus,
    integrated_loudness,
    render_mix,
    sample_mix_style,
)

def _level_db(stems: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.square(stems.astype(np.float64)).mean(axis=(-2, -1)) + 1e-30)


def compare(estimate: np.ndarray, target: np.ndarray, features: MixFeatures, sample_rate: int) -> dict[str, float]:
    """Distance and feature errors of two renderings ``(stems=4, 2, samples)``."""
    mix_est, mix_ref = torch.from_numpy(estimate.sum(0)), torch.from_numpy(target.sum(0))
    heard = _level_db(target) > -80.0
    with torch.no_grad():
        f_est, f_ref = features(mix_est), features(mix_ref)
    return {
        "mrstft": multi_resolution_stft_distance(mix_est, mix_ref),
        "loudness LU": abs(integrated_loudness(estimate.sum(0), sample_rate)
                           - integrated_loudness(target.sum(0), sample_rate)),
        "stem level dB": float(np.abs(_level_db(estimate) - _level_db(target))[heard].mean()),
        "centroid Hz": float((f_est["spectral_centroid_hz"] - f_ref["spectral_centroid_hz"]).abs().mean()),
        "Bark dB": float((f_est["bark_mid_db"] - f_ref["bark_mid_db"]).abs().mean()),
        "side/mid": float((f_est["stereo_width"] - f_ref["stereo_width"]).abs().mean()),
    }


EVERY_EFFECT = MixStyleConfig().every_processor()
"""Default ranges with every processor present (the per-processor rows keep one of them)."""


def _only_strip(keep: tuple[str, ...]):
    def reduce(style: MixStyle) -> MixStyle:
        strips = {name: ChannelStrip(**{k: getattr(s, k) for k in keep}) for name, s in style.strips.items()}
        delay = style.delay if "delay_send_db" in keep else None
        reverb = style.reverb if "reverb_send_db" in keep else None
        return MixStyle(strips, delay, reverb, MasterBus(), style.loudness_lufs)
    return reduce


def _only_master(field: str):
    def reduce(style: MixStyle) -> MixStyle:
        strips = {name: ChannelStrip() for name in style.strips}
        return MixStyle(strips, None, None, MasterBus(**{field: getattr(style.master, field)}), style.loudness_lufs)
    return reduce


PROCESSORS = {
    "fader + pan + width": _only_strip(("fader_db", "pan", "width")),
    "high-pass / low-pass": _only_strip(("highpass_hz", "lowpass_hz")),
    "EQ": _only_strip(("eq",)),
    "compressor": _only_strip(("compressor",)),
    "saturation": _only_strip(("saturation_drive_db",)),
    "delay bus": _only_strip(("delay_send_db",)),
    "reverb bus": _only_strip(("reverb_send_db",)),
    "master EQ": _only_master("eq"),
    "bus compressor": _only_master("compressor"),
    "limiter": _only_master("limiter"),
}


def _songs(corpus: Path, count: int, seconds: float, sample_rate: int) -> list[tuple[np.ndarray, list, list]]:
    soundfonts = installed_soundfonts()
    if not soundfonts:
        raise SystemExit("no soundfont installed (apt-get install fluid-soundfont-gm)")
    config = SoundfontCorpusConfig(num_songs=count, song_seconds=max(seconds + 2.0, 4.0), sample_rate=sample_rate)
    render_corpus(corpus, config, soundfonts[0], progress=False)
    source = SoundfontSource(corpus, sample_rate, min_seconds=seconds)
    songs = []
    for track in source.tracks()[:count]:
        song = source.multitrack(track)
        songs.append((source.read_tracks(track, 1.0, seconds), list(song.names), list(song.stems)))
    return songs


def tail_truncation(tracks: np.ndarray, sample_rate: int, tails_db: tuple[float, ...]) -> list[tuple[float, int, float]]:
    """The reverb bus at its longest (room size 0.95, damping 0.1) on a song's summed tracks, torch against
    pedalboard, per ``tail_db``: ``(tail_db, FFT length, max |error| / peak in dB)``."""
    send = tracks.sum(axis=0)
    plugin = pedalboard.Reverb(room_size=0.95, damping=0.1, width=1.0, wet_level=1.0 / 3.0, dry_level=0.0)
    reference = plugin(send, sample_rate)
    style = MixStyle({stem: ChannelStrip(reverb_send_db=0.0) for stem in STEMS}, reverb=ReverbBus(0.95, 0.1, 1.0))
    tensors = StyleTensors.from_style(style, ["drums"], ["drums"]).map(lambda x: x.unsqueeze(0))
    sends = torch.zeros(1, len(STEMS), *send.shape)
    sends[0, 0] = torch.from_numpy(send)
    rows = []
    for tail_db in tails_db:
        with torch.no_grad():
            ours = render_buses(torch.zeros_like(sends), sends, tensors, sample_rate, tail_db)[0, 0].numpy()
        n_fft = bus_fft_lengths(tensors, send.shape[-1], sample_rate, tail_db)[1]
        error = np.abs(ours - reference).max() / np.abs(reference).max()
        rows.append((tail_db, n_fft, 20.0 * math.log10(max(error, 1e-12))))
    return rows


def _summary(rows: list[dict[str, float]], key: str) -> str:
    values = np.array([r[key] for r in rows])
    return f"{values.mean():.2g} ± {values.std():.1g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=4)
    parser.add_argument("--styles", type=int, default=4, help="random styles per song")
    parser.add_argument("--pairs-per-processor", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--corpus", type=Path, default=None, help="soundfont corpus folder (kept; default a temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rate = args.sample_rate
    features = MixFeatures(rate)
    with tempfile.TemporaryDirectory() as tmp:
        songs = _songs(args.corpus or Path(tmp) / "corpus", args.songs, args.seconds, rate)
    rng = np.random.default_rng(args.seed)
    timing = {"pedalboard": 0.0, "torch": 0.0}

    def draw(config: MixStyleConfig, names: list[str]) -> MixStyle:
        return sample_mix_style(config, rng, names=(*STEMS, *names))

    def both(tracks: np.ndarray, style: MixStyle, names: list, stems: list) -> tuple[np.ndarray, np.ndarray]:
        start = time.perf_counter()
        reference = render_mix(tracks, style, rate, names, stems)
        timing["pedalboard"] += time.perf_counter() - start
        start = time.perf_counter()
        with torch.no_grad():
            ours = render_style(torch.from_numpy(tracks), StyleTensors.from_style(style, names, stems), rate).numpy()
        timing["torch"] += time.perf_counter() - start
        return ours, reference

    cases: dict[str, tuple[list, list]] = {}
    agree, scale = [], []
    for tracks, names, stems in songs:
        for _ in range(args.styles):
            ours, reference = both(tracks, draw(MixStyleConfig(), names), names, stems)
            other = render_mix(tracks, draw(MixStyleConfig(), names), rate, names, stems)
            agree.append(compare(ours, reference, features, rate))
            scale.append(compare(other, reference, features, rate))
    cases["random styles (default ranges)"] = (agree, scale)
    for label, reduce in PROCESSORS.items():
        agree, scale = [], []
        for i in range(args.pairs_per_processor):
            tracks, names, stems = songs[i % len(songs)]
            ours, reference = both(tracks, reduce(draw(EVERY_EFFECT, names)), names, stems)
            other = render_mix(tracks, reduce(draw(EVERY_EFFECT, names)), rate, names, stems)
            agree.append(compare(ours, reference, features, rate))
            scale.append(compare(other, reference, features, rate))
        cases[f"only {label}"] = (agree, scale)

    keys = list(cases["random styles (default ranges)"][0][0])
    pairs = args.songs * args.styles
    print(f"{len(songs)} soundfont songs x {args.styles} styles ({pairs} pairs; per-processor rows "
          f"{args.pairs_per_processor} pairs), {args.seconds:g} s at {rate} Hz, mean ± std; torch vs pedalboard, "
          f"and (scale) pedalboard renderings of two different styles\n")
    print("| case | MR-STFT torch vs pedalboard | MR-STFT scale | " + " | ".join(keys[1:]) + " |")
    print("|---|---|---|" + "---|" * (len(keys) - 1))
    for label, (agree, scale) in cases.items():
        print(f"| {label} | {_summary(agree, 'mrstft')} | {_summary(scale, 'mrstft')} | "
              + " | ".join(_summary(agree, k) for k in keys[1:]) + " |")
    agree, scale = cases["random styles (default ranges)"]
    print("| scale: two random styles | " + f"{_summary(scale, 'mrstft')} | | "
          + " | ".join(_summary(scale, k) for k in keys[1:]) + " |")
    calls = pairs + len(PROCESSORS) * args.pairs_per_processor
    print(f"\nrender time per call (one thread): pedalboard {timing['pedalboard'] / calls:.2f} s, "
          f"torch {timing['torch'] / calls:.2f} s")
    print("\nThe reverb bus's FFT length against its tail (room size 0.95, damping 0.1, the longest tail; the "
          f"first song's {args.seconds:g} s, summed tracks as the send): max |torch - pedalboard| / peak\n")
    print("| tail_db | FFT length | max error dB re peak |")
    print("|---|---|---|")
    for tail_db, n_fft, error_db in tail_truncation(songs[0][0], rate, (20.0, 40.0, 60.0, 80.0, 100.0)):
        print(f"| {tail_db:g} | {n_fft} | {error_db:.1f} |")
    if not math.isfinite(sum(r["mrstft"] for r in agree)):
        raise SystemExit("non-finite distance")


if __name__ == "__main__":
    main()

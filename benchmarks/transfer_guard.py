"""The guarded ``mixrep mix`` against today's head, balance matching alone and the plain sum.

Items (all on songs no head trained on, styles of the mixing-style space drawn with seeds of their own):

* domains: ``synth`` (the numpy synth's test split), ``soundfont`` (songs played by the held-out
  soundfont MuseScore_General, which no head trains on), ``outside`` (those soundfont tracks through
  pedalboard chorus, phaser or distortion: effects outside the training vocabulary);
* references: ``same`` (the reference *is* the target: song X in style s, given as stems) and
  ``cross`` (song Y in style s; the target is X in style s).

Every reference is handed over at a level off the training references' -14 LUFS (a gain drawn in
+-12 dB per item), as real stems arrive. The whole song (``--seconds``) is mixed. Methods:

* ``sum``: the plain sum of the level-aligned tracks;
* ``balance``: the console at its measured prior (flat EQ, ratio 1, width 1, dry echoes), faders
  balance-matched to the reference (:meth:`~mixrep.inference.StyleTransfer.balanced_prior`);
* ``head``: today's ``mixrep mix`` before this change: the head on the whole song at once, the
  reference as given, then balance matching;
* ``head kept``: ``StyleTransfer.mix`` with the guard's clips, confidence, fallback, ranges and
  timing, rendering the head's settings (``mixrep mix --keep-head``);
* ``guarded``: ``StyleTransfer.mix`` with its defaults: the same, then whichever of the head's
  settings, settings half-way from the measured prior and balance matching alone sits closest to
  the reference's spectra (:meth:`~mixrep.inference.StyleTransfer.select`);
* ``half-way``: always the middle candidate (every setting half-way from the measured prior to the
  head's kept settings, faders balance-matched again), for comparison.

Scores: the audio loss (:class:`~mixrep.console.MixLoss` of RMS-normalised mixes, what the heads
train on) and feature errors (:func:`~mixrep.console.audio_features.feature_errors`), mean and
spread over heads (``--heads``, e.g. three seeds); the share of items where a method is worse
than ``balance`` (audio loss more than 1 % higher); the largest peak-to-RMS ratio over the plain
sum's (dB; the written file's true-peak ceiling is the writer's, not measured here); counts of
tracks panned beyond 0.9 where the reference stem's stereo extent is under 0.9, and of timing drifts
(the best lag of a rendered stem's loudness envelope against the plain sum of its tracks beyond 20 ms,
for any stem: :func:`~mixrep.inference.guard.timing_lag_ms`).

Run: ``python benchmarks/transfer_guard.py --heads A.ckpt [B.ckpt C.ckpt] [--items 2] [--seconds 9]``
(``--diagnose`` prints the diagnosis of docs/transfer.md instead).
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from mixrep.styles.mix_style import MixStyleConfig, integrated_loudness, render_mix, sample_mix_style
from mixrep.console import MixLoss, rms_normalise
from mixrep.console.audio_features import feature_errors
from mixrep.constants import STEMS
from mixrep.corpora.synthetic import TRACKS, SynthConfig, split_for_index, synthesize_song
from mixrep.console.spec import align_track_levels
from mixrep.inference import StyleTransfer
from mixrep.inference.balance import match_balance
from mixrep.inference.balance import console_stems
from mixrep.inference.guard import CANDIDATES, GuardConfig, plain_stems, stereo_extent, timing_lag_ms, track_pans
from mixrep.inference.report import physical_report

REPO = Path(__file__).resolve().parents[1]
METHODS = ("sum", "balance", "head", "head kept", "half-way", "guarded")
SCORES = ("audio_loss", "rms_db", "bark_mid_db", "stereo_width")
DRIFT_MS = 20.0
WORSE = 1.01
"""A method is worse than balance matching alone on an item when its audio loss is more than 1 % higher."""


def peak_at_loudness(mix: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    """Peak of ``mix`` ``(2, samples)`` set to ``reference``'s integrated loudness (as ``mixrep mix`` writes it)."""
    target, loudness = integrated_loudness(reference, sample_rate), integrated_loudness(mix, sample_rate)
    gain = 10.0 ** ((target - loudness) / 20.0) if math.isfinite(target) and math.isfinite(loudness) else 1.0
    return float(np.abs(mix).max()) * gain


def pedalboard_effect(tracks: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Each track through one of chorus, phaser or distortion (outside the training vocabulary)."""
    import pedalboard

    out = []
    for track in tracks:
        effect = [pedalboard.Chorus(rate_hz=1.5, depth=0.5, mix=0.6), pedalboard.Phaser(rate_hz=0.8, mix=0.7),
                  pedalboard.Distortion(drive_db=18.0)][int(rng.integers(3))]
        out.append(pedalboard.Pedalboard([effect])(track.astype(np.float32), sample_rate))
    return np.stack(out).astype(np.float32)


CALIBRATION_SYNTH_OFFSET = 5
"""Calibration items use the synth's test songs from this one on (the evaluation uses the first ones)."""
SEEDS = {False: {"soundfont": 7, "effects": 11, "styles": 1000}, True: {"soundfont": 8, "effects": 12, "styles": 5000}}
"""Seeds of the evaluation's items (False) and of the calibration's (True): other songs, effects and styles."""


def songs(domain: str, count: int, seconds: float, sample_rate: int,
          calibration: bool = False) -> list[tuple[np.ndarray, list[str], list[str]]]:
    """``count + 1`` songs of ``domain``: ``(tracks (K, 2, samples), names, stems)``."""
    if domain == "synth":
        config = SynthConfig(num_songs=96, song_seconds=seconds, sample_rate=sample_rate)
        test = [i for i in range(96) if split_for_index(i, 96, 0.1, 0.1) == "test"]
        test = test[CALIBRATION_SYNTH_OFFSET:] if calibration else test
        test = test[: count + 1]
        return [(synthesize_song(i, config).tracks, [n for n, _ in TRACKS], [s for _, s in TRACKS]) for i in test]
    from mixrep.corpora.rendered import render_soundfont_corpus

    source = render_soundfont_corpus("MuseScore_General", corpus_dir=REPO / "outputs" / "corpora",
                                     seed=SEEDS[calibration]["soundfont"],
                                     songs=count + 1, song_seconds=seconds, sample_rate=sample_rate, progress=False)
    if source is None:
        raise SystemExit("the held-out soundfont MuseScore_General or FluidSynth is missing "
                         "(as root: bash scripts/install_system_deps.sh)")
    out, rng = [], np.random.default_rng(SEEDS[calibration]["effects"])
    for song in source.tracks()[: count + 1]:
        multi = source.multitrack(song)
        tracks = source.read_tracks(song, 0.0, song.duration_seconds)
        if domain == "outside":
            tracks = pedalboard_effect(tracks, sample_rate, rng)
        out.append((tracks, list(multi.names), list(multi.stems)))
    return out


def today(transfer: StyleTransfer, tracks: torch.Tensor, names, stems, reference: torch.Tensor):
    """``mixrep mix`` before the guard: the whole song at once, the reference as given, balance matching."""
    embedding = transfer.reference_embedding(reference, transfer.sample_rate, normalise=False)
    console = transfer.predict_graph(tracks, names, stems, embedding, max_clips=0).console
    match_balance(console, tracks, stems, reference)
    return console


def evaluate(heads: list[str], items: int, seconds: float, domains: list[str], calibration: bool = False) -> dict:
    loss = None
    results: dict = {}
    transfers = [StyleTransfer.from_checkpoint(h, device="cpu") for h in heads]
    rate = transfers[0].sample_rate
    for domain in domains:
        pool = songs(domain, items, seconds, rate, calibration)
        for ref_kind in ("same", "cross"):
            for i in range(items):
                tracks_np, names, stems = pool[i]
                rng = np.random.default_rng(SEEDS[calibration]["styles"] + 7 * i + (ref_kind == "cross"))
                style = sample_mix_style(MixStyleConfig(), rng, names=list(names) + list(STEMS))
                target_stems = render_mix(tracks_np, style, rate, names, stems)
                if ref_kind == "same":
                    ref_np = target_stems
                else:
                    other_tracks, other_names, other_stems = pool[i + 1]  # another song in the same style
                    ref_np = render_mix(other_tracks, style, rate, other_names, other_stems)
                gain = 10.0 ** (float(rng.uniform(-12.0, 12.0)) / 20.0)
                reference = torch.from_numpy(ref_np * np.float32(gain))
                target = torch.from_numpy(target_stems.sum(0))
                aligned = align_track_levels(torch.from_numpy(tracks_np).float())
                plain = aligned.sum(0)
                extent = stereo_extent(reference)
                for h, transfer in enumerate(transfers):
                    if loss is None:
                        loss = MixLoss(rate)
                    mixes, consoles = {"sum": plain}, {}
                    consoles["balance"] = transfer.balanced_prior(names, stems, aligned, reference)
                    consoles["head"] = today(transfer, aligned, names, stems, reference)
                    start = time.perf_counter()
                    result = transfer.mix(tracks_np, reference.numpy(), names, stems)
                    guard_seconds = time.perf_counter() - start
                    consoles["guarded"] = result.console
                    consoles["head kept"] = result.console if result.guard.selected == "head" else transfer.mix(
                        tracks_np, reference.numpy(), names, stems, guard=GuardConfig(select=False)).console
                    consoles["half-way"] = transfer.candidates(consoles["head kept"], aligned, stems, reference)["half-way"]
                    with torch.no_grad():
                        for m, console in consoles.items():
                            mixes[m] = console.render_long(aligned)
                    for m, mix in mixes.items():
                        mix = mix[..., : target.shape[-1]]
                        values = {"audio_loss": float(loss(rms_normalise(mix[None]), rms_normalise(target[None])))}
                        values.update(feature_errors(rms_normalise(mix[None]), rms_normalise(target[None]), rate))
                        # peak over the plain sum's peak at the same RMS (the written file's ceiling is the writer's)
                        values["peak_db"] = 20 * math.log10(float(mix.abs().max()) / float(mix.pow(2).mean().sqrt())
                                                            / (float(plain.abs().max()) / float(plain.pow(2).mean().sqrt())))
                        values["hard_pans"] = values["drift"] = 0.0
                        if m in consoles:
                            with torch.no_grad():
                                rendered = console_stems(consoles[m], aligned, stems)
                            values["drift"] = float(timing_lag_ms(rendered, plain_stems(aligned, stems), rate) > DRIFT_MS)
                            values["hard_pans"] = float(sum(
                                1 for p, s in zip(track_pans(consoles[m]), stems) if abs(float(p)) > 0.9
                                and float(extent[STEMS.index(s)]) < 0.9))
                        if m == "guarded":
                            values["seconds"] = guard_seconds
                            values["selected"] = result.guard.selected
                        results.setdefault((domain, ref_kind, m), {}).setdefault(h, []).append(values)
                print(f"{domain} {ref_kind} item {i}: " + ", ".join(
                    f"{m} {np.mean([v[-1]['audio_loss'] for v in results[(domain, ref_kind, m)].values()]):.2f}"
                    for m in METHODS), flush=True)
    return results


def diagnose_case(transfer: StyleTransfer, tracks_np: np.ndarray, names, stems, reference: np.ndarray,
                  sample_rate: int, fixed: bool) -> dict[str, float]:
    """The head's inputs and outputs on one song: before the fixes (``fixed`` False: the whole song
    at once, the reference as given, its z-scores unclamped and degenerate inputs kept, no guard) or
    after (``StyleTransfer.mix``)."""
    import mixrep.models.head as regression
    from mixrep.inference.guard import decoder_logits
    from mixrep.inference.style_transfer import prepare_tracks

    limit, degenerate = regression.REFERENCE_Z_LIMIT, regression.DEGENERATE_SCALE
    if not fixed:  # the head's standardisation before: no clamp, degenerate inputs as they come
        regression.REFERENCE_Z_LIMIT, regression.DEGENERATE_SCALE = float("inf"), -1.0
    try:
        raw = prepare_tracks(tracks_np, sample_rate, transfer.sample_rate)
        aligned = align_track_levels(raw)
        ref = torch.from_numpy(np.asarray(reference, dtype=np.float32))
        embedding = transfer.reference_embedding(ref, transfer.sample_rate, normalise=fixed)
        z = transfer.reference_z(embedding)
        prediction = transfer.predict_graph(aligned, names, stems, embedding, max_clips=8 if fixed else 0)
        rows = prediction.track_clip_rows.median(0).values  # (K, size)
        logits = decoder_logits(rows, transfer.track_layout)
        spread = transfer.track_layout.normalise(rows).std(0, unbiased=False).mean() if len(names) > 1 else torch.zeros(())
        if fixed:
            result = transfer.mix(tracks_np, reference, names, stems, sample_rate=sample_rate)
            console, mix = result.console, result.mix
        else:
            console = prediction.console
            match_balance(console, aligned, stems, ref)
            with torch.no_grad():
                mix = console.render_long(aligned).numpy()
        report = physical_report(console)
        strips = list(report["tracks"].values())
        with torch.no_grad():
            lag = timing_lag_ms(console_stems(console, aligned, stems), plain_stems(aligned, stems), transfer.sample_rate)
        return {"max_z": float(z.abs().max()), "logits_beyond_4": float((logits.abs() > 4).float().mean()),
                "track_spread": float(spread), "eq_max_db": max(max(abs(v) for v in s["eq"]["curve_db"].values())
                                                              for s in strips if "eq" in s) if "eq" in strips[0] else 0.0,
                "width_max": max(s["imager"]["width"] for s in strips) if "imager" in strips[0] else 1.0,
                "pan_abs_max": max(abs(s["gain_pan"]["pan"]) for s in strips),
                "delay_wet": max(s["delay"]["dry_wet"] for s in strips) if "delay" in strips[0] else 0.0,
                "delay_ms": max(s["delay"]["delay_ms"] for s in strips) if "delay" in strips[0] else 0.0,
                "reverb_wet": max(s["reverb"]["dry_wet"] for s in strips) if "reverb" in strips[0] else 0.0,
                "peak_dbfs": 20 * math.log10(peak_at_loudness(mix, ref.sum(0).numpy(), transfer.sample_rate) + 1e-12),
                "lag_ms": lag}
    finally:
        regression.REFERENCE_Z_LIMIT, regression.DEGENERATE_SCALE = limit, degenerate


def diagnose(head: str, seconds: float) -> str:
    """The diagnosis table of docs/transfer.md: five kinds of input, before and after the fixes."""
    from mixrep.training.head_data import TransferDataset

    transfer = StyleTransfer.from_checkpoint(head, device="cpu")
    rate = transfer.sample_rate
    config = SynthConfig(num_songs=96, song_seconds=seconds, sample_rate=rate)
    names, stems = [n for n, _ in TRACKS], [s for _, s in TRACKS]
    x, y = synthesize_song(5, config).tracks, synthesize_song(13, config).tracks
    style = sample_mix_style(MixStyleConfig(), np.random.default_rng(7), names=names + list(STEMS))
    reference = render_mix(y, style, rate, names, stems)
    item = TransferDataset(transfer.spec, "train", 1, seed=99, **{k: transfer.data_config[k] for k in (
        "num_songs", "song_seconds", "clip_seconds") if k in transfer.data_config})[0]
    cases = {"(a) a training-like item (3 s, -14 LUFS reference)": (item["tracks"].numpy(), item["names"],
                                                                      item["stems"], item["reference"].numpy(), rate)}
    cases["(a') synth song, reference at -14 LUFS"] = (x, names, stems, reference, rate)
    cases["(a'') same, reference +10 dB"] = (x, names, stems, reference * np.float32(10 ** 0.5), rate)
    x44 = SynthConfig(num_songs=96, song_seconds=seconds, sample_rate=44100)
    cases["(b) 44.1 kHz tracks"] = (synthesize_song(5, x44).tracks, names, stems, reference, 44100)
    cases["(c) tracks +30 dB"] = (x * np.float32(10 ** 1.5), names, stems, reference, rate)
    z = synthesize_song(21, config).tracks
    many = np.concatenate([x, y, z[:1]])
    many_names = [f"{n}{i}" for i in range(3) for n in names][:13]
    cases["(d) 13 tracks"] = (many, many_names, (stems * 3)[:13], reference, rate)
    sf = songs("soundfont", 1, seconds, rate)[0]
    cases["(e) MuseScore_General tracks"] = (sf[0], sf[1], sf[2], reference, rate)
    columns = ("max_z", "logits_beyond_4", "track_spread", "eq_max_db", "width_max", "pan_abs_max", "delay_wet",
               "delay_ms", "reverb_wet", "peak_dbfs", "lag_ms")
    lines = ["| input | code | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for name, (tracks, n, s, ref, sr) in cases.items():
        for fixed in (False, True):
            d = diagnose_case(transfer, tracks, n, s, ref, sr, fixed)
            lines.append(f"| {name} | {'guarded' if fixed else 'before'} | " + " | ".join(
                f"{d[c]:.3g}" for c in columns) + " |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def calibrate(head: str, items: int, seconds: float) -> str:
    """The confidence signals on songs of the synth's *training* split in styles of seeds 99 and up
    (none of the evaluation's songs or styles): per processor type, the 10 % quantile and median of
    each signal and of the confidence, and the share of strips the defaults make fall back."""
    transfer = StyleTransfer.from_checkpoint(head, device="cpu")
    rate = transfer.sample_rate
    config = SynthConfig(num_songs=96, song_seconds=seconds, sample_rate=rate)
    train = [i for i in range(96) if split_for_index(i, 96, 0.1, 0.1) == "train"][: items + 1]
    names, stems = [n for n, _ in TRACKS], [s for _, s in TRACKS]
    values: dict[tuple[str, str], list[float]] = {}
    zs = []
    for i in range(items):
        style = sample_mix_style(MixStyleConfig(), np.random.default_rng(99 + i), names=names + list(STEMS))
        reference = render_mix(synthesize_song(train[i + 1], config).tracks, style, rate, names, stems)
        result = transfer.mix(synthesize_song(train[i], config).tracks, reference, names, stems,
                              guard=GuardConfig(select=False))
        zs.append(result.guard.reference_max_z)
        for key in ("tracks", "buses"):
            for strip, types in result.guard.signals[key].items():
                for t, signals in types.items():
                    for name, v in {**signals, "confidence": result.guard.confidence[key][strip][t]}.items():
                        values.setdefault((t, name), []).append(v)
                    values.setdefault((t, "fell back"), []).append(float(t in result.guard.fell_back[key][strip]))
    lines = [f"reference max |z| over {items} items: median {np.median(zs):.2f}, max {np.max(zs):.2f}",
             "| type | clips q10/median | bound q10/median | identical q10/median | confidence q10/median | fell back |",
             "|---|---|---|---|---|---|"]
    for t in dict.fromkeys(k[0] for k in values):
        cells = [f"{np.quantile(values[(t, n)], 0.1):.2f} / {np.median(values[(t, n)]):.2f}"
                 for n in ("clips", "bound", "identical", "confidence")]
        lines.append(f"| {t} | " + " | ".join(cells) + f" | {np.mean(values[(t, 'fell back')]):.2f} |")
    return "\n".join(lines)


def table(results: dict, heads: int) -> str:
    lines = ["| domain | reference | method | audio loss | rms dB | bark mid dB | width | worse than balance | "
             "peak re sum dB | hard pans | drifts |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(d, r) for d, r, _ in results}, key=lambda k: (["synth", "soundfont", "outside"].index(k[0]), k[1]))
    for domain, ref_kind in keys:
        for m in METHODS:
            per_head = results[(domain, ref_kind, m)]
            cells = []
            for score in SCORES:
                means = [np.mean([v[score] for v in per_head[h]]) for h in per_head]
                cells.append(f"{np.mean(means):.3f} +- {np.std(means):.3f}" if heads > 1 else f"{np.mean(means):.3f}")
            balance = results[(domain, ref_kind, "balance")]
            worse = [a["audio_loss"] > WORSE * b["audio_loss"] for h in per_head for a, b in zip(per_head[h], balance[h])]
            counts = {c: int(sum(v[c] for h in per_head for v in per_head[h])) for c in ("hard_pans", "drift")}
            peak = max(v["peak_db"] for h in per_head for v in per_head[h])
            lines.append(f"| {domain} | {ref_kind} | {m} | " + " | ".join(cells) + f" | {sum(worse)}/{len(worse)} | "
                         f"{peak:.1f} | {counts['hard_pans']} | {counts['drift']} |")
    for m in ("head", "head kept", "half-way", "guarded"):
        pairs = [(a["audio_loss"], b["audio_loss"]) for (d, r, mm), per_head in results.items() if mm == m
                 for h in per_head for a, b in zip(per_head[h], results[(d, r, "balance")][h])]
        worse = sum(a > WORSE * b for a, b in pairs)
        lines.append(f"{m}: worse than balance matching alone on {worse}/{len(pairs)} items ({100 * worse / len(pairs):.0f} %)")
    chosen = [v["selected"] for (d, r, mm), per_head in results.items() if mm == "guarded" for h in per_head
              for v in per_head[h]]
    lines.append("guarded rendered " + ", ".join(f"{c} on {chosen.count(c)}/{len(chosen)}" for c in CANDIDATES))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--heads", nargs="+", required=True, help="head checkpoints (e.g. three seeds)")
    p.add_argument("--items", type=int, default=2, help="items per domain and reference kind")
    p.add_argument("--seconds", type=float, default=9.0, help="song length")
    p.add_argument("--domains", nargs="+", default=["synth", "soundfont", "outside"])
    p.add_argument("--diagnose", action="store_true", help="print the diagnosis table (first head) instead")
    p.add_argument("--calibrate", action="store_true",
                   help="print the confidence signals on training-split songs (first head; how the defaults were chosen)")
    p.add_argument("--calibration-items", action="store_true",
                   help="score other songs, effects and styles than the evaluation's (how the selection was chosen)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(2)
    if args.diagnose:
        print(diagnose(args.heads[0], args.seconds))
        return 0
    if args.calibrate:
        print(calibrate(args.heads[0], args.items, args.seconds))
        return 0
    start = time.perf_counter()
    results = evaluate(args.heads, args.items, args.seconds, args.domains, args.calibration_items)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    print(f"\n{len(args.heads)} heads, {args.items} items per domain and reference, {args.seconds:g} s songs; "
          f"mean +- std over heads; worse than balance / clipped / hard pans / drifts: counts over heads and items")
    print(table(results, len(args.heads)))
    print(f"commit {commit}, {platform.machine()} {torch.get_num_threads()} threads, "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

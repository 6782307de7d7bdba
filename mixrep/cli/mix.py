"""``mixrep mix``: mix a folder of raw tracks in the style of a reference song."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    mix = subparsers.add_parser(
        "mix", help="mix raw tracks in a reference's style with a trained regression head",
        description="Predict every console setting from the reference's style embedding and the raw tracks, "
                    "optionally refine them, render the whole song at the tracks' own sample rate and the reference's "
                    "loudness under a true-peak ceiling, and write the settings in physical units and a comparison "
                    "figure, all or none. Track names come from the file names; stem classes from --groups, the "
                    "folder's groups.json ({track: class} or {class: [tracks]}), or the names (kick -> drums...). "
                    "Mono tracks are centred (L = R); the head sees the middle 30 s at its own rate; tracks of "
                    "different lengths or sample rates in one folder are refused, and so is a silent reference.")
    mix.add_argument("--tracks", type=Path, required=True, help="folder of one song's track files")
    ref = mix.add_mutually_exclusive_group(required=True)
    ref.add_argument("--reference", type=Path, help="the reference mix (separated with the encoder's Demucs)")
    ref.add_argument("--reference-stems", type=Path, help="folder of the reference's stems (drums, bass, other, vocals)")
    mix.add_argument("--head", type=Path, required=True, help="regression-head checkpoint (configs/regression.yaml)")
    mix.add_argument("--encoder", type=Path, default=None,
                     help="style-encoder checkpoint (default: the one inside the head checkpoint; another one is refused)")
    mix.add_argument("--out", type=Path, required=True,
                     help="the mix, written at the tracks' sample rate (.wav, .flac, .aiff, .ogg, .mp3); not "
                          "inside the tracks folder")
    mix.add_argument("--params-out", type=Path, default=None,
                     help="the run's report: inputs, guard, levels, the console's settings and the mix-style "
                          "settings (JSON; default: OUT with .json)")
    mix.add_argument("--style-out", type=Path, default=None,
                     help="the mix's settings in the one settings format, for `mixrep export` and DAWs "
                          "(default: OUT with .style.json; docs/export.md)")
    mix.add_argument("--export", default="",
                     help="comma-separated: pedalboard (the settings rendered with real plugins, OUT with "
                          ".pedalboard.wav, its distance to the mix reported), reaper (OUT with .rpp), dawproject "
                          "(OUT with .dawproject)")
    mix.add_argument("--figure", type=Path, default=None, help="comparison figure (default: OUT with .png)")
    mix.add_argument("--refine-steps", type=int, default=0, help="inference-time refinement steps (default 0)")
    mix.add_argument("--refine-embedding-weight", type=float, default=0.0,
                     help="weight of the style-embedding distance in the refinement objective (default 0: the "
                          "stems' audio features alone, which measured better; see StyleTransfer.refine)")
    mix.add_argument("--groups", type=Path, default=None,
                     help="JSON mapping track names to stem classes ({\"kick\": \"drums\"}) or stem classes to "
                          "track names ({\"drums\": [\"kick\"]})")
    mix.add_argument("--sparse", action="store_true",
                     help="render only the processors the head predicts in the reference's graph, and draw that "
                          "graph (OUT with .graph.png)")
    mix.add_argument("--no-balance", action="store_true",
                     help="keep the head's stem balance (default: move the faders to the reference's stem "
                          "levels and stereo balance)")
    mix.add_argument("--keep-threshold", type=float, default=0.5, help="with --sparse: keep probability threshold")
    mix.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    mix.add_argument("--true-peak-db", type=float, default=-1.0,
                     help="true-peak ceiling of the written mix in dBTP (default -1): after loudness matching, a "
                          "mix whose true peak (4x oversampled, ITU-R BS.1770-4) exceeds it is lowered by a plain "
                          "gain, reported on the terminal and in the settings JSON")
    mix.add_argument("--force", action="store_true",
                     help="allow outputs inside the tracks or reference folder (an input file is never overwritten)")
    mix.add_argument("--report", action="store_true",
                     help="print the guard's confidence per track and setting, which settings fell back to the "
                          "measured prior, and how the mix compares with the plain sum and with balance matching "
                          "alone on the reference's features (params.json always holds them)")
    mix.add_argument("--wide-ranges", action="store_true",
                     help="allow every setting the console can render, not only the engineer's ranges (EQ +-12 dB, "
                          "width up to 2, pan within the reference stem's stereo, ratio up to 10; docs/transfer.md)")
    mix.add_argument("--no-guard", action="store_true",
                     help="use the head's settings as predicted: no confidence fallback, no range clamp (for comparison)")
    mix.add_argument("--keep-head", action="store_true",
                     help="render the head's settings even when settings half-way to the measured prior or balance "
                          "matching alone sit closer to the reference's spectra (default: render the closest; "
                          "docs/transfer.md)")
    mix.add_argument("--clips", type=int, default=8,
                     help="the head runs on up to this many clips of its training length, the settings are their "
                          "median and their disagreement a confidence signal (0: the whole song at once; default 8)")
    mix.add_argument("--weights", type=Path, default=None,
                     help="with --reference: local Demucs weights to separate it (.th/.safetensors file or demucs "
                          "model folder; see `mixrep separate --help`), instead of the pretrained model the head's "
                          "encoder names. A checkpoint never chooses a weights file: one it records is ignored")
    mix.set_defaults(func=run_mix)


def reference_inputs(args: argparse.Namespace) -> list[Path]:
    """The reference's files, header-checked (before any model is loaded)."""
    from mixrep.inference.inputs import check_reference_files, reference_stem_files

    if args.reference_stems is not None:
        return list(reference_stem_files(args.reference_stems))
    check_reference_files([args.reference])
    return [args.reference]


def read_reference(args: argparse.Namespace, transfer):
    """Reference stems ``(4, 2, samples)`` (NumPy float32) at the console's rate, refused when silent."""
    import torch
    import torchaudio

    from mixrep.inference.inputs import read_reference_mix, read_reference_stems
    from mixrep.inference.style_transfer import reference_loudness

    rate = transfer.sample_rate
    if args.reference_stems is not None:
        stems = read_reference_stems(args.reference_stems, rate)
        reference_loudness(torch.from_numpy(stems), rate, f"the reference {args.reference_stems}")
        return stems
    separator = transfer.encoder.separator
    mix = read_reference_mix(args.reference, separator.sample_rate)
    reference_loudness(torch.from_numpy(mix)[None], separator.sample_rate, f"the reference {args.reference}")
    stems = separator.separate(torch.from_numpy(mix)[None])[0]
    return torchaudio.functional.resample(stems, separator.sample_rate, rate).numpy()


def keep_report(transfer, names: list[str], stems: list[str], keep_probability) -> dict[str, float]:
    """``{node name: probability}`` of the full console's processors (the predicted graph)."""
    graph = transfer.spec.graph(names, stems)
    return {name: round(float(p), 3) for name, t, p in zip(graph.node_names, graph.node_types, keep_probability)
            if t not in ("input", "mix", "output")}


def run_mix(args: argparse.Namespace) -> int:
    from mixrep.inference.figure import transfer_profiles
    from mixrep.datasets.song_folder import read_song, song_files
    from mixrep.inference.mix_exports import export_report, mix_export, parse_exports
    from mixrep.inference.outputs import mix_settings, plan_outputs, write_mix_outputs
    from mixrep.inference.guard import GuardConfig, format_guard_report
    from mixrep.inference.style_transfer import StyleTransfer

    if args.refine_steps < 0:
        raise ValueError(f"--refine-steps must be >= 0, got {args.refine_steps}")
    if not 0.0 <= args.keep_threshold <= 1.0:
        raise ValueError(f"--keep-threshold must be in [0, 1], got {args.keep_threshold}")
    if not -60.0 <= args.true_peak_db <= 0.0:
        raise ValueError(f"--true-peak-db must be between -60 and 0 dBTP, got {args.true_peak_db}")
    if args.clips < 0:
        raise ValueError(f"--clips must be >= 0, got {args.clips}")
    exports = parse_exports(args.export)
    guard = GuardConfig(enabled=not args.no_guard, wide_ranges=args.wide_ranges, select=not args.keep_head)
    reference_files = reference_inputs(args)
    folders = {"tracks folder": args.tracks}
    if args.reference_stems is not None:
        folders["reference folder"] = args.reference_stems
    inputs = [*song_files(args.tracks), *reference_files, args.head,
              *(p for p in (args.encoder, args.weights, args.groups, args.tracks / "groups.json") if p is not None)]
    outputs = plan_outputs(args.out, args.params_out, args.figure, args.sparse, inputs, folders, args.force,
                           args.style_out, exports)
    song = read_song(args.tracks, args.groups)
    transfer = StyleTransfer.from_checkpoint(args.head, device=args.device, encoder_checkpoint=args.encoder,
                                             separator_weights=args.weights)
    reference = read_reference(args, transfer)
    result = transfer.mix(song.tracks, reference, song.names, song.stems, sample_rate=song.sample_rate,
                          refine_steps=args.refine_steps, refine_embedding_weight=args.refine_embedding_weight,
                          sparse=args.sparse, keep_threshold=args.keep_threshold, balance=not args.no_balance,
                          guard=guard, max_clips=args.clips, true_peak_db=args.true_peak_db)
    settings = mix_settings(result, args.head, song.names, song.stems, args.refine_steps, args.sparse,
                            keep_report(transfer, song.names, song.stems, result.keep_probability))
    export = mix_export(result, song, exports)
    settings.update(export_report(export, result, outputs.exports))
    profiles = transfer_profiles(result.console, song.tracks, result.track_gains, song.stems, result.sample_rate,
                                 reference, transfer.sample_rate)
    title = (f"{args.tracks.name} in the style of {(args.reference or args.reference_stems).name} "
             f"(mix at {result.sample_rate} Hz)")
    write_mix_outputs(outputs, result, settings, profiles, title, export)
    text = format_guard_report(result.guard) if args.report else "\n".join(f"WARNING: {w}" for w in result.guard.warnings)
    if text:
        print(text)
    levels = result.levels
    print(f"wrote {outputs.audio} ({result.mix.shape[-1] / result.sample_rate:.1f} s at {result.sample_rate} Hz, "
          f"{levels.lufs:.1f} LUFS, true peak {levels.true_peak_db:+.2f} dBTP"
          + (f", lowered {-levels.ceiling_gain_db:.2f} dB to the {levels.ceiling_db:g} dBTP ceiling"
             if levels.ceiling_gain_db < 0 else "")
          + f"), report {outputs.settings}, settings {outputs.style}, figure {outputs.figure}"
          + (f", graph {outputs.graph} ({result.console.graph.num_processors()} processors kept)"
             if outputs.graph else ""))
    for target, path in outputs.exports.items():
        line = f"wrote {path}"
        if target == "pedalboard":
            distance = settings["exports"]["pedalboard"]
            line += (f" (multi-resolution STFT distance to the mix {distance['stft_distance_to_mix']:.3f}; the raw "
                     f"sum's {distance['raw_sum_stft_distance_to_mix']:.3f})")
        print(line)
    return 0

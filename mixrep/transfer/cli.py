"""``mixrep mix``: mix a folder of raw tracks in the style of a reference song."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    mix = subparsers.add_parser(
        "mix", help="mix raw tracks in a reference's style with a trained regression head",
        description="Predict every console setting from the reference's style embedding and the raw tracks, "
                    "optionally refine them, render the whole song at the reference's loudness, and write the "
                    "settings in physical units and a comparison figure. Track names come from the file names; "
                    "stem classes from --groups, the folder's groups.json, or the names (kick -> drums...). Mono "
                    "tracks are centred (L = R); tracks are resampled to the console's rate; tracks of different "
                    "lengths or sample rates in one folder are refused.")
    mix.add_argument("--tracks", type=Path, required=True, help="folder of one song's track files")
    ref = mix.add_mutually_exclusive_group(required=True)
    ref.add_argument("--reference", type=Path, help="the reference mix (separated with the encoder's Demucs)")
    ref.add_argument("--reference-stems", type=Path, help="folder of the reference's stems (drums, bass, other, vocals)")
    mix.add_argument("--head", type=Path, required=True, help="regression-head checkpoint (configs/regression.yaml)")
    mix.add_argument("--encoder", type=Path, default=None,
                     help="style-encoder checkpoint (default: the one inside the head checkpoint; another one is refused)")
    mix.add_argument("--out", type=Path, required=True, help="the mix (WAV keeps peaks above 0 dBFS)")
    mix.add_argument("--params-out", type=Path, default=None, help="settings in physical units (JSON)")
    mix.add_argument("--figure", type=Path, default=None, help="comparison figure (default: OUT with .png)")
    mix.add_argument("--refine-steps", type=int, default=0, help="inference-time refinement steps (default 0)")
    mix.add_argument("--refine-embedding-weight", type=float, default=0.0,
                     help="weight of the style-embedding distance in the refinement objective (default 0: the "
                          "stems' audio features alone, which measured better; see StyleTransfer.refine)")
    mix.add_argument("--groups", type=Path, default=None, help="JSON mapping track names to stem classes")
    mix.add_argument("--sparse", action="store_true",
                     help="render only the processors the head predicts in the reference's graph, and draw that "
                          "graph (OUT with .graph.png)")
    mix.add_argument("--no-balance", action="store_true",
                     help="keep the head's stem balance (default: move the faders to the reference's stem "
                          "levels and stereo balance)")
    mix.add_argument("--keep-threshold", type=float, default=0.5, help="with --sparse: keep probability threshold")
    mix.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    mix.add_argument("--report", action="store_true",
                     help="print the guard's confidence per track and setting, which settings fell back to the "
                          "measured prior, and how the mix compares with the plain sum and with balance matching "
                          "alone on the reference's features (params.json always holds them)")
    mix.add_argument("--wide-ranges", action="store_true",
                     help="allow every setting the console can render, not only the engineer's ranges (EQ +-12 dB, "
                          "width up to 2, pan within the reference stem's stereo, ratio up to 10; docs/transfer.md)")
    mix.add_argument("--no-guard", action="store_true",
                     help="use the head's settings as predicted: no confidence fallback, no range clamp (for comparison)")
    mix.add_argument("--fallback-if-worse", action="store_true",
                     help="render balance matching alone when the head's mix is further from the reference's "
                          "features than it (default: keep the head's mix and print a warning; docs/transfer.md has "
                          "the measured trade-off)")
    mix.add_argument("--clips", type=int, default=8,
                     help="the head runs on up to this many clips of its training length, the settings are their "
                          "median and their disagreement a confidence signal (0: the whole song at once; default 8)")
    mix.set_defaults(func=run_mix)


def read_track_folder(folder: Path, sample_rate: int, groups_path: Path | None):
    """``(tracks (K, 2, samples), names, stems)`` of the one song in ``folder``.

    Raises:
        DatasetError: not a folder of one song's tracks, tracks that disagree, or a groups file
            naming tracks that are not there.
    """
    from mixrep.data.multitrack_sources import TrackFolderSource, _read_groups
    from mixrep.errors import DatasetError

    source = TrackFolderSource(folder, sample_rate=sample_rate, min_seconds=1.0, val_fraction=0.0, test_fraction=0.0)
    songs = source.tracks()
    if len(songs) != 1:
        raise DatasetError(f"{folder} holds {len(songs)} songs ({', '.join(s.track_id for s in songs[:4])}...); "
                           f"pass the folder of one song's track files")
    song = source.multitrack(songs[0])
    names, stems = list(song.names), list(song.stems)
    if groups_path is not None:
        if not groups_path.is_file():
            raise DatasetError(f"groups file {groups_path} does not exist")
        groups = _read_groups(groups_path)
        files = {t.path.name: t.name for t in song.tracks}
        missing = [k for k in groups if k not in names and k not in files]
        if missing:
            raise DatasetError(f"{groups_path} names tracks that are not in {folder}: {missing}; tracks: {names}")
        for key, stem in groups.items():
            stems[names.index(files.get(key, key))] = stem
    tracks = source.read_tracks(songs[0], 0.0, songs[0].duration_seconds)
    return tracks, names, stems


def read_reference(args: argparse.Namespace, transfer):
    """Reference stems ``(4, 2, samples)`` (NumPy float32) at the console's rate."""
    import numpy as np
    import torch
    import torchaudio

    from mixrep.audio.io import read_audio
    from mixrep.files import require_stem_files

    rate = transfer.sample_rate
    if args.reference_stems is not None:
        stems = [read_audio(p, rate) for p in require_stem_files(args.reference_stems)]
        length = min(s.shape[-1] for s in stems)
        return np.stack([s[..., :length] for s in stems])
    separator = transfer.encoder.separator
    mix = read_audio(args.reference, separator.sample_rate)
    stems = separator.separate(torch.from_numpy(mix)[None])[0]
    return torchaudio.functional.resample(stems, separator.sample_rate, rate).numpy()


def keep_report(transfer, names: list[str], stems: list[str], keep_probability) -> dict[str, float]:
    """``{node name: probability}`` of the full console's processors (the predicted graph)."""
    graph = transfer.spec.graph(names, stems)
    return {name: round(float(p), 3) for name, t, p in zip(graph.node_names, graph.node_types, keep_probability)
            if t not in ("input", "mix", "output")}


def run_mix(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from mixrep.audio.io import write_audio
    from mixrep.constants import STEMS
    from mixrep.data.transfer import align_track_levels
    from mixrep.files import atomic_write_text
    from mixrep.transfer.balance import BalanceMoves, console_stems
    from mixrep.transfer.figure import mix_profile, plot_transfer
    from mixrep.transfer.guard import GuardConfig, format_guard_report
    from mixrep.transfer.style_transfer import StyleTransfer

    if args.refine_steps < 0:
        raise ValueError(f"--refine-steps must be >= 0, got {args.refine_steps}")
    transfer = StyleTransfer.from_checkpoint(args.head, device=args.device, encoder_checkpoint=args.encoder)
    tracks, names, stems = read_track_folder(args.tracks, transfer.sample_rate, args.groups)
    reference = read_reference(args, transfer)
    if not 0.0 <= args.keep_threshold <= 1.0:
        raise ValueError(f"--keep-threshold must be in [0, 1], got {args.keep_threshold}")
    if args.clips < 0:
        raise ValueError(f"--clips must be >= 0, got {args.clips}")
    guard = GuardConfig(enabled=not args.no_guard, wide_ranges=args.wide_ranges, check=args.fallback_if_worse)
    result = transfer.mix(tracks, reference, names, stems, refine_steps=args.refine_steps,
                          refine_embedding_weight=args.refine_embedding_weight, sparse=args.sparse,
                          keep_threshold=args.keep_threshold, balance=not args.no_balance, guard=guard,
                          max_clips=args.clips)
    write_audio(args.out, result.mix, result.sample_rate)
    moves = result.balance or BalanceMoves({}, {})
    params_out = args.params_out or args.out.with_suffix(".json")
    atomic_write_text(params_out, json.dumps({
        "head": str(args.head), "tracks": names, "stems": stems, "refine_steps": args.refine_steps,
        "refine_losses": [round(x, 5) for x in result.refine_losses], "sparse": args.sparse,
        "balance": {"level_db": {c: round(v, 2) for c, v in moves.level_db.items()},
                    "stereo_db": {c: round(v, 2) for c, v in moves.stereo_db.items()}},
        "keep_probability": keep_report(transfer, names, stems, result.keep_probability), **result.report,
        "guard": result.guard.as_dict()}, indent=1))
    text = format_guard_report(result.guard) if args.report else "\n".join(f"WARNING: {w}" for w in result.guard.warnings)
    if text:
        print(text)
    graph_png = result.console.draw(args.out.with_suffix(".graph.png"), title="predicted graph") if args.sparse else None
    # figure: an excerpt of at most 30 s, raw sum and result at the reference's level
    rate, excerpt = result.sample_rate, min(tracks.shape[-1], 30 * result.sample_rate)
    aligned = align_track_levels(torch.from_numpy(tracks[..., :excerpt]).float())
    with torch.no_grad():
        result_stems = console_stems(result.console, aligned.to(transfer.device), stems).cpu().numpy()
    raw_stems = np.zeros_like(result_stems)
    for track, stem in zip(aligned.numpy(), stems):
        raw_stems[STEMS.index(stem)] += track
    figure = plot_transfer({"reference": mix_profile(reference[..., :excerpt], rate),
                            "raw sum": mix_profile(raw_stems, rate), "result": mix_profile(result_stems, rate)},
                           args.figure or args.out.with_suffix(".png"), title=f"{args.tracks.name} in the style of "
                           f"{(args.reference or args.reference_stems).name}")
    print(f"wrote {args.out} ({result.mix.shape[-1] / rate:.1f} s at {rate} Hz), settings {params_out}, figure {figure}"
          + (f", graph {graph_png} ({result.console.graph.num_processors()} processors kept)" if graph_png else ""))
    return 0

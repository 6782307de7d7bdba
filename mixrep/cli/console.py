"""``mixrep console fit`` (fit a differentiable mixing console to a mix from its stems) and
``mixrep console make-case`` (tracks mixed by a console with known parameters)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from mixrep.audio.io import read_audio, write_audio
from mixrep.console.cases import (
    CASE_GROUPS,
    CASE_MIX,
    CASE_STEMS,
    make_case,
    write_case,
)
from mixrep.console.console import MixingConsole
from mixrep.console.evidence import explained_share
from mixrep.console.fit import (
    FitConfig,
    check_finite_output,
    evaluate,
    fit,
    plot_spectrogram_error,
)
from mixrep.console.graph import DEFAULT_CHAIN, PROCESSOR_TYPES
from mixrep.console.loss import MixLoss
from mixrep.console.metrics import track_levels
from mixrep.console.prior import MusicalPrior
from mixrep.constants import AUDIO_EXTENSIONS, SAMPLE_RATE
from mixrep.errors import DatasetError
from mixrep.files import atomic_write_text

log = logging.getLogger(__name__)


LENGTH_TOLERANCE_SECONDS = 0.1
"""Stems and mix may differ in length by this much (encoder padding); more means another edit."""


def register(subparsers: argparse._SubParsersAction) -> None:
    console = subparsers.add_parser("console", help="differentiable mixing console")
    commands = console.add_subparsers(dest="console_command", required=True, metavar="COMMAND")
    p = commands.add_parser("fit", help="fit console parameters so the stems' render matches a mix")
    p.add_argument("--stems", type=Path, required=True, help="folder of dry track audio files")
    p.add_argument("--mix", type=Path, required=True, help="target mix audio file")
    p.add_argument("--groups", type=Path, help="JSON {group name: [file stem, ...]}; default one group")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_fit_arguments(p, steps=1000)
    p.add_argument("--true-parameters", type=Path, default=None,
                   help="graph JSON of the console that made the mix (make-case's "
                        "true_parameters.json): report per-track gain and pan errors")
    p.set_defaults(func=run_fit)

    c = commands.add_parser("make-case", help="tracks mixed by a full console with known musical "
                                              "parameters (a fit case with an answer)")
    c.add_argument("--out", type=Path, required=True, help="folder for stems/, mix.wav, groups.json, "
                                                           "true_parameters.json")
    c.add_argument("--tracks", type=int, default=4, help="number of tracks (synthetic stems, four per song)")
    c.add_argument("--seconds", type=float, default=12.0)
    c.add_argument("--sample-rate", type=int, default=16_000)
    c.add_argument("--seed", type=int, default=0, help="picks the songs and the console parameters")
    c.add_argument("--chain", default=DEFAULT_CHAIN)
    c.add_argument("--active-probability", action="append", default=[], metavar="TYPE=P",
                   help="keep each processor of TYPE with probability P (repeatable; 'all=P' for "
                        "every type): a sparse graph, the ground truth of pruning")
    c.add_argument("--audible-db", type=float, default=0.0,
                   help="bypass drawn processors (of types with P < 1) that change their own input by "
                        "less than this many dB, so the true graph holds what one can hear (0: keep all)")
    c.set_defaults(func=run_make_case)

    from mixrep.console.graph_cli import register_graph
    from mixrep.console.prune_cli import register_prune

    register_prune(commands)
    register_graph(commands)


def add_fit_arguments(p: argparse.ArgumentParser, steps: int, steps_help: str = "optimisation steps "
                      "(seed: 12000)") -> None:
    """The console and fit options shared by ``fit``, ``prune`` and ``prune-dataset``."""
    p.add_argument("--steps", type=int, default=steps, help=steps_help)
    p.add_argument("--lr", type=float, default=0.01, help="AdamW learning rate")
    p.add_argument("--crop-seconds", type=float, default=3.8)
    p.add_argument("--warmup-seconds", type=float, default=1.0)
    p.add_argument("--chain", default=DEFAULT_CHAIN, help="per-track chain letters (e c n s g d r)")
    p.add_argument("--group-chain", default=None, help="per-group chain (default: --chain)")
    p.add_argument("--sample-rate", type=int, default=SAMPLE_RATE)
    p.add_argument("--warmup-steps", type=int, default=FitConfig.warmup_steps,
                   help="first steps that train only the gain/pan stages")
    p.add_argument("--lr-scale", action="append", default=[], metavar="KEY=FACTOR",
                   help="learning-rate multiplier for a processor type, 'type.param' or 'dry_wet' "
                        "(repeatable; replaces the defaults)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; 1 is fastest on a loaded machine)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--no-match-check", action="store_true",
                   help="fit even when no linear mix of the tracks comes near the mix (tracks of another song)")


def read_stems_folder(folder: Path, sample_rate: int, exclude: tuple[str, ...] = ()
                      ) -> tuple[list[str], np.ndarray]:
    """All audio files of ``folder`` (sorted by name) but those named in ``exclude``:
    ``(names, (tracks, 2, samples))``.

    Raises:
        DatasetError: no such folder, no audio in it, or stems whose lengths differ by more than
            ``LENGTH_TOLERANCE_SECONDS`` (shorter ones within it are zero-padded).
    """
    if not folder.is_dir():
        raise DatasetError(f"stems folder {folder} does not exist or is not a folder")
    files = sorted(f for f in folder.iterdir()
                   if f.suffix.lower() in AUDIO_EXTENSIONS and f.name not in exclude)
    if not files:
        raise DatasetError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {folder}")
    names = [f.stem for f in files]
    if len(set(names)) != len(names):
        raise DatasetError(f"two stems in {folder} share a name without extension: {names}")
    audio = [read_audio(f, sample_rate) for f in files]
    length = max(a.shape[-1] for a in audio)
    short = [f.name for f, a in zip(files, audio) if (length - a.shape[-1]) / sample_rate > LENGTH_TOLERANCE_SECONDS]
    if short:
        raise DatasetError(f"stems in {folder} differ in length: {', '.join(short)} are more than "
                           f"{LENGTH_TOLERANCE_SECONDS} s shorter than the longest ({length / sample_rate:.2f} s)")
    stems = np.stack([np.pad(a, ((0, 0), (0, length - a.shape[-1]))) for a in audio])
    return names, stems



def load_song(stems_folder: Path, mix_path: Path, sample_rate: int
              ) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Read a song's tracks and mix at ``sample_rate``: ``(names, (tracks, 2, samples), (2, samples))``.

    Raises:
        DatasetError: a missing or unreadable file, or stems and mix whose lengths differ by
            more than ``LENGTH_TOLERANCE_SECONDS`` (shorter ones are zero-padded within it).
    """
    if not mix_path.is_file():
        raise DatasetError(f"mix file {mix_path} {'is a folder' if mix_path.exists() else 'does not exist'}; "
                           "pass the target mix's audio file with --mix")
    names, stems_np = read_stems_folder(stems_folder, sample_rate, exclude=(mix_path.name,)
                                        if mix_path.parent.resolve() == stems_folder.resolve() else ())
    mix_np = read_audio(mix_path, sample_rate)
    seconds = stems_np.shape[-1] / sample_rate, mix_np.shape[-1] / sample_rate
    if abs(seconds[0] - seconds[1]) > LENGTH_TOLERANCE_SECONDS:
        raise DatasetError(f"the stems in {stems_folder} last {seconds[0]:.2f} s but the mix {mix_path} lasts "
                           f"{seconds[1]:.2f} s: they must come from the same edit (trim or pad them to one length)")
    length = max(stems_np.shape[-1], mix_np.shape[-1])
    stems_np = np.pad(stems_np, ((0, 0), (0, 0), (0, length - stems_np.shape[-1])))
    mix_np = np.pad(mix_np, ((0, 0), (0, length - mix_np.shape[-1])))
    return names, torch.from_numpy(stems_np), torch.from_numpy(mix_np)

def require_crop(mix_path: Path, samples: int, sample_rate: int, crop_seconds: float) -> None:
    """Raise ``DatasetError`` unless the song holds one ``crop_seconds`` training crop."""
    if samples < crop_seconds * sample_rate:
        raise DatasetError(f"{mix_path} lasts {samples / sample_rate:.2f} s, shorter than one {crop_seconds} s "
                           "training crop: lower --crop-seconds (and --warmup-seconds) or use longer audio")


def read_groups(path: Path | None) -> dict[str, list[str]] | None:
    if path is None:
        return None
    try:
        groups = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"cannot read groups JSON {path}: {e}") from e
    if not isinstance(groups, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in groups.values()
    ):
        raise DatasetError(f"{path} must map group names to lists of stem file names (no extension)")
    return groups


def fit_config_from_args(args: argparse.Namespace, steps: int | None = None) -> FitConfig:
    """The :class:`FitConfig` of the fit options (``--lr``, ``--lr-scale``, crops, ``--seed``)."""
    if args.crop_seconds <= args.warmup_seconds:
        raise DatasetError(f"--crop-seconds {args.crop_seconds} must exceed --warmup-seconds {args.warmup_seconds}: "
                           "the loss is computed on the crop after the warm-up")
    scales = dict(FitConfig().learning_rate_scale)
    if args.lr_scale:
        scales = {}
        for item in args.lr_scale:
            key, _, factor = item.partition("=")
            try:
                scales[key] = float(factor)
            except ValueError:
                raise DatasetError(f"--lr-scale {item!r}: expected KEY=FACTOR, e.g. gain_pan=5") from None
    return FitConfig(steps=args.steps if steps is None else steps, learning_rate=args.lr,
                     learning_rate_scale=scales, warmup_steps=args.warmup_steps,
                     crop_seconds=args.crop_seconds, warmup_seconds=args.warmup_seconds,
                     seed=args.seed, progress=not args.no_progress)


MIN_EXPLAINED_SHARE = 0.4
"""Below this share of the mix explained by a linear transfer of the tracks, they are taken for
another song's (:func:`~mixrep.console.evidence.explained_share`)."""
MATCH_WINDOW_SECONDS = 20.0
"""The match is judged on the middle of the song, at most this long (memory grows with tracks x length)."""


def require_match(console: MixingConsole, stems: torch.Tensor, mix: torch.Tensor, tracks: Path, mix_path: Path
                  ) -> None:
    """Raise ``DatasetError`` when no linear mix of the tracks comes near the mix (a wrong song), with
    the explained share and the unfitted console's audio loss."""
    window = min(mix.shape[-1], int(MATCH_WINDOW_SECONDS * console.sample_rate))
    start = (mix.shape[-1] - window) // 2
    share = explained_share(stems[..., start:start + window], mix[..., start:start + window], console.sample_rate)
    if share < MIN_EXPLAINED_SHARE:
        loss = evaluate(console, stems, mix)
        raise DatasetError(
            f"the tracks in {tracks} do not sum to anything near the mix {mix_path}: a linear mix of them (any EQ, "
            f"gain and pan per track) explains {share:.0%} of its energy, where a song's own tracks explain over "
            f"{MIN_EXPLAINED_SHARE:.0%}, and the unfitted console's audio loss is {loss:.2f}. Are they from the same "
            "song and edit? Pass --no-match-check to fit anyway")


def song_console(tracks: Path, mix_path: Path, groups: Path | None, args: argparse.Namespace
                 ) -> tuple[list[str], MixingConsole, torch.Tensor, torch.Tensor]:
    """A song's tracks and mix (:func:`load_song`) and the full console for them, built from the
    console options (``--chain``, ``--group-chain``, ``--sample-rate``), all on ``--device``:
    ``(names, console, (tracks, 2, samples), (2, samples))``.

    Raises:
        DatasetError: bad audio or groups, or a song shorter than one ``--crop-seconds`` crop.
    """
    names, stems, mix = load_song(tracks, mix_path, args.sample_rate)
    try:
        console = MixingConsole.from_tracks(names, read_groups(groups), args.chain,
                                            args.group_chain, args.sample_rate)
    except ValueError as e:
        raise DatasetError(f"cannot build the console for {tracks}: {e}") from e
    require_crop(mix_path, mix.shape[-1], args.sample_rate, args.crop_seconds)
    if not args.no_match_check:
        require_match(console, stems, mix, tracks, mix_path)
    device = torch.device(args.device)
    return names, console.to(device), stems.to(device), mix.to(device)


def run_fit(args: argparse.Namespace) -> int:
    config = fit_config_from_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    names, console, stems, mix = song_console(args.stems, args.mix, args.groups, args)
    log.info("console: %d tracks, %d processors, %d nodes", len(names),
             console.graph.num_processors(), console.graph.num_nodes)
    initial = evaluate(console, stems, mix)
    result = fit(console, stems, mix, config)  # NonFiniteFitError: reported, nothing written
    rendered = console.render_long(stems)
    check_finite_output(rendered, "the fitted mix")
    args.out.mkdir(parents=True, exist_ok=True)
    write_audio(args.out / "mix.wav", rendered.cpu().numpy(), args.sample_rate)
    console.save_json(args.out / "parameters.json")
    console.draw(args.out / "graph.png")
    with torch.no_grad():
        final = float(MixLoss(args.sample_rate).to(mix.device)(rendered, mix))
    plot_spectrogram_error(rendered, mix, args.out / "spectrogram_error.png", args.sample_rate,
                           title=f"audio loss {final:.3f}")
    report = {"train": result.losses, "initial": initial, "final": final,
              "seconds_per_step": result.seconds_per_step}
    if args.true_parameters is not None:
        report.update(compare_with_truth(console, args.true_parameters, names, stems))
    atomic_write_text(args.out / "losses.json", json.dumps(report))
    print(f"audio loss {initial:.4f} -> {final:.4f} ({final / initial:.3f} of the initial) in "
          f"{len(result.losses)} steps; wrote {args.out}/mix.wav, parameters.json, "
          "spectrogram_error.png, graph.png, losses.json")
    if args.true_parameters is not None:
        print("track      gain error dB   pan error")
        for name in names:
            print(f"{name:10s} {report['gain_error_db'][name]:13.2f} {report['pan_error'][name]:11.3f}")
    return 0


def compare_with_truth(console: MixingConsole, path: Path, names: list[str], stems: torch.Tensor) -> dict:
    """Per-track gain and pan errors of ``console`` against the console stored at ``path``."""
    try:
        truth = MixingConsole.from_json(path).to(stems.device)
    except (ValueError, KeyError) as e:
        raise DatasetError(f"cannot load the true parameters {path}: {e}") from e
    if truth.sample_rate != console.sample_rate or sorted(truth.track_names) != sorted(names):
        raise DatasetError(f"{path} describes tracks {truth.track_names} at {truth.sample_rate} Hz; the "
                           f"fit has {names} at {console.sample_rate} Hz (pass --sample-rate "
                           f"{truth.sample_rate})")
    fitted = track_levels(console, stems)
    true = track_levels(truth, stems[[names.index(n) for n in truth.track_names]])
    true_gain = dict(zip(truth.track_names, true.gain_db.tolist()))
    true_pan = dict(zip(truth.track_names, true.pan.tolist()))
    return {"gain_error_db": {n: abs(g - true_gain[n]) for n, g in zip(names, fitted.gain_db.tolist())},
            "pan_error": {n: abs(p - true_pan[n]) for n, p in zip(names, fitted.pan.tolist())}}


def synthetic_tracks(count: int, seconds: float, sample_rate: int, seed: int
                     ) -> tuple[list[str], dict[str, list[str]], torch.Tensor]:
    """``count`` tracks from the synthetic corpus (four stems per song, songs picked by ``seed``):
    names, groups (``rhythm``: drums and bass, ``music``: other and vocals) and
    ``(tracks, 2, samples)`` audio."""
    from mixrep.constants import STEMS
    from mixrep.data.synthetic import SynthConfig, synthesize_song

    if count < 1:
        raise DatasetError(f"--tracks must be at least 1, got {count}")
    songs = -(-count // len(STEMS))
    config = SynthConfig(num_songs=10_000, song_seconds=seconds, sample_rate=sample_rate)
    names, audio = [], []
    for s in range(songs):
        song = synthesize_song((seed * 97 + s) % config.num_songs, config)
        for stem, track in zip(STEMS, song.stems):
            names.append(stem if songs == 1 else f"{stem}_{s + 1}")
            audio.append(torch.from_numpy(track))
    names, audio = names[:count], audio[:count]
    roles = {"rhythm": ("drums", "bass"), "music": ("other", "vocals")}
    groups = {g: [n for n in names if n.split("_")[0] in kinds] for g, kinds in roles.items()}
    return names, {g: m for g, m in groups.items() if m}, torch.stack(audio)


def parse_active_probability(items: list[str]) -> dict[str, float]:
    """``["reverb=0.3", "all=0.5"]`` -> ``{type: probability}`` (``all`` first, then specific types)."""
    out: dict[str, float] = {}
    for item in sorted(items, key=lambda i: not i.startswith("all=")):
        key, _, value = item.partition("=")
        try:
            p = float(value)
        except ValueError:
            p = float("nan")
        if key not in PROCESSOR_TYPES + ("all",) or not 0.0 <= p <= 1.0:
            raise DatasetError(f"--active-probability {item!r}: expected TYPE=P with TYPE one of "
                               f"{', '.join(PROCESSOR_TYPES)} or all, and 0 <= P <= 1")
        out.update({t: p for t in PROCESSOR_TYPES} if key == "all" else {key: p})
    return out


def run_make_case(args: argparse.Namespace) -> int:
    names, groups, stems = synthetic_tracks(args.tracks, args.seconds, args.sample_rate, args.seed)
    prior = MusicalPrior(active_probability=parse_active_probability(args.active_probability))
    if args.audible_db < 0:
        raise DatasetError(f"--audible-db {args.audible_db}: must be >= 0 (0 keeps every drawn processor)")
    case = make_case(stems, names, groups, args.sample_rate, seed=args.seed, prior=prior,
                     chain=args.chain, audible_db=args.audible_db)
    check_finite_output(case.mix, "the case's mix")
    write_case(case, args.out)
    print(f"wrote {len(names)} tracks in groups {groups}, the mix and the true parameters to "
          f"{args.out}; fit with: mixrep console fit --stems {args.out / CASE_STEMS} --mix "
          f"{args.out / CASE_MIX} --groups {args.out / CASE_GROUPS} --sample-rate "
          f"{args.sample_rate} --out FIT_DIR")
    return 0

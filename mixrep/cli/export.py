"""``mixrep export``: a settings file rendered with pedalboard, written as a REAPER project, or drawn at random."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        "export", help="mixes leave mixrep: render a settings file with pedalboard, write a REAPER or DAWproject "
                       "project",
        description="A settings file (JSON, physical units: docs/export.md) applied to a song folder. Track names "
                    "come from the file names, stem classes from --groups, the folder's groups.json or the names; "
                    "the tracks are read at the settings file's sample rate. Every input is checked before work "
                    "and outputs are written all or none.")
    commands = export.add_subparsers(dest="export_command", required=True, metavar="TARGET")

    pedal = commands.add_parser("pedalboard", help="render the mix (and its stems) with real plugins")
    _song_arguments(pedal)
    pedal.add_argument("--out", type=Path, required=True, help="the mix (.wav keeps peaks above full scale)")
    pedal.add_argument("--stems-out", type=Path, default=None,
                       help="folder for drums.wav, bass.wav, other.wav, vocals.wav (they sum to the mix)")
    pedal.set_defaults(func=run_pedalboard)

    reaper = commands.add_parser("reaper", help="write a REAPER project (.rpp) of the raw tracks with the settings")
    _song_arguments(reaper)
    reaper.add_argument("--out", type=Path, required=True, help="the .rpp project")
    reaper.add_argument("--absolute-paths", action="store_true",
                        help="write the tracks' absolute paths (default: relative to the project's folder when the "
                             "tracks lie under it)")
    reaper.set_defaults(func=run_reaper)

    daw = commands.add_parser("dawproject", help="write a DAWproject file (.dawproject: the open exchange format)")
    _song_arguments(daw)
    daw.add_argument("--out", type=Path, required=True, help="the .dawproject file")
    daw.add_argument("--reference-audio", action="store_true",
                     help="reference the track files by absolute path (default: copy them into the file)")
    daw.set_defaults(func=run_dawproject)

    settings = commands.add_parser("settings", help="draw a random settings file for a song folder (a first file "
                                                    "to edit)")
    settings.add_argument("--tracks", type=Path, required=True, help="folder of one song's track files")
    settings.add_argument("--groups", type=Path, default=None, help="groups file (default: the folder's groups.json)")
    settings.add_argument("--out", type=Path, required=True, help="the settings .json")
    settings.add_argument("--seed", type=int, default=0, help="random seed (same seed, same settings)")
    settings.set_defaults(func=run_settings)


def _song_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", type=Path, required=True, help="settings file (.json)")
    parser.add_argument("--tracks", type=Path, required=True, help="folder of one song's track files")
    parser.add_argument("--groups", type=Path, default=None, help="groups file (default: the folder's groups.json)")


def run_pedalboard(args: argparse.Namespace) -> int:
    from mixrep.datasets.song_folder import read_song
    from mixrep.export.pedalboard_render import check_outputs, render_style_files
    from mixrep.styles.style_file import read_style_json

    settings = read_style_json(args.settings)
    check_outputs(args.out, args.stems_out, tracks_folder=args.tracks)
    song = read_song(args.tracks, args.groups, sample_rate=settings.sample_rate)
    written = render_style_files(settings, song.tracks, song.names, song.stems, song.sample_rate, args.out,
                                 args.stems_out)
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def _settings_and_song(args: argparse.Namespace, what: str):
    """The settings file, then the output checked, then the song read at the file's rate (cheap checks first)."""
    from mixrep.datasets.song_folder import read_song
    from mixrep.files import check_output_file
    from mixrep.styles.style_file import read_style_json

    settings = read_style_json(args.settings)
    check_output_file(args.out, what)
    return settings, read_song(args.tracks, args.groups, sample_rate=settings.sample_rate)


def run_reaper(args: argparse.Namespace) -> int:
    from mixrep.export.reaper import write_reaper_project

    settings, song = _settings_and_song(args, "REAPER project")
    path = write_reaper_project(args.out, settings.style, song.files, song.names, song.stems, song.sample_rate,
                                song.tracks, relative_paths=not args.absolute_paths)
    print(f"wrote {path} ({len(song.names)} tracks)")
    return 0


def run_dawproject(args: argparse.Namespace) -> int:
    from mixrep.export.dawproject import write_dawproject

    settings, song = _settings_and_song(args, "DAWproject file")
    path = write_dawproject(args.out, settings.style, song.files, song.names, song.stems, song.sample_rate,
                            song.tracks, embed_audio=not args.reference_audio)
    print(f"wrote {path} ({len(song.names)} tracks)")
    return 0


def run_settings(args: argparse.Namespace) -> int:
    from mixrep.datasets.song_folder import read_song
    from mixrep.files import check_output_file
    from mixrep.styles.style_file import sample_style_for_song, write_style_json

    check_output_file(args.out, "settings file")
    song = read_song(args.tracks, args.groups)
    style = sample_style_for_song(song.names, song.stems, song.sample_rate, args.seed)
    path = write_style_json(args.out, style, names=song.names, stems=song.stems, sample_rate=song.sample_rate,
                            source=f"mixrep export settings --seed {args.seed}")
    print(f"wrote {path} ({len(song.names)} tracks, seed {args.seed})")
    return 0

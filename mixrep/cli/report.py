"""``mixrep report mix|search|describe``: a listening page (one HTML file) for a result already written."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_EXCERPT_SECONDS = 30.0  # mixrep.pages.media.DEFAULT_EXCERPT_SECONDS (not imported: `mixrep --help` stays light)


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report", help="write a listening page (one self-contained HTML file) for a mix, a search or a description",
        description="Write one HTML file that holds everything it shows: audio players (the first "
                    "--excerpt-seconds of each file, Ogg Vorbis or FLAC, embedded), figures and settings tables. "
                    "Every input is checked before anything is decoded; the page is written whole or not at all. "
                    "docs/report.md")
    sub = report.add_subparsers(dest="report_command", required=True, metavar="KIND")

    mix = sub.add_parser("mix", help="players (reference, raw sum, result, pedalboard render), the comparison "
                                     "figure and the settings of a `mixrep mix` run")
    mix.add_argument("--out", type=Path, required=True, help="the mix `mixrep mix` wrote (its --out)")
    mix.add_argument("--settings", type=Path, default=None,
                     help="the settings to tabulate (default: OUT with .style.json, the settings file `mixrep mix` "
                          "writes; else OUT with .json, its report)")
    mix.add_argument("--figure", type=Path, default=None,
                     help="its comparison figure, .png/.svg/.jpg (default: OUT with .png)")
    mix.add_argument("--tracks", type=Path, default=None, help="the raw tracks folder: adds the raw-sum player")
    ref = mix.add_mutually_exclusive_group()
    ref.add_argument("--reference", type=Path, help="the reference mix: adds its player")
    ref.add_argument("--reference-stems", type=Path, help="the reference's stems folder: adds their sum's player")
    mix.add_argument("--render", type=Path, default=None,
                     help="the pedalboard render of the settings: adds its player (default: OUT with "
                          ".pedalboard.wav when `mixrep mix --export pedalboard` wrote it)")
    mix.add_argument("--no-settings", action="store_true", help="leave the settings table out")
    mix.add_argument("--no-figure", action="store_true", help="leave the figure out")
    _add_page_args(mix)
    mix.set_defaults(func=run_report_mix)

    search = sub.add_parser("search", help="the queries and their hits, with players and scores")
    search.add_argument("results", type=Path, metavar="RESULTS",
                        help="what `mixrep search ... --json > RESULTS` printed")
    _add_page_args(search)
    search.set_defaults(func=run_report_search)

    describe = sub.add_parser("describe", help="the decoded settings of `mixrep describe`, with the input's player")
    describe.add_argument("result", type=Path, metavar="RESULT", help="the file `mixrep describe --json RESULT` wrote")
    describe.add_argument("--no-audio", action="store_true",
                          help="no players (the inputs RESULT names are not read)")
    _add_page_args(describe)
    describe.set_defaults(func=run_report_describe)


def _add_page_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--html", type=Path, required=True, help="the page to write (.html)")
    parser.add_argument("--title", default=None, help="the page's title (default: from the inputs)")
    parser.add_argument("--excerpt-seconds", type=float, default=DEFAULT_EXCERPT_SECONDS,
                        help=f"each player holds the first this-many seconds (default {DEFAULT_EXCERPT_SECONDS:g})")
    parser.add_argument("--audio-format", choices=("ogg", "flac"), default="ogg",
                        help="ogg: Vorbis at 128 kbps, about 0.5 MB per player of 30 s (default); flac: lossless "
                             "16-bit, several times larger")


def _page_options(args: argparse.Namespace) -> dict:
    return {"seconds": args.excerpt_seconds, "audio_format": args.audio_format}


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def run_report_mix(args: argparse.Namespace) -> int:
    from mixrep.datasets.song_folder import song_files
    from mixrep.pages import mix_page, player_spec, tracks_spec

    specs = []
    reference = args.reference or args.reference_stems
    if reference is not None:
        specs.append(player_spec("reference", reference, "--reference" if args.reference else "--reference-stems"))
    if args.tracks is not None:
        specs.append(tracks_spec("raw sum", song_files(args.tracks), args.tracks))
    specs.append(player_spec("result", args.out, "--out"))
    render = args.render or _existing(args.out.with_suffix(".pedalboard.wav"))
    if render is not None:
        specs.append(player_spec("pedalboard render", render, "--render"))
    settings = None
    if not args.no_settings:
        settings = args.settings or _existing(args.out.with_suffix(".style.json")) or args.out.with_suffix(".json")
    figure = None if args.no_figure else args.figure or args.out.with_suffix(".png")
    page = mix_page(args.html, specs, settings, figure, args.title or f"mixrep mix: {args.out.name}", **_page_options(args))
    print(page.summary())
    return 0


def run_report_search(args: argparse.Namespace) -> int:
    from mixrep.pages import search_page

    page = search_page(args.html, args.results, args.title or f"mixrep search: {args.results.name}",
                       **_page_options(args))
    print(page.summary())
    return 0


def run_report_describe(args: argparse.Namespace) -> int:
    from mixrep.pages import describe_page

    page = describe_page(args.html, args.result, args.title or f"mixrep describe: {args.result.name}",
                         audio=not args.no_audio, **_page_options(args))
    print(page.summary())
    return 0

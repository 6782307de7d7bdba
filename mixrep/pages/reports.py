"""The three listening pages ``mixrep report`` writes: a mix, a search, a description.

Each ``*_page`` function checks every input first (the page's path, each audio file's header, the
JSON it shows, the figure), then decodes the excerpts, encodes them (:mod:`mixrep.pages.media`),
builds the page (:mod:`mixrep.pages.html`) and writes it atomically: the page appears whole or not
at all. They take plain data (paths, parsed JSON), never a model: the command line reads what
``mixrep mix``, ``mixrep search --json`` and ``mixrep describe --json`` wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from mixrep.errors import MixrepError, OutputError
from mixrep.files import atomic_write_text, check_output_file
from mixrep.pages.html import document, format_number, image, nested_table, players, size_text, split_unit
from mixrep.pages.media import (
    AUDIO_FORMATS,
    DEFAULT_EXCERPT_SECONDS,
    EncodedClip,
    audio_sources,
    check_image,
    encode_clip,
    image_data_uri,
    read_clip,
)

PAGE_EXTENSIONS: tuple[str, ...] = (".html", ".htm")


@dataclass(frozen=True)
class PlayerSpec:
    """One player to build: its label, the files it sums (one mix, a song's tracks, a folder's
    stems) and how the page names its source."""

    label: str
    files: tuple[Path, ...]
    source: str


@dataclass(frozen=True)
class Page:
    """A written page: its path, its HTML and its players (with their encoded sizes)."""

    path: Path
    html: str
    players: tuple[EncodedClip, ...]

    @property
    def size_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    def summary(self) -> str:
        """``wrote PAGE (2.4 MB); players: reference 30.0 s 473 KB, ...``: what the command prints."""
        each = ", ".join(f"{p.clip.label} {p.clip.seconds:.1f} s {size_text(p.size_bytes)}" for p in self.players)
        return f"wrote {self.path} ({size_text(self.size_bytes)})" + (f"; players: {each}" if each else "")


def player_spec(label: str, path: Path, what: str) -> PlayerSpec:
    """A player of one audio file or stems folder, its headers checked (see :func:`~mixrep.pages.media.audio_sources`)."""
    return PlayerSpec(label, audio_sources(Path(path), what), str(path))


def tracks_spec(label: str, files: Sequence[Path], folder: Path) -> PlayerSpec:
    """A player of a song's dry tracks summed (``files``, from ``folder``), their headers checked."""
    checked = tuple(f for file in files for f in audio_sources(Path(file), "track"))
    return PlayerSpec(label, checked, f"{folder} ({len(checked)} tracks summed)")


def check_page_options(path: Path, inputs: Sequence[Path], seconds: float, audio_format: str) -> Path:
    """The page's path (``.html``, writable, not an input), the excerpt length and the audio format, checked.

    Raises:
        OutputError: the path; ValueError: the length or format.
    """
    path = Path(path)
    if path.suffix.lower() not in PAGE_EXTENSIONS:
        raise OutputError(f"--html {path}: a page is written as {' or '.join(PAGE_EXTENSIONS)}; give such a name")
    check_output_file(path, "--html", inputs=inputs)
    if not seconds > 0:
        raise ValueError(f"--excerpt-seconds must be positive, got {seconds}")
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"--audio-format {audio_format!r}: use one of {', '.join(AUDIO_FORMATS)}")
    return path


def read_json_file(path: Path, what: str, hint: str = "") -> object:
    """Parsed JSON of a file a command wrote, or an error naming it (and ``hint``: what else to do).

    Raises:
        MixrepError: missing, unreadable or not JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise MixrepError(f"{what} {path} does not exist; pass the file the command wrote{hint}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MixrepError(f"{what} {path} is not a readable JSON file ({e}); pass the file the command wrote") from e


def _encode(specs: Sequence[PlayerSpec], seconds: float, audio_format: str) -> tuple[EncodedClip, ...]:
    return tuple(encode_clip(read_clip(s.label, s.files, seconds, s.source), audio_format) for s in specs)


def _write(path: Path, title: str, body: str, encoded: tuple[EncodedClip, ...]) -> Page:
    html = document(title, body)
    atomic_write_text(path, html)
    return Page(path, html, encoded)


def _inputs(specs: Sequence[PlayerSpec], *others: Path | None) -> list[Path]:
    return [f for s in specs for f in s.files] + [p for p in others if p is not None]


def mix_page(path: Path, specs: Sequence[PlayerSpec], settings: Path | None, figure: Path | None, title: str,
             seconds: float = DEFAULT_EXCERPT_SECONDS, audio_format: str = "ogg") -> Page:
    """The page of one ``mixrep mix`` result: its players (reference, raw sum, result, pedalboard
    render: those given, in that order), the comparison figure ``mixrep mix`` drew (balance,
    spectrum, width, dynamics: :func:`~mixrep.plots.transfer.plot_transfer`) and the settings JSON as a table.

    Raises:
        OutputError, MixrepError, ValueError: an input or the page's path, before anything is decoded.
    """
    path = check_page_options(path, _inputs(specs, settings, figure), seconds, audio_format)
    data = read_json_file(settings, "settings", " (--settings), or leave the table out (--no-settings)"
                          ) if settings is not None else None
    if data is not None and not isinstance(data, Mapping):
        raise MixrepError(f"settings {settings} holds a JSON {type(data).__name__}, not the object `mixrep mix` writes")
    if figure is not None:
        check_image(figure)
    encoded = _encode(specs, seconds, audio_format)
    body = "<h2>Listen</h2>" + players(encoded)
    if figure is not None:
        body += (f"<h2>Balance, spectrum, width, dynamics</h2><p class=\"note\">{escape(str(figure))}</p>"
                 + image(image_data_uri(figure), "balance, spectrum, stereo width and dynamics"))
    if data is not None:
        body += f"<h2>Settings</h2><p class=\"note\">{escape(str(settings))}</p>" + nested_table(data)
    return _write(path, title, body, encoded)


def _check_search_results(results: object, source: Path) -> list[Mapping]:
    problem = f"{source} is not the output of `mixrep search --json` (a list of {{query, results, error}})"
    if not isinstance(results, list) or not all(isinstance(r, Mapping) and "query" in r for r in results):
        raise MixrepError(problem)
    for r in results:
        hits = r.get("results") or []
        if not isinstance(hits, list) or not all(isinstance(h, Mapping) and {"rank", "score", "path"} <= set(h)
                                                 for h in hits):
            raise MixrepError(f"{problem}: the hits of query {r['query']!r} lack rank, score or path")
    return results


def _query_spec(query: str) -> PlayerSpec | None:
    """The query's player: none for a query by library id (``id:12``: its audio is the hit list's)."""
    return None if query.startswith("id:") else player_spec("query", Path(query), "query")


def search_page(path: Path, results_file: Path, title: str, seconds: float = DEFAULT_EXCERPT_SECONDS,
                audio_format: str = "ogg") -> Page:
    """The page of ``mixrep search --json`` output: per query its player, then its hits ranked,
    each with its score, duration, path and player; failed queries show why, silent ones a warning.

    Raises:
        MixrepError: the results file or any query or hit file (named), before anything is decoded.
    """
    results = _check_search_results(read_json_file(results_file, "search results"), results_file)
    queries = []
    for r in results:
        specs = [] if r.get("error") else [_query_spec(str(r["query"]))]
        specs += [player_spec(f"hit {h['rank']}", Path(str(h["path"])), f"hit {h['rank']} of {r['query']}")
                  for h in r.get("results") or []]
        queries.append((r, specs))
    path = check_page_options(path, [results_file] + [f for _, specs in queries for s in specs if s for f in s.files],
                              seconds, audio_format)
    body, everything = "", []
    for r, specs in queries:
        body += f"<h2>Query {escape(str(r['query']))}</h2>"
        if r.get("error"):
            body += f"<p class=\"warning\">not embedded: {escape(str(r['error']))}</p>"
            continue
        if r.get("silent"):
            body += "<p class=\"warning\">the query is silent; these matches are meaningless</p>"
        query_spec, hit_specs = specs[0], specs[1:]
        if query_spec is not None:
            query_clip = _encode([query_spec], seconds, audio_format)
            everything += query_clip
            body += players(query_clip)
        hits = _encode(hit_specs, seconds, audio_format)
        everything += hits
        rows = "".join(
            f"<tr><td class=\"number\">{escape(str(h['rank']))}</td><td class=\"number\">{_score(h['score'])}</td>"
            f"<td class=\"number\">{_minutes(h.get('duration_seconds'))}</td><td>{escape(str(h['path']))}</td>"
            f"<td>{players([clip])}</td></tr>" for h, clip in zip(r.get("results") or [], hits))
        body += ("<table><tr><th>rank</th><th>score</th><th>duration</th><th>path</th><th>listen</th></tr>"
                 f"{rows}</table>" if rows else "<p class=\"note\">(no other tracks in the index)</p>")
    return _write(path, title, body, tuple(everything))


def _score(score: object) -> str:
    return escape(f"{score:.3f}") if isinstance(score, (int, float)) else escape(str(score))


def _minutes(seconds: object) -> str:
    if not isinstance(seconds, (int, float)):
        return "&mdash;"
    minutes, rest = divmod(float(seconds), 60.0)
    return f"{int(minutes)}:{rest:04.1f}"


def describe_table(readings: Mapping[str, Mapping], value_key: str) -> str:
    """The settings ``mixrep describe --json`` wrote (``{name: {group, unit, value|change, spread}}``)
    as one table: part (``drums``, ``master``...), setting, value with its spread over the clips and
    its unit (a processor's presence has none: its value is a probability), group."""
    rows = []
    for name, reading in readings.items():
        part, _, setting = str(name).partition(".")
        label, unit = split_unit(setting)
        unit = str(reading.get("unit") or unit) if isinstance(reading, Mapping) else unit
        reading = reading if isinstance(reading, Mapping) else {value_key: reading}
        value, spread = reading.get(value_key), reading.get("spread")
        shown = format_number(value) if isinstance(value, (int, float)) else str(value)
        if isinstance(spread, (int, float)) and spread:
            shown += f" \u00b1 {format_number(spread)}"
        rows.append(f"<tr><td>{escape(part)}</td><td>{escape(label)}</td><td class=\"number\">{escape(shown)}</td>"
                    f"<td>{escape(unit)}</td>"
                    f"<td>{escape(str(reading.get('group', '')))}</td></tr>")
    return (f"<table><tr><th>part</th><th>setting</th><th>{escape(value_key)}</th><th>unit</th><th>group</th></tr>"
            + "".join(rows) + "</table>")


def describe_page(path: Path, result_file: Path, title: str, audio: bool = True,
                  seconds: float = DEFAULT_EXCERPT_SECONDS, audio_format: str = "ogg") -> Page:
    """The page of ``mixrep describe --json`` output: the input's player (and, with ``--compare``,
    the other mix's) unless ``audio`` is False, and the decoded settings (or changes) as a table.

    Raises:
        MixrepError: the result file, or an input it names (unless ``audio`` is False), before any decoding.
    """
    data = read_json_file(result_file, "describe result")
    key = "changes" if isinstance(data, Mapping) and "changes" in data else "settings"
    if not isinstance(data, Mapping) or not isinstance(data.get(key), Mapping) or "input" not in data:
        raise MixrepError(f"{result_file} is not the output of `mixrep describe --json` (an object with input and "
                          f"settings or changes)")
    specs = []
    if audio:
        hint = "; or leave the players out (--no-audio)"
        for label, field in (("input", "input"), ("other mix", "compare")):
            if data.get(field) is not None:
                source = Path(str(data[field]))
                if not source.exists():
                    raise MixrepError(f"the {label} {source} that {result_file} names does not exist{hint}")
                specs.append(player_spec(label, source, label))
    path = check_page_options(path, _inputs(specs, result_file), seconds, audio_format)
    encoded = _encode(specs, seconds, audio_format)
    facts = {k: v for k, v in data.items() if k not in (key,)}
    body = ("<h2>Listen</h2>" + players(encoded) if encoded else "") + "<h2>Inputs</h2>" + nested_table(facts)
    what = "What turns the input into the other mix" if key == "changes" else "Decoded settings"
    body += f"<h2>{what}</h2>" + describe_table(data[key], "change" if key == "changes" else "value")
    return _write(path, title, body, encoded)

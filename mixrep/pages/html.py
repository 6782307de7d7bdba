"""The markup of a listening page: players, figures, tables, the document around them.

Every string that reaches the page (track names, paths, setting names, values) passes through
:func:`html.escape`; the page's Content-Security-Policy lets only its own inline script run (by
hash) and loads media and images only from ``data:`` URIs, so even a missed escape could not run
code nor reach the network.

The inline script marks each ``<audio>`` element ``data-state="loaded"`` with ``data-duration``
(seconds, as the browser decoded it) on ``loadedmetadata``, or ``data-state="error"``: what the
browser test (``tests/pages/test_browser.py``) reads from the rendered DOM.
"""

from __future__ import annotations

import base64
import hashlib
import numbers
import re
from collections.abc import Mapping, Sequence
from html import escape

from mixrep.pages.media import EncodedClip

UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_dbtp", "dBTP"), ("_db", "dB"), ("_lufs", "LUFS"), ("_khz", "kHz"), ("_hz", "Hz"), ("_ms", "ms"),
    ("_seconds", "s"), ("_percent", "%"), ("_samples", "samples"), ("_octaves", "octaves"),
)
"""Key-name endings and the unit they mean (project rule: units in names, ``gain_db``, ``attack_ms``)."""

UNIT_NAMES: dict[str, str] = {"lufs": "LUFS", "sample_rate": "Hz"}
"""Whole key names that carry a unit."""

LIST_ITEMS_SHOWN = 24
"""A list of numbers longer than this (refinement losses...) is shown by its first items and its length."""

SCRIPT = """for (const audio of document.querySelectorAll("audio")) {
  const loaded = () => {
    audio.dataset.state = "loaded";
    audio.dataset.duration = audio.duration.toFixed(3);
  };
  audio.addEventListener("error", () => { audio.dataset.state = "error"; });
  if (audio.readyState >= 1) { loaded(); } else { audio.addEventListener("loadedmetadata", loaded); }
}"""
"""Marks every player loaded (with its decoded duration) or failed; see the module docstring."""

STYLE = """body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
.players { display: flex; flex-wrap: wrap; gap: 1em; }
figure.player { margin: 0; padding: .6em; border: 1px solid #ddd; border-radius: 6px; background: #fafafa; }
figure.player figcaption { font-weight: 600; } figure.player audio { width: 20em; display: block; margin: .3em 0; }
.note { color: #666; font-size: .85em; margin: .2em 0; word-break: break-all; }
img.figure { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; margin: .2em 0; }
td, th { border: 1px solid #ddd; padding: .15em .5em; vertical-align: top; text-align: left; }
th { background: #f0f0f0; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
.warning { color: #a40; font-weight: 600; }"""


def split_unit(key: str) -> tuple[str, str]:
    """``(label, unit)`` of a key: ``gain_db`` -> ``("gain", "dB")``; ``lufs`` -> ``("lufs", "LUFS")``;
    a key without a unit -> ``(key with spaces, "")``. A point such as ``60_hz`` keeps its unit in the
    label (``("60 Hz", "")``): its value has the unit of the table it is in."""
    lowered = key.lower()
    if lowered in UNIT_NAMES:
        return key.replace("_", " "), UNIT_NAMES[lowered]
    for suffix, unit in UNIT_SUFFIXES:
        if lowered.endswith(suffix) and len(key) > len(suffix):
            stem = key[: -len(suffix)]
            if re.fullmatch(r"[0-9.]+", stem):
                return f"{stem} {unit}", ""
            return stem.replace("_", " "), unit
    return key.replace("_", " "), ""


def format_number(value: float) -> str:
    """A value as a person reads it: at most 3 decimals, no trailing zeros, thousands kept whole."""
    if isinstance(value, numbers.Integral):
        return str(int(value))
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    digits = 0 if abs(value) >= 1000 else 2 if abs(value) >= 10 else 3
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _scalar(value: object, unit: str) -> str:
    if value is None:
        return "&mdash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Number):
        return escape(format_number(value) + (f" {unit}" if unit else ""))
    return escape(str(value))


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, numbers.Number, bool))


def value_cell(value: object, unit: str = "") -> str:
    """The HTML of one value: a scalar with its unit, a list, or a nested table."""
    if isinstance(value, Mapping):
        return nested_table(value, unit)
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            return "none"
        if all(isinstance(v, Mapping) for v in value):
            return records_table(value, unit)
        shown = ", ".join(_scalar(v, "") if _is_scalar(v) else value_cell(v) for v in value[:LIST_ITEMS_SHOWN])
        more = f" &hellip; ({len(value)} values)" if len(value) > LIST_ITEMS_SHOWN else ""
        return shown + more + (f" {escape(unit)}" if unit else "")
    return _scalar(value, unit)


def nested_table(data: Mapping, unit: str = "") -> str:
    """A table of any JSON-like dict: one row per key, its label and the value in the unit its name
    carries (:func:`split_unit`, else the enclosing key's ``unit``); nested dicts become nested
    tables, lists of dicts tables with a column per key."""
    if not data:
        return "<p class=\"note\">(empty)</p>"
    rows = []
    for key, value in data.items():
        label, own_unit = split_unit(str(key))
        cell = value_cell(value, own_unit or unit)
        number = " class=\"number\"" if isinstance(value, numbers.Number) and not isinstance(value, bool) else ""
        rows.append(f"<tr><th>{escape(label)}</th><td{number}>{cell}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def records_table(records: Sequence[Mapping], unit: str = "") -> str:
    """A list of dicts (EQ bands...) as one table: a column per key (in first-seen order), units in the header."""
    columns: list[str] = []
    for record in records:
        columns += [str(k) for k in record if str(k) not in columns]
    labels = [split_unit(c) for c in columns]
    header = "".join(f"<th>{escape(label)}{f' ({escape(u)})' if u else ''}</th>" for label, u in labels)
    body = "".join("<tr>" + "".join(f"<td>{value_cell(record.get(c), '')}</td>" for c in columns) + "</tr>"
                   for record in records)
    return f"<table><tr>{header}</tr>{body}</table>"


def size_text(size_bytes: int) -> str:
    """``412 KB``, ``1.8 MB``."""
    return f"{size_bytes / 1e6:.1f} MB" if size_bytes >= 1e6 else f"{size_bytes / 1e3:.0f} KB"


def player(encoded: EncodedClip, caption: str | None = None) -> str:
    """One ``<audio>`` player with its label, source, excerpt length, format and size."""
    clip = encoded.clip
    gain = f", lowered {-clip.gain_db:.1f} dB so that it does not clip" if clip.gain_db < 0 else ""
    return (f"<figure class=\"player\"><figcaption>{escape(caption or clip.label)}</figcaption>"
            f"<audio controls preload=\"metadata\" data-label=\"{escape(clip.label)}\" "
            f"data-expected-seconds=\"{clip.seconds:.3f}\" src=\"{encoded.data_uri}\"></audio>"
            f"<p class=\"note\">{escape(clip.source)}</p>"
            f"<p class=\"note\">first {clip.seconds:.1f} s at {clip.sample_rate} Hz, {escape(encoded.format.label)}, "
            f"{size_text(encoded.size_bytes)}{escape(gain)}</p></figure>")


def players(encoded: Sequence[EncodedClip]) -> str:
    return "<div class=\"players\">" + "".join(player(e) for e in encoded) + "</div>"


def image(data_uri: str, alt: str) -> str:
    return f"<img class=\"figure\" alt=\"{escape(alt)}\" src=\"{escape(data_uri)}\">"


def document(title: str, body: str) -> str:
    """The whole page: ``body`` (HTML) under ``title``, with the style, the player script and a
    Content-Security-Policy that allows only that script and ``data:`` media."""
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    policy = (f"default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'; "
              f"script-src 'sha256-{script_hash}'")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body><h1>{escape(title)}</h1>\n{body}\n<script>{SCRIPT}</script></body></html>\n")

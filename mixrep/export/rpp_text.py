"""REAPER's project text (``.rpp``): quoting, a tokenizer and a block parser.

An ``.rpp`` file is lines of whitespace-separated tokens; a line starting with ``<`` opens a block
(``<TRACK``), a line ``>`` closes it. A token holding spaces or quotes is quoted with the first of
``"``, ``'``, `````` it does not contain (REAPER's rule); a line break cannot be written at all, so
:func:`quote` refuses control characters (names are cleaned with :func:`clean_name` first). Every
string this package writes goes through :func:`quote`, so a track name or a path cannot add lines
to a project.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mixrep.errors import MixrepError


class RppError(MixrepError):
    """An ``.rpp`` file that cannot be parsed, or a string that cannot be written into one."""


def clean_name(text: str) -> str:
    """A label :func:`quote` can write: control characters (line breaks, tabs...) become spaces, and
    backticks become ``'`` in a label holding all three quote characters (REAPER does the same)."""
    text = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return text.replace("`", "'") if all(mark in text for mark in "\"'`") else text


def quote(text: str) -> str:
    """One RPP token holding ``text`` exactly.

    Raises:
        RppError: ``text`` holds a control character (a line break would end the line), or all
            three quote characters.
    """
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise RppError(f"{text!r} holds a control character (a line break?), which an .rpp line cannot hold; "
                       f"rename it")
    for mark in ('"', "'", "`"):
        if mark not in text:
            return f"{mark}{text}{mark}"
    raise RppError(f"{text!r} holds all three quote characters (\" ' `), which an .rpp token cannot hold; rename it")


def tokens(line: str) -> list[str]:
    """The tokens of one line, quotes removed (the inverse of joining :func:`quote` d tokens with spaces)."""
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        if line[i] in "\"'`":
            end = line.find(line[i], i + 1)
            if end < 0:
                raise RppError(f"unclosed quote in the .rpp line {line.strip()!r}")
            out.append(line[i + 1:end])
            i = end + 1
        else:
            end = i
            while end < n and not line[end].isspace():
                end += 1
            out.append(line[i:end])
            i = end
    return out


@dataclass
class Block:
    """One ``<TAG ...>`` block: its header tokens, its lines (token lists) and child blocks in order."""

    tag: str
    args: list[str]
    lines: list[list[str]] = field(default_factory=list)
    children: list[Block] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    """The block's own lines as written (base64 payloads keep their exact text)."""

    def first(self, key: str) -> list[str] | None:
        """The tokens after ``key`` on the first line starting with it, or None."""
        for line in self.lines:
            if line and line[0] == key:
                return line[1:]
        return None

    def all(self, key: str) -> list[list[str]]:
        return [line[1:] for line in self.lines if line and line[0] == key]

    def blocks(self, tag: str) -> list[Block]:
        return [c for c in self.children if c.tag == tag]


def parse(text: str) -> Block:
    """The root block of an ``.rpp`` text.

    Raises:
        RppError: unbalanced blocks, unclosed quotes, text outside the root block.
    """
    stack: list[Block] = []
    root: Block | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("<"):
            parts = tokens(stripped[1:])
            block = Block(parts[0] if parts else "", parts[1:])
            if stack:
                stack[-1].children.append(block)
            elif root is None:
                root = block
            else:
                raise RppError(f"line {number}: a second top-level block")
            stack.append(block)
        elif stripped == ">":
            if not stack:
                raise RppError(f"line {number}: '>' closes no block")
            stack.pop()
        else:
            if not stack:
                raise RppError(f"line {number}: text outside the project block")
            stack[-1].lines.append(tokens(stripped))
            stack[-1].raw.append(stripped)
    if root is None or stack:
        raise RppError("not a complete .rpp project (no block, or a block left open)")
    return root

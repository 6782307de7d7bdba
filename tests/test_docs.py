"""The documentation holds together: the README stays short, and every relative link of README.md and
docs/*.md reaches an existing file and, where it names one, an existing heading of that file."""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 200

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
"""A markdown link ``[text](target)`` or ``[text](target "title")`` (images excluded)."""
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose_lines(text: str, keep_code: bool = False) -> list[tuple[int, str]]:
    """``(line number, line)`` outside fenced code blocks, with inline code removed unless ``keep_code``."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line if keep_code else INLINE_CODE.sub("", line)))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup and punctuation dropped, lower case, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


@lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of a markdown file, duplicates numbered as GitHub does (``x``, ``x-1``...)."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8"), keep_code=True):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return frozenset(out)


def links(path: Path) -> list[tuple[int, str]]:
    return [(number, target) for number, line in prose_lines(path.read_text(encoding="utf-8"))
            for target in LINK.findall(line)]


def broken_links(path: Path) -> list[str]:
    """What is wrong with each relative link of ``path`` (empty when every one resolves)."""
    problems = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if not destination.exists():
            problems.append(f"{where}: no file {file_part}")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            problems.append(f"{where}: no heading #{anchor} in {destination.relative_to(ROOT)}")
    return problems


def test_readme_is_at_most_200_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; keep it <= {README_MAX_LINES}, depth goes in docs/"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    assert broken_links(path) == []


def test_the_checker_finds_broken_links(tmp_path, monkeypatch):
    """The checker itself: a missing file, a missing heading and a link in code are told apart."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## Fit `console` (twice)\n\n## Fit `console` (twice)\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/a.md#fit-console-twice) [ok2](docs/a.md#fit-console-twice-1) [top](#title)\n"
                    "# Title\n"
                    "[gone](docs/missing.md) [bad anchor](docs/a.md#nope) [web](https://example.com/x.md)\n"
                    "`[in code](docs/missing2.md)`\n```\n[fenced](docs/missing3.md)\n```\n")
    assert broken_links(page) == ["README.md:3: docs/missing.md: no file docs/missing.md",
                                  "README.md:3: docs/a.md#nope: no heading #nope in docs/a.md"]


def test_slug_matches_github():
    assert slug("Index: the unusable-embedding scan of `index build`") == "index-the-unusable-embedding-scan-of-index-build"
    assert slug("Pair strategies: same_song against same_chain") == "pair-strategies-same_song-against-same_chain"
    assert slug("Transfer guard (issue 33)") == "transfer-guard-issue-33"

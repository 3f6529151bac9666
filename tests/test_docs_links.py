"""The documentation's relative links resolve: README.md, DOCS.md (when present) and doc/**/*.md.

A relative link must name an existing file, and a ``#fragment`` must name a heading of the target
(GitHub's anchor for it) or an explicit ``<a id=...>``. Links inside code (fenced blocks, code spans)
are not links. External links (``https:``, ``mailto:``, ...) are not checked. README.md must link
every page under doc/ and DOCS.md, so that no page is an orphan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent


def doc_files(root: Path = ROOT) -> list[Path]:
    files = [root / "README.md"]
    if (root / "DOCS.md").is_file():
        files.append(root / "DOCS.md")
    files += sorted((root / "doc").rglob("*.md"))
    return files


# --- reading Markdown -----------------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# [text](target "title") and ![alt](target); the text may hold one level of brackets and line breaks
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)"
                     r"(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_HTML_ANCHOR = re.compile(r"<a\s[^>]*?(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _blank(match: re.Match[str]) -> str:
    """The match replaced by spaces, keeping its line breaks (so offsets keep their line numbers)."""
    return re.sub(r"[^\n]", " ", match.group(0))


def prose(text: str, *, spans: bool = True) -> str:
    """``text`` with fenced code blocks, HTML comments and (``spans``) code spans blanked out."""
    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            out.append("\n")
        elif fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            out.append("\n")
        else:
            out.append(line)
    body = _COMMENT.sub(_blank, "".join(out))
    return _CODE_SPAN.sub(_blank, body) if spans else body


@dataclass(frozen=True)
class Link:
    line: int
    target: str


def links(text: str) -> list[Link]:
    """Every link target in ``text`` (inline and reference definitions), with its line number."""
    body = prose(text)
    found: list[tuple[int, str]] = []
    for pattern in (_INLINE, _REFERENCE):
        for m in pattern.finditer(body):
            target = m.group(1)
            if target.startswith("<") and target.endswith(">"):
                target = target[1:-1]
            found.append((m.start(), target))
    return [Link(body.count("\n", 0, pos) + 1, target) for pos, target in sorted(found)]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts with its text only
    text = re.sub(r"<[^>]+>", "", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown text: its headings' (numbered like GitHub's when repeated) and <a id>."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for line in prose(text, spans=False).splitlines():  # a heading's code span is part of its anchor
        m = _HEADING.match(line)
        if m is None:
            continue
        slug = github_slug(m.group(2))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        result.add(slug if n == 0 else f"{slug}-{n}")
    result.update(_HTML_ANCHOR.findall(text))
    return result


def resolve(path: Path, target: str) -> tuple[Path | None, str | None]:
    """(file, fragment) a relative link in ``path`` points at; file None for a same-page anchor."""
    location, _, fragment = target.partition("#")
    file = (path.parent / unquote(location)).resolve() if location else None
    return file, (unquote(fragment) if fragment else None)


def problems(path: Path, root: Path = ROOT) -> list[str]:
    """One line per broken relative link in ``path``."""
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(root).as_posix()
    out: list[str] = []
    for link in links(text):
        where = f"{name}:{link.line}: ({link.target})"
        if not link.target:
            out.append(f"{where} empty link target")
            continue
        if _SCHEME.match(link.target):
            continue  # https:, mailto:, ...: not checked
        if link.target.startswith("/"):
            out.append(f"{where} absolute path; link relative to the page")
            continue
        file, fragment = resolve(path, link.target)
        if file is not None:
            try:
                file.relative_to(root)
            except ValueError:
                out.append(f"{where} points outside the repository")
                continue
            if not file.is_file():
                out.append(f"{where} no such file: {file.relative_to(root).as_posix()}")
                continue
        if fragment is not None:
            page = file or path
            if page.suffix.lower() != ".md":
                continue
            known = anchors(page.read_text(encoding="utf-8"))
            if fragment not in known:
                out.append(f"{where} no heading with the anchor #{fragment} in "
                           f"{page.relative_to(root).as_posix()}")
    return out


# --- the project's documentation ------------------------------------------------------------------

@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(path: Path) -> None:
    assert problems(path) == []


def test_the_pages_exist() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in doc_files()}
    for page in ("doc/Configuration.md", "doc/BMSes.md", "doc/MQTT.md", "doc/EnergyDashboard.md", "doc/Groups.md",
                 "doc/Algorithms.md", "doc/InfluxDB.md", "doc/Troubleshooting.md", "doc/Migrating.md"):
        assert page in names


def test_readme_links_every_page() -> None:
    readme = ROOT / "README.md"
    linked = {file for link in links(readme.read_text(encoding="utf-8"))
              if not _SCHEME.match(link.target) and (file := resolve(readme, link.target)[0]) is not None}
    pages = [p for p in doc_files() if p != readme]
    missing = [p.relative_to(ROOT).as_posix() for p in pages if p.resolve() not in linked]
    assert missing == [], f"README.md does not link {missing}"


# --- the checker itself ---------------------------------------------------------------------------

@pytest.mark.parametrize(("heading", "slug"), [
    ("Topic prefix and node id", "topic-prefix-and-node-id"),
    ("Pairing on Linux (BlueZ)", "pairing-on-linux-bluez"),
    ("`decode`: frames for a bug report", "decode-frames-for-a-bug-report"),
    ("`soc CHARGE_STOP% [CHARGE_START%]`", "soc-charge_stop-charge_start"),
    ("Current sign (where sources disagree)", "current-sign-where-sources-disagree"),
    ("See [Meters](Meters.md) — again", "see-meters--again"),
    ("Größe und Ä", "größe-und-ä"),
])
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_repeated_headings_are_numbered_and_code_is_not_a_heading() -> None:
    text = ("# Notes\n\n## Notes\n\n```sh\n# not a heading\n```\n\n### Setup ###\n<a id=\"custom\"></a>\n"
            "### `scan`\n")
    assert anchors(text) == {"notes", "notes-1", "setup", "custom", "scan"}


def test_links_outside_code_only() -> None:
    text = (
        "See [a](a.md) and ![img](img/x.png \"title\").\n"
        "`[not](code.md)` and ``[nor](this.md)``\n"
        "```\n[no](fenced.md)\n```\n"
        "~~~md\n[no](tilde.md)\n~~~\n"
        "<!-- [no](comment.md) -->\n"
        "A [link whose text\nwraps](wrapped.md#part), [web](https://example.com) and [top](#top).\n"
        "[ref]: <refs/b c.md>\n"
    )
    assert links(text) == [Link(1, "a.md"), Link(1, "img/x.png"), Link(10, "wrapped.md#part"),
                           Link(11, "https://example.com"), Link(11, "#top"), Link(12, "refs/b c.md")]


def test_broken_links_are_reported(tmp_path: Path) -> None:
    (tmp_path / "doc").mkdir()
    (tmp_path / "doc" / "Other.md").write_text("# Other\n\n## Some section\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n"
        "[ok](doc/Other.md), [ok too](doc/Other.md#some-section), [here](#title), [web](https://x.invalid/y)\n"
        "[gone](doc/Gone.md), [bad anchor](doc/Other.md#no-such), [bad here](#nowhere)\n"
        "[abs](/doc/Other.md), [out](../outside.md), [empty]()\n"
    )
    assert problems(readme, tmp_path) == [
        "README.md:4: (doc/Gone.md) no such file: doc/Gone.md",
        "README.md:4: (doc/Other.md#no-such) no heading with the anchor #no-such in doc/Other.md",
        "README.md:4: (#nowhere) no heading with the anchor #nowhere in README.md",
        "README.md:5: (/doc/Other.md) absolute path; link relative to the page",
        "README.md:5: (../outside.md) points outside the repository",
        "README.md:5: () empty link target",
    ]
    assert problems(tmp_path / "doc" / "Other.md", tmp_path) == []

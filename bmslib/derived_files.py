"""The parts of the repository's files that are written from the families' metadata.

``python -m bmslib.derived_files --write`` (or ``scripts/generate``) rewrites them; without
``--write`` it lists the stale files and exits 1 (tests/test_derived_files.py runs that check).
Each part sits between a begin and an end marker in its file (HTML comments in Markdown, ``#``
comments in YAML); the text outside the markers is written by hand.

What is derived: config.yaml's ``type`` choices, the type table of doc/BMSes.md, the type list and
the family pages in README.md, the type list in DOCS.md and the type text of translations/en.yaml.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bmslib.config import GROUP_TYPES
from bmslib.config.original_types import AIOBMSBLE_NATIVE, RENAMED, dropin_names
from bmslib.family import DeviceType, Family
from bmslib.registry import families

COMMAND = "python -m bmslib.derived_files --write"
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Region:
    """One derived part: its file, its marker name, the comment style of its markers and its text."""

    path: str  # relative to the repository
    name: str
    yaml: bool  # markers are `#` comment lines (else HTML comments)
    text: Callable[[Sequence[Family], str], str]  # (families, indentation of the begin marker) -> text

    def markers(self) -> tuple[str, str]:
        if self.yaml:
            return f"# begin generated: {self.name} ({COMMAND})\n", f"# end generated: {self.name}"
        return f"<!-- begin generated: {self.name} ({COMMAND}) -->", f"<!-- end generated: {self.name} -->"


def documented(fams: Sequence[Family]) -> list[Family]:
    """The families with a doc page (batmon's own alphabetically, then the bridge's), then the others."""
    return sorted(fams, key=lambda f: (f.doc_page is None, _bridged(f), f.name))


def _bridged(fam: Family) -> bool:
    """Every type of ``fam`` is read through aiobmsble."""
    return bool(fam.types) and all(t.via != "native" for t in fam.types)


def type_names(fams: Sequence[Family]) -> list[str]:
    return [t.name for f in fams for t in f.types]


def bridged_plugins(fams: Sequence[Family]) -> list[str]:
    """aiobmsble's plugin names of the bridge's types (``jbd_ble`` is plugin ``jbd``)."""
    plugins = []
    for f in fams:
        if _bridged(f):
            for t in f.types:
                base = t.name.removesuffix("_ble")
                plugins.append(base if base in AIOBMSBLE_NATIVE else t.name)
    return plugins


def code(names: Sequence[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def schema_types(fams: Sequence[Family], indent: str) -> str:
    # batmon-ha's names the loader reads as batmon's (its schema took any text: they must stay valid)
    names = [*type_names(fams), *GROUP_TYPES, *RENAMED, *dropin_names(bridged_plugins(fams))]
    return f"{indent}type: list({'|'.join(sorted(names))})\n"


def type_table(fams: Sequence[Family], _indent: str) -> str:
    lines = ["| type | via | devices | reads | switches | `pin` / `key` | page |", "|---|---|---|---|---|---|---|"]
    for fam in documented(fams):
        page = f"[{fam.doc_page}](bms/{fam.doc_page}.md)" if fam.doc_page else "–"
        row: list[DeviceType] = []
        for t in fam.types:
            if t.doc is None:
                continue
            if row and row[-1].doc != t.doc:
                lines.append(_row(row, page))
                row = []
            row.append(t)
        if row:
            lines.append(_row(row, page))
    lines.append(f"| {code(GROUP_TYPES)} | native | a virtual battery made of other devices | the members' values | "
                 "the members' | – | [Groups](Groups.md) |")
    return "\n".join(lines) + "\n"


def _row(types: Sequence[DeviceType], page: str) -> str:
    doc = types[0].doc
    assert doc is not None
    reads = doc.reads or ("see its page" if page != "–" else "–")
    return (f"| {code([t.name for t in types])} | {types[0].via} | {doc.devices} | {reads} | {doc.switches} | "
            f"{doc.secrets} | {page} |")


def main_types(fams: Sequence[Family]) -> list[str]:
    """The first type of each family with a doc page."""
    return [f.types[0].name for f in documented(fams) if f.doc_page]


def readme_types(fams: Sequence[Family], _indent: str) -> str:
    return f"{code(main_types(fams))}, ..."


def readme_pages(fams: Sequence[Family], _indent: str) -> str:
    return ", ".join(f"[{f.display_name}](doc/bms/{f.doc_page}.md)" for f in documented(fams) if f.doc_page)


def and_list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def docs_types(fams: Sequence[Family], _indent: str) -> str:
    parts = []
    for f in documented(fams):
        if _bridged(f):  # no family variants: one type per plugin, each named
            parts.append(f"{code([t.name for t in f.types])} ({f.summary}; what each reads: doc/BMSes.md)")
            continue
        variants = [f"`{t.name}`" for t in f.types[1:]]
        note = f"; {and_list(variants)} {f.variants_note}" if variants else ""
        parts.append(f"`{f.types[0].name}` ({f.summary}{note})")
    return ", ".join(parts[:-1]) + f", or {parts[-1]}"


def translation_types(fams: Sequence[Family], indent: str) -> str:
    return (f"{indent}description: The BMS protocol ({', '.join(main_types(fams))}, ...), "
            f"or {' / '.join(GROUP_TYPES)}.\n")


REGIONS = (
    Region("config.yaml", "types", yaml=True, text=schema_types),
    Region("doc/BMSes.md", "type table", yaml=False, text=type_table),
    Region("README.md", "types", yaml=False, text=readme_types),
    Region("README.md", "family pages", yaml=False, text=readme_pages),
    Region("DOCS.md", "types", yaml=False, text=docs_types),
    Region("translations/en.yaml", "types", yaml=True, text=translation_types),
)


def rewrite(text: str, region: Region, fams: Sequence[Family]) -> str:
    """``text`` with ``region``'s part written anew (ValueError when its markers are missing)."""
    begin, end = region.markers()
    b = text.find(begin)
    e = text.find(end, b + len(begin)) if b >= 0 else -1
    if b < 0 or e < 0:
        raise ValueError(f"{region.path}: the markers of {region.name!r} are missing ({begin.strip()} ... {end})")
    start = b + len(begin)
    line_start = text.rfind("\n", 0, b) + 1
    indent = text[line_start:b]
    if text[start:start + 1] == "\n":  # a block: whole lines between the marker lines
        start += 1
    stop = e
    before_end = text.rfind("\n", start, e) + 1
    if before_end and not text[before_end:e].strip():  # the end marker is on a line of its own
        stop = before_end
    return text[:start] + region.text(fams, "" if indent.strip() else indent) + text[stop:]


def derived(root: Path, fams: Sequence[Family]) -> dict[Path, tuple[str, str]]:
    """Each file with derived parts: (its text now, its text with the parts written anew)."""
    out: dict[Path, tuple[str, str]] = {}
    for region in REGIONS:
        path = root / region.path
        old, new = out.get(path, (path.read_text(), path.read_text()))
        out[path] = (old, rewrite(new, region, fams))
    return out


def stale(root: Path = ROOT) -> list[str]:
    """The files whose derived parts differ from what the families say."""
    return [str(p.relative_to(root)) for p, (old, new) in derived(root, families()).items() if old != new]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bmslib.derived_files", description=__doc__.split("\n")[0])
    p.add_argument("--write", action="store_true", help="rewrite the stale files (default: list them, exit 1)")
    args = p.parse_args(argv)
    changed = [(p, new) for p, (old, new) in derived(ROOT, families()).items() if old != new]
    for path, new in changed:
        if args.write:
            path.write_text(new)
        print(f"{'wrote' if args.write else 'stale'}: {path.relative_to(ROOT)}")
    return 1 if changed and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())

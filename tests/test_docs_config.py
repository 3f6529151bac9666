"""doc/Configuration.md stays in step with the loader's option tables (bmslib/options.py) and the simulator's
knob table (bmslib/sim/knobs.py).

The option tables in the document are generated from OPTIONS / DEVICE_OPTIONS, the knob table from KNOBS;
regenerate them with

    .venv/bin/python -m tests.test_docs_config

and every option must also be explained in the prose around them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bmslib.config import DEVICE_OPTIONS, OPTIONS, Option
from bmslib.options import PROXY_OPTIONS
from bmslib.sim.knobs import KNOBS, Knob

DOC = Path(__file__).resolve().parent.parent / "doc" / "Configuration.md"
BEGIN = "<!-- BEGIN generated from bmslib/options.py by tests/test_docs_config.py; do not edit by hand -->"
END = "<!-- END generated -->"
KNOBS_BEGIN = "<!-- BEGIN generated from bmslib/sim/knobs.py by tests/test_docs_config.py; do not edit by hand -->"
KNOBS_END = "<!-- END generated knobs -->"


def _number(x: float) -> str:
    return f"{x:g}"


def kind_text(opt: Option) -> str:
    if opt.kind == "bool":
        return "true/false"
    if opt.kind == "list":
        return "list"
    if opt.kind == "str":
        return "secret text" if opt.secret else "text"
    word = "integer" if opt.kind == "int" else "number"
    lo, hi = opt.minimum, opt.maximum
    if lo is not None and hi is not None:
        text = f"{word} {_number(lo)}..{_number(hi)}"
    elif lo is not None:
        text = f"{word} {'>' if opt.exclusive_minimum else '≥'} {_number(lo)}"
    elif hi is not None:
        text = f"{word} ≤ {_number(hi)}"
    else:
        text = word
    if opt.nonzero:
        text += ", not 0"
    return text


def default_text(opt: Option) -> str:
    if opt.required:
        return "required"
    if opt.default is None or opt.default == ():
        return "[]" if opt.kind == "list" else "–"
    if isinstance(opt.default, bool):
        return "true" if opt.default else "false"
    if isinstance(opt.default, float):
        return _number(opt.default)
    return str(opt.default)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(options: tuple[Option, ...]) -> list[str]:
    lines = ["| option | value | default | what it does |", "|---|---|---|---|"]
    for opt in options:
        what = opt.doc
        if opt.env:
            what += f" (environment fallback: `{opt.env}`)"
        if opt.example is not None and str(opt.example) not in opt.doc:
            what += f"; e.g. `{opt.example}`"
        lines.append(f"| `{opt.name}` | {kind_text(opt)} | `{default_text(opt)}` | {_cell(what)} |")
    return lines


def render() -> str:
    used = tuple(o for o in OPTIONS if o.ignored is None)
    ignored = tuple(o for o in OPTIONS if o.ignored is not None)
    lines = [BEGIN, "", "### Top level", "", *table(used), "", "### One entry of `devices`", "",
             *table(DEVICE_OPTIONS), "", "### One entry of `bluetooth_proxies`", "", *table(PROXY_OPTIONS), "",
             "### Accepted for compatibility, not used", "",
             "These options of the add-on batmon replaces are accepted so that copied configurations load; a value "
             "other than the default gets a warning saying why it has no effect. The add-on's configuration page "
             "does not show them.", "", "| option | why it has no effect |", "|---|---|"]
    lines += [f"| `{o.name}` | {_cell(o.ignored or '')} |" for o in ignored]
    lines += ["", END]
    return "\n".join(lines)


def knob_value_text(k: Knob) -> str:
    if k.kind == "bool":
        return "0/1 (false/true)"
    if k.kind == "name":
        return "letters, digits, `_`, `-`"
    word = "integer" if k.kind == "int" else "number"
    lo, hi = k.minimum or 0, k.maximum or 0
    return f"{word} {int(lo) if k.kind == 'int' else _number(lo)}..{int(hi) if k.kind == 'int' else _number(hi)}"


def render_knobs() -> str:
    lines = [KNOBS_BEGIN, "", "| knob | value | what the simulated device does |", "|---|---|---|"]
    lines += [f"| `{k.name}` | {knob_value_text(k)} | {_cell(k.doc)} |" for k in KNOBS]
    lines += ["", KNOBS_END]
    return "\n".join(lines)


def split_doc(text: str, begin: str = BEGIN, end_marker: str = END) -> tuple[str, str, str]:
    start, end = text.index(begin), text.index(end_marker) + len(end_marker)
    return text[:start], text[start:end], text[end:]


def test_generated_tables_are_up_to_date() -> None:
    _, generated, _ = split_doc(DOC.read_text())
    assert generated == render(), "doc/Configuration.md is out of date: run .venv/bin/python -m tests.test_docs_config"


def test_the_knob_table_is_up_to_date() -> None:
    _, generated, _ = split_doc(DOC.read_text(), KNOBS_BEGIN, KNOBS_END)
    assert generated == render_knobs(), "doc/Configuration.md is out of date: run .venv/bin/python -m tests.test_docs_config"


def test_every_option_is_in_the_tables() -> None:
    _, generated, _ = split_doc(DOC.read_text())
    for opt in (*OPTIONS, *DEVICE_OPTIONS, *PROXY_OPTIONS):
        assert re.search(rf"^\| `{re.escape(opt.name)}` \|", generated, re.M), opt.name


def test_every_used_option_is_explained_in_the_prose() -> None:
    before, _, after = split_doc(DOC.read_text())
    prose = before + after
    for opt in (*OPTIONS, *DEVICE_OPTIONS, *PROXY_OPTIONS):
        if opt.ignored is None:
            assert f"`{opt.name}`" in prose, f"{opt.name} has no explanation outside the tables"


def test_defaults_in_the_prose_match_the_loader() -> None:
    """Where the prose states a default ("`name` (default `X`)"), it is the loader's."""
    before, _, after = split_doc(DOC.read_text())
    defaults: dict[str, set[str]] = {}  # keep_alive is both a top-level and a device option
    for opt in (*OPTIONS, *DEVICE_OPTIONS, *PROXY_OPTIONS):
        defaults.setdefault(opt.name, set()).add(default_text(opt))
    stated = re.findall(r"`([a-z_]+)` \(default `([^`]*)`\)", before + after)
    assert len(stated) >= 10
    for name, value in stated:
        assert name in defaults, f"the prose states a default for {name}, which is no option"
        assert value in defaults[name], f"{name}: the prose says {value}, the loader {defaults[name]}"


def main() -> int:
    text = DOC.read_text()
    before, _, after = split_doc(text)
    text = before + render() + after
    before, _, after = split_doc(text, KNOBS_BEGIN, KNOBS_END)
    DOC.write_text(before + render_knobs() + after)
    print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

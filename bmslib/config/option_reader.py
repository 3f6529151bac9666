"""Reading one mapping of options (the top level or one ``devices`` entry) through its option table.

:class:`Section` has one typed getter per kind (``flag``, ``number``, ``integer``, ``text``, ``items`` and
their ``opt_`` variants): each converts strictly (no "yes" for true, no quoted numbers), checks the
table's bounds, and on a bad value records one problem in the :class:`Report` and returns the default, so
a parse goes on and reports every problem at once. :func:`show` writes a value into a message without
ever showing a secret or a container's content.
"""

from __future__ import annotations

import datetime
import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

from bmslib.options import Default, Kind, Option


class Report:
    """Problems and warnings of one parse, in the order found."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []


class Section:
    """Reads one mapping (the top level or one device entry) through its option table.

    Each getter records a problem for a bad value and returns the default instead, so that parsing
    goes on and reports everything at once. Asking for a name that is not in the table is a bug
    (KeyError): the tables are the only list of option names.
    """

    def __init__(self, data: Mapping[Any, Any], table: Iterable[Option], prefix: str,
                 report: Report) -> None:
        self._data = data
        self._table = {o.name: o for o in table}
        self._prefix = prefix
        self._report = report

    def path(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def problem(self, name: str, text: str) -> None:
        self._report.problems.append(f"{self.path(name)}: {text}")

    def warn(self, name: str, text: str) -> None:
        self._report.warnings.append(f"{self.path(name)}: {text}")

    def option(self, name: str) -> Option:
        return self._table[name]

    def raw(self, name: str) -> object:
        """The value as written (None when absent), without any check."""
        self.option(name)
        return self._data.get(name)

    def is_set(self, name: str) -> bool:
        """Present with a non-empty value other than the default."""
        opt = self.option(name)
        raw = self._data.get(name)
        if isinstance(raw, str):
            raw = raw.strip()
        if raw is None or raw == "":
            return False
        return not _same(raw, opt.default)

    def env_value(self, name: str, env: Mapping[str, str]) -> str | None:
        """The option's environment fallback variable, stripped, or None when unset or empty."""
        var = self.option(name).env
        value = env.get(var, "").strip() if var else ""
        return value or None

    def check_unknown_keys(self) -> None:
        for key in self._data:
            if key in self._table:
                continue
            shown = key if isinstance(key, str) and key.isprintable() else show(key)
            close = difflib.get_close_matches(key, list(self._table), n=1) if isinstance(key, str) else []
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self._report.warnings.append(f"{self._prefix}{shown}: unknown option, ignored{hint}")

    def check_ignored(self) -> None:
        for opt in self._table.values():
            if opt.ignored is not None and self.is_set(opt.name):
                self.warn(opt.name, f"ignored: {opt.ignored}")

    # Typed getters ---------------------------------------------------------------------------------

    def flag(self, name: str) -> bool:
        value = self._read(name, "bool")
        value = self.option(name).default if value is None else value
        assert isinstance(value, bool), name
        return value

    def opt_flag(self, name: str) -> bool | None:
        value = self._read(name, "bool")
        assert value is None or isinstance(value, bool)
        return value

    def number(self, name: str) -> float:
        value = self._read(name, "float")
        value = self.option(name).default if value is None else value
        assert isinstance(value, int | float), name
        return float(value)

    def opt_number(self, name: str) -> float | None:
        value = self._read(name, "float")
        assert value is None or isinstance(value, int | float)
        return None if value is None else float(value)

    def integer(self, name: str) -> int:
        value: Default = self.opt_integer(name)
        value = self.option(name).default if value is None else value
        assert isinstance(value, int), name
        return value

    def opt_integer(self, name: str) -> int | None:
        value = self._read(name, "int")
        assert value is None or isinstance(value, int)
        return value

    def text(self, name: str) -> str:
        value: Default = self.opt_text(name)
        value = self.option(name).default if value is None else value
        assert isinstance(value, str), name
        return value

    def opt_text(self, name: str) -> str | None:
        value = self._read(name, "str")
        assert value is None or isinstance(value, str)
        return value

    def items(self, name: str) -> tuple[object, ...]:
        value = self._read(name, "list")
        assert value is None or isinstance(value, tuple)
        return value or ()

    def _read(self, name: str, kind: Kind) -> object:
        """The checked value, or None when absent, empty or invalid (invalid: a problem is recorded)."""
        opt = self.option(name)
        if opt.kind != kind:
            raise TypeError(f"option {name} is a {opt.kind}, not a {kind}")
        raw = self._data.get(name)
        if isinstance(raw, str) and not opt.secret:
            raw = raw.strip()
        if raw is None or raw == "":
            if opt.required:
                self.problem(name, "is required")
            return None
        value, problem = _CONVERTERS[kind](raw, opt)
        if problem is None and isinstance(value, int | float) and not isinstance(value, bool):
            problem = _range_problem(opt, value, raw)
        if problem is not None:
            self.problem(name, problem)
            return None
        return value


def _same(raw: object, default: Default) -> bool:
    if isinstance(raw, list | tuple) and isinstance(default, tuple):
        return tuple(raw) == default
    return type(raw) is type(default) and raw == default


def type_word(value: object) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple | set):
        return "a list"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def show(value: object, *, secret: bool = False) -> str:
    """A value for a message: short, YAML-ish, never a container's content or a secret."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if secret or isinstance(value, Mapping | list | tuple | set):
        return type_word(value)
    if isinstance(value, int) and value.bit_length() > 64:
        return "a very large number"
    if isinstance(value, datetime.date):
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _to_bool(raw: object, opt: Option) -> tuple[object, str | None]:
    if isinstance(raw, bool):
        return raw, None
    return None, f"expected true or false, got {show(raw, secret=opt.secret)}"


def _to_int(raw: object, opt: Option) -> tuple[object, str | None]:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw, None
    if isinstance(raw, float) and raw.is_integer():
        return int(raw), None
    return None, f"expected an integer, got {show(raw, secret=opt.secret)}"


def _to_float(raw: object, opt: Option) -> tuple[object, str | None]:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None, f"expected a number, got {show(raw, secret=opt.secret)}"
    try:
        value = float(raw)
    except OverflowError:  # an int beyond the float range
        value = math.inf
    if not math.isfinite(value):
        return None, f"expected a finite number, got {show(raw, secret=opt.secret)}"
    return value, None


def _to_str(raw: object, opt: Option) -> tuple[object, str | None]:
    if isinstance(raw, str):
        return raw, None
    hint = " (put the value in quotes)" if isinstance(raw, int | float | datetime.date) else ""
    return None, f"expected a string, got {show(raw, secret=opt.secret)}{hint}"


def _to_list(raw: object, opt: Option) -> tuple[object, str | None]:
    if isinstance(raw, list | tuple):
        return tuple(raw), None
    return None, f"expected a list, got {show(raw, secret=opt.secret)}"


_CONVERTERS: Final[Mapping[Kind, Callable[[object, Option], tuple[object, str | None]]]] = MappingProxyType({
    "bool": _to_bool, "int": _to_int, "float": _to_float, "str": _to_str, "list": _to_list,
})


def _range_problem(opt: Option, value: float, raw: object) -> str | None:
    if opt.nonzero and value == 0:
        return "must not be 0"
    lo, hi = opt.minimum, opt.maximum
    if lo is not None and hi is not None:
        if not lo <= value <= hi:
            return f"must be {lo:g}..{hi:g}, got {show(raw)}"
        return None
    if lo is not None and (value <= lo if opt.exclusive_minimum else value < lo):
        return f"must be {'>' if opt.exclusive_minimum else '>='} {lo:g}, got {show(raw)}"
    if hi is not None and value > hi:
        return f"must be <= {hi:g}, got {show(raw)}"
    return None


"""Configuration: find the options file, validate it, and turn it into frozen dataclasses.

The option tables :data:`OPTIONS` (top level) and :data:`DEVICE_OPTIONS` (one ``devices`` entry), in
:mod:`bmslib.options`, are the single source of truth: the parser reads every option through them (names,
kinds, defaults, bounds, environment fallbacks), a key not in them is unknown, and the add-on schema and
the configuration docs are checked against them.

Validation collects every problem first and then raises one :class:`~bmslib.errors.ConfigError`
with one line per problem, ``<path>: <problem>`` (``devices[1].type: 'jkk' is not a known type
(...)``). Non-fatal remarks (unknown keys, options kept only for compatibility, skipped entries) go
to :attr:`AppConfig.warnings`; the caller logs them. Secret values (PINs, keys, passwords, tokens)
never appear in a message, a warning or a ``repr``.

Value types are strict: a bool option takes ``true``/``false`` (YAML's native bools), not the string
``"yes"``; a number option takes a number, not a quoted one; an integer option rejects ``1.5``; a
string option rejects an unquoted number (``pin: 1234``) rather than guess how YAML mangled it
(``0123`` is octal there). An empty string counts as absent, so the environment fallbacks and the
defaults apply.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import yaml
import yaml.constructor
import yaml.nodes

from bmslib.errors import ConfigError
from bmslib.options import (
    DEVICE_OPTION_DEFAULTS,
    DEVICE_OPTIONS,
    OPTION_DEFAULTS,
    OPTIONS,
    Default,
    Kind,
    Option,
)

__all__ = [
    "DEFAULT_SEARCH",
    "DEVICE_OPTIONS",
    "DEVICE_OPTION_DEFAULTS",
    "GROUP_TYPES",
    "OPTIONS",
    "OPTION_DEFAULTS",
    "AppConfig",
    "DeviceConfig",
    "InfluxConfig",
    "MqttConfig",
    "Option",
    "TypeInfo",
    "accept_any_algorithm",
    "load_config",
    "parse_config",
    "read_options_file",
]

#: Device types that config itself knows: virtual devices built from other devices' samples.
GROUP_TYPES: Final = ("group_parallel", "group_serial")

#: Where :func:`load_config` looks when no path is given, in this order (relative paths: the CWD).
DEFAULT_SEARCH: Final = (Path("/data/options.json"), Path("options.yaml"), Path("options.json"))


# --------------------------------------------------------------------------------------------------
# Inputs from the driver registry, and the validated output


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """What config needs to know about a device type (the driver registry provides one per type)."""

    name: str
    switches: frozenset[str]  # switch names the type can set ("charge", "discharge", "balance")
    accepts_pin: bool = False  # pairs with a PIN
    accepts_key: bool = False  # reads encrypted advertisements with a key (Victron Instant Readout)
    #: what is wrong with a PIN for this type (the message never contains the PIN), None when it will do
    pin_problem: Callable[[str], str | None] | None = None


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One validated ``devices`` entry.

    ``address`` is normalised: a MAC in upper case with ':', ``sim:<id>``, a CoreBluetooth UUID in
    upper case, a BLE name as written; for a group, the member list as written, with ``members``
    holding the members' aliases. ``index`` is the entry's position in the file's list.
    """

    address: str
    type: str
    alias: str
    pin: str | None = field(repr=False)
    key: str | None = field(repr=False)
    adapter: str | None
    debug: bool
    current_calibration: float
    algorithm: str | None
    keep_alive: bool | None  # None: the global keep_alive applies
    members: tuple[str, ...]
    index: int
    soc_calibration_days: float | None = None  # None: the algorithm's default (14)

    @property
    def is_group(self) -> bool:
        return self.type in GROUP_TYPES

    @property
    def is_sim(self) -> bool:
        return self.address.startswith("sim:")

    @property
    def sim_id(self) -> str | None:
        return self.address[4:] if self.is_sim else None


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    tls: bool
    ca_cert: str | None
    discovery_prefix: str


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    url: str  # always set, built from host, port and ssl when only a host was given
    token: str | None = field(repr=False)
    org: str | None
    bucket: str | None
    username: str | None
    password: str | None = field(repr=False)
    database: str | None
    verify_ssl: bool
    api: Literal["v2", "v1"]  # v2: token, org, bucket; v1: database (InfluxDB 1.8 API)


@dataclass(frozen=True, slots=True)
class AppConfig:
    devices: tuple[DeviceConfig, ...]
    mqtt: MqttConfig | None  # None: no broker configured, samples go to the console
    influxdb: InfluxConfig | None
    concurrent_sampling: bool
    keep_alive: bool
    sample_period: float
    publish_period: float
    invert_current: bool
    expire_values_after: float
    watchdog: bool
    bt_power_cycle: bool
    verbose_log: bool
    source: str  # the file (or other origin) the options came from
    warnings: tuple[str, ...]

    def keep_alive_for(self, device: DeviceConfig) -> bool:
        """The device's own keep_alive if it sets one, else the global one."""
        return self.keep_alive if device.keep_alive is None else device.keep_alive


_PREFIX_UNSAFE = re.compile(r"[^\w./-]")
_NODE_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def topic_prefix(alias: str) -> str:
    """The device's MQTT topic prefix: word characters, '.', '/' and '-' are kept, anything else becomes '_'.

    This is the rule of the add-on batmon replaces, except that it does not turn '-' into '_' (a
    regex range accident there since its 1.76): for every alias without '-' both give the same prefix.
    """
    return _PREFIX_UNSAFE.sub("_", alias)


def mqtt_node_id(prefix: str) -> str:
    """The discovery node id: Home Assistant accepts only ``[a-zA-Z0-9_-]`` there; the rest becomes '_'.

    Same as the replaced add-on (which replaced '/') for every prefix Home Assistant accepted from it.
    """
    return _NODE_UNSAFE.sub("_", prefix)


def accept_any_algorithm(text: str) -> str | None:
    """The default ``validate_algorithm`` hook: accepts every algorithm string."""
    return None


# --------------------------------------------------------------------------------------------------
# Loading


def load_config(
    path: str | None,
    *,
    env: Mapping[str, str],
    types: Mapping[str, TypeInfo],
    search: Sequence[Path] = DEFAULT_SEARCH,
    validate_algorithm: Callable[[str], str | None] = accept_any_algorithm,
) -> AppConfig:
    """Read and validate the options file ``path``, or the first of ``search`` that exists.

    Raises :class:`ConfigError` when no file is found, the file cannot be read or parsed, or the
    options are invalid.
    """
    if path is not None:
        file = Path(path)
    else:
        found = next((p for p in search if _is_file(p)), None)
        if found is None:
            looked = ", ".join(str(p) for p in search)
            raise ConfigError([f"no configuration file found; looked in {looked}; "
                               "pass --config PATH or use --demo"])
        file = found
    data = read_options_file(file)
    return parse_config(data, source=str(file), env=env, types=types, validate_algorithm=validate_algorithm)


def read_options_file(path: Path) -> object:
    """The parsed content of an options file: JSON for ``*.json``, else YAML (of which JSON is a part).

    Duplicate keys are an error. Failures raise :class:`ConfigError` with one line naming the file,
    and for syntax errors the line and column; the offending text itself is not quoted (it may hold
    a password).
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    if path.suffix.lower() == ".json":
        return _parse_json(text, path)
    return _parse_yaml(text, path)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return True  # it is there but we may not look: let reading it report why


def _parse_json(text: str, path: Path) -> object:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ConfigError([f"{path}: duplicate key {key!r}"])
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ConfigError([f"{path}: {where}: invalid JSON: {exc.msg}"]) from None
    except (ValueError, RecursionError) as exc:  # a number too long to convert; nesting too deep
        raise ConfigError([f"{path}: invalid JSON: {_first_line(exc)}"]) from None


class _StrictLoader(yaml.SafeLoader):
    """The safe YAML loader, but a key given twice in one mapping is an error, not "last one wins"."""

    def construct_mapping(self, node: yaml.nodes.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        first_line: dict[object, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.nodes.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = key_node.value
            if key in first_line:
                problem = f"duplicate key {_show(key)} (first at line {first_line[key]})"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]


def _parse_yaml(text: str, path: Path) -> object:
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = exc.problem or exc.context or "syntax error"
        raise ConfigError([f"{path}: {where}invalid YAML: {what}"]) from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ConfigError([f"{path}: invalid YAML: {_first_line(exc)}"]) from None
    finally:
        loader.dispose()


# --------------------------------------------------------------------------------------------------
# Reading options through the tables


class _Report:
    """Problems and warnings of one parse, in the order found."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []


class _Section:
    """Reads one mapping (the top level or one device entry) through its option table.

    Each getter records a problem for a bad value and returns the default instead, so that parsing
    goes on and reports everything at once. Asking for a name that is not in the table is a bug
    (KeyError): the tables are the only list of option names.
    """

    def __init__(self, data: Mapping[Any, Any], table: Iterable[Option], prefix: str,
                 report: _Report) -> None:
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
            shown = key if isinstance(key, str) and key.isprintable() else _show(key)
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


def _type_word(value: object) -> str:
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


def _show(value: object, *, secret: bool = False) -> str:
    """A value for a message: short, YAML-ish, never a container's content or a secret."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if secret or isinstance(value, Mapping | list | tuple | set):
        return _type_word(value)
    if isinstance(value, int) and value.bit_length() > 64:
        return "a very large number"
    if isinstance(value, datetime.date):
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _to_bool(raw: object, opt: Option) -> tuple[object, str | None]:
    if isinstance(raw, bool):
        return raw, None
    return None, f"expected true or false, got {_show(raw, secret=opt.secret)}"


def _to_int(raw: object, opt: Option) -> tuple[object, str | None]:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw, None
    if isinstance(raw, float) and raw.is_integer():
        return int(raw), None
    return None, f"expected an integer, got {_show(raw, secret=opt.secret)}"


def _to_float(raw: object, opt: Option) -> tuple[object, str | None]:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None, f"expected a number, got {_show(raw, secret=opt.secret)}"
    try:
        value = float(raw)
    except OverflowError:  # an int beyond the float range
        value = math.inf
    if not math.isfinite(value):
        return None, f"expected a finite number, got {_show(raw, secret=opt.secret)}"
    return value, None


def _to_str(raw: object, opt: Option) -> tuple[object, str | None]:
    if isinstance(raw, str):
        return raw, None
    hint = " (put the value in quotes)" if isinstance(raw, int | float | datetime.date) else ""
    return None, f"expected a string, got {_show(raw, secret=opt.secret)}{hint}"


def _to_list(raw: object, opt: Option) -> tuple[object, str | None]:
    if isinstance(raw, list | tuple):
        return tuple(raw), None
    return None, f"expected a list, got {_show(raw, secret=opt.secret)}"


_CONVERTERS: Final[Mapping[Kind, Callable[[object, Option], tuple[object, str | None]]]] = MappingProxyType({
    "bool": _to_bool, "int": _to_int, "float": _to_float, "str": _to_str, "list": _to_list,
})


def _range_problem(opt: Option, value: float, raw: object) -> str | None:
    if opt.nonzero and value == 0:
        return "must not be 0"
    lo, hi = opt.minimum, opt.maximum
    if lo is not None and hi is not None:
        if not lo <= value <= hi:
            return f"must be {lo:g}..{hi:g}, got {_show(raw)}"
        return None
    if lo is not None and (value <= lo if opt.exclusive_minimum else value < lo):
        return f"must be {'>' if opt.exclusive_minimum else '>='} {lo:g}, got {_show(raw)}"
    if hi is not None and value > hi:
        return f"must be <= {hi:g}, got {_show(raw)}"
    return None


# --------------------------------------------------------------------------------------------------
# Text formats: addresses, host:port, topic levels

_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")
_MAC_ATTEMPT = re.compile(r"[0-9A-Za-z]{1,3}(?:[:-][0-9A-Za-z]{1,3}){2,}")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_SIM_ID = re.compile(r"[A-Za-z0-9_-]+")
_ADAPTER = re.compile(r"hci[0-9]+")
_HEX_KEY = re.compile(r"[0-9A-Fa-f]{32}")
_PORT = re.compile(r"[0-9]{1,5}")


def _normal_mac(text: str) -> str | None:
    return text.upper().replace("-", ":") if _MAC.fullmatch(text) else None


def _looks_like_mac(text: str) -> bool:
    """A failed attempt at a MAC (wrong group count or digits), not a BLE name that has a dash."""
    return bool(_MAC_ATTEMPT.fullmatch(text)) and (":" in text or text.count("-") >= 4)


def _topic_level_problem(text: str) -> str | None:
    """Why ``text`` cannot be (part of) an MQTT topic, or None."""
    if not text:
        return "must not be empty"
    if "#" in text or "+" in text:
        return "must not contain '#' or '+'"
    if text.startswith("/") or text.endswith("/"):
        return "must not start or end with '/'"
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "must not contain control characters"
    return None


def _split_host_port(text: str) -> tuple[str, int | None, str | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port, problem)."""
    if "://" in text:
        return "", None, f"{_show(text)} is a URL; give a host name or address, optionally with :port"
    port_text: str | None = None
    if text.startswith("["):
        m = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", text)
        if m is None:
            return "", None, f"{_show(text)} is not a valid address; write IPv6 as [addr] or [addr]:port"
        host, port_text = m[1], m[2]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text  # a name, an IPv4 address, or an IPv6 address without a port
    if not host:
        return "", None, f"{_show(text)} has no host"
    if any(c.isspace() or c in "/[]" for c in host):
        return "", None, f"{_show(text)} is not a host name or address"
    if port_text is None:
        return host, None, None
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        return "", None, f"{_show(text)} has an invalid port (1..65535)"
    return host, int(port_text), None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --------------------------------------------------------------------------------------------------
# Parsing


def parse_config(
    data: object,
    *,
    source: str,
    env: Mapping[str, str],
    types: Mapping[str, TypeInfo],
    validate_algorithm: Callable[[str], str | None] = accept_any_algorithm,
) -> AppConfig:
    """Validate loaded options (a mapping, as from :func:`read_options_file`) into an :class:`AppConfig`.

    ``env`` supplies the MQTT fallbacks (``MQTT_HOST``, ``MQTT_PORT``, ``MQTT_USER``,
    ``MQTT_PASSWORD``); ``types`` every known device type; ``validate_algorithm`` returns a problem
    text for an algorithm string, or None. Raises :class:`ConfigError` listing every problem.
    """
    if not isinstance(data, Mapping):
        what = "an empty file" if data is None else _type_word(data)
        raise ConfigError([f"{source}: expected a mapping of options at the top level, got {what}"])
    report = _Report()
    top = _Section(data, OPTIONS, "", report)
    top.check_unknown_keys()
    devices = _DeviceParser(top, types, validate_algorithm, report).parse()
    mqtt = _parse_mqtt(top, env)
    config = AppConfig(  # arguments in the table's order, so that problems come in that order too
        devices=devices,
        mqtt=mqtt,
        concurrent_sampling=top.flag("concurrent_sampling"),
        keep_alive=top.flag("keep_alive"),
        sample_period=top.number("sample_period"),
        publish_period=top.number("publish_period"),
        invert_current=top.flag("invert_current"),
        expire_values_after=top.number("expire_values_after"),
        watchdog=top.flag("watchdog"),
        bt_power_cycle=top.flag("bt_power_cycle"),
        verbose_log=top.flag("verbose_log"),
        influxdb=_parse_influxdb(top),
        source=source,
        warnings=(),
    )
    top.check_ignored()
    if report.problems:
        raise ConfigError(report.problems, warnings=report.warnings)
    return replace(config, warnings=tuple(report.warnings))


@dataclass
class _Draft:
    """A device entry between the per-entry checks and the cross-entry checks."""

    index: int
    section: _Section
    address: str
    type: str | None  # None: missing or unknown (already reported)
    alias: str | None  # None: invalid or missing (already reported)
    pin: str | None
    key: str | None
    adapter: str | None
    debug: bool
    current_calibration: float
    algorithm: str | None
    keep_alive: bool | None
    member_refs: tuple[str, ...] = ()
    members: tuple[int, ...] = ()  # indices of the resolved members
    soc_calibration_days: float | None = None

    @property
    def is_group(self) -> bool:
        return self.type in GROUP_TYPES


class _DeviceParser:
    def __init__(self, top: _Section, types: Mapping[str, TypeInfo],
                 validate_algorithm: Callable[[str], str | None], report: _Report) -> None:
        self._top = top
        self._types = types
        self._validate_algorithm = validate_algorithm
        self._report = report
        self._known = {name.casefold(): name for name in (*types, *GROUP_TYPES)}
        self._skipped: dict[str, int] = {}  # casefolded alias of a skipped entry -> its index

    def parse(self) -> tuple[DeviceConfig, ...]:
        drafts = [d for i, entry in enumerate(self._top.items("devices")) if (d := self._entry(i, entry))]
        self._check_unique(drafts)
        self._resolve_groups(drafts)
        for draft in drafts:
            self._check_algorithm(draft, drafts)
        by_index = {d.index: d for d in drafts}
        return tuple(
            DeviceConfig(
                address=d.address, type=d.type or "", alias=d.alias or "", pin=d.pin, key=d.key,
                adapter=d.adapter, debug=d.debug, current_calibration=d.current_calibration,
                algorithm=d.algorithm, keep_alive=d.keep_alive,
                members=tuple(by_index[m].alias or "" for m in d.members), index=d.index,
                soc_calibration_days=d.soc_calibration_days,
            )
            for d in drafts
        )

    # One entry ---------------------------------------------------------------------------------------

    def _entry(self, index: int, entry: object) -> _Draft | None:
        path = f"devices[{index}]"
        if not isinstance(entry, Mapping):
            what = _show(entry)
            self._report.problems.append(f"{path}: expected a mapping with address and type, got {what}")
            return None
        sec = _Section(entry, DEVICE_OPTIONS, f"{path}.", self._report)
        raw_address = entry.get("address")
        if "address" in entry and (raw_address is None or isinstance(raw_address, str)):
            stripped = (raw_address or "").strip()
            if not stripped or stripped.startswith("#"):
                why = f"the address {_show(stripped)} starts with '#'" if stripped else "the address is empty"
                self._report.warnings.append(f"{path}: skipped, {why}")
                if isinstance(alias := entry.get("alias"), str) and alias.strip():
                    self._skipped[alias.strip().casefold()] = index
                return None
        sec.check_unknown_keys()
        type_name = self._type(sec)
        address_text = sec.opt_text("address")
        address = self._address(sec, address_text, type_name) if address_text is not None else None
        draft = _Draft(
            index=index, section=sec, address=address or "", type=type_name, alias=None,
            pin=sec.opt_text("pin"), key=sec.opt_text("key"), adapter=self._adapter(sec),
            debug=sec.flag("debug"), current_calibration=sec.number("current_calibration"),
            algorithm=sec.opt_text("algorithm"), keep_alive=sec.opt_flag("keep_alive"),
            soc_calibration_days=sec.opt_number("soc_calibration_days"),
        )
        sec.raw("note")  # free text: accepted as anything, never used
        if draft.is_group and address_text is not None:
            draft.member_refs = tuple(r.strip() for r in address_text.split(",") if r.strip())
            if not draft.member_refs:
                sec.problem("address", "a group needs at least one member")
        draft.alias = self._alias(sec, draft, address)
        self._check_secrets(sec, draft)
        if draft.is_group and draft.adapter is not None:
            sec.warn("adapter", "ignored: a group has no Bluetooth connection of its own")
            draft.adapter = None
        return draft

    def _type(self, sec: _Section) -> str | None:
        text = sec.opt_text("type")
        if text is None:
            return None
        name = self._known.get(text.casefold())
        if name is None:
            known = ", ".join(sorted(set(self._types) | set(GROUP_TYPES)))
            sec.problem("type", f"{_show(text)} is not a known type ({known})")
        return name

    def _address(self, sec: _Section, text: str, type_name: str | None) -> str | None:
        if type_name in GROUP_TYPES:
            return text
        if text[:4].lower() == "sim:":
            if _SIM_ID.fullmatch(text[4:]):
                return "sim:" + text[4:]
            sec.problem("address", f"{_show(text)} is not a valid simulator address "
                                   "(sim:<id>, the id of letters, digits, '_' and '-')")
            return None
        if type_name == "dummy":
            return text
        if (mac := _normal_mac(text)) is not None:
            return mac
        if _UUID.fullmatch(text):
            return text.upper()
        if _looks_like_mac(text):
            sec.problem("address", f"{_show(text)} is not a valid MAC address")
            return None
        return text  # a BLE advertised name, resolved at start

    def _adapter(self, sec: _Section) -> str | None:
        text = sec.opt_text("adapter")
        if text is None:
            return None
        if _ADAPTER.fullmatch(text):
            return text
        if (mac := _normal_mac(text)) is not None:
            return mac
        sec.problem("adapter",
                    f"{_show(text)} is not a Bluetooth adapter (hci0, hci1, ... or its MAC address)")
        return None

    def _alias(self, sec: _Section, draft: _Draft, address: str | None) -> str | None:
        raw = sec.raw("alias")
        if isinstance(raw, str) and not raw.strip():
            sec.problem("alias", "must not be empty (leave it out to use the default)")
            return None
        alias = sec.opt_text("alias")
        if alias is not None:
            if (problem := _topic_level_problem(alias)) is not None:
                sec.problem("alias", f"{_show(alias)} {problem}")
                return None
            return alias
        if raw is not None:  # present but of the wrong type: reported
            return None
        if draft.is_group:
            sec.problem("alias", "is required for a group")
            return None
        if address is None:
            return None
        if address.startswith("sim:"):
            alias = address[4:]
        elif _MAC.fullmatch(address) or _UUID.fullmatch(address):
            alias = re.sub("[:-]", "", address).lower()
        else:
            alias = address
        if (problem := _topic_level_problem(alias)) is not None:
            sec.problem("alias", f"the default {_show(alias)} (from the address) {problem}; set an alias")
            return None
        return alias

    def _check_secrets(self, sec: _Section, draft: _Draft) -> None:
        info = self._types.get(draft.type) if draft.type is not None else None
        accepts_pin = info is not None and info.accepts_pin
        accepts_key = info is not None and info.accepts_key
        known_type = draft.type is not None
        if draft.pin is not None and known_type and not accepts_pin:
            sec.warn("pin", f"type {_show(draft.type)} does not use a PIN; ignored")
            draft.pin = None
        if (draft.pin is not None and info is not None and info.pin_problem is not None
                and (problem := info.pin_problem(draft.pin)) is not None):
            sec.problem("pin", problem)
        if draft.key is not None:
            if known_type and not accepts_key:
                sec.problem("key", f"type {_show(draft.type)} does not use a key "
                                   "(only Victron Instant Readout does)")
            elif not _HEX_KEY.fullmatch(draft.key.strip()):
                sec.problem("key", "must be 32 hex digits")
            draft.key = draft.key.strip().lower()

    # Across entries ----------------------------------------------------------------------------------

    def _check_unique(self, drafts: list[_Draft]) -> None:
        aliases: dict[str, int] = {}
        topics: dict[str, int] = {}
        addresses: dict[str, int] = {}
        for d in drafts:
            if d.alias is not None:
                first = aliases.setdefault(d.alias.casefold(), d.index)
                if first != d.index:
                    d.section.problem("alias", f"{_show(d.alias)} is already used by devices[{first}]")
                    continue
                prefix = topic_prefix(d.alias)
                for key in {prefix.casefold(), mqtt_node_id(prefix).casefold()}:
                    first = topics.setdefault(key, d.index)
                    if first != d.index:
                        d.section.problem("alias", f"{_show(d.alias)} gives the same MQTT topics ({key}) as the "
                                                   f"alias of devices[{first}]; choose another alias")
                        break
            if d.address and not d.is_group and d.type not in (None, "dummy"):
                first = addresses.setdefault(d.address.casefold(), d.index)
                if first != d.index:
                    d.section.problem("address", f"{_show(d.address)} is already used by devices[{first}]")

    def _resolve_groups(self, drafts: list[_Draft]) -> None:
        by_alias = {d.alias.casefold(): d for d in reversed(drafts) if d.alias is not None}
        by_address = {d.address.casefold(): d for d in reversed(drafts) if not d.is_group and d.address}
        devices = sorted(d.alias for d in drafts if d.alias is not None and not d.is_group)
        listing = f"({', '.join(devices)})" if devices else "(there are none)"
        group_of: dict[int, _Draft] = {}  # member index -> its group
        for group in drafts:
            if not group.is_group:
                continue
            members: list[int] = []
            for ref in group.member_refs:
                key = (_normal_mac(ref) or ref).casefold()
                target = by_alias.get(key) or by_address.get(key)
                problem = None
                if target is None:
                    skipped = self._skipped.get(ref.casefold())
                    problem = (f"group member {_show(ref)} is not a configured device {listing}"
                               if skipped is None
                               else f"group member {_show(ref)} is skipped (devices[{skipped}])")
                elif target is group:
                    problem = f"group {_show(group.alias or ref)} cannot contain itself"
                elif target.is_group:
                    problem = f"group member {_show(ref)} is a group; groups cannot contain groups"
                elif target.index in members:
                    problem = f"group member {_show(ref)} is listed twice"
                elif (other := group_of.get(target.index)) is not None:
                    problem = (f"group member {_show(ref)} is already in group {_show(other.alias)} "
                               f"(devices[{other.index}])")
                if problem is not None:
                    group.section.problem("address", problem)
                    continue
                assert target is not None
                members.append(target.index)
                group_of[target.index] = group
            group.members = tuple(members)

    def _check_algorithm(self, draft: _Draft, drafts: list[_Draft]) -> None:
        if draft.algorithm is None and draft.soc_calibration_days is not None:
            draft.section.warn("soc_calibration_days", "not used without an algorithm")
        if draft.algorithm is None or draft.type is None:
            return
        sec = draft.section
        if draft.is_group:
            by_index = {d.index: d for d in drafts}
            lacking = [by_index[m] for m in draft.members if "charge" not in self._switches(by_index[m].type)]
            if lacking:
                names = ", ".join(d.alias or "" for d in lacking)
                sec.problem("algorithm", f"needs a device with a charge switch; group {_show(draft.alias)} "
                                         f"has members without one ({names})")
                return
            if not draft.members:
                return
        elif "charge" not in self._switches(draft.type):
            sec.problem("algorithm",
                        f"needs a device with a charge switch; type {_show(draft.type)} has none")
            return
        if (problem := self._validate_algorithm(draft.algorithm)) is not None:
            sec.problem("algorithm", problem)

    def _switches(self, type_name: str | None) -> frozenset[str]:
        info = self._types.get(type_name) if type_name is not None else None
        return info.switches if info is not None else frozenset()


def _parse_mqtt(top: _Section, env: Mapping[str, str]) -> MqttConfig | None:
    broker = top.opt_text("mqtt_broker")
    port = top.opt_integer("mqtt_port")
    # The Supervisor's broker credentials (MQTT_USER, MQTT_PASSWORD, MQTT_PORT) belong to the Supervisor's
    # broker: they apply only when the broker itself comes from MQTT_HOST, never to a user's own broker.
    from_env = broker is None and top.env_value("mqtt_broker", env) is not None
    user = top.opt_text("mqtt_user") or (top.env_value("mqtt_user", env) if from_env else None)
    password = top.opt_text("mqtt_password") or (top.env_value("mqtt_password", env) if from_env else None)
    tls = top.flag("mqtt_tls")
    ca_cert = top.opt_text("mqtt_ca_cert")
    prefix = top.text("mqtt_discovery_prefix")
    if (problem := _topic_level_problem(prefix)) is not None:
        top.problem("mqtt_discovery_prefix", f"{_show(prefix)} {problem}")
    if ca_cert is not None:
        if not _readable_file(ca_cert):
            top.problem("mqtt_ca_cert", f"file {_show(ca_cert)} does not exist")
        elif not tls:
            top.warn("mqtt_ca_cert", "not used, because mqtt_tls is false")

    host: str | None = None
    host_port: int | None = None
    if broker is not None:
        host, host_port, problem = _split_host_port(broker)
        if problem is not None:
            top.problem("mqtt_broker", problem)
    elif (env_host := top.env_value("mqtt_broker", env)) is not None:
        host, host_port, problem = _split_host_port(env_host)
        if problem is not None:
            top.problem("mqtt_broker", f"from the environment ({top.option('mqtt_broker').env}): {problem}")
    configured = any(top.is_set(o.name) for o in OPTIONS if o.name.startswith("mqtt_"))
    if not host and not configured:
        return None
    if port is None:
        port = host_port or (_env_port(top, env) if from_env else None) or (8883 if tls else 1883)
    return MqttConfig(host=host or "127.0.0.1", port=port, user=user, password=password, tls=tls,
                      ca_cert=ca_cert, discovery_prefix=prefix)


def _readable_file(name: str) -> bool:
    try:
        return Path(name).is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte
        return False


def _env_port(top: _Section, env: Mapping[str, str]) -> int | None:
    text = top.env_value("mqtt_port", env)
    if text is None:
        return None
    if _PORT.fullmatch(text) and 1 <= int(text) <= 65535:
        return int(text)
    top.problem("mqtt_port", f"from the environment ({top.option('mqtt_port').env}): "
                             f"expected an integer 1..65535, got {_show(text)}")
    return None


def _parse_influxdb(top: _Section) -> InfluxConfig | None:
    url = top.opt_text("influxdb_url")
    host = top.opt_text("influxdb_host")
    port = top.integer("influxdb_port")
    ssl = top.flag("influxdb_ssl")
    verify_ssl = top.flag("influxdb_verify_ssl")
    v2 = {n: top.opt_text(n) for n in ("influxdb_token", "influxdb_org", "influxdb_bucket")}
    v1 = {n: top.opt_text(n) for n in ("influxdb_database", "influxdb_username", "influxdb_password")}
    if url is None and host is None:
        stray = [o.name for o in OPTIONS if o.name.startswith("influxdb_") and top.is_set(o.name)]
        if stray:
            ignoring = ", ".join(stray)
            top.warn("influxdb_url", f"not set (nor influxdb_host), so InfluxDB is off; ignoring {ignoring}")
        return None

    enabler = "influxdb_url" if url is not None else "influxdb_host"
    if url is not None:
        if host is not None:
            top.problem("influxdb_host", "set either influxdb_url or influxdb_host, not both")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            top.problem("influxdb_url", f"{_show(url)} is not an http:// or https:// URL")
        for name in ("influxdb_port", "influxdb_ssl"):
            if top.is_set(name):
                top.warn(name, "ignored, because influxdb_url is set")
    elif host is not None:
        host_only, host_port, problem = _split_host_port(host)
        if problem is not None:
            top.problem("influxdb_host", problem)
        if host_port is not None and not top.is_set("influxdb_port"):
            port = host_port
        url = f"{'https' if ssl else 'http'}://{_url_host(host_only)}:{port}"

    api: Literal["v2", "v1"] = "v2"
    if v1["influxdb_database"] is not None and any(v2.values()):
        top.problem("influxdb_database", "set either influxdb_database (InfluxDB 1.8) or influxdb_token, "
                                         "influxdb_org and influxdb_bucket (InfluxDB 2), not both")
    elif any(v2.values()):
        for name, value in v2.items():
            if value is None:
                top.problem(name, "is required for InfluxDB 2 "
                                  "(influxdb_token, influxdb_org and influxdb_bucket)")
        for name in ("influxdb_username", "influxdb_password"):
            if v1[name] is not None:
                top.warn(name, "ignored: used only with influxdb_database (InfluxDB 1.8)")
    elif v1["influxdb_database"] is not None:
        api = "v1"
    else:
        top.problem(enabler, "InfluxDB needs influxdb_token, influxdb_org and influxdb_bucket (InfluxDB 2) "
                             "or influxdb_database (InfluxDB 1.8)")
    return InfluxConfig(
        url=url or "", token=v2["influxdb_token"], org=v2["influxdb_org"], bucket=v2["influxdb_bucket"],
        username=v1["influxdb_username"], password=v1["influxdb_password"], database=v1["influxdb_database"],
        verify_ssl=verify_ssl, api=api,
    )

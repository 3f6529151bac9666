"""The Home Assistant app (formerly add-on) package: config.yaml against the loader's option tables (both
ways, and no value the schema admits that the loader refuses), the Supervisor's schema syntax, the
Dockerfile as the whole build description (base image, labels, what it copies, a linter; no build.yaml
since Supervisor 2026.04.0), run.sh (arguments, the Supervisor MQTT service lookup against a local server
playing the Supervisor API, secrets), the AppArmor profile (parsed by apparmor_parser), translations and
images."""

from __future__ import annotations

import contextlib
import http.server
import json
import math
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import bmslib
from bmslib.config import DEVICE_OPTIONS, GROUP_TYPES, OPTION_DEFAULTS, OPTIONS, Option, parse_config
from bmslib.config.original_types import AIOBMSBLE_NATIVE, RENAMED, dropin_names
from bmslib.config.settings import AUTO_TYPE
from bmslib.errors import ConfigError
from bmslib.registry import device_types, type_infos
from tests.mqtt_broker import Broker, Watcher

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
#: The architectures Home Assistant still supports (the 32-bit ones were dropped), as config.yaml names them,
#: with the musllinux platform tag of each (tests/test_wheels.py).
ARCHES = {"aarch64": "aarch64", "amd64": "x86_64"}


def load_yaml(name: str) -> Any:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return load_yaml("config.yaml")


def parse(data: Mapping[str, Any]) -> Any:
    return parse_config(data, source="test", env={}, types=type_infos())


# --------------------------------------------------------------------------------------------------
# The Supervisor's option schema syntax (as documented for add-on developers), and its validation

_TYPE = re.compile(
    r"(?P<base>bool|email|url|port|str|password|int|float|match|list|device)"
    r"(?:\((?P<args>.*)\))?(?P<optional>\?)?"
)


@dataclass(frozen=True)
class SchemaType:
    base: str
    optional: bool
    lo: float | None = None
    hi: float | None = None
    pattern: str | None = None
    choices: tuple[str, ...] = ()


def parse_type(text: str) -> SchemaType:
    m = _TYPE.fullmatch(text)
    assert m is not None, f"not Supervisor schema syntax: {text!r}"
    base, args, optional = m["base"], m["args"], bool(m["optional"])
    if base == "match":
        assert args, text
        re.compile(args)
        return SchemaType(base, optional, pattern=args)
    if base == "list":
        assert args and "" not in args.split("|"), text
        return SchemaType(base, optional, choices=tuple(args.split("|")))
    lo = hi = None
    if args is not None:
        assert base in ("int", "float", "str", "password"), text
        number = r"\d+" if base != "float" else r"[\d.]+"
        bounds = re.fullmatch(rf"({number})?,({number})?", args)
        assert bounds is not None, f"bounds must be (min,max) with non-negative numbers: {text!r}"
        lo = float(bounds[1]) if bounds[1] else None
        hi = float(bounds[2]) if bounds[2] else None
    return SchemaType(base, optional, lo, hi)


class Invalid(Exception):
    pass


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "enable"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off", "disable"):
        return False
    if isinstance(value, int | float):
        return bool(value)
    raise Invalid(f"not a boolean: {value!r}")


def validate_single(text: str, value: Any, key: str) -> Any:
    """What the Supervisor stores for ``value`` under type ``text`` (it coerces), or Invalid."""
    t = parse_type(text)
    if value is None:
        raise Invalid(f"missing required option {key}")
    if t.base in ("str", "password"):
        return str(value)
    if t.base in ("int", "float"):
        try:
            number: float = int(value) if t.base == "int" else float(value)
        except (TypeError, ValueError):
            raise Invalid(f"{key}: not a number: {value!r}") from None
        if (t.lo is not None and number < t.lo) or (t.hi is not None and number > t.hi):
            raise Invalid(f"{key}: {number} out of range")
        return number
    if t.base == "bool":
        return _coerce_bool(value)
    if t.base == "match":
        assert t.pattern is not None
        if re.match(t.pattern, str(value)) is None:
            raise Invalid(f"{key}: {value!r} does not match {t.pattern}")
        return str(value)
    if t.base == "list":
        if str(value) not in t.choices:
            raise Invalid(f"{key}: {value!r} not one of {t.choices}")
        return str(value)
    raise AssertionError(f"type {t.base} is not used by batmon")


def supervisor_validate(schema: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate options the way the Supervisor does: unknown keys dropped, values coerced, every key whose
    type has no '?' required."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key not in schema:
            continue  # the Supervisor drops it with a warning
        typ = schema[key]
        if isinstance(typ, list):
            if not isinstance(value, list):
                raise Invalid(f"{key}: not a list")
            out[key] = [validate_nested(typ[0], item, key) for item in value]
        elif isinstance(typ, dict):
            out[key] = validate_nested(typ, value, key)
        else:
            out[key] = validate_single(typ, value, key)
    for key, typ in schema.items():
        first = typ[0] if isinstance(typ, list) and typ else typ
        if key not in out and not (isinstance(first, str) and first.endswith("?")):
            raise Invalid(f"missing option {key}")
    return out


def validate_nested(typ: Any, value: Any, key: str) -> Any:
    if isinstance(typ, dict):
        if not isinstance(value, dict):
            raise Invalid(f"{key}: not a mapping")
        return supervisor_validate(typ, value)
    return validate_single(typ, value, key)


# --------------------------------------------------------------------------------------------------
# config.yaml: schema and loader, both ways


def test_manifest_basics_and_least_privilege(manifest: dict[str, Any]) -> None:
    assert manifest["name"] and manifest["description"]
    assert manifest["slug"] == "batmon"
    assert manifest["version"] == bmslib.__version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{bmslib.__version__}"' in pyproject
    assert manifest["arch"] and set(manifest["arch"]) <= set(ARCHES)
    assert sorted(manifest["arch"]) == sorted(ARCHES), "aarch64 and amd64: the two Home Assistant supports"
    assert manifest["host_dbus"] is True
    assert "mqtt:need" in manifest["services"]
    # nothing beyond D-Bus: the add-on we replace gave everyone host networking and NET_ADMIN/NET_RAW
    for key in ("host_network", "privileged", "full_access", "devices", "uart", "usb", "gpio", "udev",
                "hassio_api", "homeassistant_api", "docker_api", "host_pid", "host_ipc", "kernel_modules"):
        assert not manifest.get(key), f"{key} needs a documented reason"
    assert manifest.get("apparmor", True) is True
    for mapping in manifest.get("map", []):
        assert mapping.get("read_only", True) is True, mapping


def test_top_level_schema_matches_the_loader_both_ways(manifest: dict[str, Any]) -> None:
    schema = manifest["schema"]
    used = {o.name for o in OPTIONS if o.ignored is None}
    ignored = {o.name for o in OPTIONS if o.ignored is not None}
    assert set(schema) - used == set(), "schema options the loader does not know (it would warn: unknown option)"
    assert used - set(schema) == set(), "loader options missing from the schema (the Supervisor would strip them)"
    # options kept only for configurations copied from the original add-on are not offered in the UI
    assert not ignored & set(schema)


def test_device_schema_matches_the_loader_both_ways(manifest: dict[str, Any]) -> None:
    devices = manifest["schema"]["devices"]
    assert isinstance(devices, list) and len(devices) == 1 and isinstance(devices[0], dict)
    assert set(devices[0]) == {o.name for o in DEVICE_OPTIONS}


def _option_pairs(manifest: dict[str, Any]) -> list[tuple[Option, Any, bool]]:
    schema = manifest["schema"]
    pairs = [(o, schema[o.name], o.name in manifest["options"]) for o in OPTIONS if o.name in schema]
    pairs += [(o, schema["devices"][0][o.name], False) for o in DEVICE_OPTIONS]
    return pairs


def test_every_schema_type_agrees_with_its_option(manifest: dict[str, Any]) -> None:
    for opt, typ, prefilled in _option_pairs(manifest):
        if opt.kind == "list":
            assert isinstance(typ, list), opt.name
            continue
        t = parse_type(typ)
        where = f"{opt.name}: {typ}"
        if opt.required:
            assert not t.optional, where
        elif not t.optional:
            # a required schema entry must be pre-filled with the loader's default
            assert prefilled and opt.default is not None, where
        if opt.kind == "bool":
            assert t.base == "bool", where
        elif opt.kind == "int":
            assert t.base in ("int", "port"), where
            assert (t.lo, t.hi) == (opt.minimum, opt.maximum), where
        elif opt.kind == "float":
            assert t.base == "float", where
            if opt.exclusive_minimum:
                # the Supervisor's bounds are inclusive: the schema's lowest value must lie above the
                # loader's exclusive minimum, and admit the loader's default and example
                assert opt.minimum is not None and t.lo is not None and t.lo > opt.minimum, where
                for sensible in (opt.default, opt.example):
                    assert not isinstance(sensible, int | float) or t.lo <= sensible, where
            else:
                assert t.lo == opt.minimum, where
            assert t.hi == opt.maximum, where
        else:
            assert opt.kind == "str", where
            if opt.secret:
                assert t.base == "password", f"{where}: a secret needs the password type"
            else:
                assert t.base in ("str", "match", "list", "url"), where


def test_type_choices_are_the_registry_and_the_groups(manifest: dict[str, Any]) -> None:
    t = parse_type(manifest["schema"]["devices"][0]["type"])
    assert t.base == "list"
    # and batmon-ha's names the loader reads as one of batmon's types (each of them a registry type)
    # (batmon-ha's schema took any text, so every name it read must stay valid: the aiobmsble ones too)
    plugins = [t.name.removesuffix("_ble") if t.name.removesuffix("_ble") in AIOBMSBLE_NATIVE else t.name
               for t in device_types().values() if t.via == "aiobmsble"]
    dropin = dropin_names(plugins)
    # and auto: detected from the advertisement (also when left out, so the entry is optional)
    assert set(t.choices) == set(device_types()) | set(GROUP_TYPES) | set(RENAMED) | set(dropin) | {AUTO_TYPE}
    assert t.optional
    assert set(RENAMED.values()) | set(dropin.values()) <= set(device_types())
    assert list(t.choices) == sorted(t.choices)


@pytest.mark.parametrize(("adapter", "ok"), [
    ("hci0", True), ("hci12", True), ("00:1A:7D:DA:71:13", True), ("00-1a-7d-da-71-13", True),
    ("hci", False), ("usb0", False), ("00:1A:7D:DA:71", False),
])
def test_adapter_is_text_the_loader_checks(manifest: dict[str, Any], adapter: str, ok: bool) -> None:
    """The schema cannot know the proxies' names (a device's adapter may name one), so it takes any text and the
    loader refuses, in one line, what is neither an adapter nor a proxy."""
    assert parse_type(manifest["schema"]["devices"][0]["adapter"]).base == "str"
    device = {"address": "C8:47:8C:00:00:01", "type": "jbd", "adapter": adapter}
    assert (loader_problems({"devices": [device]}) == []) is ok
    proxies = {"ble_stack": "esphome", "bluetooth_proxies": [{"host": "192.168.1.20", "name": "usb0"}]}
    assert loader_problems({**proxies, "devices": [{**device, "adapter": "USB0"}]}) == []


def test_default_options_pass_the_supervisor_and_the_loader(manifest: dict[str, Any]) -> None:
    options = manifest["options"]
    stored = supervisor_validate(manifest["schema"], options)
    config = parse(stored)
    assert config.warnings == ()
    for key, value in options.items():
        if key in ("devices", "bluetooth_proxies"):  # lists: the Supervisor wants them present
            assert value == []
            continue
        assert key in OPTION_DEFAULTS, key
        assert value == OPTION_DEFAULTS[key] and type(value) is type(OPTION_DEFAULTS[key]), key
    # and what the loader makes of them is its defaults
    assert (config.keep_alive, config.sample_period, config.publish_period, config.invert_current,
            config.expire_values_after, config.watchdog) == tuple(
        OPTION_DEFAULTS[k] for k in ("keep_alive", "sample_period", "publish_period", "invert_current",
                                     "expire_values_after", "watchdog"))


#: Two complete configurations (InfluxDB by URL with a token, and by host as 1.8): together every option.
FULL_V2: dict[str, Any] = {
    "devices": [
        {"address": "C8:47:8C:00:00:01", "type": "jk", "alias": "bat1", "adapter": "hci0", "debug": True,
         "current_calibration": -1.0, "keep_alive": False, "note": "garage", "algorithm": "soc 90% 80%",
         "soc_calibration_days": 30},
        {"address": "C8:47:8C:00:00:02", "type": "victron", "alias": "shunt", "key": "0123456789abcdef0123456789abcdef"},
        {"address": "C8:47:8C:00:00:03", "type": "jbd", "alias": "bat2", "pin": "123456"},
        {"address": "bat1, bat2", "type": "group_parallel", "alias": "bank"},
    ],
    "mqtt_broker": "192.168.1.10", "mqtt_port": 8883, "mqtt_user": "batmon", "mqtt_password": "pw",
    "mqtt_tls": True, "mqtt_discovery_prefix": "ha", "concurrent_sampling": True, "keep_alive": True,
    "sample_period": 2, "publish_period": 5, "invert_current": False, "expire_values_after": 60, "watchdog": False,
    "bt_power_cycle": True, "verbose_log": True,
    "influxdb_url": "https://influx.example:8086", "influxdb_token": "tok", "influxdb_org": "home",
    "influxdb_bucket": "batmon", "influxdb_verify_ssl": False, "bluetooth_proxies": [],
}
FULL_V1: dict[str, Any] = {
    "devices": [],
    "keep_alive": True, "sample_period": 1.0, "publish_period": 1.0, "invert_current": True,
    "expire_values_after": 20.0, "watchdog": True, "mqtt_ca_cert": "CA_FILE",
    "influxdb_host": "192.168.1.11", "influxdb_port": 8087, "influxdb_username": "u", "influxdb_password": "p",
    "influxdb_database": "batmon/autogen", "influxdb_ssl": True,
    "ble_stack": "esphome",
    "bluetooth_proxies": [{"host": "192.168.1.20", "port": 6054, "name": "shed",
                           "noise_psk": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}],
}


def test_full_configurations_pass_the_supervisor_and_the_loader(manifest: dict[str, Any], tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    v1 = {**FULL_V1, "mqtt_ca_cert": str(ca), "mqtt_tls": True}
    covered = set(FULL_V2) | set(v1)
    assert covered == set(manifest["schema"]), "the examples should exercise every option"
    device_keys = {k for d in FULL_V2["devices"] for k in d}
    assert device_keys == set(manifest["schema"]["devices"][0])
    for options in (FULL_V2, v1):
        stored = supervisor_validate(manifest["schema"], options)
        assert stored.keys() == options.keys()  # nothing stripped
        config = parse(json.loads(json.dumps(stored)))  # as the Supervisor writes it: JSON
        assert config.influxdb is not None
    v2_config = parse(supervisor_validate(manifest["schema"], FULL_V2))
    assert v2_config.sample_period == 2.0 and v2_config.devices[0].adapter == "hci0"
    v1_config = parse(supervisor_validate(manifest["schema"], v1))
    assert v1_config.influxdb is not None and v1_config.influxdb.url == "https://192.168.1.11:8087"


def test_the_supervisor_refuses_what_the_loader_refuses(manifest: dict[str, Any]) -> None:
    schema = manifest["schema"]
    base = dict(manifest["options"])
    for bad in ({"mqtt_port": 0}, {"mqtt_port": 70000}, {"influxdb_port": 0},
                {"devices": [{"address": "x", "type": "jkk"}]}, {"devices": [{"alias": "x", "type": "jk"}]}):
        with pytest.raises(Invalid):
            supervisor_validate(schema, {**base, **bad})
        with pytest.raises(ConfigError):
            parse({**base, **bad})
    required = [k for k, v in schema.items() if isinstance(v, str) and not v.endswith("?")]
    assert set(required) == set(base) - {"devices", "bluetooth_proxies"}
    for key in required:
        with pytest.raises(Invalid):
            supervisor_validate(schema, {k: v for k, v in base.items() if k != key})


def test_no_build_yaml_the_dockerfile_names_its_base_image(manifest: dict[str, Any]) -> None:
    """build.yaml is deprecated since Supervisor 2026.04.0 (it warns, and will stop reading it): the base
    image is the Dockerfile's BUILD_FROM default, Home Assistant's multi-arch base-python name, so one name
    serves every architecture of config.yaml."""
    assert not [p.name for p in ROOT.glob("build.*")], "build.yaml is deprecated: base image, labels and args " \
        "belong in the Dockerfile"
    python, alpine = base_image_versions()
    assert python == IMAGE_PYTHON, "the wheel test and the Home Assistant end-to-end test use this Python"
    assert (3, 22) <= alpine <= (3, 24), "Home Assistant builds base-python for Alpine 3.22 to 3.24"
    assert set(manifest["arch"]) <= set(ARCHES)


def test_repository_yaml_makes_it_installable() -> None:
    repo = load_yaml("repository.yaml")
    assert repo["name"]


# --------------------------------------------------------------------------------------------------
# Translations and images


def test_translations_name_and_describe_every_option(manifest: dict[str, Any]) -> None:
    tr = load_yaml("translations/en.yaml")["configuration"]
    schema = manifest["schema"]
    assert set(tr) == set(schema)
    for key, entry in tr.items():
        assert entry["name"].strip() and entry["description"].strip(), key
        assert len(entry["description"]) < 400, key
    fields = tr["devices"]["fields"]
    assert set(fields) == set(schema["devices"][0])
    for key, entry in fields.items():
        assert entry["name"].strip() and entry["description"].strip(), key


def test_docs_md_covers_every_option(manifest: dict[str, Any]) -> None:
    """The add-on can be configured from DOCS.md alone: every option of the UI is explained there."""
    docs = (ROOT / "DOCS.md").read_text()
    for key in (*manifest["schema"], *manifest["schema"]["devices"][0]):
        assert f"`{key}`" in docs, f"DOCS.md does not explain {key}"
    # batmon-ha's spellings of aiobmsble's plugins are explained by their rule (`<name>_ble`, `<name>_aiobmsble`)
    suffixed = tuple(f"_{s}" for s in ("ble", "aiobmsble") if f"`<name>_{s}`" in docs)
    for name in (t for t in parse_type(manifest["schema"]["devices"][0]["type"]).choices):
        if name.endswith(suffixed) and name not in device_types():
            continue
        assert f"`{name}`" in docs, f"DOCS.md does not name the type {name}"
    for default_key in manifest["options"]:
        if default_key not in ("devices", "bluetooth_proxies"):
            assert f"{default_key}: " in docs, f"DOCS.md's first configuration lacks {default_key}"
    named = set(re.findall(r"`((?:mqtt|influxdb)_[a-z_]+)`", docs))
    assert named and named <= set(manifest["schema"]), named - set(manifest["schema"])


def test_watchdog_and_expiry_texts_say_what_the_code_does() -> None:
    """The original's texts tied the watchdog to expire_values_after; here the numbers come from the app."""
    from bmslib.app import App  # noqa: PLC0415

    tr = load_yaml("translations/en.yaml")["configuration"]
    watchdog, expire = tr["watchdog"]["description"], tr["expire_values_after"]["description"]
    fast = App(parse({"sample_period": 1.0}), sinks=[])
    slow = App(parse({"sample_period": 60.0}), sinks=[])
    assert fast.watchdog_timeout == 300.0  # "5 minutes"
    assert slow.watchdog_timeout == 600.0  # "10 sample periods, if longer"
    assert "5 minutes" in watchdog and "10 sample periods" in watchdog
    assert "expire" not in watchdog.lower()
    assert "nothing to do with the watchdog" in expire


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    crc = struct.unpack(">I", data[29:33])[0]
    assert crc == zlib.crc32(data[12:29]) & 0xFFFFFFFF
    return width, height


def test_icon_and_logo_are_pngs_of_the_recommended_shape() -> None:
    assert png_size(ROOT / "icon.png") == (128, 128)
    w, h = png_size(ROOT / "logo.png")
    assert 1.5 <= w / h <= 3.5 and h <= 250


# --------------------------------------------------------------------------------------------------
# Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile() -> list[Instruction]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    return out


#: The Python of the image (Home Assistant's base-python tag), for the wheel test and the end-to-end test.
IMAGE_PYTHON = (3, 13)
_BASE = re.compile(r"BUILD_FROM=ghcr\.io/home-assistant/base-python:(\d+)\.(\d+)-alpine(\d+)\.(\d+)")


def base_image_versions() -> tuple[tuple[int, int], tuple[int, int]]:
    """(Python, Alpine) version of the Dockerfile's default base image, which must be Home Assistant's
    multi-arch base-python image (no architecture prefix: one name for aarch64 and amd64)."""
    arg = dockerfile()[0]
    assert arg.keyword == "ARG", arg
    m = _BASE.fullmatch(arg.args)
    assert m is not None, f"not Home Assistant's multi-arch base-python image: {arg.args}"
    py_major, py_minor, alpine_major, alpine_minor = (int(g) for g in m.groups())
    return (py_major, py_minor), (alpine_major, alpine_minor)


def labels() -> dict[str, str]:
    out: dict[str, str] = {}
    for ins in dockerfile():
        if ins.keyword == "LABEL":
            for item in shlex.split(ins.args):
                key, sep, value = item.partition("=")
                assert sep, item
                out[key] = value
    return out


def copy_sources() -> list[str]:
    sources: list[str] = []
    for ins in dockerfile():
        if ins.keyword not in ("COPY", "ADD"):
            continue
        assert ins.keyword == "COPY", "ADD fetches and unpacks; COPY is enough"
        parts = [p for p in shlex.split(ins.args) if not p.startswith("--")]
        assert not ins.args.startswith("--from"), "single-stage build"
        sources += parts[:-1]
    return sources


def test_every_file_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = copy_sources()
    assert sources
    for src in sources:
        path = ROOT / src
        assert path.exists(), f"COPY {src}: missing"
        assert src.rstrip("/") in allowed, f"COPY {src}: excluded by .dockerignore"
    assert {"requirements.txt", "main.py", "mqtt_util.py", "run.sh", "bmslib/"} <= set(sources)
    assert os.access(ROOT / "run.sh", os.X_OK)


def test_dockerfile_structure() -> None:
    ins = dockerfile()
    keywords = [i.keyword for i in ins]
    assert keywords[0] == "ARG" and ins[0].args.startswith("BUILD_FROM")
    assert ins[1] == Instruction("FROM", "${BUILD_FROM}")
    assert keywords.count("FROM") == 1
    runs = " ".join(i.args for i in ins if i.keyword == "RUN")
    assert "-r /app/requirements.txt" in runs and "--no-cache-dir" in runs
    assert "--only-binary=:all:" in runs, "the image has no compiler: wheels only (tests/test_wheels.py)"
    assert "|| true" not in runs, "a failing build step must fail the build"
    assert "git+" not in runs and "http" not in runs, "no downloads beyond the pinned requirements"
    entry = next(i for i in ins if i.keyword == "ENTRYPOINT")
    assert json.loads(entry.args) == ["/app/run.sh"]
    for raw in (ROOT / "requirements.txt").read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.]*", line), f"not pinned: {line}"


def test_dockerfile_labels_are_the_ones_the_supervisor_reads(manifest: dict[str, Any]) -> None:
    """Without the retired builder nothing adds the io.hass labels for a build outside the Supervisor: the
    Dockerfile carries them (the Supervisor's own local build overrides version and arch with its values)."""
    lab = labels()
    assert lab["io.hass.type"] == "app"
    assert lab["io.hass.name"] == manifest["name"]
    assert lab["io.hass.description"]
    assert lab["io.hass.version"] == "${BUILD_VERSION}"
    assert lab["io.hass.arch"] == "|".join(sorted(manifest["arch"]))
    assert lab["org.opencontainers.image.title"] == manifest["name"]
    args = {i.args.partition("=")[0]: i.args.partition("=")[2] for i in dockerfile() if i.keyword == "ARG"}
    assert args["BUILD_VERSION"] == manifest["version"], "the default version is config.yaml's"


def test_the_image_contents_are_enough_to_run(tmp_path: Path) -> None:
    """Copy what the Dockerfile copies into an empty directory: the daemon imports and starts from there."""
    app = tmp_path / "app"
    app.mkdir()
    for src in copy_sources():
        path = ROOT / src
        if path.is_dir():
            shutil.copytree(path, app / src, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, app / Path(src).name)
    code = ("import bmslib.app, bmslib.cli, bmslib.sinks.influx, mqtt_util; "
            "import bmslib.sinks.influx as i; i.InfluxWriter")
    env = {**os.environ, "PYTHONPATH": str(app)}
    subprocess.run([sys.executable, "-c", code], cwd=app, env=env, check=True, timeout=60)
    out = subprocess.run([sys.executable, "main.py", "--version"], cwd=app, env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip() == f"batmon {bmslib.__version__}"


def _tool(name: str) -> str:
    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (it is in requirements-dev.txt; scripts/test installs it)")
    return found


def test_hadolint_passes_the_dockerfile() -> None:
    result = subprocess.run(check=False, args=[_tool("hadolint"), "--no-color", str(ROOT / "Dockerfile")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_passes_run_sh() -> None:
    result = subprocess.run(check=False, args=[_tool("shellcheck"), "--shell=sh", "--severity=style", str(ROOT / "run.sh")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------------------
# AppArmor


def test_apparmor_profile_is_least_privilege() -> None:
    text = (ROOT / "apparmor.txt").read_text()
    rules = [line.split("#")[0].strip() for line in text.splitlines()]
    rules = [r for r in rules if r]
    assert re.search(r"^profile batmon flags=\(attach_disconnected,mediate_deleted\) \{$", text, re.M)
    assert text.count("{") == text.count("}")
    for broad in ("file,", "capability,", "network,", "dbus,", "mount,", "ptrace,", "signal,", "unix,"):
        assert broad not in rules, f"blanket rule {broad!r}"
    assert not [r for r in rules if r.startswith("capability")], "batmon needs no capability"
    assert not [r for r in rules if re.match(r"network .*(raw|packet)", r)]
    assert "dbus (send, receive) bus=system peer=(name=org.bluez)," in rules
    assert "/run/dbus/system_bus_socket rw," in rules
    writable = [r for r in rules if re.match(r"^/\S+ \S*w\S*,$", r)]
    assert all(r.split()[0].startswith(("/data", "/tmp", "/dev/null", "/dev/tty", "/run/dbus")) for r in writable), \
        writable


def apparmor_parser() -> str:
    """Debian's apparmor_parser (package apparmor, installed by scripts/test). In CI (``CI`` set) a missing
    parser fails the test; elsewhere it is skipped, the structure being checked above."""
    parser = shutil.which("apparmor_parser") or next(
        (p for p in ("/usr/sbin/apparmor_parser", "/sbin/apparmor_parser") if os.access(p, os.X_OK)), None)
    if parser is None:
        message = "apparmor_parser is not installed (apt-get install apparmor; scripts/test installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return parser


def parse_profile(parser: str, profile: Path) -> subprocess.CompletedProcess[str]:
    """Compile the profile as the host would, without loading it (no kernel support needed)."""
    return subprocess.run(check=False, args=[parser, "--skip-kernel-load", "--skip-cache", str(profile)],
                          capture_output=True, text=True, timeout=60)


def test_apparmor_profile_parses(tmp_path: Path) -> None:
    parser = apparmor_parser()
    result = parse_profile(parser, ROOT / "apparmor.txt")
    assert result.returncode == 0, result.stderr
    # the parser does refuse a broken profile here (so the pass above means something)
    broken = tmp_path / "broken.txt"
    broken.write_text((ROOT / "apparmor.txt").read_text().replace("/app/run.sh rix,", "/app/run.sh x,"))
    result = parse_profile(parser, broken)
    assert result.returncode != 0 and "parser error" in result.stderr.lower(), result.stderr


# --------------------------------------------------------------------------------------------------
# run.sh, with a local server playing the Supervisor API


class FakeSupervisor(http.server.ThreadingHTTPServer):
    """GET /services/mqtt with the add-on's token: the MQTT service's connection data, or an error."""

    token = "supervisor-token-xyz"

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SupervisorHandler)
        self.service: dict[str, Any] | None = {"addon": "core_mosquitto", "host": "core-mosquitto", "port": 1883,
                                               "ssl": False, "protocol": "3.1.1", "username": "addons",
                                               "password": "Sup3r'secret pass"}
        self.requests: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _SupervisorHandler(http.server.BaseHTTPRequestHandler):
    server: FakeSupervisor

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        self.server.requests.append((self.path, auth))
        if auth != f"Bearer {self.server.token}":
            self._send(401, {"result": "error", "message": "Invalid token"})
        elif self.path != "/services/mqtt":
            self._send(404, {"result": "error", "message": "Not found"})
        elif self.server.service is None:
            self._send(400, {"result": "error", "message": "Service not enabled"})
        else:
            self._send(200, {"result": "ok", "data": self.server.service})


@pytest.fixture
def supervisor() -> Iterator[FakeSupervisor]:
    server = FakeSupervisor()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class RunResult:
    argv: list[str] | None  # what main.py was started with (None: not started)
    env: dict[str, str]
    stdout: str
    stderr: str
    returncode: int


def run_sh(tmp_path: Path, args: list[str], *, options: dict[str, Any] | None, env: dict[str, str]) -> RunResult:
    """run.sh with a stand-in Python that records how main.py would have been started (and runs
    anything else, i.e. run.sh's own helper, with the real interpreter)."""
    record = tmp_path / "record.json"
    record.unlink(missing_ok=True)
    recorder = tmp_path / "record_main.py"
    recorder.write_text("import json, os, sys\n"
                        "env = {k: v for k, v in os.environ.items() if k.startswith('MQTT_')}\n"
                        f"json.dump({{'argv': sys.argv[1:], 'env': env}}, open({str(record)!r}, 'w'))\n")
    fake = tmp_path / "python"
    py = shlex.quote(sys.executable)
    fake.write_text(f'#!/bin/sh\ncase "$1" in */main.py) exec {py} {shlex.quote(str(recorder))} "$@" ;; esac\n'
                    f'exec {py} "$@"\n')
    fake.chmod(0o755)
    opts_path = tmp_path / "options.json"
    if options is None:
        opts_path.unlink(missing_ok=True)
    else:
        opts_path.write_text(json.dumps(options))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "SUPERVISOR", "BATMON_"))}
    full_env = {**base_env, "BATMON_OPTIONS": str(opts_path), "BATMON_STATE_DIR": str(tmp_path / "state"),
                "BATMON_PYTHON": str(fake), **env}
    proc = subprocess.run(check=False, args=["sh", str(ROOT / "run.sh"), *args], env=full_env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    if record.exists():
        doc = json.loads(record.read_text())
        return RunResult(doc["argv"], doc["env"], proc.stdout, proc.stderr, proc.returncode)
    return RunResult(None, {}, proc.stdout, proc.stderr, proc.returncode)


def main_args(tmp_path: Path, *extra: str) -> list[str]:
    return [str(ROOT / "main.py"), "--state-dir", str(tmp_path / "state"), "--config", str(tmp_path / "options.json"),
            *extra]


def test_run_sh_gets_the_broker_from_the_supervisor(tmp_path: Path, supervisor: FakeSupervisor) -> None:
    r = run_sh(tmp_path, [], options={"devices": [], "mqtt_broker": ""},
               env={"SUPERVISOR_TOKEN": supervisor.token, "SUPERVISOR_API": supervisor.url})
    assert r.returncode == 0, r.stderr
    assert r.argv == main_args(tmp_path)
    assert r.env == {"MQTT_HOST": "core-mosquitto", "MQTT_PORT": "1883", "MQTT_USER": "addons",
                     "MQTT_PASSWORD": "Sup3r'secret pass"}
    assert supervisor.requests == [("/services/mqtt", f"Bearer {supervisor.token}")]
    assert "core-mosquitto:1883" in r.stderr
    for secret in ("Sup3r", "secret pass", supervisor.token):
        assert secret not in r.stdout + r.stderr
    assert (tmp_path / "state").is_dir()


def test_run_sh_leaves_a_configured_broker_alone(tmp_path: Path, supervisor: FakeSupervisor) -> None:
    env = {"SUPERVISOR_TOKEN": supervisor.token, "SUPERVISOR_API": supervisor.url}
    r = run_sh(tmp_path, [], options={"mqtt_broker": "192.168.1.10"}, env=env)
    assert r.argv == main_args(tmp_path) and r.env == {}
    r = run_sh(tmp_path, [], options={}, env={**env, "MQTT_HOST": "mybroker", "MQTT_PASSWORD": "x"})
    assert r.env == {"MQTT_HOST": "mybroker", "MQTT_PASSWORD": "x"}  # given by whoever started it: kept
    assert supervisor.requests == []


def test_run_sh_without_a_supervisor_starts_without_mqtt(tmp_path: Path, supervisor: FakeSupervisor) -> None:
    r = run_sh(tmp_path, [], options={}, env={"SUPERVISOR_API": supervisor.url})
    assert r.argv == main_args(tmp_path) and r.env == {} and r.stderr == ""
    assert supervisor.requests == []


def test_run_sh_reports_a_missing_mqtt_service_and_goes_on(tmp_path: Path, supervisor: FakeSupervisor) -> None:
    supervisor.service = None
    r = run_sh(tmp_path, [], options={}, env={"SUPERVISOR_TOKEN": supervisor.token, "SUPERVISOR_API": supervisor.url})
    assert r.argv == main_args(tmp_path) and r.env == {}
    assert "no MQTT service" in r.stderr and "HTTP 400" in r.stderr and "Mosquitto" in r.stderr
    r = run_sh(tmp_path, [], options={}, env={"SUPERVISOR_TOKEN": "wrong", "SUPERVISOR_API": supervisor.url})
    assert r.argv is not None and r.env == {} and "HTTP 401" in r.stderr and "wrong" not in r.stderr


def test_run_sh_with_the_supervisor_unreachable(tmp_path: Path) -> None:
    r = run_sh(tmp_path, [], options={}, env={"SUPERVISOR_TOKEN": "t0ken", "SUPERVISOR_API": "http://127.0.0.1:9"})
    assert r.argv == main_args(tmp_path) and r.env == {}
    assert "cannot ask the Supervisor" in r.stderr and "t0ken" not in r.stderr


def test_run_sh_arguments(tmp_path: Path) -> None:
    r = run_sh(tmp_path, ["-v", "--demo"], options={}, env={})
    assert r.argv == main_args(tmp_path, "-v", "--demo")
    r = run_sh(tmp_path, ["run", "--demo"], options={}, env={})  # `run` is the default command: dropped
    assert r.argv == main_args(tmp_path, "--demo")
    r = run_sh(tmp_path, ["--config", "/other.yaml"], options={}, env={})  # given later: main.py takes it
    assert r.argv == main_args(tmp_path, "--config", "/other.yaml")
    r = run_sh(tmp_path, ["scan", "--timeout", "3"], options={}, env={})
    assert r.argv == [str(ROOT / "main.py"), "scan", "--timeout", "3"]
    r = run_sh(tmp_path, ["decode", "--type", "jbd", "dd03"], options={}, env={})
    assert r.argv == [str(ROOT / "main.py"), "decode", "--type", "jbd", "dd03"]
    r = run_sh(tmp_path, ["--demo"], options=None, env={})  # no options file: main.py searches its own
    assert r.argv == [str(ROOT / "main.py"), "--state-dir", str(tmp_path / "state"), "--demo"]
    assert "no options file" in r.stderr


def test_run_sh_runs_the_real_daemon(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "SUPERVISOR", "BATMON_"))}
    env.update(BATMON_PYTHON=sys.executable, BATMON_OPTIONS=str(tmp_path / "none.json"),
               BATMON_STATE_DIR=str(tmp_path / "state"))
    out = subprocess.run(check=False, args=["sh", str(ROOT / "run.sh"), "--version"], env=env, capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"batmon {bmslib.__version__}"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sample_period": -1}))
    env["BATMON_OPTIONS"] = str(bad)
    out = subprocess.run(check=False, args=["sh", str(ROOT / "run.sh")], env=env, capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 2 and "sample_period" in out.stderr  # main.py's exit status comes through


def test_supervisor_broker_reaches_home_assistant_discovery(tmp_path: Path, supervisor: FakeSupervisor) -> None:
    """The whole chain: run.sh asks the Supervisor, main.py connects to that broker and announces entities."""
    broker = Broker(tmp_path / "broker")
    broker.start()
    watcher = Watcher(broker).start()
    supervisor.service = {"host": broker.host, "port": broker.port, "ssl": False, "username": "addons",
                          "password": "pw"}
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"watchdog": False, "devices": [], "mqtt_broker": ""}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "SUPERVISOR", "BATMON_"))}
    env.update(BATMON_PYTHON=sys.executable, BATMON_OPTIONS=str(options), BATMON_STATE_DIR=str(tmp_path / "state"),
               SUPERVISOR_TOKEN=supervisor.token, SUPERVISOR_API=supervisor.url)
    proc = subprocess.Popen(["sh", str(ROOT / "run.sh"), "--demo"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            configs = [m for m in watcher.seen() if m.topic.startswith("homeassistant/") and m.topic.endswith("/config")]
            if configs:
                break
            time.sleep(0.2)
        assert configs, "no discovery message on the Supervisor's broker"
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=20)
        if proc.poll() is None:
            proc.kill()
        watcher.stop()
        broker.stop()
    assert proc.returncode == 0
    assert supervisor.requests == [("/services/mqtt", f"Bearer {supervisor.token}")]


def test_float_bounds_are_inclusive_so_the_schema_refuses_zero_periods(manifest: dict[str, Any]) -> None:
    """float(0,) admits 0, which the loader refuses for periods (> 0): the Supervisor would save it and the
    app would stop at start (exit 2). The periods' schema refuses 0 itself."""
    t = parse_type("float(0,)")
    assert t.lo == 0.0 and t.hi is None and not math.isnan(t.lo)
    with pytest.raises(ConfigError) as info:
        parse({"sample_period": 0.0})
    assert "sample_period" in str(info.value.problems)
    for key in ("sample_period", "publish_period"):
        for zero in (0, 0.0, "0"):
            with pytest.raises(Invalid):
                supervisor_validate(manifest["schema"], {**manifest["options"], key: zero})


#: Options whose rule the Supervisor's schema language cannot state, with the reason. The loader refuses
#: such a value with one line naming the option (checked below), so the app stops with a clear message.
SCHEMA_CANNOT_SAY = {
    "current_calibration": "must not be 0 but may be negative (-1 flips the sign): a float range cannot exclude "
                           "one point",
}


def _probes(opt: Option) -> list[Any]:
    """Values at and around every bound of an option, its default and example, and the usual suspects."""
    if opt.kind == "bool":
        return [True, False, "true", "off", "yes", 1, 0]
    points: set[float] = {0, -1, 1, 0.5, -0.5, 1e9, -1e9}
    for bound in (opt.minimum, opt.maximum):
        if bound is not None:
            points |= {bound + d for d in (0, -1, 1, -0.5, 0.5, -0.01, 0.01, -0.001, 0.001)}
    for value in (opt.default, opt.example):
        if isinstance(value, int | float) and not isinstance(value, bool):
            points.add(value)
    return sorted(points)


def loader_problems(options: Mapping[str, Any]) -> list[str]:
    """The loader's problem lines for ``options`` (none: it accepts them)."""
    try:
        parse(options)
    except ConfigError as err:
        return [str(p) for p in err.problems]
    return []


def test_the_schema_admits_nothing_the_loader_refuses(manifest: dict[str, Any]) -> None:
    """Every option the schema can bound (numbers, booleans): each probe the Supervisor accepts and stores,
    the loader accepts too; otherwise a user saves a configuration in the UI and the app stops at start."""
    schema = manifest["schema"]
    checked = []
    for opt, typ, _ in _option_pairs(manifest):
        if opt.kind not in ("int", "float", "bool"):
            continue
        device = opt in DEVICE_OPTIONS
        for value in _probes(opt):
            if device:
                options = {**manifest["options"], "devices": [{"address": "sim:x", "type": "jbd", opt.name: value}]}
            else:
                options = {**manifest["options"], opt.name: value}
            try:
                stored = supervisor_validate(schema, options)
            except Invalid:
                continue
            refused = loader_problems(json.loads(json.dumps(stored)))
            if refused and opt.name in SCHEMA_CANNOT_SAY:
                assert len(refused) == 1 and opt.name in refused[0], refused
            elif refused:
                pytest.fail(f"{opt.name}: the schema {typ!r} admits {value!r} (stored as "
                            f"{stored['devices'][0][opt.name] if device else stored[opt.name]!r}), "
                            f"the loader refuses it: {' | '.join(refused)}")
        checked.append(opt.name)
    assert {"sample_period", "publish_period", "expire_values_after", "mqtt_port", "influxdb_port",
            "soc_calibration_days", "current_calibration", "keep_alive", "watchdog"} <= set(checked)
    assert set(SCHEMA_CANNOT_SAY) <= set(checked)

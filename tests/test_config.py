"""Configuration loading and validation (bmslib.config)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.config import (
    DEFAULT_SEARCH,
    DEVICE_OPTION_DEFAULTS,
    DEVICE_OPTIONS,
    GROUP_TYPES,
    OPTION_DEFAULTS,
    OPTIONS,
    AppConfig,
    DeviceConfig,
    TypeInfo,
    load_config,
    parse_config,
    read_options_file,
)
from bmslib.errors import ConfigError
from bmslib.sim.knobs import KNOBS
from tests.helpers import fuzz_settings

SWITCHES = frozenset({"charge", "discharge"})
TYPES = {
    "ant": TypeInfo("ant", SWITCHES),
    "daly": TypeInfo("daly", SWITCHES),
    "dummy": TypeInfo("dummy", SWITCHES),
    "jbd": TypeInfo("jbd", SWITCHES),
    "jk": TypeInfo("jk", SWITCHES | {"balance"}, accepts_pin=True),
    "victron": TypeInfo("victron", frozenset(), accepts_pin=True, accepts_key=True),
}
KNOWN = "ant, auto, daly, dummy, group_parallel, group_serial, jbd, jk, victron"
MAC1, MAC2, MAC3 = "AA:BB:CC:DD:EE:01", "AA:BB:CC:DD:EE:02", "AA:BB:CC:DD:EE:03"
KEY = "0123456789abcdef0123456789abcdef"
KNOB_NAMES = ", ".join(k.name for k in KNOBS)


def parse(data: object, env: Mapping[str, str] | None = None, **kwargs: Any) -> AppConfig:
    return parse_config(data, source="test", env=env or {}, types=TYPES, **kwargs)


def problems(data: object, env: Mapping[str, str] | None = None, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse(data, env, **kwargs)
    return err.value.problems


def dev(address: str | None = MAC1, type: str = "jbd", **more: Any) -> dict[str, Any]:
    return {"address": address, "type": type, **more}


def devices(*entries: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"devices": list(entries), **top}


# --------------------------------------------------------------------------------------------------
# The option table


def test_defaults_are_those_of_the_original_add_on() -> None:
    assert dict(OPTION_DEFAULTS) == {
        "devices": (),
        "mqtt_tls": False,
        "mqtt_discovery_prefix": "homeassistant",
        "concurrent_sampling": False,
        "keep_alive": True,
        "sample_period": 1.0,
        "publish_period": 1.0,
        "invert_current": True,
        "expire_values_after": 20.0,
        "watchdog": True,
        "bt_power_cycle": False,
        "verbose_log": False,
        "influxdb_port": 8086,
        "influxdb_ssl": False,
        "influxdb_verify_ssl": True,
        "ble_stack": "bleak",
        "bluetooth_proxies": (),
    }
    # type: the original required it; batmon detects a left-out type from the advertisement (type auto)
    assert dict(DEVICE_OPTION_DEFAULTS) == {"type": "auto", "debug": False, "current_calibration": 1.0}


def test_empty_config_gives_the_table_defaults() -> None:
    config = parse({})
    assert config.devices == ()
    assert config.mqtt is None
    assert config.influxdb is None
    assert config.warnings == ()
    assert config.source == "test"
    general = {f.name for f in dataclasses.fields(AppConfig)} & set(OPTION_DEFAULTS)
    assert general == {"keep_alive", "concurrent_sampling", "sample_period", "publish_period", "invert_current",
                       "expire_values_after", "watchdog", "bt_power_cycle", "verbose_log", "devices", "ble_stack",
                       "bluetooth_proxies"}
    for name in general - {"devices"}:
        assert getattr(config, name) == OPTION_DEFAULTS[name], name


@pytest.mark.parametrize("table", [OPTIONS, DEVICE_OPTIONS], ids=["top", "device"])
def test_option_table_is_well_formed(table: tuple[Any, ...]) -> None:
    names = [o.name for o in table]
    assert len(names) == len(set(names))
    python_type = {"bool": bool, "int": int, "float": float, "str": str, "list": tuple}
    for o in table:
        assert o.doc and "\n" not in o.doc and len(o.doc) <= 100, o.name
        if o.default is not None:
            assert type(o.default) is python_type[o.kind], o.name
            assert not o.required, o.name
        if o.secret:
            assert o.kind == "str" and o.default is None and o.example is None, o.name


def test_secret_and_environment_options() -> None:
    assert {o.name for o in OPTIONS if o.secret} == {"mqtt_password", "influxdb_token", "influxdb_password"}
    assert {o.name for o in DEVICE_OPTIONS if o.secret} == {"pin", "key"}
    assert {o.name: o.env for o in OPTIONS if o.env} == {
        "mqtt_broker": "MQTT_HOST", "mqtt_port": "MQTT_PORT", "mqtt_user": "MQTT_USER",
        "mqtt_password": "MQTT_PASSWORD"}
    assert {o.name for o in OPTIONS if o.ignored} == {"telemetry", "install_newer_bleak"}
    assert next(o for o in OPTIONS if o.name == "devices").items == DEVICE_OPTIONS


class _Recording(dict[Any, Any]):
    """A mapping that remembers which keys were looked up (the parser reads options with ``get``)."""

    def __init__(self, data: Mapping[Any, Any], seen: set[str], prefix: str = "") -> None:
        super().__init__(data)
        self.seen, self.prefix = seen, prefix

    def get(self, key: Any, default: Any = None) -> Any:
        self.seen.add(f"{self.prefix}{key}")
        return super().get(key, default)


def test_parser_reads_every_option_of_the_table() -> None:
    seen: set[str] = set()
    entry = _Recording({"address": MAC1, "type": "jbd", "algorithm": "soc 90%"}, seen, "devices[].")
    parse(_Recording({"devices": [entry], "influxdb_url": "http://h:8086", "influxdb_database": "db"}, seen))
    expected = {o.name for o in OPTIONS} | {f"devices[].{o.name}" for o in DEVICE_OPTIONS}
    assert expected <= seen


@pytest.mark.parametrize("name", ["concurrent_sampling", "keep_alive", "invert_current", "watchdog",
                                  "bt_power_cycle", "verbose_log", "sample_period", "publish_period",
                                  "expire_values_after"])
def test_general_options_reach_the_config(name: str) -> None:
    opt = next(o for o in OPTIONS if o.name == name)
    value = (not opt.default) if opt.kind == "bool" else opt.example
    assert value is not None and value != opt.default
    assert getattr(parse({name: value}), name) == value


# --------------------------------------------------------------------------------------------------
# Bad configs: exact one-line messages


def _types_problem() -> tuple[Any, ...]:
    return (devices(dev(), dev(MAC2, "jkk")),
            [f"devices[1].type: 'jkk' is not a known type ({KNOWN})"])


BAD_CONFIGS = {
    "unknown type": _types_problem(),
    "type not text": (devices(dev(type=3)), ["devices[0].type: expected a string, got 3 (put the value in quotes)"]),
    "missing address": (devices({"type": "jbd"}), ["devices[0].address: is required"]),
    "float is text": ({"sample_period": "fast"}, ["sample_period: expected a number, got 'fast'"]),
    "float is bool": ({"sample_period": True}, ["sample_period: expected a number, got true"]),
    "float is nan": ({"sample_period": math.nan}, ["sample_period: expected a finite number, got nan"]),
    "float too large": ({"sample_period": 10**400},
                        ["sample_period: expected a finite number, got a very large number"]),
    "int too large": ({"mqtt_port": 2**80}, ["mqtt_port: must be 1..65535, got a very large number"]),
    "period zero": ({"publish_period": 0}, ["publish_period: must be > 0, got 0"]),
    "period negative": ({"sample_period": -0.5}, ["sample_period: must be > 0, got -0.5"]),
    "expire negative": ({"expire_values_after": -1}, ["expire_values_after: must be >= 0, got -1"]),
    "bool is string": ({"watchdog": "yes"}, ["watchdog: expected true or false, got 'yes'"]),
    "bool is number": ({"keep_alive": 1}, ["keep_alive: expected true or false, got 1"]),
    "int with fraction": ({"mqtt_port": 1883.5}, ["mqtt_port: expected an integer, got 1883.5"]),
    "int is text": ({"mqtt_port": "1883"}, ["mqtt_port: expected an integer, got '1883'"]),
    "mqtt port low": ({"mqtt_port": 0}, ["mqtt_port: must be 1..65535, got 0"]),
    "mqtt port high": ({"mqtt_port": 65536}, ["mqtt_port: must be 1..65535, got 65536"]),
    "influx port": ({"influxdb_host": "h", "influxdb_database": "d", "influxdb_port": 70000},
                    ["influxdb_port: must be 1..65535, got 70000"]),
    "devices not a list": ({"devices": {"address": MAC1}}, ["devices: expected a list, got a mapping"]),
    "entry not a mapping": (devices(dev(), "AA:BB"),  # type: ignore[arg-type]
                            ["devices[1]: expected a mapping with address and type, got 'AA:BB'"]),
    "mac too short": (devices(dev("AA:BB:CC:DD:EE")),
                      ["devices[0].address: 'AA:BB:CC:DD:EE' is not a valid MAC address"]),
    "mac bad digit": (devices(dev("AA:BB:CC:DD:EE:GG")),
                      ["devices[0].address: 'AA:BB:CC:DD:EE:GG' is not a valid MAC address"]),
    "mac seven groups": (devices(dev("AA:BB:CC:DD:EE:FF:00")),
                         ["devices[0].address: 'AA:BB:CC:DD:EE:FF:00' is not a valid MAC address"]),
    "mac mixed separators": (devices(dev("AA:BB-CC:DD-EE:FF")),
                             ["devices[0].address: 'AA:BB-CC:DD-EE:FF' is not a valid MAC address"]),
    "sim id": (devices(dev("sim:a b")), ["devices[0].address: 'sim:a b' is not a valid simulator address "
                                         "(sim:<id>, the id of letters, digits, '_' and '-')"]),
    "sim knob unknown": (devices(dev("sim:a?mtue=1")),
                         [f"devices[0].address: 'sim:a?mtue=1': 'mtue' is not a simulator knob ({KNOB_NAMES})"]),
    "sim knob bad bool": (devices(dev("sim:a?mute=yes")),
                          ["devices[0].address: 'sim:a?mute=yes': mute=yes: must be 0 or 1 (or false or true)"]),
    "sim knob out of range": (devices(dev("sim:a?latency=0.3&drop_chunk=1.5")),
                              ["devices[0].address: 'sim:a?latency=0.3&drop_chunk=1.5': drop_chunk=1.5: "
                               "must be 0..1"]),
    "sim knob not a number": (devices(dev("sim:a?latency=fast")),
                              ["devices[0].address: 'sim:a?latency=fast': latency=fast: must be a number"]),
    "sim knob not finite": (devices(dev("sim:a?latency=nan")),
                            ["devices[0].address: 'sim:a?latency=nan': latency=nan: must be 0..60"]),
    "sim knob not an integer": (devices(dev("sim:a?drop_after=2.5")),
                                ["devices[0].address: 'sim:a?drop_after=2.5': drop_after=2.5: must be an integer"]),
    "sim knob zero": (devices(dev("sim:a?drop_after=0")),
                      ["devices[0].address: 'sim:a?drop_after=0': drop_after=0: must be 1..1000000"]),
    "sim knob without value": (devices(dev("sim:a?mute")),
                               ["devices[0].address: 'sim:a?mute': mute needs a value (mute=...)"]),
    "sim knob twice": (devices(dev("sim:a?mute=1&mute=0")),
                       ["devices[0].address: 'sim:a?mute=1&mute=0': mute is given twice"]),
    "sim bank name": (devices(dev("sim:a?bank=my bank")),
                      ["devices[0].address: 'sim:a?bank=my bank': bank=my bank: must be letters, digits, '_' "
                       "and '-'"]),
    "sim same device with other knobs": (devices(dev("sim:a?mute=1", alias="x"), dev("sim:a", alias="y")),
                                         ["devices[1].address: 'sim:a' is already used by devices[0]"]),
    "duplicate alias": (devices(dev(MAC1, alias="bat1"), dev(MAC2, alias="bat2"), dev(MAC3, alias="bat1")),
                        ["devices[2].alias: 'bat1' is already used by devices[0]"]),
    "duplicate alias other case": (devices(dev(MAC1, alias="Bat1"), dev(MAC2, alias="bat1")),
                                   ["devices[1].alias: 'bat1' is already used by devices[0]"]),
    "aliases with the same topics": (devices(dev(MAC1, alias="bat 1"), dev(MAC2, alias="bat_1")),
                                     ["devices[1].alias: 'bat_1' gives the same MQTT topics (bat_1) as the alias "
                                      "of devices[0]; choose another alias"]),
    "aliases with the same discovery node": (devices(dev(MAC1, alias="bat.1"), dev(MAC2, alias="bat/1")),
                                             ["devices[1].alias: 'bat/1' gives the same MQTT topics (bat_1) as the "
                                              "alias of devices[0]; choose another alias"]),
    "duplicate default alias": (devices(dev(MAC1), dev("aa-bb-cc-dd-ee-01", "daly", alias="x")),
                                ["devices[1].address: 'AA:BB:CC:DD:EE:01' is already used by devices[0]"]),
    "alias with #": (devices(dev(alias="bat#1")), ["devices[0].alias: 'bat#1' must not contain '#' or '+'"]),
    "alias with +": (devices(dev(alias="a+b")), ["devices[0].alias: 'a+b' must not contain '#' or '+'"]),
    "alias leading /": (devices(dev(alias="/bat")), ["devices[0].alias: '/bat' must not start or end with '/'"]),
    "alias trailing /": (devices(dev(alias="bat/")), ["devices[0].alias: 'bat/' must not start or end with '/'"]),
    "alias empty": (devices(dev(alias="  ")),
                    ["devices[0].alias: must not be empty (leave it out to use the default)"]),
    "alias control char": (devices(dev(alias="a\tb")),
                           ["devices[0].alias: 'a\\tb' must not contain control characters"]),
    "alias from name": (devices(dev("BMS #1")), ["devices[0].alias: the default 'BMS #1' (from the address) "
                                                 "must not contain '#' or '+'; set an alias"]),
    "alias is a number": (devices(dev(alias=12)),
                          ["devices[0].alias: expected a string, got 12 (put the value in quotes)"]),
    "calibration zero": (devices(dev(current_calibration=0)), ["devices[0].current_calibration: must not be 0"]),
    "calibration inf": (devices(dev(current_calibration=math.inf)),
                        ["devices[0].current_calibration: expected a finite number, got inf"]),
    "adapter": (devices(dev(adapter="usb0")),
                ["devices[0].adapter: 'usb0' is not a Bluetooth adapter (hci0, hci1, ... or its MAC address)"]),
    "key on jbd": (devices(dev(key=KEY)),
                   ["devices[0].key: type 'jbd' does not use a key (only Victron Instant Readout does)"]),
    "key too short": (devices(dev(type="victron", key=KEY[:-1])), ["devices[0].key: must be 32 hex digits"]),
    "key not hex": (devices(dev(type="victron", key="g" * 32)), ["devices[0].key: must be 32 hex digits"]),
    "algorithm without charge switch": (
        devices(dev(type="victron", algorithm="soc 90%")),
        ["devices[0].algorithm: needs a device with a charge switch; type 'victron' has none"]),
    "group unknown member": (
        devices(dev(MAC1, alias="bat1"), dev(MAC2, alias="bat2"), dev("x", "dummy", alias="d"),
                dev("bat1, bat9", "group_parallel", alias="grp")),
        ["devices[3].address: group member 'bat9' is not a configured device (bat1, bat2, d)"]),
    "group without devices": (devices(dev("bat1", "group_parallel", alias="grp")),
                              ["devices[0].address: group member 'bat1' is not a configured device "
                               "(there are none)"]),
    "group member skipped": (
        devices(dev("#" + MAC1, alias="bat1"), dev("bat1", "group_parallel", alias="grp")),
        ["devices[1].address: group member 'bat1' is skipped (devices[0])"]),
    "group contains itself": (devices(dev(alias="bat1"), dev("bat1,grp", "group_parallel", alias="grp")),
                              ["devices[1].address: group 'grp' cannot contain itself"]),
    "group contains group": (
        devices(dev(alias="bat1"), dev("bat1", "group_parallel", alias="g1"), dev("g1", "group_serial", alias="g2")),
        ["devices[2].address: group member 'g1' is a group; groups cannot contain groups"]),
    "member in two groups": (
        devices(dev(alias="bat1"), dev("bat1", "group_parallel", alias="g1"),
                dev(MAC1, "group_parallel", alias="g2")),
        [f"devices[2].address: group member {MAC1!r} is already in group 'g1' (devices[1])"]),
    "member listed twice": (devices(dev(alias="bat1"), dev("bat1, aa:bb:cc:dd:ee:01", "group_parallel", alias="g")),
                            ["devices[1].address: group member 'aa:bb:cc:dd:ee:01' is listed twice"]),
    "group without members": (devices(dev(" , ,", "group_parallel", alias="g")),
                              ["devices[0].address: a group needs at least one member"]),
    "group without alias": (devices(dev(alias="bat1"), dev("bat1", "group_parallel")),
                            ["devices[1].alias: is required for a group"]),
    "group algorithm": (
        devices(dev(alias="bat1"), dev(MAC2, "victron", alias="shunt"),
                dev("bat1,shunt", "group_parallel", alias="g", algorithm="soc 90%")),
        ["devices[2].algorithm: needs a device with a charge switch; group 'g' has members without one (shunt)"]),
    "broker is a url": ({"mqtt_broker": "mqtt://h"},
                        ["mqtt_broker: 'mqtt://h' is a URL; give a host name or address, optionally with :port"]),
    "broker port": ({"mqtt_broker": "h:99999"}, ["mqtt_broker: 'h:99999' has an invalid port (1..65535)"]),
    "broker port text": ({"mqtt_broker": "h:x"}, ["mqtt_broker: 'h:x' has an invalid port (1..65535)"]),
    "broker no host": ({"mqtt_broker": ":1883"}, ["mqtt_broker: ':1883' has no host"]),
    "broker bad v6": ({"mqtt_broker": "[::1]x"},
                      ["mqtt_broker: '[::1]x' is not a valid address; write IPv6 as [addr] or [addr]:port"]),
    "broker space": ({"mqtt_broker": "my host"}, ["mqtt_broker: 'my host' is not a host name or address"]),
    "env host": ({}, ["mqtt_broker: from the environment (MQTT_HOST): 'h:0' has an invalid port (1..65535)"],
                 {"MQTT_HOST": "h:0"}),
    "env port superscript": ({}, ["mqtt_port: from the environment (MQTT_PORT): expected an integer 1..65535, "
                                  "got '²'"], {"MQTT_HOST": "h", "MQTT_PORT": "²"}),
    "broker port superscript": ({"mqtt_broker": "h:²"}, ["mqtt_broker: 'h:²' has an invalid port (1..65535)"]),
    "env port": ({}, ["mqtt_port: from the environment (MQTT_PORT): expected an integer 1..65535, got 'abc'"],
                 {"MQTT_HOST": "h", "MQTT_PORT": "abc"}),
    "discovery prefix": ({"mqtt_discovery_prefix": "ha/"},
                         ["mqtt_discovery_prefix: 'ha/' must not start or end with '/'"]),
    "discovery prefix wildcard": ({"mqtt_discovery_prefix": "h#"},
                                  ["mqtt_discovery_prefix: 'h#' must not contain '#' or '+'"]),
    "ca cert name too long": ({"mqtt_tls": True, "mqtt_ca_cert": "c" * 5000},
                              ["mqtt_ca_cert: file '" + "c" * 56 + "... does not exist"]),
    "ca cert missing": ({"mqtt_tls": True, "mqtt_ca_cert": "/nonexistent/ca.pem"},
                        ["mqtt_ca_cert: file '/nonexistent/ca.pem' does not exist"]),
    "influx url": ({"influxdb_url": "h:8086", "influxdb_database": "d"},
                   ["influxdb_url: 'h:8086' is not an http:// or https:// URL"]),
    "influx url and host": ({"influxdb_url": "http://h:8086", "influxdb_host": "h", "influxdb_database": "d"},
                            ["influxdb_host: set either influxdb_url or influxdb_host, not both"]),
    "influx v2 incomplete": (
        {"influxdb_url": "http://h:8086", "influxdb_token": "t0ken"},
        ["influxdb_org: is required for InfluxDB 2 (influxdb_token, influxdb_org and influxdb_bucket)",
         "influxdb_bucket: is required for InfluxDB 2 (influxdb_token, influxdb_org and influxdb_bucket)"]),
    "influx no mode": ({"influxdb_host": "h"},
                       ["influxdb_host: InfluxDB needs influxdb_token, influxdb_org and influxdb_bucket "
                        "(InfluxDB 2) or influxdb_database (InfluxDB 1.8)"]),
    "influx both modes": (
        {"influxdb_url": "http://h", "influxdb_database": "d", "influxdb_token": "t", "influxdb_org": "o",
         "influxdb_bucket": "b"},
        ["influxdb_database: set either influxdb_database (InfluxDB 1.8) or influxdb_token, influxdb_org "
         "and influxdb_bucket (InfluxDB 2), not both"]),
    "top level is a list": ([1, 2], ["test: expected a mapping of options at the top level, got a list"]),
    "top level is empty": (None, ["test: expected a mapping of options at the top level, got an empty file"]),
    "top level is text": ("x", ["test: expected a mapping of options at the top level, got a string"]),
}


@pytest.mark.parametrize(("case"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_config_is_reported_in_one_exact_line(case: tuple[Any, ...]) -> None:
    data, expected, *env = case
    assert problems(data, env[0] if env else None) == expected


def test_every_problem_is_reported_at_once() -> None:
    data = devices(dev(MAC1, "jkk"), dev("AA:BB:CC:DD:EE", alias="x"), dev(MAC2, alias="x"),
                   influxdb_host="h", influxdb_database="d", influxdb_port=0,
                   sample_period="fast", publish_period=0, mqtt_port=0)
    assert problems(data) == [  # in the order of the option table
        f"devices[0].type: 'jkk' is not a known type ({KNOWN})",
        "devices[1].address: 'AA:BB:CC:DD:EE' is not a valid MAC address",
        "devices[2].alias: 'x' is already used by devices[1]",
        "mqtt_port: must be 1..65535, got 0",
        "sample_period: expected a number, got 'fast'",
        "publish_period: must be > 0, got 0",
        "influxdb_port: must be 1..65535, got 0",
    ]


def test_error_carries_the_warnings_that_explain_it() -> None:
    with pytest.raises(ConfigError) as err:
        parse(devices({"adress": MAC1, "type": "jbd"}))
    assert err.value.problems == ["devices[0].address: is required"]
    assert err.value.warnings == ("devices[0].adress: unknown option, ignored; did you mean 'address'?",)
    assert str(err.value) == "devices[0].address: is required"


def test_algorithm_hook_problems_are_reported() -> None:
    seen: list[str] = []

    def check(text: str) -> str | None:
        seen.append(text)
        return None if text.startswith("soc") else f"unknown algorithm {text.split(maxsplit=1)[0]!r}"

    data = devices(dev(MAC1, alias="a", algorithm=" soc 90% "), dev(MAC2, alias="b", algorithm="magic 1"),
                   dev("a", "group_parallel", alias="g", algorithm="soc 80%"))
    assert problems(data, validate_algorithm=check) == ["devices[1].algorithm: unknown algorithm 'magic'"]
    assert seen == ["soc 90%", "magic 1", "soc 80%"]


def test_algorithm_is_kept_as_written() -> None:
    config = parse(devices(dev(algorithm="soc 100% 95%")))
    assert config.devices[0].algorithm == "soc 100% 95%"


# --------------------------------------------------------------------------------------------------
# Warnings


def test_unknown_keys_warn_with_the_closest_known_key() -> None:
    config = parse(devices(dev(current_calibration_factor=1.1, colour="red"), mqtt_brocker="h", zzz=1, **{"3": 1}))
    assert config.warnings == (
        "mqtt_brocker: unknown option, ignored; did you mean 'mqtt_broker'?",
        "zzz: unknown option, ignored",
        "3: unknown option, ignored",
        "devices[0].current_calibration_factor: unknown option, ignored; did you mean 'current_calibration'?",
        "devices[0].colour: unknown option, ignored",
    )
    assert config.mqtt is None  # a misspelt option is not used


def test_non_text_keys_are_unknown() -> None:
    assert parse({1: "x", None: "y"}).warnings == ("1: unknown option, ignored", "None: unknown option, ignored")
    assert parse({"a\nb": 1}).warnings == ("'a\\nb': unknown option, ignored",)
    assert parse({True: "z"}).warnings == ("true: unknown option, ignored",)  # YAML 1.1 reads the key on: so


@pytest.mark.parametrize(("data", "warning"), [
    ({"telemetry": True}, "telemetry: ignored: batmon never uploads anything"),
    ({"install_newer_bleak": True}, "install_newer_bleak: ignored: the bleak version is fixed in the image"),
])
def test_options_of_the_original_are_ignored_with_a_reason(data: dict[str, Any], warning: str) -> None:
    assert parse(data).warnings == (warning,)


def test_original_options_that_match_our_behaviour_are_silent() -> None:
    data = {"telemetry": False, "ble_stack": "bleak", "bluetooth_proxies": [], "install_newer_bleak": False}
    assert parse(data).warnings == ()


def test_skipped_entries_warn_and_keep_positions() -> None:
    config = parse(devices(dev("", "bogus"), dev("# " + MAC1), dev(None), dev(f"  {MAC2}  ", alias="b")))
    assert config.warnings == (
        "devices[0]: skipped, the address is empty",
        f"devices[1]: skipped, the address '# {MAC1}' starts with '#'",
        "devices[2]: skipped, the address is empty",
    )
    (only,) = config.devices
    assert (only.index, only.address, only.alias) == (3, MAC2, "b")


def test_pin_on_a_type_without_pairing_is_a_warning_and_dropped() -> None:
    config = parse(devices(dev(MAC1, "jbd", pin="123456"), dev(MAC2, "jk", pin="654321")))
    assert config.warnings == ("devices[0].pin: type 'jbd' does not use a PIN; ignored",)
    assert config.devices[0].pin is None
    assert config.devices[1].pin == "654321"


def test_ca_cert_without_tls_warns(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    config = parse({"mqtt_broker": "h", "mqtt_ca_cert": str(ca)})
    assert config.warnings == ("mqtt_ca_cert: not used, because mqtt_tls is false",)
    assert config.mqtt is not None and config.mqtt.ca_cert == str(ca)


# --------------------------------------------------------------------------------------------------
# Devices


def test_addresses_are_normalised_and_aliases_derived() -> None:
    config = parse(devices(
        dev("aa-bb-cc-dd-ee-0f"),
        dev(" sim:jbd_1 "),
        dev("SP15S001-P13S", "daly"),
        dev("12345678-9abc-def0-1234-56789abcdef0", "jk"),
        dev("any text at all", "dummy"),
        dev("xiaoxiang BMS", alias="  house  "),
    ))
    got = [(d.address, d.alias) for d in config.devices]
    assert got == [
        ("AA:BB:CC:DD:EE:0F", "aabbccddee0f"),
        ("sim:jbd_1", "jbd_1"),
        ("SP15S001-P13S", "SP15S001-P13S"),
        ("12345678-9ABC-DEF0-1234-56789ABCDEF0", "123456789abcdef0123456789abcdef0"),
        ("any text at all", "any text at all"),
        ("xiaoxiang BMS", "house"),
    ]
    assert config.warnings == ()


def test_simulator_knobs_are_read_from_the_address() -> None:
    config = parse(devices(dev("sim:b3?latency=0.3&drop_after=5&mute=true&bank=house&corrupt_to=255"),
                           dev("sim:b4?"), dev("SIM:b5?hidden=0")))
    b3, b4, b5 = config.devices
    assert (b3.address, b3.alias, b3.sim_id) == ("sim:b3", "b3", "b3")
    assert b3.sim_knobs == (("latency", 0.3), ("drop_after", 5), ("mute", True), ("bank", "house"),
                            ("corrupt_to", 255))
    assert (b4.address, b4.sim_knobs) == ("sim:b4", ())
    assert (b5.address, b5.sim_knobs) == ("sim:b5", (("hidden", False),))


def test_every_numeric_simulator_knob_has_bounds_and_every_fault_knob_a_fault() -> None:
    from bmslib.sim.emulator import Faults  # noqa: PLC0415

    fields = {f.name for f in dataclasses.fields(Faults)}
    for k in KNOBS:
        assert k.kind not in ("int", "float") or (k.minimum is not None and k.maximum is not None), k.name
        assert k.fault is None or k.fault in fields, k.name
    assert [k.name for k in KNOBS if k.fault is None] == ["bank"]


def test_device_fields_and_properties() -> None:
    config = parse(devices(
        dev("sim:a", "JK", alias="a", pin="1234", adapter="aa:bb:cc:00:11:22", debug=True, current_calibration=-1,
            keep_alive=False, note=["anything"]),
        dev(MAC2, "victron", key=KEY.upper(), adapter="hci1"),
        keep_alive=True,
    ))
    a, b = config.devices
    assert a == DeviceConfig(address="sim:a", type="jk", alias="a", pin="1234", key=None,
                             adapter="AA:BB:CC:00:11:22", debug=True, current_calibration=-1.0, algorithm=None,
                             keep_alive=False, members=(), index=0)
    assert (a.is_sim, a.sim_id, a.is_group) == (True, "a", False)
    assert (b.is_sim, b.sim_id, b.key, b.adapter, b.debug, b.current_calibration) == (
        False, None, KEY, "hci1", False, 1.0)
    assert config.keep_alive_for(a) is False
    assert config.keep_alive_for(b) is True
    assert parse(devices(dev(keep_alive=True), keep_alive=False)).devices[0].keep_alive is True


def test_groups_resolve_members_to_aliases() -> None:
    config = parse(devices(
        dev("bat1 ,, aa:bb:cc:dd:ee:02", "group_parallel", alias="bank", algorithm="soc 90%"),
        dev(MAC1, "jbd", alias="bat1"),
        dev(MAC2, "jk"),
        dev("BAT3", "group_serial", alias="string"),
        dev(MAC3, "daly", alias="bat3"),
    ))
    bank, _, _, string, _ = config.devices
    assert bank.members == ("bat1", "aabbccddee02")
    assert bank.is_group and bank.algorithm == "soc 90%"
    assert bank.address == "bat1 ,, aa:bb:cc:dd:ee:02"
    assert string.members == ("bat3",)
    assert sorted(GROUP_TYPES) == ["group_parallel", "group_serial"]


def test_group_with_an_adapter_warns() -> None:
    config = parse(devices(dev(alias="b"), dev("b", "group_parallel", alias="g", adapter="hci0")))
    assert config.warnings == ("devices[1].adapter: ignored: a group has no Bluetooth connection of its own",)
    assert config.devices[1].adapter is None


def test_dummy_devices_may_share_an_address() -> None:
    config = parse(devices(dev("test", "dummy", alias="d1"), dev("test", "dummy", alias="d2")))
    assert [d.alias for d in config.devices] == ["d1", "d2"]


# --------------------------------------------------------------------------------------------------
# MQTT


HA_ENV = {"MQTT_HOST": "core-mosquitto", "MQTT_PORT": "1884", "MQTT_USER": "addons", "MQTT_PASSWORD": "envpw"}


def test_mqtt_is_off_without_a_broker() -> None:
    assert parse({"mqtt_tls": False, "mqtt_discovery_prefix": "homeassistant", "mqtt_user": ""}).mqtt is None
    assert parse({}, {"MQTT_PORT": "1883", "MQTT_USER": "u"}).mqtt is None


def test_mqtt_comes_from_the_environment() -> None:
    mqtt = parse({}, HA_ENV).mqtt
    assert mqtt is not None
    assert (mqtt.host, mqtt.port, mqtt.user, mqtt.password, mqtt.tls, mqtt.ca_cert, mqtt.discovery_prefix) == (
        "core-mosquitto", 1884, "addons", "envpw", False, None, "homeassistant")


def test_mqtt_options_win_over_the_environment() -> None:
    data = {"mqtt_broker": "broker.lan", "mqtt_port": 1999, "mqtt_user": "me", "mqtt_password": "mine"}
    mqtt = parse(data, HA_ENV).mqtt
    assert mqtt is not None
    assert (mqtt.host, mqtt.port, mqtt.user, mqtt.password) == ("broker.lan", 1999, "me", "mine")


def test_empty_mqtt_options_fall_back_to_the_environment() -> None:
    data = {"mqtt_broker": " ", "mqtt_user": "", "mqtt_password": ""}
    mqtt = parse(data, HA_ENV).mqtt
    assert mqtt is not None
    assert (mqtt.host, mqtt.port, mqtt.user, mqtt.password) == ("core-mosquitto", 1884, "addons", "envpw")


def test_supervisor_credentials_never_go_to_a_users_own_broker() -> None:
    mqtt = parse({"mqtt_broker": "my-broker.lan"}, HA_ENV).mqtt
    assert mqtt is not None
    assert (mqtt.host, mqtt.port, mqtt.user, mqtt.password) == ("my-broker.lan", 1883, None, None)


@pytest.mark.parametrize(("broker", "extra", "host", "port"), [
    ("broker.lan:1885", {}, "broker.lan", 1885),
    ("broker.lan:1885", {"mqtt_port": 1886}, "broker.lan", 1886),
    ("10.0.0.2", {}, "10.0.0.2", 1883),  # not the environment's port: that belongs to MQTT_HOST
    ("[fd00::2]:1890", {}, "fd00::2", 1890),
    ("[fd00::2]", {}, "fd00::2", 1883),
    ("fd00::2", {}, "fd00::2", 1883),
])
def test_mqtt_broker_host_and_port(broker: str, extra: dict[str, Any], host: str, port: int) -> None:
    mqtt = parse({"mqtt_broker": broker, **extra}, {"MQTT_PORT": "1884"}).mqtt
    assert mqtt is not None
    assert (mqtt.host, mqtt.port) == (host, port)


@pytest.mark.parametrize(("data", "port"), [
    ({"mqtt_user": "u"}, 1883),
    ({"mqtt_tls": True}, 8883),
    ({"mqtt_discovery_prefix": "ha"}, 1883),
    ({"mqtt_port": 1999}, 1999),
])
def test_any_mqtt_option_enables_mqtt_on_localhost(data: dict[str, Any], port: int) -> None:
    mqtt = parse(data).mqtt
    assert mqtt is not None
    assert (mqtt.host, mqtt.port) == ("127.0.0.1", port)


def test_mqtt_tls_with_ca_cert(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    mqtt = parse({"mqtt_broker": "b", "mqtt_tls": True, "mqtt_ca_cert": str(ca), "mqtt_discovery_prefix": "ha"}).mqtt
    assert mqtt is not None
    assert (mqtt.port, mqtt.tls, mqtt.ca_cert, mqtt.discovery_prefix) == (8883, True, str(ca), "ha")


# --------------------------------------------------------------------------------------------------
# InfluxDB


def test_influxdb_v2_from_url() -> None:
    influx = parse({"influxdb_url": "https://influx.lan:8086", "influxdb_token": "tok", "influxdb_org": "home",
                    "influxdb_bucket": "bms", "influxdb_verify_ssl": False}).influxdb
    assert influx is not None
    assert (influx.url, influx.token, influx.org, influx.bucket, influx.verify_ssl, influx.api) == (
        "https://influx.lan:8086", "tok", "home", "bms", False, "v2")


@pytest.mark.parametrize(("host", "extra", "url"), [
    ("influx.lan", {}, "http://influx.lan:8086"),
    ("influx.lan", {"influxdb_ssl": True, "influxdb_port": 8443}, "https://influx.lan:8443"),
    ("influx.lan:9999", {}, "http://influx.lan:9999"),
    ("influx.lan:9999", {"influxdb_port": 8086}, "http://influx.lan:9999"),  # the default is not a choice
    ("influx.lan:9999", {"influxdb_port": 7777}, "http://influx.lan:7777"),
    ("fd00::5", {}, "http://[fd00::5]:8086"),
])
def test_influxdb_v1_url_built_from_host(host: str, extra: dict[str, Any], url: str) -> None:
    data = {"influxdb_host": host, "influxdb_database": "bms", "influxdb_username": "u",
            "influxdb_password": "p", **extra}
    influx = parse(data).influxdb
    assert influx is not None
    assert (influx.url, influx.database, influx.username, influx.password, influx.api) == (url, "bms", "u", "p", "v1")


def test_influxdb_options_without_a_host_warn() -> None:
    config = parse({"influxdb_database": "bms", "influxdb_token": "secret-token", "influxdb_port": 8086})
    assert config.influxdb is None
    assert config.warnings == (
        "influxdb_url: not set (nor influxdb_host), so InfluxDB is off; ignoring influxdb_token, influxdb_database",)


def test_influxdb_options_that_do_not_apply_warn() -> None:
    config = parse({"influxdb_url": "http://h:8086", "influxdb_port": 9, "influxdb_ssl": True, "influxdb_token": "t",
                    "influxdb_org": "o", "influxdb_bucket": "b", "influxdb_username": "u"})
    assert config.warnings == (
        "influxdb_port: ignored, because influxdb_url is set",
        "influxdb_ssl: ignored, because influxdb_url is set",
        "influxdb_username: ignored: used only with influxdb_database (InfluxDB 1.8)",
    )


# --------------------------------------------------------------------------------------------------
# Secrets


SECRETS = ("pin-s3cret-1", "mqtt-s3cret-2", "influx-s3cret-3", "token-s3cret-4", "fedcba9876543210fedcba9876543210",
           "env-s3cret-5")


def _secret_config() -> dict[str, Any]:
    return {
        "devices": [dev(MAC1, "jk", pin=SECRETS[0]), dev(MAC2, "victron", key=SECRETS[4], pin=SECRETS[0] + "x")],
        "mqtt_broker": "b", "mqtt_password": SECRETS[1],
        "influxdb_host": "h", "influxdb_database": "d", "influxdb_password": SECRETS[2],
    }


def test_secrets_are_not_in_repr() -> None:
    config = parse(_secret_config())
    assert config.devices[0].pin == SECRETS[0] and config.devices[1].key == SECRETS[4]
    assert config.mqtt is not None and config.mqtt.password == SECRETS[1]
    assert config.influxdb is not None and config.influxdb.password == SECRETS[2]
    v2 = parse({"influxdb_url": "http://h", "influxdb_token": SECRETS[3], "influxdb_org": "o",
                "influxdb_bucket": "b"}, {"MQTT_HOST": "h", "MQTT_PASSWORD": SECRETS[5]})
    assert v2.mqtt is not None and v2.mqtt.password == SECRETS[5]
    for text in (repr(config), str(config), repr(v2), repr(config.devices), repr(v2.influxdb), repr(v2.mqtt)):
        for secret in SECRETS:
            assert secret not in text


def test_secrets_are_not_in_problems_or_warnings() -> None:
    data: dict[str, Any] = {
        "devices": [
            dev(MAC1, "jbd", pin=SECRETS[0]),                        # pin on a type without PIN: warning
            dev(MAC2, "jbd", key=SECRETS[4]),                        # key on a non-victron type
            dev(MAC3, "victron", alias="v", key=SECRETS[1]),         # key not 32 hex digits
            dev("sim:x", "jk", pin=123456),                          # a number where a string is needed
            dev("sim:y", "victron", key=12345678901234567890123456789012),
        ],
        "mqtt_password": ["list", SECRETS[1]],
        "influxdb_host": "h", "influxdb_token": SECRETS[3], "influxdb_password": 12,
        "mqtt_pasword": SECRETS[2],
    }
    with pytest.raises(ConfigError) as err:
        parse(data, {"MQTT_PASSWORD": SECRETS[5]})
    assert "devices[3].pin: expected a string, got a number (put the value in quotes)" in err.value.problems
    assert "devices[2].key: must be 32 hex digits" in err.value.problems
    assert "mqtt_password: expected a string, got a list" in err.value.problems
    text = "\n".join([*err.value.problems, *err.value.warnings, str(err.value)])
    for secret in [*SECRETS, "123456", "12345678901234567890123456789012"]:
        assert secret not in text


def test_secrets_are_not_in_syntax_errors(tmp_path: Path) -> None:
    file = tmp_path / "options.yaml"
    file.write_text(f"mqtt_broker: b\nmqtt_password: {SECRETS[1]}: oops\n")
    with pytest.raises(ConfigError) as err:
        read_options_file(file)
    (line,) = err.value.problems
    assert line.startswith(f"{file}: line 2, column ")
    assert SECRETS[1] not in line


# --------------------------------------------------------------------------------------------------
# Files


YAML_TEXT = f"""\
# batmon options
devices:
  - address: {MAC1}
    type: jbd
    alias: bat1
  - address: "#{MAC2}"   # disabled
    type: jk
mqtt_broker: broker.lan:1884
sample_period: 2
watchdog: yes   # a YAML 1.1 bool
"""


def test_yaml_and_json_files_give_the_same_config(tmp_path: Path) -> None:
    y = tmp_path / "options.yaml"
    y.write_text(YAML_TEXT)
    j = tmp_path / "options.json"
    j.write_text(json.dumps(read_options_file(y), indent=1))
    from_yaml = load_config(str(y), env={}, types=TYPES)
    from_json = load_config(str(j), env={}, types=TYPES)
    assert from_yaml.source == str(y) and from_json.source == str(j)
    assert dataclasses.replace(from_yaml, source="") == dataclasses.replace(from_json, source="")
    assert from_yaml.devices[0].alias == "bat1" and len(from_yaml.devices) == 1
    assert from_yaml.sample_period == 2.0 and from_yaml.watchdog is True
    assert from_yaml.mqtt is not None and (from_yaml.mqtt.host, from_yaml.mqtt.port) == ("broker.lan", 1884)
    assert from_yaml.warnings == (f"devices[1]: skipped, the address '#{MAC2}' starts with '#'",)


def test_json_without_json_extension_is_read_as_yaml(tmp_path: Path) -> None:
    file = tmp_path / "batmon.conf"
    file.write_text('{"devices": [{"address": "sim:1", "type": "jbd"}], "verbose_log": true}')
    config = load_config(str(file), env={}, types=TYPES)
    assert config.verbose_log is True and config.devices[0].alias == "1"


def test_quoted_yes_is_not_a_bool(tmp_path: Path) -> None:
    file = tmp_path / "options.yaml"
    file.write_text('watchdog: "yes"\n')
    with pytest.raises(ConfigError) as err:
        load_config(str(file), env={}, types=TYPES)
    assert err.value.problems == ["watchdog: expected true or false, got 'yes'"]


def test_unquoted_pin_and_mac_like_numbers_ask_for_quotes(tmp_path: Path) -> None:
    file = tmp_path / "options.yaml"
    file.write_text("devices:\n  - {address: 10:20:30:40:50:59, type: jk, pin: 0123}\n")  # sexagesimal, octal
    with pytest.raises(ConfigError) as err:
        load_config(str(file), env={}, types=TYPES)
    assert err.value.problems == [
        "devices[0].address: expected a string, got 8041827059 (put the value in quotes)",
        "devices[0].pin: expected a string, got a number (put the value in quotes)",
    ]


@pytest.mark.parametrize(("name", "text", "message"), [
    ("options.yaml", "devices:\n  - address: x\n   type: jbd\n",
     "line 3, column 4: invalid YAML: expected <block end>, but found '<block mapping start>'"),
    ("options.yaml", "a: [1, 2\n", "line 2, column 1: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    ("options.yaml", "watchdog: true\nsample_period: 2\nwatchdog: false\n",
     "line 3, column 1: invalid YAML: duplicate key 'watchdog' (first at line 1)"),
    ("options.json", '{"watchdog": true,\n "sample_period": }', "line 2, column 19: invalid JSON: Expecting value"),
])
def test_syntax_errors_name_file_line_and_column(tmp_path: Path, name: str, text: str, message: str) -> None:
    file = tmp_path / name
    file.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(str(file), env={}, types=TYPES)
    assert err.value.problems == [f"{file}: {message}"]


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    file = tmp_path / "options.yaml"
    file.write_text("base: &b {type: jbd, debug: true}\n"
                    "devices:\n  - <<: *b\n    address: sim:a\n    debug: false\n")
    config = load_config(str(file), env={}, types=TYPES)
    assert config.devices[0].type == "jbd" and config.devices[0].debug is False
    assert config.warnings == ("base: unknown option, ignored",)


@pytest.mark.parametrize(("content", "message"), [
    (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
    (b"[" * 10_000, "invalid JSON: maximum recursion depth exceeded while decoding a JSON array from a unicode "
                     "string"),
    (b'{"a": ' + b"1" * 5000 + b"}", "invalid JSON: Exceeds the limit (4300 digits) for integer string "
                                     "conversion: value has 5000 digits; use sys.set_int_max_str_digits() to "
                                     "increase the limit"),
    (b"\xff\xfe", "not UTF-8 text (byte 0)"),
])
def test_unreadable_json(tmp_path: Path, content: bytes, message: str) -> None:
    file = tmp_path / "options.json"
    file.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        read_options_file(file)
    assert err.value.problems == [f"{file}: {message}"]


@pytest.mark.parametrize("text", ["a: " + "1" * 5000, "[" * 10_000])
def test_yaml_beyond_the_parser_limits(tmp_path: Path, text: str) -> None:
    file = tmp_path / "options.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_options_file(file)
    (line,) = err.value.problems
    assert line.startswith(f"{file}: invalid YAML: ")


def test_empty_file_and_byte_order_mark(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(empty), env={}, types=TYPES)
    assert err.value.problems == [f"{empty}: expected a mapping of options at the top level, got an empty file"]
    bom = tmp_path / "bom.json"
    bom.write_bytes(b'\xef\xbb\xbf{"verbose_log": true}')
    assert load_config(str(bom), env={}, types=TYPES).verbose_log is True


def test_missing_explicit_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as err:
        load_config(str(missing), env={}, types=TYPES, search=[tmp_path / "options.yaml"])
    (line,) = err.value.problems
    assert line.startswith(f"{missing}: cannot read: ")


@pytest.fixture
def search(tmp_path: Path) -> list[Path]:
    addon = tmp_path / "data"
    addon.mkdir()
    return [addon / "options.json", tmp_path / "options.yaml", tmp_path / "options.json"]


def test_search_order(search: list[Path]) -> None:
    addon, local_yaml, local_json = search
    local_json.write_text('{"sample_period": 3}')
    assert load_config(None, env={}, types=TYPES, search=search).sample_period == 3.0
    local_yaml.write_text("sample_period: 2\n")
    assert load_config(None, env={}, types=TYPES, search=search).source == str(local_yaml)
    addon.write_text('{"sample_period": 1.5}')
    config = load_config(None, env={}, types=TYPES, search=search)
    assert (config.source, config.sample_period) == (str(addon), 1.5)
    other = addon.parent / "mine.yaml"
    other.write_text("sample_period: 9\n")
    assert load_config(str(other), env={}, types=TYPES, search=search).sample_period == 9.0


def test_a_broken_file_is_not_skipped_in_the_search(search: list[Path]) -> None:
    addon, local_yaml, _ = search
    addon.write_text("{")
    local_yaml.write_text("sample_period: 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(None, env={}, types=TYPES, search=search)
    assert err.value.problems[0].startswith(f"{addon}: line 1, column 2: invalid JSON")


def test_no_file_found(search: list[Path]) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, env={}, types=TYPES, search=search)
    looked = ", ".join(str(p) for p in search)
    assert err.value.problems == [f"no configuration file found; looked in {looked}; "
                                  "pass --config PATH or use --demo"]


def test_default_search_order() -> None:
    assert [str(p) for p in DEFAULT_SEARCH] == ["/data/options.json", "options.yaml", "options.json"]


# --------------------------------------------------------------------------------------------------
# Fuzzing: whatever the file holds, the result is a config or a ConfigError


_KEYS = st.sampled_from([o.name for o in OPTIONS] + [o.name for o in DEVICE_OPTIONS] + ["x", ""])
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**1100), 2**1100), st.floats(), st.text(max_size=20),
    st.sampled_from([MAC1, "sim:a", "bat1,sim:a", "jbd", "jk", "victron", "group_parallel", "#x", "h:1883",
                     "[::1]:1", "http://h:8086", KEY, "soc 90%", "hci0"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=6)),
    max_leaves=30,
)
_DEVICE = st.dictionaries(st.sampled_from([o.name for o in DEVICE_OPTIONS]), _VALUES, max_size=8)
_CONFIG = st.one_of(
    _VALUES,
    st.dictionaries(_KEYS, _VALUES, max_size=8),
    st.builds(lambda ds, top: {**top, "devices": ds}, st.lists(_DEVICE, max_size=5),
              st.dictionaries(_KEYS, _VALUES, max_size=6)),
)


@fuzz_settings
@given(data=_CONFIG, env=st.dictionaries(st.sampled_from(["MQTT_HOST", "MQTT_PORT", "MQTT_USER", "MQTT_PASSWORD"]),
                                         st.text(max_size=12)))
def test_fuzz_parse_never_fails_otherwise(data: object, env: dict[str, str]) -> None:
    try:
        config = parse(data, env)
    except ConfigError as exc:
        lines = exc.problems
        assert lines, "a ConfigError without problems"
        assert all(isinstance(p, str) and "\n" not in p for p in lines)
        return
    assert isinstance(config, AppConfig)
    assert all("\n" not in w for w in config.warnings)
    aliases = [d.alias.casefold() for d in config.devices]
    assert len(aliases) == len(set(aliases)) and all(aliases)

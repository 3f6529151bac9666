"""Topic naming, payload formatting, the entity table and discovery payloads (no broker needed)."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.device import DeviceStatus
from bmslib.entities import (
    METER_NAMES,
    EntityDescription,
    Value,
    alarm_text,
    cell_entities,
    meter_entities,
    sample_entities,
    switch_entities,
    temperature_entities,
)
from bmslib.model import DeviceInfo, OutputSign, Sample
from bmslib.mqtt.discovery import device_block, discovery_config, expire_after
from bmslib.mqtt.topics import DeviceTopics, object_id, topic_prefix
from bmslib.mqtt.topics import mqtt_node_id as node_id
from mqtt_util import UNKNOWN, _Slot, format_payload
from tests.helpers import fuzz_settings

#: The replaced add-on's prefix rule, as it behaves (the '.-/' in the class is a range: '-' is not kept).
ORIGINAL_PREFIX = re.compile(r"[^\w_.-/]")
#: Home Assistant's discovery topic pattern (homeassistant/components/mqtt/discovery.py, 2024.3).
HA_DISCOVERY = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config")


def status(alias: str = "battery1", *, switches: frozenset[str] = frozenset({"charge", "discharge"}),
           ble: str | None = "D6:6C:0A:61:14:30", **kw: object) -> DeviceStatus:
    s = DeviceStatus(alias=alias, type="jbd", address=ble or alias, switches=switches, ble_address=ble,
                     clock=lambda: 100.0)
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def sample(**kw: object) -> Sample:
    base: dict[str, object] = {"voltage": 13.2, "current": 5.0, "soc": 55.0, "capacity": 100.0,
                               "cell_voltages": (3.30, 3.31, 3.29, 3.30), "temperatures": (21.04, 22.06),
                               "switches": {"charge": True, "discharge": False}, "alarms": ()}
    base.update(kw)
    return Sample.build(base, timestamp=1.7e9, mono=100.0)  # type: ignore[arg-type]


# --- naming ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("alias", "prefix", "node"), [
    ("battery1", "battery1", "battery1"),
    ("Bat DB", "Bat_DB", "Bat_DB"),
    ("home/garage/bat", "home/garage/bat", "home_garage_bat"),
    ("Bat-DB", "Bat_DB", "Bat_DB"),  # as the original since its 1.76
    ("Bat_DB", "Bat_DB", "Bat_DB"),
    ("bat.1", "bat.1", "bat_1"),  # HA rejects '.' in a node id; the original's node 'bat.1' was never discovered
    ("Küche", "Küche", "K_che"),
    ("a+b#c", "a_b_c", "a_b_c"),
])
def test_prefix_and_node(alias: str, prefix: str, node: str) -> None:
    assert topic_prefix(alias) == prefix
    assert node_id(topic_prefix(alias)) == node


@fuzz_settings
@given(st.text(min_size=1, max_size=30))
def test_prefix_is_the_originals(alias: str) -> None:
    assert topic_prefix(alias) == ORIGINAL_PREFIX.sub("_", alias)


@fuzz_settings
@given(st.text(min_size=1, max_size=30))
def test_discovery_topics_always_match_home_assistants_pattern(alias: str) -> None:
    topics = DeviceTopics.for_alias(alias, "homeassistant")
    for d in sample_entities(sample(), status(alias), OutputSign(False)):
        topic = topics.discovery(d).removeprefix("homeassistant/")
        m = HA_DISCOVERY.fullmatch(topic)
        assert m is not None, topic
        assert m["node_id"] == topics.node


@fuzz_settings
@given(st.text(alphabet=st.sampled_from("abcXYZ019_/"), min_size=1, max_size=20))
def test_node_is_the_originals_for_aliases_home_assistant_accepted(alias: str) -> None:
    assert node_id(topic_prefix(alias)) == topic_prefix(alias).replace("/", "_")


def test_topics_of_a_device() -> None:
    t = DeviceTopics.for_alias("home/bat", "ha")
    soc = next(d for d in sample_entities(sample(), status(), OutputSign(True)) if d.key == "soc/soc_percent")
    sw = next(d for d in switch_entities(["charge"], {"charge"}) if d.component == "switch")
    assert t.state(soc) == "home/bat/soc/soc_percent"
    assert t.discovery(soc) == "ha/sensor/home_bat/_soc_soc_percent/config"
    assert t.unique_id(soc) == "home/bat__soc_soc_percent"
    assert t.discovery(sw) == "ha/switch/home_bat/charge/config"
    assert t.command("charge") == "ha/switch/home_bat/charge/set"
    assert t.availability == "home/bat/availability"
    assert object_id(sw) == "charge"


# --- payloads -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "text"), [
    (True, "ON"), (False, "OFF"), (3, "3"), (53.812, "53.812"), (-12.35, "-12.35"), (12350.0, "12350.0"),
    (0.0, "0.0"), (1e-7, "0.0000001"), (2.5e16, "25000000000000000.0"), ("none", "none"),
])
def test_format_payload(value: object, text: str) -> None:
    assert format_payload(value) == text  # type: ignore[arg-type]


@fuzz_settings
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_numbers_parse_back(x: float) -> None:
    assert float(format_payload(round(x, 3))) == pytest.approx(round(x, 3), abs=1e-6)


def reference_float_payload(value: float) -> str:
    """The float rule as written before the shortcut through repr()."""
    if value.is_integer() and abs(value) < 1e15:
        return str(value)
    text = repr(value)
    if "e" in text:
        text = f"{value:.10f}".rstrip("0")
        text += "0" if text.endswith(".") else ""
    return text


@fuzz_settings
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_payload_matches_the_rule(x: float) -> None:
    assert format_payload(x) == reference_float_payload(x)


values = st.one_of(st.floats(), st.integers(-3, 3), st.booleans(), st.sampled_from(["", "a", "none"]), st.none(),
                   st.sampled_from([0.0, -0.0, 1.0, 1, True, 0, False, math.nan]))


@fuzz_settings
@given(raws=st.lists(values, max_size=12), decimals=st.one_of(st.none(), st.integers(0, 3)))
def test_a_slot_gives_the_payload_of_every_value(raws: list[Value | None], decimals: int | None) -> None:
    """The slot's memo (an equal value of the same type has the same payload) never shows a stale payload:
    equal values of other types (1, 1.0, True), 0.0 after -0.0, NaN."""
    feed = iter(raws)
    desc = EntityDescription(key="k", name="n", field="f", decimals=decimals, value=lambda s, st_, sign: next(feed))
    slot = _Slot("t/k", desc)
    for raw in raws:
        rounded = desc.rounded(raw)
        want = UNKNOWN if rounded is None else format_payload(rounded)  # not reported: Home Assistant's unknown
        assert slot.payload_of(sample(), status(), OutputSign(False)) == want


# --- the entity table -----------------------------------------------------------------------------

def test_sample_entities_follow_what_is_reported() -> None:
    st_ = status()
    assert "diag/link_quality" not in {d.key for d in sample_entities(sample(), st_, OutputSign(False))}
    st_.record_sample(sample())
    keys = {d.key for d in sample_entities(sample(), st_, OutputSign(False))}
    assert {"soc/total_voltage", "soc/current", "soc/power", "soc/soc_percent", "mosfet_status/capacity_ah",
            "soc/capacity", "problem", "alarms", "cell_voltages/4", "cell_voltages/delta", "temperatures/2",
            "switch/charge", "switch/discharge", "diag/link_quality", "diag/last_error", "diag/uptime",
            "meter/sample_count"} <= keys
    assert "soc/soh" not in keys and "cell_voltages/5" not in keys and "temperatures/3" not in keys
    assert "diag/rssi" not in keys  # not known
    with_more = sample_entities(sample(soh=97.0), status(rssi=-70), OutputSign(False))
    assert {"soc/soh", "diag/rssi"} <= {d.key for d in with_more}
    one_cell = {d.key for d in sample_entities(sample(cell_voltages=(3.3,)), status(), OutputSign(False))}
    assert "cell_voltages/1" in one_cell and "cell_voltages/min" not in one_cell


def test_algorithm_status_and_meter_gaps_are_diagnostics() -> None:
    plain = {d.key: d for d in sample_entities(sample(), status(), OutputSign(False))}
    assert "diag/algorithm" not in plain  # no algorithm configured
    assert plain["diag/meter_gaps"].state(sample(), status(meter_gaps=2), OutputSign(False)) == 2
    reason = "SoC 90.1 % >= 90 %: charge off"
    st_ = status(algorithm_status=reason)
    algo = {d.key: d for d in sample_entities(sample(), st_, OutputSign(False))}["diag/algorithm"]
    assert algo.entity_category == "diagnostic" and algo.state(sample(), st_, OutputSign(False)) == reason


def test_values_sign_and_rounding() -> None:
    s, st_ = sample(current=5.0, voltage=13.2), status()
    by_key = {d.key: d for d in sample_entities(s, st_, OutputSign(True))}
    assert by_key["soc/current"].state(s, st_, OutputSign(True)) == -5.0  # invert_current: + = charging
    assert by_key["soc/current"].state(s, st_, OutputSign(False)) == 5.0
    assert by_key["soc/power"].state(s, st_, OutputSign(True)) == -66.0
    assert by_key["temperatures/1"].state(s, st_, OutputSign(True)) == 21.0
    assert by_key["cell_voltages/min_index"].state(s, st_, OutputSign(True)) == 3
    assert by_key["cell_voltages/delta"].state(s, st_, OutputSign(True)) == 0.02
    assert by_key["problem"].state(s, st_, OutputSign(True)) is False
    assert by_key["alarms"].state(s, st_, OutputSign(True)) == "none"
    bad = sample(alarms=("cell_overvoltage", "charge_overcurrent"))
    assert by_key["problem"].state(bad, st_, OutputSign(True)) is True
    assert by_key["alarms"].state(bad, st_, OutputSign(True)) == "cell_overvoltage, charge_overcurrent"
    assert by_key["switch/discharge"].state(s, st_, OutputSign(True)) is False


def test_alarm_text_is_bounded() -> None:
    assert len(alarm_text([f"alarm_number_{i}" for i in range(100)])) == 255


def test_cell_names_are_padded_like_the_original() -> None:
    assert [d.name for d in cell_entities(4)[:4]] == ["Cell Volt 1", "Cell Volt 2", "Cell Volt 3", "Cell Volt 4"]
    names = [d.name for d in cell_entities(16)[:16]]
    assert names[0] == "Cell Volt 01" and names[15] == "Cell Volt 16"
    assert [d.name for d in temperature_entities(2)] == ["Temperatures 1", "Temperatures 2"]


def test_switch_entities() -> None:
    both = switch_entities(["charge", "balance"], {"charge"})
    kinds = [(d.component, d.key, d.enabled_by_default) for d in both]
    # balance is reported but cannot be set: only a read-only binary sensor, enabled
    assert kinds == [("binary_sensor", "switch/balance", True), ("switch", "switch/charge", True),
                     ("binary_sensor", "switch/charge", False)]


def test_meter_entities_are_energy_dashboard_ready() -> None:
    meters = {d.meter: d for d in meter_entities(METER_NAMES)}
    assert set(meters) == set(METER_NAMES)
    for name in ("total_energy_charge", "total_energy_discharge"):
        d = meters[name]
        assert (d.unit, d.device_class, d.state_class) == ("kWh", "energy", "total_increasing")
    assert (meters["total_energy"].state_class, meters["total_charge"].state_class) == ("total", "total")
    assert meter_entities(["unknown", "total_cycles"]) == (meters["total_cycles"],)


# --- discovery payloads ---------------------------------------------------------------------------

def test_discovery_config_of_a_sensor() -> None:
    st_ = status(device_info=DeviceInfo(manufacturer="JBD", model="SP04S034", sw_version="8.0", serial="42"))
    t = DeviceTopics.for_alias("battery1", "homeassistant")
    soc = next(d for d in sample_entities(sample(), st_, OutputSign(True)) if d.key == "soc/soc_percent")
    cfg = discovery_config(soc, t, device=device_block(st_, t), daemon_topic="batmon/x/status", expire=20)
    assert cfg == {
        "unique_id": "battery1__soc_soc_percent", "name": "Soc", "state_topic": "battery1/soc/soc_percent",
        "device_class": "battery", "state_class": "measurement", "unit_of_measurement": "%",
        "suggested_display_precision": 1, "icon": "mdi:battery", "expire_after": 20,
        "availability": [{"topic": "batmon/x/status"}, {"topic": "battery1/availability"}],
        "availability_mode": "all",
        "device": {"identifiers": ["battery1", "42", "batmon_d66c0a611430"], "name": "battery1", "manufacturer": "JBD",
                   "model": "SP04S034", "sw_version": "8.0", "serial_number": "42"},
        "origin": {"name": "batmon", "sw_version": cfg["origin"]["sw_version"]},
    }
    json.dumps(cfg)


def test_device_identifiers_are_the_originals_and_kept_when_info_arrives() -> None:
    # the original: the serial when known, else the prefix; Home Assistant keeps a device as long as one
    # identifier is shared, so info arriving later only adds one
    t = DeviceTopics.for_alias("battery1", "homeassistant")
    before = device_block(status(), t)
    after = device_block(status(device_info=DeviceInfo(serial="SN1", name="JBD-1234", manufacturer="JBD")), t)
    assert before["identifiers"] == ["battery1", "batmon_d66c0a611430"]
    assert after["identifiers"] == ["battery1", "SN1", "batmon_d66c0a611430"]
    assert set(before["identifiers"]) <= set(after["identifiers"])
    assert before["name"] == "battery1" and after["name"] == "JBD-1234 (battery1)"
    no_ble = device_block(status("dummy1", ble=None), DeviceTopics.for_alias("dummy1", "homeassistant"))
    assert no_ble["identifiers"] == ["dummy1", "batmon_jbd_dummy1"]
    hyphen = device_block(status(), DeviceTopics.for_alias("Bat-DB", "homeassistant"))
    assert hyphen["identifiers"][0] == "Bat_DB"


def test_discovery_config_of_a_switch_and_its_mirror() -> None:
    t = DeviceTopics.for_alias("battery1", "homeassistant")
    dev = device_block(status(), t)
    sw, mirror = switch_entities(["charge"], {"charge"})
    cfg = discovery_config(sw, t, device=dev, daemon_topic="d", expire=20)
    assert cfg["command_topic"] == "homeassistant/switch/battery1/charge/set"
    assert cfg["unique_id"] == "battery1__switch_charge" and cfg["name"] == "charge"
    assert (cfg["payload_on"], cfg["payload_off"]) == ("ON", "OFF")
    assert "expire_after" not in cfg  # not an MQTT switch option
    m = discovery_config(mirror, t, device=dev, daemon_topic="d", expire=20)
    assert m["unique_id"] == cfg["unique_id"] and m["name"] == "charge switch"
    assert m["enabled_by_default"] is False and "command_topic" not in m and m["expire_after"] == 20


def test_expire_after() -> None:
    assert expire_after(20.0) == 20 and expire_after(0.4) == 1 and expire_after(0) is None

"""Every MQTT discovery payload batmon produces uses only keys Home Assistant accepts, and none it has
deprecated or removed.

Home Assistant drops a key its discovery schema does not know without a word (the schemas remove extra
keys), and a deprecated key works until the release that removes it: neither shows in the end-to-end test
against one release. So the keys are checked here against two tables:

- ACCEPTED: the keys Home Assistant 2025.4.4's MQTT discovery schemas accept (read from its
  ``homeassistant.components.mqtt`` sensor, binary_sensor and switch ``DISCOVERY_SCHEMA``, the device and
  origin schemas, and the availability list), the release the end-to-end test runs (tests/ha).
- DEPRECATED: keys Home Assistant has deprecated or removed since, with the release and the replacement.

Checked: the golden discovery file (tests/golden, what the daemon publishes for a JBD and a dummy device,
compared with the live payloads by tests/test_mqtt_live.py) and the payload of every kind of entity batmon
can publish (every sample field, cell and temperature, switches, diagnostics and meters), with a device
block carrying every device field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bmslib.device import DeviceStatus
from bmslib.entities import (
    DIAGNOSTICS,
    METER_NAMES,
    SAMPLE_ENTITIES,
    cell_entities,
    meter_entities,
    switch_entities,
    temperature_entities,
)
from bmslib.model import DeviceInfo
from bmslib.mqtt.discovery import device_block, discovery_config
from bmslib.mqtt.topics import DeviceTopics, daemon_status_topic

GOLDEN = Path(__file__).parent / "golden" / "mqtt_discovery.json"

#: Keys shared by every entity platform in Home Assistant 2025.4.4 (MQTT entity, availability and JSON
#: attributes schemas).
_COMMON = frozenset({
    "availability", "availability_mode", "availability_template", "availability_topic", "device",
    "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon", "json_attributes_template",
    "json_attributes_topic", "name", "object_id", "origin", "payload_available", "payload_not_available", "qos",
    "unique_id", "value_template",
})

#: Per discovery component: the keys Home Assistant 2025.4.4 accepts.
ACCEPTED: Mapping[str, frozenset[str]] = {
    "sensor": _COMMON | {"device_class", "expire_after", "force_update", "last_reset_value_template", "options",
                         "state_class", "state_topic", "suggested_display_precision", "unit_of_measurement"},
    "binary_sensor": _COMMON | {"device_class", "expire_after", "force_update", "off_delay", "payload_off",
                                "payload_on", "state_topic"},
    "switch": _COMMON | {"command_template", "command_topic", "device_class", "optimistic", "payload_off",
                         "payload_on", "retain", "state_off", "state_on", "state_topic"},
}
ACCEPTED_DEVICE = frozenset({"configuration_url", "connections", "hw_version", "identifiers", "manufacturer",
                             "model", "model_id", "name", "serial_number", "suggested_area", "sw_version",
                             "via_device"})
ACCEPTED_ORIGIN = frozenset({"name", "support_url", "sw_version"})
ACCEPTED_AVAILABILITY = frozenset({"topic", "payload_available", "payload_not_available", "value_template"})

#: Keys Home Assistant deprecated or removed: where they appear, and what replaced them. A key removed from a
#: schema is also missing from ACCEPTED; it is named here for the message.
DEPRECATED: Mapping[str, str] = {
    "object_id": "entity: deprecated in Home Assistant 2025.10, no longer works from 2026.4; use default_entity_id",
    "via_hub": "device: deprecated (Home Assistant 2025.4 still maps it to via_device); use via_device",
    "last_reset_topic": "sensor: deprecated in Home Assistant 2021.9, removed in 2023; use last_reset_value_template",
}


def key_problems(topic: str, payload: Mapping[str, Any]) -> Iterator[str]:
    """One line per key of ``payload`` (published on the discovery ``topic``) that Home Assistant would
    drop or has deprecated."""
    component = topic.split("/")[1]
    accepted = ACCEPTED.get(component)
    if accepted is None:
        yield f"{topic}: no table of the keys Home Assistant accepts for {component!r}"
        return
    nested = {"device": ACCEPTED_DEVICE, "origin": ACCEPTED_ORIGIN}
    for key, value in payload.items():
        if key in DEPRECATED:
            yield f"{topic}: {key!r} ({DEPRECATED[key]})"
        elif key not in accepted:
            yield f"{topic}: {key!r} is not a {component} discovery key (Home Assistant drops it)"
        if key in nested:
            for inner in value:
                if inner in DEPRECATED:
                    yield f"{topic}: {key}.{inner} ({DEPRECATED[inner]})"
                elif inner not in nested[key]:
                    yield f"{topic}: {key}.{inner} is not a {key} key"
        if key == "availability":
            for item in value:
                for inner in set(item) - ACCEPTED_AVAILABILITY:
                    yield f"{topic}: availability[].{inner} is not an availability key"


def catalogue_payloads() -> dict[str, dict[str, Any]]:
    """The discovery payload of every kind of entity, for a device that reports every device field."""
    info = DeviceInfo(manufacturer="Maker", model="Model", hw_version="1", sw_version="2", serial="S1",
                      name="BMS-1")
    status = DeviceStatus(alias="bat1", type="jbd", address="C8:47:8C:00:00:01",
                          switches=frozenset({"charge", "discharge", "balance"}), ble_address="C8:47:8C:00:00:01",
                          device_info=info)
    topics = DeviceTopics.for_alias("bat1", "homeassistant")
    device = device_block(status, topics)
    entities = (*SAMPLE_ENTITIES, *cell_entities(16), *temperature_entities(4),
                *switch_entities(["charge", "discharge", "balance"], {"charge", "discharge", "balance"}),
                *DIAGNOSTICS, *meter_entities(METER_NAMES))
    out: dict[str, dict[str, Any]] = {}
    for expire in (20, None):
        for desc in entities:
            out[topics.discovery(desc)] = discovery_config(desc, topics, device=device,
                                                           daemon_topic=daemon_status_topic(["bat1"]), expire=expire)
    return out


def test_the_catalogue_covers_every_kind_and_device_field() -> None:
    payloads = catalogue_payloads()
    assert {t.split("/")[1] for t in payloads} == set(ACCEPTED)
    fields = {k for p in payloads.values() for k in p["device"]}
    assert {"identifiers", "name", "manufacturer", "model", "sw_version", "hw_version", "serial_number"} <= fields


@pytest.mark.parametrize("source", ["golden", "catalogue"])
def test_no_discovery_key_home_assistant_drops_or_deprecated(source: str) -> None:
    payloads = json.loads(GOLDEN.read_text(encoding="utf-8")) if source == "golden" else catalogue_payloads()
    assert payloads
    problems = [line for topic, payload in sorted(payloads.items()) for line in key_problems(topic, payload)]
    assert not problems, "\n".join(problems[:20])


def test_the_check_catches_object_id_and_unknown_keys() -> None:
    topic = "homeassistant/sensor/bat1/_voltage/config"
    payload = {"unique_id": "bat1__voltage", "state_topic": "bat1/voltage", "object_id": "bat1_voltage",
               "device": {"identifiers": ["x"], "via_hub": "y"}, "state_clas": "measurement",
               "availability": [{"topic": "t", "payload": "online"}]}
    problems = list(key_problems(topic, payload))
    assert len(problems) == 4, problems
    assert "'object_id' (entity: deprecated in Home Assistant 2025.10" in problems[0]
    assert any("device.via_hub" in p for p in problems)
    assert any("'state_clas' is not a sensor discovery key" in p for p in problems)
    assert any("availability[].payload" in p for p in problems)
    assert list(key_problems("homeassistant/light/bat1/x/config", {})) != []

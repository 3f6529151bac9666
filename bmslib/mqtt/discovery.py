"""Home Assistant discovery payloads: the ``device`` block and one entity's config, as plain dicts.

Pure functions of a device's status, its topics and the entity table; the golden file
(tests/golden) pins what they build.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any, Final

from bmslib import __version__
from bmslib.device import DeviceStatus
from bmslib.entities import EntityDescription
from bmslib.model import DeviceInfo
from bmslib.mqtt.topics import DeviceTopics

#: the ``origin`` block of every discovery payload
ORIGIN: Final = {"name": "batmon", "sw_version": __version__}


def device_block(status: DeviceStatus, topics: DeviceTopics) -> dict[str, Any]:
    """The discovery ``device`` block; its fields fill in when device info is known.

    Identifiers: the topic prefix and, once the device has reported one, its serial number (the add-on
    batmon replaces used the serial when known, else the prefix), so that Home Assistant attaches the
    entities to the device that add-on registered (any one shared identifier does); and
    ``batmon_<BLE address, or type and alias>``, the identifier batmon used alone before."""
    info: DeviceInfo = status.device_info
    identifiers = [topics.prefix]
    if info.serial and info.serial != topics.prefix:
        identifiers.append(info.serial)
    identifiers.append(f"batmon_{status.identifier}")
    block: dict[str, Any] = {
        "identifiers": identifiers,
        "name": f"{info.name} ({topics.prefix})" if info.name else topics.prefix,
    }
    for key, value in (("manufacturer", info.manufacturer), ("model", info.model), ("sw_version", info.sw_version),
                       ("hw_version", info.hw_version), ("serial_number", info.serial)):
        if value:
            block[key] = value
    return block


def config_digest(payload: str) -> bytes:
    """What is kept of a discovery payload sent, to tell whether it changed."""
    return hashlib.blake2b(payload.encode(), digest_size=16).digest()


def expire_after(expire_values_after: float) -> int | None:
    """The entities' ``expire_after`` [s] for the ``expire_values_after`` option (None: 0 turns it off)."""
    return max(1, math.ceil(expire_values_after)) if expire_values_after > 0 else None


def discovery_config(desc: EntityDescription, topics: DeviceTopics, *, device: Mapping[str, Any],
                     daemon_topic: str, expire: int | None) -> dict[str, Any]:
    """The discovery payload of one entity."""
    cfg: dict[str, Any] = {
        "unique_id": topics.unique_id(desc),
        "name": desc.name,
        "state_topic": topics.state(desc),
    }
    if desc.component == "switch":
        assert desc.switch is not None
        cfg["command_topic"] = topics.command(desc.switch)
        cfg["payload_on"], cfg["payload_off"] = "ON", "OFF"
    for key, value in (("device_class", desc.device_class), ("state_class", desc.state_class),
                       ("unit_of_measurement", desc.unit), ("suggested_display_precision", desc.precision),
                       ("entity_category", desc.entity_category)):
        if value is not None:
            cfg[key] = value
    if desc.options is not None:
        cfg["options"] = list(desc.options)
    if desc.icon:
        cfg["icon"] = f"mdi:{desc.icon}"
    if not desc.enabled_by_default:
        cfg["enabled_by_default"] = False
    if expire is not None and desc.component != "switch":
        cfg["expire_after"] = expire
    cfg["availability"] = [{"topic": daemon_topic}, {"topic": topics.availability}]
    cfg["availability_mode"] = "all"
    cfg["device"] = dict(device)
    cfg["origin"] = dict(ORIGIN)
    return cfg

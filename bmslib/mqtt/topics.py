"""MQTT topic naming: a device's topic prefix, its discovery node id, and every topic of one device.

The rules are those of the add-on batmon replaces (see doc/MQTT.md), so topics and unique ids carry
over. Pure functions of the alias and the entity table.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from bmslib.entities import EntityDescription

_PREFIX_UNSAFE = re.compile(r"[^\w./]")
_NODE_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def topic_prefix(alias: str) -> str:
    """The device's MQTT topic prefix: word characters, '.' and '/' are kept, anything else becomes '_'.

    This is the rule of the add-on batmon replaces since its 1.76, '-' included (``Bat-DB`` -> ``Bat_DB``),
    so that topics and unique ids carry over for the version most of its users ran.
    """
    return _PREFIX_UNSAFE.sub("_", alias)


def mqtt_node_id(prefix: str) -> str:
    """The discovery node id: Home Assistant accepts only ``[a-zA-Z0-9_-]`` there; the rest becomes '_'.

    Same as the replaced add-on (which replaced '/') for every prefix Home Assistant accepted from it.
    """
    return _NODE_UNSAFE.sub("_", prefix)


def object_id(desc: EntityDescription) -> str:
    """The discovery object id: ``_<key_id>`` for sensors, the key's last level for the others."""
    return f"_{desc.key_id}" if desc.component == "sensor" else desc.key.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class DeviceTopics:
    """All topics of one device."""

    prefix: str
    node: str
    discovery_prefix: str

    @classmethod
    def for_alias(cls, alias: str, discovery_prefix: str) -> DeviceTopics:
        prefix = topic_prefix(alias)
        return cls(prefix=prefix, node=mqtt_node_id(prefix), discovery_prefix=discovery_prefix)

    def state(self, desc: EntityDescription) -> str:
        return f"{self.prefix}/{desc.key}"

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    def discovery(self, desc: EntityDescription) -> str:
        return f"{self.discovery_prefix}/{desc.component}/{self.node}/{object_id(desc)}/config"

    def command(self, switch: str) -> str:
        return f"{self.discovery_prefix}/switch/{self.node}/{switch}/set"

    def unique_id(self, desc: EntityDescription) -> str:
        return f"{self.prefix}__{desc.key_id}"


def instance_id(aliases: Iterable[str]) -> str:
    """A short id of this daemon instance (from its devices), used in its status topic."""
    return hashlib.sha1("\n".join(sorted(aliases)).encode(), usedforsecurity=False).hexdigest()[:8]


def daemon_status_topic(aliases: Iterable[str]) -> str:
    return f"batmon/{instance_id(aliases)}/status"

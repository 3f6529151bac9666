"""The discovery record: which discovery topics were announced per device, kept across restarts."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from bmslib.state_store import write_atomically

_LOG = logging.getLogger("batmon.mqtt")

#: File in the state directory that records which discovery topics were announced per device.
RECORD_FILE: Final = "mqtt_discovery.json"


class DiscoveryRecord:
    """Per device alias: its availability topic and the discovery topics announced for it.

    Kept as JSON in the state directory so that entities a device no longer has (fewer cells, a device
    removed from the options) can be removed after a restart too.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.devices: dict[str, dict[str, Any]] = {}
        self._dirty = False

    def load(self) -> None:
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            _LOG.warning("ignoring %s (%s): entities removed while batmon was down stay in Home Assistant",
                         self.path, exc)
            return
        devices = data.get("devices") if isinstance(data, dict) else None
        if isinstance(devices, dict):
            for alias, entry in devices.items():
                if isinstance(entry, dict) and isinstance(entry.get("discovery"), list):
                    self.devices[str(alias)] = {
                        "availability": str(entry.get("availability") or ""),
                        "discovery": sorted({str(t) for t in entry["discovery"]}),
                    }

    def topics(self, alias: str) -> set[str]:
        return set(self.devices.get(alias, {}).get("discovery", ()))

    def set(self, alias: str, availability: str, topics: Iterable[str]) -> None:
        entry = {"availability": availability, "discovery": sorted(set(topics))}
        if self.devices.get(alias) != entry:
            self.devices[alias] = entry
            self._dirty = True

    def forget(self, alias: str) -> None:
        if self.devices.pop(alias, None) is not None:
            self._dirty = True

    def save(self) -> None:
        if not self._dirty or self.path is None:
            return
        self._dirty = False
        data = json.dumps({"version": 1, "devices": self.devices}, indent=1, sort_keys=True).encode()
        try:
            write_atomically(self.path, data)
        except OSError as exc:
            _LOG.warning("cannot write %s: %s", self.path, exc)

"""What the daemon knows about one configured device at run time (read by sinks and groups; see
:class:`DeviceStatus` for who writes which fields)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bmslib.model import DeviceInfo, Sample

LINK_QUALITY_WINDOW = 100


@dataclass
class DeviceStatus:
    """Run-time state of one device. Sinks and groups read it. Its sampler writes what it reads (samples,
    errors, device info, RSSI, the switches offered); the App writes ``available`` and ``meter_gaps``, and
    the device's charge algorithm ``algorithm_status``."""

    alias: str
    type: str
    address: str  # as configured (MAC, name, sim:<id>, member list)
    switches: frozenset[str]  # switches the device offers
    ble_address: str | None = None  # resolved MAC, when it has one
    device_info: DeviceInfo = field(default_factory=DeviceInfo)
    is_group: bool = False
    clock: Callable[[], float] = time.monotonic
    last_sample: Sample | None = None
    samples: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None
    rssi: int | None = None
    available: bool = False
    attempts: deque[bool] = field(default_factory=lambda: deque(maxlen=LINK_QUALITY_WINDOW))
    algorithm_status: str | None = None  # the charge algorithm's last action and its reason (a diagnostic)
    meter_gaps: int = 0  # sample gaps too long to integrate into the energy meters (a diagnostic)
    #: why the host's Bluetooth could not be used, while it cannot (set by a failed connect, cleared by a connect)
    bluetooth_unavailable: str | None = None
    bluetooth_unavailable_since: float | None = None  # [s] monotonic clock: the first failed connect of that run

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def identifier(self) -> str:
        """Stable id for this device: the BLE address when there is one, else type and alias."""
        return (self.ble_address or f"{self.type}_{self.alias}").replace(":", "").lower()

    @property
    def link_quality(self) -> float | None:
        """% of successful samples over the last attempts (None before the first attempt)."""
        if not self.attempts:
            return None
        return round(100.0 * sum(self.attempts) / len(self.attempts), 1)

    @property
    def uptime(self) -> float:
        return self.clock() - self.started

    def age(self) -> float | None:
        """Seconds since the last good sample (None if there was none)."""
        if self.last_sample is None:
            return None
        return max(0.0, self.clock() - self.last_sample.mono)

    def record_sample(self, sample: Sample) -> None:
        self.last_sample = sample
        self.samples += 1
        self.consecutive_errors = 0
        self.attempts.append(True)

    def record_error(self, message: str) -> None:
        self.errors += 1
        self.consecutive_errors += 1
        self.last_error = message
        self.attempts.append(False)

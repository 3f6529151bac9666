"""The sink interface. Callbacks are plain (not async) and must not block: a sink that does I/O
buffers and works in its own task, so no sink can slow sampling down."""

from __future__ import annotations

from collections.abc import Mapping

from bmslib.device import DeviceStatus
from bmslib.model import Sample


class Sink:
    """Base class with no-op callbacks; override what the sink needs."""

    name = "sink"

    async def start(self) -> None:
        """Called once before the first sample."""

    def on_sample(self, device: DeviceStatus, sample: Sample) -> None:
        """Every raw sample, at the sampling rate (InfluxDB)."""

    def on_publish(self, device: DeviceStatus, sample: Sample) -> None:
        """The averaged sample, at the publish cadence (MQTT, console)."""

    def on_availability(self, device: DeviceStatus, available: bool) -> None:
        """A device became available (fresh sample) or unavailable (none for expire_values_after)."""

    def on_meters(self, device: DeviceStatus, meters: Mapping[str, float]) -> None:
        """Energy meter readings (every 30 s and at start)."""

    async def stop(self, timeout: float) -> None:
        """Flush and close within ``timeout`` seconds."""

"""The sink interface, and what a sink is built from.

The App calls each sink once per event through these methods. They are plain (not async) and must not
block: a sink that does I/O buffers and works in its own task, so no sink can slow sampling down. A sink
never calls the App: what it asks for (a switch command) goes on the App's :class:`CommandQueue`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bmslib.commands import CommandQueue
from bmslib.config import AppConfig
from bmslib.device import DeviceStatus
from bmslib.model import OutputSign, Sample
from bmslib.publishing import QUIET, Decision


class Sink:
    """Base class with no-op callbacks; override what the sink needs."""

    name = "sink"

    async def start(self) -> None:
        """Called once before the first sample."""

    def on_sample(self, device: DeviceStatus, sample: Sample, decision: Decision = QUIET) -> None:
        """Every sample, at the sampling rate (InfluxDB), with the publisher's ``decision``: the averaged
        sample when one is due (MQTT, console) and whether switch states are echoed."""

    def on_availability(self, device: DeviceStatus, available: bool) -> None:
        """A device became available (fresh sample) or unavailable (none for expire_values_after)."""

    def on_meters(self, device: DeviceStatus, meters: Mapping[str, float]) -> None:
        """Energy meter readings (every 30 s and at start)."""

    async def stop(self, timeout: float) -> None:
        """Flush and close within ``timeout`` seconds."""


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What the App gives a sink factory."""

    config: AppConfig
    sign: OutputSign
    statuses: Sequence[DeviceStatus]  # every configured device, groups included
    commands: CommandQueue  # switch commands for the App
    state_dir: Path | None  # where a sink may keep state across restarts (None: nowhere)


#: builds a sink for the options in the context, or None when the options do not ask for it
SinkFactory = Callable[[SinkContext], Sink | None]

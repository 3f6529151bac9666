"""Prints one readable line per published sample per device (demo, and when no MQTT broker is set)."""

from __future__ import annotations

import sys
from typing import TextIO

from bmslib.device import DeviceStatus
from bmslib.model import OutputSign, Sample
from bmslib.publishing import QUIET, Decision
from bmslib.sinks.base import Sink, SinkContext


def _fmt(value: float | None, unit: str, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def format_sample(device: DeviceStatus, sample: Sample, sign: OutputSign) -> str:
    parts = [
        f"{device.alias:<12}",
        _fmt(sample.voltage, "V"),
        _fmt(sign.current(sample), "A"),
        _fmt(sign.power(sample), "W", 1),
        "SoC " + _fmt(sample.soc, "%", 1),
    ]
    if sample.charge is not None:
        parts.append(_fmt(sample.charge, "Ah", 1) + ("/" + _fmt(sample.capacity, "Ah", 0) if sample.capacity else ""))
    if sample.cell_voltages:
        n, lo, hi = len(sample.cell_voltages), _fmt(sample.cell_min, "", 3), _fmt(sample.cell_max, "V", 3)
        parts.append(f"cells {n}x {lo}..{hi}")
    if sample.temperatures:
        parts.append("T " + "/".join(f"{t:.1f}" for t in sample.temperatures) + "°C")
    if sample.switches:
        parts.append(" ".join(f"{k}={'on' if v else 'off'}" for k, v in sorted(sample.switches.items())))
    if sample.alarms:
        parts.append("ALARM " + ",".join(sample.alarms))
    return "  ".join(parts)


class ConsoleSink(Sink):
    name = "console"

    def __init__(self, sign: OutputSign, out: TextIO | None = None) -> None:
        self.sign = sign
        self.out = out or sys.stdout

    def on_sample(self, device: DeviceStatus, sample: Sample, decision: Decision = QUIET) -> None:
        if decision.published is not None:
            print(format_sample(device, decision.published, self.sign), file=self.out, flush=True)

    def on_availability(self, device: DeviceStatus, available: bool) -> None:
        if not available:
            print(f"{device.alias:<12}  unavailable (no fresh sample; last error: {device.last_error or '-'})",
                  file=self.out, flush=True)


def console_sink(context: SinkContext) -> ConsoleSink | None:
    """The console sink when no MQTT broker is set (a :data:`~bmslib.sinks.base.SinkFactory`)."""
    return ConsoleSink(context.sign) if context.config.mqtt is None else None

"""What the benchmarks read off a process and how they match frames to MQTT messages (Linux /proc, no psutil)."""

from __future__ import annotations

import bisect
import os
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bmslib.sim.trace import Delivery


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU time of process ``pid`` (all its threads, living and ended) [s]."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; fields[0] is field 3 (state)
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak resident set) and VmRSS of process ``pid`` [MB = 2^20 bytes]."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024  # kB
    return out


def machine() -> str:
    """CPU model, cores and Python version of this machine, in one line."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} cores, Python {sys.version.split()[0]} "
            f"({platform.python_implementation()}), {platform.system()} {platform.release()}")


def read_stalls(path: Path) -> list[tuple[float, float]]:
    """(start, duration) of the stalls bench/_probe.py noted [s]."""
    out = []
    if path.exists():
        for line in path.read_text(encoding="ascii").splitlines():
            parts = line.split()
            if len(parts) == 2:
                out.append((float(parts[0]), float(parts[1])))
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values`` by the nearest-rank method (values need not be sorted)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n q / 100), at least 1
    return ordered[int(min(rank, len(ordered))) - 1]


@dataclass
class DeviceFrames:
    """The delivered frames of one emulator, in time order."""

    times: list[float] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    last_by_number: dict[int, list[int]] = field(default_factory=dict)  # frame number -> indexes

    def add(self, d: Delivery) -> None:
        self.last_by_number.setdefault(d.frame, []).append(len(self.times))
        self.times.append(d.at)
        self.numbers.append(d.frame)


def index_frames(deliveries: Iterable[Delivery]) -> dict[str, DeviceFrames]:
    by_device: dict[str, DeviceFrames] = {}
    for d in sorted(deliveries, key=lambda d: d.at):
        by_device.setdefault(d.address, DeviceFrames()).add(d)
    return by_device


MAX_AGE = 10.0  # [s] a message whose frame is older than this is a re-send (after a reconnect), not a sample


def frame_latency(frames: DeviceFrames, cycles: int, received: float) -> float | None:
    """Seconds from the end of the read that produced a published ``cycles`` value to its arrival.

    The frame numbered ``cycles`` carried the value; the frames of that read follow it, and the last
    frame delivered before the message arrived ends the read. None if no delivered frame matches.
    """
    candidates = frames.last_by_number.get(cycles)
    if not candidates:
        return None
    end = bisect.bisect_right(frames.times, received) - 1  # newest frame delivered before the message
    first = max((i for i in candidates if i <= end), default=None)  # the carrier, newest first
    if first is None or received - frames.times[first] > MAX_AGE:
        return None
    return received - frames.times[end]


def match_latencies(messages: Iterable[tuple[str, str, float]], addresses: Mapping[str, str],
                    frames: Mapping[str, DeviceFrames]) -> tuple[dict[str, list[float]], int]:
    """Latencies per alias for ``(alias, payload, received)`` messages of the cycles topic; and how many
    messages matched no frame."""
    out: dict[str, list[float]] = {}
    unmatched = 0
    for alias, payload, received in messages:
        device = frames.get(addresses.get(alias, ""))
        try:
            value = int(float(payload))
        except ValueError:
            value = -1
        latency = frame_latency(device, value, received) if device is not None else None
        if latency is None:
            unmatched += 1
        else:
            out.setdefault(alias, []).append(latency)
    return out, unmatched

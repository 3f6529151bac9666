"""Opt-in record of when the simulated devices' replies reach the host, for latency benchmarks.

A :class:`FrameTrace` attached to a :class:`~bmslib.sim.radio.SimRadio` makes every emulator on it

* stamp its frames: the battery's cycle counter is the frame's number. After each frame is queued
  (:meth:`~bmslib.sim.emulator.Emulator.notify`, right after it was encoded) the counter goes up by
  one, so a frame that carries the cycle count carries its own number, and the published
  ``cycles`` value of a sample names the frame it came from;
* record, when the last chunk of a frame is handed to the host, one line
  ``<monotonic time> <device address> <frame number>``.

A subscriber on the same machine matches a published cycle count to the device's frames: the
frames of one read are those numbered from that value on, and the last of them delivered before
the message arrived ends the read. ``time.monotonic`` is CLOCK_MONOTONIC, shared by all processes
of a machine, so the subscriber's receive time and the trace's times compare directly.

Nothing of this is active unless a trace is attached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

#: frame numbers wrap here: the narrowest wire field of a cycle count is 16 bits
STAMP_MODULO = 1 << 16


@dataclass(frozen=True, slots=True)
class Delivery:
    """One frame whose last chunk went to the host."""

    at: float  # monotonic time [s]
    address: str  # the emulator's BLE address
    frame: int  # the frame's number (the cycle count it was encoded with)


class FrameTrace:
    """Writes one line per delivered frame to ``path`` (buffered; complete after :meth:`close`)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self._out: TextIO | None = path.open("w", encoding="ascii", buffering=1 << 16)

    @staticmethod
    def next_stamp(stamp: int) -> int:
        return (stamp + 1) % STAMP_MODULO

    def delivered(self, address: str, frame: int) -> None:
        if self._out is not None:
            self._out.write(f"{self.clock():.6f} {address} {frame}\n")

    def close(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            out.close()


def read_trace(path: Path) -> Iterator[Delivery]:
    """The deliveries a :class:`FrameTrace` wrote, in order (a torn last line is skipped)."""
    with path.open(encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                try:
                    yield Delivery(float(parts[0]), parts[1], int(parts[2]))
                except ValueError:
                    continue

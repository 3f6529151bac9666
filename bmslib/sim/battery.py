"""A plausible battery for the simulator and the ``dummy`` device.

SoC follows the current (coulomb counting), cells drift apart slowly, temperatures follow the load,
and a switched-off charge or discharge FET stops that direction of current. Time comes from an
injectable monotonic clock so tests can step it.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Open-circuit voltage of an LFP cell by SoC (%), linear in between.
_LFP_OCV = ((0, 2.80), (5, 3.10), (10, 3.20), (20, 3.26), (40, 3.29), (60, 3.31), (80, 3.33),
            (90, 3.35), (97, 3.40), (100, 3.55))


_LFP_SEGMENTS = tuple(itertools.pairwise(_LFP_OCV))


def lfp_ocv(soc: float) -> float:
    soc = max(0.0, min(100.0, soc))
    for (s0, v0), (s1, v1) in _LFP_SEGMENTS:
        if soc <= s1:
            return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)
    return _LFP_OCV[-1][1]


def sine_load(amplitude: float = 10.0, period: float = 120.0, offset: float = 0.0,
              phase: float = 0.0) -> Callable[[float], float]:
    """A load profile: current [A, + = discharge] = offset + amplitude * sin(2 pi t / period + phase)."""
    return lambda t: offset + amplitude * math.sin(2 * math.pi * t / period + phase)


@dataclass
class BatteryModel:
    """State of a simulated pack. Current is positive while discharging (the model's sign)."""

    cells: int = 4
    capacity_ah: float = 100.0
    soc: float = 60.0  # [%]
    load: Callable[[float], float] = field(default_factory=sine_load)  # t [s] -> requested current [A]
    temperature_probes: int = 2
    internal_resistance: float = 0.002  # [Ohm] per cell
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    charge_fet: bool = True
    discharge_fet: bool = True
    balancer: bool = True
    cycles: int = 7
    alarms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._t0 = self.clock()
        self._t_last = self._t0
        self._cell_offsets = [self.rng.uniform(-0.004, 0.004) for _ in range(self.cells)]
        self._temp_offsets = [self.rng.uniform(-0.5, 0.5) for _ in range(self.temperature_probes)]
        self.current = 0.0
        self._heat = 0.0
        self.advance()

    # --- dynamics ---
    def requested_current(self, t: float) -> float:
        i = self.load(t)
        if i < 0 and (not self.charge_fet or self.soc >= 100.0):
            return 0.0
        if i > 0 and (not self.discharge_fet or self.soc <= 0.0):
            return 0.0
        return i

    def advance(self) -> None:
        """Bring the state up to the clock's time."""
        now = self.clock()
        dt = max(0.0, now - self._t_last)
        self._t_last = now
        self.current = self.requested_current(now - self._t0)
        if dt:
            self.soc = max(0.0, min(100.0, self.soc - self.current * dt / 3600.0 / self.capacity_ah * 100.0))
            # cells drift apart very slowly; the balancer pulls them back together
            gauss, offsets = self.rng.gauss, self._cell_offsets
            spread, pull = math.sqrt(dt), min(1.0, dt / 600.0)
            for i in range(self.cells):
                drift = gauss(0.0, 0.00002) * spread
                if self.balancer:
                    drift -= offsets[i] * pull
                offsets[i] = max(-0.05, min(0.05, offsets[i] + drift))
            self._heat += (abs(self.current) * 0.05 - self._heat) * min(1.0, dt / 300.0)

    def set_switch(self, name: str, on: bool) -> None:
        if name == "charge":
            self.charge_fet = on
        elif name == "discharge":
            self.discharge_fet = on
        elif name == "balance":
            self.balancer = on
        else:
            raise KeyError(name)
        self.advance()

    # --- observables ---
    @property
    def charge_ah(self) -> float:
        return self.capacity_ah * self.soc / 100.0

    @property
    def cell_voltages(self) -> list[float]:
        ocv = lfp_ocv(self.soc)
        drop = self.current * self.internal_resistance
        return [round(max(0.0, ocv - drop + off), 3) for off in self._cell_offsets]

    @property
    def open_circuit_voltage(self) -> float:
        """[V] the pack's voltage without current: its cells' open-circuit voltages added (not rounded)."""
        ocv = lfp_ocv(self.soc)
        return sum(ocv + off for off in self._cell_offsets)

    @property
    def resistance(self) -> float:
        """[Ohm] the pack's internal resistance (its cells' in series)."""
        return self.cells * self.internal_resistance

    @property
    def voltage(self) -> float:
        return round(sum(self.cell_voltages), 3)

    @property
    def power(self) -> float:
        return self.voltage * self.current

    @property
    def temperatures(self) -> list[float]:
        return [round(22.0 + self._heat + off, 1) for off in self._temp_offsets]

    @property
    def mos_temperature(self) -> float:
        return round(24.0 + 2 * self._heat, 1)

    @property
    def balance_current(self) -> float:
        spread = max(self._cell_offsets) - min(self._cell_offsets)
        return round(0.5 if self.balancer and spread > 0.01 else 0.0, 3)

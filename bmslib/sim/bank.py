"""Simulated packs connected in parallel: one bus voltage, the bank's load current split between them.

Each pack is a voltage source (the open-circuit voltage of its cells at its state of charge) behind its
internal resistance. On a common bus at voltage ``V`` pack ``i`` carries ``I_i = (E_i - V) / R_i``
(+ = discharging), and the currents add up to the bank's load: ``V = (sum(E_i / R_i) - load) / sum(1 / R_i)``.
So the fuller pack (higher open-circuit voltage) supplies more while discharging and takes less while
charging, a pack of lower resistance carries more, and the split evens out the packs' states of charge over
time. A pack whose FET (or a full or empty battery) blocks the direction its current would flow carries
nothing and the others share the load. Packs of one bank have the same number of cells in series.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from bmslib.sim.battery import BatteryModel, sine_load

#: [Ohm * Ah] a cell's internal resistance times its capacity: larger cells have proportionally less
#: (2 mOhm at 100 Ah, the battery model's default), so a bigger pack carries more of a bank's current
CELL_RESISTANCE_AH = 0.2


def cell_resistance(capacity_ah: float) -> float:
    """[Ohm] the internal resistance of an LFP cell of ``capacity_ah``, for the packs of a bank."""
    return CELL_RESISTANCE_AH / capacity_ah


class ParallelBank:
    """Packs (:class:`BatteryModel`) in parallel on one bus; each pack's current comes from :meth:`split`."""

    def __init__(self, load: Callable[[float], float], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.load = load  # t [s since the bank was made] -> the bank's load current [A, + = discharge]
        self.clock = clock
        self.packs: list[BatteryModel] = []
        self._t0 = clock()
        self._split_key: tuple[float, tuple[tuple[bool, bool], ...]] | None = None
        self._split: list[float] = []

    @classmethod
    def seeded(cls, name: str, *, clock: Callable[[], float] = time.monotonic) -> ParallelBank:
        """A bank whose load profile follows from its name (the same in every run)."""
        rng = random.Random(f"bank:{name}")
        return cls(sine_load(amplitude=rng.uniform(15, 40), period=rng.uniform(60, 180), phase=rng.uniform(0, 6.28)),
                   clock=clock)

    def join(self, pack: BatteryModel) -> BatteryModel:
        """Connect ``pack`` to the bus; from now on its current is its share of the bank's load.

        Packs that are connected in parallel equalise: every pack of the bank is set to the state of charge
        of the bank as a whole (the charge of all packs over their capacity), so no large current circulates
        between them.
        """
        if self.packs and pack.cells != self.packs[0].cells:
            raise ValueError(f"a pack of {pack.cells} cells cannot join a bank of {self.packs[0].cells}-cell packs")
        self.packs.append(pack)
        soc = sum(p.capacity_ah * p.soc for p in self.packs) / sum(p.capacity_ah for p in self.packs)
        for p in self.packs:
            p.soc = soc
        index = len(self.packs) - 1
        pack.load = lambda _t: self.split()[index]
        for p in self.packs:
            p.advance()
        return pack

    @property
    def cells(self) -> int | None:
        """Cells in series of the bank's packs, None while it has none."""
        return self.packs[0].cells if self.packs else None

    def demand(self) -> float:
        """The bank's load current now [A, + = discharge]."""
        return self.load(self.clock() - self._t0)

    def split(self) -> list[float]:
        """Each pack's current now [A, + = discharge]; they add up to :meth:`demand` unless every pack that
        could carry it is blocked.

        Packs bring themselves up to date one after the other; those that do so at the same clock reading
        (and with the same switches) get the currents of one solution, so their currents add up exactly.
        """
        key = (self.clock(), tuple((p.charge_fet, p.discharge_fet) for p in self.packs))
        if key != self._split_key or len(self._split) != len(self.packs):
            self._split_key = key
            self._split = self.solve(self.demand())[0]
        return self._split

    def bus_voltage(self) -> float | None:
        """The bus voltage now [V], None when no pack carries current (each then shows its own)."""
        return self.solve(self.demand())[1]

    def solve(self, load: float) -> tuple[list[float], float | None]:
        """Currents of the packs and the bus voltage for a bank current of ``load``."""
        sources = [(p.open_circuit_voltage, p.resistance) for p in self.packs]
        active = set(range(len(self.packs)))
        while active:
            conductance = sum(1.0 / sources[i][1] for i in active)
            bus = (sum(sources[i][0] / sources[i][1] for i in active) - load) / conductance
            currents = [(sources[i][0] - bus) / sources[i][1] if i in active else 0.0 for i in range(len(sources))]
            blocked = {i for i in active if not _can_carry(self.packs[i], currents[i])}
            if not blocked:
                return currents, bus
            active -= blocked
        return [0.0] * len(self.packs), None


def _can_carry(pack: BatteryModel, current: float) -> bool:
    """Whether ``pack`` lets ``current`` (+ = discharge) flow: the FET of that direction is on and the
    battery is not empty (discharge) or full (charge)."""
    if current > 0:
        return pack.discharge_fet and pack.soc > 0.0
    if current < 0:
        return pack.charge_fet and pack.soc < 100.0
    return True

"""``dummy``: a plausible battery without any radio (its ``address`` can be any text)."""

from __future__ import annotations

import random
from typing import ClassVar

from bmslib.drivers.base import Driver
from bmslib.errors import UnsupportedError
from bmslib.model import DeviceInfo, Reading
from bmslib.sim.battery import BatteryModel, sine_load


class DummyDriver(Driver):
    switches: ClassVar[frozenset[str]] = frozenset({"charge", "discharge"})

    _battery: BatteryModel | None = None
    _connected = False

    def battery(self) -> BatteryModel:
        if self._battery is None:
            rng = random.Random(self.config.alias)
            self._battery = BatteryModel(cells=4, capacity_ah=100.0, soc=rng.uniform(40, 80), rng=rng,
                                         load=sine_load(amplitude=8.0, period=90.0, phase=rng.uniform(0, 6)))
            self.device_info = DeviceInfo(manufacturer="batmon", model="dummy", sw_version="1.0")
        return self._battery

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self.battery()
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    async def read(self) -> Reading:
        b = self.battery()
        b.advance()
        cells = tuple(b.cell_voltages)  # computed once: the pack voltage is their sum (as b.voltage is)
        return {
            "voltage": round(sum(cells), 3), "current": round(b.current, 3), "soc": round(b.soc, 2),
            "charge": round(b.charge_ah, 3), "capacity": b.capacity_ah, "cycles": b.cycles,
            "temperatures": tuple(b.temperatures), "mos_temperature": b.mos_temperature,
            "cell_voltages": cells,
            "switches": {"charge": b.charge_fet, "discharge": b.discharge_fet}, "alarms": (),
        }

    async def set_switch(self, name: str, on: bool) -> None:
        if name not in self.switches:
            raise UnsupportedError(f"dummy has no switch {name!r}")
        self.battery().set_switch(name, on)

"""CBT Power emulator, aiobmsble plugin ``cbtpwr``: a smart BMS with a write service FFE5 and a notify service FFE0.

The host writes one 7-byte request per value group to FFE9; the device answers each with one notification on
FFE4 (every reply fits 20 bytes): cells (05-08, five per reply), temperatures (09), SoC (0A), voltage and current
(0B), remaining time (0C), capacity and cycles (15), alarms (21). It stays silent on anything else. Frames are
built by :mod:`bmslib.bms.bridge.emulators.frames.cbtpwr`.
"""

from __future__ import annotations

import random

from bmslib.bms.bridge.emulators.frames import cbtpwr
from bmslib.protocol.fields import Number
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

WRITE_SERVICE_UUID = "0000ffe5-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000ffe9-0000-1000-8000-00805f9b34fb"
NOTIFY_SERVICE_UUID = "0000ffe0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000ffe4-0000-1000-8000-00805f9b34fb"
#: manufacturer data of a real unit (company id 0x5352), as captured; its meaning is not known
MANUFACTURER_ID = 0x5352
MANUFACTURER_DATA = bytes.fromhex("2134ba03ec110cb4010500010000")


class CbtPowerEmulator(Emulator):
    type_name = "cbtpwr"

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None) -> None:
        if not (len(name) == 10 and name[3] == "R"):
            name = "100R" + address.replace(":", "")[-6:].upper()  # as real units: 170R000121, 100R0002E3
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (
            GattService(WRITE_SERVICE_UUID, (GattChar(WRITE_UUID, ("write", "write-without-response")),)),
            GattService(NOTIFY_SERVICE_UUID, (GattChar(NOTIFY_UUID, ("read", "notify")),)),
        )

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, service_uuids=(NOTIFY_SERVICE_UUID, WRITE_SERVICE_UUID),
                             manufacturer_data={MANUFACTURER_ID: MANUFACTURER_DATA})

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != WRITE_UUID:
            return
        cmd = cbtpwr.parse_request(data)
        if cmd is None:
            return
        b = self.battery
        b.advance()
        if cbtpwr.CELLS_FIRST <= cmd <= cbtpwr.CELLS_LAST:
            self.notify(cbtpwr.cells_reply(cmd, b.cell_voltages))
        elif cmd == cbtpwr.TEMPS:
            self.notify(cbtpwr.temps_reply(b.temperatures))
        elif cmd in cbtpwr.FIELDS:
            self.notify(cbtpwr.values_reply(cmd, self.values()))

    def values(self) -> dict[str, Number]:
        b = self.battery
        runtime = b.charge_ah / b.current if b.current > 0 else 0.0  # [h] while discharging, else 0
        return {
            "soc": round(b.soc), "voltage": b.voltage, "current": -b.current, "runtime": min(runtime, 655.35),
            "design_capacity": round(b.capacity_ah), "cycles": b.cycles,
            "alarms": 0,  # the captures pin no alarm bit
        }


EMULATOR: type[Emulator] = CbtPowerEmulator

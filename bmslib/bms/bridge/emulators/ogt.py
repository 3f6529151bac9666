"""Offgridtec Smart Pro emulator, aiobmsble plugin ``ogt``: register reads scrambled with a key from the name.

The device's type (A or B) is the letter of its name ``SmartBat-<type><number>`` (type B unless a name of type A
is given); type B also has its cell voltages. The host writes one 8-byte request per register to FFF6, the
device answers each with one notification on FFF4, ``Err`` for a register it does not have (type B's cells past
its last one). Frames are built by :mod:`bmslib.bms.bridge.emulators.frames.ogt`.
"""

from __future__ import annotations

import random

from bmslib.bms.bridge.emulators.frames import ogt
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

SERVICE_UUID = "0000fff0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000fff4-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000fff6-0000-1000-8000-00805f9b34fb"


class OgtEmulator(Emulator):
    type_name = "ogt"

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None) -> None:
        if ogt.key(name) is None:
            number = int(address.replace(":", ""), 16) % 100000
            name = f"SmartBat-B{number:05d}"  # as real units advertise: SmartBat-B15051
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)
        self.kind = name[9]
        self.key = ogt.key(name) or 0

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (GattService(SERVICE_UUID, (
            GattChar(NOTIFY_UUID, ("read", "notify")),
            GattChar(WRITE_UUID, ("write", "write-without-response")),
        )),)

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, service_uuids=(SERVICE_UUID,))

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != WRITE_UUID:
            return
        parsed = ogt.parse_request(data, self.kind, self.key)
        if parsed is None:
            return
        register, _length = parsed
        b = self.battery
        b.advance()
        cell = ogt.CELL_FIRST_REGISTER - register
        if self.kind == "B" and 0 <= cell < ogt.MAX_CELLS:
            cells = b.cell_voltages
            frame = ogt.reply(register, round(cells[cell] * 1000), self.key) if cell < len(cells) \
                else ogt.error_reply(self.key)
        elif (value := ogt.raw_values(self.kind, self.values()).get(register)) is not None:
            frame = ogt.reply(register, value[0], self.key, value[1])
        else:
            frame = ogt.error_reply(self.key)
        self.notify(frame)

    def values(self) -> dict[str, float]:
        b = self.battery
        values = {"soc": round(b.soc), "charge": b.charge_ah, "voltage": b.voltage,
                  "temperature": b.temperatures[0] if b.temperatures else b.mos_temperature,
                  "current": -b.current, "cycles": b.cycles, "design_capacity": b.capacity_ah}
        if b.current > 0:
            values["runtime"] = b.charge_ah / b.current * 60  # [min] while discharging
        return values


EMULATOR: type[Emulator] = OgtEmulator

"""RoyPow emulator, aiobmsble plugin ``roypow``: a 12/24 V LiFePO4 battery on the FFE0 service.

The host writes 8-byte requests to FFE1 and the device answers on the same characteristic, each reply split into
20-byte notifications: cells (02), status with current, temperatures and FETs (03), pack values (04). Its BLE
module announces itself with ``AT+STAT`` before the first reply of a connection, as real units do. The device
stays silent on anything else. Frames are built by :mod:`bmslib.bms.bridge.emulators.frames.roypow`.
"""

from __future__ import annotations

import fnmatch
import random

from bmslib.bms.bridge.emulators.frames import roypow
from bmslib.protocol.fields import Number
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

SERVICE_UUID = "0000ffe0-0000-1000-8000-00805f9b34fb"
CHAR_UUID = "0000ffe1-0000-1000-8000-00805f9b34fb"  # written and notifying
#: a second service real units advertise (their BLE module's)
MODULE_SERVICE_UUID = "0000fee7-0000-1000-8000-00805f9b34fb"
NAME_PATTERNS = (" [BS]12*", " [BS]24*", " UT*")  # real units: " B12100A 220600016 ", " S12100A LI00735 "
#: manufacturer data as real units send it: 88 A0 and the device's MAC (company id as in one capture)
MANUFACTURER_ID = 0x01A8
MANUFACTURER_PREFIX = b"\x88\xa0"


class RoyPowEmulator(Emulator):
    type_name = "roypow"

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None) -> None:
        if not any(fnmatch.fnmatchcase(name, p) for p in NAME_PATTERNS):
            digits = str(int(address.replace(":", ""), 16))[-9:].rjust(9, "0")
            name = f" B12100A {digits} "  # as real units advertise: model, serial number, spaces around
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)
        self._announced = False

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (GattService(SERVICE_UUID, (
            GattChar(CHAR_UUID, ("read", "write", "write-without-response", "notify")),
        )),)

    def advertisement(self) -> Advertisement:
        mac = bytes.fromhex(self.address.replace(":", ""))
        return Advertisement(name=self.name, service_uuids=(SERVICE_UUID, MODULE_SERVICE_UUID),
                             manufacturer_data={MANUFACTURER_ID: MANUFACTURER_PREFIX + mac})

    def on_connect(self) -> None:
        self._announced = False

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != CHAR_UUID:
            return
        cmd = roypow.parse_request(data)
        if cmd not in (roypow.CELLS, roypow.STATUS, roypow.VALUES):
            return
        if not self._announced:
            self._announced = True
            self.notify(roypow.AT_STAT, CHAR_UUID)
        b = self.battery
        b.advance()
        if cmd == roypow.CELLS:
            reply = roypow.cells_reply(b.cell_voltages)
        elif cmd == roypow.STATUS:
            reply = roypow.status_reply(-b.current, b.temperatures, charge_fet=b.charge_fet,
                                        discharge_fet=b.discharge_fet)
        else:
            runtime = b.charge_ah / b.current * 60 if b.current > 0 else None  # [min] while discharging
            reply = roypow.values_reply(self.values(), runtime)
        self.notify(reply, CHAR_UUID)

    def values(self) -> dict[str, Number]:
        b = self.battery
        return {"soc": round(b.soc), "cycles": b.cycles, "full_capacity": b.capacity_ah,
                "design_capacity": b.capacity_ah, "charge": b.charge_ah, "voltage": b.voltage}


EMULATOR: type[Emulator] = RoyPowEmulator

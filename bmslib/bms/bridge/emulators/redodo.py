"""Redodo / LiTime-like battery emulator (aiobmsble plugin ``redodo``): one status frame on FFE0.

The host writes ``00 00 04 01 13 55 AA sum`` (command 0x13, status) to FFE2; the battery answers on FFE1 with
one 105-byte frame in one notification (the plugin does not reassemble): ``00 00 len 01 93 55 AA 00``, the
little-endian fields below, and a sum-of-bytes checksum. Commands other than 0x13 go unanswered (the captures
show no reply to them). Offsets come from a captured reply (tests/bms/bridge/captures/redodo.json).

Frames are built by :mod:`bmslib.bms.bridge.emulators.frames.redodo`.
"""

from __future__ import annotations

import fnmatch
import random

from bmslib.bms.bridge.emulators.frames.redodo import (
    CMD_STATUS,
    MANUFACTURER_ID,
    MAX_CELLS,
    MAX_TEMPS,
    NAME_PATTERNS,
    NOTIFY_UUID,
    SERVICE_UUID,
    WRITE_UUID,
    parse_request,
    status_frame,
)
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService


class RedodoEmulator(Emulator):
    type_name = "redodo"
    mtu = 244  # the whole frame in one notification, as the plugin expects

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None) -> None:
        if not any(fnmatch.fnmatchcase(name, p) for p in NAME_PATTERNS):
            serial = int(address.replace(":", "")[-4:], 16) % 100_000
            name = f"R-12100BNN160-A{serial:05d}"  # the format of the captured names
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (GattService(SERVICE_UUID, (
            GattChar(NOTIFY_UUID, ("notify",)),
            GattChar(WRITE_UUID, ("write-without-response", "write")),
        )),)

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, service_uuids=(SERVICE_UUID,),
                             manufacturer_data={MANUFACTURER_ID: bytes.fromhex(self.address.replace(":", ""))})

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid == WRITE_UUID and parse_request(data) == CMD_STATUS:
            self.notify(self.status())

    def status(self) -> bytes:
        b = self.battery
        b.advance()
        values = {
            "pack_voltage": b.voltage, "voltage": b.voltage, "current": -b.current, "charge": b.charge_ah,
            "capacity": b.capacity_ah, "soc": round(b.soc), "soh": 100, "cycles": b.cycles,
            "balancing": int(b.balance_current > 0),
        }
        return status_frame(values, b.cell_voltages[:MAX_CELLS], [round(t) for t in b.temperatures[:MAX_TEMPS]])


EMULATOR: type[Emulator] = RedodoEmulator

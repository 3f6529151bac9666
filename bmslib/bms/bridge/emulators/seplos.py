"""Seplos V3 emulator (aiobmsble plugin ``seplos``): a Modbus-style BMS on the FFF0 service.

The host writes 8-byte Modbus requests ``dev fct addr(2) count(2) crc(2, little-endian)`` to FFF2; the device
answers on FFF1 with ``dev fct bytecount data crc``. Device 0 is the EMS view of the whole system (EIA at
0x2000, EIB at 0x2100 with function 4, EIC at 0x2200 with function 1, whose count is in bits/16), devices
1..n are the packs (PIA at 0x1000, PIB at 0x1100). Registers are big-endian; 32-bit EIA values have their low
word first. This emulator is one pack: the EMS and pack 1 report the same battery. A read of any other
register range gets the Modbus exception reply ``dev fct|0x80 02 crc``.

Offsets come from captured replies (see tests/bms/bridge/captures/seplos.json); bytes whose meaning the
captures do not pin are sent as zero (the test lists them).

Frames are built by :mod:`bmslib.bms.bridge.emulators.frames.seplos`.
"""

from __future__ import annotations

import fnmatch
import random

from bmslib.bms.bridge.emulators.frames.seplos import (
    EIA,
    EIB,
    EIC,
    NAME_PATTERNS,
    NAME_PREFIX,
    NOTIFY_UUID,
    PIA,
    PIB,
    PIB_CELL_TEMPS,
    SERVICE_UUID,
    WRITE_UUID,
    Block,
    eia_data,
    eib_data,
    eic_data,
    error_reply,
    parse_request,
    pia_data,
    pib_data,
    reply,
)
from bmslib.protocol.fields import Number
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService


def battery_values(b: BatteryModel) -> dict[str, Number]:
    """The battery's state as the EIA/EIB/PIA fields (current in the wire's sign: + = charging)."""
    cells, temps = b.cell_voltages, b.temperatures
    return {
        "voltage": b.voltage, "current": -b.current, "charge": b.charge_ah, "full_charge": b.capacity_ah,
        "design_capacity": b.capacity_ah, "pack_count": 1, "cycles": b.cycles, "soc": b.soc, "soc2": b.soc,
        "soh": 100.0, "cell_max": max(cells), "cell_min": min(cells), "cell_max_no": cells.index(max(cells)) + 1,
        "cell_min_no": cells.index(min(cells)) + 1, "cell_avg": sum(cells) / len(cells),
        "temp_max": max(temps), "temp_min": min(temps), "temp_avg": sum(temps) / len(temps),
    }


class SeplosEmulator(Emulator):
    type_name = "seplos"

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None) -> None:
        if not any(fnmatch.fnmatchcase(name, p) for p in NAME_PATTERNS):
            name = NAME_PREFIX + name  # advertise a name real units have
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (GattService(SERVICE_UUID, (
            GattChar(NOTIFY_UUID, ("read", "notify")),
            GattChar(WRITE_UUID, ("read", "write-without-response", "write")),
        )),)

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, service_uuids=(SERVICE_UUID,))

    def handle_read(self, char_uuid: str) -> bytes:
        if char_uuid in (NOTIFY_UUID, WRITE_UUID):
            return b""
        raise KeyError(char_uuid)

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != WRITE_UUID:
            return
        parsed = parse_request(data)
        if parsed is not None:
            self.notify(self.answer(*parsed))

    def answer(self, device: int, block: Block) -> bytes:
        """The reply to a read of ``block`` on ``device`` (0: the EMS view, 1: the pack)."""
        b = self.battery
        b.advance()
        fct = block[0]
        if device == 0 and block == EIA:
            return reply(device, fct, eia_data(battery_values(b)))
        if device == 0 and block == EIB:
            return reply(device, fct, eib_data(battery_values(b)))
        if device == 0 and block == EIC:
            return reply(device, fct, eic_data(b.charge_fet, b.discharge_fet))
        if device == 1 and block == PIA:
            return reply(device, fct, pia_data(battery_values(b)))
        if device == 1 and block == PIB:
            return reply(device, fct, pib_data(b.cell_voltages, b.temperatures[:PIB_CELL_TEMPS], None,
                                               b.mos_temperature))
        return error_reply(device, fct)


EMULATOR: type[Emulator] = SeplosEmulator

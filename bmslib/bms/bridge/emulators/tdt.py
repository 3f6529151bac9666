"""TDT BMS emulator (aiobmsble plugin ``tdt``): request/reply frames on FFF0, unlocked through FFFA.

The host first writes ``HiLink`` to the configuration characteristic FFFA and reads it back (``01``: unlocked).
Requests go to FFF2: ``head 00 01 03 00 cmd len(2) data crc(2) 0D`` with head ``7E`` or ``1E`` (units differ;
this one takes both) and a Modbus CRC sent big-endian; replies come on FFF1 as ``7E ver addr 03 err cmd len(2)
data crc(2) 0D`` in 20-byte notifications. Commands:

- 0x8C: cell count, cell voltages [mV], temperature count, temperatures [0.1 K, from 273.0 K] (ambient,
  MOSFET, then the cells), then current (bit 15: discharging, bit 14 set in every capture, bits 0..13 in
  0.1 A), voltage [0.01 V], remaining charge, full charge [0.1 Ah], cycles, design capacity [0.1 Ah], SoC [%];
- 0x8D: cell count and one status byte per cell, temperature count and one status byte per sensor, then
  4 bytes, the problem code (2 bytes), the FET byte (bit 1 charge, bit 2 discharge) and 8 more bytes;
- 0x92: software version, manufacturer and serial number, 20 ASCII bytes each.

Offsets come from captured replies (tests/bms/bridge/captures/tdt.json); the 0x92 layout is the one the plugin
reads (the captured 0x92 reply's length and CRC do not match its bytes).

Frames are built by :mod:`bmslib.bms.bridge.emulators.frames.tdt`.
"""

from __future__ import annotations

import fnmatch
import random

from bmslib.bms.bridge.emulators.frames.tdt import (
    ADVERTISED_TAIL,
    AMBIENT_C,
    CMD_CELLS,
    CMD_INFO,
    CMD_STATUS,
    CONFIG_UUID,
    NAME_PATTERNS,
    NOTIFY_UUID,
    SERVICE_UUID,
    UNLOCK,
    WRITE_UUID,
    cells_data,
    info_data,
    parse_request,
    reply,
    status_data,
)
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService


class TdtEmulator(Emulator):
    type_name = "tdt"
    sw_version = "SIM_TDT_L_41"
    manufacturer = "TDT"

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None) -> None:
        self.mac = bytes.fromhex(address.replace(":", ""))
        if not any(fnmatch.fnmatchcase(name, p) for p in NAME_PATTERNS):
            name = f"WTDH04SC{self.mac[-1] % 100:02d}"  # the format of the captured name
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)
        self.serial = f"{int.from_bytes(self.mac[2:], 'big') % 10**17:017d}"
        self.unlocked = False

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (GattService(SERVICE_UUID, (
            GattChar(NOTIFY_UUID, ("notify",)),
            GattChar(WRITE_UUID, ("write-without-response", "write")),
            GattChar(CONFIG_UUID, ("read", "write")),
        )),)

    def advertisement(self) -> Advertisement:
        # as captured: company id = the first two address bytes (little-endian), the third, then fixed bytes
        company = int.from_bytes(self.mac[:2], "little")
        return Advertisement(name=self.name, service_uuids=(SERVICE_UUID,),
                             manufacturer_data={company: self.mac[2:3] + ADVERTISED_TAIL})

    def on_connect(self) -> None:
        self.unlocked = False

    def handle_read(self, char_uuid: str) -> bytes:
        if char_uuid == CONFIG_UUID:
            return b"\x01" if self.unlocked else b"\x00"
        raise KeyError(char_uuid)

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid == CONFIG_UUID:
            self.unlocked = data == UNLOCK
        elif char_uuid == WRITE_UUID:
            cmd = parse_request(data)
            if cmd is not None:
                answer = self.answer(cmd)
                if answer is not None:
                    self.notify(answer)

    def answer(self, cmd: int) -> bytes | None:
        b = self.battery
        b.advance()
        cells, temps = b.cell_voltages, [AMBIENT_C, b.mos_temperature, *b.temperatures]
        if cmd == CMD_CELLS:
            return reply(cmd, cells_data(cells, temps, {
                "current": -b.current, "voltage": b.voltage, "charge": b.charge_ah, "full_charge": b.capacity_ah,
                "cycles": b.cycles, "design_capacity": b.capacity_ah, "soc": round(b.soc)}))
        if cmd == CMD_STATUS:
            return reply(cmd, status_data(len(cells), len(temps), b.charge_fet, b.discharge_fet))
        if cmd == CMD_INFO:
            return reply(cmd, info_data(self.sw_version, self.manufacturer, self.serial))
        return None


EMULATOR: type[Emulator] = TdtEmulator

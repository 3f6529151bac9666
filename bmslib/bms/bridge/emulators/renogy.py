"""Renogy Bluetooth battery emulator (aiobmsble plugin ``renogy``): Modbus holding registers over BLE.

The host writes 8-byte Modbus reads (device 0x30, function 3, start register, register count, CRC little-endian)
to FFD1 (service FFD0); the battery answers on FFF1 (service FFF0) with ``30 03 bytecount data crc``, one
whole reply per notification (the plugin does not reassemble, so the link's MTU is large, as after the MTU
exchange with these modules). Registers are big-endian. Blocks (start, count):

- 0x13B2 x7: current [0.01 A, + = charging], voltage [0.1 V], remaining charge and capacity [mAh], cycles;
- 0x1388 x34: cell count, 16 cell voltages [0.1 V], temperature count, 16 temperatures [0.1 degC];
- 0x13EC x8: alarm and status words (byte 13: bit 1 charge FET, bit 2 discharge FET; byte 14 bit 5 heater);
- 0x13F0 x28: serial number (bytes 12..28), name (36..52) and software version (52..56), ASCII;
- 0x1402 x8: the model name.

A read of any other range gets the Modbus exception reply ``30 83 02 crc``. Offsets come from captured
replies (tests/bms/bridge/captures/renogy.json).

Frames are built by :mod:`bmslib.bms.bridge.emulators.frames.renogy`.
"""

from __future__ import annotations

import fnmatch
import random

from bmslib.bms.bridge.emulators.frames.renogy import (
    CELLS,
    DEVICE,
    INFO,
    MAX_CELLS,
    MAX_TEMPS,
    MODEL_NAME,
    NAME_PATTERN,
    NOTIFY_SERVICE_UUID,
    NOTIFY_UUID,
    STATUS,
    SUMMARY,
    WRITE_SERVICE_UUID,
    WRITE_UUID,
    Block,
    cells_data,
    error_reply,
    info_data,
    model_data,
    parse_request,
    reply,
    status_data,
    summary_data,
)
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService


class RenogyEmulator(Emulator):
    type_name = "renogy"
    mtu = 244  # whole replies in one notification, as the plugin expects

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None) -> None:
        mac = bytes.fromhex(address.replace(":", ""))
        if not fnmatch.fnmatchcase(name, NAME_PATTERN):
            name = "BT-TH-" + mac[2:].hex().upper()  # the module's name: its last four address bytes
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)
        self.serial = f"{int.from_bytes(mac[2:], 'big') % 100_000_000:08d}"

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (
            GattService(WRITE_SERVICE_UUID, (GattChar(WRITE_UUID, ("write-without-response", "write")),)),
            GattService(NOTIFY_SERVICE_UUID, (GattChar(NOTIFY_UUID, ("notify",)),)),
        )

    def advertisement(self) -> Advertisement:
        # as captured: company id = the first two address bytes (little-endian), data = the last four
        mac = bytes.fromhex(self.address.replace(":", ""))
        return Advertisement(name=self.name, service_uuids=(WRITE_SERVICE_UUID,),
                             manufacturer_data={int.from_bytes(mac[:2], "little"): mac[2:]})

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != WRITE_UUID:
            return
        parsed = parse_request(data)
        if parsed is not None and parsed[0] == DEVICE:
            self.notify(self.answer(parsed[1]), NOTIFY_UUID)

    def answer(self, block: Block) -> bytes:
        b = self.battery
        b.advance()
        if block == SUMMARY:
            return reply(summary_data({"current": -b.current, "voltage": b.voltage, "charge": b.charge_ah,
                                       "capacity": b.capacity_ah, "cycles": b.cycles}))
        if block == CELLS:
            return reply(cells_data(b.cell_voltages[:MAX_CELLS], b.temperatures[:MAX_TEMPS]))
        if block == STATUS:
            return reply(status_data(b.charge_fet, b.discharge_fet))
        if block == INFO:
            return reply(info_data(self.serial))
        if block == MODEL_NAME:
            return reply(model_data())
        return error_reply()


EMULATOR: type[Emulator] = RenogyEmulator

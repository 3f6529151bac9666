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
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Mapping, Sequence

from bmslib.protocol.crc import crc16_modbus
from bmslib.protocol.fields import Field, FieldTable, Number, encode_array
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

WRITE_SERVICE_UUID = "0000ffd0-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000ffd1-0000-1000-8000-00805f9b34fb"
NOTIFY_SERVICE_UUID = "0000fff0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000fff1-0000-1000-8000-00805f9b34fb"
NAME_PATTERN = "BT-TH-*"

DEVICE = 0x30
READ_HOLDING = 0x03
REQUEST_LEN = 8
MAX_CELLS = MAX_TEMPS = 16
MODEL = "RBT100LFP12-BT"
SW_VERSION = "0100"

#: block: (start register, register count)
Block = tuple[int, int]
SUMMARY: Block = (0x13B2, 0x07)
CELLS: Block = (0x1388, 0x22)
STATUS: Block = (0x13EC, 0x08)
INFO: Block = (0x13F0, 0x1C)
MODEL_NAME: Block = (0x1402, 0x08)

SUMMARY_FIELDS = FieldTable(">", (
    Field("current", 0, "h", 0.01), Field("voltage", 2, "H", 0.1), Field("charge", 4, "I", 0.001),
    Field("capacity", 8, "I", 0.001), Field("cycles", 12, "H"),
))
CELL_COUNT_AT, CELLS_AT = 0, 2
TEMP_COUNT_AT, TEMPS_AT = 34, 36
STATUS_FET_BYTE, STATUS_HEATER_BYTE = 13, 14
FET_CHARGE, FET_DISCHARGE, HEATER = 0x02, 0x04, 0x20
INFO_SERIAL, INFO_NAME, INFO_SW = slice(12, 28), slice(36, 52), slice(52, 56)


def request(block: Block, device: int = DEVICE) -> bytes:
    body = bytes((device, READ_HOLDING)) + block[0].to_bytes(2, "big") + block[1].to_bytes(2, "big")
    return body + crc16_modbus(body).to_bytes(2, "little")


def parse_request(frame: bytes) -> tuple[int, Block] | None:
    """(device, block) of a well-formed read request, else None."""
    if (len(frame) != REQUEST_LEN or frame[1] != READ_HOLDING
            or crc16_modbus(frame[:-2]) != int.from_bytes(frame[-2:], "little")):
        return None
    return frame[0], (int.from_bytes(frame[2:4], "big"), int.from_bytes(frame[4:6], "big"))


def reply(data: bytes, device: int = DEVICE) -> bytes:
    body = bytes((device, READ_HOLDING, len(data))) + data
    return body + crc16_modbus(body).to_bytes(2, "little")


def error_reply(device: int = DEVICE, code: int = 0x02) -> bytes:
    body = bytes((device, READ_HOLDING | 0x80, code))
    return body + crc16_modbus(body).to_bytes(2, "little")


def summary_data(values: Mapping[str, Number]) -> bytes:
    """0x13B2: current [A, + = charging], voltage [V], charge and capacity [Ah], cycles."""
    data = bytearray(2 * SUMMARY[1])
    SUMMARY_FIELDS.encode(values, data)
    return bytes(data)


def cells_data(cells: Sequence[float], temps: Sequence[float]) -> bytes:
    """0x1388: cell voltages [V] and temperatures [degC], each with its count (16 slots each)."""
    if len(cells) > MAX_CELLS or len(temps) > MAX_TEMPS:
        raise ValueError(f"at most {MAX_CELLS} cells and {MAX_TEMPS} temperatures")
    data = bytearray(2 * CELLS[1])
    data[CELL_COUNT_AT:CELL_COUNT_AT + 2] = len(cells).to_bytes(2, "big")
    data[CELLS_AT:CELLS_AT + 2 * len(cells)] = encode_array(cells, ">H", 0.1)
    data[TEMP_COUNT_AT:TEMP_COUNT_AT + 2] = len(temps).to_bytes(2, "big")
    data[TEMPS_AT:TEMPS_AT + 2 * len(temps)] = encode_array(temps, ">h", 0.1)
    return bytes(data)


def status_data(charge_fet: bool, discharge_fet: bool, heater: bool = False) -> bytes:
    """0x13EC: no alarms; the FET and heater bits."""
    data = bytearray(2 * STATUS[1])
    data[STATUS_FET_BYTE] = (FET_CHARGE if charge_fet else 0) | (FET_DISCHARGE if discharge_fet else 0)
    data[STATUS_HEATER_BYTE] = HEATER if heater else 0
    return bytes(data)


def _ascii(text: str, size: int, fill: bytes) -> bytes:
    return text.encode("ascii", "replace")[:size].ljust(size, fill)


def info_data(serial: str, name: str = MODEL, sw_version: str = SW_VERSION) -> bytes:
    """0x13F0: serial number (NUL-padded), name (space-padded) and software version."""
    data = bytearray(2 * INFO[1])
    data[INFO_SERIAL] = _ascii(serial, 16, b"\0")
    data[INFO_NAME] = _ascii(name, 16, b" ")
    data[INFO_SW] = _ascii(sw_version, 4, b" ")
    return bytes(data)


def model_data(model: str = MODEL) -> bytes:
    return _ascii(model, 2 * MODEL_NAME[1], b" ")


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

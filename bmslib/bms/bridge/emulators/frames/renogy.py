"""Frames of the renogy emulator (pure: no asyncio, no bleak), fed plain values; the protocol is described in
:mod:`bmslib.bms.bridge.emulators.renogy`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bmslib.protocol.crc import crc16_modbus
from bmslib.protocol.fields import Field, FieldTable, Number, encode_array

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

"""Frames of the ecoworthy emulator (pure: no asyncio, no bleak), fed plain values; the protocol is described in
:mod:`bmslib.bms.bridge.emulators.ecoworthy`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bmslib.protocol.crc import crc16_modbus
from bmslib.protocol.fields import Field, FieldTable, Number, encode_array

SERVICE_UUID = "0000fff0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000fff1-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000fff2-0000-1000-8000-00805f9b34fb"
ADVERTISED_UUIDS = ("00001800-0000-1000-8000-00805f9b34fb", "00001801-0000-1000-8000-00805f9b34fb", SERVICE_UUID)
NAME_PREFIX = "ECO-WORTHY 02_"
A1, A2 = 0xA1, 0xA2
#: the header after the frame type, per protocol, as captured (the last byte is the data length)
HEADERS = {1: bytes.fromhex("00000065000000000018" "0103"), 2: bytes.fromhex("000008" "03")}
CELL_SLOTS, TEMP_SLOTS = 32, 9
NO_CELL, NO_TEMP = 0xFFFF, -1000  # unused slots [mV] / [0.1 degC]
CELL_COUNT_AT, CELLS_AT = 0, 2
TEMP_COUNT_AT, TEMPS_AT = 66, 68
A1_LEN, A2_LEN = 0x44, 0x56
A1_FIELDS = FieldTable(">", (
    Field("soc", 2, "H"), Field("soh", 4, "H"), Field("voltage", 6, "H", 0.01), Field("current", 8, "h", 0.01),
    Field("capacity", 12, "H", 0.01), Field("problem_code", 37, "H"),
))

CURRENT_SCALE = {1: 0.01, 2: 0.1}



def a1_data(values: Mapping[str, Number], protocol: int = 1) -> bytes:
    """A1 data: soc and soh [%], voltage [V], current [A, + = charging], capacity [Ah], problem_code."""
    data = bytearray(A1_LEN)
    A1_FIELDS.encode({k: v for k, v in values.items() if k != "current"}, data)
    if "current" in values:
        data[8:10] = round(values["current"] / CURRENT_SCALE[protocol]).to_bytes(2, "big", signed=True)
    return bytes(data)



def a2_data(cells: Sequence[float], temps: Sequence[float]) -> bytes:
    """A2 data: cell count and voltages [V], temperature count and temperatures [degC]; unused slots marked."""
    if len(cells) > CELL_SLOTS or len(temps) > TEMP_SLOTS:
        raise ValueError(f"at most {CELL_SLOTS} cells and {TEMP_SLOTS} temperatures")
    data = bytearray(A2_LEN)
    data[CELL_COUNT_AT:CELL_COUNT_AT + 2] = len(cells).to_bytes(2, "big")
    data[CELLS_AT:TEMP_COUNT_AT] = encode_array(list(cells) + [NO_CELL / 1000] * (CELL_SLOTS - len(cells)), ">H", 0.001)
    data[TEMP_COUNT_AT:TEMP_COUNT_AT + 2] = len(temps).to_bytes(2, "big")
    data[TEMPS_AT:] = encode_array(list(temps) + [NO_TEMP / 10] * (TEMP_SLOTS - len(temps)), ">h", 0.1)
    return bytes(data)



def frame(kind: int, data: bytes, protocol: int = 1, mac: bytes = b"") -> bytes:
    """A whole A1/A2 frame of ``protocol`` (2: prefixed with the device address ``mac``)."""
    prefix = bytes((kind,)) if protocol == 1 else mac + bytes((kind,))
    body = prefix + HEADERS[protocol] + bytes((len(data),)) + data
    return body + crc16_modbus(body).to_bytes(2, "little")



def is_command(data: bytes) -> bool:
    """A host command the battery accepts (it starts the stream): ``FF``, at least 4 bytes, a valid CRC."""
    return len(data) >= 4 and data[0] == 0xFF and crc16_modbus(data[:-2]) == int.from_bytes(data[-2:], "little")

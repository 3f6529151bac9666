"""Frames of the redodo emulator (pure: no asyncio, no bleak), fed plain values; the protocol is described in
:mod:`bmslib.bms.bridge.emulators.redodo`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bmslib.protocol.crc import sum8
from bmslib.protocol.fields import Field, FieldTable, Number, encode_array

SERVICE_UUID = "0000ffe0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000ffe1-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000ffe2-0000-1000-8000-00805f9b34fb"
MANUFACTURER_ID = 0x585A  # followed by the device address, as captured
#: advertised names of real packs (Redodo, LiTime, ECO-WORTHY T-series, Starry Sea ...)
NAME_PATTERNS = ("P-12*", "P-24*", "PQ-12*", "PQ-24*", "R-12*", "R-24*", "RO-12*", "RO-24*", "T-12*", "T-24*",
                 "L-12*", "L-24*", "L-51*", "LT-51*", "S-*", "SS-*")

HEAD = b"\x00\x00"
CMD_STATUS = 0x13
REQUEST_TAIL = b"\x55\xaa"
FRAME_LEN = 105
MAX_CELLS, MAX_TEMPS = 16, 5
CELLS_AT, TEMPS_AT = 16, 52
FIELDS = FieldTable("<", (
    Field("pack_voltage", 8, "I", 0.001), Field("voltage", 12, "H", 0.001), Field("current", 48, "i", 0.001),
    Field("charge", 62, "H", 0.01), Field("capacity", 64, "I", 0.01), Field("heater", 68, "I"),
    Field("problem_code", 76, "Q"), Field("balancing", 84, "I"), Field("soc", 90, "H"), Field("soh", 92, "I"),
    Field("cycles", 96, "I"),
))



def request(cmd: int = CMD_STATUS) -> bytes:
    body = HEAD + bytes((4, 1, cmd)) + REQUEST_TAIL
    return body + bytes((sum8(body),))



def parse_request(frame: bytes) -> int | None:
    """The command of a well-formed request, else None."""
    if (len(frame) != 8 or not frame.startswith(HEAD) or frame[2] != 4 or frame[5:7] != REQUEST_TAIL
            or sum8(frame[:-1]) != frame[-1]):
        return None
    return frame[4]



def status_frame(values: Mapping[str, Number], cells: Sequence[float], temps: Sequence[int]) -> bytes:
    """The status reply: ``values`` (voltages [V], current [A, + = charging], charge and capacity [Ah], soc and
    soh [%], cycles, heater, problem_code, balancing), cells [V] and temperatures [degC, whole degrees]."""
    if len(cells) > MAX_CELLS or len(temps) > MAX_TEMPS:
        raise ValueError(f"at most {MAX_CELLS} cells and {MAX_TEMPS} temperatures")
    frame = bytearray(FRAME_LEN)
    frame[:8] = HEAD + bytes((FRAME_LEN - 4, 1, CMD_STATUS | 0x80)) + REQUEST_TAIL + b"\x00"
    FIELDS.encode(values, frame)
    frame[CELLS_AT:CELLS_AT + 2 * len(cells)] = encode_array(cells, "<H", 0.001)
    frame[TEMPS_AT:TEMPS_AT + 2 * len(temps)] = encode_array(temps, "<h")
    frame[-1] = sum8(bytes(frame[:-1]))
    return bytes(frame)

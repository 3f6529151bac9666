"""Pace (PACEEX, aiobmsble plugin ``pace``) frames: ``9A type(6) len data crc(2, big-endian) 9D``.

The host's request and the device's reply share this framing; the reply repeats the request's six type bytes.
The CRC is CRC-16/MODBUS over everything before it, sent big-endian (not Modbus' little-endian). Values are
big-endian; temperatures are in 0.1 K (raw = 0.1 degC + 2731).

Offsets come from captured replies (tests/bms/bridge/captures/pace.json): the system reply (type 0A00), a
pack's values (0A01) and its cells (0A02, each cell voltage followed by one temperature slot: four cell probes,
the MOSFET and the ambient one; 0 = no probe). Bytes the captures do not pin are sent as zero; the capture file
lists them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bmslib.protocol.crc import crc16_modbus
from bmslib.protocol.fields import Field, FieldTable, Number

HEAD, TAIL = 0x9A, 0x9D
TYPE_LEN = 6
MIN_LEN = 11  # head, type, length, crc, tail
KELVIN = 2731  # [0.1 K] at 0 degC, as the device counts

SERIAL = bytes.fromhex("000000020000")
VERSIONS = bytes.fromhex("000000010000")
SYS_INFO = bytes.fromhex("00000a000000")
PACK_INFO = bytes.fromhex("00000a010000")
CELL_INFO = bytes.fromhex("00000a020000")

#: first data byte of the pack replies (0A01, 0A02): 2 in every capture, meaning not known
PACK_REPLY_TAG = 0x02
#: temperature slots of the cell reply, in order: four cell probes, the MOSFET, the ambient probe
TEMP_SLOTS = 6
CELL_PROBES = 4
MOSFET_SLOT = 4

#: the version reply's data as captured (firmware "P16S100A-31916-1.06", hardware "21939V140"): fixed text
VERSIONS_DATA = bytes.fromhex(
    "001550313653313030412d33313931362d312e303600"
    "002050313653313030412d33313931362d312e30362d"
    "3030310000000000000000000a32313933395631343000")

# System reply (0A00), offsets from its data. 32-bit values; pack_count 0: a pack on its own (the master of a
# bank reports the number of packs)
SYS_FIELDS = FieldTable(">", (
    Field("pack_count", 0, "B"), Field("current", 1, "i", 0.01), Field("voltage", 5, "I", 0.01),
    Field("charge", 9, "I", 0.01), Field("design_capacity", 13, "I", 0.01), Field("full_capacity", 17, "I", 0.01),
    Field("soc", 21, "B"), Field("soh", 22, "B"), Field("cycles", 23, "I"),
    Field("cell_max_pack", 35, "B"), Field("cell_max_no", 36, "B"), Field("cell_max", 37, "H", 0.001),
    Field("cell_min_pack", 39, "B"), Field("cell_min_no", 40, "B"), Field("cell_min", 41, "H", 0.001),
    Field("temp_max_pack", 43, "B"), Field("temp_max_no", 44, "B"), Field("temp_max", 45, "H", 0.1, -KELVIN / 10),
    Field("temp_min_pack", 47, "B"), Field("temp_min_no", 48, "B"), Field("temp_min", 49, "H", 0.1, -KELVIN / 10),
))
SYS_LEN = 51

# One pack's values (0A01): 16-bit values
PACK_FIELDS = FieldTable(">", (
    Field("tag", 0, "B"), Field("current", 1, "h", 0.01), Field("voltage", 3, "H", 0.01),
    Field("charge", 5, "H", 0.01), Field("full_capacity", 7, "H", 0.01), Field("design_capacity", 9, "H", 0.01),
    Field("soc", 11, "B"), Field("soh", 12, "B"), Field("cycles", 13, "H"),
    Field("temp_max_no", 27, "B"), Field("temp_max", 28, "H", 0.1, -KELVIN / 10),
    Field("temp_min_no", 30, "B"), Field("temp_min", 31, "H", 0.1, -KELVIN / 10),
    Field("cell_max_no", 37, "B"), Field("cell_max", 38, "H", 0.001),
    Field("cell_min_no", 40, "B"), Field("cell_min", 41, "H", 0.001),
))
PACK_LEN = 43

CELL_HEAD = FieldTable(">", (Field("tag", 0, "B"), Field("voltage", 1, "H", 0.01), Field("cell_count", 3, "B")))


def crc(body: bytes) -> bytes:
    return crc16_modbus(body).to_bytes(2, "big")


def frame(frame_type: bytes, data: bytes) -> bytes:
    """A whole frame (request or reply) of ``frame_type`` carrying ``data`` (at most 255 bytes)."""
    body = bytes((HEAD,)) + frame_type + bytes((len(data),)) + data
    return body + crc(body) + bytes((TAIL,))


def parse(buf: bytes) -> tuple[bytes, bytes] | None:
    """``(type, data)`` of one whole frame, or None if it is not one (wrong marker, length or CRC)."""
    if len(buf) < MIN_LEN or buf[0] != HEAD or buf[-1] != TAIL or len(buf) != MIN_LEN + buf[7]:
        return None
    if crc(buf[:-3]) != buf[-3:-1]:
        return None
    return buf[1:1 + TYPE_LEN], buf[8:-3]


def temp_raw(celsius: float) -> int:
    return round(celsius * 10) + KELVIN


def sys_data(values: Mapping[str, Number]) -> bytes:
    """System reply data (51 bytes): pack_count, current [A, + = charging], voltage [V], charge, design and full
    capacity [Ah], soc, soh [%], cycles, and the cell and temperature extremes with their pack and number."""
    data = bytearray(SYS_LEN)
    SYS_FIELDS.encode(values, data)
    return bytes(data)


def pack_data(values: Mapping[str, Number]) -> bytes:
    """One pack's reply data (43 bytes), the values of :func:`sys_data` in 16 bits (no pack numbers)."""
    data = bytearray(PACK_LEN)
    PACK_FIELDS.encode({"tag": PACK_REPLY_TAG, **values}, data)
    return bytes(data)


def cell_data(voltage: float, cells: Sequence[float], temps: Sequence[float | None]) -> bytes:
    """A pack's cell reply data: its voltage [V], the cell count, then per cell its voltage [V] and one
    temperature slot [degC] (``temps``, in slot order; None or missing: no probe, sent as 0). A pack of fewer
    cells than temperature slots sends the slots after its cells with a zero voltage."""
    data = bytearray(4)
    CELL_HEAD.encode({"tag": PACK_REPLY_TAG, "voltage": voltage, "cell_count": len(cells)}, data)
    for i in range(max(len(cells), len(temps))):
        mv = round(cells[i] * 1000) if i < len(cells) else 0
        t = temps[i] if i < len(temps) else None
        data += mv.to_bytes(2, "big") + (temp_raw(t) if t is not None else 0).to_bytes(2, "big")
    return bytes(data)


def serial_data(serial: str) -> bytes:
    raw = serial.encode("ascii", "replace")[:64]
    return bytes((len(raw),)) + raw

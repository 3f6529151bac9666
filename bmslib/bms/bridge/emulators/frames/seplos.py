"""Frames of the seplos emulator (pure: no asyncio, no bleak), fed plain values; the protocol is described in
:mod:`bmslib.bms.bridge.emulators.seplos`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bmslib.protocol.crc import crc16_modbus
from bmslib.protocol.fields import Field, FieldTable, Number, encode_array

SERVICE_UUID = "0000fff0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000fff1-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000fff2-0000-1000-8000-00805f9b34fb"
#: advertised names of real units (``SP05B2312190075``, ``CSY012405290042``, ...)
NAME_PATTERNS = ("SP??B*", "XZHX*", "CSY*", "SP1??B*", "ST*")
NAME_PREFIX = "SP05B-"  # put before a name no real unit would advertise
READ_INPUT, READ_COILS = 0x04, 0x01
REQUEST_LEN = 8
KELVIN_OFFSET = 2731  # [0.1 K] pack temperatures are sent in 0.1 K
PIB_CELLS = 16
PIB_CELL_TEMPS = 4
#: one Modbus block: function, start register and register count (EIC: coil count / 16)
Block = tuple[int, int, int]
EIA: Block = (READ_INPUT, 0x2000, 0x1A)
EIB: Block = (READ_INPUT, 0x2100, 0x16)
EIC: Block = (READ_COILS, 0x2200, 0x05)
PIA: Block = (READ_INPUT, 0x1000, 0x11)
PIB: Block = (READ_INPUT, 0x1100, 0x1A)
# EIA: the system's summary. Its 32-bit values are sent low word first (see encode_u32_swapped).
EIA_U32 = (("voltage", 0, 0.01, False), ("current", 4, 0.1, True), ("charge", 8, 0.01, False),
           ("full_charge", 12, 0.01, False), ("design_capacity", 20, 0.01, False))

EIA_FIELDS = FieldTable(">", (
    Field("pack_count", 44, "H"), Field("cycles", 46, "H"), Field("soc", 48, "H", 0.1), Field("soh", 50, "H", 0.1),
))

# EIB: cell and temperature extremes of the system (temperatures in 0.1 degC here, not 0.1 K)
EIB_FIELDS = FieldTable(">", (
    Field("cell_max", 0, "H", 0.001), Field("cell_min", 2, "H", 0.001),
    Field("cell_max_no", 4, "H"), Field("cell_min_no", 6, "H"),
    Field("temp_max", 16, "h", 0.1), Field("temp_min", 18, "h", 0.1), Field("temp_avg", 20, "h", 0.1),
    Field("soc", 26, "H", 0.1), Field("soc2", 28, "H", 0.1), Field("cycles", 30, "H"), Field("soh", 32, "H", 0.1),
))

# EIC: status bits; byte 7 holds the FETs (bit 0 discharge, bit 1 charge, bit 2 limit, bit 3 heater)
EIC_FET_BYTE = 7
FET_DISCHARGE, FET_CHARGE = 0x01, 0x02
# PIA: one pack's summary (temperatures in 0.1 K)
PIA_FIELDS = FieldTable(">", (
    Field("voltage", 0, "H", 0.01), Field("current", 2, "h", 0.01), Field("charge", 4, "H", 0.01),
    Field("design_capacity", 6, "H", 0.01), Field("soc", 10, "H", 0.1), Field("soh", 12, "H", 0.1),
    Field("cycles", 14, "H"), Field("cell_avg", 16, "H", 0.001), Field("temp_avg", 18, "H", 0.1, -273.1),
    Field("cell_max", 20, "H", 0.001), Field("cell_min", 22, "H", 0.001),
    Field("temp_max", 24, "H", 0.1, -273.1), Field("temp_min", 26, "H", 0.1, -273.1),
))

# PIB: 16 cell voltages [mV], 4 cell temperatures + 4 reserved, ambient and MOSFET temperature [0.1 K]
PIB_TEMP_AT = 2 * PIB_CELLS
PIB_FIELDS = FieldTable(">", (Field("ambient", 48, "H", 0.1, -273.1), Field("mosfet", 50, "H", 0.1, -273.1)))



def request(device: int, block: Block) -> bytes:
    """The host's read request for ``block`` of ``device``."""
    fct, start, count = block
    wire_count = count * (0x10 if fct == READ_COILS else 1)
    body = bytes((device, fct)) + start.to_bytes(2, "big") + wire_count.to_bytes(2, "big")
    return body + crc16_modbus(body).to_bytes(2, "little")



def parse_request(frame: bytes) -> tuple[int, Block] | None:
    """(device, block) of a well-formed request, else None (counts are returned as registers)."""
    if len(frame) != REQUEST_LEN or crc16_modbus(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
        return None
    device, fct = frame[0], frame[1]
    start, count = int.from_bytes(frame[2:4], "big"), int.from_bytes(frame[4:6], "big")
    if fct == READ_COILS:
        if count % 0x10:
            return None
        count //= 0x10
    return device, (fct, start, count)



def reply(device: int, fct: int, data: bytes) -> bytes:
    """A whole reply frame: header, ``data`` and the Modbus CRC (little-endian)."""
    body = bytes((device, fct, len(data))) + data
    return body + crc16_modbus(body).to_bytes(2, "little")



def error_reply(device: int, fct: int, code: int = 0x02) -> bytes:
    """The Modbus exception reply (code 2: illegal data address)."""
    body = bytes((device, fct | 0x80, code))
    return body + crc16_modbus(body).to_bytes(2, "little")



def encode_u32_swapped(value: int) -> bytes:
    """A 32-bit two's-complement value as Seplos sends it: low 16-bit word first, each word big-endian."""
    raw = value & 0xFFFFFFFF
    return (raw & 0xFFFF).to_bytes(2, "big") + (raw >> 16).to_bytes(2, "big")



def eia_data(values: Mapping[str, Number]) -> bytes:
    """EIA (52 bytes) from values: voltage [V], current [A, + = charging], charge, full_charge and
    design_capacity [Ah], pack_count, cycles, soc and soh [%]."""
    data = bytearray(2 * EIA[2])
    for name, pos, scale, _signed in EIA_U32:
        if name in values:
            data[pos:pos + 4] = encode_u32_swapped(round(values[name] / scale))
    EIA_FIELDS.encode(values, data)
    return bytes(data)



def eib_data(values: Mapping[str, Number]) -> bytes:
    """EIB (44 bytes): cell extremes [V] and their numbers, temperature extremes and mean [degC], soc, cycles."""
    data = bytearray(2 * EIB[2])
    EIB_FIELDS.encode(values, data)
    return bytes(data)



def eic_data(charge_fet: bool, discharge_fet: bool) -> bytes:
    """EIC (10 bytes): no alarm bits, the FET states."""
    data = bytearray(2 * EIC[2])
    data[EIC_FET_BYTE] = (FET_CHARGE if charge_fet else 0) | (FET_DISCHARGE if discharge_fet else 0)
    return bytes(data)



def pia_data(values: Mapping[str, Number]) -> bytes:
    """PIA (34 bytes): one pack's voltage, current (+ = charging), charge, capacity, soc, soh, cycles, extremes."""
    data = bytearray(2 * PIA[2])
    PIA_FIELDS.encode(values, data)
    return bytes(data)



def pib_data(cells: Sequence[float], cell_temps: Sequence[float], ambient: float | None,
             mosfet: float | None) -> bytes:
    """PIB (52 bytes): cells [V] (unused slots 0), cell temperatures [degC] (unused slots 0, which the
    reader skips), ambient and MOSFET temperature."""
    if len(cells) > PIB_CELLS or len(cell_temps) > PIB_CELL_TEMPS:
        raise ValueError(f"at most {PIB_CELLS} cells and {PIB_CELL_TEMPS} cell temperatures")
    data = bytearray(2 * PIB[2])
    data[:2 * len(cells)] = encode_array(cells, ">H", 0.001)
    data[PIB_TEMP_AT:PIB_TEMP_AT + 2 * len(cell_temps)] = encode_array(cell_temps, ">H", 0.1, -273.1)
    PIB_FIELDS.encode({k: v for k, v in (("ambient", ambient), ("mosfet", mosfet)) if v is not None}, data)
    return bytes(data)

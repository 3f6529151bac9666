"""Seplos V3 emulator (aiobmsble plugin ``seplos``): a Modbus-style BMS on the FFF0 service.

The host writes 8-byte Modbus requests ``dev fct addr(2) count(2) crc(2, little-endian)`` to FFF2; the device
answers on FFF1 with ``dev fct bytecount data crc``. Device 0 is the EMS view of the whole system (EIA at
0x2000, EIB at 0x2100 with function 4, EIC at 0x2200 with function 1, whose count is in bits/16), devices
1..n are the packs (PIA at 0x1000, PIB at 0x1100). Registers are big-endian; 32-bit EIA values have their low
word first. This emulator is one pack: the EMS and pack 1 report the same battery. A read of any other
register range gets the Modbus exception reply ``dev fct|0x80 02 crc``.

Offsets come from captured replies (see tests/bms/bridge/captures/seplos.json); bytes whose meaning the
captures do not pin are sent as zero (the test lists them).
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Mapping, Sequence

from bmslib.protocol.crc import crc16_modbus
from bmslib.protocol.fields import Field, FieldTable, Number, encode_array
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

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

"""Daly Modbus "D2" protocol (H/K/M/S series, 2022+), sans-IO.

Modbus RTU with slave address 0xD2 (framing in :mod:`bmslib.bms.daly.protocol.rtu`). A sample is one read
of 62 (or 80) registers at 0x0000; MOSFETs are switched by writing 1/0 to 0x00A5 (charge) and 0x00A6
(discharge), and the BMS confirms by echoing the write.

A read reply does not say which register it starts at, so :func:`decode` tells the blocks apart by
their length: every block the host reads has a different register count (62/80 status, 9 MOSFET
temperature, 32 version). Wire current is positive while charging; the negative field scale turns
it into the model's discharge-positive sign.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bmslib.bms.daly.protocol import rtu as daly_rtu
from bmslib.bms.daly.protocol.rtu import ModbusAssembler, ModbusRequest, ascii_field, read_response, reply_payload
from bmslib.errors import FrameError
from bmslib.model import DeviceInfo, Reading
from bmslib.protocol.fields import (
    Field,
    FieldTable,
    Number,
    bits_to_names,
    decode_array,
    encode_array,
    names_to_bits,
)

ADDRESS = 0xD2

REG_STATUS, REG_MOS_BLOCK, REG_SETTINGS, REG_VERSION, REG_PASSWORD = 0x00, 0x3E, 0x80, 0xA9, 0xC9
REG_CHARGE_MOS, REG_DISCHARGE_MOS = 0xA5, 0xA6
STATUS_REGISTERS = (62, 80)  # 80 adds balance bits/current and MOSFET/board temperature
MOS_BLOCK_REGISTERS, VERSION_REGISTERS, SETTINGS_REGISTERS, PASSWORD_REGISTERS = 9, 32, 41, 3
SWITCH_REGISTERS: Mapping[str, int] = {"charge": REG_CHARGE_MOS, "discharge": REG_DISCHARGE_MOS}

MAX_CELLS, MAX_SENSORS = 32, 8
CELLS_OFFSET, TEMPS_OFFSET, EXT_OFFSET = 0, 64, 124  # payload offsets (register x 2)
STATE_NAMES: Mapping[int, str] = {0: "idle", 1: "charging", 2: "discharging"}

# Status block (read 62 or 80 registers at 0x0000), payload offsets, big-endian registers.
STATUS = FieldTable(">", (
    Field("voltage", 80, "H", 0.1),
    Field("current", 82, "H", -0.1, 3000.0),  # wire (raw - 30000) x 0.1, + = charging; model + = discharging
    Field("soc", 84, "H", 0.1),
    Field("cell_max", 86, "H", 0.001),
    Field("cell_min", 88, "H", 0.001),
    Field("temperature_max", 90, "H", 1.0, -40.0),
    Field("temperature_min", 92, "H", 1.0, -40.0),
    Field("state", 94, "H"),
    Field("charge", 96, "H", 0.1),
    Field("cell_count", 98, "H"),
    Field("sensor_count", 100, "H"),
    Field("cycles", 102, "H"),
    Field("balancing", 104, "H"),
    Field("charge_mos", 106, "H"),
    Field("discharge_mos", 108, "H"),
    Field("cell_average", 110, "H", 0.001),
    Field("cell_delta", 112, "H", 0.001),
    Field("power", 114, "H"),  # unsigned watts: the sign is lost, the model derives V x I instead
    Field("alarms_high", 116, "I"),  # u64 alarm word split in two, so it encodes exactly
    Field("alarms_low", 120, "I"),
))

# Registers 0x3E.. : the tail of an 80-register status read, and the whole 9-register MOS read.
EXT = FieldTable(">", (
    Field("balance_bits_low", 0, "H"),
    Field("balance_bits_high", 2, "H"),
    Field("balance_current", 4, "H", 0.001, -30.0),
    Field("mos_temperature", 8, "H", 1.0, -40.0),
    Field("board_temperature", 10, "H", 1.0, -40.0),
))
# What the MOS/board temperature registers decode to when no sensor is fitted (raw 0x0000 / 0xFFFF).
TEMP_ABSENT = frozenset({-40.0, 0xFFFF - 40.0})

# Alarm word bit n (u64 big-endian over registers 0x3A..0x3D). W = warning, C = critical level.
ALARM_BITS: Mapping[int, str] = {
    16: "charge_mos_overtemperature", 17: "discharge_mos_overtemperature",
    18: "charge_mos_temperature_sensor_failure", 19: "discharge_mos_temperature_sensor_failure",
    20: "charge_mos_adhesion", 21: "discharge_mos_adhesion",
    22: "charge_mos_circuit_fault", 23: "discharge_mos_circuit_fault",
    24: "afe_chip_failure", 25: "cell_collection_offline", 26: "temperature_sensor_failure",
    27: "eeprom_failure", 28: "rtc_failure", 29: "precharge_failed", 30: "vehicle_communication_failure",
    31: "internal_network_failure",
    **{32 + 2 * i + lvl: f"{name}_{level}" for i, name in enumerate((
        "charge_overcurrent", "discharge_overcurrent", "soc_high", "soc_low", "cell_voltage_difference",
        "temperature_difference")) for lvl, level in enumerate(("warning", "critical"))},
    **{48 + 2 * i + lvl: f"{name}_{level}" for i, name in enumerate((
        "cell_overvoltage", "cell_undervoltage", "pack_overvoltage", "pack_undervoltage",
        "charge_overtemperature", "charge_undertemperature", "discharge_overtemperature",
        "discharge_undertemperature")) for lvl, level in enumerate(("warning", "critical"))},
}


def read_request(register: int, count: int) -> bytes:
    return daly_rtu.read_request(register, count, address=ADDRESS)


def status_request(registers: int = 62) -> bytes:
    """Read the status block (62 registers; 80 adds balance and MOSFET/board temperature registers)."""
    if registers not in STATUS_REGISTERS:
        raise ValueError(f"status read is 62 or 80 registers, not {registers}")
    return read_request(REG_STATUS, registers)


MOS_BLOCK_REQUEST = read_request(REG_MOS_BLOCK, MOS_BLOCK_REGISTERS)
VERSION_REQUEST = read_request(REG_VERSION, VERSION_REGISTERS)
SETTINGS_REQUEST = read_request(REG_SETTINGS, SETTINGS_REGISTERS)
PASSWORD_REQUEST = read_request(REG_PASSWORD, PASSWORD_REGISTERS)


def switch_request(switch: str, on: bool) -> bytes:
    """Write 1/0 to the charge (0x00A5) or discharge (0x00A6) MOSFET register."""
    if switch not in SWITCH_REGISTERS:
        raise ValueError(f"no D2 switch called {switch!r}")
    return daly_rtu.write_request(SWITCH_REGISTERS[switch], int(on), address=ADDRESS)


def is_write_echo(request: bytes, reply: bytes) -> bool:
    """True if ``reply`` confirms the switch write ``request`` (the BMS echoes it verbatim)."""
    return daly_rtu.is_write_echo(request, reply)


def assembler() -> ModbusAssembler:
    return ModbusAssembler(ADDRESS)


def parse_request(frame: bytes) -> ModbusRequest | None:
    """Device side: the D2 read or write in ``frame``, or None."""
    return daly_rtu.parse_request(frame, address=ADDRESS)


def optional_temperature(value: Number) -> float | None:
    return None if value in TEMP_ABSENT else float(value)


# --- D2 decoding ---------------------------------------------------------------------------------


def decode_ext(payload: bytes, base: int = 0) -> Reading:
    """Registers 0x3E..0x43: balance bits and current, MOSFET and board temperature."""
    v = EXT.decode(payload, base)
    reading: Reading = {
        "balance_current": round(float(v["balance_current"]), 3),
        "extra": {"balance_bitmask": int(v["balance_bits_low"]) | int(v["balance_bits_high"]) << 16},
    }
    mos = optional_temperature(v["mos_temperature"])
    if mos is not None:
        reading["mos_temperature"] = mos
    board = optional_temperature(v["board_temperature"])
    if board is not None:
        reading["extra"]["board_temperature"] = board
    return reading


def decode_status(payload: bytes) -> Reading:
    v = STATUS.decode(payload)
    cells, sensors = int(v["cell_count"]), int(v["sensor_count"])
    if cells > MAX_CELLS or sensors > MAX_SENSORS:
        raise FrameError(f"implausible status: {cells} cells, {sensors} temperature sensors", payload)
    alarms = int(v["alarms_high"]) << 32 | int(v["alarms_low"])
    state = int(v["state"])
    reading: Reading = {
        "voltage": round(float(v["voltage"]), 1),
        "current": round(float(v["current"]), 1),
        "soc": round(float(v["soc"]), 1),
        "charge": round(float(v["charge"]), 1),
        "cycles": int(v["cycles"]),
        "cell_voltages": tuple(round(c, 3) for c in decode_array(payload, CELLS_OFFSET, cells, ">H", 0.001)),
        "temperatures": tuple(decode_array(payload, TEMPS_OFFSET, sensors, ">H", 1.0, -40.0)),
        "switches": {"charge": bool(v["charge_mos"]), "discharge": bool(v["discharge_mos"])},
        "alarms": bits_to_names(alarms, ALARM_BITS),
        "extra": {
            "state": STATE_NAMES.get(state, f"unknown_{state}"),
            "balancing": bool(v["balancing"]),
            "cell_count": cells,
            "delta_cell_voltage": round(float(v["cell_delta"]), 3),
            "average_cell_voltage": round(float(v["cell_average"]), 3),
            "alarm_bitmask": alarms,
        },
        "device_info": DeviceInfo(manufacturer="Daly"),
    }
    if len(payload) >= 2 * STATUS_REGISTERS[1]:
        ext = decode_ext(payload, EXT_OFFSET)
        reading["extra"].update(ext.pop("extra", {}))
        reading.update(ext)
    return reading


def decode_version(payload: bytes) -> Reading:
    return {"device_info": DeviceInfo(manufacturer="Daly", sw_version=ascii_field(payload[:16]) or None,
                                      hw_version=ascii_field(payload[16:32]) or None)}


def decode(frame: bytes) -> Reading:
    """Decode one assembled D2 reply (see the module docstring for how blocks are told apart)."""
    payload = reply_payload(frame, ADDRESS)
    if payload is None:
        return {}
    registers = len(payload) // 2
    if registers in STATUS_REGISTERS:
        return decode_status(payload)
    if registers == MOS_BLOCK_REGISTERS:
        return decode_ext(payload)
    if registers == VERSION_REGISTERS:
        return decode_version(payload)
    return {}  # settings, password: read by the host but not part of a sample


# --- device side (emulator) ----------------------------------------------------------------------


def encode_status(values: Mapping[str, Number], cells: Sequence[float], temperatures: Sequence[float],
                  alarms: Iterable[str] = (), *, ext: Mapping[str, Number] | None = None,
                  registers: int = 62) -> bytes:
    """Status reply frame from STATUS field values (``current`` in the model's sign), cells [V],
    temperatures [°C] and alarm names; ``ext`` (EXT field values) fills the tail of an 80-register read."""
    if len(cells) > MAX_CELLS or len(temperatures) > MAX_SENSORS:
        raise ValueError("too many cells or temperature sensors for the D2 status block")
    payload = bytearray(2 * registers)
    payload[CELLS_OFFSET:CELLS_OFFSET + 2 * len(cells)] = encode_array(cells, ">H", 0.001)
    payload[TEMPS_OFFSET:TEMPS_OFFSET + 2 * len(temperatures)] = encode_array(temperatures, ">H", 1.0, -40.0)
    mask = names_to_bits(alarms, ALARM_BITS)
    STATUS.encode({**values, "cell_count": len(cells), "sensor_count": len(temperatures),
                   "alarms_high": mask >> 32, "alarms_low": mask & 0xFFFFFFFF}, payload)
    if registers == STATUS_REGISTERS[1]:
        EXT.encode({"balance_current": 0.0, "mos_temperature": -40.0, "board_temperature": -40.0,
                    **(ext or {})}, payload, EXT_OFFSET)
    return read_response(bytes(payload), address=ADDRESS)


def encode_mos_block(ext: Mapping[str, Number]) -> bytes:
    """Reply to the 9-register read at 0x3E from EXT field values (absent temperatures: -40)."""
    payload = bytearray(2 * MOS_BLOCK_REGISTERS)
    EXT.encode({"balance_current": 0.0, "mos_temperature": -40.0, "board_temperature": -40.0, **ext}, payload)
    return read_response(bytes(payload), address=ADDRESS)


def encode_version(sw_version: str, hw_version: str) -> bytes:
    payload = b"".join(v.encode("ascii")[:16].ljust(16, b"\0") for v in (sw_version, hw_version))
    return read_response(payload.ljust(2 * VERSION_REGISTERS, b"\0"), address=ADDRESS)

"""Daly Modbus "0x81" variant (ESS-DL-BMS / Sun Deposit), sans-IO, read-only.

Same Modbus RTU framing as D2 (:mod:`bmslib.bms.daly.protocol.rtu`), but requests are addressed to 0x81
and replies come from 0x51, and the register map differs: 48 cell slots, so everything after the
cells moves. A sample is two reads: RT1 (64 registers at 0x0000: cells, temperatures, voltage,
current, SoC, counts) and RT2 (62 registers at 0x0041: state, charge, cycles, MOSFETs, MOSFET and
board temperature). No source documents writable MOSFET registers for this variant, so it offers no
switches. Wire current is positive while charging, as on D2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bmslib.bms.daly.protocol import rtu as daly_rtu
from bmslib.bms.daly.protocol.modbus import STATE_NAMES
from bmslib.bms.daly.protocol.rtu import ModbusRequest, read_request, read_response, reply_payload
from bmslib.errors import FrameError
from bmslib.model import DeviceInfo, Reading
from bmslib.protocol.fields import Field, FieldTable, Number, decode_array, encode_array

REQUEST_ADDRESS, REPLY_ADDRESS = 0x81, 0x51
REG_RT1, RT1_REGISTERS = 0x00, 64
REG_RT2, RT2_REGISTERS = 0x41, 62
MAX_CELLS, MAX_SENSORS = 48, 8
CELLS_OFFSET, TEMPS_OFFSET = 0, 96  # payload offsets of registers 0x00 and 0x30

RT1_REQUEST = read_request(REG_RT1, RT1_REGISTERS, address=REQUEST_ADDRESS)
RT2_REQUEST = read_request(REG_RT2, RT2_REGISTERS, address=REQUEST_ADDRESS)

# RT1: payload offset = register x 2.
RT1 = FieldTable(">", (
    Field("voltage", 112, "H", 0.1),  # 0x38
    Field("current", 114, "H", -0.1, 3000.0),  # 0x39, wire + = charging; model + = discharging
    Field("soc", 116, "H", 0.1),  # 0x3A
    Field("cell_count", 120, "H"),  # 0x3C
    Field("sensor_count", 122, "H"),  # 0x3D
))

# RT2: payload offset = (register - 0x41) x 2.
RT2 = FieldTable(">", (
    Field("state", 14, "H"),  # 0x48
    Field("charge", 20, "H", 0.1),  # 0x4B
    Field("cycles", 22, "H"),  # 0x4C
    Field("balancing", 24, "H"),  # 0x4D: 0 off, 1 passive, 2 active
    Field("charge_mos", 34, "H"),  # 0x52
    Field("discharge_mos", 36, "H"),  # 0x53
    Field("precharge_mos", 38, "H"),  # 0x54
    Field("heating_mos", 40, "H"),  # 0x55
    Field("mos_temperature", 50, "H", 1.0, -40.0),  # 0x5A
    Field("board_temperature", 52, "H", 1.0, -40.0),  # 0x5B
))


def decode_rt1(payload: bytes) -> Reading:
    v = RT1.decode(payload)
    cells, sensors = int(v["cell_count"]), int(v["sensor_count"])
    if cells > MAX_CELLS or sensors > MAX_SENSORS:
        raise FrameError(f"implausible status: {cells} cells, {sensors} temperature sensors", payload)
    return {
        "voltage": round(float(v["voltage"]), 1),
        "current": round(float(v["current"]), 1),
        "soc": round(float(v["soc"]), 1),
        "cell_voltages": tuple(round(c, 3) for c in decode_array(payload, CELLS_OFFSET, cells, ">H", 0.001)),
        "temperatures": tuple(decode_array(payload, TEMPS_OFFSET, sensors, ">H", 1.0, -40.0)),
        "extra": {"cell_count": cells},
        "device_info": DeviceInfo(manufacturer="Daly"),
    }


def decode_rt2(payload: bytes) -> Reading:
    v = RT2.decode(payload)
    state = int(v["state"])
    return {
        "charge": round(float(v["charge"]), 1),
        "cycles": int(v["cycles"]),
        "mos_temperature": float(v["mos_temperature"]),
        "switches": {"charge": bool(v["charge_mos"]), "discharge": bool(v["discharge_mos"])},
        "extra": {
            "state": STATE_NAMES.get(state, f"unknown_{state}"),
            "balancing": bool(v["balancing"]),
            "precharge_mos": bool(v["precharge_mos"]),
            "heating_mos": bool(v["heating_mos"]),
            "board_temperature": float(v["board_temperature"]),
        },
    }


def decode(frame: bytes) -> Reading:
    """Decode one assembled 0x81-variant reply; RT1 and RT2 are told apart by their length."""
    payload = reply_payload(frame, REPLY_ADDRESS)
    if payload is None:
        return {}
    registers = len(payload) // 2
    if registers == RT1_REGISTERS:
        return decode_rt1(payload)
    if registers == RT2_REGISTERS:
        return decode_rt2(payload)
    return {}


# --- device side (emulator) ----------------------------------------------------------------------


def parse_request(frame: bytes) -> ModbusRequest | None:
    """Device side: the read (or write) addressed to 0x81 in ``frame``, or None."""
    return daly_rtu.parse_request(frame, address=REQUEST_ADDRESS)


def encode_rt1(values: Mapping[str, Number], cells: Sequence[float], temperatures: Sequence[float]) -> bytes:
    """RT1 reply frame from RT1 field values (``current`` in the model's sign), cells and temperatures."""
    if len(cells) > MAX_CELLS or len(temperatures) > MAX_SENSORS:
        raise ValueError("too many cells or temperature sensors for the 0x81 RT1 block")
    payload = bytearray(2 * RT1_REGISTERS)
    payload[CELLS_OFFSET:CELLS_OFFSET + 2 * len(cells)] = encode_array(cells, ">H", 0.001)
    payload[TEMPS_OFFSET:TEMPS_OFFSET + 2 * len(temperatures)] = encode_array(temperatures, ">H", 1.0, -40.0)
    RT1.encode({**values, "cell_count": len(cells), "sensor_count": len(temperatures)}, payload)
    return read_response(bytes(payload), address=REPLY_ADDRESS)


def encode_rt2(values: Mapping[str, Number]) -> bytes:
    """RT2 reply frame from RT2 field values."""
    payload = bytearray(2 * RT2_REGISTERS)
    RT2.encode({"mos_temperature": -40.0, "board_temperature": -40.0, **values}, payload)
    return read_response(bytes(payload), address=REPLY_ADDRESS)

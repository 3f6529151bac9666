"""ANT BMS 2021 protocol: the data frames (status 0x11, device info 0x12) as field tables, their
decoder, and the device-side encoders built from the same tables.

Current sign: the wire value is positive while discharging. Two real captures show it: a 16S unit whose
remaining capacity falls and whose discharged-Ah counter rises while it reports +0.3 … +1.0 A, and a
7S unit reporting battery status "charge" with -2.3 A and -63 W. That is the model's sign. Where the
battery status byte names a direction (2 charge, 3 discharge) it decides: see :func:`wire_polarity`.
Power takes the sign of the current.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from bmslib.bms.ant.protocol import codes
from bmslib.bms.ant.protocol.frames_2021 import (
    DEVICE_INFO_ADDRESS,
    DEVICE_INFO_TRAILER,
    END,
    REPLY_DEVICE_INFO,
    REPLY_STATUS,
    build_frame,
    check_frame,
)
from bmslib.errors import FrameError
from bmslib.model import DeviceInfo, Reading
from bmslib.protocol.fields import Field, FieldTable, Number, decode_array, encode_array

MAX_CELLS, MAX_TEMPERATURES = 32, 8
CELLS_OFFSET = 34

# Status frame (0x11), fixed part.
STATUS_HEAD = FieldTable("<", (
    Field("permissions", 6, "B"),
    Field("battery_status", 7, "B"),
    Field("temperature_count", 8, "B"),
    Field("cell_count", 9, "B"),
    Field("protection_bitmask", 10, "Q"),
    Field("warning_bitmask", 18, "Q"),
    Field("balancing_flags", 26, "Q"),
))
# Status frame, offsets relative to B = 34 + 2 * cells + 2 * temperature probes.
STATUS_TAIL = FieldTable("<", (
    Field("mos_temperature", 0, "h"),
    Field("balancer_temperature", 2, "h"),
    Field("voltage", 4, "H", 0.01),
    Field("current", 6, "h", 0.1),  # wire + = discharging = model sign (see module docstring)
    Field("soc", 8, "H"),
    Field("soh", 10, "H"),
    Field("charge_fet", 12, "B"),
    Field("discharge_fet", 13, "B"),
    Field("balancer", 14, "B"),
    Field("design_capacity", 16, "I", 1e-6),
    Field("remaining_capacity", 20, "I", 1e-6),
    Field("total_cycle_capacity", 24, "I", 0.001),
    Field("power", 28, "i"),
    Field("total_runtime", 32, "I"),
    Field("balancing_bitmask", 36, "I"),
    Field("max_cell_voltage", 40, "H", 0.001),
    Field("max_cell_index", 42, "H"),
    Field("min_cell_voltage", 44, "H", 0.001),
    Field("min_cell_index", 46, "H"),
    Field("delta_cell_voltage", 48, "H", 0.001),
    Field("average_cell_voltage", 50, "H", 0.001),
    Field("battery_type", 60, "H"),
    Field("total_discharged", 62, "I", 0.001),
    Field("total_charged", 66, "I", 0.001),
    Field("total_discharge_time", 70, "I"),
    Field("total_charge_time", 74, "I"),
))
STATUS_TAIL_SIZE = 78
HW_SLICE, SW_SLICE = slice(6, 22), slice(22, 38)


def wire_polarity(battery_status: int, raw_current: float) -> int | None:
    """What one status frame says about the wire sign: +1 if positive means discharging, -1 if it
    means charging, None if the battery status names no direction or the current is zero."""
    if raw_current == 0 or battery_status not in (codes.STATUS_CHARGE, codes.STATUS_DISCHARGE):
        return None
    return 1 if (raw_current > 0) == (battery_status == codes.STATUS_DISCHARGE) else -1


def status_polarity(frame: bytes) -> int | None:
    """:func:`wire_polarity` of a status frame (None for other frames)."""
    if frame[2:3] != bytes((REPLY_STATUS,)):
        return None
    _cells, _temps, base = status_layout(frame)
    return wire_polarity(frame[7], float(STATUS_TAIL.decode(frame, base)["current"]))


def status_layout(frame: bytes) -> tuple[int, int, int]:
    """``(cells, temperature probes, B)`` of a status frame; raises :class:`FrameError` if implausible."""
    cells, temps = frame[9], frame[8]
    if cells > MAX_CELLS or temps > MAX_TEMPERATURES:
        raise FrameError(f"implausible status frame: {cells} cells, {temps} temperature probes", frame)
    base = CELLS_OFFSET + 2 * cells + 2 * temps
    if 6 + frame[5] < base + STATUS_TAIL_SIZE:
        raise FrameError(f"status frame too short for {cells} cells and {temps} probes", frame)
    return cells, temps, base


def decode_status(frame: bytes, polarity: int = 1) -> Reading:
    """Decode a status frame. ``polarity`` is the wire sign to assume (+1: positive = discharging)
    when the frame's battery status names no direction."""
    cells, temps, base = status_layout(frame)
    h = STATUS_HEAD.decode(frame)
    t = STATUS_TAIL.decode(frame, base)
    status = int(h["battery_status"])
    sign = wire_polarity(status, float(t["current"])) or polarity
    current = round(float(t["current"]) * sign, 1) + 0.0
    power = abs(float(t["power"])) * (math.copysign(1.0, current) if current else sign)
    design, remaining = round(float(t["design_capacity"]), 6), round(float(t["remaining_capacity"]), 6)
    charge_fet, discharge_fet, balancer = int(t["charge_fet"]), int(t["discharge_fet"]), int(t["balancer"])
    fets = codes.fet_reading(charge_fet, discharge_fet, balancer)
    reading: Reading = {
        "voltage": round(float(t["voltage"]), 2),
        "current": current,
        "power": power + 0.0,
        "soc": float(t["soc"]),
        "soh": float(t["soh"]),
        "charge": remaining,
        "cell_voltages": tuple(round(v, 3) for v in decode_array(frame, CELLS_OFFSET, cells, "<H", 0.001)),
        "temperatures": codes.present_temperatures(
            decode_array(frame, CELLS_OFFSET + 2 * cells, temps, "<h")),
        "switches": fets["switches"],
        "alarms": codes.fet_alarms(charge_fet, discharge_fet, balancer, status),
        "uptime": float(t["total_runtime"]),
        "extra": {
            **fets["extra"],
            "battery_status": codes.code_name(status, codes.BATTERY_STATUS, "code"),
            "battery_type": codes.code_name(int(t["battery_type"]), codes.BATTERY_TYPE, "code"),
            "cell_count": cells,
            "temperature_sensor_count": temps,
            "balancing": int(t["balancing_bitmask"]) != 0,
            "balancing_bitmask": int(t["balancing_bitmask"]),
            "protection_bitmask": int(h["protection_bitmask"]),
            "warning_bitmask": int(h["warning_bitmask"]),
            "balancing_flags": int(h["balancing_flags"]),
            "permissions": int(h["permissions"]),
            "total_cycle_capacity": round(float(t["total_cycle_capacity"]), 3),
            "total_discharged": round(float(t["total_discharged"]), 3),
            "total_charged": round(float(t["total_charged"]), 3),
            "total_discharge_time": int(t["total_discharge_time"]),
            "total_charge_time": int(t["total_charge_time"]),
        },
    }
    if int(t["mos_temperature"]) != codes.ABSENT_PROBE:
        reading["mos_temperature"] = float(t["mos_temperature"])
    if int(t["balancer_temperature"]) != codes.ABSENT_PROBE:
        reading["extra"]["balancer_temperature"] = float(t["balancer_temperature"])
    n_cycles = codes.cycles(float(t["total_cycle_capacity"]), design)
    if n_cycles is not None:
        reading["capacity"] = design
        reading["cycles"] = n_cycles
    return reading


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("ascii", "replace").strip()


def decode_device_info(frame: bytes) -> Reading:
    if len(frame) < SW_SLICE.stop:
        raise FrameError("device-info frame too short", frame)
    model, sw = _text(frame[HW_SLICE]), _text(frame[SW_SLICE])
    return {"device_info": DeviceInfo(manufacturer="ANT", model=model or None, sw_version=sw or None)}


def decode(frame: bytes, polarity: int = 1) -> Reading:
    """Decode one assembled frame. Frames without sample data (acks, settings) decode to ``{}``."""
    func, addr, _data = check_frame(frame)
    if func == REPLY_STATUS:
        return decode_status(frame, polarity)
    if func == REPLY_DEVICE_INFO and addr == DEVICE_INFO_ADDRESS:
        return decode_device_info(frame)
    return {}


# --- device side (emulator) -------------------------------------------------------------------


def encode_status(values: Mapping[str, Number], cells: Sequence[float],
                  temperatures: Sequence[float]) -> bytes:
    """Status frame (0x11) from table values (wire sign), cell voltages and probe temperatures."""
    if len(cells) > MAX_CELLS or len(temperatures) > MAX_TEMPERATURES:
        raise ValueError(f"{len(cells)} cells / {len(temperatures)} probes exceed the frame layout")
    base = CELLS_OFFSET + 2 * len(cells) + 2 * len(temperatures)
    body = bytearray(base + STATUS_TAIL_SIZE)
    STATUS_HEAD.encode({**values, "cell_count": len(cells), "temperature_count": len(temperatures)}, body)
    body[CELLS_OFFSET:base] = encode_array(cells, "<H", 0.001) + encode_array(temperatures, "<h")
    STATUS_TAIL.encode(values, body, base)
    return build_frame(REPLY_STATUS, 0x0000, bytes(body[6:]))


def encode_device_info(model: str, sw_version: str, trailer: bytes = DEVICE_INFO_TRAILER) -> bytes:
    """Device-info reply (0x12 at 0x026C), with the uncounted bytes real units send after the CRC."""
    data = model.encode("ascii")[:16].ljust(16, b"\x00") + sw_version.encode("ascii")[:16].ljust(16, b"\x00")
    frame = build_frame(REPLY_DEVICE_INFO, DEVICE_INFO_ADDRESS, data)
    return frame[:-2] + trailer + END

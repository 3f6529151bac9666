"""JK02 cell-info (type 0x02) and settings (type 0x01) frames, 24S and 32S layouts. Sans-IO.

The 32S layout has 32 cell slots: the cell/resistance block grows by 16 bytes and every field
after it moves by 32; a few fields exist in only one layout (MOSFET temperature, error bitmask).
Wire current is positive while charging; the table's negative scale gives the model's
discharge-positive sign. Decoding rejects implausible values (:func:`check_cell_info`), because
the frame checksum is a plain byte sum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from bmslib.bms.jk.protocol.framing import TYPE_CELL_INFO, TYPE_SETTINGS, FrameLayout, response_frame
from bmslib.errors import FrameError
from bmslib.model import ExtraValue, Reading
from bmslib.protocol.fields import Field, FieldTable, Number, bits_to_names, decode_array, encode_array

JK02 = (FrameLayout.JK02_24S, FrameLayout.JK02_32S)
SLOTS = {FrameLayout.JK02_24S: 24, FrameLayout.JK02_32S: 32}
CELLS_AT = 6
ABSENT_TEMPERATURE = -200.0  # raw -2000: sensor not fitted
EXTENDED_PROBES_SW_MAJOR = 14  # 32S firmware from 14.x reports probes at 256/258
CHARGE_STATUS_SW_MAJOR = 15  # 32S firmware from 15.x reports bulk/absorption/float at 280


def _cell_info_table(layout: FrameLayout) -> FieldTable:
    wide = layout is FrameLayout.JK02_32S
    h, o = (16, 32) if wide else (0, 0)
    common = (
        Field("cell_mask", 54 + h, "I"),
        Field("cell_average", 58 + h, "H", 0.001),
        Field("cell_delta", 60 + h, "H", 0.001),
        Field("wire_resistance_warning", 114 + o, "I"),
        Field("voltage", 118 + o, "I", 0.001),
        Field("current", 126 + o, "i", -0.001),  # wire: + = charging; model: + = discharging
        Field("t1", 130 + o, "h", 0.1),
        Field("t2", 132 + o, "h", 0.1),
        Field("balance_current", 138 + o, "h", 0.001),
        Field("balance_action", 140 + o, "B"),
        Field("soc", 141 + o, "B"),
        Field("charge", 142 + o, "I", 0.001),
        Field("aged_capacity", 146 + o, "I", 0.001),
        Field("cycles", 150 + o, "I"),
        Field("cycle_capacity", 154 + o, "I", 0.001),
        Field("soh", 158 + o, "B"),
        Field("uptime", 162 + o, "I"),
        Field("charge_fet", 166 + o, "B"),
        Field("discharge_fet", 167 + o, "B"),
        Field("temperature_presence", 182 + o, "B"),
        Field("heating", 183 + o, "B"),
    )
    if not wide:
        return FieldTable("<", (*common, Field("mos_temperature", 134, "h", 0.1), Field("errors", 136, "H")))
    return FieldTable("<", (
        *common,
        Field("mos_temperature", 144, "h", 0.1),
        Field("errors", 166, "I"),
        Field("t5", 254, "h", 0.1),
        Field("t3", 256, "h", 0.1),
        Field("t4", 258, "h", 0.1),
        Field("charge_status", 280, "B"),
    ))


CELL_INFO = {layout: _cell_info_table(layout) for layout in JK02}

# Presence bit of each temperature field (bit set = sensor fitted). 24S: T1, T2, MOS. 32S: MOS,
# T1, T2, then the probes at 254/256/258 in that order (aiobmsble's mapping; esphome labels
# bits 3 and 5 the other way round, which only matters when exactly one of them is clear).
PRESENCE_BITS = {
    FrameLayout.JK02_24S: {"t1": 0, "t2": 1, "mos_temperature": 2},
    FrameLayout.JK02_32S: {"mos_temperature": 0, "t1": 1, "t2": 2, "t5": 3, "t3": 4, "t4": 5},
}
PROBES = ("t1", "t2", "t3", "t4")  # cell/pack probes, in the order they are reported

ERROR_BITS: Mapping[int, str] = {
    0: "wire_resistance", 1: "mos_overtemperature", 2: "cell_count_mismatch", 3: "current_sensor_anomaly",
    4: "battery_full", 5: "pack_overvoltage", 6: "charge_overcurrent", 7: "charge_short_circuit",
    8: "charge_overtemperature", 9: "charge_undertemperature", 10: "coprocessor_comm_error",
    11: "cell_undervoltage", 12: "pack_undervoltage", 13: "discharge_overcurrent",
    14: "discharge_short_circuit", 15: "discharge_overtemperature", 16: "charge_mos_abnormal",
    17: "discharge_mos_abnormal", 18: "gps_disconnected", 19: "password_change_due",
    20: "discharge_on_failed", 21: "battery_overtemperature", 22: "temperature_sensor_anomaly",
    23: "parallel_module_anomaly", 24: "scp_release_failed", 25: "discharge_ocp2", 26: "discharge_ocp3",
    27: "discharge_undertemperature", 28: "gps_remote_lock",
}
# States, not faults: reported as extra flags instead of alarms.
NOT_ALARMS = frozenset({"battery_full", "password_change_due"})

BALANCE_ACTIONS = {0: "off", 1: "charging", 2: "discharging"}
CHARGE_STATUS = {0: "bulk", 1: "absorption", 2: "float"}

# Plausibility limits (a spliced frame passes the byte-sum checksum 1 time in 256).
CELL_MAX_V = 5.0
TEMPERATURE_RANGE = (-50.0, 150.0)
MAX_CURRENT_A = 2000.0


def _round(values: Mapping[str, Number], table: FieldTable) -> dict[str, Number]:
    """Decoded values rounded to the resolution of their field (0.001 -> 3 decimals)."""
    out: dict[str, Number] = {}
    for name, v in values.items():
        scale = abs(table[name].scale)
        out[name] = v if isinstance(v, int) else round(v, max(0, round(-math.log10(scale))))
    return out


def _cells(frame: bytes, layout: FrameLayout, mask: int) -> tuple[list[float], list[float]]:
    """Voltages and resistances of the enabled cells (the mask; if it is empty, up to the last
    non-zero voltage)."""
    slots = SLOTS[layout]
    volts = [round(v, 3) for v in decode_array(frame, CELLS_AT, slots, "<H", 0.001)]
    res_at = CELLS_AT + 2 * slots + 10
    ohms = [round(v, 3) for v in decode_array(frame, res_at, slots, "<H", 0.001)]
    if mask:
        idx = [i for i in range(slots) if mask >> i & 1]
    else:
        idx = list(range(max((i + 1 for i, v in enumerate(volts) if v), default=0)))
    return [volts[i] for i in idx], [ohms[i] for i in idx]


def check_cell_info(v: Mapping[str, Number], cells: Sequence[float], temps: Mapping[str, float],
                    layout: FrameLayout, frame: bytes) -> None:
    """Raise :class:`FrameError` if the values cannot come from a real battery."""
    problem = None
    total = sum(cells)
    if int(v["cell_mask"]) >> SLOTS[layout]:
        problem = f"cell mask 0x{int(v['cell_mask']):x} beyond {SLOTS[layout]} slots"
    elif not cells:
        problem = "no cells"
    elif any(not 0.0 <= c <= CELL_MAX_V for c in cells):
        problem = f"cell voltage outside 0..{CELL_MAX_V} V"
    elif abs(float(v["voltage"]) - total) > max(1.0, 0.05 * total):
        problem = f"pack voltage {v['voltage']} V far from the cell sum {total:.3f} V"
    elif int(v["soc"]) > 100 or (layout is FrameLayout.JK02_32S and int(v["soh"]) > 100):
        problem = f"SoC {v['soc']} / SoH {v['soh']} above 100 %"
    elif abs(float(v["current"])) > MAX_CURRENT_A:
        problem = f"current {v['current']} A"
    elif any(not TEMPERATURE_RANGE[0] <= t <= TEMPERATURE_RANGE[1] for t in temps.values()):
        problem = f"temperature outside {TEMPERATURE_RANGE} °C: {temps}"
    if problem:
        raise FrameError(f"implausible {layout} cell info: {problem}", frame)


def decode_cell_info(frame: bytes, layout: FrameLayout, sw_major: int | None = None) -> Reading:
    """Decode a checked cell-info frame. ``sw_major`` (from the device info) enables the fields of
    newer 32S firmware (probes at 256/258 from 14.x, charge status from 15.x)."""
    table = CELL_INFO[layout]
    v = _round(table.decode(frame), table)
    cells, ohms = _cells(frame, layout, int(v["cell_mask"]))
    presence = int(v["temperature_presence"])
    wide = layout is FrameLayout.JK02_32S
    newer = wide and sw_major is not None and sw_major >= EXTENDED_PROBES_SW_MAJOR
    temps = {name: float(v[name]) for name, bit in PRESENCE_BITS[layout].items()
             if presence >> bit & 1 and v[name] != ABSENT_TEMPERATURE and (newer or name not in ("t3", "t4"))}
    check_cell_info(v, cells, temps, layout, frame)
    errors = int(v["errors"])
    alarms = bits_to_names(errors, ERROR_BITS)
    action = int(v["balance_action"])
    reading: Reading = {
        "voltage": float(v["voltage"]),
        "current": float(v["current"]) + 0.0,
        "soc": float(v["soc"]),
        "charge": float(v["charge"]),
        "cycles": int(v["cycles"]),
        "cell_voltages": tuple(cells),
        "balance_current": float(v["balance_current"]),
        "switches": {"charge": bool(v["charge_fet"]), "discharge": bool(v["discharge_fet"])},
        "alarms": tuple(a for a in alarms if a not in NOT_ALARMS),
        "uptime": float(v["uptime"]),
        "extra": {
            "cell_count": len(cells),
            "aged_capacity": float(v["aged_capacity"]),
            "cycle_capacity": float(v["cycle_capacity"]),
            "balance_action": BALANCE_ACTIONS.get(action, f"code_{action}"),
            "balancing": action != 0,
            "heating": bool(v["heating"]),
            "error_bitmask": errors,
            "battery_full": "battery_full" in alarms,
            "temperature_presence": presence,
            "wire_resistance_warning": int(v["wire_resistance_warning"]),
            **{f"cell_resistance_{i}": r for i, r in enumerate(ohms, 1)},
        },
    }
    probes = tuple(temps[name] for name in PROBES if name in temps)
    if probes:
        reading["temperatures"] = probes
    if "mos_temperature" in temps:
        reading["mos_temperature"] = temps["mos_temperature"]
    if wide:
        reading["soh"] = float(v["soh"])
        if "t5" in temps:
            reading["extra"]["temperature_t5"] = temps["t5"]
        if sw_major is not None and sw_major >= CHARGE_STATUS_SW_MAJOR:
            status = int(v["charge_status"])
            reading["extra"]["charge_status"] = CHARGE_STATUS.get(status, f"code_{status}")
    return reading


# Settings frame: the same offsets in both JK02 layouts (u32le unless noted).
_MILLI = (
    "smart_sleep_voltage", "cell_uvp", "cell_uvp_recovery", "cell_ovp", "cell_ovp_recovery",
    "balance_trigger_voltage", "soc_100_voltage", "soc_0_voltage", "request_charge_voltage",
    "request_float_voltage", "power_off_voltage", "max_charge_current", "charge_ocp_delay",
    "charge_ocp_recovery", "max_discharge_current", "discharge_ocp_delay", "discharge_ocp_recovery",
    "scp_recovery", "max_balance_current",
)
_SECONDS = frozenset({"charge_ocp_delay", "charge_ocp_recovery", "discharge_ocp_delay",
                      "discharge_ocp_recovery", "scp_recovery"})
SETTINGS = FieldTable("<", (
    *(Field(name, 6 + 4 * i, "I", 1.0 if name in _SECONDS else 0.001) for i, name in enumerate(_MILLI)),
    Field("charge_otp", 82, "i", 0.1),
    Field("charge_otp_recovery", 86, "i", 0.1),
    Field("discharge_otp", 90, "i", 0.1),
    Field("discharge_otp_recovery", 94, "i", 0.1),
    Field("charge_utp", 98, "i", 0.1),
    Field("charge_utp_recovery", 102, "i", 0.1),
    Field("mos_otp", 106, "i", 0.1),
    Field("mos_otp_recovery", 110, "i", 0.1),
    Field("cell_count_setting", 114, "B"),
    Field("charge_enabled", 118, "B"),
    Field("discharge_enabled", 122, "B"),
    Field("balance_enabled", 126, "B"),
    Field("capacity", 130, "I", 0.001),
    Field("scp_delay_us", 134, "I"),
    Field("balance_start_voltage", 138, "I", 0.001),
))


def decode_settings(frame: bytes) -> Reading:
    """Decode a checked JK02 settings frame: the user capacity, the balancer switch, the rest as extras.

    ``capacity`` is left out when the user has not set one (0)."""
    v = _round(SETTINGS.decode(frame), SETTINGS)
    if int(v["cell_count_setting"]) > SLOTS[FrameLayout.JK02_32S]:
        raise FrameError(f"implausible settings: {v['cell_count_setting']} cells", frame)
    extra: dict[str, ExtraValue] = {k: x for k, x in v.items() if k not in ("capacity", "balance_enabled")}
    extra["charge_enabled"] = bool(v["charge_enabled"])
    extra["discharge_enabled"] = bool(v["discharge_enabled"])
    reading: Reading = {"switches": {"balance": bool(v["balance_enabled"])}, "extra": extra}
    if float(v["capacity"]) > 0:
        reading["capacity"] = float(v["capacity"])
    return reading


# --- device side (emulator) -------------------------------------------------------------------


def encode_cell_info(layout: FrameLayout, values: Mapping[str, Number], cells: Sequence[float],
                     resistances: Sequence[float] = (), counter: int = 0) -> bytes:
    """A cell-info frame from table values (names of :data:`CELL_INFO`, ``current`` in the model's
    sign, ``errors`` a bitmask), cell voltages and resistances [Ω]. Defaults: ``cell_mask`` = the
    given cells, ``voltage`` = their sum, ``temperature_presence`` = the temperature fields given."""
    slots = SLOTS[layout]
    if len(cells) > slots or len(resistances) > slots:
        raise ValueError(f"{layout} has {slots} cell slots")
    buf = bytearray(300)
    buf[CELLS_AT:CELLS_AT + 2 * len(cells)] = encode_array(cells, "<H", 0.001)
    res_at = CELLS_AT + 2 * slots + 10
    buf[res_at:res_at + 2 * len(resistances)] = encode_array(resistances, "<H", 0.001)
    presence = sum(1 << bit for name, bit in PRESENCE_BITS[layout].items() if name in values)
    defaults = {"cell_mask": (1 << len(cells)) - 1, "voltage": round(sum(cells), 3),
                "temperature_presence": presence}
    CELL_INFO[layout].encode({**defaults, **values}, buf)
    return response_frame(TYPE_CELL_INFO, buf, counter)


def encode_settings(values: Mapping[str, Number], counter: int = 0) -> bytes:
    """A JK02 settings frame from values named as in :data:`SETTINGS`."""
    buf = bytearray(300)
    SETTINGS.encode(values, buf)
    return response_frame(TYPE_SETTINGS, buf, counter)

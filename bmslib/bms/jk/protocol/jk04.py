"""JK04 cell-info (type 0x02) and settings (type 0x01) frames: old JK active balancers. Sans-IO.

Same envelope and commands as JK02, but values are IEEE-754 float32 little-endian and there is
no pack voltage, current or SoC (the pack voltage is the sum of the cells, derived by the model).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from bmslib.bms.jk.protocol.framing import TYPE_CELL_INFO, TYPE_SETTINGS, response_frame
from bmslib.bms.jk.protocol.jk02 import BALANCE_ACTIONS, CELL_MAX_V
from bmslib.errors import FrameError
from bmslib.model import ExtraValue, Reading
from bmslib.protocol.fields import Field, FieldTable, Number, decode_array, encode_array

SLOTS = 24
CELLS_AT, RESISTANCES_AT = 6, 102
DIGITS = 4  # float32 values are reported with 0.1 mV / 0.1 mΩ resolution
MIN_CELL_V = 0.001  # a non-zero reading below this is float garbage, not an ADC value
MAX_BALANCE_CURRENT_A = 100.0

CELL_INFO = FieldTable("<", (
    Field("cell_average", 202, "f"),
    Field("cell_delta", 206, "f"),
    Field("balance_action", 220, "B"),
    Field("balance_current", 222, "f"),
    Field("uptime", 286, "I"),
))

SETTINGS = FieldTable("<", (
    Field("cell_count_setting", 34, "B"),
    Field("power_off_voltage", 38, "f"),
    Field("voltage_calibration", 74, "f"),  # ADC reference
    Field("balance_start_voltage", 98, "f"),
    Field("balance_trigger_voltage", 106, "f"),
    Field("max_balance_current", 110, "f"),
    Field("balance_enabled", 114, "B"),
))


def _rounded(values: Mapping[str, Number]) -> dict[str, Number]:
    return {k: v if isinstance(v, int) else round(v, DIGITS) for k, v in values.items()}


def check_cell_info(v: Mapping[str, Number], cells: Sequence[float], resistances: Sequence[float],
                    frame: bytes) -> None:
    """Raise :class:`FrameError` if the values cannot come from a real balancer."""
    present = [c for c in cells if c]
    problem = None
    if not all(math.isfinite(float(x)) for x in (*cells, *resistances, *v.values())):
        problem = "non-finite value"
    elif not present:
        problem = "no cells"
    elif any(not (c == 0 or MIN_CELL_V <= c <= CELL_MAX_V) for c in cells):
        problem = f"cell voltage outside 0..{CELL_MAX_V} V"
    elif abs(float(v["cell_average"]) - sum(present) / len(present)) > max(0.05, 0.02 * max(present)):
        problem = f"average {v['cell_average']} V does not match the cells"
    elif abs(float(v["balance_current"])) > MAX_BALANCE_CURRENT_A:
        problem = f"balance current {v['balance_current']} A"
    if problem:
        raise FrameError(f"implausible jk04 cell info: {problem}", frame)


def decode_cell_info(frame: bytes) -> Reading:
    """Decode a checked JK04 cell-info frame. Cells are reported up to the last non-zero slot."""
    raw = CELL_INFO.decode(frame)
    volts = decode_array(frame, CELLS_AT, SLOTS, "<f")
    n = max((i + 1 for i, c in enumerate(volts) if c), default=0)
    ohms = decode_array(frame, RESISTANCES_AT, SLOTS, "<f")[:n]
    check_cell_info(raw, volts[:n], ohms, frame)
    v = _rounded(raw)
    action = int(v["balance_action"])
    return {
        "cell_voltages": tuple(round(c, DIGITS) for c in volts[:n]),
        "balance_current": float(v["balance_current"]),
        "uptime": float(v["uptime"]),
        "extra": {
            "cell_count": n,
            "balance_action": BALANCE_ACTIONS.get(action, f"code_{action}"),
            "balancing": action != 0,
            **{f"cell_resistance_{i}": round(r, DIGITS) for i, r in enumerate(ohms, 1)},
        },
    }


def decode_settings(frame: bytes) -> Reading:
    """Decode a checked JK04 settings frame: the balancer switch, the rest as extras."""
    v = _rounded(SETTINGS.decode(frame))
    if int(v["cell_count_setting"]) > SLOTS or not all(math.isfinite(float(x)) for x in v.values()):
        raise FrameError("implausible jk04 settings", frame)
    extra: dict[str, ExtraValue] = {k: x for k, x in v.items() if k != "balance_enabled"}
    return {"switches": {"balance": bool(v["balance_enabled"])}, "extra": extra}


# --- device side (emulator) -------------------------------------------------------------------


def encode_cell_info(values: Mapping[str, Number], cells: Sequence[float], resistances: Sequence[float] = (),
                     counter: int = 0) -> bytes:
    """A JK04 cell-info frame. Defaults: ``cell_average`` and ``cell_delta`` of the non-zero cells."""
    if len(cells) > SLOTS or len(resistances) > SLOTS:
        raise ValueError(f"JK04 has {SLOTS} cell slots")
    buf = bytearray(300)
    buf[CELLS_AT:CELLS_AT + 4 * len(cells)] = encode_array(cells, "<f")
    buf[RESISTANCES_AT:RESISTANCES_AT + 4 * len(resistances)] = encode_array(resistances, "<f")
    present = [c for c in cells if c] or [0.0]
    defaults = {"cell_average": sum(present) / len(present), "cell_delta": max(present) - min(present)}
    CELL_INFO.encode({**defaults, **values}, buf)
    return response_frame(TYPE_CELL_INFO, buf, counter)


def encode_settings(values: Mapping[str, Number], counter: int = 0) -> bytes:
    """A JK04 settings frame from values named as in :data:`SETTINGS`."""
    buf = bytearray(300)
    SETTINGS.encode(values, buf)
    return response_frame(TYPE_SETTINGS, buf, counter)

"""Supervolt ASCII protocol, device side: request parsing and reply encoders for the emulator.

The encoders fill the same field tables :mod:`bmslib.bms.supervolt.protocol` decodes with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bmslib.bms.supervolt.protocol import (
    ALARM_BITS,
    CAPACITY,
    CAPACITY_BASE,
    CELL_OFFSET,
    CELL_SLOTS,
    CFET_ON,
    CFET_SWITCH_ON,
    CMD_CAPACITY,
    CMD_REALTIME,
    DFET_ON,
    DFET_SWITCH_ON,
    LEN_CAPACITY,
    LEN_REALTIME,
    LEN_REALTIME_SINGLE,
    REALTIME,
    REPLY_BIT,
    REQUEST_VERSIONS,
    SINGLE_FRAME_CAPACITY_BASE,
    STATE_CHARGING,
    STATE_DISCHARGING,
    TEMP_ADD,
    TEMP_OFFSET,
    TEMP_SLOTS,
    checksum_ok,
    encode_frame,
    unpack,
)
from bmslib.errors import FrameError
from bmslib.protocol.fields import Number, encode_array, names_to_bits


def parse_request(frame: bytes) -> int | None:
    """The command of a well-formed host request, else None."""
    try:
        binary = unpack(frame)
    except FrameError:
        return None
    command = binary[1]
    if len(binary) != 6 or not checksum_ok(frame) or command not in REQUEST_VERSIONS:
        return None
    return command


def split_current(current: float) -> dict[str, float]:
    """Model current (+ = discharging) as the protocol's separate charge / discharge currents."""
    return {"charge_current": max(0.0, -current), "discharge_current": max(0.0, current)}


def working_state(*, charge_on: bool, discharge_on: bool, current: float = 0.0,
                  alarms: Sequence[str] = ()) -> int:
    """Working-state word (FET and switch bits together, alarm bits by name)."""
    state = names_to_bits(alarms, ALARM_BITS)
    state |= CFET_ON | CFET_SWITCH_ON if charge_on else 0
    state |= DFET_ON | DFET_SWITCH_ON if discharge_on else 0
    return state | (STATE_CHARGING if current < 0 else STATE_DISCHARGING if current > 0 else 0)


def encode_realtime(values: Mapping[str, Number], cells: Sequence[float], temperatures: Sequence[float],
                    capacity: Mapping[str, Number] | None = None) -> bytes:
    """Realtime reply from :data:`~bmslib.bms.supervolt.protocol.REALTIME` values, up to 16 cells [V] and
    4 temperatures [°C]. With ``capacity`` (``CAPACITY`` values) the single-frame variant is produced.
    """
    if len(cells) > CELL_SLOTS or len(temperatures) > TEMP_SLOTS:
        raise ValueError("at most 16 cells and 4 temperatures")
    size = (LEN_REALTIME_SINGLE if capacity is not None else LEN_REALTIME) // 2 - 1  # binary incl. checksum
    body = bytearray(size - 1)
    REALTIME.encode(values, body)
    body[CELL_OFFSET:CELL_OFFSET + 2 * len(cells)] = encode_array(cells, ">H", 0.001)
    body[TEMP_OFFSET:TEMP_OFFSET + len(temperatures)] = encode_array(temperatures, ">B", 1, TEMP_ADD)
    if capacity is not None:
        CAPACITY.encode(capacity, body, SINGLE_FRAME_CAPACITY_BASE)
    return encode_frame(CMD_REALTIME | REPLY_BIT, bytes(body[5:]))


def encode_capacity(values: Mapping[str, Number]) -> bytes:
    """Capacity reply from ``CAPACITY`` values [Ah]."""
    body = bytearray(LEN_CAPACITY // 2 - 2)
    CAPACITY.encode(values, body, CAPACITY_BASE)
    return encode_frame(CMD_CAPACITY | REPLY_BIT, bytes(body[5:]))


def with_checksum(frame: bytes, value: int) -> bytes:
    """``frame`` with its checksum replaced (the broken-checksum behaviour of ``libattU*`` units)."""
    return frame[:-3] + f"{value & 0xFF:02X}".encode("ascii") + frame[-1:]

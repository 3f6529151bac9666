"""SOK / ABC-BMS protocol, device side: request parsing and reply encoders for the emulator.

The encoders fill the same field tables :mod:`bmslib.bms.sok.protocol` decodes with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bmslib.bms.sok.protocol import (
    CELLS,
    CELLS_PER_FRAME,
    DETAIL,
    DETAIL_BE,
    F_CELLS,
    F_DETAIL,
    F_FETS,
    F_NAME,
    F_PROTECTION,
    F_STATUS,
    FETS,
    FRAME_LEN,
    MAX_TEMPS,
    PROTECTION_FLAGS,
    PROTECTION_NAMES,
    REQUEST_HEAD,
    REQUEST_LEN,
    STATUS,
    TEMP_OFFSET,
    reply,
)
from bmslib.protocol.crc import crc8_maxim
from bmslib.protocol.fields import Number, encode_array


def parse_request(frame: bytes) -> int | None:
    """The command of a well-formed host request, else None."""
    if len(frame) != REQUEST_LEN or frame[0] != REQUEST_HEAD or crc8_maxim(frame[:-1]) != frame[-1]:
        return None
    return frame[1]


def encode_status(values: Mapping[str, Number]) -> bytes:
    """F0 from :data:`~bmslib.bms.sok.protocol.STATUS` values (``current`` in the model's sign)."""
    body = bytearray(FRAME_LEN)
    STATUS.encode(values, body)
    return reply(F_STATUS, bytes(body[2:-1]))


def encode_name(name: str) -> bytes:
    return reply(F_NAME, name.encode("ascii")[:FRAME_LEN - 3])


def encode_fets(charge_on: bool, discharge_on: bool, temperatures: Sequence[float]) -> bytes:
    if len(temperatures) > MAX_TEMPS:
        raise ValueError(f"at most {MAX_TEMPS} temperatures")
    body = bytearray(FRAME_LEN)
    FETS.encode({"charge_fet": charge_on, "discharge_fet": discharge_on, "temp_count": len(temperatures)},
                body)
    body[TEMP_OFFSET:TEMP_OFFSET + 2 * len(temperatures)] = encode_array(temperatures, "<h")
    return reply(F_FETS, bytes(body[2:-1]))


def encode_detail(values: Mapping[str, Number]) -> bytes:
    """F3 from ``DETAIL`` and ``DETAIL_BE`` values."""
    body = bytearray(FRAME_LEN)
    DETAIL.encode(values, body)
    DETAIL_BE.encode(values, body)
    return reply(F_DETAIL, bytes(body[2:-1]))


def encode_cells(cells: Sequence[float]) -> list[bytes]:
    """F4 replies, four cells each (1-based index, mV, 0); the last one padded with empty slots."""
    frames = []
    for first in range(0, len(cells), CELLS_PER_FRAME):
        values: dict[str, Number] = {}
        for k, v in enumerate(cells[first:first + CELLS_PER_FRAME]):
            values |= {f"index{k}": first + k + 1, f"cell{k}": v}
        body = bytearray(FRAME_LEN)
        CELLS.encode(values, body)
        frames.append(reply(F_CELLS, bytes(body[2:-1])))
    return frames


def encode_protection(alarms: Sequence[str]) -> bytes:
    """F9 with the flags of ``alarms`` (names ``protection_<k>``) set."""
    rev = {name: k for k, name in PROTECTION_NAMES.items()}
    flags = [0] * PROTECTION_FLAGS
    for a in alarms:
        flags[rev[a]] = 1
    return reply(F_PROTECTION, bytes(flags))

"""ANT BMS legacy protocol (2019/2020 units, ``AA 55 AA FF``, 140-byte big-endian frames), sans-IO.

Request over BLE: ``DB DB 00 00 00 00`` (over UART ``5A 5A 00 00 00 00``). Reply: one 140-byte frame
in ~20-byte notifications; checksum u16be at 138 = sum of bytes 4..137. Host frames are 6 bytes:
``<op> <op> reg val_hi val_lo sum8(reg, val_hi, val_lo)``. A write (``A5 A5``) only takes effect after
the apply write ``A5 A5 FF 00 00 FF``; with a password set, registers 0xF1..0xF4 (two ASCII characters
each) must be written first. Units send no reply to writes: the next status frame shows the result.

Current at 70 is positive while discharging (the model's sign). Power at 111 is not published: on
2021 units answering this request it is invalid, and ``Sample.build`` derives V x I instead.
Design capacity reads 0 on some units; it is then estimated from remaining charge and SoC.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bmslib.bms.ant.protocol import codes
from bmslib.errors import FrameError, UnsupportedError
from bmslib.model import Reading
from bmslib.protocol.base import HeadedAssembler
from bmslib.protocol.fields import Field, FieldTable, Number, decode_array, encode_array

HEADER = b"\xaa\x55\xaa\xff"
FRAME_LENGTH = 140
CHECKSUM_OFFSET = 138
OP_READ_BLE, OP_READ_UART, OP_WRITE = 0xDB, 0x5A, 0xA5
REG_PASSWORD, REG_DISCHARGE, REG_CHARGE, REG_BALANCE_TRIGGER, REG_APPLY = 0xF1, 0xF9, 0xFA, 0xFC, 0xFF
DEFAULT_PASSWORD = "12345678"  # noqa: S105 - factory default of the ANT app, not a secret
SWITCH_REGISTERS: Mapping[str, int] = {"discharge": REG_DISCHARGE, "charge": REG_CHARGE}

MAX_CELLS, TEMPERATURE_SLOTS = 32, 6
CELLS_OFFSET, TEMPERATURES_OFFSET = 6, 91
MIN_SOC_FOR_CAPACITY_ESTIMATE = 10

STATUS = FieldTable(">", (
    Field("voltage", 4, "H", 0.1),
    Field("current", 70, "i", 0.1),  # wire + = discharging = model sign
    Field("soc", 74, "B"),
    Field("design_capacity", 75, "I", 1e-6),
    Field("remaining_capacity", 79, "I", 1e-6),
    Field("total_cycle_capacity", 83, "I", 0.001),
    Field("total_runtime", 87, "I"),
    Field("charge_fet", 103, "B"),
    Field("discharge_fet", 104, "B"),
    Field("balancer", 105, "B"),
    Field("tire_length", 106, "H"),
    Field("pulses_per_week", 108, "H"),
    Field("relay", 110, "B"),
    Field("power", 111, "i"),
    Field("max_cell_index", 115, "B"),
    Field("max_cell_voltage", 116, "H", 0.001),
    Field("min_cell_index", 118, "B"),
    Field("min_cell_voltage", 119, "H", 0.001),
    Field("average_cell_voltage", 121, "H", 0.001),
    Field("cell_count", 123, "B"),
    Field("comparator_init", 130, "H"),
    Field("balancing_bitmask", 132, "I"),
    Field("system_log", 136, "H"),
))


def checksum(frame: bytes | bytearray) -> int:
    return sum(frame[4:CHECKSUM_OFFSET]) & 0xFFFF


def host_frame(op: int, register: int, value: int) -> bytes:
    hi, lo = value >> 8 & 0xFF, value & 0xFF
    return bytes((op, op, register, hi, lo, (register + hi + lo) & 0xFF))


STATUS_REQUEST = host_frame(OP_READ_BLE, 0x00, 0x0000)
UART_STATUS_REQUEST = host_frame(OP_READ_UART, 0x00, 0x0000)
APPLY_WRITE = host_frame(OP_WRITE, REG_APPLY, 0x0000)


def write_register(register: int, value: int) -> bytes:
    return host_frame(OP_WRITE, register, value)


def auth_writes(password: str = DEFAULT_PASSWORD) -> tuple[bytes, ...]:
    """The four password writes (registers 0xF1..0xF4, two ASCII characters each, big-endian)."""
    secret = password.encode("ascii")
    if len(secret) != 8:
        raise ValueError("legacy ANT password must be 8 ASCII characters")
    return tuple(write_register(REG_PASSWORD + i, secret[2 * i] << 8 | secret[2 * i + 1]) for i in range(4))


def switch_sequence(name: str, on: bool, password: str | None = DEFAULT_PASSWORD) -> tuple[bytes, ...]:
    """Frames to send, in order, to set switch ``name``: password writes (if any), write, apply."""
    if name not in SWITCH_REGISTERS:
        raise UnsupportedError(f"legacy ANT BMS cannot switch {name!r} (only {', '.join(SWITCH_REGISTERS)})")
    auth = auth_writes(password) if password else ()
    return (*auth, write_register(SWITCH_REGISTERS[name], 1 if on else 0), APPLY_WRITE)


def _check(buf: bytes | bytearray, at: int) -> str:
    if len(buf) < at + FRAME_LENGTH:
        return "wait"
    frame = buf[at:at + FRAME_LENGTH]
    if struct.unpack_from(">H", frame, CHECKSUM_OFFSET)[0] != checksum(frame):
        return "checksum mismatch"
    return "ok"


class AntLegacyAssembler(HeadedAssembler):
    """Assemble 140-byte ``AA 55 AA FF`` frames; resync on the next header after a bad frame."""

    heads = (HEADER,)
    max_frame = min_frame = FRAME_LENGTH

    def check(self, buf: bytearray, at: int) -> tuple[str, int]:
        state = _check(buf, at)
        return state, at + FRAME_LENGTH if state == "ok" else 0


def decode(frame: bytes) -> Reading:
    """Decode one assembled 140-byte status frame."""
    if len(frame) != FRAME_LENGTH or not frame.startswith(HEADER):
        raise FrameError("not an ANT legacy status frame", frame)
    if struct.unpack_from(">H", frame, CHECKSUM_OFFSET)[0] != checksum(frame):
        raise FrameError("checksum mismatch", frame)
    v = STATUS.decode(frame)
    cells = int(v["cell_count"])
    if cells > MAX_CELLS:
        raise FrameError(f"implausible cell count {cells}", frame)
    soc = int(v["soc"])
    remaining = round(float(v["remaining_capacity"]), 6)
    design = round(float(v["design_capacity"]), 6)
    estimated = design == 0 and soc >= MIN_SOC_FOR_CAPACITY_ESTIMATE
    capacity = float(round(remaining * 100 / soc)) if estimated else design
    charge_fet, discharge_fet, balancer = int(v["charge_fet"]), int(v["discharge_fet"]), int(v["balancer"])
    fets = codes.fet_reading(charge_fet, discharge_fet, balancer)
    reading: Reading = {
        "voltage": round(float(v["voltage"]), 1),
        "current": round(float(v["current"]), 1) + 0.0,
        "soc": float(soc),
        "charge": remaining,
        "cell_voltages": tuple(round(c, 3) for c in decode_array(frame, CELLS_OFFSET, cells, ">H", 0.001)),
        "temperatures": codes.present_temperatures(
            decode_array(frame, TEMPERATURES_OFFSET, TEMPERATURE_SLOTS, ">h")),
        "switches": fets["switches"],
        "alarms": codes.fet_alarms(charge_fet, discharge_fet, balancer),
        "uptime": float(v["total_runtime"]),
        "extra": {
            **fets["extra"],
            "cell_count": cells,
            "balancing": int(v["balancing_bitmask"]) != 0,
            "balancing_bitmask": int(v["balancing_bitmask"]),
            "total_cycle_capacity": round(float(v["total_cycle_capacity"]), 3),
            "reported_power": int(v["power"]),
            "average_cell_voltage": round(float(v["average_cell_voltage"]), 3),
            "system_log": int(v["system_log"]),
            "capacity_estimated": estimated,
        },
    }
    if capacity > 0:
        reading["capacity"] = capacity
        n_cycles = codes.cycles(float(v["total_cycle_capacity"]), capacity)
        if n_cycles is not None:
            reading["cycles"] = n_cycles
    return reading


class LegacyCodec:
    """Legacy frames decode on their own; no session state."""

    def assembler(self) -> AntLegacyAssembler:
        return AntLegacyAssembler()

    def decode(self, frame: bytes) -> Reading:
        return decode(frame)


# --- device side (emulator) -------------------------------------------------------------------


def encode_status(values: Mapping[str, Number], cells: Sequence[float],
                  temperatures: Sequence[float]) -> bytes:
    """A 140-byte status frame from table values (wire sign), cells (<= 32) and temperatures (<= 6;
    unused slots read as "no probe")."""
    if len(cells) > MAX_CELLS or len(temperatures) > TEMPERATURE_SLOTS:
        raise ValueError(f"{len(cells)} cells / {len(temperatures)} temperatures exceed the frame layout")
    frame = bytearray(FRAME_LENGTH)
    frame[:4] = HEADER
    STATUS.encode({**values, "cell_count": len(cells)}, frame)
    cell_bytes = encode_array(cells, ">H", 0.001)
    frame[CELLS_OFFSET:CELLS_OFFSET + len(cell_bytes)] = cell_bytes
    slots = [*temperatures, *[codes.ABSENT_PROBE] * (TEMPERATURE_SLOTS - len(temperatures))]
    frame[TEMPERATURES_OFFSET:TEMPERATURES_OFFSET + 2 * TEMPERATURE_SLOTS] = encode_array(slots, ">h")
    struct.pack_into(">H", frame, CHECKSUM_OFFSET, checksum(frame))
    return bytes(frame)


@dataclass(frozen=True, slots=True)
class LegacyRequest:
    """A 6-byte host frame: ``op`` 0xDB/0x5A (read) or 0xA5 (write), register, 16-bit value."""

    op: int
    register: int
    value: int

    @property
    def switch(self) -> tuple[str, bool] | None:
        """For a switch write: ``(name, on)``."""
        if self.op != OP_WRITE:
            return None
        name = next((n for n, r in SWITCH_REGISTERS.items() if r == self.register), None)
        return (name, self.value != 0) if name else None


def parse_request(frame: bytes) -> LegacyRequest | None:
    """Device side: the request in one 6-byte host write, or None if malformed."""
    if len(frame) != 6 or frame[0] != frame[1] or frame[0] not in (OP_READ_BLE, OP_READ_UART, OP_WRITE):
        return None
    if host_frame(frame[0], frame[2], frame[3] << 8 | frame[4]) != frame:
        return None
    return LegacyRequest(frame[0], frame[2], frame[3] << 8 | frame[4])

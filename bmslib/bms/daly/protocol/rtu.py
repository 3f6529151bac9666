"""Modbus RTU framing as Daly's BLE BMS speak it (shared by the D2 and 0x81 protocols), sans-IO.

Requests: read holding registers ``addr 03 reg cnt crc`` and write single register
``addr 06 reg value crc``. Replies: ``addr 03 n data crc`` (``n`` = 2 x count), the 8-byte echo of a
write, or a 5-byte exception ``addr 83|86 code crc``. CRC-16/MODBUS, appended little-endian. A reply
may be split over several notifications; :class:`ModbusAssembler` accumulates to the announced length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bmslib.errors import FrameError
from bmslib.protocol.base import OK, WAIT, HeadedAssembler
from bmslib.protocol.crc import crc16_modbus

READ, WRITE, ERROR_FLAG = 0x03, 0x06, 0x80
MAX_FRAME = 255 + 5


def crc(body: bytes) -> bytes:
    """CRC-16/MODBUS of ``body``, little-endian as transmitted."""
    return struct.pack("<H", crc16_modbus(body))


def read_request(register: int, count: int, *, address: int) -> bytes:
    """Host -> BMS: read ``count`` holding registers from ``register``."""
    body = struct.pack(">BBHH", address, READ, register, count)
    return body + crc(body)


def write_request(register: int, value: int, *, address: int) -> bytes:
    """Host -> BMS: write one register. The BMS echoes the frame on success."""
    body = struct.pack(">BBHH", address, WRITE, register, value)
    return body + crc(body)


def is_write_echo(request: bytes, reply: bytes) -> bool:
    """True if ``reply`` confirms the write ``request`` (a successful write is echoed verbatim)."""
    return len(request) == 8 and request[1] == WRITE and bytes(reply) == bytes(request)


@dataclass(frozen=True, slots=True)
class ModbusRequest:
    """A parsed host request (device side). ``value`` is the count for reads, the value for writes."""

    address: int
    function: int
    register: int
    value: int


def parse_request(frame: bytes, *, address: int) -> ModbusRequest | None:
    """Device side: the request in ``frame``, or None unless it is a well-formed read or write."""
    if len(frame) != 8 or frame[0] != address or frame[1] not in (READ, WRITE) or frame[6:] != crc(frame[:6]):
        return None
    register, value = struct.unpack_from(">HH", frame, 2)
    return ModbusRequest(frame[0], frame[1], register, value)


def read_response(data: bytes, *, address: int) -> bytes:
    """Device side: the reply to a read, carrying ``data`` (register values, big-endian)."""
    if len(data) % 2 or len(data) > 254:
        raise ValueError(f"a read reply carries an even number of bytes <= 254, not {len(data)}")
    body = bytes((address, READ, len(data))) + data
    return body + crc(body)


def exception_response(function: int, code: int, *, address: int) -> bytes:
    """Device side: a Modbus exception reply (e.g. code 2, illegal data address)."""
    body = bytes((address, function | ERROR_FLAG, code))
    return body + crc(body)


def frame_length(function: int, byte2: int) -> int | None:
    """Total length of a reply with this function code (``byte2`` = third byte), or None if invalid."""
    if function == READ:
        return byte2 + 5 if byte2 % 2 == 0 else None
    if function == WRITE:
        return 8
    if function in (READ | ERROR_FLAG, WRITE | ERROR_FLAG):
        return 5
    return None


class ModbusAssembler(HeadedAssembler):
    """Accumulate chunks to one reply from ``address``; resync on the next address byte after junk.

    The head is one byte (the address), so the address value also turns up inside register data. A
    false head there is harmless: its function byte, byte count and CRC must all hold before it
    counts as a frame, and a stale partial frame is only dropped for a later frame that passes them.
    """

    max_frame, min_frame = MAX_FRAME, 5  # 5: an exception reply

    def __init__(self, address: int) -> None:
        super().__init__()
        self.address = address
        self.heads = (bytes((address,)),)

    def check(self, buf: bytearray, at: int) -> tuple[str, int]:
        if len(buf) < at + 3:
            return WAIT, 0
        total = frame_length(buf[at + 1], buf[at + 2])
        if total is None:
            return f"unexpected function 0x{buf[at + 1]:02x} or odd byte count", 0
        end = at + total
        if len(buf) < end:
            return WAIT, 0
        if buf[end - 2:end] != crc(bytes(buf[at:end - 2])):
            return "CRC mismatch", 0
        return OK, end


def reply_payload(frame: bytes, address: int) -> bytes | None:
    """Register data of a read reply; None for a write echo. Raises FrameError for anything else,
    including a Modbus exception reply."""
    total = frame_length(frame[1], frame[2]) if len(frame) >= 3 else None
    if total is None or len(frame) != total or frame[0] != address or frame[-2:] != crc(frame[:-2]):
        raise FrameError("not a Daly Modbus reply frame", frame)
    if frame[1] & ERROR_FLAG:
        function, code = frame[1] & 0x7F, frame[2]
        raise FrameError(f"BMS answered function 0x{function:02x} with exception 0x{code:02x}", frame)
    return frame[3:-2] if frame[1] == READ else None


def ascii_field(data: bytes) -> str:
    """Printable text up to the first NUL or other non-printable byte."""
    end = next((i for i, b in enumerate(data) if not 0x20 <= b < 0x7F), len(data))
    return data[:end].decode("ascii").strip()

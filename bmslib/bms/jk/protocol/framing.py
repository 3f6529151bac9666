"""JK (Jikong) BLE framing, sans-IO: host commands, the 300-byte response envelope, its assembler.

Host -> BMS: 20 bytes ``AA 55 90 EB reg len value[13] sum8``. BMS -> host: 300-byte frames
``55 AA EB 90 type counter ... sum8`` (the checksum is byte 299, over bytes 0..298), split across
notifications at arbitrary points. Between frames the BLE module sends ``AT\\r\\n``, the BMS sends a
20-byte ack in the host format (register 0xC8) and some modules echo our own commands; the
assembler strips all three without counting them as errors.

The sum8 checksum passes for about 1 in 256 corrupt frames, so the assembler also rejects a
300-byte window that contains a second frame header (a chunk was lost and the next frame started
inside this one); the decoders add plausibility checks on the values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bmslib.errors import FrameError, UnsupportedError
from bmslib.protocol.base import NOISE, OK, WAIT, HeadedAssembler
from bmslib.protocol.crc import sum8

HOST_HEADER = bytes.fromhex("aa5590eb")
FRAME_HEADER = bytes.fromhex("55aaeb90")
AT_NOISE = b"AT\r\n"
COMMAND_LENGTH = 20
FRAME_LENGTH = 300
MAX_VALUE_LENGTH = 13  # command bytes 6..18

CMD_CELL_INFO = 0x96  # answered by one settings frame, then cell-info frames stream (~1 s)
CMD_DEVICE_INFO = 0x97
CMD_LOGBOOK = 0xA1
CMD_ACK = 0xC8  # sent by the BMS, in the host format
REG_CHARGE, REG_DISCHARGE, REG_BALANCE = 0x1D, 0x1E, 0x1F  # JK02, 4-byte value
REG_JK04_BALANCE = 0x6C  # JK04, 1-byte value

TYPE_SETTINGS, TYPE_CELL_INFO, TYPE_DEVICE_INFO, TYPE_LOGBOOK = 0x01, 0x02, 0x03, 0x05
FRAME_TYPES = frozenset({TYPE_SETTINGS, TYPE_CELL_INFO, TYPE_DEVICE_INFO})

# Device-info fields that hold app passcodes: [start, end) offsets, never logged or decoded.
SECRET_RANGES = ((62, 78), (97, 102), (118, 134))


class FrameLayout(enum.StrEnum):
    """Frame layouts of the JK protocol family."""

    JK02_24S = "jk02_24s"  # hardware/software 6.x..10.x: 24 cell slots
    JK02_32S = "jk02_32s"  # software >= 11: 32 cell slots, later fields shifted
    JK04 = "jk04"  # old active balancers: float32 values


def command(register: int, value: bytes = b"") -> bytes:
    """Host -> BMS frame for ``register`` with ``value`` (at most 13 bytes)."""
    if not 0 <= register <= 0xFF or len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"cannot build a JK command for register {register} with {len(value)} value bytes")
    body = HOST_HEADER + bytes((register, len(value))) + value.ljust(MAX_VALUE_LENGTH, b"\x00")
    return body + bytes((sum8(body),))


REQUEST_DEVICE_INFO = command(CMD_DEVICE_INFO)
REQUEST_CELL_INFO = command(CMD_CELL_INFO)
REQUEST_LOGBOOK = command(CMD_LOGBOOK)
ACK = command(CMD_ACK, b"\x01")

SWITCH_REGISTERS = {"charge": REG_CHARGE, "discharge": REG_DISCHARGE, "balance": REG_BALANCE}


def switch_command(name: str, on: bool, layout: FrameLayout | None = None) -> bytes:
    """Turn switch ``name`` ("charge", "discharge", "balance") on or off.

    JK02 writes a 4-byte little-endian 0/1 to 0x1D/0x1E/0x1F; JK04 (an active balancer) has only the
    balancer switch, a 1-byte value at 0x6C. Raises :class:`UnsupportedError` for a switch the
    layout lacks.
    """
    if layout is FrameLayout.JK04:
        if name != "balance":
            raise UnsupportedError(f"JK04 balancers have no {name!r} switch")
        return command(REG_JK04_BALANCE, bytes((int(on),)))
    if name not in SWITCH_REGISTERS:
        raise UnsupportedError(f"JK has no {name!r} switch")
    return command(SWITCH_REGISTERS[name], int(on).to_bytes(4, "little"))


@dataclass(frozen=True, slots=True)
class Command:
    """A host command as the device side sees it."""

    register: int
    value: bytes

    @property
    def number(self) -> int:
        """The value as a little-endian unsigned integer (0 for a plain request)."""
        return int.from_bytes(self.value, "little")


def parse_command(data: bytes) -> Command | None:
    """Device side: the command in one 20-byte write, or None if it is not a well-formed command."""
    if len(data) != COMMAND_LENGTH or not data.startswith(HOST_HEADER) or sum8(data[:19]) != data[19]:
        return None
    n = data[5]
    if n > MAX_VALUE_LENGTH:
        return None
    return Command(data[4], bytes(data[6:6 + n]))


def response_frame(frame_type: int, body: bytes | bytearray, counter: int = 0) -> bytes:
    """BMS -> host frame: ``body`` (up to 300 bytes, offsets as in the frame) with header, type,
    counter and checksum filled in."""
    if len(body) > FRAME_LENGTH:
        raise ValueError(f"JK frame body of {len(body)} bytes")
    buf = bytearray(body).ljust(FRAME_LENGTH, b"\x00")
    buf[0:4] = FRAME_HEADER
    buf[4] = frame_type
    buf[5] = counter & 0xFF
    buf[299] = sum8(bytes(buf[:299]))
    return bytes(buf)


def redact(data: bytes) -> bytes:
    """``data`` safe to log: the passcode ranges of anything that may be a device-info frame
    (a frame whose type byte is not settings or cell info) are overwritten with ``*``."""
    if not data.startswith(FRAME_HEADER) or (len(data) > 4 and data[4] in (TYPE_SETTINGS, TYPE_CELL_INFO)):
        return bytes(data)
    out = bytearray(data)
    for start, end in SECRET_RANGES:
        out[start:end] = b"*" * len(out[start:end])
    return bytes(out)


def check_frame(frame: bytes) -> None:
    """Raise :class:`FrameError` unless ``frame`` is one whole response frame with a good checksum."""
    if len(frame) != FRAME_LENGTH or not frame.startswith(FRAME_HEADER):
        raise FrameError(f"not a {FRAME_LENGTH}-byte JK frame", redact(frame))
    if sum8(frame[:299]) != frame[299]:
        raise FrameError("JK frame checksum mismatch", redact(frame))


class JkAssembler(HeadedAssembler):
    """Assemble 300-byte frames of the types in ``types``; strip ``AT\\r\\n``, acks and echoes.

    ``acks`` counts ack frames (0xC8) seen, ``filtered`` every stripped piece of expected noise.
    Junk runs are counted as dropped, without their bytes (they may be a piece of a device-info
    frame, which holds passcodes); rejected frames keep their bytes, redacted.
    """

    heads = (FRAME_HEADER, HOST_HEADER, AT_NOISE)
    max_frame = min_frame = FRAME_LENGTH

    def __init__(self, types: frozenset[int] = FRAME_TYPES) -> None:
        super().__init__()
        self.types = types
        self.acks = 0
        self.filtered = 0

    def check(self, buf: bytearray, at: int) -> tuple[str, int]:
        if buf.startswith(FRAME_HEADER, at):
            second = buf.find(FRAME_HEADER, at + 1, at + FRAME_LENGTH)
            if second > 0:
                return "second frame header inside a 300-byte window (spliced or truncated frame)", second
            end = at + FRAME_LENGTH
            if len(buf) < end:
                return WAIT, 0
            if sum8(bytes(buf[at:end - 1])) != buf[end - 1]:
                return "checksum mismatch", 0
            if buf[at + 4] not in self.types:
                return f"frame type 0x{buf[at + 4]:02x} not handled", end
            return OK, end
        if buf.startswith(AT_NOISE, at):
            return NOISE, at + len(AT_NOISE)
        second = buf.find(FRAME_HEADER, at + 1, at + COMMAND_LENGTH)  # at a host header: an ack or echo
        if second > 0:
            return "truncated ack/echo before a frame header", second
        end = at + COMMAND_LENGTH
        if len(buf) < end:
            return WAIT, 0
        if parse_command(bytes(buf[at:end])) is None:
            return "malformed ack/echo", 0
        return NOISE, end

    def _noise(self, raw: bytes) -> None:
        self.filtered += 1
        if raw.startswith(HOST_HEADER) and raw[4] == CMD_ACK:
            self.acks += 1

    def _junk(self, reason: str, raw: bytes) -> None:
        super()._junk(f"{len(raw)} bytes of junk outside frames", b"")

    def _reject(self, reason: str, raw: bytes) -> None:
        size = COMMAND_LENGTH if raw.startswith(HOST_HEADER) else FRAME_LENGTH  # never the bytes after it
        super()._reject(reason, redact(raw[:size]))

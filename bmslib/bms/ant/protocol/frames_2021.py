"""ANT BMS 2021 protocol (``7E A1 … AA 55``, little-endian), sans-IO: framing, requests, assembly.

Frame: ``7E A1 | func | addr_lo addr_hi | len | data (len bytes) | crc_lo crc_hi | AA 55``. The CRC is
CRC-16/MODBUS over ``A1`` … last data byte. Host requests without data carry a requested length in
the ``len`` position and no data (10 bytes in all). Replies use ``func | 0x10`` (``0x20`` for the
``0x2X`` writes).

Quirk: settings/device-info replies (0x12, 0x42) have 6 bytes after the CRC before ``AA 55``, which the
length byte does not count. The assembler therefore ends a frame where the length and a valid CRC say
the data ends, followed by ``AA 55`` (directly or after at most :data:`MAX_TRAILER` bytes). It never
ends a frame on a trailing ``0x55`` alone: that byte is a plain ``U`` in the version strings.

The data frames (status, device info) are decoded in :mod:`bmslib.bms.ant.protocol.data_2021`;
commands and authentication are in :mod:`bmslib.bms.ant.protocol.control`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from bmslib.errors import FrameError
from bmslib.protocol.base import HeadedAssembler
from bmslib.protocol.crc import crc16_modbus

HEAD = b"\x7e\xa1"
END = b"\xaa\x55"
MIN_FRAME = 10  # header 6 + crc 2 + end 2
MAX_TRAILER = 16  # bytes tolerated between the CRC and AA 55 (6 seen on 0x12 / 0x42 replies)

FUNC_STATUS, FUNC_DEVICE_INFO, FUNC_WRITE_SETTING, FUNC_AUTH, FUNC_COMMAND = 0x01, 0x02, 0x22, 0x23, 0x51
REPLY_STATUS, REPLY_DEVICE_INFO, REPLY_AUTH, REPLY_COMMAND = 0x11, 0x12, 0x43, 0x61
REPLY_FUNC: Mapping[int, int] = {
    0x01: 0x11, 0x02: 0x12, 0x03: 0x13, 0x04: 0x14, 0x05: 0x15, 0x06: 0x16,
    0x22: 0x42, 0x23: 0x43, 0x51: 0x61,
}
DEVICE_INFO_ADDRESS, DEVICE_INFO_LENGTH = 0x026C, 0x20
STATUS_LENGTH = 0xBE  # the "length" byte of the status request
DEVICE_INFO_TRAILER = bytes.fromhex("ff0b000041f2")  # what real units send after the device-info CRC

def seal(body: bytes) -> bytes:
    """``body`` (from ``7E A1``) with its CRC and the end marker appended."""
    return body + struct.pack("<H", crc16_modbus(body[1:])) + END


def build_frame(func: int, address: int, data: bytes) -> bytes:
    """A frame whose length byte counts ``data`` (replies, auth, settings writes)."""
    if len(data) > 255:
        raise ValueError(f"data too long for one frame: {len(data)} bytes")
    return seal(HEAD + struct.pack("<BHB", func, address, len(data)) + data)


def build_request(func: int, address: int, arg: int) -> bytes:
    """A 10-byte host request: ``arg`` (requested length or value) sits in the length position."""
    return seal(HEAD + struct.pack("<BHB", func, address, arg))


STATUS_REQUEST = build_request(FUNC_STATUS, 0x0000, STATUS_LENGTH)
DEVICE_INFO_REQUEST = build_request(FUNC_DEVICE_INFO, DEVICE_INFO_ADDRESS, DEVICE_INFO_LENGTH)


def read_setting_request(address: int, wide: bool = False) -> bytes:
    """Read one settings register (replied to with a 0x12 frame); ``wide`` for the u32 registers."""
    return build_request(FUNC_DEVICE_INFO, address, 4 if wide else 2)


def function(frame: bytes) -> int:
    return frame[2]


def address(frame: bytes) -> int:
    return int.from_bytes(frame[3:5], "little")


def _check(buf: bytes | bytearray, at: int) -> tuple[str, int]:
    """Is there a frame at ``at``? ``("ok", end)``, ``("wait", 0)`` or ``("bad: reason", 0)``."""
    if len(buf) < at + 6:
        return "wait", 0
    n = buf[at + 5]
    data_end = at + 6 + n
    if len(buf) < data_end + 4:
        return "wait", 0
    if buf[data_end:data_end + 2] != struct.pack("<H", crc16_modbus(bytes(buf[at + 1:data_end]))):
        return "bad: CRC mismatch", 0
    window = bytes(buf[data_end + 2:data_end + 4 + MAX_TRAILER])
    end = window.find(END)
    restart = window.find(HEAD)
    if end >= 0 and (restart < 0 or end < restart):
        return "ok", data_end + 2 + end + 2
    if restart >= 0 or len(window) == MAX_TRAILER + 2:
        return "bad: no AA 55 after the CRC", 0
    return "wait", 0


class Ant2021Assembler(HeadedAssembler):
    """Assemble ``7E A1`` frames by length + CRC + ``AA 55``; resync on the next ``7E A1``."""

    heads = (HEAD,)
    max_frame, min_frame = MIN_FRAME + 255 + MAX_TRAILER, MIN_FRAME

    def check(self, buf: bytearray, at: int) -> tuple[str, int]:
        state, end = _check(buf, at)
        return state.removeprefix("bad: "), end


def check_frame(frame: bytes) -> tuple[int, int, bytes]:
    """``(func, address, data)`` of a complete frame; raises :class:`FrameError` if it is malformed."""
    if len(frame) < MIN_FRAME or not frame.startswith(HEAD) or not frame.endswith(END):
        raise FrameError("not an ANT 2021 frame", frame)
    n = frame[5]
    if not n + MIN_FRAME <= len(frame) <= n + MIN_FRAME + MAX_TRAILER:
        raise FrameError(f"frame length {len(frame)} does not fit its length byte {n}", frame)
    if frame[6 + n:8 + n] != struct.pack("<H", crc16_modbus(frame[1:6 + n])):
        raise FrameError("CRC mismatch", frame)
    return frame[2], address(frame), frame[6:6 + n]



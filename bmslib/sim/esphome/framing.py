"""Frames of ESPHome's native API, both ways (pure code: no sockets, no asyncio).

Plaintext frame: ``0x00``, varint payload length, varint message type, payload (a protobuf message).
Noise frame: ``0x01``, 2-byte big-endian length, then the bytes of one handshake step or one encrypted
message; an encrypted message decrypts to 2-byte type, 2-byte length, payload.

The decoders take bytes as they arrive from a socket and return whole frames; junk raises
:class:`FrameError` and nothing else.
"""

from __future__ import annotations

from typing import Final

PLAINTEXT: Final = 0x00
NOISE: Final = 0x01
#: the firmware's limit (a uint16 length on the wire)
MAX_FRAME: Final = 0xFFFF
#: the client's limit for one varint (4 bytes hold every length and type)
MAX_VARINT_BYTES: Final = 4
#: what a plaintext node sends to a client that opened with another marker byte (the firmware's text)
BAD_INDICATOR_REPLY: Final = b"\x00Bad indicator byte"


class FrameError(ValueError):
    """Bytes that are no frame of the native API."""

    def __init__(self, message: str, *, marker: int | None = None) -> None:
        super().__init__(message)
        #: the first byte of a frame when it was the wrong marker (a Noise client on a plaintext node, ...)
        self.marker = marker


def encode_varint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"varint must not be negative: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """The varint at ``pos`` and the position after it; None: incomplete. Raises FrameError when too long."""
    value = shift = 0
    for n in range(MAX_VARINT_BYTES):
        if pos + n >= len(buf):
            return None
        byte = buf[pos + n]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + n + 1
        shift += 7
    raise FrameError(f"varint longer than {MAX_VARINT_BYTES} bytes")


def encode_plaintext(msg_type: int, payload: bytes) -> bytes:
    return b"\x00" + encode_varint(len(payload)) + encode_varint(msg_type) + payload


def encode_noise(payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME:
        raise ValueError(f"noise frame too long: {len(payload)} bytes")
    return bytes((NOISE, len(payload) >> 8, len(payload) & 0xFF)) + payload


def encode_noise_message(msg_type: int, payload: bytes) -> bytes:
    """The plaintext of one encrypted message (type, length, payload), before encryption."""
    return msg_type.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload


def decode_noise_message(message: bytes) -> tuple[int, bytes]:
    """(type, payload) of a decrypted message; the length field is not trusted (the client does the same)."""
    if len(message) < 4:
        raise FrameError(f"decrypted message too short: {len(message)} bytes")
    return (message[0] << 8) | message[1], bytes(message[4:])


class PlaintextDecoder:
    """Splits a plaintext byte stream into (message type, payload)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out: list[tuple[int, bytes]] = []
        while self._buf:
            if self._buf[0] != PLAINTEXT:
                marker = self._buf[0]
                self._buf.clear()
                raise FrameError(f"marker byte 0x{marker:02x} is not plaintext", marker=marker)
            head = decode_varint(self._buf, 1)
            if head is None:
                break
            length, pos = head
            if length > MAX_FRAME:
                self._buf.clear()
                raise FrameError(f"frame length {length} beyond {MAX_FRAME}")
            typed = decode_varint(self._buf, pos)
            if typed is None:
                break
            msg_type, pos = typed
            if len(self._buf) < pos + length:
                break
            out.append((msg_type, bytes(self._buf[pos:pos + length])))
            del self._buf[:pos + length]
        return out


class NoiseDecoder:
    """Splits a Noise byte stream into frame payloads (handshake steps or encrypted messages)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= 3:
            if self._buf[0] != NOISE:
                marker = self._buf[0]
                self._buf.clear()
                raise FrameError(f"marker byte 0x{marker:02x} is not noise", marker=marker)
            length = (self._buf[1] << 8) | self._buf[2]
            if len(self._buf) < 3 + length:
                break
            out.append(bytes(self._buf[3:3 + length]))
            del self._buf[:3 + length]
        return out

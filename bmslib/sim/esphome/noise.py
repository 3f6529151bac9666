"""The node's side of ESPHome's encrypted API: Noise_NNpsk0_25519_ChaChaPoly_SHA256 as the responder.

Sans-IO: :class:`NoiseResponder` takes the payloads of Noise frames from the client and returns the payloads
to send back. The exchange, as the firmware does it:

1. the client's hello: an empty frame. The node answers with its server hello: ``0x01`` (the protocol it
   chose), its name, ``0x00``, its MAC, ``0x00``.
2. the client's handshake: ``0x00`` and the first Noise message. With the right key the node answers
   ``0x00`` and its Noise message, and both sides hold their transport ciphers; with a wrong key (the
   message does not authenticate) it answers ``0x01`` and the text ``Handshake MAC failure``, which the
   client reports as an invalid encryption key, and the session ends.
3. then every frame is one encrypted message (see :mod:`bmslib.sim.esphome.framing`).
"""

from __future__ import annotations

import base64
import binascii
import enum
from typing import Final

from noise.connection import NoiseConnection

from bmslib.sim.esphome.framing import FrameError, decode_noise_message, encode_noise_message

PROTOCOL_NAME: Final = b"Noise_NNpsk0_25519_ChaChaPoly_SHA256"
PROLOGUE: Final = b"NoiseAPIInit\x00\x00"
MAC_FAILURE: Final = b"\x01Handshake MAC failure"


def decode_psk(psk: str) -> bytes:
    """The 32 key bytes of an API encryption key written in base64 (as in an ESPHome YAML)."""
    try:
        raw = base64.b64decode(psk, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the encryption key is not base64") from exc
    if len(raw) != 32:
        raise ValueError(f"the encryption key has {len(raw)} bytes, not 32")
    return raw


class State(enum.Enum):
    HELLO = enum.auto()
    HANDSHAKE = enum.auto()
    READY = enum.auto()
    FAILED = enum.auto()


class NoiseResponder:
    """One encrypted session's handshake and transport ciphers (the node's side)."""

    def __init__(self, psk: bytes, *, name: str, mac: str) -> None:
        self._name = name
        self._mac = mac
        proto = NoiseConnection.from_name(PROTOCOL_NAME)
        proto.set_as_responder()
        proto.set_psks(psk)
        proto.set_prologue(PROLOGUE)
        proto.start_handshake()
        self._proto = proto
        self.state = State.HELLO

    @property
    def ready(self) -> bool:
        return self.state is State.READY

    def handshake(self, payload: bytes) -> list[bytes]:
        """The frame payloads answering one handshake-phase frame from the client (``state`` says what
        comes next: READY, or FAILED after a wrong key or a malformed step)."""
        if self.state is State.HELLO:
            self.state = State.HANDSHAKE
            return [b"\x01" + self._name.encode() + b"\x00" + self._mac.encode() + b"\x00"]
        if self.state is not State.HANDSHAKE:
            raise FrameError(f"handshake frame in state {self.state.name}")
        if not payload or payload[0] != 0x00:
            self.state = State.FAILED
            return [b"\x01Handshake failure"]
        try:
            self._proto.read_message(payload[1:])
            reply = bytes(self._proto.write_message())
        except Exception:  # noqa: BLE001 - a wrong key surfaces as the crypto library's InvalidTag
            self.state = State.FAILED
            return [MAC_FAILURE]
        self.state = State.READY
        return [b"\x00" + reply]

    def encrypt(self, msg_type: int, payload: bytes) -> bytes:
        return bytes(self._proto.encrypt(encode_noise_message(msg_type, payload)))

    def decrypt(self, frame: bytes) -> tuple[int, bytes]:
        """(type, payload) of one encrypted frame; FrameError when it does not decrypt."""
        try:
            message = bytes(self._proto.decrypt(frame))
        except Exception as exc:  # the library wraps the tag failure in its own type
            raise FrameError("frame does not decrypt") from exc
        return decode_noise_message(message)

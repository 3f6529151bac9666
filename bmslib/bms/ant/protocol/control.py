"""ANT BMS 2021 protocol: commands (MOSFET/balancer switches), authentication and their replies.

A switch is a write to the "command register" (func 0x51, address = command, value 0). The BMS only
obeys after an authentication frame (func 0x23, address 0x016A, data = password in ASCII). The sources
disagree on the byte order of that address: one sends ``6A 01`` (little-endian, as every other address
in this protocol), the other ``01 6A``. The documented order ``6A 01`` is also what a real unit echoes
in its auth reply (``7E A1 43 6A 01 02 05 00 …``). :data:`AUTH_ORDERS` lists both, documented first, so a
driver can try one, fall back to the other and remember which one the unit confirmed.

Replies: auth -> func 0x43 with the address echoed and a 2-byte value (5 seen); command -> func 0x61
with the command echoed and a 2-byte value (1 seen for every accepted switch command).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from bmslib.bms.ant.protocol import frames_2021 as frames
from bmslib.errors import FrameError, UnsupportedError

AUTH_ADDRESS = 0x016A
DEFAULT_PASSWORD = "123456789abc"  # noqa: S105 - sent by the esphome component before every write
COMMAND_ACCEPTED = 1

# switch name -> (command that turns it on, command that turns it off)
SWITCH_COMMANDS: Mapping[str, tuple[int, int]] = {
    "discharge": (0x03, 0x01),
    "charge": (0x06, 0x04),
    "balance": (0x0D, 0x0E),
}
CMD_CURRENT_ZERO, CMD_RESTART, CMD_SHUTDOWN = 0x08, 0x09, 0x0B
CMD_BLUETOOTH_OFF, CMD_BLUETOOTH_ON, CMD_BUZZER_ON, CMD_BUZZER_OFF = 0x1C, 0x1D, 0x1E, 0x1F


class AuthOrder(enum.Enum):
    """Byte order of the auth address on the wire."""

    DOCUMENTED = b"\x6a\x01"  # little-endian 0x016A (esphome; echoed by a real unit)
    SWAPPED = b"\x01\x6a"  # big-endian (aiobmsble)


AUTH_ORDERS = (AuthOrder.DOCUMENTED, AuthOrder.SWAPPED)


def auth_request(password: str = DEFAULT_PASSWORD, order: AuthOrder = AuthOrder.DOCUMENTED) -> bytes:
    """The authentication frame that must precede a command."""
    secret = password.encode("ascii")
    if not 0 < len(secret) <= 32:
        raise ValueError("ANT password must be 1 to 32 ASCII characters")
    body = frames.HEAD + bytes((frames.FUNC_AUTH,)) + order.value + bytes((len(secret),)) + secret
    return frames.seal(body)


def command_request(command: int) -> bytes:
    """Write ``command`` to the command register (value 0)."""
    return frames.build_request(frames.FUNC_COMMAND, command, 0x00)


def switch_command(name: str, on: bool) -> int:
    """The command number for turning switch ``name`` on or off."""
    if name not in SWITCH_COMMANDS:
        raise UnsupportedError(f"ANT BMS has no switch {name!r} (has {', '.join(SWITCH_COMMANDS)})")
    on_cmd, off_cmd = SWITCH_COMMANDS[name]
    return on_cmd if on else off_cmd


def switch_request(name: str, on: bool) -> bytes:
    return command_request(switch_command(name, on))


def switch_sequence(name: str, on: bool, password: str = DEFAULT_PASSWORD,
                    order: AuthOrder = AuthOrder.DOCUMENTED) -> tuple[bytes, bytes]:
    """Auth frame then command frame, in sending order."""
    return auth_request(password, order), switch_request(name, on)


@dataclass(frozen=True, slots=True)
class Ack:
    """A reply to a write: ``func`` 0x43 (auth) or 0x61 (command), the echoed address, the value."""

    func: int
    address_bytes: bytes
    value: int

    @property
    def address(self) -> int:
        return int.from_bytes(self.address_bytes, "little")


def parse_ack(frame: bytes) -> Ack | None:
    """The ack in ``frame`` (an assembled frame), or None if it is no valid ack."""
    try:
        func, _addr, data = frames.check_frame(frame)
    except FrameError:
        return None
    if func not in (frames.REPLY_AUTH, frames.REPLY_COMMAND) or len(data) != 2:
        return None
    return Ack(func, bytes(frame[3:5]), struct.unpack("<H", data)[0])


def confirms_auth(frame: bytes, order: AuthOrder) -> bool:
    """Does ``frame`` acknowledge an auth frame sent with ``order``?"""
    ack = parse_ack(frame)
    return ack is not None and ack.func == frames.REPLY_AUTH and ack.address_bytes == order.value


def confirms_command(frame: bytes, command: int) -> bool:
    """Does ``frame`` acknowledge ``command`` as accepted?"""
    ack = parse_ack(frame)
    return (ack is not None and ack.func == frames.REPLY_COMMAND and ack.address == command
            and ack.value == COMMAND_ACCEPTED)


def confirms_switch(frame: bytes, name: str, on: bool) -> bool:
    return confirms_command(frame, switch_command(name, on))


# --- device side (emulator) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostRequest:
    """A host frame as the BMS sees it. ``arg`` is the byte in the length position (requested length
    or value) of a 10-byte request; ``data`` the payload of a data-carrying frame (auth, setting)."""

    func: int
    address_bytes: bytes
    arg: int
    data: bytes = b""

    @property
    def address(self) -> int:
        return int.from_bytes(self.address_bytes, "little")

    @property
    def auth_order(self) -> AuthOrder | None:
        """For an auth frame: the address byte order it used (None if neither, or no auth frame)."""
        if self.func != frames.FUNC_AUTH:
            return None
        return next((o for o in AUTH_ORDERS if o.value == self.address_bytes), None)

    @property
    def password(self) -> str | None:
        return self.data.decode("ascii", "replace") if self.func == frames.FUNC_AUTH else None

    @property
    def switch(self) -> tuple[str, bool] | None:
        """For a command: the switch it sets as ``(name, on)``, None for other commands."""
        if self.func != frames.FUNC_COMMAND:
            return None
        for name, (on_cmd, off_cmd) in SWITCH_COMMANDS.items():
            if self.address in (on_cmd, off_cmd):
                return name, self.address == on_cmd
        return None


def parse_request(frame: bytes) -> HostRequest | None:
    """Device side: the request in one host write, or None if it is not a well-formed frame."""
    if len(frame) < frames.MIN_FRAME or not frame.startswith(frames.HEAD) or not frame.endswith(frames.END):
        return None
    n = frame[5]
    if len(frame) == n + frames.MIN_FRAME and frames.seal(frame[:6 + n]) == frame and n:
        return HostRequest(frame[2], bytes(frame[3:5]), n, bytes(frame[6:6 + n]))
    if len(frame) == frames.MIN_FRAME and frames.seal(frame[:6]) == frame:
        return HostRequest(frame[2], bytes(frame[3:5]), n)
    return None


def encode_ack(request: HostRequest, value: int) -> bytes:
    """The reply a unit sends to a write: the request's func + 0x10/0x20, its address, ``value``."""
    reply = frames.REPLY_FUNC.get(request.func, request.func | 0x10)
    body = frames.HEAD + bytes((reply,)) + request.address_bytes + b"\x02" + struct.pack("<H", value)
    return frames.seal(body)

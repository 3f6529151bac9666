"""JBD password handshake (``FF AA`` frames, newer JBD firmware), sans-IO.

Frame (both directions): ``FF AA cmd len data... sum8`` with ``sum8 = (cmd + len + sum(data)) & 0xFF``.
Replies arrive in one notification on the same characteristic as the ``DD`` frames.

Host flow (:class:`JbdAuthSession`):

1. ``0x15`` app key ``"000000"`` -> status 00 password required, 02 no password (done), 01 rejected
2. ``0x17`` get random -> one random byte R
3. ``0x18`` user password, ``enc[i] = ((mac[i] XOR pw[i]) + R) & 0xFF`` with the MAC bytes in display
   order -> 00 accepted, else rejected
4. ``0x1D`` root password ``JBDbtpwd!@#2023`` encrypted the same way (MAC byte 0 beyond index 5), with
   the same R (the captured exchange asks for no second random byte) -> 00 done, else rejected

:class:`JbdAuthDevice` plays the BMS side for the emulator.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable

from bmslib.protocol.base import OK, WAIT, HeadedAssembler
from bmslib.protocol.crc import sum8

HEADER = b"\xff\xaa"
CMD_APP_KEY = 0x15
CMD_CHANGE_PASSWORD = 0x16
CMD_RANDOM = 0x17
CMD_USER_PASSWORD = 0x18
CMD_ROOT_PASSWORD = 0x1D
KNOWN_COMMANDS = frozenset({CMD_APP_KEY, CMD_CHANGE_PASSWORD, CMD_RANDOM, CMD_USER_PASSWORD,
                            CMD_ROOT_PASSWORD})
MAX_DATA = 32  # longest payload we accept (the root password is 15 bytes)

STATUS_OK, STATUS_REJECTED, STATUS_NO_PASSWORD = 0x00, 0x01, 0x02

APP_KEY = b"000000"
# Protocol constants published with the esphome JBD component, not credentials of ours:
ROOT_PASSWORD = b"JBDbtpwd!@#2023"
DEFAULT_USER_PASSWORD = "123123"  # noqa: S105  # what esphome sends when none is configured
USER_PASSWORD_LEN = 6


def frame(cmd: int, data: bytes = b"") -> bytes:
    """``FF AA cmd len data sum8``."""
    body = bytes((cmd, len(data))) + data
    return HEADER + body + bytes((sum8(body),))


def parse_mac(mac: str | bytes) -> bytes:
    """The six MAC bytes in display order (``"a4:c1:37:04:2d:be"`` -> ``a4c137042dbe``). Raises ValueError."""
    if isinstance(mac, bytes):
        raw = mac
    else:
        digits = mac.replace(":", "").replace("-", "").strip()
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            raw = b""
    if len(raw) != 6:
        raise ValueError(f"not a Bluetooth MAC address: {mac!r} (the JBD password needs the device MAC)")
    return raw


def encrypt(mac: bytes, secret: bytes, random: int) -> bytes:
    """``((mac[i] XOR secret[i]) + random) & 0xFF``; MAC bytes beyond the sixth count as 0."""
    return bytes((((mac[i] if i < len(mac) else 0) ^ b) + random) & 0xFF for i, b in enumerate(secret))


def password_problem(password: str) -> str | None:
    """What is wrong with a user password (the message never contains it); None when it will do."""
    if len(password) != USER_PASSWORD_LEN or not password.isascii():
        return (f"the JBD password must be {USER_PASSWORD_LEN} ASCII characters (the one set in the JBD app); "
                f"this one has {len(password)} character(s){'' if password.isascii() else ', not all ASCII'}")
    return None


def user_password_bytes(password: str) -> bytes:
    """The user password as sent: exactly six ASCII characters. Raises ValueError (never echoes it)."""
    if (problem := password_problem(password)) is not None:
        raise ValueError(problem)
    return password.encode("ascii")


def app_key_request(key: bytes = APP_KEY) -> bytes:
    return frame(CMD_APP_KEY, key)


def random_request() -> bytes:
    return frame(CMD_RANDOM)


def user_password_request(mac: bytes, password: str, random: int) -> bytes:
    return frame(CMD_USER_PASSWORD, encrypt(mac, user_password_bytes(password), random))


def root_password_request(mac: bytes, random: int, root: bytes = ROOT_PASSWORD) -> bytes:
    return frame(CMD_ROOT_PASSWORD, encrypt(mac, root, random))


def parse_frame(raw: bytes) -> tuple[int, bytes] | None:
    """``(cmd, data)`` of one well-formed ``FF AA`` frame of a known command, else None (both sides)."""
    if len(raw) < 5 or raw[:2] != HEADER or len(raw) != raw[3] + 5 or raw[-1] != sum8(raw[2:-1]):
        return None
    if raw[2] not in KNOWN_COMMANDS or raw[3] > MAX_DATA:
        return None
    return raw[2], bytes(raw[4:-1])


class FfAaAssembler(HeadedAssembler):
    """Pick ``FF AA`` frames out of the notification stream; drop junk and interleaved ``DD`` frames.

    Only known commands with short payloads are taken as a frame start, so ``FF AA`` inside a
    ``DD`` frame (e.g. a checksum) is not mistaken for one unless its checksum also holds.
    """

    heads = (HEADER,)
    max_frame, min_frame = MAX_DATA + 5, 5

    def check(self, buf: bytearray, at: int) -> tuple[str, int]:
        if len(buf) < at + 4:
            return WAIT, 0
        if buf[at + 2] not in KNOWN_COMMANDS or buf[at + 3] > MAX_DATA:
            return f"unknown FF AA command 0x{buf[at + 2]:02x} or length {buf[at + 3]}", 0
        end = at + buf[at + 3] + 5
        if len(buf) < end:
            return WAIT, 0
        if buf[end - 1] != sum8(bytes(buf[at + 2:end - 1])):
            return "FF AA checksum mismatch", 0
        return OK, end


class AuthOutcome(enum.Enum):
    PENDING = "pending"
    DONE = "authenticated"
    NO_PASSWORD = "no password required"  # noqa: S105  # a status text
    REJECTED = "password rejected"


class JbdAuthSession:
    """Host side of the handshake as a state machine: no I/O, no clock.

    ``start()`` gives the first request; pass every notification to ``feed()``, which returns the next
    request to write (or None). When ``outcome`` is no longer PENDING the handshake is over;
    ``reason`` says what was rejected. Timeouts are the driver's business (a BMS without
    password support may simply not answer ``FF AA`` frames).
    """

    def __init__(self, mac: str | bytes, password: str = DEFAULT_USER_PASSWORD, *,
                 app_key: bytes = APP_KEY) -> None:
        self._mac = parse_mac(mac)
        self._password = user_password_bytes(password)
        self._app_key = app_key
        self._assembler = FfAaAssembler()
        self._awaiting: int | None = None
        self._random = 0
        self.outcome = AuthOutcome.PENDING
        self.reason = ""

    @property
    def finished(self) -> bool:
        return self.outcome is not AuthOutcome.PENDING

    @property
    def awaiting(self) -> int | None:
        """The command whose reply we wait for (None before start and after the end)."""
        return self._awaiting

    def start(self) -> bytes:
        self._assembler.reset()
        self.outcome, self.reason = AuthOutcome.PENDING, ""
        return self._send(CMD_APP_KEY, self._app_key)

    def feed(self, chunk: bytes) -> bytes | None:
        """Consume a notification; return the next request to write, if any."""
        request = None
        for raw in self._assembler.feed(chunk):
            request = self._on_reply(raw) or request
        return request

    def _send(self, cmd: int, data: bytes) -> bytes:
        self._awaiting = cmd
        return frame(cmd, data)

    def _finish(self, outcome: AuthOutcome, reason: str = "") -> None:
        self._awaiting = None
        self.outcome, self.reason = outcome, reason

    def _on_reply(self, raw: bytes) -> bytes | None:
        parsed = parse_frame(raw)
        if parsed is None or self._awaiting is None or parsed[0] != self._awaiting or len(parsed[1]) != 1:
            return None  # stale or unrelated reply
        cmd, (value,) = parsed
        if cmd == CMD_APP_KEY:
            if value == STATUS_NO_PASSWORD:
                self._finish(AuthOutcome.NO_PASSWORD)
                return None
            if value != STATUS_OK:
                self._finish(AuthOutcome.REJECTED, f"app key rejected (status 0x{value:02x})")
                return None
            return self._send(CMD_RANDOM, b"")
        if cmd == CMD_RANDOM:
            self._random = value
            return self._send(CMD_USER_PASSWORD, encrypt(self._mac, self._password, value))
        if cmd == CMD_USER_PASSWORD:
            if value != STATUS_OK:
                self._finish(AuthOutcome.REJECTED, f"user password rejected (status 0x{value:02x})")
                return None
            return self._send(CMD_ROOT_PASSWORD, encrypt(self._mac, ROOT_PASSWORD, self._random))
        if value != STATUS_OK:  # CMD_ROOT_PASSWORD
            self._finish(AuthOutcome.REJECTED, f"root password rejected (status 0x{value:02x})")
        else:
            self._finish(AuthOutcome.DONE)
        return None


# --- device side (emulator) -------------------------------------------------------------------


class JbdAuthDevice:
    """The BMS side: answers ``FF AA`` requests. ``password=None`` means no password is set.

    ``random_byte`` supplies the challenge (injectable for tests); ``authenticated`` turns true once
    the root password was accepted (or at once if there is no password).
    """

    def __init__(self, mac: str | bytes, password: str | None, *,
                 random_byte: Callable[[], int] = lambda: secrets.randbelow(256)) -> None:
        self._mac = parse_mac(mac)
        self._password = None if password is None else user_password_bytes(password)
        self._random_byte = random_byte
        self._random: int | None = None
        self._user_ok = False
        self.authenticated = password is None

    def handle(self, request: bytes) -> bytes | None:
        """The reply to one request frame, or None for anything that is not a valid ``FF AA`` request."""
        parsed = parse_frame(request)
        if parsed is None:
            return None
        cmd, data = parsed
        if cmd == CMD_APP_KEY:
            return frame(cmd, bytes((STATUS_NO_PASSWORD if self._password is None else STATUS_OK,)))
        if cmd == CMD_RANDOM:
            self._random = self._random_byte() & 0xFF
            return frame(cmd, bytes((self._random,)))
        if cmd == CMD_USER_PASSWORD:
            self._user_ok = self._check(data, self._password)
            return frame(cmd, bytes((STATUS_OK if self._user_ok else STATUS_REJECTED,)))
        if cmd == CMD_ROOT_PASSWORD:
            ok = self._user_ok and self._check(data, ROOT_PASSWORD)
            self.authenticated = self.authenticated or ok
            return frame(cmd, bytes((STATUS_OK if ok else STATUS_REJECTED,)))
        return frame(cmd, bytes((STATUS_REJECTED,)))  # change password: not emulated

    def _check(self, data: bytes, secret: bytes | None) -> bool:
        if secret is None or self._random is None:
            return False
        return data == encrypt(self._mac, secret, self._random)

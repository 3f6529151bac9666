"""JBD / Xiaoxiang / Overkill driver: the shared request/response flow plus the password handshake.

The requests (basic info 0x03 and cells 0x04 each read, hardware version 0x05 after connecting, FETs
via 0xE1) are declared in the protocol module. With ``pin:`` set, the ``FF AA`` password handshake
(newer firmware) runs before the first request: that exchange of several steps, and what each
outcome means, is this module's own code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from bmslib.bms.jbd.protocol import auth as jbd_auth
from bmslib.bms.jbd.protocol import frames as jbd
from bmslib.bms.jbd.protocol import requests
from bmslib.bms.jbd.protocol.auth import AuthOutcome
from bmslib.drivers.request_response import RequestResponseDriver
from bmslib.errors import BmsAuthError, BmsTimeoutError, FrameError
from bmslib.model import Reading
from bmslib.protocol.base import Codec, FrameAssembler
from bmslib.protocol.requests import ReplyMatch, Request


def _auth_reply_to(cmd: int) -> ReplyMatch:
    return lambda frame: frame[:2] == jbd_auth.HEADER and frame[2] == cmd


class _WithAuthAssembler(FrameAssembler):
    """``DD`` frames as usual, plus the ``FF AA`` handshake replies that share the characteristic.

    A notification that is one whole ``FF AA`` frame (how the BMS sends them) goes to the handshake
    only; everything else goes to the ``DD`` assembler, and to the ``FF AA`` one in case a reply
    was split. Statistics are the ``DD`` assembler's.
    """

    def __init__(self) -> None:
        super().__init__()
        self._dd = jbd.JbdAssembler()
        self._ffaa = jbd_auth.FfAaAssembler()

    def feed(self, chunk: bytes) -> list[bytes]:
        out = self._ffaa.feed(chunk)
        if jbd_auth.parse_frame(chunk) is None:
            out += self._dd.feed(chunk)
        self.frames = self._dd.frames + self._ffaa.frames
        self.dropped, self.last_error = self._dd.dropped, self._dd.last_error
        return out

    def reset(self) -> None:
        self._dd.reset()
        self._ffaa.reset()

    @property
    def pending(self) -> int:
        return self._dd.pending


class _JbdAuthCodec:
    """JBD frames decoded as usual, assembled together with the handshake replies."""

    def assembler(self) -> FrameAssembler:
        return _WithAuthAssembler()

    def decode(self, frame: bytes) -> Reading:
        return jbd.decode(frame)


class JbdDriver(RequestResponseDriver):
    """JBD on the shared request/response flow; its own part is the password handshake (:meth:`session_setup`)."""

    service_uuid = jbd.SERVICE_UUID
    notify_uuid = jbd.NOTIFY_UUID
    write_uuid = jbd.WRITE_UUID
    switches: ClassVar[frozenset[str]] = frozenset({"charge", "discharge"})
    request_timeout: ClassVar[float] = 5.0
    polls = requests.POLLS
    setup_requests = requests.SETUP_REQUESTS
    label = "JBD"
    #: seconds to wait for each reply of the password handshake
    auth_timeout: ClassVar[float] = 2.0

    _auth_unanswered = False  # the BMS ignored the handshake once: it has no password support
    _no_password_logged = False

    def make_codec(self) -> Codec:
        return _JbdAuthCodec() if self.config.pin is not None else jbd.JbdCodec()

    def switch_request(self, name: str, on: bool, switches: Mapping[str, bool]) -> Request:
        return requests.switch_request(name, on, switches)

    async def session_setup(self) -> None:
        if self.config.pin is not None and not self._auth_unanswered:
            await self.authenticate(self.config.pin)

    def setup_hint(self) -> str:
        return "" if self.config.pin is not None else (
            " (a BMS with a password answers nothing until it gets it: then set `pin:`)")

    async def authenticate(self, password: str) -> None:
        """The ``FF AA`` handshake: app key, random byte, user password, root password.

        Raises BmsAuthError if the BMS refuses the password (the message never contains it). A BMS
        that does not answer the first step has no password support: the driver then goes on without.
        """
        device = self.transport.device
        try:
            session = jbd_auth.JbdAuthSession(device.address if device is not None else self.address, password)
        except ValueError as exc:
            raise BmsAuthError(str(exc)) from None
        request: bytes | None = session.start()
        frame = b""
        while request is not None and session.awaiting is not None:
            step = session.awaiting
            try:
                frame = await self.transport.request(self.write_uuid, request, _auth_reply_to(step), self.auth_timeout,
                                                     response=self.write_response, secret=True)
            except BmsTimeoutError:
                if step != jbd_auth.CMD_APP_KEY:
                    raise BmsTimeoutError(f"password handshake: no reply to step 0x{step:02x} within "
                                          f"{self.auth_timeout:g} s") from None
                self._auth_unanswered = True
                self.log.info("`pin` is set, but the BMS does not answer the password handshake (firmware "
                              "without a password?); reading without it")
                return
            request = session.feed(frame)
        if session.outcome is AuthOutcome.REJECTED:
            raise BmsAuthError(f"the BMS refused the password ({session.reason}): check `pin:`, the 6-character "
                               "password set in the JBD app")
        if session.outcome is AuthOutcome.PENDING:
            raise FrameError("password handshake: unexpected reply", frame)
        if session.outcome is AuthOutcome.NO_PASSWORD:
            if not self._no_password_logged:
                self._no_password_logged = True
                self.log.info("`pin` is set, but this BMS asks for no password")
        else:
            self.log.debug("password accepted")

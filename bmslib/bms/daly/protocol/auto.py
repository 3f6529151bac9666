"""Daly sessions whose protocol is found from the replies: an assembler that follows the first
protocol to complete a checked frame, the codec of the three Daly type names (also used by
``decode``), and which frame answers which request. Sans-IO, like the protocol modules it joins.
"""

from __future__ import annotations

from collections.abc import Callable

from bmslib.bms.daly.protocol import codec as daly
from bmslib.bms.daly.protocol import modbus as daly_modbus
from bmslib.bms.daly.protocol import p81 as daly_p81
from bmslib.bms.daly.protocol.codec import DalyCodec, DalyProtocol
from bmslib.bms.daly.protocol.legacy import DalyLegacyAssembler
from bmslib.bms.daly.protocol.rtu import ERROR_FLAG, READ, ModbusAssembler
from bmslib.errors import FrameError
from bmslib.model import Reading
from bmslib.protocol.base import FrameAssembler

FrameMatch = Callable[[bytes], bool]


def _assembler_for(protocol: DalyProtocol) -> FrameAssembler:
    if protocol is DalyProtocol.LEGACY:
        return DalyLegacyAssembler()
    if protocol is DalyProtocol.P81:
        return ModbusAssembler(daly_p81.REPLY_ADDRESS)
    return ModbusAssembler(daly_modbus.ADDRESS)


class DalyFrames(FrameAssembler):
    """Frames of one Daly protocol; while the protocol is not known, of whichever one shows first.

    Unknown: every chunk goes to one assembler per protocol, and the first of them to complete a
    checked frame decides the protocol (:attr:`protocol`); from then on only that one is fed, and its
    counters are ours (the losers' complaints about the winner's bytes are not counted).
    """

    _ORDER = (DalyProtocol.MODBUS, DalyProtocol.P81, DalyProtocol.LEGACY)  # as daly.classify_reply

    def __init__(self, protocol: DalyProtocol | None = None) -> None:
        super().__init__()
        self.protocol: DalyProtocol | None = None
        self._parts: dict[DalyProtocol, FrameAssembler] = {}
        self.use(protocol)

    def use(self, protocol: DalyProtocol | None) -> None:
        """Assemble ``protocol`` only (None: find out from the next frame). Drops buffered bytes."""
        if protocol is DalyProtocol.UNKNOWN:
            raise ValueError("DalyFrames needs a known protocol or None")
        self.protocol = protocol
        order = self._ORDER if protocol is None else (protocol,)
        self._parts = {p: _assembler_for(p) for p in order}

    def feed(self, chunk: bytes) -> list[bytes]:
        for protocol, part in self._parts.items():
            dropped = part.dropped
            frames = part.feed(chunk)
            if part.dropped != dropped and (self.protocol is not None or len(self._parts) == 1):
                self.dropped += part.dropped - dropped
                self.last_error = part.last_error
            if frames:
                if self.protocol is None:
                    self.protocol = protocol
                    self._parts = {protocol: part}
                    self.dropped += part.dropped  # what it rejected before the first frame was junk
                    self.last_error = part.last_error
                self.frames += len(frames)
                return frames
        return []

    def reset(self) -> None:
        for part in self._parts.values():
            part.reset()

    @property
    def pending(self) -> int:
        return max((p.pending for p in self._parts.values()), default=0)


class DalyAutoCodec:
    """Codec of the Daly type names: a fixed protocol, or (``None``) the one each frame shows.

    Keeps one :class:`DalyCodec` per protocol, so the legacy session (counts, learned current sign)
    lives as long as the codec.
    """

    def __init__(self, protocol: DalyProtocol | None = None) -> None:
        if protocol is DalyProtocol.UNKNOWN:
            raise ValueError("a Daly codec needs a known protocol or None")
        self.protocol = protocol
        self._sessions: dict[DalyProtocol, DalyCodec] = {}

    def assembler(self) -> DalyFrames:
        return DalyFrames(self.protocol)

    def session(self, protocol: DalyProtocol) -> DalyCodec:
        if protocol not in self._sessions:
            self._sessions[protocol] = DalyCodec(protocol)
        return self._sessions[protocol]

    def decode(self, frame: bytes) -> Reading:
        protocol = self.protocol or daly.classify_reply(frame)
        if protocol is DalyProtocol.UNKNOWN:
            raise FrameError("not a frame of any Daly protocol", frame)
        return self.session(protocol).decode(frame)


def reply_to(protocol: DalyProtocol, request: bytes) -> FrameMatch:
    """Which frame answers ``request`` (one that needs a single reply).

    Modbus replies do not name their register, so a read is matched by its byte count (the blocks
    batmon reads all differ in length), a write by its function code; an exception reply to the
    same function also answers (it is decoded to an error at once instead of timing out).
    """
    if protocol is DalyProtocol.LEGACY:
        cmd = request[2]
        return lambda frame: frame[2] == cmd
    function = request[1]
    count = int.from_bytes(request[4:6], "big")

    def match(frame: bytes) -> bool:
        if frame[1] == function | ERROR_FLAG:
            return True
        return frame[1] == function and (function != READ or frame[2] == 2 * count)

    return match


def legacy_piece(cmd: int) -> FrameMatch:
    """Matches each indexed piece of a multi-frame legacy reply once (a repeated index is ignored)."""
    seen: set[int] = set()

    def match(frame: bytes) -> bool:
        if frame[2] != cmd or frame[4] in seen:
            return False
        seen.add(frame[4])  # the transport hands this frame to the waiter we return True for
        return True

    return match

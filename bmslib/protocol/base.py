"""What every sans-IO protocol module provides.

A protocol module exposes a :class:`Codec`: ``assembler()`` gives a fresh :class:`FrameAssembler`
that turns notification chunks into validated frames, and ``decode(frame)`` turns one frame into a
:class:`~bmslib.model.Reading`. Assemblers never raise on radio input: junk, bad CRCs and
truncated frames are dropped and counted. ``decode`` raises only :class:`~bmslib.errors.FrameError`.
"""

from __future__ import annotations

import fnmatch
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, final

from bmslib.errors import FrameError
from bmslib.model import Reading

_LOG = logging.getLogger(__name__)


class FrameAssembler(ABC):
    """Turns a stream of notification chunks into complete, checked frames.

    Protocols subclass :class:`HeadedAssembler`, which holds the one frame-finding loop. Other direct
    subclasses only combine assemblers or pass whole chunks on; they never buffer bytes themselves.
    """

    def __init__(self) -> None:
        self.frames = 0  # frames accepted
        self.dropped = 0  # frames or junk runs rejected
        self.last_error: FrameError | None = None
        self.recent_errors: deque[FrameError] = deque(maxlen=16)  # for diagnostics and `decode`
        self._buf = bytearray()

    @abstractmethod
    def feed(self, chunk: bytes) -> list[bytes]:
        """Add a chunk; return the frames it completed (possibly none, possibly several)."""

    def reset(self) -> None:
        """Forget any partial frame (after a disconnect, or before a fresh request)."""
        self._buf.clear()

    @property
    def pending(self) -> int:
        """Bytes buffered towards an incomplete frame."""
        return len(self._buf)

    def _reject(self, reason: str, raw: bytes) -> None:
        self.dropped += 1
        self.last_error = FrameError(reason, raw)
        self.recent_errors.append(self.last_error)
        _LOG.debug("dropped: %s", self.last_error)

    def _accept(self, frame: bytes) -> bytes:
        self.frames += 1
        return frame


#: :meth:`HeadedAssembler.check` verdicts besides a rejection reason.
OK: Final = "ok"  # a valid frame
WAIT: Final = "wait"  # too few bytes to tell
NOISE: Final = "noise"  # well-formed bytes that are not a frame (acks, echoes, module chatter)


class HeadedAssembler(FrameAssembler):
    """The frame-finding loop of every protocol: frames start with one of :attr:`heads`, and
    :meth:`check` decides from the bytes at a head whether a frame is there, and where it ends.

    Bytes before a head are junk (one drop per run, see :meth:`_junk`). At a head:

    - a valid frame is returned, noise is removed (see :meth:`_noise`);
    - an incomplete frame waits for more bytes, unless a later head already starts a complete valid
      frame: then the front one lost its tail (a notification was lost) and is dropped as stale;
    - a rejected frame is dropped up to its end when :meth:`check` knows it, else up to the first
      later head that starts a complete frame or noise, else up to the first that may still start
      one (see :meth:`_resync_point`).

    Every rejected run counts once in ``dropped``, so a truncated frame followed by a complete one
    counts one drop. A frame still incomplete after :attr:`max_frame` bytes is rejected, which
    bounds the buffer whatever a corrupted length byte says.

    A valid frame is lost only if another head inside it starts a frame that passes :meth:`check`
    (a checksum collision) while it is still incomplete, or if it starts inside a frame that does.
    """

    #: byte strings a frame (or noise) starts with
    heads: tuple[bytes, ...]
    #: longest frame :meth:`check` can accept, in bytes
    max_frame: int
    #: shortest frame :meth:`check` can accept: a later head nearer the end cannot start a complete one
    min_frame: int = 1

    @abstractmethod
    def check(self, buf: bytearray, at: int) -> tuple[str, int]:
        """Judge what starts at the head ``buf[at]``, reading only ``buf[at:]`` (never raising).

        ``(OK, end)``: ``buf[at:end]`` is a valid frame. ``(NOISE, end)``: ``buf[at:end]`` is expected
        non-frame data, removed without counting. ``(WAIT, 0)``: more bytes are needed. Anything
        else is the reason the bytes at ``at`` are no frame, with ``end`` the end of the rejected
        frame when its framing is certain (it is dropped whole), else 0 (resync at a later head).
        Only a WAIT may change when bytes are appended: the loop remembers rejected heads.
        """

    def __init__(self) -> None:
        super().__init__()
        self._rejected_heads: set[int] = set()  # later heads check() rejected, while the front stays

    def reset(self) -> None:
        super().reset()
        self._rejected_heads.clear()

    @final
    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf
        buf += chunk
        out: list[bytes] = []
        # No head after the front starts a complete frame: true until the next chunk, since removing
        # bytes at the front changes no later verdict.
        no_frame_later = False
        heads = self.heads
        while buf:
            if not buf.startswith(heads) and not self._seek():
                break
            state, end = self.check(buf, 0)
            if state == OK:
                out.append(self._accept(bytes(buf[:end])))
                self._cut(end)
                continue
            if state == NOISE:
                self._noise(bytes(buf[:end]))
                self._cut(end)
                continue
            if state == WAIT and len(buf) < self.max_frame:
                later = 0
                if not no_frame_later and len(buf) > self.min_frame:
                    later = self._resync_point(frames_only=True)
                if not later:
                    no_frame_later = True
                    break
                self._drop("incomplete frame superseded by a newer one", later)
                continue
            if state == WAIT:
                state, end = f"no complete frame within {self.max_frame} bytes", 0
            self._drop(state, end or self._resync_point(frames_only=False))
        return out

    def _noise(self, raw: bytes) -> None:
        """Expected non-frame bytes were removed (subclasses count them if they like)."""

    def _junk(self, reason: str, raw: bytes) -> None:
        """Bytes outside any frame were removed: one drop (subclasses may let known chatter pass)."""
        self._reject(reason, raw)

    def _drop(self, reason: str, end: int) -> None:
        self._reject(reason, bytes(self._buf[:min(end, self.max_frame)]))
        self._cut(end)

    def _cut(self, end: int) -> None:
        """Remove ``buf[:end]``; positions of remembered rejected heads move, so they are forgotten."""
        del self._buf[:end]
        self._rejected_heads.clear()

    def _find_head(self, start: int, last: int | None = None) -> int:
        """Where the first head at or after ``start`` (and at or before ``last``) begins, or -1."""
        buf = self._buf
        if last is not None and last < start:
            return -1
        best = -1
        for h in self.heads:
            before = best if best >= 0 else None if last is None else last + 1  # where a head must start before
            at = buf.find(h, start, None if before is None else before + len(h) - 1)
            if at >= 0:
                best = at
        return best

    def _partial_head(self, start: int) -> int:
        """Where a tail (at or after ``start``) that may be the beginning of a head begins; the
        buffer length when there is none."""
        buf = self._buf
        n = len(buf)
        for keep in range(min(max(len(h) for h in self.heads) - 1, n - start), 0, -1):
            tail = bytes(buf[n - keep:])
            if any(h.startswith(tail) for h in self.heads):
                return n - keep
        return n

    def _seek(self) -> bool:
        """For a buffer that does not start with a head: drop the junk before the first head; False
        when no head is buffered yet (a tail that may be the beginning of one is kept)."""
        buf = self._buf
        start = self._find_head(1)
        if start > 0:
            self._junk("junk before frame start", bytes(buf[:start]))
            self._cut(start)
            return True
        keep = self._partial_head(0)  # no head: only a possible beginning of one stays
        if keep:
            self._junk("junk without frame start", bytes(buf[:keep]))
            self._cut(keep)
        return False

    def _resync_point(self, *, frames_only: bool) -> int:
        """Where to resume after the front: the first later head that starts a complete valid frame.

        With ``frames_only`` (the front frame may still complete) that or 0. Otherwise (the front is
        rejected) the first one that starts a complete frame or noise, else the first one that still
        waits for bytes, else the first possible beginning of a head: heads between are rejected by
        :meth:`check` already, so they are dropped with the front instead of one by one.
        """
        buf = self._buf
        rejected = self._rejected_heads
        last = len(buf) - self.min_frame if frames_only else None
        waiting = 0
        at = self._find_head(1, last)
        while at > 0:
            if at not in rejected:
                state = self.check(buf, at)[0]
                if state == OK or (state == NOISE and not frames_only):
                    return at
                if state == WAIT:
                    waiting = waiting or at
                elif state != NOISE:
                    rejected.add(at)
            at = self._find_head(at + 1, last)
        if frames_only:
            return 0
        return waiting or self._partial_head(1)


class Codec(Protocol):
    """A protocol session: assemble frames and decode them (may keep state, e.g. a layout)."""

    def assembler(self) -> FrameAssembler: ...

    def decode(self, frame: bytes) -> Reading: ...


@dataclass(frozen=True, slots=True)
class AdvertisementMatcher:
    """One way a device type shows itself in BLE advertisements (all given conditions must hold).

    ``local_name`` is a shell glob (fnmatch, case-sensitive); ``service_uuid`` a full 128-bit UUID
    in lower case; ``manufacturer_id`` a company id whose data starts with ``manufacturer_data_start``;
    ``oui`` the first three MAC bytes ``"AA:BB:CC"``; ``service_data_uuid`` a UUID (lower case) the
    advertisement carries service data for, or ``""``: it carries no service data at all. ``note`` is shown
    by ``scan`` (e.g. "newer Supervolt packs speak the JBD protocol").
    """

    local_name: str | None = None
    service_uuid: str | None = None
    manufacturer_id: int | None = None
    manufacturer_data_start: bytes = b""
    oui: str | None = None
    note: str | None = None
    service_data_uuid: str | None = None

    def matches(self, *, address: str, name: str | None, service_uuids: Sequence[str],
                manufacturer_data: Mapping[int, bytes], service_data_uuids: Collection[str] = ()) -> bool:
        if self.local_name is not None and not (name and fnmatch.fnmatchcase(name, self.local_name)):
            return False
        if self.service_uuid is not None and self.service_uuid not in {u.lower() for u in service_uuids}:
            return False
        if self.service_data_uuid is not None and (
                self.service_data_uuid not in {u.lower() for u in service_data_uuids} if self.service_data_uuid
                else service_data_uuids):
            return False
        if self.manufacturer_id is not None:
            data = manufacturer_data.get(self.manufacturer_id)
            if data is None or not data.startswith(self.manufacturer_data_start):
                return False
        return self.oui is None or address.upper().startswith(self.oui.upper())

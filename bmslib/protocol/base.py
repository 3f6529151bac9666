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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bmslib.errors import FrameError
from bmslib.model import Reading

_LOG = logging.getLogger(__name__)


class FrameAssembler(ABC):
    """Turns a stream of notification chunks into complete, checked frames."""

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

    def _seek(self, marker: bytes | int) -> bool:
        """Drop (and count) the bytes before the next ``marker``; False when the buffer holds none yet.

        A tail that may be the beginning of a multi-byte marker is kept for the next chunk.
        """
        buf = self._buf
        start = buf.find(marker)
        if start >= 0:
            if start:
                self._reject("junk before frame start", bytes(buf[:start]))
                del buf[:start]
            return True
        head = bytes((marker,)) if isinstance(marker, int) else marker
        keep = next((k for k in range(min(len(head) - 1, len(buf)), 0, -1) if buf.endswith(head[:k])), 0)
        if len(buf) > keep:
            self._reject("junk without frame start", bytes(buf[:len(buf) - keep]))
            del buf[:len(buf) - keep]
        return False

    def _reject(self, reason: str, raw: bytes) -> None:
        self.dropped += 1
        self.last_error = FrameError(reason, raw)
        self.recent_errors.append(self.last_error)
        _LOG.debug("dropped: %s", self.last_error)

    def _accept(self, frame: bytes) -> bytes:
        self.frames += 1
        return frame


class HeadedAssembler(FrameAssembler):
    """Frames that start with :attr:`head` and whose extent a :meth:`check` at a position decides.

    Junk before a head is dropped; a frame that fails its check is dropped and the search resumes one
    byte later. When the frame at the front is still incomplete but a later head already starts a
    complete, valid frame (a notification was lost), the stale partial frame is dropped.
    """

    head: bytes

    @abstractmethod
    def check(self, buf: bytearray, at: int) -> tuple[str, int]:
        """``("ok", end)`` for a valid frame ``buf[at:end]``, ``("wait", 0)``, or ``(reason, 0)`` if bad."""

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf
        buf += chunk
        out: list[bytes] = []
        while buf:
            if not self._seek(self.head):
                break
            state, end = self.check(buf, 0)
            if state == "ok":
                out.append(self._accept(bytes(buf[:end])))
                del buf[:end]
            elif state != "wait":
                self._reject(state, bytes(buf[:64]))  # enough of the bad frame to recognise it
                del buf[:1]
            elif (later := self._complete_later(buf)) > 0:
                self._reject("incomplete frame superseded by a newer one", bytes(buf[:later]))
                del buf[:later]
            else:
                break
        return out

    def _complete_later(self, buf: bytearray) -> int:
        at = buf.find(self.head, 1)
        while at > 0:
            if self.check(buf, at)[0] == "ok":
                return at
            at = buf.find(self.head, at + 1)
        return 0


class Codec(Protocol):
    """A protocol session: assemble frames and decode them (may keep state, e.g. a layout)."""

    def assembler(self) -> FrameAssembler: ...

    def decode(self, frame: bytes) -> Reading: ...


@dataclass(frozen=True, slots=True)
class AdvertisementMatcher:
    """One way a device type shows itself in BLE advertisements (all given conditions must hold).

    ``local_name`` is a shell glob (fnmatch, case-sensitive); ``service_uuid`` a full 128-bit UUID
    in lower case; ``manufacturer_id`` a company id whose data starts with ``manufacturer_data_start``;
    ``oui`` the first three MAC bytes ``"AA:BB:CC"``. ``note`` is shown by ``scan`` (e.g. "newer
    Supervolt packs speak the JBD protocol").
    """

    local_name: str | None = None
    service_uuid: str | None = None
    manufacturer_id: int | None = None
    manufacturer_data_start: bytes = b""
    oui: str | None = None
    note: str | None = None

    def matches(self, *, address: str, name: str | None, service_uuids: Sequence[str],
                manufacturer_data: Mapping[int, bytes]) -> bool:
        if self.local_name is not None and not (name and fnmatch.fnmatchcase(name, self.local_name)):
            return False
        if self.service_uuid is not None and self.service_uuid not in {u.lower() for u in service_uuids}:
            return False
        if self.manufacturer_id is not None:
            data = manufacturer_data.get(self.manufacturer_id)
            if data is None or not data.startswith(self.manufacturer_data_start):
                return False
        return self.oui is None or address.upper().startswith(self.oui.upper())

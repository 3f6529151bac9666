"""What every sans-IO protocol module provides.

A protocol module exposes a :class:`Codec`: ``assembler()`` gives a fresh :class:`FrameAssembler`
that turns notification chunks into validated frames, and ``decode(frame)`` turns one frame into a
:class:`~bmslib.model.Reading`. Assemblers never raise on radio input: junk, bad CRCs and
truncated frames are dropped and counted. ``decode`` raises only :class:`~bmslib.errors.FrameError`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
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
        _LOG.debug("dropped: %s", self.last_error)

    def _accept(self, frame: bytes) -> bytes:
        self.frames += 1
        return frame


class Codec(Protocol):
    """A protocol session: assemble frames and decode them (may keep state, e.g. a layout)."""

    def assembler(self) -> FrameAssembler: ...

    def decode(self, frame: bytes) -> Reading: ...

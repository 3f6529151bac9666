"""One API client's TCP session on the node: the wire (plaintext or Noise), message decoding and sending.

What the messages mean is the node's business (:meth:`EsphomeNode._handle`); a session only moves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aioesphomeapi.core import MESSAGE_TYPE_TO_PROTO
from google.protobuf.message import DecodeError, Message

from bmslib.sim.esphome import framing
from bmslib.sim.esphome.noise import NoiseResponder, State

_LOG = logging.getLogger(__name__)

#: message class -> its type number on the wire
_TYPE_OF: dict[type[Any], int] = {cls: num for num, cls in MESSAGE_TYPE_TO_PROTO.items()}


def message_type(msg: Message) -> int:
    return _TYPE_OF[type(msg)]


class ApiSession:
    """The node's end of one API connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 noise: NoiseResponder | None, handle: Callable[[ApiSession, Message], None]) -> None:
        self._reader = reader
        self._writer = writer
        self._noise = noise
        self._handle = handle
        self._plain = framing.PlaintextDecoder()
        self._frames = framing.NoiseDecoder()
        self.closed = False
        self.ready = noise is None  # plaintext: messages flow at once
        self.client_info = ""
        self.api_version = (0, 0)  # the client's, from its hello
        self.advertisements = False  # subscribed to advertisements
        self.raw_advertisements = False
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def peer(self) -> str:
        info = self._writer.get_extra_info("peername")
        return f"{info[0]}:{info[1]}" if isinstance(info, tuple) else "?"

    def send(self, msg: Message) -> None:
        if self.closed:
            return
        payload = msg.SerializeToString()
        if self._noise is None:
            self._writer.write(framing.encode_plaintext(message_type(msg), payload))
        else:
            self._writer.write(framing.encode_noise(self._noise.encrypt(message_type(msg), payload)))

    def spawn(self, coro: Any, name: str) -> None:
        """Run ``coro`` as long as the session lives (cancelled when it ends)."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def abort(self) -> None:
        """Drop the TCP connection at once (a node rebooting, losing Wi-Fi, ...)."""
        self.closed = True
        self._writer.transport.abort()

    def end(self) -> None:
        """Close the TCP connection after what is written went out."""
        self.closed = True
        self._writer.close()

    async def close(self) -> None:
        """End the session after what is written went out."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.drain()
        self._writer.close()

    async def run(self) -> None:
        """Read and handle messages until the client goes or the session is closed."""
        try:
            while not self.closed:
                data = await self._reader.read(4096)
                if not data:
                    break
                if not await self._receive(data):
                    break
                await self._writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            for task in list(self.tasks):
                task.cancel()
            self._writer.close()

    async def _receive(self, data: bytes) -> bool:
        """Handle the bytes that arrived; False: the session ends."""
        try:
            if self._noise is None:
                return all(self._dispatch(msg_type, payload) for msg_type, payload in self._plain.feed(data))
            for frame in self._frames.feed(data):
                if not self._noise_frame(frame):
                    await self.close()
                    return False
            return True
        except framing.FrameError as exc:
            _LOG.info("esphome node: API client %s sent junk (%s), closing", self.peer, exc)
            if self._noise is None and exc.marker == framing.NOISE:
                self._writer.write(framing.BAD_INDICATOR_REPLY)  # a client that wants encryption
            elif self._noise is not None and self._noise.state is not State.READY:
                self._writer.write(framing.encode_noise(b"\x01Bad indicator byte"))
            await self.close()
            return False

    def _noise_frame(self, frame: bytes) -> bool:
        assert self._noise is not None
        if self._noise.state is State.READY:
            return self._dispatch(*self._noise.decrypt(frame))
        for reply in self._noise.handshake(frame):
            self._writer.write(framing.encode_noise(reply))
        if self._noise.state is State.FAILED:
            _LOG.info("esphome node: API client %s failed the encryption handshake", self.peer)
            return False
        self.ready = self._noise.ready
        return True

    def _dispatch(self, msg_type: int, payload: bytes) -> bool:
        cls = MESSAGE_TYPE_TO_PROTO.get(msg_type)
        if cls is None:
            _LOG.debug("esphome node: message type %d not known, ignored", msg_type)
            return True
        msg = cls()
        try:
            msg.ParseFromString(payload)
        except DecodeError:
            _LOG.info("esphome node: API client %s sent a malformed %s, closing", self.peer, cls.__name__)
            return False
        self._handle(self, msg)
        return not self.closed

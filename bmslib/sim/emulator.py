"""Emulator base: the device side of a BMS on the simulated radio.

An emulator declares its GATT layout and advertisement, answers host writes (``on_write``) and
sends notifications with :meth:`Emulator.notify`, which splits frames into MTU-sized chunks and
applies the fault knobs (latency, dropped/corrupted chunks, junk between frames, disconnect after N
requests, mute, hidden). Emulators encode frames with the protocol modules' own field tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from bmslib.sim.battery import BatteryModel

if TYPE_CHECKING:
    from bmslib.sim.trace import FrameTrace

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GattChar:
    uuid: str
    properties: tuple[str, ...]  # bleak names: read, write, write-without-response, notify, indicate


@dataclass(frozen=True, slots=True)
class GattService:
    uuid: str
    chars: tuple[GattChar, ...]


@dataclass(frozen=True, slots=True)
class Advertisement:
    name: str | None
    service_uuids: tuple[str, ...] = ()
    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    rssi: int = -60
    connectable: bool = True
    service_data: Mapping[str, bytes] = field(default_factory=dict)  # service UUID -> data


@dataclass
class Faults:
    """Fault knobs, changeable at any time by tests."""

    latency: float = 0.0  # [s] before the first chunk of a reply
    chunk_interval: float = 0.0  # [s] between chunks of one frame
    drop_chunk: float = 0.0  # probability a chunk is lost
    corrupt_chunk: float = 0.0  # probability a chunk has one byte flipped
    #: set: instead of the above, ``corrupt_chunk`` is the probability that a frame has one byte replaced with
    #: this value (one byte at most per frame, always a change: every sum and CRC check catches it)
    corrupt_to: int | None = None
    junk: float = 0.0  # probability of junk bytes before a frame
    disconnect_after: int | None = None  # drop the link after this many host writes (once)
    disconnect_mid_frame: bool = False  # when dropping, do it halfway through a reply
    mute: bool = False  # receive but never answer
    hidden: bool = False  # stop advertising and refuse connections
    connect_delay: float = 0.0  # [s] a connect takes this long


class Link(Protocol):
    """What an emulator sees of the connected host (the simulated bleak client)."""

    def deliver(self, char_uuid: str, data: bytes) -> None: ...

    def drop(self) -> None: ...


class Emulator(ABC):
    """Base class of the per-BMS emulators."""

    #: the ``type`` name this emulator speaks for
    type_name: ClassVar[str]
    #: bytes per notification chunk (BLE 4.x default MTU 23 minus 3 bytes of ATT header)
    mtu: int = 20
    #: device options the demo (``--demo``) sets for its device of this type, e.g. a key that
    #: matches the emulator's own (emulators are built with default constructor options there)
    demo_options: ClassVar[Mapping[str, str]] = {}

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None) -> None:
        self.address = address.upper()
        self.name = name
        self.rng = rng or random.Random()
        self.battery = battery or BatteryModel(rng=self.rng)
        self.faults = faults or Faults()
        self.link: Link | None = None
        self.requests = 0  # host writes received (for fault injection and tests)
        self.connections = 0
        self.writes: list[tuple[str, bytes]] = []  # host writes, newest last (bounded)
        self._tx: asyncio.Queue[tuple[str, bytes, bool, int | None]] | None = None
        self._tx_task: asyncio.Task[None] | None = None
        self._drop_mid_frame = False
        #: opt-in delivery record for benchmarks (set by the radio): frames are numbered through the
        #: battery's cycle count and their delivery is logged (see :mod:`bmslib.sim.trace`)
        self.trace: FrameTrace | None = None

    # --- to implement ---
    @property
    @abstractmethod
    def gatt(self) -> tuple[GattService, ...]:
        """Services and characteristics the device exposes."""

    @abstractmethod
    def advertisement(self) -> Advertisement:
        """What the device advertises."""

    @abstractmethod
    def handle_write(self, char_uuid: str, data: bytes) -> None:
        """React to a host write (answer with :meth:`notify`)."""

    def handle_read(self, char_uuid: str) -> bytes:
        """Value of a readable characteristic."""
        raise KeyError(char_uuid)

    def on_connect(self) -> None:
        """Hook: a host connected."""

    def on_disconnect(self) -> None:
        """Hook: the host disconnected (or we dropped it)."""

    # --- radio side, called by the simulated bleak client ---
    def attach(self, link: Link) -> None:
        self.link = link
        self.connections += 1
        self._tx = asyncio.Queue()
        self._tx_task = asyncio.get_running_loop().create_task(self._sender(), name=f"sim-tx-{self.name}")
        self.on_connect()

    def detach(self) -> None:
        if self.link is None:
            return
        self.link = None
        if self._tx_task is not None:
            self._tx_task.cancel()
            self._tx_task = None
        self._tx = None
        self.on_disconnect()

    def receive_write(self, char_uuid: str, data: bytes) -> None:
        self.requests += 1
        self.writes.append((char_uuid, bytes(data)))
        del self.writes[:-64]
        f = self.faults
        if f.disconnect_after is not None and self.requests >= f.disconnect_after:
            f.disconnect_after = None
            if not f.disconnect_mid_frame:
                self.drop_link()
                return
            self._drop_mid_frame = True
        if f.mute:
            return
        self.handle_write(char_uuid, bytes(data))

    def drop_link(self) -> None:
        """The device ends the connection (out of range, reset, ...)."""
        link = self.link
        self.detach()
        if link is not None:
            link.drop()

    # --- sending ---
    @property
    def notify_uuid(self) -> str:
        for svc in self.gatt:
            for ch in svc.chars:
                if "notify" in ch.properties:
                    return ch.uuid
        raise LookupError("emulator has no notify characteristic")

    def notify(self, frame: bytes, char_uuid: str | None = None, *, raw: bool = False) -> None:
        """Queue ``frame`` for the host, split into MTU chunks (``raw``: no fault injection)."""
        if self._tx is None:
            return
        stamp = None
        if self.trace is not None:  # the frame was encoded with this count: it is the frame's number
            stamp = self.battery.cycles
            self.battery.cycles = self.trace.next_stamp(stamp)
        self._tx.put_nowait((char_uuid or self.notify_uuid, bytes(frame), raw, stamp))

    async def _sender(self) -> None:
        assert self._tx is not None
        queue = self._tx
        while True:
            uuid, frame, raw, stamp = await queue.get()
            f = self.faults
            if f.latency and not raw:
                await asyncio.sleep(f.latency)
            if not raw and f.junk and self.rng.random() < f.junk:
                self._deliver(uuid, bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 8))))
            chunks = [frame[i:i + self.mtu] for i in range(0, len(frame), self.mtu)] or [b""]
            hit, to = -1, f.corrupt_to  # the chunk of this frame that gets the byte ``to``
            if not raw and to is not None and f.corrupt_chunk and self.rng.random() < f.corrupt_chunk:
                hit = self.rng.randrange(len(chunks))
            for n, piece in enumerate(chunks):
                chunk = piece
                if self._drop_mid_frame and n >= len(chunks) // 2:
                    self._drop_mid_frame = False
                    self.drop_link()
                    return
                if not raw and f.drop_chunk and self.rng.random() < f.drop_chunk:
                    continue
                if n == hit and chunk and to is not None:
                    pos = self.rng.randrange(len(chunk))
                    byte = to if chunk[pos] != to else chunk[pos] ^ 0x80
                    chunk = chunk[:pos] + bytes((byte,)) + chunk[pos + 1:]
                elif not raw and to is None and f.corrupt_chunk and chunk and self.rng.random() < f.corrupt_chunk:
                    pos = self.rng.randrange(len(chunk))
                    chunk = chunk[:pos] + bytes((chunk[pos] ^ (1 << self.rng.randrange(8)),)) + chunk[pos + 1:]
                self._deliver(uuid, chunk)
                if stamp is not None and n == len(chunks) - 1 and self.trace is not None and self.link is not None:
                    self.trace.delivered(self.address, stamp)
                if f.chunk_interval and not raw:
                    await asyncio.sleep(f.chunk_interval)
                elif n % 8 == 7:
                    await asyncio.sleep(0)

    def _deliver(self, uuid: str, chunk: bytes) -> None:
        if self.link is not None:
            self.link.deliver(uuid, chunk)

    async def aclose(self) -> None:
        """Stop background work (used when a radio shuts down)."""
        task = self._tx_task
        self.detach()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

"""Driver contract: a thin layer joining a sans-IO protocol to the shared BLE transport.

The sampler calls :meth:`Driver.connect`, :meth:`Driver.read` (one fresh :class:`Reading`) and,
between two reads, :meth:`Driver.set_switch`. Drivers hold no sampling policy (periods, retries,
back-off): that is the sampler's job.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from bmslib.ble.backend import BleBackend
from bmslib.ble.transport import BleTransport, FrameMatch
from bmslib.errors import UnsupportedError
from bmslib.model import DeviceInfo, Reading
from bmslib.protocol.base import Codec

if TYPE_CHECKING:
    from bmslib.config.settings import DeviceConfig

DeviceLog = logging.LoggerAdapter[logging.Logger]


class Driver(ABC):
    """One device of one type."""

    #: switches this type offers (names from bmslib.model.SWITCH_NAMES)
    switches: ClassVar[frozenset[str]] = frozenset()
    #: seconds to wait for one reply
    request_timeout: ClassVar[float] = 5.0

    @property
    def offered_switches(self) -> frozenset[str]:
        """Switches this device offers; a driver narrows the type's set once it knows the variant."""
        return self.switches

    @property
    def read_timeout(self) -> float:
        """Seconds one complete :meth:`read` may take (all its requests)."""
        return 3 * self.request_timeout

    def __init__(self, config: DeviceConfig, *, address: str, backend: BleBackend, log: DeviceLog) -> None:
        self.config = config
        self.address = address
        self.backend = backend
        self.log = log
        self.device_info = DeviceInfo()

    @property
    @abstractmethod
    def is_connected(self) -> bool: ...

    async def prepare(self) -> None:
        """Find the device (scan) before :meth:`connect`; the sampler runs this outside its connect lock."""

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def disconnect(self) -> None: ...

    @abstractmethod
    async def read(self) -> Reading:
        """One fresh reading. Raises BmsError subclasses (timeouts, disconnects, FrameError)."""

    async def set_switch(self, name: str, on: bool) -> None:
        """Ask the device to switch ``name``; the sampler reads the state back afterwards."""
        raise UnsupportedError(f"{type(self).__name__} has no switch {name!r}")

    @property
    def rssi(self) -> int | None:
        return None

    @property
    def slot_wanted(self) -> bool:
        """The device's connection holds a slot another device waits for: the sampler disconnects after the read
        even with keep_alive (ESPHome proxies share a few slots among the devices; never so on BlueZ)."""
        return False

    def absorb(self, reading: Reading) -> Reading:
        """Keep what a reading says about the device (device info)."""
        info = reading.get("device_info")
        if info is not None:
            self.device_info = self.device_info.merged(info)
        return reading


class BleDriver(Driver):
    """A driver talking to its device through :class:`BleTransport` and a sans-IO :class:`Codec`."""

    service_uuid: ClassVar[str]
    notify_uuid: ClassVar[str]
    write_uuid: ClassVar[str]
    #: None: write-without-response when the characteristic offers it
    write_response: ClassVar[bool | None] = None
    #: pair (bond) with the device after connecting
    needs_pairing: ClassVar[bool] = False

    def __init__(self, config: DeviceConfig, *, address: str, backend: BleBackend, log: DeviceLog) -> None:
        super().__init__(config, address=address, backend=backend, log=log)
        self.transport = BleTransport(address, backend=backend, log=log, adapter=config.adapter,
                                      debug=config.debug, pair=self.needs_pairing)
        self.codec = self.make_codec()

    @abstractmethod
    def make_codec(self) -> Codec: ...

    @property
    def is_connected(self) -> bool:
        return self.transport.is_connected

    @property
    def rssi(self) -> int | None:
        return self.transport.rssi

    @property
    def slot_wanted(self) -> bool:
        return self.transport.slot_wanted

    async def prepare(self) -> None:
        await self.transport.locate()

    async def connect(self) -> None:
        if self.transport.is_connected:
            return
        await self.transport.connect()
        try:
            await self.transport.subscribe(self.notify_uuid, self.codec.assembler())
            await self.on_connected()
        except BaseException:
            await self.transport.disconnect()
            raise

    async def on_connected(self) -> None:
        """Hook: session set-up after subscribing (authentication, device info, stream start)."""

    async def disconnect(self) -> None:
        await self.transport.disconnect()

    async def send(self, data: bytes) -> None:
        await self.transport.write(self.write_uuid, data, response=self.write_response)

    async def query(self, data: bytes, match: FrameMatch, timeout: float | None = None) -> Reading:
        """Send a request, wait for the matching frame, decode it."""
        frame = await self.transport.request(self.write_uuid, data, match, timeout or self.request_timeout,
                                             response=self.write_response)
        return self.absorb(self.codec.decode(frame))

"""Passive advertisement listening: the advertisements of configured devices, without connecting.

An :class:`AdvertHub` (one per :class:`~bmslib.ble.backend.BleBackend`) runs one bleak scanner per adapter,
shared by every :class:`AdvertListener` on that adapter: the scanner starts with the first listener and stops
with the last. Each listener picks its device's advertisements out of everything heard with the BLE layer's
one :class:`~bmslib.ble.address.AddressMatcher` and queues them, as bleak-free :class:`Advertisement` values,
until its driver takes them. Used by Victron Instant Readout; works with BlueZ and the simulated radio alike
(both are bleak scanner backends).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from bmslib.ble.adapter import adapter_name
from bmslib.ble.address import AddressMatcher
from bmslib.ble.radio_errors import RADIO_ERRORS, connect_error
from bmslib.errors import BmsDisconnectedError

#: makes a bleak scanner (:meth:`BleBackend.scanner`): ``adapter`` and ``detection_callback`` keywords
ScannerFactory = Callable[..., BleakScanner]

#: advertisements a listener keeps until its driver takes them; older ones are dropped (each advertisement
#: of a device carries its whole state, so only the newest matter)
QUEUE_SIZE = 32


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One advertisement of a device, as heard by the scanner."""

    address: str
    name: str | None  # advertised local name, else the name the stack knows the device by
    rssi: int | None  # [dBm]
    manufacturer_data: Mapping[int, bytes]  # company id -> data after the id
    service_uuids: tuple[str, ...] = ()
    service_data: Mapping[str, bytes] = field(default_factory=dict)


def advertisement_of(device: BLEDevice, adv: AdvertisementData) -> Advertisement:
    """What bleak reports of one advertisement, as the bleak-free value listeners get."""
    return Advertisement(address=device.address, name=adv.local_name or device.name, rssi=adv.rssi,
                         manufacturer_data={k: bytes(v) for k, v in adv.manufacturer_data.items()},
                         service_uuids=tuple(adv.service_uuids),
                         service_data={k: bytes(v) for k, v in adv.service_data.items()})


class AdvertListener:
    """The advertisements of one configured device (made by :meth:`AdvertHub.listener`).

    :meth:`start` and :meth:`stop` join and leave the shared scanner; in between, advertisements of the
    device queue up (the newest :data:`QUEUE_SIZE`) until :meth:`take` or :meth:`next` returns them.
    """

    def __init__(self, hub: AdvertHub, matcher: AddressMatcher, adapter: str | None) -> None:
        self.hub = hub
        self.matcher = matcher
        self.adapter = adapter
        self._queue: deque[Advertisement] = deque(maxlen=QUEUE_SIZE)
        self._arrived = asyncio.Event()
        self._scanner: _SharedScanner | None = None  # the scanner listened to, while listening

    @property
    def listening(self) -> bool:
        return self._scanner is not None

    async def start(self) -> None:
        """Listen (a no-op while listening); the queue starts empty.

        Raises BluetoothUnavailableError (no adapter, BlueZ or D-Bus) or BmsConnectError (the scan could
        not start).
        """
        if self._scanner is None:
            self._queue.clear()
            await self.hub._join(self)

    async def stop(self) -> None:
        """Stop listening (idempotent): queued advertisements are dropped and a waiting :meth:`next` raises
        BmsDisconnectedError. Raises nothing."""
        if self._scanner is not None:
            await self.hub._leave(self)
        self._queue.clear()
        self._arrived.set()

    def take(self) -> list[Advertisement]:
        """The queued advertisements, oldest first, without waiting; the queue is empty afterwards."""
        taken = list(self._queue)
        self._queue.clear()
        return taken

    async def next(self) -> Advertisement:
        """The oldest queued advertisement, waiting for one if none is queued (callers bound the wait with a
        timeout). Raises BmsDisconnectedError when not listening, or when :meth:`stop` ends the wait."""
        while not self._queue:
            if self._scanner is None:
                raise BmsDisconnectedError(f"{self.matcher.address}: not listening")
            self._arrived.clear()
            await self._arrived.wait()
        return self._queue.popleft()

    def _heard(self, advertisement: Advertisement) -> None:
        self._queue.append(advertisement)
        self._arrived.set()


class _SharedScanner:
    """One running bleak scanner and the listeners it feeds."""

    def __init__(self) -> None:
        self.scanner: BleakScanner | None = None
        self.listeners: list[AdvertListener] = []

    def detected(self, device: BLEDevice, adv: AdvertisementData) -> None:
        """bleak's detection callback: the advertisement goes to every listener whose device sent it."""
        advertisement: Advertisement | None = None
        for listener in self.listeners:
            if listener.matcher.matches(device.address, adv.local_name, device.name):
                advertisement = advertisement or advertisement_of(device, adv)
                listener._heard(advertisement)


class AdvertHub:
    """The shared scanners of one backend: one per adapter, running while at least one listener listens."""

    def __init__(self, scanner: ScannerFactory, *, simulated: bool) -> None:
        self._make_scanner = scanner
        self.simulated = simulated
        self._scanners: dict[str | None, _SharedScanner] = {}
        self._lock = asyncio.Lock()  # joins and leaves one at a time: a scanner starts and stops once

    def listener(self, address: str, *, adapter: str | None = None) -> AdvertListener:
        """A listener for the device configured as ``address`` (MAC or advertised name), heard through
        ``adapter`` (``hciN`` or the adapter's MAC; None: the default adapter)."""
        return AdvertListener(self, AddressMatcher(address), adapter)

    @property
    def scanners_running(self) -> int:
        """How many scanners run (diagnostics, tests)."""
        return len(self._scanners)

    async def _join(self, listener: AdvertListener) -> None:
        async with self._lock:
            adapter = listener.adapter
            if adapter and not self.simulated:
                adapter = await adapter_name(adapter)
            shared = self._scanners.get(adapter)
            if shared is None:
                shared = _SharedScanner()
                kwargs: dict[str, Any] = {"adapter": adapter, "detection_callback": shared.detected}
                try:
                    scanner = self._make_scanner(**kwargs)
                    await scanner.start()
                except RADIO_ERRORS as exc:
                    raise connect_error(exc, listener.matcher.address, doing="scan failed: ") from exc
                shared.scanner = scanner
                self._scanners[adapter] = shared
            shared.listeners.append(listener)
            listener._scanner = shared

    async def _leave(self, listener: AdvertListener) -> None:
        async with self._lock:
            shared, listener._scanner = listener._scanner, None
            if shared is None or listener not in shared.listeners:
                return
            shared.listeners.remove(listener)
            if shared.listeners:
                return
            for key, running in list(self._scanners.items()):
                if running is shared:
                    del self._scanners[key]
            if shared.scanner is not None:
                with contextlib.suppress(*RADIO_ERRORS):
                    async with asyncio.timeout(5):
                        await shared.scanner.stop()

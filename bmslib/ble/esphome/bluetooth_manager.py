"""habluetooth's ``BluetoothManager``, contained: the one table of what every proxy hears (and how well), made
for proxies only.

habluetooth keeps its manager in a process-wide slot (``habluetooth.set_manager``) that bleak-esphome's
``connect_scanner`` and every scanner read while they are built, and its ``async_setup`` replaces bleak's
``BleakClient``/``BleakScanner`` with its own wrappers, lists the host's BlueZ adapters and opens a Bluetooth
management socket. batmon needs none of that (the simulator and the host's adapters keep bleak's own classes), so
:class:`ProxyBluetoothManager` is never set up that way: :meth:`start` does only what proxies need, and
:func:`bound` puts a manager into habluetooth's slot for the synchronous moment a proxy's scanner is built, and
puts back what was there. So one manager per daemon, several in one process (tests), and bleak untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from bluetooth_adapters import AdapterDetails, BluetoothAdapters
from habluetooth import BluetoothManager, BluetoothServiceInfoBleak
from habluetooth.central_manager import CentralBluetoothManager

AdvertisementListener = Callable[[BluetoothServiceInfoBleak], None]


class _NoLocalAdapters(BluetoothAdapters):
    """No BlueZ adapters: the manager holds remote (proxy) scanners only, and never asks D-Bus."""

    async def refresh(self) -> None:
        return None

    @property
    def adapters(self) -> dict[str, AdapterDetails]:
        return {}

    @property
    def default_adapter(self) -> str:
        return ""

    @property
    def history(self) -> dict[str, Any]:
        return {}


class ProxyBluetoothManager(BluetoothManager):
    """The proxies' advertisement table, their connection slots, and listeners of new advertisements."""

    def __init__(self) -> None:
        super().__init__(bluetooth_adapters=_NoLocalAdapters())
        self.listeners: set[AdvertisementListener] = set()

    async def start(self) -> None:
        """What proxies need of ``async_setup``: the loop, and dropping devices no proxy hears any more. Not the
        rest (see the module's docstring)."""
        self._loop = asyncio.get_running_loop()
        self.async_setup_unavailable_tracking()

    def stop(self) -> None:
        """Stop the periodic work; leaves bleak's classes alone (``async_stop`` would reset them)."""
        self.shutdown = True
        if self._cancel_unavailable_tracking is not None:
            self._cancel_unavailable_tracking.cancel()
            self._cancel_unavailable_tracking = None
        for task in list(self._background_tasks):
            task.cancel()
        self._cancel_allocation_callbacks()

    def _discover_service_info(self, service_info: BluetoothServiceInfoBleak) -> None:
        """habluetooth calls this for every advertisement that changed something (not for repeats)."""
        for listener in list(self.listeners):
            listener(service_info)


@contextlib.contextmanager
def bound(manager: BluetoothManager) -> Iterator[None]:
    """habluetooth's process-wide manager is ``manager`` within the block (keep it synchronous: no await), and
    what it was before afterwards."""
    previous = CentralBluetoothManager.manager
    CentralBluetoothManager.manager = manager
    try:
        yield
    finally:
        CentralBluetoothManager.manager = previous

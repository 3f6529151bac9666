"""The proxies as a bleak backend: a client backend and a scanner backend bound to one
:class:`~bmslib.ble.esphome.manager.ProxyManager`, so that :class:`~bmslib.ble.transport.BleTransport`, the drivers,
``scan``, the advertisement listeners and aiobmsble's clients run unchanged through ESPHome proxies.

* :class:`ProxyScanner` reports what the proxies hear: first everything in the manager's table (habluetooth reports
  a device again only when its advertisement changes, so a scan that only waited for news could miss a device that
  sits still), then each new advertisement. A scanner made with ``bluez={"adapter": <proxy name>}`` (a device's
  ``adapter:`` naming a proxy) reports that proxy's only. The details of each device name the proxy (``proxy``).
* :class:`ProxyClient` connects through the proxy that hears the device best and has a free connection slot (one
  proxy only when pinned the same way), waiting in line for a slot (:mod:`~bmslib.ble.esphome.slots`), and then
  works as bleak-esphome's ``ESPHomeClient`` on that proxy. When a proxy is gone, the next connect goes through
  another one that hears the device.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from aioesphomeapi.core import APIConnectionError
from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bleak_esphome.backend.client import ESPHomeClient
from habluetooth import BluetoothServiceInfoBleak

from bmslib.ble.esphome.slots import NoProxyHearsError

if TYPE_CHECKING:
    from bmslib.ble.esphome.bluetooth_manager import ProxyBluetoothManager
    from bmslib.ble.esphome.link import ProxyLink
    from bmslib.ble.esphome.slots import SlotBroker


class ProxyTable(Protocol):
    """What the backends need of the :class:`~bmslib.ble.esphome.manager.ProxyManager` they are bound to."""

    bluetooth: ProxyBluetoothManager
    slots: SlotBroker[ProxyLink]
    links: list[ProxyLink]

    def link_for_source(self, source: str) -> ProxyLink | None: ...

    def paths(self, address: str, only: str | None = None) -> list[ProxyLink]: ...

    def describe_paths(self, address: str) -> str: ...

    def not_heard(self, only: str | None) -> str: ...

    def connected(self, address: str, link: ProxyLink) -> None: ...

    def released(self, address: str, link: ProxyLink) -> None: ...




async def _api[T](op: Awaitable[T]) -> T:
    """Await an ESPHomeClient call; an API error it lets through becomes bleak's (radio_errors types those)."""
    try:
        return await op
    except APIConnectionError as exc:
        raise BleakError(f"ESPHome API: {exc}") from exc


#: [s] between two reports of everything the proxies hear, while a scanner runs
REPLAY_INTERVAL = 1.0


def _pinned(kwargs: dict[str, Any]) -> str | None:
    """The proxy a device is pinned to: bleak's ``bluez={"adapter": ...}`` carries a device's ``adapter:``."""
    bluez = kwargs.get("bluez") or {}
    adapter = bluez.get("adapter") if isinstance(bluez, dict) else None
    return adapter if isinstance(adapter, str) and adapter else None


class ProxyScanner(BaseBleakScanner):
    """bleak scanner backend: the advertisements every proxy (or the pinned one) hears."""

    proxies: ProxyTable  # set on the per-manager subclass

    def __init__(self, detection_callback: AdvertisementDataCallback | None = None,
                 service_uuids: list[str] | None = None, scanning_mode: str = "active", **kwargs: Any) -> None:
        self._running = False  # before bleak's __init__, which registers the callback
        self._replayer: asyncio.Task[None] | None = None
        self._only = _pinned(kwargs)
        super().__init__(detection_callback, service_uuids)

    async def start(self) -> None:
        self.seen_devices = {}
        self._running = True
        self.proxies.bluetooth.listeners.add(self._heard)
        self._replay()
        self._replayer = asyncio.get_running_loop().create_task(self._replay_often(), name="proxy-scanner")

    async def stop(self) -> None:
        self._running = False
        self.proxies.bluetooth.listeners.discard(self._heard)
        replayer, self._replayer = self._replayer, None
        if replayer is not None:
            replayer.cancel()

    async def _replay_often(self) -> None:
        """habluetooth reports a change of the best path only: what a weaker proxy hears, and devices that sit
        still, come from the table, read again every :data:`REPLAY_INTERVAL`."""
        while self._running:
            await asyncio.sleep(REPLAY_INTERVAL)
            self._replay()

    def register_detection_callback(self, callback: AdvertisementDataCallback | None) -> Callable[[], None]:
        remove = super().register_detection_callback(callback)
        if self._running:  # a callback joining a running scan (bleak's advertisement_data()) gets the table too
            asyncio.get_running_loop().call_soon(self._replay)
        return remove

    def _replay(self) -> None:
        if not self._running:
            return
        for link in self.proxies.links:
            scanner = link.client_data.scanner if link.client_data is not None else None
            if scanner is None:
                continue
            for device, adv in scanner.discovered_devices_and_advertisement_data.values():
                self._report(link, device, adv)

    def _heard(self, info: BluetoothServiceInfoBleak) -> None:
        link = self.proxies.link_for_source(info.source)
        if link is not None:
            self._report(link, info.device, info.advertisement)

    def _report(self, link: ProxyLink, device: BLEDevice, adv: AdvertisementData) -> None:
        if self._only is not None and link.name != self._only:
            return
        if not self.is_allowed_uuid(list(adv.service_uuids)):
            return
        details = {**(device.details if isinstance(device.details, dict) else {}), "proxy": link.name}
        # one bleak device per proxy that hears it: each report keeps the proxy (and RSSI) it came through
        reported = self.create_or_update_device(f"{device.address}/{link.name}", device.address,
                                                adv.local_name or device.name, details, adv)
        self.call_detection_callbacks(reported, adv)


class ProxyClient(BaseBleakClient):
    """bleak client backend: a device reached through the best proxy with a free slot."""

    proxies: ProxyTable  # set on the per-manager subclass

    def __init__(self, address_or_ble_device: BLEDevice | str, *,
                 disconnected_callback: Callable[[], None] | None = None, timeout: float = 20.0,
                 **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._only = _pinned(kwargs)
        self._inner: ESPHomeClient | None = None
        self._slot: ProxyLink | None = None
        self._own_services: BleakGATTServiceCollection | None = None

    @property
    def services(self) -> BleakGATTServiceCollection | None:
        return self._inner.services if self._inner is not None else self._own_services

    @services.setter
    def services(self, value: BleakGATTServiceCollection | None) -> None:
        self._own_services = value

    @property
    def via(self) -> str | None:
        """The proxy this client is connected through."""
        return self._slot.name if self._slot is not None and self._inner is not None else None

    @property
    def name(self) -> str:
        return self._inner.name if self._inner is not None else self.address

    @property
    def mtu_size(self) -> int:
        return self._inner.mtu_size if self._inner is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._inner is not None and self._inner.is_connected

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        proxies = self.proxies
        try:
            async with asyncio.timeout(self._timeout):
                link = await proxies.slots.acquire(self.address, lambda: proxies.paths(self.address, self._only))
        except NoProxyHearsError:
            raise BleakDeviceNotFoundError(self.address, f"{self.address}: {proxies.not_heard(self._only)}") from None
        except TimeoutError:
            raise BleakError(f"{self.address}: no free connection slot on {proxies.describe_paths(self.address)} "
                             f"within {self._timeout:g} s") from None
        self._slot = link
        try:
            device = self._device_on(link)
            assert link.client_data is not None  # _device_on found its scanner
            inner = ESPHomeClient(device, client_data=link.client_data, disconnected_callback=self._lost,
                                  timeout=self._timeout)
            await _api(inner.connect(pair, **kwargs))
        except BaseException:
            self._release()
            raise
        self._inner = inner
        proxies.connected(self.address, link)

    def _device_on(self, link: ProxyLink) -> BLEDevice:
        """The device as ``link``'s scanner knows it (its details name the proxy, as ESPHomeClient needs)."""
        scanner = link.client_data.scanner if link.client_data is not None else None
        found = scanner.get_discovered_device_advertisement_data(self.address) if scanner is not None else None
        if found is None:
            raise BleakDeviceNotFoundError(self.address, f"{self.address}: proxy {link.name} no longer hears it")
        return found[0]

    def _release(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            self.proxies.released(self.address, slot)

    def _lost(self) -> None:
        """The device or the proxy dropped the link."""
        self._inner = None
        self._release()
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        inner, self._inner = self._inner, None
        try:
            if inner is not None:
                await _api(inner.disconnect())
        finally:
            self._release()

    def _require(self) -> ESPHomeClient:
        if self._inner is None or not self._inner.is_connected:
            raise BleakError(f"{self.address}: not connected")
        return self._inner

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        await _api(self._require().pair(*args, **kwargs))

    async def unpair(self) -> None:
        await _api(self._require().unpair())

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        return await _api(self._require().read_gatt_char(characteristic, **kwargs))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any) -> bytearray:
        return await _api(self._require().read_gatt_descriptor(descriptor, **kwargs))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer,
                              response: bool) -> None:
        await _api(self._require().write_gatt_char(characteristic, data, response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        await _api(self._require().write_gatt_descriptor(descriptor, data))

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback,
                           **kwargs: Any) -> None:
        await _api(self._require().start_notify(characteristic, callback, **kwargs))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        await _api(self._require().stop_notify(characteristic))

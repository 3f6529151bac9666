"""The daemon's ESPHome proxies: one :class:`ProxyManager` per daemon (no module state) owns the API connection to
each proxy (:class:`~bmslib.ble.esphome.link.ProxyLink`), the table of what they hear
(:class:`~bmslib.ble.esphome.bluetooth_manager.ProxyBluetoothManager`), the devices' share of their connection slots
(:class:`~bmslib.ble.esphome.slots.SlotBroker`) and the bleak backend made of them (:attr:`ProxyManager.backend`).

Use::

    async with ProxyManager(config.bluetooth_proxies) as proxies:   # connects each proxy (in the background)
        transport = BleTransport(address, backend=proxies.backend, ...)

Leaving the block closes every API connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

from bmslib.ble.backend import BleBackend
from bmslib.ble.esphome.backend import ProxyClient, ProxyScanner
from bmslib.ble.esphome.bluetooth_manager import ProxyBluetoothManager
from bmslib.ble.esphome.link import ProxyEndpoint, ProxyLink
from bmslib.ble.esphome.slots import SlotBroker


@dataclass(frozen=True)
class ProxyBackend(BleBackend):
    """The bleak backend through ESPHome proxies (:class:`ProxyManager` makes it)."""

    proxies: ProxyManager | None = field(default=None, repr=False, compare=False)

    def slot_wanted(self, address: str) -> bool:
        return self.proxies is not None and self.proxies.slot_wanted(address)


class ProxyManager:
    """Every configured proxy, and the bleak backend through them."""

    def __init__(self, endpoints: Sequence[ProxyEndpoint]) -> None:
        self.bluetooth = ProxyBluetoothManager()
        self.slots: SlotBroker[ProxyLink] = SlotBroker()
        self.links = [ProxyLink(e, self.bluetooth, self._changed) for e in endpoints]
        self._holding: dict[str, ProxyLink] = {}  # device address (upper case) -> the proxy it is connected through
        self._changes = asyncio.Event()
        self.started = False
        client = type("BoundProxyClient", (ProxyClient,), {"proxies": self})
        scanner = type("BoundProxyScanner", (ProxyScanner,), {"proxies": self})
        self.backend = ProxyBackend(client, scanner, proxies=self)

    # --- life cycle ---
    async def start(self) -> None:
        """Start connecting every proxy (in the background, with back-off); returns at once. Idempotent."""
        if self.started:
            return
        self.started = True
        await self.bluetooth.start()
        for link in self.links:
            await link.start()

    async def stop(self) -> None:
        """Close every API connection. Raises nothing."""
        self.started = False
        for link in self.links:
            await link.stop()
        self.bluetooth.stop()

    async def __aenter__(self) -> ProxyManager:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def wait_connected(self, count: int | None = None) -> None:
        """Until ``count`` proxies (default: all) are connected (callers bound the wait with a timeout)."""
        want = len(self.links) if count is None else count
        while sum(link.usable for link in self.links) < want:
            self._changes.clear()
            await self._changes.wait()

    def _changed(self) -> None:
        self._changes.set()
        self.slots.changed()

    # --- for the backend ---
    def link_for_source(self, source: str) -> ProxyLink | None:
        return next((link for link in self.links if link.source == source and link.client_data is not None), None)

    def link_named(self, name: str) -> ProxyLink | None:
        return next((link for link in self.links if link.name == name), None)

    def paths(self, address: str, only: str | None = None) -> list[ProxyLink]:
        """The usable proxies that hear ``address`` (and may be used for it), strongest signal first."""
        heard = sorted(self.bluetooth.async_scanner_devices_by_address(address.upper(), True),
                       key=lambda d: d.advertisement.rssi, reverse=True)
        paths: list[ProxyLink] = []
        for seen in heard:
            link = self.link_for_source(seen.scanner.source)
            if link is not None and link.usable and (only is None or link.name == only) and link not in paths:
                paths.append(link)
        return paths

    def describe_paths(self, address: str) -> str:
        return ", ".join(f"{p.name} ({self.slots.held(p.name)}/{p.slot_limit} slots in use)"
                         for p in self.paths(address)) or "no proxy"

    def not_heard(self, only: str | None) -> str:
        """Why no proxy can reach a device: which proxies there are and which of them are connected."""
        links = [link for link in self.links if only is None or link.name == only]
        states = ", ".join(f"{link.name} ({'connected' if link.usable else 'not connected'})" for link in links)
        return f"not heard by {'proxy' if only else 'any proxy'} ({states or 'none configured'})"

    def connected(self, address: str, link: ProxyLink) -> None:
        self._holding[address.upper()] = link

    def released(self, address: str, link: ProxyLink) -> None:
        if self._holding.get(address.upper()) is link:
            del self._holding[address.upper()]
        self.slots.release(link)

    def slot_wanted(self, address: str) -> bool:
        """The device at ``address`` holds a slot that another device waits for."""
        link = self._holding.get(address.upper())
        return link is not None and self.slots.wanted(link.name)

    def via(self, address: str) -> str | None:
        """The proxy the device at ``address`` is connected through, if any."""
        link = self._holding.get(address.upper())
        return link.name if link is not None else None

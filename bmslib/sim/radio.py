"""The simulated radio: bleak client and scanner backends of our own, serving emulators.

``BleakClient(..., backend=radio.client_backend())`` and ``BleakScanner(backend=radio.scanner_backend())``
run bleak's real public API (and bleak-retry-connector's) against the emulators registered here.
The backend classes are made per radio (a subclass bound to the instance), so nothing is global.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Any

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

from bmslib.sim.bank import ParallelBank
from bmslib.sim.emulator import Emulator, Link
from bmslib.sim.trace import FrameTrace

_LOG = logging.getLogger(__name__)

ADVERTISE_INTERVAL = 0.1  # [s] between advertisement reports while scanning


class SimRadio:
    """The air around the simulated devices: registers emulators by address (and holds the parallel banks
    their batteries may share)."""

    def __init__(self, *, trace: FrameTrace | None = None) -> None:
        self.trace = trace  # opt-in: frames of every emulator added are numbered and their delivery logged
        self._devices: dict[str, Emulator] = {}
        self._by_sim_id: dict[str, Emulator] = {}
        self._banks: dict[str, ParallelBank] = {}
        client_cls = type("SimBleakClient", (SimBleakClient,), {"radio": self})
        scanner_cls = type("SimBleakScanner", (SimBleakScanner,), {"radio": self})
        self._client_cls: type[SimBleakClient] = client_cls
        self._scanner_cls: type[SimBleakScanner] = scanner_cls

    def add(self, emulator: Emulator, sim_id: str | None = None) -> Emulator:
        if emulator.address in self._devices:
            raise ValueError(f"address {emulator.address} already on the radio")
        self._devices[emulator.address] = emulator
        if self.trace is not None:
            emulator.trace = self.trace
        if sim_id is not None:
            self._by_sim_id[sim_id] = emulator
        return emulator

    def remove(self, address: str) -> None:
        em = self._devices.pop(address.upper(), None)
        if em is not None:
            em.drop_link()
            self._by_sim_id = {k: v for k, v in self._by_sim_id.items() if v is not em}

    def get(self, address: str) -> Emulator | None:
        return self._devices.get(address.upper())

    def by_sim_id(self, sim_id: str) -> Emulator | None:
        return self._by_sim_id.get(sim_id)

    def bank(self, name: str) -> ParallelBank:
        """The parallel bank called ``name`` (``sim:<id>?bank=<name>``), made at first use."""
        bank = self._banks.get(name)
        if bank is None:
            bank = self._banks[name] = ParallelBank.seeded(name)
        return bank

    @property
    def emulators(self) -> list[Emulator]:
        return list(self._devices.values())

    async def open_link(self, address: str, link: Link) -> Emulator:
        """Connect ``link`` (a host: the simulated bleak client, a simulated ESPHome proxy) to the device at
        ``address``, as the air allows: a hidden device is not found, a connect takes the device's
        ``connect_delay``, a device takes one connection at a time.

        Raises :class:`DeviceNotFound` or :class:`DeviceBusy`; the caller maps them to its own errors.
        """
        em = self.get(address)
        if em is None or em.faults.hidden:
            raise DeviceNotFound(address)
        if em.faults.connect_delay:
            await asyncio.sleep(em.faults.connect_delay)
            if em.faults.hidden:
                raise DeviceNotFound(address)
        if em.link is not None:
            raise DeviceBusy(address)
        em.attach(link)
        return em

    def client_backend(self) -> type[BaseBleakClient]:
        return self._client_cls

    def scanner_backend(self) -> type[BaseBleakScanner]:
        return self._scanner_cls

    async def aclose(self) -> None:
        for em in self._devices.values():
            await em.aclose()


class LinkRefused(Exception):
    """A connect on the simulated radio failed (see :meth:`SimRadio.open_link`)."""


class DeviceNotFound(LinkRefused):
    """No device at this address is in range."""


class DeviceBusy(LinkRefused):
    """The device is connected to another host and takes one connection at a time."""


def close_link(emulator: Emulator, link: Link) -> None:
    """The host ``link`` disconnects from ``emulator`` (nothing happens when another host holds it)."""
    if emulator.link is link:
        emulator.detach()


def sim_address(sim_id: str, salt: int = 0) -> str:
    """A stable, locally administered MAC for a simulated device id."""
    h = 0xCBF29CE484222325
    for b in f"{salt}:{sim_id}".encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    octets = [0x5E, *((h >> (8 * i)) & 0xFF for i in range(5))]
    return ":".join(f"{o:02X}" for o in octets)


class SimBleakClient(BaseBleakClient):
    """bleak client backend connecting to an emulator on a :class:`SimRadio`."""

    radio: SimRadio  # set on the per-radio subclass

    def __init__(self, address_or_ble_device: BLEDevice | str, *,
                 disconnected_callback: Callable[[], None] | None = None, timeout: float = 10.0,
                 **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._emulator: Emulator | None = None
        self._notify: dict[str, NotifyCallback] = {}
        self._chars: dict[str, BleakGATTCharacteristic] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        em = self.radio.get(self.address)
        return em.name if em else self.address

    @property
    def mtu_size(self) -> int:
        return (self._emulator.mtu if self._emulator else 20) + 3

    @property
    def is_connected(self) -> bool:
        return self._emulator is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            em = await self.radio.open_link(self.address, self)
        except DeviceNotFound:
            raise BleakDeviceNotFoundError(self.address,
                                           f"Device with address {self.address} was not found.") from None
        except DeviceBusy:
            raise BleakError(f"{self.address}: device accepts one connection and is connected to another "
                             "client") from None
        self.services = self._build_services(em)
        self._emulator = em

    def _build_services(self, em: Emulator) -> BleakGATTServiceCollection:
        coll = BleakGATTServiceCollection()
        handles = itertools.count(1)
        self._chars.clear()
        for svc in em.gatt:
            service = BleakGATTService(None, next(handles), svc.uuid)
            coll.add_service(service)
            for ch in svc.chars:
                char = BleakGATTCharacteristic(None, next(handles), ch.uuid, list(ch.properties),  # type: ignore[arg-type]
                                               lambda: em.mtu, service)
                coll.add_characteristic(char)
                self._chars.setdefault(ch.uuid, char)
        return coll

    async def disconnect(self) -> None:
        em, self._emulator = self._emulator, None
        self._notify.clear()
        if em is not None:
            close_link(em, self)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        em = self._require()
        pair_fn = getattr(em, "pair", None)
        if pair_fn is None:
            raise BleakError("device does not support pairing")
        pair_fn(*args, **kwargs)

    async def unpair(self) -> None:
        return None

    def _require(self) -> Emulator:
        if self._emulator is None:
            raise BleakError("Not connected")
        return self._emulator

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False,
                             **kwargs: Any) -> bytearray:
        em = self._require()
        if "read" not in characteristic.properties:
            raise BleakError(f"characteristic {characteristic.uuid} is not readable")
        try:
            return bytearray(em.handle_read(characteristic.uuid))
        except KeyError as exc:
            raise BleakError(f"read of {characteristic.uuid} failed") from exc

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False,
                                   **kwargs: Any) -> bytearray:
        raise BleakError("descriptors are not simulated")

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer,
                              response: bool) -> None:
        em = self._require()
        prop = "write" if response else "write-without-response"
        if prop not in characteristic.properties:
            raise BleakError(f"characteristic {characteristic.uuid} does not support {prop}")
        payload = bytes(data)
        # let the write leave before the device reacts, as on a real link
        await asyncio.sleep(0)
        if self._emulator is em:
            em.receive_write(characteristic.uuid, payload)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        raise BleakError("descriptors are not simulated")

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback,
                           **kwargs: Any) -> None:
        self._require()
        if not {"notify", "indicate"} & set(characteristic.properties):
            raise BleakError(f"characteristic {characteristic.uuid} does not notify")
        self._notify[characteristic.uuid] = callback

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._notify.pop(characteristic.uuid, None)

    # --- Link protocol (called by the emulator) ---
    def deliver(self, char_uuid: str, data: bytes) -> None:
        cb = self._notify.get(char_uuid)
        if cb is not None and self._loop is not None:
            self._loop.call_soon(cb, bytearray(data))

    def drop(self) -> None:
        """The device dropped the link: behave like BlueZ reporting an unsolicited disconnect."""
        if self._emulator is None:
            return
        self._emulator = None
        self._notify.clear()
        if self._disconnected_callback is not None and self._loop is not None:
            self._loop.call_soon(self._disconnected_callback)


class SimBleakScanner(BaseBleakScanner):
    """bleak scanner backend reporting the advertisements of the emulators on a :class:`SimRadio`."""

    radio: SimRadio  # set on the per-radio subclass

    def __init__(self, detection_callback: AdvertisementDataCallback | None = None,
                 service_uuids: list[str] | None = None, scanning_mode: str = "active", **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-scanner")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            for em in self.radio.emulators:
                if em.faults.hidden:
                    continue
                adv = em.advertisement()
                if not self.is_allowed_uuid(list(adv.service_uuids)):
                    continue
                data = AdvertisementData(
                    local_name=adv.name, manufacturer_data=dict(adv.manufacturer_data),
                    service_data=dict(adv.service_data),
                    service_uuids=list(adv.service_uuids), tx_power=None, rssi=adv.rssi, platform_data=(),
                )
                device = self.create_or_update_device(em.address, em.address, adv.name, {"sim": True}, data)
                self.call_detection_callbacks(device, data)
            await asyncio.sleep(ADVERTISE_INTERVAL)

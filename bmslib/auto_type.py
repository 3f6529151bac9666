"""``type: auto`` (or no ``type``): the device's type is detected from its advertisement at run time.

:class:`AutoDriver` is the device's driver until the type is known: its :meth:`~AutoDriver.prepare` (which the
sampler runs before each connect, outside the connect lock) listens for the device's advertisements through the
BLE layer's shared scanner, detects the type (:mod:`bmslib.detection`), logs it in one line and builds that
type's driver, to which it hands everything from then on. Until then each attempt fails with one error a person
can act on (not seen; seen but not recognised; ambiguous, naming the candidates): the sampler logs it, backs
off and retries, and the device stays unavailable. Nothing here ends the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable

from bmslib.ble.adverts import Advertisement
from bmslib.ble.backend import BleBackend
from bmslib.config.settings import DeviceConfig
from bmslib.detection import Detection, Detector
from bmslib.drivers.base import DeviceLog, Driver
from bmslib.errors import BmsConnectError, DeviceNotFoundError
from bmslib.family import DeviceType
from bmslib.model import DeviceInfo, Reading

#: [s] how long one attempt listens for the device's advertisements
LISTEN_TIME = 10.0
#: [s] of a read before the type is known (the sampler's read timeout is fixed when the device is built)
READ_TIMEOUT = 30.0

#: called once the type is known: (the type, its driver)
OnDetected = Callable[[DeviceType, Driver], None]


class DetectionError(BmsConnectError):
    """The device was heard, but its advertisement names no single type."""


class AutoDriver(Driver):
    """The driver of a device whose type is detected from its advertisement (module docstring)."""

    def __init__(self, config: DeviceConfig, *, address: str, backend: BleBackend, log: DeviceLog,
                 detector: Detector, on_detected: OnDetected | None = None, listen_time: float | None = None) -> None:
        super().__init__(config, address=address, backend=backend, log=log)
        self.detector = detector
        self.on_detected = on_detected
        self.listen_time = LISTEN_TIME if listen_time is None else listen_time
        self.inner: Driver | None = None  # the detected type's driver
        self.detected: DeviceType | None = None

    # --- delegated once detected ---
    @property
    def is_connected(self) -> bool:
        return self.inner is not None and self.inner.is_connected

    @property
    def offered_switches(self) -> frozenset[str]:
        return self.inner.offered_switches if self.inner is not None else frozenset()

    @property
    def read_timeout(self) -> float:
        return self.inner.read_timeout if self.inner is not None else READ_TIMEOUT

    @property
    def rssi(self) -> int | None:
        return self.inner.rssi if self.inner is not None else None

    @property
    def slot_wanted(self) -> bool:
        return self.inner is not None and self.inner.slot_wanted

    @property
    def device_info(self) -> DeviceInfo:
        return self.inner.device_info if self.inner is not None else self._info

    @device_info.setter
    def device_info(self, info: DeviceInfo) -> None:
        self._info = info

    async def prepare(self) -> None:
        if self.inner is None:
            self._use(await self._detect())
        assert self.inner is not None
        await self.inner.prepare()

    async def connect(self) -> None:
        if self.inner is None:
            raise DeviceNotFoundError(self.config.address, "its type is not detected yet")
        await self.inner.connect()

    async def disconnect(self) -> None:
        if self.inner is not None:
            await self.inner.disconnect()

    async def read(self) -> Reading:
        if self.inner is None:
            raise DeviceNotFoundError(self.config.address, "its type is not detected yet")
        return await self.inner.read()

    async def set_switch(self, name: str, on: bool) -> None:
        if self.inner is None:
            await super().set_switch(name, on)
            return
        await self.inner.set_switch(name, on)

    # --- detection ---
    async def _detect(self) -> tuple[DeviceType, Advertisement]:
        """Listen for the device's advertisements until one shows a single type, for at most ``listen_time``.

        Raises DeviceNotFoundError (not heard), DetectionError (heard, no single type), BluetoothUnavailableError
        or BmsConnectError (the scan failed)."""
        listener = self.backend.adverts.listener(self.address, adapter=self.config.adapter)
        heard: Advertisement | None = None
        found = Detection(None)
        await listener.start()
        try:
            deadline = time.monotonic() + self.listen_time
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.listen_time):
                    while time.monotonic() < deadline:
                        heard = _merged(heard, await listener.next())
                        found = self.detector.detect(address=heard.address, name=heard.name,
                                                     service_uuids=heard.service_uuids,
                                                     manufacturer_data=heard.manufacturer_data,
                                                     service_data=heard.service_data)
                        if found.type is not None:
                            return self.detector.types[found.type], heard
        finally:
            await listener.stop()
        set_type = "set `type:` to the device's type (`main.py scan` lists what it sees)"
        if heard is None:
            raise DeviceNotFoundError(self.config.address, f"type auto: no advertisement heard within "
                                      f"{self.listen_time:g} s (out of range, or connected to another app?); "
                                      f"the type is detected once it is heard, or {set_type}")
        name = heard.name or "no name"
        if found.ambiguous:
            raise DetectionError(self.config.address, f"type auto: its advertisement ({name}) fits several BMS "
                                 f"types ({', '.join(found.candidates)}); set `type:` to the one it is")
        raise DetectionError(self.config.address, f"type auto: its advertisement ({name}) matches no known "
                             f"type; {set_type}")

    def _use(self, detected: tuple[DeviceType, Advertisement]) -> None:
        dtype, heard = detected
        config = dataclasses.replace(self.config, type=dtype.name)
        if config.pin is not None and not dtype.accepts_pin:
            self.log.warning("type %s does not use a PIN; the configured pin is ignored", dtype.name)
            config = dataclasses.replace(config, pin=None)
        if config.pin is not None and dtype.pin_problem is not None and (why := dtype.pin_problem(config.pin)):
            self.log.warning("pin: %s; it is ignored", why)
            config = dataclasses.replace(config, pin=None)
        if config.key is not None and not dtype.accepts_key:
            self.log.warning("type %s does not use a key; the configured key is ignored", dtype.name)
            config = dataclasses.replace(config, key=None)
        self.log.info("%s: detected type %s from its advertisement (%s)", self.config.alias, dtype.name,
                      heard.name or "no name")
        self.inner = dtype.driver(config, address=self.address, backend=self.backend, log=self.log)
        self.detected = dtype
        if self.on_detected is not None:
            self.on_detected(dtype, self.inner)


def _merged(before: Advertisement | None, now: Advertisement) -> Advertisement:
    """What the device advertised so far: a name and data may come in separate packets (scan response)."""
    if before is None:
        return now
    return Advertisement(address=now.address, name=now.name or before.name, rssi=now.rssi,
                         manufacturer_data={**before.manufacturer_data, **now.manufacturer_data},
                         service_uuids=tuple(dict.fromkeys((*before.service_uuids, *now.service_uuids))),
                         service_data={**before.service_data, **now.service_data})

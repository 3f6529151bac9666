"""Victron SmartShunt / BMV Smart: GATT (connected, bonded) or Instant Readout (advertisements only).

:func:`make_driver` picks the mode per device: with ``key:`` the driver only listens to the
device's encrypted advertisements (:class:`VictronAdvDriver`: no connection, no pairing, any number
of listeners, VictronConnect keeps working); without it, it connects to the third-party GATT service
(:class:`VictronGattDriver`), pairing with ``pin:`` when one is set. The shunt has no switches.

Not on the shared request/response driver (bmslib.drivers.request_response): GATT mode subscribes to
values the shunt pushes (no requests), and Instant Readout does not connect at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import TYPE_CHECKING, ClassVar

from bmslib.ble.adverts import Advertisement
from bmslib.ble.backend import BleBackend
from bmslib.bms.victron.protocol import advertisement as victron_adv
from bmslib.bms.victron.protocol import gatt as victron
from bmslib.drivers.base import BleDriver, DeviceLog, Driver
from bmslib.errors import (
    BmsAuthError,
    BmsConnectError,
    BmsDisconnectedError,
    BmsError,
    BmsTimeoutError,
    CharacteristicNotFoundError,
    DeviceNotFoundError,
    FrameError,
    GattAuthError,
    GattError,
)
from bmslib.model import DeviceInfo, Reading, merge_readings
from bmslib.protocol.base import FrameAssembler

if TYPE_CHECKING:
    from bmslib.config.settings import DeviceConfig

#: What the user can do when pairing fails (never contains the PIN itself).
PAIRING_HELP = (
    "check that `pin:` is the SmartShunt's Bluetooth PIN (VictronConnect, default 000000) and that its GATT "
    "service is enabled in VictronConnect (Product info); on Linux bleak cannot type the PIN into BlueZ: pair "
    "once with bluetoothctl on the host (see the Victron page of the docs), or use Instant Readout with `key:`"
)
GATT_MISSING = (
    "the SmartShunt's GATT service is not there: enable it in VictronConnect (Product info), power-cycle the "
    "shunt and remove + re-pair the bond so the host's GATT cache is refreshed; or use Instant Readout with `key:`"
)
KEY_HELP = (
    "copy the key again in VictronConnect (device > Product info > Instant readout details > Encryption data) "
    "into this device's `key:`"
)


def make_driver(config: DeviceConfig, *, address: str, backend: BleBackend, log: DeviceLog) -> Driver:
    """Instant Readout when the device has a ``key``, else GATT (the registry's driver factory)."""
    if config.key:
        return VictronAdvDriver(config, address=address, backend=backend, log=log)
    return VictronGattDriver(config, address=address, backend=backend, log=log)


# --- GATT ------------------------------------------------------------------------------------------


class _WholeValues(FrameAssembler):
    """One notification is one complete value: the service has no framing to assemble."""

    def feed(self, chunk: bytes) -> list[bytes]:
        return [self._accept(bytes(chunk))] if chunk else []


class _ValueCodec(victron.VictronGattCodec):
    """The :class:`~bmslib.protocol.base.Codec` view BleDriver asks for. A value only decodes
    together with its characteristic, so the driver subscribes per characteristic instead."""

    def assembler(self) -> FrameAssembler:
        return _WholeValues()

    def decode(self, frame: bytes) -> Reading:
        raise FrameError("a SmartShunt value decodes only together with its characteristic", frame)


class VictronGattDriver(BleDriver):
    """The third-party GATT service: one characteristic per value, notified and read.

    Session: check the service is there, pair with the PIN (if set), write the keep-alive (and again
    every ``keepalive_period`` seconds), subscribe to every value characteristic that notifies, read
    all values once. ``read()`` reads the values that do not notify, and those whose notification has
    not come for ``reread_after`` seconds (stale-notification workaround). A value that turns
    not-available clears its field.
    """

    service_uuid = victron.SERVICE_UUID
    notify_uuid = victron.SOC_UUID  # one of several: every value notifies on its own characteristic
    write_uuid = victron.KEEPALIVE_UUID
    switches: ClassVar[frozenset[str]] = frozenset()
    request_timeout: ClassVar[float] = 5.0
    #: seconds between keep-alive writes, and how long (ms) each asks the shunt to stay connected
    keepalive_period: float = victron.KEEPALIVE_PERIOD_S
    keepalive_ms: int = victron.KEEPALIVE_MS
    #: a notified value not updated for this long is read again
    reread_after: float = victron.REREAD_AFTER_S

    def __init__(self, config: DeviceConfig, *, address: str, backend: BleBackend, log: DeviceLog) -> None:
        super().__init__(config, address=address, backend=backend, log=log)
        self._values: dict[str, Reading] = {}
        self._updated: dict[str, float] = {}
        self._present: tuple[str, ...] = ()
        self._notifying: frozenset[str] = frozenset()
        self._keepalive: asyncio.Task[None] | None = None

    def make_codec(self) -> _ValueCodec:
        return _ValueCodec()

    async def connect(self) -> None:
        """As BleDriver.connect, except that values are subscribed per characteristic (on_connected)."""
        if self.transport.is_connected:
            return
        await self._stop_keepalive()  # the loop of a link that dropped
        await self.transport.connect()
        try:
            await self.on_connected()
        except BaseException:
            await self.disconnect()
            raise

    async def on_connected(self) -> None:
        self._values.clear()
        self._updated.clear()
        self._find_values()
        if self.config.pin is not None:
            await self._pair(self.config.pin)
        try:
            await self._write_keepalive()
            for uuid in self._present:
                if uuid in self._notifying:
                    await self.transport.subscribe_raw(uuid, functools.partial(self._on_value, uuid))
            for uuid in self._present:
                await self._read_value(uuid)
        except GattAuthError as exc:
            what = "refused the PIN" if self.config.pin is not None else "is not paired with this host"
            raise BmsAuthError(f"the SmartShunt {what} ({exc.reason}); {PAIRING_HELP}") from exc
        self._keepalive = asyncio.get_running_loop().create_task(
            self._keepalive_loop(), name=f"victron-keepalive-{self.address}")

    def _find_values(self) -> None:
        try:
            self.transport.properties(victron.KEEPALIVE_UUID, "write")
        except CharacteristicNotFoundError:
            raise BmsConnectError(self.address, GATT_MISSING) from None
        present: list[str] = []
        notifying: set[str] = set()
        for c in victron.CHARACTERISTICS:
            try:
                properties = self.transport.properties(c.uuid, "notify")
            except CharacteristicNotFoundError:
                continue  # optional values (aux input, mid-point, temperature) depend on the set-up
            present.append(c.uuid)
            if {"notify", "indicate"} & properties:
                notifying.add(c.uuid)
        self._present, self._notifying = tuple(present), frozenset(notifying)
        if not present:
            raise BmsConnectError(self.address, GATT_MISSING)

    async def _pair(self, pin: str) -> None:
        try:
            bonded = await self.transport.bond(pin=pin)
        except GattError as exc:
            raise BmsAuthError(f"pairing with the SmartShunt failed ({exc.reason}); {PAIRING_HELP}") from exc
        if not bonded:
            self.log.debug("this platform pairs by itself when a value needs it")  # macOS

    async def _write_keepalive(self) -> None:
        await self.transport.write(victron.KEEPALIVE_UUID, victron.keepalive_request(self.keepalive_ms))

    async def _keepalive_loop(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_period)
            try:
                await self._write_keepalive()
            except BmsError as exc:
                self.log.debug("keep-alive write failed (%s); stopping keep-alives on this link", exc)
                return

    def _on_value(self, uuid: str, value: bytes) -> None:
        try:
            reading = victron.decode_characteristic(uuid, value)
        except FrameError as exc:
            self.log.debug("value ignored: %s", exc)
            return
        self._values[uuid] = reading
        self._updated[uuid] = time.monotonic()

    async def _read_value(self, uuid: str) -> None:
        self._on_value(uuid, await self.transport.read(uuid))

    async def read(self) -> Reading:
        if not self.transport.is_connected:
            raise BmsDisconnectedError(f"{self.address}: not connected")
        now = time.monotonic()
        try:
            for uuid in self._present:
                if uuid not in self._notifying or now - self._updated.get(uuid, -1e18) >= self.reread_after:
                    await self._read_value(uuid)
        except GattAuthError as exc:
            raise BmsAuthError(f"the SmartShunt refused a read ({exc.reason}); {PAIRING_HELP}") from exc
        values = [self._values[u] for u in self._present if u in self._values]
        return self.absorb(merge_readings(*values, {"device_info": DeviceInfo(manufacturer=victron.MANUFACTURER)}))

    async def _stop_keepalive(self) -> None:
        task, self._keepalive = self._keepalive, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def disconnect(self) -> None:
        await self._stop_keepalive()
        await self.transport.disconnect()


# --- Instant Readout --------------------------------------------------------------------------------


class VictronAdvDriver(Driver):
    """Instant Readout: decode the device's encrypted advertisements; never connects.

    The advertisements come from the BLE layer's shared scanner (:mod:`bmslib.ble.adverts`).
    ``connect()`` starts listening and waits (up to ``scan_timeout``) until the device is heard;
    ``is_connected`` means "listening". ``read()`` returns the newest reading decoded since the previous
    read, waiting up to ``request_timeout`` for one: an old reading is never returned again. A wrong
    key is logged once per device (ERROR) and raised as BmsAuthError (the sampler backs off).
    """

    switches: ClassVar[frozenset[str]] = frozenset()
    #: longest wait for a fresh advertisement in read() (the shunt advertises about once a second)
    request_timeout: ClassVar[float] = 5.0
    scan_timeout: float = 10.0

    def __init__(self, config: DeviceConfig, *, address: str, backend: BleBackend, log: DeviceLog) -> None:
        super().__init__(config, address=address, backend=backend, log=log)
        if not config.key:
            raise ValueError("Instant Readout needs the device's advertisement key (key:)")
        self.codec = victron_adv.VictronAdvCodec(victron_adv.parse_key(config.key))
        self._adverts = backend.adverts.listener(address, adapter=config.adapter)
        self._latest: Reading | None = None  # newest reading not yet returned by read()
        self._heard = False  # an advertisement of the device came since listening started (decoded or not)
        self._refusal: str | None = None  # the key error of the newest advertisement, if any
        self._key_error_logged = False
        self._skipped: str | None = None
        self._notes_logged: set[str] = set()
        self._rssi: int | None = None
        self.advertisements = 0  # decoded battery-monitor advertisements (diagnostics, tests)

    @property
    def is_connected(self) -> bool:
        return self._adverts.listening

    @property
    def rssi(self) -> int | None:
        return self._rssi

    async def connect(self) -> None:
        if self._adverts.listening:
            return
        self._latest, self._refusal, self._skipped, self._heard = None, None, None, False
        await self._adverts.start()  # BluetoothUnavailableError, BmsConnectError
        try:
            async with asyncio.timeout(self.scan_timeout):
                while not self._heard:
                    self._on_advertisement(await self._adverts.next())
        except TimeoutError:
            await self.disconnect()
            raise DeviceNotFoundError(self.address, f"no Instant Readout advertisement within {self.scan_timeout:g} s "
                                      "(in range? Instant readout turned on in VictronConnect?)") from None
        await self._raise_refusal()

    async def _raise_refusal(self) -> None:
        """Stop listening and raise BmsAuthError if the newest advertisement refused our key."""
        refusal = self._refusal
        if refusal is not None:
            await self.disconnect()
            raise BmsAuthError(refusal)

    async def disconnect(self) -> None:
        self._latest = None
        await self._adverts.stop()

    async def read(self) -> Reading:
        if not self._adverts.listening:
            raise BmsDisconnectedError(f"{self.address}: not listening")
        for advertisement in self._adverts.take():  # what came since the previous read, oldest first
            self._on_advertisement(advertisement)
        if self._latest is None and self._refusal is None:
            try:
                async with asyncio.timeout(self.request_timeout):
                    while self._latest is None and self._refusal is None:
                        self._on_advertisement(await self._adverts.next())
            except TimeoutError:
                seen = f" (it sends {self._skipped.removeprefix('skipped: ')})" if self._skipped else ""
                raise BmsTimeoutError(f"no fresh advertisement within {self.request_timeout:g} s{seen}") from None
        await self._raise_refusal()
        reading, self._latest = self._latest, None
        assert reading is not None
        return self.absorb(reading)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = advertisement.manufacturer_data.get(victron.COMPANY_ID)
        if data is None:
            return
        self._rssi = advertisement.rssi
        self._heard = True
        try:
            readout = self.codec.decode(data)
        except victron_adv.AdvertisementKeyError as exc:
            self._refuse(str(exc))
            return
        except FrameError as exc:
            self._note(exc.reason, f"advertisement ignored: {exc}")
            return
        if readout.skipped is not None:
            self._skipped = readout.skipped
            self._note(readout.skipped, readout.skipped)
            return
        self._refusal = None
        self._latest = readout.reading
        self.advertisements += 1

    def _refuse(self, message: str) -> None:
        self._refusal = message
        if not self._key_error_logged:
            self._key_error_logged = True
            self.log.error("Instant Readout: %s; %s", message, KEY_HELP)

    def _note(self, kind: str, message: str) -> None:
        """A debug line per kind of advertisement we cannot use (not one per advertisement)."""
        if kind not in self._notes_logged and len(self._notes_logged) < 32:
            self._notes_logged.add(kind)
            self.log.debug("%s", message)

"""The one BLE transport every driver uses, on bleak and bleak-retry-connector.

It resolves the device (MAC, advertised name or simulated id), connects with retries under a
connect timeout, subscribes to notifications, writes with or without response as the
characteristic allows, pairs each request with its reply under a per-request timeout, and handles
the device dropping the link at any moment: pending requests fail at once (not after their
timeout) and :meth:`BleTransport.disconnect` is idempotent. The bleak backend is injected
(:class:`~bmslib.ble.backend.BleBackend`), so the simulator runs the same code paths.

Every error of bleak, bleak-retry-connector, D-Bus or the OS leaves the transport as one of the project's
types (:mod:`bmslib.ble.radio_errors` says which): each public method says what it raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak_retry_connector import establish_connection

from bmslib.ble.adapter import adapter_name
from bmslib.ble.address import AddressMatcher
from bmslib.ble.backend import BleBackend
from bmslib.ble.radio_errors import RADIO_ERRORS, connect_error, gatt_error
from bmslib.errors import (
    BmsConnectError,
    BmsDisconnectedError,
    BmsTimeoutError,
    CharacteristicNotFoundError,
    DeviceNotFoundError,
)
from bmslib.protocol.base import FrameAssembler

FrameMatch = Callable[[bytes], bool]


@dataclass
class _Pending:
    match: FrameMatch
    future: asyncio.Future[bytes]


@dataclass(frozen=True, slots=True)
class FoundDevice:
    """A device found by scanning: bleak's device and the advertisement it was found by."""

    device: BLEDevice
    advertisement: AdvertisementData


async def find_device(matcher: AddressMatcher, *, backend: BleBackend, adapter: str | None,
                      scan_timeout: float) -> FoundDevice:
    """Scan until an advertisement of the device ``matcher`` picks (MAC or advertised name) is heard.

    ``adapter``: BlueZ's ``hciN`` (resolve an adapter's MAC with :func:`~bmslib.ble.adapter.adapter_name` first).
    Raises DeviceNotFoundError (not seen within ``scan_timeout``; the message lists what was seen),
    BluetoothUnavailableError (no adapter, BlueZ or D-Bus) or BmsConnectError (the scan failed).
    """
    want = matcher.address
    seen: dict[str, tuple[str | None, int]] = {}
    found: FoundDevice | None = None
    timeout = asyncio.timeout(scan_timeout)
    try:
        async with backend.scanner(adapter=adapter) as scanner, timeout:
            async for dev, adv in scanner.advertisement_data():
                seen[dev.address] = (adv.local_name or dev.name, adv.rssi)
                if matcher.matches(dev.address, adv.local_name, dev.name):
                    found = FoundDevice(dev, adv)
                    break
    except RADIO_ERRORS as exc:
        if not (isinstance(exc, TimeoutError) and timeout.expired()):
            raise connect_error(exc, want, doing="scan failed: ") from exc
    if found is None:
        others = ", ".join(f"{a} ({n or '?'}, {r} dBm)" for a, (n, r) in sorted(seen.items())) or "nothing"
        raise DeviceNotFoundError(want, f"not seen within {scan_timeout:g} s; seen: {others}")
    return found


class BleTransport:
    """A connection to one BLE device. Not thread-safe; use from the event loop only."""

    def __init__(self, address: str, *, backend: BleBackend, log: logging.LoggerAdapter[logging.Logger],
                 adapter: str | None = None, debug: bool = False, connect_timeout: float = 20.0,
                 scan_timeout: float = 10.0, connect_attempts: int = 3, pair: bool = False) -> None:
        self.address = address
        self.matcher = AddressMatcher(address)
        self.backend = backend
        self.adapter = adapter
        self.debug = debug
        self.connect_timeout = connect_timeout
        self.scan_timeout = scan_timeout
        self.connect_attempts = connect_attempts
        self.pair = pair
        self.log = log
        self.device: BLEDevice | None = None
        self.rssi: int | None = None
        self.on_frame: Callable[[bytes], None] | None = None  # frames no request waited for
        self.on_disconnect: Callable[[], None] | None = None  # unsolicited disconnects
        self._client: BleakClient | None = None
        self._assemblers: dict[str, FrameAssembler] = {}
        self._raw: dict[str, Callable[[bytes], None]] = {}
        self._pending: list[_Pending] = []
        self._lock = asyncio.Lock()  # one request in flight at a time
        self.chunks_received = 0

    # --- connection ---
    @property
    def is_connected(self) -> bool:
        """The link is up. Raises nothing."""
        return self._client is not None and self._client.is_connected

    @property
    def slot_wanted(self) -> bool:
        """Connected, and holding a connection slot another device waits for (ESPHome proxies have a few): the
        link should be let go after the read. Raises nothing."""
        client = self._client
        return client is not None and client.is_connected and self.backend.slot_wanted(client.address)

    async def resolve(self) -> BLEDevice:
        """Find the device by scanning (:class:`~bmslib.ble.address.AddressMatcher`: MAC or advertised name).

        Raises DeviceNotFoundError (not seen within ``scan_timeout``; the message lists what was seen),
        BluetoothUnavailableError (no adapter, BlueZ or D-Bus) or BmsConnectError (the scan failed).
        """
        if self.adapter and not self.backend.simulated:
            self.adapter = await adapter_name(self.adapter)  # a MAC becomes hciN, once
        found = await find_device(self.matcher, backend=self.backend, adapter=self.adapter,
                                  scan_timeout=self.scan_timeout)
        self.rssi = found.advertisement.rssi
        return found.device

    async def locate(self) -> None:
        """Scan for the device unless it is known (connected, or found by an earlier scan).

        Raises what :meth:`resolve` raises.
        """
        if self.device is None and not self.is_connected:
            self.device = await self.resolve()

    async def connect(self) -> None:
        """Resolve (first time) and connect, with retries under the connect timeout; a no-op when connected.

        Raises DeviceNotFoundError (not seen, or gone when connecting), BluetoothUnavailableError (no
        adapter, BlueZ or D-Bus) or BmsConnectError (any other failure: refused, timed out, out of slots).
        """
        if self.is_connected:
            return
        await self.locate()
        assert self.device is not None
        kwargs: dict[str, Any] = {"timeout": self.connect_timeout}
        if self.backend.client is not None:
            kwargs["backend"] = self.backend.client
        if self.adapter:
            kwargs["bluez"] = {"adapter": self.adapter}
        try:
            async with asyncio.timeout(self.connect_timeout * self.connect_attempts + 5):
                client = await establish_connection(
                    BleakClient, self.device, self.address, disconnected_callback=self._disconnected,
                    max_attempts=self.connect_attempts, pair=self.pair, **kwargs)
        except TimeoutError as exc:
            raise BmsConnectError(self.address, f"connect timed out after {self.connect_timeout:g} s") from exc
        except RADIO_ERRORS as exc:
            error = connect_error(exc, self.address)
            if isinstance(error, DeviceNotFoundError):
                self.device = None  # scan again next time: the address or name may resolve elsewhere
            raise error from exc
        self._client = client
        for asm in self._assemblers.values():
            asm.reset()

    async def disconnect(self) -> None:
        """Idempotent; fails pending requests at once. Raises nothing (a failing disconnect is ignored)."""
        client, self._client = self._client, None
        self._fail_pending(BmsDisconnectedError(f"{self.address}: disconnected"))
        if client is not None:
            with contextlib.suppress(*RADIO_ERRORS):
                async with asyncio.timeout(5):
                    await client.disconnect()

    def _disconnected(self, client: BleakClient) -> None:
        if client is not self._client:
            return
        self._client = None
        # look for the device again before reconnecting: had it gone (out of range, powered off), connecting to
        # the cached address would keep bleak-retry-connector retrying for up to the whole connect timeout
        self.device = None
        self.log.info("link dropped by the device or the adapter")
        self._fail_pending(BmsDisconnectedError(f"{self.address}: link dropped"))
        for asm in self._assemblers.values():
            asm.reset()
        if self.on_disconnect is not None:
            self.on_disconnect()

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, []
        for p in pending:
            if not p.future.done():
                p.future.set_exception(exc)

    def _require(self) -> BleakClient:
        if self._client is None or not self._client.is_connected:
            raise BmsDisconnectedError(f"{self.address}: not connected")
        return self._client

    # --- GATT ---
    def characteristic(self, uuid: str, want: str) -> BleakGATTCharacteristic:
        """The characteristic ``uuid`` having property ``want`` (some devices list a UUID twice); for the
        BLE layer (drivers ask :meth:`properties`).

        Raises BmsDisconnectedError (not connected) or CharacteristicNotFoundError.
        """
        client = self._require()
        candidates = [c for s in client.services for c in s.characteristics if c.uuid == uuid]
        for c in candidates:
            if want in c.properties or (want == "write" and "write-without-response" in c.properties):
                return c
        if candidates:
            return candidates[0]
        raise CharacteristicNotFoundError(self.address, uuid)

    def properties(self, uuid: str, want: str = "read") -> frozenset[str]:
        """The GATT properties (bleak's names: read, write, write-without-response, notify, indicate) of the
        connected device's characteristic ``uuid``; of the one having property ``want`` where the device lists
        the UUID twice. Tells a driver whether the device has the characteristic, and what it can do.

        Raises BmsDisconnectedError (not connected) or CharacteristicNotFoundError.
        """
        return frozenset(self.characteristic(uuid, want).properties)

    async def subscribe(self, uuid: str, assembler: FrameAssembler) -> None:
        """Notifications of ``uuid`` are assembled into frames and matched to requests.

        Raises CharacteristicNotFoundError, BmsDisconnectedError, or GattError (GattAuthError: refused for
        want of pairing) when the device or the stack refuses the subscription.
        """
        client = self._require()
        self._assemblers[uuid] = assembler
        char = self.characteristic(uuid, "notify")
        await self._gatt(f"subscribe {uuid}", client.start_notify(char, lambda _c, data: self._on_chunk(uuid, data)))

    async def subscribe_raw(self, uuid: str, callback: Callable[[bytes], None]) -> None:
        """Notifications of ``uuid`` go to ``callback`` as they are (one value per notification).

        Raises what :meth:`subscribe` raises.
        """
        client = self._require()
        self._raw[uuid] = callback
        char = self.characteristic(uuid, "notify")
        await self._gatt(f"subscribe {uuid}", client.start_notify(char, lambda _c, data: self._on_raw(uuid, data)))

    async def write(self, uuid: str, data: bytes, *, response: bool | None = None, secret: bool = False) -> None:
        """Write; ``response=None`` uses write-without-response when the characteristic offers it.

        ``secret``: the bytes carry a credential (PIN, password) and are never logged, not even with debug.
        Raises CharacteristicNotFoundError, BmsDisconnectedError (not connected, or the link dropped),
        BmsTimeoutError (the stack did not answer) or GattError (GattAuthError: refused for want of pairing).
        """
        client = self._require()
        char = self.characteristic(uuid, "write")
        if response is None:
            response = "write-without-response" not in char.properties
        if self.debug:
            self.log.debug("TX %s", f"<{len(data)} bytes with a credential, not shown>" if secret else data.hex())
        await self._gatt(f"write {uuid}", client.write_gatt_char(char, data, response=response))

    async def bond(self, **kwargs: Any) -> bool:
        """Pair (bond) with the connected device through bleak's ``pair()``; a no-op if already bonded.

        ``kwargs`` go to the bleak backend as they are and are never logged (they may carry a PIN):
        the simulator hands them to the emulator, bleak's BlueZ backend accepts and ignores them.
        Returns False where the platform cannot pair on request (macOS pairs by itself when a value needs
        it), else True. Raises BmsDisconnectedError if the link drops, otherwise GattError (GattAuthError
        when the device refused the pairing or the PIN).
        """
        client = self._require()
        try:
            await self._gatt("pair", client.pair(**kwargs))
        except NotImplementedError:
            return False
        return True

    async def read(self, uuid: str) -> bytes:
        """The value of characteristic ``uuid``.

        Raises CharacteristicNotFoundError, BmsDisconnectedError (not connected, or the link dropped),
        BmsTimeoutError (the stack did not answer) or GattError (GattAuthError: refused for want of pairing).
        """
        client = self._require()
        return bytes(await self._gatt(f"read {uuid}", client.read_gatt_char(self.characteristic(uuid, "read"))))

    async def _gatt(self, action: str, op: Awaitable[Any]) -> Any:
        """Await the bleak GATT call ``op``, turning its errors into the project's (see radio_errors)."""
        try:
            return await op
        except RADIO_ERRORS as exc:
            raise gatt_error(exc, self.address, action, link_up=self.is_connected) from exc

    async def request(self, uuid: str, data: bytes, match: FrameMatch, timeout: float, *,
                      response: bool | None = None, secret: bool = False) -> bytes:
        """Write ``data`` and return the first frame satisfying ``match``.

        Raises BmsTimeoutError after ``timeout`` and BmsDisconnectedError at once if the link drops, and
        what :meth:`write` raises.
        """
        async with self._lock:
            future = self.expect(match)
            try:
                await self.write(uuid, data, response=response, secret=secret)
                return await self.wait(future, timeout)
            finally:
                self.cancel(future)

    def expect(self, match: FrameMatch) -> asyncio.Future[bytes]:
        """Register interest in a frame before sending what provokes it. Raises nothing."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(match, future))
        return future

    async def wait(self, future: asyncio.Future[bytes], timeout: float) -> bytes:
        """The frame ``future`` (from :meth:`expect`) resolves to. Raises BmsTimeoutError after ``timeout``,
        BmsDisconnectedError at once if the link drops."""
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            raise BmsTimeoutError(f"no valid reply within {timeout:g} s") from None

    def cancel(self, future: asyncio.Future[bytes]) -> None:
        """Forget a frame registered with :meth:`expect` (idempotent). Raises nothing."""
        self._pending = [p for p in self._pending if p.future is not future]
        if not future.done():
            future.cancel()

    # --- notifications ---
    def _on_chunk(self, uuid: str, data: bytearray) -> None:
        self.chunks_received += 1
        if self.debug:
            self.log.debug("RX %s", data.hex())
        asm = self._assemblers.get(uuid)
        if asm is None:
            return
        dropped = asm.dropped
        for frame in asm.feed(bytes(data)):
            self._dispatch(frame)
        if self.debug and asm.dropped != dropped:
            self.log.debug("frame rejected: %s", asm.last_error)

    def _on_raw(self, uuid: str, data: bytearray) -> None:
        self.chunks_received += 1
        if self.debug:
            self.log.debug("RX %s %s", uuid[4:8], data.hex())
        cb = self._raw.get(uuid)
        if cb is not None:
            cb(bytes(data))

    def _dispatch(self, frame: bytes) -> None:
        for p in self._pending:
            if not p.future.done() and p.match(frame):
                p.future.set_result(frame)
                self._pending.remove(p)
                return
        if self.on_frame is not None:
            self.on_frame(frame)

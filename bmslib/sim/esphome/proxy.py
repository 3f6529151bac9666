"""The node's Bluetooth proxy: advertisements, connection slots, connects, GATT, as ESPHome's
``bluetooth_proxy`` component answers them.

One API client at a time holds the proxy: the first to subscribe to advertisements (the firmware's "Only one
API subscription is allowed at a time"; another client's subscription is ignored). Every Bluetooth answer and
report goes to that client, whoever asked; while no client holds it, Bluetooth requests come to nothing and
every link is dropped (so a client that unsubscribes loses its links).

The firmware's habits kept here because clients meet them: a connect beyond the slots is answered with
``connected=False`` and no error; a link that ends is reported twice (its disconnect, then its close with the
free-slot report after it); a write without response is acknowledged too; GATT requests for an address
without a connection get error -1; a pairing request without a connection gets no answer; UUIDs on the
Bluetooth base go out as 16-bit ``short_uuid`` to clients of API 1.12 and later; services are batched into
messages of at most ~1360 bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

from aioesphomeapi import BluetoothProxyFeature as ProxyFeature

from bmslib.sim.emulator import Emulator
from bmslib.sim.esphome.adverts import int_to_mac, mac_to_int, raw_advertisement
from bmslib.sim.esphome.bridge import ERROR_FAIL_ESTABLISH, ERROR_TERMINATED_BY_PEER, BleConnection
from bmslib.sim.esphome.gatt import CCCD_UUID, split_uuid
from bmslib.sim.esphome.knobs import NodeKnobs
from bmslib.sim.esphome.messages import pb
from bmslib.sim.esphome.session import ApiSession
from bmslib.sim.radio import DeviceNotFound, LinkRefused, SimRadio, close_link

_LOG = logging.getLogger(__name__)

#: GATT errors as ESPHome sends them
GATT_NOT_CONNECTED: Final = -1  # ESPHome's own code: no connection to this address
GATT_INVALID_HANDLE: Final = 0x01
GATT_READ_NOT_PERMIT: Final = 0x02
GATT_WRITE_NOT_PERMIT: Final = 0x03
ERROR_TERMINATED_BY_HOST: Final = 0x16  # the link ended because the proxy (its client) asked
MAX_SERVICES_MESSAGE: Final = 1360  # [bytes] the firmware's batch limit for GATT services

_SIG_BASE: Final = "-0000-1000-8000-00805f9b34fb"


class BluetoothProxy:
    """Slots and links of one node; its message handlers take (session, message)."""

    def __init__(self, radio: SimRadio, knobs: NodeKnobs) -> None:
        self.radio = radio
        self.knobs = knobs
        self.connections: dict[int, BleConnection] = {}
        #: the API session holding the proxy (subscribed to advertisements), or None
        self.subscriber: ApiSession | None = None
        self.scan_mode = pb.BluetoothScannerMode.BLUETOOTH_SCANNER_MODE_ACTIVE
        self._stale: asyncio.TimerHandle | None = None  # the subscriber is gone, the node has not noticed yet

    def handlers(self) -> dict[type[Any], Callable[[ApiSession, Any], None]]:
        to_subscriber: dict[type[Any], Callable[[ApiSession, Any], None]] = {
            pb.BluetoothDeviceRequest: self._device_request,
            pb.BluetoothGATTGetServicesRequest: self._get_services,
            pb.BluetoothGATTReadRequest: self._read,
            pb.BluetoothGATTReadDescriptorRequest: self._read_descriptor,
            pb.BluetoothGATTWriteRequest: self._write,
            pb.BluetoothGATTWriteDescriptorRequest: self._write_descriptor,
            pb.BluetoothGATTNotifyRequest: self._notify_request,
            pb.BluetoothScannerSetModeRequest: self._set_scan_mode,
        }
        return {
            pb.SubscribeBluetoothLEAdvertisementsRequest: self._subscribe_adverts,
            pb.UnsubscribeBluetoothLEAdvertisementsRequest: self._unsubscribe_adverts,
            pb.SubscribeBluetoothConnectionsFreeRequest: self._subscribe_free,
            **{kind: self._for_subscriber(handler) for kind, handler in to_subscriber.items()},
        }

    def _for_subscriber(self, handler: Callable[[ApiSession, Any], None]) -> Callable[[ApiSession, Any], None]:
        """``handler`` run on behalf of the subscriber (its answers go there), whoever asked."""
        def run(session: ApiSession, msg: Any) -> None:
            subscriber = self.subscriber
            if subscriber is None or subscriber.closed:
                _LOG.debug("esphome node %s: %s without an advertisement subscriber, ignored", self.knobs.name,
                           type(msg).__name__)
                return
            handler(subscriber, msg)
        return run

    def session_gone(self, session: ApiSession) -> None:
        """Without its subscriber the firmware drops every link."""
        if session is self.subscriber and self._stale is None:
            self.subscriber = None
            self.release_all()

    def hold_stale(self, session: ApiSession, seconds: float) -> None:
        """The subscriber's connection is gone but the node notices only after ``seconds`` (its keepalive
        reaps it after ~150 s on the firmware): until then another client's subscription is ignored and the
        links stay up, their news lost."""
        if session is not self.subscriber:
            return
        if self._stale is not None:
            self._stale.cancel()
        self._stale = asyncio.get_running_loop().call_later(seconds, self._reap, session)

    def _reap(self, session: ApiSession) -> None:
        self._stale = None
        self.session_gone(session)

    def reset(self) -> None:
        """A new boot: no subscriber, no links."""
        if self._stale is not None:
            self._stale.cancel()
            self._stale = None
        self.subscriber = None
        self.release_all()

    def _held(self) -> bool:
        """Whether a client holds the proxy (a stale one too)."""
        return self.subscriber is not None and (not self.subscriber.closed or self._stale is not None)

    def release_all(self) -> None:
        for conn in list(self.connections.values()):
            self._release(conn, reason=None)

    # --- advertisements ---
    def heard(self) -> list[tuple[Emulator, int]]:
        """The devices the node hears now, with the RSSI it hears them at."""
        out = []
        for em in self.radio.emulators:
            if em.faults.hidden or em.address in self.knobs.not_heard:
                continue
            out.append((em, self.knobs.rssi.get(em.address, em.advertisement().rssi)))
        return out

    def _address_type(self, em: Emulator) -> int:
        return self.knobs.address_type.get(em.address, 0)

    def _subscribe_adverts(self, session: ApiSession, msg: Any) -> None:
        if not self.knobs.feature_flags & ProxyFeature.PASSIVE_SCAN:
            return
        if self.subscriber is not session and self._held():
            _LOG.info("esphome node %s: only one API subscription is allowed at a time (%s asked)",
                      self.knobs.name, session.peer)
            return
        self.subscriber = session
        session.raw_advertisements = bool(msg.flags & 1) and bool(
            self.knobs.feature_flags & ProxyFeature.RAW_ADVERTISEMENTS)
        if not session.advertisements:
            session.advertisements = True
            session.spawn(self._advertise(session), "esphome-node-adverts")
        self._send_scanner_state()

    def _unsubscribe_adverts(self, session: ApiSession, msg: Any) -> None:
        if session is self.subscriber:
            session.advertisements = False
            self.session_gone(session)

    def _send_scanner_state(self) -> None:
        if self.subscriber is not None and self.knobs.feature_flags & ProxyFeature.FEATURE_STATE_AND_MODE:
            self.subscriber.send(pb.BluetoothScannerStateResponse(
                state=pb.BluetoothScannerState.BLUETOOTH_SCANNER_STATE_RUNNING, mode=self.scan_mode,
                configured_mode=pb.BluetoothScannerMode.BLUETOOTH_SCANNER_MODE_ACTIVE))

    def _set_scan_mode(self, session: ApiSession, msg: Any) -> None:
        if self.knobs.feature_flags & ProxyFeature.FEATURE_STATE_AND_MODE:
            self.scan_mode = msg.mode
            self._send_scanner_state()

    async def _advertise(self, session: ApiSession) -> None:
        while session.advertisements and not session.closed:
            heard = self.heard()
            if session.raw_advertisements:
                session.send(pb.BluetoothLERawAdvertisementsResponse(advertisements=[
                    pb.BluetoothLERawAdvertisement(address=mac_to_int(em.address), rssi=rssi,
                                                   address_type=self._address_type(em),
                                                   data=raw_advertisement(em.advertisement()))
                    for em, rssi in heard]))
            else:
                for em, rssi in heard:
                    adv = em.advertisement()
                    session.send(pb.BluetoothLEAdvertisementResponse(
                        address=mac_to_int(em.address), name=(adv.name or "").encode(), rssi=rssi,
                        address_type=self._address_type(em), service_uuids=list(adv.service_uuids),
                        manufacturer_data=[pb.BluetoothServiceData(uuid=f"0x{company:04X}", data=bytes(data))
                                           for company, data in adv.manufacturer_data.items()]))
            await asyncio.sleep(self.knobs.advert_interval)

    # --- slots ---
    def _subscribe_free(self, session: ApiSession, msg: Any) -> None:
        session.send(self._free_message())

    def _free_message(self) -> Any:
        limit = self.knobs.slots
        return pb.BluetoothConnectionsFreeResponse(free=max(0, limit - len(self.connections)), limit=limit,
                                                   allocated=list(self.connections))

    def _free_changed(self) -> None:
        if self.subscriber is not None:
            self.subscriber.send(self._free_message())

    def _connection_state(self, address: int, *, connected: bool, mtu: int = 0, error: int = 0) -> None:
        if self.subscriber is not None:
            self.subscriber.send(pb.BluetoothDeviceConnectionResponse(address=address, connected=connected, mtu=mtu,
                                                                      error=error))

    def _device_request(self, session: ApiSession, msg: Any) -> None:
        kinds = pb.BluetoothDeviceRequestType
        kind = msg.request_type
        if kind in (kinds.BLUETOOTH_DEVICE_REQUEST_TYPE_CONNECT_V3_WITH_CACHE,
                    kinds.BLUETOOTH_DEVICE_REQUEST_TYPE_CONNECT_V3_WITHOUT_CACHE):
            self._connect(session, msg)
        elif kind == kinds.BLUETOOTH_DEVICE_REQUEST_TYPE_CONNECT:  # version 1: no longer served
            self._connection_state(msg.address, connected=False)
        elif kind == kinds.BLUETOOTH_DEVICE_REQUEST_TYPE_DISCONNECT:
            conn = self.connections.get(msg.address)
            if conn is None:
                self._connection_state(msg.address, connected=False)
                self._free_changed()
            else:
                self._release(conn, reason=ERROR_TERMINATED_BY_HOST)
        elif kind == kinds.BLUETOOTH_DEVICE_REQUEST_TYPE_PAIR:
            self._pair(session, msg.address)
        elif kind == kinds.BLUETOOTH_DEVICE_REQUEST_TYPE_UNPAIR:
            session.send(pb.BluetoothDeviceUnpairingResponse(address=msg.address, success=True))
        elif kind == kinds.BLUETOOTH_DEVICE_REQUEST_TYPE_CLEAR_CACHE:
            session.send(pb.BluetoothDeviceClearCacheResponse(address=msg.address, success=True))

    def _connect(self, session: ApiSession, msg: Any) -> None:
        address = msg.address
        if not self.knobs.feature_flags & ProxyFeature.ACTIVE_CONNECTIONS:
            self._connection_state(address, connected=False, error=GATT_NOT_CONNECTED)
            return
        existing = self.connections.get(address)
        if existing is not None:
            if existing.connected:  # the firmware repeats the news (without the MTU)
                self._connection_state(address, connected=True)
                self._free_changed()
            return  # a connect under way answers when it is done
        if len(self.connections) >= self.knobs.slots:
            _LOG.info("esphome node %s: no free connection slot for %s", self.knobs.name, int_to_mac(address))
            self._connection_state(address, connected=False)
            return
        if not msg.has_address_type:
            self._connection_state(address, connected=False)
            return
        kinds = pb.BluetoothDeviceRequestType
        with_cache = msg.request_type == kinds.BLUETOOTH_DEVICE_REQUEST_TYPE_CONNECT_V3_WITH_CACHE
        conn = BleConnection(address, int_to_mac(address), with_cache=with_cache,
                             on_notify=self._on_notify, on_drop=self._on_drop)
        self.connections[address] = conn
        self._free_changed()
        session.spawn(self._open(conn), f"esphome-node-connect-{conn.mac}")

    async def _open(self, conn: BleConnection) -> None:
        try:
            em = await self._open_link(conn)
        except LinkRefused:
            await asyncio.sleep(self.knobs.connect_fail_after)
            if self.connections.get(conn.address) is conn:
                del self.connections[conn.address]
                self._connection_state(conn.address, connected=False, error=ERROR_FAIL_ESTABLISH)
                self._free_changed()
            return
        except asyncio.CancelledError:
            if self.connections.get(conn.address) is conn:
                del self.connections[conn.address]
            raise
        if self.connections.get(conn.address) is not conn:  # released while connecting
            close_link(em, conn)
            return
        conn.attached(em)
        self._connection_state(conn.address, connected=True, mtu=conn.mtu)
        self._free_changed()

    async def _open_link(self, conn: BleConnection) -> Emulator:
        if conn.mac in self.knobs.not_heard:
            raise DeviceNotFound(conn.mac)
        return await self.radio.open_link(conn.mac, conn)

    def _release(self, conn: BleConnection, *, reason: int | None) -> None:
        """Free the slot of ``conn`` and close its link. ``reason``: tell the subscriber as the firmware does:
        the disconnect, then the close, then the free slots; None: nobody to tell."""
        if self.connections.get(conn.address) is conn:
            del self.connections[conn.address]
        em, conn.emulator = conn.emulator, None
        if em is not None:
            close_link(em, conn)
        if reason is not None:
            self._connection_state(conn.address, connected=False, error=reason)  # the disconnect event
            self._connection_state(conn.address, connected=False, error=reason)  # the close event
        self._free_changed()

    def _on_drop(self, conn: BleConnection) -> None:
        self._release(conn, reason=ERROR_TERMINATED_BY_PEER)

    def _on_notify(self, conn: BleConnection, handle: int, data: bytes) -> None:
        if self.subscriber is not None:
            self.subscriber.send(pb.BluetoothGATTNotifyDataResponse(address=conn.address, handle=handle, data=data))

    def _pair(self, session: ApiSession, address: int) -> None:
        conn = self.connections.get(address)
        if conn is None or conn.emulator is None:
            return  # the firmware does not answer
        if conn.paired:
            session.send(pb.BluetoothDevicePairingResponse(address=address, paired=True))
            return
        pair = getattr(conn.emulator, "pair", None)
        try:
            if pair is not None:
                pair()
        except Exception:  # noqa: BLE001 - an emulator refusing to pair says so by raising
            session.send(pb.BluetoothDevicePairingResponse(address=address, paired=False, error=0x05))
            return
        conn.paired = True
        session.send(pb.BluetoothDevicePairingResponse(address=address, paired=True))

    # --- GATT ---
    def _connected(self, session: ApiSession, address: int, handle: int) -> BleConnection | None:
        conn = self.connections.get(address)
        if conn is None or conn.emulator is None or conn.table is None:
            session.send(pb.BluetoothGATTErrorResponse(address=address, handle=handle, error=GATT_NOT_CONNECTED))
            return None
        return conn

    def _error(self, session: ApiSession, msg: Any, error: int) -> None:
        session.send(pb.BluetoothGATTErrorResponse(address=msg.address, handle=msg.handle, error=error))

    @staticmethod
    def _uuid_fields(text: str, efficient: bool) -> dict[str, Any]:
        if efficient and text.endswith(_SIG_BASE):
            return {"short_uuid": int(text[:8], 16)}
        return {"uuid": split_uuid(text)}

    def _get_services(self, session: ApiSession, msg: Any) -> None:
        conn = self._connected(session, msg.address, 0)
        if conn is None or conn.table is None:
            return
        efficient = session.api_version >= (1, 12)
        batch: list[Any] = []
        size = 0
        for svc in conn.table.services:
            service = pb.BluetoothGATTService(handle=svc.handle, **self._uuid_fields(svc.uuid, efficient),
                                              characteristics=[pb.BluetoothGATTCharacteristic(
                handle=ch.handle, properties=ch.properties, **self._uuid_fields(ch.uuid, efficient),
                descriptors=[] if ch.cccd is None else [
                    pb.BluetoothGATTDescriptor(handle=ch.cccd, **self._uuid_fields(CCCD_UUID, efficient))])
                for ch in svc.characteristics])
            one = service.ByteSize() + 3
            if batch and size + one > MAX_SERVICES_MESSAGE:
                session.send(pb.BluetoothGATTGetServicesResponse(address=msg.address, services=batch))
                batch, size = [], 0
            batch.append(service)
            size += one
        if batch:
            session.send(pb.BluetoothGATTGetServicesResponse(address=msg.address, services=batch))
        session.send(pb.BluetoothGATTGetServicesDoneResponse(address=msg.address))

    def _read(self, session: ApiSession, msg: Any) -> None:
        conn = self._connected(session, msg.address, msg.handle)
        if conn is None or conn.table is None or conn.emulator is None:
            return
        char = conn.table.by_handle.get(msg.handle)
        if char is None:
            self._error(session, msg, GATT_INVALID_HANDLE)
            return
        try:
            data = conn.emulator.handle_read(char.source_uuid) if char.properties & 0x02 else None
        except KeyError:
            data = None
        if data is None:
            self._error(session, msg, GATT_READ_NOT_PERMIT)
            return
        session.send(pb.BluetoothGATTReadResponse(address=msg.address, handle=msg.handle, data=bytes(data)))

    def _descriptor(self, session: ApiSession, msg: Any) -> BleConnection | None:
        """The connection whose client characteristic configuration descriptor ``msg`` names (the only
        descriptors the node serves); None after answering with the error."""
        conn = self._connected(session, msg.address, msg.handle)
        if conn is None or conn.table is None:
            return None
        if msg.handle not in conn.table.by_cccd:
            self._error(session, msg, GATT_INVALID_HANDLE)
            return None
        return conn

    def _read_descriptor(self, session: ApiSession, msg: Any) -> None:
        conn = self._descriptor(session, msg)
        if conn is None:
            return
        session.send(pb.BluetoothGATTReadResponse(address=msg.address, handle=msg.handle,
                                                  data=conn.cccd.get(msg.handle, b"\x00\x00")))

    def _write(self, session: ApiSession, msg: Any) -> None:
        conn = self._connected(session, msg.address, msg.handle)
        if conn is None or conn.table is None or conn.emulator is None:
            return
        char = conn.table.by_handle.get(msg.handle)
        if char is None or not char.properties & (0x08 if msg.response else 0x04):
            self._error(session, msg, GATT_INVALID_HANDLE if char is None else GATT_WRITE_NOT_PERMIT)
            return
        # acknowledged with and without response (the ESP's write event fires for both), before the device
        # reacts, as on a real link
        session.send(pb.BluetoothGATTWriteResponse(address=msg.address, handle=msg.handle))
        conn.emulator.receive_write(char.source_uuid, bytes(msg.data))

    def _write_descriptor(self, session: ApiSession, msg: Any) -> None:
        conn = self._descriptor(session, msg)
        if conn is None:
            return
        conn.cccd[msg.handle] = bytes(msg.data)
        session.send(pb.BluetoothGATTWriteResponse(address=msg.address, handle=msg.handle))

    def _notify_request(self, session: ApiSession, msg: Any) -> None:
        conn = self._connected(session, msg.address, msg.handle)
        if conn is None or conn.table is None:
            return
        char = conn.table.by_handle.get(msg.handle)
        if char is None or char.cccd is None:
            self._error(session, msg, GATT_INVALID_HANDLE)
            return
        if msg.enable:
            conn.notify_handles.add(msg.handle)
        else:
            conn.notify_handles.discard(msg.handle)
        session.send(pb.BluetoothGATTNotifyResponse(address=msg.address, handle=msg.handle))

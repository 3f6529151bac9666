"""A simulated ESPHome Bluetooth proxy: ESPHome's native API on a loopback port, bridged to a simulated radio.

Public API::

    async with EsphomeNode(radio, host="127.0.0.1", port=0, noise_psk=None, name="proxy-1") as node:
        node.port            # the TCP port it listens on (chosen by the system for port=0)
        node.knobs           # NodeKnobs: slots, RSSI per device, not-heard devices, refuse API, feature flags,
                             # encryption key, name, MAC (changes apply from the next message/connect/report)
        node.drop_sessions() # drop every API session at once (TCP aborted; Bluetooth links of them closed)
        await node.reboot(3.0)  # drop sessions and links, close the port for 3 s, reopen (node.boots + 1)
        node.sessions        # the open API sessions; node.connections: the slots in use, by address
        node.api_address(mac) / node.knobs.bluetooth_mac

What a client sees is what an ESP32 with ``api:`` and ``bluetooth_proxy: active: true`` shows to
aioesphomeapi and bleak-esphome: hello, device info (with the Bluetooth proxy feature flags and MAC), no
entities, raw advertisements of the devices it hears every ``advert_interval``, free-slot reports,
Bluetooth connects (version 3, with and without cache) limited to ``slots``, GATT services with CCCDs,
reads, writes (with and without response), descriptor writes, notifications, pairing and cache clearing.
A connect to a device goes through :meth:`SimRadio.open_link`, like the simulated bleak client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from aioesphomeapi import api_pb2
from google.protobuf.message import Message

from bmslib.sim.emulator import Emulator
from bmslib.sim.esphome.adverts import int_to_mac, mac_to_int, raw_advertisement
from bmslib.sim.esphome.bridge import ERROR_FAIL_ESTABLISH, ERROR_TERMINATED_BY_PEER, BleConnection
from bmslib.sim.esphome.gatt import CCCD_UUID, split_uuid
from bmslib.sim.esphome.knobs import NodeKnobs, ProxyFeature
from bmslib.sim.esphome.noise import NoiseResponder, decode_psk
from bmslib.sim.esphome.session import ApiSession
from bmslib.sim.radio import DeviceNotFound, LinkRefused, SimRadio, close_link

_LOG = logging.getLogger(__name__)

#: ESPHome's messages (generated code without type information)
pb: Any = api_pb2

API_VERSION = (1, 12)
#: GATT errors as ESPHome sends them
GATT_NOT_CONNECTED = -1  # ESPHome's own code for "no connection to this address"
GATT_INVALID_HANDLE = 0x01
GATT_READ_NOT_PERMIT = 0x02
GATT_WRITE_NOT_PERMIT = 0x03

_REQ = pb.BluetoothDeviceRequestType


class EsphomeNode:
    """One simulated ESPHome node with a Bluetooth proxy (see the module docstring)."""

    def __init__(self, radio: SimRadio, *, host: str = "127.0.0.1", port: int = 0, noise_psk: str | None = None,
                 name: str = "proxy-1", mac: str = "24:0A:C4:00:00:01", knobs: NodeKnobs | None = None) -> None:
        self.radio = radio
        self.host = host
        self.port = port
        self.knobs = knobs or NodeKnobs(name=name, mac=mac, noise_psk=noise_psk)
        self.sessions: set[ApiSession] = set()
        self.connections: dict[int, BleConnection] = {}
        self.boots = 1
        self.api_connections = 0  # TCP connections accepted (refused ones included)
        self._server: asyncio.Server | None = None
        self._session_tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle ---
    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the API port (the same port again after a reboot)."""
        if self.knobs.noise_psk is not None:
            decode_psk(self.knobs.noise_psk)  # a bad key is the caller's mistake: say so now
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Drop every session and Bluetooth link, close the port."""
        self.drop_sessions()
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for conn in list(self.connections.values()):
            self._release(conn, notify=False)
        tasks = list(self._session_tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def listening(self) -> bool:
        return self._server is not None

    def drop_sessions(self, *, graceful: bool = False) -> None:
        """Every API session ends at once, as when the node loses its network or power (its Bluetooth links go
        too). ``graceful``: as when it shuts down on purpose (an update, a reboot from its web page): it sends
        each client a DisconnectRequest first."""
        for session in list(self.sessions):
            if graceful:
                session.send(pb.DisconnectRequest())
                session.end()
            else:
                session.abort()
            self._session_gone(session)

    async def reboot(self, down_for: float = 3.0, *, graceful: bool = False) -> None:
        """Drop the sessions and links, close the port for ``down_for`` seconds, then come back (a new boot).
        ``graceful``: the clients are told first (see :meth:`drop_sessions`)."""
        self.drop_sessions(graceful=graceful)
        await self.stop()
        await asyncio.sleep(down_for)
        self.boots += 1
        await self.start()

    # --- sessions ---
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.api_connections += 1
        if self.knobs.refuse_api:
            writer.transport.abort()
            return
        psk = self.knobs.noise_psk
        noise = None
        if psk is not None:
            noise = NoiseResponder(decode_psk(psk), name=self.knobs.name, mac=self.knobs.mac.replace(":", "").lower())
        session = ApiSession(reader, writer, noise=noise, handle=self._handle)
        self.sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._session_tasks.add(task)
        try:
            await session.run()
        finally:
            self._session_gone(session)
            if task is not None:
                self._session_tasks.discard(task)

    def _session_gone(self, session: ApiSession) -> None:
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        for conn in [c for c in self.connections.values() if c.owner is session]:
            self._release(conn, notify=False)

    def _handle(self, session: ApiSession, msg: Message) -> None:
        handler = self._handlers().get(type(msg))
        if handler is None:
            _LOG.debug("esphome node: %s not handled", type(msg).__name__)
            return
        handler(session, msg)

    def _handlers(self) -> dict[type[Any], Callable[[ApiSession, Any], None]]:
        return {
            pb.HelloRequest: self._hello,
            pb.DisconnectRequest: self._disconnect_request,
            pb.PingRequest: lambda s, m: s.send(pb.PingResponse()),
            pb.GetTimeRequest: lambda s, m: s.send(pb.GetTimeResponse(epoch_seconds=int(time.time()))),
            pb.DeviceInfoRequest: self._device_info,
            pb.ListEntitiesRequest: lambda s, m: s.send(pb.ListEntitiesDoneResponse()),
            pb.SubscribeBluetoothLEAdvertisementsRequest: self._subscribe_adverts,
            pb.UnsubscribeBluetoothLEAdvertisementsRequest: self._unsubscribe_adverts,
            pb.SubscribeBluetoothConnectionsFreeRequest: self._subscribe_free,
            pb.BluetoothDeviceRequest: self._device_request,
            pb.BluetoothGATTGetServicesRequest: self._get_services,
            pb.BluetoothGATTReadRequest: self._read,
            pb.BluetoothGATTReadDescriptorRequest: self._read_descriptor,
            pb.BluetoothGATTWriteRequest: self._write,
            pb.BluetoothGATTWriteDescriptorRequest: self._write_descriptor,
            pb.BluetoothGATTNotifyRequest: self._notify_request,
        }

    def _hello(self, session: ApiSession, msg: Any) -> None:
        session.client_info = msg.client_info
        k = self.knobs
        session.send(pb.HelloResponse(api_version_major=API_VERSION[0], api_version_minor=API_VERSION[1],
                                      server_info=f"{k.name} (esphome v{k.esphome_version})", name=k.name))

    def _disconnect_request(self, session: ApiSession, msg: Any) -> None:
        session.send(pb.DisconnectResponse())
        session.spawn(session.close(), "esphome-node-close")

    def _device_info(self, session: ApiSession, msg: Any) -> None:
        k = self.knobs
        session.send(pb.DeviceInfoResponse(
            name=k.name, friendly_name=k.name, mac_address=k.mac, esphome_version=k.esphome_version,
            compilation_time="Jan  1 2026, 00:00:00", model=k.model, manufacturer="Espressif",
            bluetooth_proxy_feature_flags=k.feature_flags, bluetooth_mac_address=k.bluetooth_mac,
            legacy_bluetooth_proxy_version=5 if k.feature_flags & ProxyFeature.ACTIVE_CONNECTIONS else 1,
            api_encryption_supported=k.noise_psk is not None,
        ))

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
        session.raw_advertisements = bool(msg.flags & 1) and bool(
            self.knobs.feature_flags & ProxyFeature.RAW_ADVERTISEMENTS)
        if not session.advertisements:
            session.advertisements = True
            session.spawn(self._advertise(session), "esphome-node-adverts")

    def _unsubscribe_adverts(self, session: ApiSession, msg: Message) -> None:
        session.advertisements = False

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

    # --- connection slots ---
    def _subscribe_free(self, session: ApiSession, msg: Message) -> None:
        session.connections_free = True
        session.send(self._free_message())

    def _free_message(self) -> pb.BluetoothConnectionsFreeResponse:
        limit = self.knobs.slots
        return pb.BluetoothConnectionsFreeResponse(free=max(0, limit - len(self.connections)), limit=limit,
                                                   allocated=list(self.connections))

    def _free_changed(self) -> None:
        msg = self._free_message()
        for session in self.sessions:
            if session.connections_free:
                session.send(msg)

    def _device_request(self, session: ApiSession, msg: Any) -> None:
        kind = msg.request_type
        if kind in (_REQ.BLUETOOTH_DEVICE_REQUEST_TYPE_CONNECT,
                    _REQ.BLUETOOTH_DEVICE_REQUEST_TYPE_CONNECT_V3_WITH_CACHE,
                    _REQ.BLUETOOTH_DEVICE_REQUEST_TYPE_CONNECT_V3_WITHOUT_CACHE):
            self._connect(session, msg.address, v3=kind != _REQ.BLUETOOTH_DEVICE_REQUEST_TYPE_CONNECT)
        elif kind == _REQ.BLUETOOTH_DEVICE_REQUEST_TYPE_DISCONNECT:
            # the firmware reports the link down, then the slot free
            session.send(pb.BluetoothDeviceConnectionResponse(address=msg.address, connected=False))
            conn = self.connections.get(msg.address)
            if conn is not None:
                self._release(conn, notify=False)
        elif kind == _REQ.BLUETOOTH_DEVICE_REQUEST_TYPE_PAIR:
            self._pair(session, msg.address)
        elif kind == _REQ.BLUETOOTH_DEVICE_REQUEST_TYPE_UNPAIR:
            session.send(pb.BluetoothDeviceUnpairingResponse(address=msg.address, success=True))
        elif kind == _REQ.BLUETOOTH_DEVICE_REQUEST_TYPE_CLEAR_CACHE:
            ok = bool(self.knobs.feature_flags & ProxyFeature.CACHE_CLEARING)
            session.send(pb.BluetoothDeviceClearCacheResponse(address=msg.address, success=ok))

    def _connect(self, session: ApiSession, address: int, *, v3: bool) -> None:
        if not self.knobs.feature_flags & ProxyFeature.ACTIVE_CONNECTIONS:
            session.send(pb.BluetoothDeviceConnectionResponse(address=address, connected=False))
            return
        existing = self.connections.get(address)
        if existing is not None:
            if existing.connected:
                session.send(pb.BluetoothDeviceConnectionResponse(address=address, connected=True,
                                                                  mtu=existing.mtu))
            return  # a connect already under way answers when it is done
        if len(self.connections) >= self.knobs.slots:
            _LOG.info("esphome node %s: no free connection slot for %s", self.knobs.name, int_to_mac(address))
            session.send(pb.BluetoothDeviceConnectionResponse(address=address, connected=False))
            return
        conn = BleConnection(address, int_to_mac(address), session, v3=v3, on_notify=self._on_notify,
                             on_drop=self._on_drop)
        self.connections[address] = conn
        self._free_changed()
        session.spawn(self._open(session, conn), f"esphome-node-connect-{conn.mac}")

    async def _open(self, session: ApiSession, conn: BleConnection) -> None:
        try:
            em = await self._open_link(conn)
        except LinkRefused:
            await asyncio.sleep(self.knobs.connect_fail_after)
            if self.connections.get(conn.address) is conn:
                session.send(pb.BluetoothDeviceConnectionResponse(address=conn.address, connected=False,
                                                                  error=ERROR_FAIL_ESTABLISH))
                del self.connections[conn.address]
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
        session.send(pb.BluetoothDeviceConnectionResponse(address=conn.address, connected=True, mtu=conn.mtu))

    async def _open_link(self, conn: BleConnection) -> Emulator:
        if conn.mac in self.knobs.not_heard:
            raise DeviceNotFound(conn.mac)
        return await self.radio.open_link(conn.mac, conn)

    def _release(self, conn: BleConnection, *, notify: bool) -> None:
        """Free the slot of ``conn`` and close its link (``notify``: tell its session the link is gone)."""
        if self.connections.get(conn.address) is conn:
            del self.connections[conn.address]
        em, conn.emulator = conn.emulator, None
        if em is not None:
            close_link(em, conn)
        owner = conn.owner
        if notify and isinstance(owner, ApiSession):
            owner.send(pb.BluetoothDeviceConnectionResponse(address=conn.address, connected=False,
                                                            error=ERROR_TERMINATED_BY_PEER))
        self._free_changed()

    def _on_drop(self, conn: BleConnection) -> None:
        self._release(conn, notify=True)

    def _on_notify(self, conn: BleConnection, handle: int, data: bytes) -> None:
        owner = conn.owner
        if isinstance(owner, ApiSession):
            owner.send(pb.BluetoothGATTNotifyDataResponse(address=conn.address, handle=handle, data=data))

    def _pair(self, session: ApiSession, address: int) -> None:
        conn = self.connections.get(address)
        if conn is None or conn.emulator is None or not self.knobs.feature_flags & ProxyFeature.PAIRING:
            session.send(pb.BluetoothDevicePairingResponse(address=address, paired=False,
                                                           error=GATT_NOT_CONNECTED))
            return
        pair = getattr(conn.emulator, "pair", None)
        try:
            if pair is not None:
                pair()
        except Exception:  # noqa: BLE001 - an emulator that refuses pairing says so by raising
            session.send(pb.BluetoothDevicePairingResponse(address=address, paired=False, error=0x05))
            return
        session.send(pb.BluetoothDevicePairingResponse(address=address, paired=True))

    # --- GATT ---
    def _connected(self, session: ApiSession, address: int, handle: int) -> BleConnection | None:
        conn = self.connections.get(address)
        if conn is None or conn.emulator is None or conn.table is None:
            session.send(pb.BluetoothGATTErrorResponse(address=address, handle=handle, error=GATT_NOT_CONNECTED))
            return None
        return conn

    def _get_services(self, session: ApiSession, msg: Any) -> None:
        conn = self._connected(session, msg.address, 0)
        if conn is None or conn.table is None:
            return
        for svc in conn.table.services:
            session.send(pb.BluetoothGATTGetServicesResponse(address=msg.address, services=[pb.BluetoothGATTService(
                uuid=split_uuid(svc.uuid), handle=svc.handle, characteristics=[
                    pb.BluetoothGATTCharacteristic(
                        uuid=split_uuid(ch.uuid), handle=ch.handle, properties=ch.properties,
                        descriptors=[] if ch.cccd is None else [pb.BluetoothGATTDescriptor(
                            uuid=split_uuid(CCCD_UUID), handle=ch.cccd)])
                    for ch in svc.characteristics])]))
        session.send(pb.BluetoothGATTGetServicesDoneResponse(address=msg.address))

    def _read(self, session: ApiSession, msg: Any) -> None:
        conn = self._connected(session, msg.address, msg.handle)
        if conn is None or conn.table is None or conn.emulator is None:
            return
        char = conn.table.by_handle.get(msg.handle)
        if char is None:
            session.send(pb.BluetoothGATTErrorResponse(address=msg.address, handle=msg.handle,
                                                       error=GATT_INVALID_HANDLE))
            return
        try:
            data = conn.emulator.handle_read(char.source_uuid) if char.properties & 0x02 else None
        except KeyError:
            data = None
        if data is None:
            session.send(pb.BluetoothGATTErrorResponse(address=msg.address, handle=msg.handle,
                                                       error=GATT_READ_NOT_PERMIT))
            return
        session.send(pb.BluetoothGATTReadResponse(address=msg.address, handle=msg.handle, data=bytes(data)))

    def _read_descriptor(self, session: ApiSession, msg: Any) -> None:
        conn = self._connected(session, msg.address, msg.handle)
        if conn is None or conn.table is None:
            return
        if msg.handle not in conn.table.by_cccd:
            session.send(pb.BluetoothGATTErrorResponse(address=msg.address, handle=msg.handle,
                                                       error=GATT_INVALID_HANDLE))
            return
        session.send(pb.BluetoothGATTReadResponse(address=msg.address, handle=msg.handle,
                                                  data=conn.cccd.get(msg.handle, b"\x00\x00")))

    def _write(self, session: ApiSession, msg: Any) -> None:
        conn = self._connected(session, msg.address, msg.handle)
        if conn is None or conn.table is None or conn.emulator is None:
            return
        char = conn.table.by_handle.get(msg.handle)
        if char is None or not char.properties & (0x08 if msg.response else 0x04):
            error = GATT_INVALID_HANDLE if char is None else GATT_WRITE_NOT_PERMIT
            session.send(pb.BluetoothGATTErrorResponse(address=msg.address, handle=msg.handle, error=error))
            return
        if msg.response:  # the acknowledgement leaves before the device reacts, as on a real link
            session.send(pb.BluetoothGATTWriteResponse(address=msg.address, handle=msg.handle))
        conn.emulator.receive_write(char.source_uuid, bytes(msg.data))

    def _write_descriptor(self, session: ApiSession, msg: Any) -> None:
        conn = self._connected(session, msg.address, msg.handle)
        if conn is None or conn.table is None:
            return
        if msg.handle not in conn.table.by_cccd:
            session.send(pb.BluetoothGATTErrorResponse(address=msg.address, handle=msg.handle,
                                                       error=GATT_INVALID_HANDLE))
            return
        conn.cccd[msg.handle] = bytes(msg.data)
        session.send(pb.BluetoothGATTWriteResponse(address=msg.address, handle=msg.handle))

    def _notify_request(self, session: ApiSession, msg: Any) -> None:
        conn = self._connected(session, msg.address, msg.handle)
        if conn is None or conn.table is None:
            return
        char = conn.table.by_handle.get(msg.handle)
        if char is None or char.cccd is None:
            session.send(pb.BluetoothGATTErrorResponse(address=msg.address, handle=msg.handle,
                                                       error=GATT_INVALID_HANDLE))
            return
        if msg.enable:
            conn.notify_handles.add(msg.handle)
        else:
            conn.notify_handles.discard(msg.handle)
        session.send(pb.BluetoothGATTNotifyResponse(address=msg.address, handle=msg.handle))

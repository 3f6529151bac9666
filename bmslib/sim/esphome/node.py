"""A simulated ESPHome Bluetooth proxy: ESPHome's native API on a loopback port, bridged to a simulated radio.

Public API::

    async with EsphomeNode(radio, host="127.0.0.1", port=0, noise_psk=None, name="proxy-1") as node:
        node.port               # the TCP port it listens on (chosen by the system for port=0, kept on reboot)
        node.knobs              # NodeKnobs (knobs.py), changeable at any time: slots, rssi and address_type per
                                # device, not_heard, refuse_api, feature_flags, noise_psk, name, mac, ...
        node.drop_sessions()    # every API session ends at once (TCP aborted), their Bluetooth links with them;
                                # graceful=True: each client gets a DisconnectRequest first; stale_for=S: the
                                # node notices only after S seconds (the old client keeps holding the proxy)
        await node.reboot(3.0)  # drop sessions and links, close the port for 3 s, reopen (node.boots + 1)
        node.sessions           # the open API sessions
        node.connections        # the Bluetooth connection slots in use, by 48-bit address
        node.proxy.heard()      # the devices it hears now, with their RSSI
        node.proxy.subscriber   # the API session holding the proxy (the first to subscribe to advertisements:
                                # Bluetooth answers go only there, as on the firmware)
        node.listening          # whether the port is open

``EsphomeNode(radio, knobs=NodeKnobs(...))`` takes all knobs at once (then ``name``, ``mac`` and ``noise_psk``
are the knobs'). A bad ``noise_psk`` raises ValueError when the node starts.

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

from aioesphomeapi import BluetoothProxyFeature as ProxyFeature

from bmslib.sim.esphome.bridge import BleConnection
from bmslib.sim.esphome.knobs import NodeKnobs
from bmslib.sim.esphome.messages import pb
from bmslib.sim.esphome.noise import NoiseResponder, decode_psk
from bmslib.sim.esphome.proxy import BluetoothProxy
from bmslib.sim.esphome.session import ApiSession
from bmslib.sim.radio import SimRadio

_LOG = logging.getLogger(__name__)

#: the API version the node speaks (ESPHome 2025.x reports 1.12 and later; 1.12 brought 16-bit UUIDs)
API_VERSION = (1, 12)


class EsphomeNode:
    """One simulated ESPHome node with a Bluetooth proxy (see the module docstring)."""

    def __init__(self, radio: SimRadio, *, host: str = "127.0.0.1", port: int = 0, noise_psk: str | None = None,
                 name: str = "proxy-1", mac: str = "24:0A:C4:00:00:01", knobs: NodeKnobs | None = None) -> None:
        self.radio = radio
        self.host = host
        self.port = port
        self.knobs = knobs or NodeKnobs(name=name, mac=mac, noise_psk=noise_psk)
        self.sessions: set[ApiSession] = set()
        self.proxy = BluetoothProxy(radio, self.knobs)
        self.boots = 1
        self.api_connections = 0  # TCP connections accepted (refused ones included)
        self._server: asyncio.Server | None = None
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._handlers = self._make_handlers()

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
        self.proxy.reset()
        tasks = list(self._session_tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def connections(self) -> dict[int, BleConnection]:
        """The Bluetooth connection slots in use, by 48-bit address."""
        return self.proxy.connections

    @property
    def listening(self) -> bool:
        return self._server is not None

    def drop_sessions(self, *, graceful: bool = False, stale_for: float = 0.0) -> None:
        """Every API session ends at once, as when the node loses its network or power (its Bluetooth links go
        too). ``graceful``: as when it shuts down on purpose (an update, a reboot from its web page): it sends
        each client a DisconnectRequest first. ``stale_for``: as when the network dropped and the node has not
        noticed: the client that held the proxy keeps holding it (and its links) for that many seconds, so a
        client that comes back meanwhile has its advertisement subscription ignored."""
        for session in list(self.sessions):
            if stale_for > 0:
                self.proxy.hold_stale(session, stale_for)
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
        self.proxy.session_gone(session)

    def _handle(self, session: ApiSession, msg: Any) -> None:
        handler = self._handlers.get(type(msg))
        if handler is None:
            _LOG.debug("esphome node: %s not handled", type(msg).__name__)
            return
        handler(session, msg)

    def _make_handlers(self) -> dict[type[Any], Callable[[ApiSession, Any], None]]:
        return {
            pb.HelloRequest: self._hello,
            pb.DisconnectRequest: self._disconnect_request,
            pb.PingRequest: lambda s, m: s.send(pb.PingResponse()),
            pb.GetTimeRequest: lambda s, m: s.send(pb.GetTimeResponse(epoch_seconds=int(time.time()))),
            pb.DeviceInfoRequest: self._device_info,
            pb.ListEntitiesRequest: lambda s, m: s.send(pb.ListEntitiesDoneResponse()),
            **self.proxy.handlers(),
        }

    def _hello(self, session: ApiSession, msg: Any) -> None:
        session.client_info = msg.client_info
        session.api_version = (msg.api_version_major, msg.api_version_minor)
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

"""One ESPHome proxy: its native API connection (aioesphomeapi's ``APIClient`` and ``ReconnectLogic``: connected at
start, reconnected with back-off when it reboots or drops off the network) and, while connected, its scanner in the
:class:`~bmslib.ble.esphome.bluetooth_manager.ProxyBluetoothManager` (bleak-esphome's ``connect_scanner``).

Problems are one log line per proxy that says what to do (a wrong key, an API that refuses us, no Bluetooth proxy
on the node, an unreachable host); the same problem again is not logged again while it lasts, the reconnect goes
on with back-off, and the first good connection after a problem says so once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from aioesphomeapi.client import APIClient
from aioesphomeapi.core import (
    APIConnectionError,
    EncryptionPlaintextAPIError,
    HandshakeAPIError,
    InvalidAuthAPIError,
    InvalidEncryptionKeyAPIError,
    RequiresEncryptionAPIError,
    ResolveAPIError,
    SocketAPIError,
    TimeoutAPIError,
)
from aioesphomeapi.model import BluetoothProxyFeature
from aioesphomeapi.reconnect_logic import ReconnectLogic
from bleak_esphome import connect_scanner
from bleak_esphome.backend.client import ESPHomeClientData
from habluetooth import Allocations

from bmslib.ble.esphome.bluetooth_manager import ProxyBluetoothManager, bound

_LOG = logging.getLogger("batmon.proxy")

#: connection slots assumed before a proxy reports its own (an ESP32's default)
DEFAULT_SLOTS = 3


class ProxyEndpoint(Protocol):
    """A configured proxy (:class:`bmslib.config.settings.ProxyConfig` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def noise_psk(self) -> str | None: ...


def problem_text(exc: BaseException) -> tuple[int, str]:
    """(log level, what went wrong and what to do) for a failed API connection; never shows the key."""
    if isinstance(exc, InvalidEncryptionKeyAPIError):
        return logging.ERROR, ("the API encryption key is wrong: set noise_psk to the node's api: encryption: key: "
                               "(the node refused the handshake)")
    if isinstance(exc, RequiresEncryptionAPIError):
        return logging.ERROR, "its API is encrypted: set noise_psk to the node's api: encryption: key:"
    if isinstance(exc, EncryptionPlaintextAPIError):
        return logging.ERROR, ("its API is not encrypted but noise_psk is set: remove noise_psk, or add an "
                               "api: encryption: key: to the node")
    if isinstance(exc, InvalidAuthAPIError):
        return logging.ERROR, ("it wants an API password, which batmon does not send: give the node an "
                               "api: encryption: key: instead and set noise_psk")
    if isinstance(exc, HandshakeAPIError):
        return logging.ERROR, f"the API handshake failed ({exc}): check noise_psk and the node's api: settings"
    if isinstance(exc, ResolveAPIError):
        return logging.WARNING, f"cannot resolve the host ({exc}): check host"
    if isinstance(exc, SocketAPIError | TimeoutAPIError | OSError | TimeoutError):
        why = str(exc).rpartition("]: ")[2] or type(exc).__name__  # without aioesphomeapi's address list
        return logging.WARNING, (f"cannot reach its API ({why}): check host and port, that "
                                 "the node is powered and on the network, and that its api: is enabled")
    if isinstance(exc, APIConnectionError):
        return logging.WARNING, f"the API connection failed ({type(exc).__name__}: {exc})"
    return logging.ERROR, f"unexpected error ({type(exc).__name__}: {exc})"


class ProxyLink:
    """The API connection to one proxy and, while it is up, its scanner in the manager."""

    def __init__(self, endpoint: ProxyEndpoint, bluetooth: ProxyBluetoothManager,
                 on_change: Callable[[], None]) -> None:
        self.endpoint = endpoint
        self.name = endpoint.name
        self.bluetooth = bluetooth
        self.on_change = on_change  # the proxy came, went, or its slots changed
        self.client_data: ESPHomeClientData | None = None
        self.source: str | None = None  # the proxy's Bluetooth MAC: habluetooth's name for it
        self.connections = 0  # successful API connections so far
        self._cli: APIClient | None = None
        self._reconnect: ReconnectLogic | None = None
        self._teardown: list[Callable[[], None]] = []
        self._logged: str | None = None  # the problem logged last (not logged again while it lasts)
        self._stopping = False

    def __repr__(self) -> str:
        return f"<ProxyLink {self.describe()}>"

    def describe(self) -> str:
        return f"{self.name} ({self.endpoint.host}:{self.endpoint.port})"

    # --- what the backend asks ---
    @property
    def usable(self) -> bool:
        """Connected, with a scanner that can connect to devices."""
        data = self.client_data
        return data is not None and data.bluetooth_device.available and bool(
            data.scanner is not None and data.scanner.connectable)

    @property
    def slot_limit(self) -> int:
        data = self.client_data
        limit = data.bluetooth_device.ble_connections_limit if data is not None else 0
        return limit or DEFAULT_SLOTS

    # --- life cycle ---
    async def start(self) -> None:
        """Start connecting (in the background, with back-off); returns at once. Raises nothing."""
        self._cli = APIClient(self.endpoint.host, self.endpoint.port, None, noise_psk=self.endpoint.noise_psk or None,
                              client_info="batmon")
        self._reconnect = ReconnectLogic(client=self._cli, on_connect=self._on_connect,
                                         on_disconnect=self._on_disconnect, on_connect_error=self._on_connect_error,
                                         name=self.name, zeroconf_wake=False)
        await self._reconnect.start()

    async def stop(self) -> None:
        """Close the API connection and stop reconnecting. Raises nothing."""
        reconnect, cli, self._reconnect, self._cli = self._reconnect, self._cli, None, None
        self._stopping = True
        try:
            if reconnect is not None:
                await reconnect.stop()
            if cli is not None:
                await cli.disconnect(force=True)
        except (APIConnectionError, OSError) as exc:
            _LOG.debug("ESPHome proxy %s: closing: %s", self.describe(), exc)
        finally:
            self._end_session()

    # --- the API connection's callbacks ---
    def _problem(self, level: int, text: str) -> None:
        if text != self._logged:
            _LOG.log(level, "ESPHome proxy %s: %s; retrying in the background", self.describe(), text)
            self._logged = text

    async def _on_connect_error(self, exc: Exception) -> None:
        self._problem(*problem_text(exc))

    async def _on_connect(self) -> None:
        cli = self._cli
        if cli is None:
            return
        try:
            info = await cli.device_info()
            assert cli.api_version is not None
            flags = info.bluetooth_proxy_feature_flags_compat(cli.api_version)
            if not flags & BluetoothProxyFeature.PASSIVE_SCAN:
                self._problem(logging.ERROR, "the node has no Bluetooth proxy: add bluetooth_proxy: active: true "
                                             "to its ESPHome configuration")
                return
            with bound(self.bluetooth):  # bleak-esphome reads habluetooth's manager while it builds the scanner
                data = connect_scanner(cli, info, True)
            scanner = data.scanner
            assert scanner is not None
            self._teardown = [scanner.async_setup(), self.bluetooth.async_register_scanner(scanner)]
            data.bluetooth_device.async_subscribe_connection_slots(self._slots_changed)
            self.client_data, self.source = data, scanner.source
        except (APIConnectionError, OSError, TimeoutError) as exc:
            self._problem(*problem_text(exc))
            return
        self.connections += 1
        if not flags & BluetoothProxyFeature.ACTIVE_CONNECTIONS:
            self._problem(logging.WARNING, "the node's Bluetooth proxy is passive: batmon hears advertisements "
                                           "through it but cannot connect; set bluetooth_proxy: active: true")
        elif self._logged is not None or self.connections == 1:
            _LOG.info("ESPHome proxy %s connected (ESPHome %s)", self.describe(), info.esphome_version or "?")
            self._logged = None
        self.on_change()

    def _slots_changed(self, allocations: Allocations) -> None:
        self.bluetooth.async_on_allocation_changed(allocations)  # what connect_scanner subscribed
        self.on_change()

    async def _on_disconnect(self, expected: bool) -> None:
        if self.client_data is not None and not self._stopping:
            _LOG.info("ESPHome proxy %s disconnected; reconnecting in the background", self.describe())
        self._end_session()

    def _end_session(self) -> None:
        """The session is gone: its devices' links drop, slot waiters fail over, the scanner leaves the table."""
        data, self.client_data = self.client_data, None
        teardown, self._teardown = self._teardown, []
        if data is not None:
            data.bluetooth_device.async_set_unavailable()
            for callback in list(data.disconnect_callbacks):
                try:
                    callback()
                except Exception:  # noqa: BLE001  (one client's teardown must not skip the others')
                    _LOG.exception("ESPHome proxy %s: a client's teardown failed", self.describe())
            data.disconnect_callbacks.clear()
        for undo in teardown:
            undo()
        if data is not None:
            self.on_change()

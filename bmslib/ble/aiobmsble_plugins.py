"""aiobmsble's plugins as plain data (:func:`catalog`), and running one against a device (:class:`PluginRunner`).

With :mod:`bmslib.ble.aiobmsble_seam` this is the only module that imports aiobmsble (an import-linter
contract says so). Above the BLE layer the bridge family (:mod:`bmslib.bms.bridge`) sees plugins as
:class:`Plugin` values and samples as plain dicts, and every error as one of the project's types.

A plugin is a module ``aiobmsble.bms.<name>_bms`` with a ``BMS`` class (aiobmsble's ``BaseBMS``); its
``async_update()`` connects by itself (through bleak-retry-connector, with the bleak client the seam routes
to batmon's backend) and returns a ``BMSSample`` dict, with the values aiobmsble derives (power, charge from
SoC and capacity, ...) added.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import io
import logging
import pkgutil
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiobmsble
import aiobmsble.bms
from aiobmsble.basebms import BaseBMS

from bmslib.ble.adapter import adapter_name
from bmslib.ble.address import AddressMatcher
from bmslib.ble.aiobmsble_seam import Route, routed
from bmslib.ble.backend import BleBackend
from bmslib.ble.radio_errors import RADIO_ERRORS, connect_error, gatt_error
from bmslib.ble.transport import FoundDevice, find_device
from bmslib.errors import BmsAuthError, BmsConnectError, BmsError, BmsTimeoutError, FrameError

_SUFFIX = "_bms"
#: aiobmsble's example plugin, which reads no real device
_NOT_A_BMS = frozenset({"dummy"})
#: the keys of aiobmsble's BMSSample (the sample dict a plugin returns)
SAMPLE_KEYS = frozenset(aiobmsble.BMSSample.__annotations__) | frozenset(aiobmsble.BatterySample.__annotations__)


@dataclass(frozen=True, slots=True)
class PluginMatcher:
    """One of a plugin's advertisement patterns (aiobmsble's ``MatcherPattern``) as plain values.

    ``local_name``: a case-sensitive shell glob; ``service_uuid``: a 128-bit UUID in lower case;
    ``service_data_uuid``: service data the advertisement carries ("" : it carries none); ``manufacturer_id``
    with the bytes its data starts with; ``oui``: the first three bytes of the MAC; ``connectable``: the
    plugin needs a connection (all do in aiobmsble 0.31).
    """

    local_name: str | None = None
    service_uuid: str | None = None
    service_data_uuid: str | None = None
    manufacturer_id: int | None = None
    manufacturer_data_start: bytes = b""
    oui: str | None = None
    connectable: bool = True


@dataclass(frozen=True, slots=True)
class Plugin:
    """One aiobmsble plugin: its name (``aiobmsble.bms.<name>_bms``), what it reads and how it is found."""

    name: str
    manufacturer: str
    model: str
    matchers: tuple[PluginMatcher, ...]
    accepts_secret: bool  # the plugin takes a password (aiobmsble's ``BMSConfig.secret``)
    #: the sample keys the plugin's code names (its own values; aiobmsble derives more from them)
    reads: frozenset[str]


def _matcher(pattern: Mapping[str, Any]) -> PluginMatcher:
    start = pattern.get("manufacturer_data_start") or ()
    uuid = pattern.get("service_uuid")
    data_uuid = pattern.get("service_data_uuid")
    return PluginMatcher(
        local_name=pattern.get("local_name"),
        service_uuid=uuid.lower() if uuid else None,
        service_data_uuid=data_uuid.lower() if data_uuid is not None else None,
        manufacturer_id=pattern.get("manufacturer_id"),
        manufacturer_data_start=bytes(start),
        oui=pattern.get("oui"),
        connectable=bool(pattern.get("connectable", True)),
    )


def _sample_keys_named(cls: type[BaseBMS]) -> frozenset[str]:
    """The BMSSample keys the plugin's module names, and those of the plugins it builds on (``ag`` is ``ej``'s
    protocol); comments do not count."""
    found: set[str] = set()
    for klass in cls.__mro__:
        if not (isinstance(klass, type) and issubclass(klass, BaseBMS)) or klass is BaseBMS:
            continue
        try:
            source = inspect.getsource(inspect.getmodule(klass) or klass)
        except (OSError, TypeError):
            continue
        found |= _keys_in(source)
    return frozenset(found)


def _keys_in(source: str) -> set[str]:
    """Sample keys named in ``source``: as string literals (``"voltage"``, ``BMSDp("voltage", ...)``) and as
    keyword arguments inside brackets (``BMSSample(voltage=...)``)."""
    found: set[str] = set()
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    depth = 0
    for tok, after in zip(tokens, [*tokens[1:], None], strict=True):
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth = max(0, depth - 1)
        elif tok.type == tokenize.STRING and (text := tok.string.strip("\"'")) in SAMPLE_KEYS:
            found.add(text)
        elif (tok.type == tokenize.NAME and tok.string in SAMPLE_KEYS and depth > 0 and after is not None
              and after.type == tokenize.OP and after.string == "="):
            found.add(tok.string)
    return found


def plugin_class(name: str) -> type[BaseBMS]:
    """The ``BMS`` class of plugin ``name``. Raises ValueError when there is no such plugin, TypeError when its
    module has no plugin class."""
    if not name.isidentifier() or name in _NOT_A_BMS:
        raise ValueError(f"no aiobmsble plugin {name!r}")
    try:
        module = importlib.import_module(f"{aiobmsble.bms.__name__}.{name}{_SUFFIX}")
    except ImportError as exc:
        raise ValueError(f"no aiobmsble plugin {name!r}") from exc
    cls = getattr(module, "BMS", None)
    if not (isinstance(cls, type) and issubclass(cls, BaseBMS)):
        raise TypeError(f"aiobmsble's module {name}{_SUFFIX} has no BMS class")
    return cls


@functools.cache
def catalog() -> tuple[Plugin, ...]:
    """Every aiobmsble plugin (but its dummy), by name. Imports them on the first call; cached per process."""
    plugins: list[Plugin] = []
    for info in sorted(pkgutil.iter_modules(aiobmsble.bms.__path__), key=lambda m: m.name):
        if not info.name.endswith(_SUFFIX):
            continue
        name = info.name[:-len(_SUFFIX)]
        if name in _NOT_A_BMS:
            continue
        try:
            cls = plugin_class(name)
        except (ValueError, TypeError):
            continue
        plugins.append(Plugin(
            name=name, manufacturer=str(cls.INFO.get("manufacturer", "")), model=str(cls.INFO.get("model", "")),
            matchers=tuple(_matcher(p) for p in cls.matcher_dict_list()),
            accepts_secret=bool(getattr(cls, "accept_secret", False)), reads=_sample_keys_named(cls)))
    return tuple(plugins)


class PluginRunner:
    """Runs one aiobmsble plugin against one device on batmon's BLE paths.

    :meth:`locate` finds the device by scanning (the transport's :func:`~bmslib.ble.transport.find_device`),
    so the plugin gets bleak's real ``BLEDevice``; :meth:`connect` and :meth:`update` run the plugin inside
    :func:`~bmslib.ble.aiobmsble_seam.routed`, so its clients use ``backend`` and ``adapter``. Without
    ``keep_alive`` the link is closed after each update. Every error of bleak, bleak-retry-connector, the OS
    or the plugin itself leaves as one of the project's types (each method says which).
    """

    def __init__(self, address: str, *, backend: BleBackend, plugin: str, adapter: str | None = None,
                 keep_alive: bool = True, secret: str | None = None, scan_timeout: float = 10.0,
                 connect_timeout: float = 65.0, log: logging.LoggerAdapter[logging.Logger] | None = None) -> None:
        self.address = address
        self.matcher = AddressMatcher(address)
        self.backend = backend
        self.plugin_name = plugin
        self.cls = plugin_class(plugin)
        self.adapter = adapter
        self.keep_alive = keep_alive
        self._secret = secret  # never logged
        self.scan_timeout = scan_timeout
        self.connect_timeout = connect_timeout
        self.log = log
        self.found: FoundDevice | None = None
        self._bms: BaseBMS | None = None

    @property
    def is_connected(self) -> bool:
        """The plugin's link is up. Raises nothing."""
        try:
            return self._bms is not None and self._bms.is_connected
        except Exception:  # noqa: BLE001 - a plugin's client in a state bleak does not expect: not connected
            return False

    @property
    def rssi(self) -> int | None:
        return self.found.advertisement.rssi if self.found is not None else None

    @property
    def slot_wanted(self) -> bool:
        """Connected, and holding a connection slot another device waits for (ESPHome proxies): the plugin's
        link should be let go after the read, as :attr:`BleTransport.slot_wanted`. Raises nothing."""
        return (self.found is not None and self.is_connected
                and self.backend.slot_wanted(self.found.device.address))

    def _route(self) -> Route:
        return Route(backend=self.backend.client, adapter=self.adapter)

    async def locate(self) -> None:
        """Scan for the device unless it was found before (or is connected).

        Raises DeviceNotFoundError, BluetoothUnavailableError or BmsConnectError (the scan failed).
        """
        if self.found is not None or self.is_connected:
            return
        if self.adapter and not self.backend.simulated:
            self.adapter = await adapter_name(self.adapter)  # a MAC becomes hciN, once
        self.found = await find_device(self.matcher, backend=self.backend, adapter=self.adapter,
                                       scan_timeout=self.scan_timeout)

    def _logger_name(self) -> str:
        """The plugin logs under the device's logger (``<device logger>.aiobmsble``), so ``debug: true`` on the
        device shows its frames. With a password it logs at INFO at most: its debug lines carry the bytes it
        sends, the password among them, and secrets never reach a log."""
        name = f"{self.log.logger.name}.aiobmsble" if self.log is not None else f"batmon.aiobmsble.{self.address}"
        logger = logging.getLogger(name)
        logger.setLevel(logging.NOTSET)  # the device's level
        if self._secret and logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)
            if self.log is not None:
                self.log.info("aiobmsble's debug lines are off for this device: they would show the pin")
        return name

    def _plugin(self) -> BaseBMS:
        if self._bms is None:
            assert self.found is not None
            config = aiobmsble.BMSConfig(keep_alive=True, secret=self._secret or "")
            kwargs: dict[str, Any] = {}
            if "adv_data" in inspect.signature(self.cls.__init__).parameters:  # a plugin taking the advertisement
                kwargs["adv_data"] = self.found.advertisement
            with routed(self._route()):
                self._bms = self.cls(self.found.device, config, logger_name=self._logger_name(), **kwargs)
        return self._bms

    async def connect(self) -> None:
        """Find the device (first time) and let the plugin connect; a no-op when connected.

        Raises DeviceNotFoundError, BluetoothUnavailableError, BmsAuthError (the BMS refused the password) or
        BmsConnectError (refused, timed out, the plugin's set-up failed).
        """
        await self.locate()
        try:
            bms = self._plugin()
            if bms.is_connected:
                return
            with routed(self._route()):
                async with asyncio.timeout(self.connect_timeout):
                    await bms.__aenter__()  # aiobmsble's public way to connect (BMSConfig(keep_alive=True))
        except TimeoutError as exc:
            await self._forget()
            raise BmsConnectError(self.address, f"connect timed out after {self.connect_timeout:g} s") from exc
        except PermissionError as exc:  # aiobmsble's "Incorrect secret." (an OSError: before the radio's errors)
            await self._forget()
            raise BmsAuthError(f"{self.address}: the BMS refused the pin ({exc})") from exc
        except RADIO_ERRORS as exc:
            await self._forget()
            raise connect_error(exc, self.address) from exc
        except BmsError:
            await self._forget()
            raise
        except Exception as exc:  # the plugin's own failure while setting up the link
            await self._forget()
            raise BmsConnectError(self.address, f"aiobmsble's {self.plugin_name} plugin failed to connect: "
                                                f"{type(exc).__name__}: {exc}") from exc

    async def update(self) -> dict[str, Any]:
        """The plugin's sample (aiobmsble's BMSSample, as a plain dict), connecting first when needed.

        Raises what :meth:`connect` raises, BmsTimeoutError (the device did not answer), BmsDisconnectedError
        (the link dropped), GattError, or FrameError (the plugin failed on what the device sent, or returned
        nothing).
        """
        await self.connect()
        bms = self._bms
        assert bms is not None
        try:
            with routed(self._route()):
                sample = await bms.async_update()
        except TimeoutError as exc:
            if not bms.is_connected:
                raise gatt_error(exc, self.address, "read", link_up=False) from exc
            raise BmsTimeoutError(f"aiobmsble's {self.plugin_name} plugin got no valid reply") from exc
        except RADIO_ERRORS as exc:
            raise gatt_error(exc, self.address, "read", link_up=self.is_connected) from exc
        except BmsError:
            raise
        except Exception as exc:  # the plugin's decoder failed (an unexpected frame, a value out of range)
            raise FrameError(f"aiobmsble's {self.plugin_name} plugin failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if not self.keep_alive:
                await self.disconnect()
        if not isinstance(sample, dict) or not sample:
            raise FrameError(f"aiobmsble's {self.plugin_name} plugin returned no values")
        return dict(sample)

    async def disconnect(self) -> None:
        """Close the plugin's link (idempotent). Raises nothing."""
        bms = self._bms
        if bms is None:
            return
        try:
            async with asyncio.timeout(10):
                await bms.disconnect()
        except Exception as exc:  # noqa: BLE001 - a failing disconnect is ignored, as the transport's is
            if self.log is not None:
                self.log.debug("aiobmsble disconnect failed: %s: %s", type(exc).__name__, exc)

    async def _forget(self) -> None:
        """After a failed connect: close what the plugin opened, and scan again next time (the device may
        have moved to another adapter or changed its address)."""
        await self.disconnect()
        self._bms = None
        self.found = None

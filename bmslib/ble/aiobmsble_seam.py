"""The one seam between aiobmsble and batmon's BLE paths (BlueZ, the simulated radio, ESPHome proxies).

aiobmsble's ``BaseBMS`` builds its own ``BleakClient`` (in ``__init__``, and through bleak-retry-connector's
``establish_connection(client_class=BleakClient, ...)`` when it connects) and takes no parameter for a bleak
backend. Its own tests replace the module attribute ``aiobmsble.basebms.BleakClient``; so does this module,
once, with :class:`RoutedBleakClient`: a ``BleakClient`` that takes its backend (and BlueZ adapter) from
the context in which the plugin runs (:func:`routed`), and is a plain ``BleakClient`` outside of one.

Everything else about aiobmsble (its plugins, their samples) is reached through :mod:`bmslib.ble`; the test
``tests/test_aiobmsble_seam.py`` fails when a newer aiobmsble moves the attribute this relies on.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiobmsble.basebms
from bleak import BleakClient
from bleak.backends.client import BaseBleakClient


@dataclass(frozen=True, slots=True)
class Route:
    """Where the clients an aiobmsble plugin makes connect: a bleak backend class (``None``: the platform's)
    and a BlueZ adapter (``hciN``; ``None``: the default)."""

    backend: type[BaseBleakClient] | None = None
    adapter: str | None = None


def _route_var() -> contextvars.ContextVar[Route | None]:
    """The context variable the routed clients read (one per process, made on first use)."""
    var = getattr(RoutedBleakClient, "_route", None)
    if var is None:
        var = contextvars.ContextVar("batmon_aiobmsble_route", default=None)
        RoutedBleakClient._route = var
    return var


class RoutedBleakClient(BleakClient):
    """A BleakClient whose backend and adapter come from the :func:`routed` context it is made in."""

    _route: contextvars.ContextVar[Route | None] | None = None

    def __init__(self, address_or_ble_device: Any, *args: Any, **kwargs: Any) -> None:
        route = _route_var().get()
        if route is not None:
            if route.backend is not None:
                kwargs.setdefault("backend", route.backend)
            if route.adapter:
                kwargs.setdefault("bluez", {"adapter": route.adapter})
        super().__init__(address_or_ble_device, *args, **kwargs)


def install() -> None:
    """Make aiobmsble build :class:`RoutedBleakClient` (idempotent). Raises RuntimeError when aiobmsble no
    longer has the attribute (a newer release moved it: the bridge cannot route its clients)."""
    current = getattr(aiobmsble.basebms, "BleakClient", None)
    if current is RoutedBleakClient:
        return
    if current is not BleakClient:
        raise RuntimeError(f"aiobmsble.basebms.BleakClient is {current!r}, not bleak's BleakClient: "
                           "this aiobmsble release builds its clients elsewhere")
    aiobmsble.basebms.BleakClient = RoutedBleakClient


@contextlib.contextmanager
def routed(route: Route) -> Iterator[None]:
    """Within this context (and the tasks started in it), the clients aiobmsble builds use ``route``."""
    install()
    token = _route_var().set(route)
    try:
        yield
    finally:
        _route_var().reset(token)

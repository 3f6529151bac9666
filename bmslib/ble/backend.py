"""Which bleak backend to use: the platform's (BlueZ on Linux) or the simulator's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bleak import BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

from bmslib.errors import BluetoothUnavailableError

# Fragments of errors that mean "there is no Bluetooth stack to talk to", with what to tell the user.
_UNAVAILABLE_HINTS = (
    ("no bluetooth adapters found", "no Bluetooth adapter found"),
    ("org.freedesktop.dbus.error.serviceunknown", "BlueZ (bluetoothd) is not running"),
    ("org.freedesktop.dbus.error.accessdenied", "access to BlueZ over D-Bus was denied"),
    ("org.bluez.error.notready", "the Bluetooth adapter is not ready (powered off?)"),
    ("bluetooth device is turned off", "the Bluetooth adapter is powered off"),
    ("system_bus_socket", "the D-Bus system bus is not reachable"),
)


def unavailable_reason(exc: BaseException) -> str | None:
    """What to tell the user if ``exc`` says the Bluetooth stack (adapter, BlueZ, D-Bus) is missing."""
    text = f"{type(exc).__name__}: {exc}".lower()
    for hint, reason in _UNAVAILABLE_HINTS:
        if hint in text:
            return reason
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return "the D-Bus system bus is not reachable (no /run/dbus/system_bus_socket)"
    if "adapter" in text and ("not found" in text or "does not exist" in text):
        return f"the Bluetooth adapter was not found ({exc})"
    return None


_MAC = re.compile(r"(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}")


async def adapter_name(adapter: str) -> str:
    """BlueZ's name (``hciN``) for ``adapter`` given as ``hciN`` or as the controller's MAC address.

    Raises BluetoothUnavailableError naming the adapters that exist when a MAC matches none.
    """
    if not _MAC.fullmatch(adapter):
        return adapter
    from bluetooth_adapters import get_adapters  # noqa: PLC0415  (Linux only; needed for this form only)

    adapters = get_adapters()
    try:
        await adapters.refresh()
        found = {name: str(details.get("address", "")).upper() for name, details in adapters.adapters.items()}
    except (OSError, RuntimeError, ValueError) as exc:
        raise BluetoothUnavailableError(f"cannot list Bluetooth adapters to find {adapter}: {exc}") from exc
    for name, address in found.items():
        if address == adapter.upper():
            return name
    seen = ", ".join(f"{n} ({a})" for n, a in sorted(found.items())) or "none"
    raise BluetoothUnavailableError(f"no Bluetooth adapter with address {adapter.upper()} (adapters: {seen})")


@dataclass(frozen=True)
class BleBackend:
    """bleak backend classes; ``None`` means the platform default."""

    client: type[BaseBleakClient] | None = None
    scanner_cls: type[BaseBleakScanner] | None = None
    simulated: bool = False

    def scanner(self, *, adapter: str | None = None, **kwargs: Any) -> BleakScanner:
        if self.scanner_cls is not None:
            kwargs["backend"] = self.scanner_cls
        if adapter:
            kwargs["bluez"] = {"adapter": adapter}
        return BleakScanner(**kwargs)


SYSTEM = BleBackend()

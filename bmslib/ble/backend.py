"""Which bleak backend to use: the platform's (BlueZ on Linux) or the simulator's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bleak import BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

# Fragments of errors that mean "there is no Bluetooth stack to talk to" rather than a device problem.
_UNAVAILABLE_HINTS = (
    "no bluetooth adapters found",
    "org.freedesktop.dbus.error.serviceunknown",
    "org.freedesktop.dbus.error.accessdenied",
    "org.bluez.error.notready",
    "bluetooth device is turned off",
    "dbus_session_bus_address",
    "/run/dbus/system_bus_socket",
    "no such file or directory",
    "connection refused",
)


def bluetooth_unavailable(exc: BaseException) -> bool:
    """True if ``exc`` says the Bluetooth stack (adapter, BlueZ, D-Bus) is missing."""
    text = f"{type(exc).__name__}: {exc}".lower()
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return True
    if "adapter" in text and ("not found" in text or "does not exist" in text):
        return True  # e.g. "adapter 'hci3' not found"
    return any(h in text for h in _UNAVAILABLE_HINTS)


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

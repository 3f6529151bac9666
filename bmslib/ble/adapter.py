"""The Bluetooth adapter a device or a scan uses, given as BlueZ's name (``hci0``) or as its MAC address."""

from __future__ import annotations

from bmslib.ble.address import MAC
from bmslib.ble.radio_errors import RADIO_ERRORS
from bmslib.errors import BluetoothUnavailableError

#: what listing the adapters may raise (bluetooth-adapters talks to BlueZ over D-Bus)
_LISTING_ERRORS: tuple[type[Exception], ...] = (*RADIO_ERRORS, RuntimeError, ValueError)


async def adapter_name(adapter: str) -> str:
    """BlueZ's name (``hciN``) for ``adapter`` given as ``hciN`` or as the controller's MAC address.

    Raises BluetoothUnavailableError naming the adapters that exist when a MAC matches none, or when the
    adapters cannot be listed.
    """
    if not MAC.fullmatch(adapter):
        return adapter
    from bluetooth_adapters import get_adapters  # noqa: PLC0415  (Linux only; needed for this form only)

    adapters = get_adapters()
    try:
        await adapters.refresh()
        found = {name: str(details.get("address", "")).upper() for name, details in adapters.adapters.items()}
    except _LISTING_ERRORS as exc:
        raise BluetoothUnavailableError(f"cannot list Bluetooth adapters to find {adapter}: {exc}") from exc
    for name, address in found.items():
        if address == adapter.upper():
            return name
    seen = ", ".join(f"{n} ({a})" for n, a in sorted(found.items())) or "none"
    raise BluetoothUnavailableError(f"no Bluetooth adapter with address {adapter.upper()} (adapters: {seen})")

"""Which advertisements are those of one configured device: the one address matcher of the BLE layer.

The transport uses it to find a device before connecting, the advertisement listener to pick a device's
advertisements out of everything the scanner hears. A simulated device (``sim:<id>``) reaches the BLE layer
as the MAC of its emulator (the App looks it up on the simulated radio), so it matches like a real one.
"""

from __future__ import annotations

import re

#: a colon-separated MAC address (a device's, or an adapter's in bmslib.ble.adapter)
MAC = re.compile(r"(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}")


class AddressMatcher:
    """Matches a device configured by MAC address (any case) or by its advertised name.

    A MAC matches the advertiser's address only. Anything else matches the advertised name exactly, or the
    address the platform reports for the device (macOS reports a UUID instead of the MAC), in any case.
    """

    __slots__ = ("_upper", "address", "is_mac")

    def __init__(self, address: str) -> None:
        self.address = address
        self.is_mac = MAC.fullmatch(address) is not None
        self._upper = address.upper()

    def matches(self, address: str, *names: str | None) -> bool:
        """True if an advertisement from ``address``, advertising ``names`` (local name, cached device name),
        is the configured device's."""
        if address.upper() == self._upper:
            return True
        return not self.is_mac and self.address in names

    def __repr__(self) -> str:
        return f"AddressMatcher({self.address!r})"

"""Which bleak backend to use: the platform's (BlueZ on Linux) or the simulator's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bleak import BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

from bmslib.ble.adverts import AdvertHub


@dataclass(frozen=True)
class BleBackend:
    """bleak backend classes (``None`` means the platform default), and the advertisement listeners'
    shared scanners on them (:attr:`adverts`): make one backend per radio and share it between devices."""

    client: type[BaseBleakClient] | None = None
    scanner_cls: type[BaseBleakScanner] | None = None
    simulated: bool = False
    adverts: AdvertHub = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "adverts", AdvertHub(self.scanner, simulated=self.simulated))

    def scanner(self, *, adapter: str | None = None, **kwargs: Any) -> BleakScanner:
        """A bleak scanner on this backend (``adapter``: BlueZ's ``hciN``; other keywords go to bleak)."""
        if self.scanner_cls is not None:
            kwargs["backend"] = self.scanner_cls
        if adapter:
            kwargs["bluez"] = {"adapter": adapter}
        return BleakScanner(**kwargs)

    def slot_wanted(self, address: str) -> bool:
        """The device at ``address`` holds a connection slot another device waits for (ESPHome proxies share a
        few): it should let go of it after its read. Never so for BlueZ and the simulator."""
        return False

"""``scan``: list BLE devices and say which device type each one looks like."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bmslib.ble.adapter import adapter_name
from bmslib.ble.adverts import advertisement_of
from bmslib.ble.backend import BleBackend
from bmslib.ble.radio_errors import RADIO_ERRORS, connect_error
from bmslib.protocol.base import AdvertisementMatcher


class Matchable(Protocol):
    """What scanning needs of a device type (:class:`bmslib.family.DeviceType` is one): its name and the
    matchers of its advertisements. The BLE layer does not import the families, which sit above it."""

    @property
    def name(self) -> str: ...

    @property
    def matchers(self) -> Sequence[AdvertisementMatcher]: ...


@dataclass(frozen=True)
class ScanResult:
    address: str
    name: str | None
    rssi: int | None
    types: tuple[str, ...]  # device types whose advertisement patterns match
    notes: tuple[str, ...]
    service_uuids: tuple[str, ...] = ()
    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_data: Mapping[str, bytes] = field(default_factory=dict)
    via: str | None = None  # the ESPHome proxy that heard it (None: this machine's adapter)

    def describe(self) -> str:
        looks = ", ".join(self.types) if self.types else "-"
        note = f"  ({'; '.join(self.notes)})" if self.notes else ""
        rssi = f"{self.rssi:>4d} dBm" if self.rssi is not None else "   ? dBm"
        via = f"{self.via:<16}  " if self.via is not None else ""
        return f"{self.address}  {rssi}  {(self.name or '?'):<24}  {via}{looks}{note}"


def classify(address: str, name: str | None, service_uuids: Sequence[str], manufacturer_data: Mapping[int, bytes],
             types: Mapping[str, Matchable], service_data: Mapping[str, bytes] | None = None,
             ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Device types (and notes) whose matchers accept this advertisement, in the order of ``types``.

    Which one of them a device is (a native type before aiobmsble's plugin of its family, ambiguity
    between families) is decided above the BLE layer, in :mod:`bmslib.detection`."""
    found: list[str] = []
    notes: list[str] = []
    for t in types.values():
        for m in t.matchers:
            if m.matches(address=address, name=name, service_uuids=service_uuids,
                         manufacturer_data=manufacturer_data, service_data_uuids=tuple(service_data or ())):
                if t.name not in found:
                    found.append(t.name)
                if m.note and m.note not in notes:
                    notes.append(m.note)
    return tuple(found), tuple(notes)


async def scan(backend: BleBackend, types: Mapping[str, Matchable], *, timeout: float = 10.0,
               adapter: str | None = None) -> list[ScanResult]:
    """Scan for ``timeout`` seconds; strongest signal first.

    Raises BluetoothUnavailableError (no adapter, BlueZ or D-Bus) or BmsConnectError (the scan failed).
    """
    seen: dict[tuple[str, str | None], ScanResult] = {}  # one line per device and proxy that hears it
    if adapter and not backend.simulated:
        adapter = await adapter_name(adapter)
    try:
        async with backend.scanner(adapter=adapter) as scanner:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    async for dev, adv in scanner.advertisement_data():
                        heard = advertisement_of(dev, adv)
                        kinds, notes = classify(heard.address, heard.name, heard.service_uuids,
                                                heard.manufacturer_data, types, heard.service_data)
                        via = dev.details.get("proxy") if isinstance(dev.details, dict) else None
                        via = via if isinstance(via, str) else None
                        seen[dev.address, via] = ScanResult(heard.address, heard.name, heard.rssi, kinds, notes,
                                                            heard.service_uuids, heard.manufacturer_data,
                                                            heard.service_data, via)
    except RADIO_ERRORS as exc:
        raise connect_error(exc, adapter or "default adapter") from exc
    return sorted(seen.values(), key=lambda r: -(r.rssi if r.rssi is not None else -999))

"""An emulator's GATT table as an ESP32 discovers it: handles, property bits and the client characteristic
configuration descriptor (CCCD) of every characteristic that notifies or indicates. Pure code."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Final

from bmslib.sim.emulator import GattService

CCCD_UUID: Final = "00002902-0000-1000-8000-00805f9b34fb"

#: the Bluetooth core's characteristic property bits, as ESPHome reports them, by bleak's names
PROPERTY_BITS: Final = {
    "broadcast": 0x01, "read": 0x02, "write-without-response": 0x04, "write": 0x08, "notify": 0x10,
    "indicate": 0x20, "authenticated-signed-writes": 0x40, "extended-properties": 0x80,
}


def split_uuid(text: str) -> tuple[int, int]:
    """A UUID as ESPHome sends it: the high and low 64 bits."""
    value = uuid.UUID(text).int
    return value >> 64, value & 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True, slots=True)
class Characteristic:
    uuid: str  # normalised (lower case, 128 bits)
    source_uuid: str  # as the emulator names it (what its write and notify calls use)
    handle: int  # the value handle (what reads, writes and notifications name)
    properties: int
    cccd: int | None  # the handle of its CCCD, when it notifies or indicates


@dataclass(frozen=True, slots=True)
class Service:
    uuid: str
    handle: int
    characteristics: tuple[Characteristic, ...]


@dataclass(frozen=True, slots=True)
class GattTable:
    services: tuple[Service, ...]
    by_handle: dict[int, Characteristic] = field(default_factory=dict)
    by_cccd: dict[int, Characteristic] = field(default_factory=dict)

    def value_handles(self, char_uuid: str) -> tuple[int, ...]:
        """The handles of the characteristics with this UUID (an emulator names characteristics by UUID, and a
        device may list one UUID twice: JK's FFE1 to write and FFE1 to notify)."""
        return tuple(ch.handle for svc in self.services for ch in svc.characteristics if ch.source_uuid == char_uuid)


def gatt_table(services: tuple[GattService, ...]) -> GattTable:
    """Handles as a GATT server lays them out: the service declaration, then per characteristic its
    declaration, its value and (when it notifies or indicates) its CCCD."""
    handle = 0
    out: list[Service] = []
    by_handle: dict[int, Characteristic] = {}
    by_cccd: dict[int, Characteristic] = {}
    for svc in services:
        handle += 1
        svc_handle = handle
        chars: list[Characteristic] = []
        for ch in svc.chars:
            handle += 2  # declaration, value
            value = handle
            props = 0
            for name in ch.properties:
                props |= PROPERTY_BITS.get(name, 0)
            cccd = None
            if props & 0x30:
                handle += 1
                cccd = handle
            char = Characteristic(str(uuid.UUID(ch.uuid)), ch.uuid, value, props, cccd)
            chars.append(char)
            by_handle[value] = char
            if cccd is not None:
                by_cccd[cccd] = char
        out.append(Service(str(uuid.UUID(svc.uuid)), svc_handle, tuple(chars)))
    return GattTable(tuple(out), by_handle, by_cccd)

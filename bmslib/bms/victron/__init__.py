"""Victron SmartShunt / BMV Smart: Instant Readout advertisements or the GATT service."""

from __future__ import annotations

from bmslib.bms.victron.driver import make_driver
from bmslib.bms.victron.emulator import VictronEmulator
from bmslib.bms.victron.protocol.advertisement import decode_advertisements
from bmslib.bms.victron.protocol.gatt import MATCHERS
from bmslib.family import DeviceType, Family, TypeDoc


def family() -> Family:
    return Family("victron", "Victron", doc_page="victron", summary="Victron SmartShunt, BMV Smart", types=(
        DeviceType("victron", "Victron SmartShunt / BMV Smart: Instant Readout (advertisements) with `key:`, "
                   "else the GATT service (paired with `pin:`)", make_driver, frozenset(),
                   emulator=VictronEmulator, matchers=MATCHERS, accepts_pin=True, accepts_key=True,
                   decoder=decode_advertisements,
                   doc=TypeDoc("Victron SmartShunt / BMV Smart: Instant Readout with `key`, else the GATT service",
                               "–", "`key`: Instant Readout key; `pin`: pairing PIN (GATT)",
                               reads="voltage, current, SoC, temperature, consumed charge, runtime, alarms")),
    ))

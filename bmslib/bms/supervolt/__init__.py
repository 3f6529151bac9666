"""Supervolt packs with the ASCII protocol, and other E&J Technology BMS."""

from __future__ import annotations

from bmslib.bms.supervolt import protocol
from bmslib.bms.supervolt.driver import SupervoltDriver
from bmslib.bms.supervolt.emulator import SupervoltEmulator
from bmslib.family import DeviceType, Family, TypeDoc


def family() -> Family:
    return Family("supervolt", "Supervolt", doc_page="supervolt", summary="Supervolt, ASCII protocol", types=(
        DeviceType("supervolt", "Supervolt (ASCII protocol: libatt…, SV12V… packs) and other E&J Technology BMS",
                   SupervoltDriver, SupervoltDriver.switches, codec=protocol.SupervoltCodec,
                   emulator=SupervoltEmulator, matchers=protocol.MATCHERS,
                   doc=TypeDoc("Supervolt packs with the ASCII protocol (`libatt…`, `SV12V…`)",
                               "– (FET states are read)",
                               reads="voltage, current, SoC, cells, temperatures, FET states, remaining charge, "
                                     "capacity, cycles, alarms")),
    ))

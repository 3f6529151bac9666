"""SOK and other ABC-BMS batteries."""

from __future__ import annotations

from bmslib.bms.sok import protocol
from bmslib.bms.sok.driver import SokDriver
from bmslib.bms.sok.emulator import SokEmulator
from bmslib.family import DeviceType, Family, TypeDoc


def family() -> Family:
    return Family("sok", "SOK", doc_page="sok", summary="SOK, ABC-BMS", types=(
        DeviceType("sok", "SOK and other ABC-BMS batteries", SokDriver, SokDriver.switches, codec=protocol.SokCodec,
                   emulator=SokEmulator, matchers=protocol.MATCHERS,
                   doc=TypeDoc("SOK and other ABC-BMS batteries", "– (FET states are read)",
                               reads="voltage, current, SoC, cells, temperatures, FET states, remaining charge, "
                                     "capacity, cycles, problem code, alarms")),
    ))

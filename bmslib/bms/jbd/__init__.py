"""JBD / Xiaoxiang / Overkill Smart BMS (also Supervolt v3 and Ultra packs)."""

from __future__ import annotations

from bmslib.bms.jbd.driver import JbdDriver
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.bms.jbd.protocol import auth, frames
from bmslib.family import DeviceType, Family, TypeDoc


def family() -> Family:
    return Family("jbd", "JBD", doc_page="jbd", summary="JBD/Xiaoxiang/Overkill", types=(
        DeviceType("jbd", "JBD / Xiaoxiang / Overkill Smart BMS", JbdDriver, JbdDriver.switches,
                   codec=frames.JbdCodec, emulator=JbdEmulator, matchers=frames.MATCHERS, accepts_pin=True,
                   pin_problem=auth.password_problem,
                   doc=TypeDoc('JBD / Xiaoxiang / Overkill "Smart BMS", also Supervolt v3 (`SX1…`) and Ultra '
                               "(`SX60…`) packs", "charge, discharge", "`pin`: the BMS password (newer firmware)",
                               reads="voltage, current, SoC, cells, temperatures, FET states, remaining charge, "
                                     "capacity, cycles, problem code, alarms")),
    ))

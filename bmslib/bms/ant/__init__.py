"""ANT BMS: the 2021 protocol and the legacy one (2019/2020 boards)."""

from __future__ import annotations

import functools

from bmslib.bms.ant.driver import LEGACY_SWITCHES, AntDriver
from bmslib.bms.ant.emulator import AntEmulator, AntLegacyEmulator
from bmslib.bms.ant.protocol.codec import MATCHERS, AntCodec, Variant
from bmslib.family import DeviceType, Family, TypeDoc

PIN_DOC = "`pin`: the BMS password"


def family() -> Family:
    return Family("ant", "ANT", doc_page="ant", summary="ANT", variants_note="for pre-2021 boards", types=(
        DeviceType("ant", "ANT BMS, 2021 and legacy protocol (generation from the name or the first reply)",
                   AntDriver, AntDriver.switches, codec=AntCodec, emulator=AntEmulator, matchers=MATCHERS,
                   accepts_pin=True,
                   doc=TypeDoc("ANT BMS, 2021 and legacy generations (from the name or the first reply)",
                               "charge, discharge, balance (legacy: no balance)", PIN_DOC,
                               reads="voltage, current, SoC, cells, temperatures, MOSFET temperature, FET states, "
                                     "balancer, remaining charge, capacity, cycles, SoH, problem code, alarms "
                                     "(legacy: no SoH, MOSFET temperature, problem code)")),
        DeviceType("ant_legacy", "ANT BMS, legacy protocol only (AA 55 AA FF; 2019/2020 units)",
                   functools.partial(AntDriver, variant=Variant.LEGACY), LEGACY_SWITCHES,
                   codec=functools.partial(AntCodec, Variant.LEGACY), emulator=AntLegacyEmulator,
                   accepts_pin=True, in_demo=False,
                   doc=TypeDoc("ANT, legacy protocol forced", "charge, discharge", PIN_DOC,
                               reads="as `ant` (legacy)")),
    ))

"""Daly BMS: Modbus D2, legacy A5 and the read-only 0x81 protocol."""

from __future__ import annotations

import functools

from bmslib.bms.daly.driver import DalyDriver, forced
from bmslib.bms.daly.emulator import DalyEmulator, DalyLegacyEmulator, DalyModbusEmulator
from bmslib.bms.daly.protocol.auto import DalyAutoCodec
from bmslib.bms.daly.protocol.codec import MATCHERS, DalyProtocol
from bmslib.family import DeviceType, Family, TypeDoc

FORCED = TypeDoc("Daly with the protocol forced", "as `daly`", reads="as `daly`")


def family() -> Family:
    return Family("daly", "Daly", doc_page="daly", summary="Daly",
                  variants_note="to force an older or newer protocol", types=(
        DeviceType("daly", "Daly BMS; protocol found at connect (Modbus D2, legacy A5, or 0x81 read-only)",
                   DalyDriver, DalyDriver.switches, codec=DalyAutoCodec, emulator=DalyEmulator, matchers=MATCHERS,
                   doc=TypeDoc("Daly BMS; protocol found at connect: Modbus D2 (H/K/M/S), legacy A5, or 0x81 "
                               "(read only)", "charge, discharge (legacy: charge; 0x81: none)",
                               reads="voltage, current, SoC, cells, temperatures, FET states, remaining charge, "
                                     "cycles, alarms (legacy: no alarms)")),
        DeviceType("daly_legacy", "Daly BMS, legacy A5 protocol (older J/T/A/U/W/ND series)",
                   forced(DalyProtocol.LEGACY), DalyDriver.switches,
                   codec=functools.partial(DalyAutoCodec, DalyProtocol.LEGACY), emulator=DalyLegacyEmulator,
                   in_demo=False, doc=FORCED),
        DeviceType("daly_modbus", "Daly BMS, Modbus D2 protocol (H/K/M/S series)",
                   forced(DalyProtocol.MODBUS), DalyDriver.switches,
                   codec=functools.partial(DalyAutoCodec, DalyProtocol.MODBUS), emulator=DalyModbusEmulator,
                   in_demo=False, doc=FORCED),
    ))

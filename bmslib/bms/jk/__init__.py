"""JK (Jikong) BMS and active balancers: JK02 (24S, 32S) and JK04 frame layouts."""

from __future__ import annotations

import functools

from bmslib.bms.jk.driver import JkDriver
from bmslib.bms.jk.emulator import Jk04Emulator, Jk24sEmulator, Jk32sEmulator, JkEmulator
from bmslib.bms.jk.protocol.codec import MATCHERS, JkCodec
from bmslib.bms.jk.protocol.framing import FrameLayout
from bmslib.family import DeviceType, Family, TypeDoc

FORCED = TypeDoc("the same, with the frame layout forced (a warning is logged once if the device info disagrees)",
                 "as `jk`", reads="as `jk`")


def family() -> Family:
    return Family("jk", "JK", doc_page="jk", summary="JK/Jikong", variants_note="for those models", types=(
        DeviceType("jk", "JK (Jikong) BMS and active balancers; frame layout from the device info", JkDriver,
                   JkDriver.switches, codec=JkCodec, emulator=JkEmulator, matchers=MATCHERS,
                   doc=TypeDoc("JK (Jikong) BMS and active balancers; frame layout (JK02_24S, JK02_32S, JK04) "
                               "chosen from the device info", "charge, discharge, balance (JK04: balance only)",
                               reads="voltage, current, SoC, cells, temperatures, MOSFET temperature, FET states, "
                                     "balancer, balance current, remaining charge, capacity, cycles, SoH, alarms "
                                     "(JK04: voltage, cells, balancer, balance current)")),
        DeviceType("jk_24s", "JK BMS, JK02_24S frame layout (firmware up to 10.x)",
                   functools.partial(JkDriver, layout=FrameLayout.JK02_24S), JkDriver.switches,
                   codec=functools.partial(JkCodec, FrameLayout.JK02_24S), emulator=Jk24sEmulator, in_demo=False,
                   doc=FORCED),
        DeviceType("jk_32s", "JK BMS, JK02_32S frame layout (firmware 11.x and later, JK-PB)",
                   functools.partial(JkDriver, layout=FrameLayout.JK02_32S), JkDriver.switches,
                   codec=functools.partial(JkCodec, FrameLayout.JK02_32S), emulator=Jk32sEmulator, in_demo=False,
                   doc=FORCED),
        DeviceType("jk04", "JK active balancer, JK04 frame layout (JK-B2A16S hw 3.x, JK-B5A24S)",
                   functools.partial(JkDriver, layout=FrameLayout.JK04), frozenset({"balance"}),
                   codec=functools.partial(JkCodec, FrameLayout.JK04), emulator=Jk04Emulator, in_demo=False,
                   doc=FORCED),
    ))

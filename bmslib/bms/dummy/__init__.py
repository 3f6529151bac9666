"""``dummy``: a simulated battery without any radio, to try batmon without a BMS."""

from __future__ import annotations

from bmslib.bms.dummy.driver import DummyDriver
from bmslib.family import DeviceType, Family, TypeDoc


def family() -> Family:
    return Family("dummy", "dummy", summary="a made-up battery, to try things", types=(
        DeviceType("dummy", "a simulated battery without any radio", DummyDriver, DummyDriver.switches,
                   radio=False, doc=TypeDoc("a simulated battery without any radio (any `address`)",
                                            "charge, discharge", reads="made-up values of every kind")),
    ))

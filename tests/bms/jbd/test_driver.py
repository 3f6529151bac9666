"""JBD driver against the JBD emulator, through bleak's API on the simulated radio."""

from __future__ import annotations

import pytest

from bmslib.ble.scan import classify
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.model import Sample
from bmslib.sim.emulator import Faults
from bmslib.sim.radio import SimRadio
from tests.sim_helpers import add_emulator, make_driver, native_types


async def test_read_reports_the_emulated_battery(radio: SimRadio) -> None:
    em = add_emulator(radio, JbdEmulator)
    drv = make_driver("jbd", radio, em)
    await drv.connect()
    s = Sample.build(await drv.read(), timestamp=0, mono=0)
    b = em.battery
    assert s.voltage == pytest.approx(b.voltage, abs=0.011)
    assert s.current == pytest.approx(b.current, abs=0.011)  # model sign: + = discharging, as the battery
    assert list(s.cell_voltages or ()) == pytest.approx(b.cell_voltages, abs=0.0011)
    assert list(s.temperatures or ()) == pytest.approx(b.temperatures, abs=0.06)
    assert s.capacity == b.capacity_ah and s.soc == round(b.soc)
    assert s.switches == {"charge": True, "discharge": True}
    assert drv.device_info.model == JbdEmulator.model and drv.device_info.manufacturer == "JBD"
    await drv.disconnect()


@pytest.mark.parametrize(("name", "attr"), [("charge", "charge_fet"), ("discharge", "discharge_fet")])
async def test_switch_commands_reach_the_emulator_and_read_back(radio: SimRadio, name: str, attr: str) -> None:
    em = add_emulator(radio, JbdEmulator)
    drv = make_driver("jbd", radio, em)
    await drv.connect()
    await drv.read()
    await drv.set_switch(name, False)
    assert getattr(em.battery, attr) is False
    other = "discharge" if name == "charge" else "charge"
    assert (await drv.read())["switches"] == {name: False, other: True}
    await drv.set_switch(name, True)
    assert getattr(em.battery, attr) is True
    assert (await drv.read())["switches"] == {name: True, other: True}
    await drv.disconnect()


async def test_reads_survive_junk_and_slow_chunks(radio: SimRadio) -> None:
    em = add_emulator(radio, JbdEmulator, faults=Faults(junk=0.5, chunk_interval=0.005, latency=0.05))
    drv = make_driver("jbd", radio, em)
    await drv.connect()
    for _ in range(5):
        r = await drv.read()
        assert len(r["cell_voltages"]) == em.battery.cells
    await drv.disconnect()


def test_scan_recognises_the_emulator_advertisement() -> None:
    em = JbdEmulator(address="A4:C1:37:00:00:01", name="JBD-SP04S034")
    adv = em.advertisement()
    kinds, _ = classify(em.address, adv.name, list(adv.service_uuids), adv.manufacturer_data, native_types())
    assert "jbd" in kinds

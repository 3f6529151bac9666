"""The bridge's driver: aiobmsble's plugins reading batmon's emulators through bleak's API on the simulated radio.

aiobmsble's JBD plugin (type ``jbd_ble``) reads batmon's native JBD emulator, and must agree with batmon's own
JBD driver read from the same (frozen-clock) emulator, current sign included. Errors surface as the project's
typed errors.
"""

from __future__ import annotations

import random

import pytest

from bmslib.ble.aiobmsble_plugins import PluginRunner
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.errors import BmsConnectError, BmsDisconnectedError, BmsError, BmsTimeoutError, DeviceNotFoundError
from bmslib.model import Sample
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Faults
from bmslib.sim.radio import SimRadio
from tests.sim_helpers import add_emulator, backend_of, make_driver


def frozen_battery(seed: int, current: float) -> BatteryModel:
    battery = BatteryModel(rng=random.Random(seed), clock=lambda: 0.0, load=lambda _t: current)
    return battery


@pytest.mark.parametrize("current", [12.5, -7.25])  # discharging, charging (the model's sign: + = discharging)
async def test_jbd_ble_reads_the_jbd_emulator_as_batmons_own_driver_does(radio: SimRadio, current: float) -> None:
    battery = frozen_battery(5, current)
    em = add_emulator(radio, JbdEmulator, battery=battery)
    bridged, native = make_driver("jbd_ble", radio, em), make_driver("jbd", radio, em)
    await bridged.connect()
    ours = Sample.build(await bridged.read(), timestamp=0, mono=0)
    await bridged.disconnect()
    await native.connect()
    theirs = Sample.build(await native.read(), timestamp=0, mono=0)
    await native.disconnect()
    assert ours.current == pytest.approx(theirs.current, abs=0.011)
    assert ours.current == pytest.approx(battery.current, abs=0.011)
    assert (ours.current or 0) * current > 0  # the sign: + while discharging, as batmon's model
    assert ours.power == pytest.approx(theirs.power, rel=0.01, abs=0.5)
    assert ours.voltage == pytest.approx(theirs.voltage, abs=0.011)
    assert ours.soc == pytest.approx(theirs.soc, abs=1)
    assert list(ours.cell_voltages or ()) == pytest.approx(list(theirs.cell_voltages or ()), abs=0.0011)
    assert list(ours.temperatures or ()) == pytest.approx(list(theirs.temperatures or ()), abs=0.11)
    assert ours.switches is not None and ours.switches.get("charge") == theirs.switches.get("charge")  # type: ignore[union-attr]
    assert ours.switches.get("discharge") == theirs.switches.get("discharge")  # type: ignore[union-attr]
    assert bridged.offered_switches == frozenset()
    assert bridged.device_info.manufacturer == "Jiabaida"


async def test_a_device_that_is_not_there_is_not_found(radio: SimRadio) -> None:
    runner = PluginRunner("AA:BB:CC:00:00:99", backend=backend_of(radio), plugin="jbd", scan_timeout=0.5)
    with pytest.raises(DeviceNotFoundError, match="not seen within"):
        await runner.update()


async def test_a_muted_device_times_out_as_a_typed_error(radio: SimRadio) -> None:
    em = add_emulator(radio, JbdEmulator, battery=frozen_battery(6, 3.0), faults=Faults(mute=True))
    drv = make_driver("jbd_ble", radio, em)
    await drv.connect()
    with pytest.raises(BmsTimeoutError):
        await drv.read()
    await drv.disconnect()


async def test_a_device_dropping_the_link_mid_reply_is_a_typed_error(radio: SimRadio) -> None:
    em = add_emulator(radio, JbdEmulator, battery=frozen_battery(7, 3.0),
                      faults=Faults(disconnect_after=1, disconnect_mid_frame=True))
    drv = make_driver("jbd_ble", radio, em)
    await drv.connect()
    with pytest.raises(BmsError) as info:
        await drv.read()
    assert isinstance(info.value, BmsDisconnectedError | BmsTimeoutError | BmsConnectError)
    await drv.disconnect()

"""The bridge's driver: aiobmsble's plugins reading batmon's emulators through bleak's API on the simulated radio.

aiobmsble's JBD plugin (type ``jbd_ble``) reads batmon's native JBD emulator, and must agree with batmon's own
JBD driver read from the same (frozen-clock) emulator, current sign included. Errors surface as the project's
typed errors.
"""

from __future__ import annotations

import logging
import random
import struct

import pytest
from aiobmsble.bms.jbd_bms import BMS as JbdPlugin
from bleak.exc import BleakError

from bmslib.ble.aiobmsble_plugins import PluginRunner
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.errors import (
    BmsConnectError,
    BmsDisconnectedError,
    BmsError,
    BmsTimeoutError,
    DeviceNotFoundError,
    FrameError,
    GattError,
)
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


async def test_the_pin_never_reaches_the_log_even_with_debug(radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    pin = "Zq7xK2"
    em = add_emulator(radio, JbdEmulator, battery=frozen_battery(8, 1.0))
    drv = make_driver("jbd_ble", radio, em, pin=pin, debug=True)
    drv.log.logger.setLevel(logging.DEBUG)  # as the App does for `debug: true`
    with caplog.at_level(logging.DEBUG):
        try:
            await drv.connect()
            await drv.read()
        except BmsError:
            pass  # whether the emulator takes aiobmsble's handshake is not the point here
        finally:
            await drv.disconnect()
    assert any(pin.encode() in data for _, data in em.writes)  # the plugin did send it
    text = "\n".join(r.getMessage() for r in caplog.records)
    for shown in (pin, pin.encode().hex(), pin.encode().hex(" ")):
        assert shown not in text
    assert "debug lines are off for this device" in text


async def test_without_a_pin_debug_shows_the_plugins_frames(radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    em = add_emulator(radio, JbdEmulator, "dev2", battery=frozen_battery(9, 1.0))
    drv = make_driver("jbd_ble", radio, em, alias="dev2")
    drv.log.logger.setLevel(logging.DEBUG)
    with caplog.at_level(logging.DEBUG):
        await drv.connect()
        await drv.read()
        await drv.disconnect()
    plugin_lines = [r for r in caplog.records if r.name == f"{drv.log.logger.name}.aiobmsble"]
    assert any("TX BLE req" in r.getMessage() for r in plugin_lines)


async def test_without_keep_alive_the_runner_closes_the_link_after_each_update(radio: SimRadio) -> None:
    em = add_emulator(radio, JbdEmulator, battery=frozen_battery(10, 2.0))
    runner = PluginRunner(em.address, backend=backend_of(radio), plugin="jbd", keep_alive=False)
    for _ in range(2):
        sample = await runner.update()
        assert sample["voltage"] == pytest.approx(em.battery.voltage, abs=0.011)
        assert not runner.is_connected
    assert em.connections == 2


@pytest.mark.parametrize(("failure", "error", "text"), [
    (KeyError("cell_voltages"), FrameError, "jbd plugin failed: KeyError"),
    (struct.error("unpack requires a buffer of 4 bytes"), FrameError, "jbd plugin failed: error"),
    (ZeroDivisionError("division by zero"), FrameError, "jbd plugin failed: ZeroDivisionError"),
    (TimeoutError(), BmsTimeoutError, "got no valid reply"),
    (BleakError("Not connected"), GattError, "read failed: Not connected"),
    (EOFError(), GattError, "read failed: EOFError"),
])
async def test_whatever_the_plugin_raises_leaves_as_a_typed_error(
        radio: SimRadio, monkeypatch: pytest.MonkeyPatch, failure: Exception, error: type[BmsError],
        text: str) -> None:
    em = add_emulator(radio, JbdEmulator, battery=frozen_battery(11, 2.0))
    drv = make_driver("jbd_ble", radio, em)
    await drv.connect()

    async def fails(_self: object) -> dict[str, object]:
        raise failure

    monkeypatch.setattr(JbdPlugin, "_async_update", fails)  # the plugin's decoder failing on the device's data
    with pytest.raises(error, match=text):
        await drv.read()
    monkeypatch.undo()
    assert (await drv.read())["voltage"] > 0  # the next read works again
    await drv.disconnect()


@pytest.mark.parametrize("returned", [{}, {"cell_count": 0}])
async def test_an_empty_sample_is_a_frame_error(radio: SimRadio, monkeypatch: pytest.MonkeyPatch,
                                                returned: dict[str, object]) -> None:
    em = add_emulator(radio, JbdEmulator, battery=frozen_battery(12, 2.0))
    drv = make_driver("jbd_ble", radio, em)

    async def nothing(_self: object) -> dict[str, object]:
        return dict(returned)

    monkeypatch.setattr(JbdPlugin, "_async_update", nothing)
    await drv.connect()
    with pytest.raises(FrameError, match="aiobmsble's"):
        await drv.read()
    await drv.disconnect()

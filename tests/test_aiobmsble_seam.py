"""The seam that routes aiobmsble's bleak clients (bmslib/ble/aiobmsble_seam.py).

Fails when a newer aiobmsble builds its clients elsewhere than ``aiobmsble.basebms.BleakClient``, and shows
that an aiobmsble plugin reads one of batmon's emulators through the simulated radio, the real bleak API and
bleak-retry-connector, with no change to aiobmsble.
"""

from __future__ import annotations

import inspect
import random

import aiobmsble.basebms
import pytest
from aiobmsble.bms.jbd_bms import BMS as JbdPlugin
from bleak import BleakClient

from bmslib.ble import aiobmsble_seam
from bmslib.ble.aiobmsble_seam import Route, RoutedBleakClient, routed
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.sim.battery import BatteryModel
from bmslib.sim.radio import SimRadio, sim_address


def test_aiobmsble_builds_its_clients_from_the_attribute_the_seam_replaces() -> None:
    source = inspect.getsource(aiobmsble.basebms.BaseBMS)
    assert "BleakClient(" in source  # the client made in __init__
    assert "client_class=BleakClient" in source  # and the one establish_connection makes
    assert aiobmsble.basebms.BleakClient in (BleakClient, RoutedBleakClient)


def test_install_refuses_an_attribute_it_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiobmsble.basebms, "BleakClient", object)
    with pytest.raises(RuntimeError, match="builds its clients elsewhere"):
        aiobmsble_seam.install()


async def test_a_plugin_reads_an_emulator_through_the_routed_client() -> None:
    radio = SimRadio()
    battery = BatteryModel(rng=random.Random(3), clock=lambda: 0.0)
    em = JbdEmulator(address=sim_address("jbd1"), name="SIM-jbd1", battery=battery, rng=random.Random(3))
    radio.add(em, sim_id="jbd1")
    scanner = radio.scanner_backend()
    async with __import__("bleak").BleakScanner(backend=scanner) as sc:
        async for dev, _adv in sc.advertisement_data():
            if dev.address == em.address:
                break
    with routed(Route(backend=radio.client_backend())):
        plugin = JbdPlugin(dev)
        try:
            sample = await plugin.async_update()
        finally:
            await plugin.disconnect()
    assert sample["voltage"] == pytest.approx(battery.voltage, abs=0.011)
    assert sample["battery_level"] == pytest.approx(battery.soc, abs=1)
    assert aiobmsble.basebms.BleakClient is RoutedBleakClient

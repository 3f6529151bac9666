"""Passive advertisement listening (bmslib.ble.adverts) and the one address matcher, over the simulated radio."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from bmslib.ble import adverts
from bmslib.ble.address import AddressMatcher
from bmslib.ble.backend import BleBackend
from bmslib.bms.victron.driver import VictronAdvDriver
from bmslib.bms.victron.emulator import VictronEmulator
from bmslib.bms.victron.protocol import gatt as victron
from bmslib.errors import BmsDisconnectedError
from bmslib.model import Sample
from bmslib.registry import device_types
from bmslib.sim.battery import BatteryModel
from bmslib.sim.radio import SimRadio
from tests.sim_helpers import add_emulator, backend_of, device_config

KEY_HEX = "4f1c0a8e6b2d9357e0c4a1b8f63d2e90"


def test_address_matcher() -> None:
    mac = AddressMatcher("aa:bb:cc:dd:ee:01")
    assert mac.is_mac
    assert mac.matches("AA:BB:CC:DD:EE:01", None)
    assert not mac.matches("AA:BB:CC:DD:EE:02", "aa:bb:cc:dd:ee:01")  # a MAC never matches a name
    name = AddressMatcher("SmartShunt HQ2230")
    assert not name.is_mac
    assert name.matches("AA:BB:CC:DD:EE:03", "SmartShunt HQ2230", None)  # the advertised local name
    assert name.matches("AA:BB:CC:DD:EE:03", None, "SmartShunt HQ2230")  # the name the stack knows it by
    assert not name.matches("AA:BB:CC:DD:EE:03", "SmartShunt HQ2231", "smartshunt hq2230")  # names: exact
    uuid = AddressMatcher("0a1b2c3d-aaaa-bbbb-cccc-0123456789ab")  # macOS reports UUIDs, not MACs
    assert uuid.matches("0A1B2C3D-AAAA-BBBB-CCCC-0123456789AB", None)


def listening_driver(radio: SimRadio, em: VictronEmulator, backend: BleBackend, alias: str) -> VictronAdvDriver:
    config = device_config("victron", address=em.address, alias=alias, key=KEY_HEX)
    log = logging.LoggerAdapter(logging.getLogger(f"test.{alias}"), {})
    drv = device_types()["victron"].driver(config, address=em.address, backend=backend, log=log)
    assert isinstance(drv, VictronAdvDriver)
    drv.scan_timeout, drv.request_timeout = 2.0, 1.0
    return drv


async def test_devices_that_listen_share_one_scanner_started_and_stopped_with_them(radio: SimRadio) -> None:
    ems = [add_emulator(radio, VictronEmulator, f"v{i}", battery=BatteryModel(soc=soc), key=KEY_HEX)
           for i, soc in enumerate((20.0, 80.0))]
    backend = backend_of(radio)
    drivers = [listening_driver(radio, em, backend, f"shunt{i}") for i, em in enumerate(ems)]
    assert backend.adverts.scanners_running == 0
    for drv in drivers:
        await drv.connect()
    assert backend.adverts.scanners_running == 1
    for drv, em in zip(drivers, ems, strict=True):  # each hears its own device only
        soc = Sample.build(await drv.read(), timestamp=0, mono=0).soc
        assert soc == pytest.approx(em.battery.soc, abs=0.051)
    await drivers[0].disconnect()
    assert backend.adverts.scanners_running == 1  # the other still listens
    assert Sample.build(await drivers[1].read(), timestamp=0, mono=0).soc == pytest.approx(80.0, abs=0.6)
    await drivers[1].disconnect()
    assert backend.adverts.scanners_running == 0
    await drivers[0].connect()  # listening again starts a scanner again
    assert backend.adverts.scanners_running == 1 and drivers[0].is_connected
    await drivers[0].disconnect()
    assert backend.adverts.scanners_running == 0


async def test_a_listener_by_advertised_name_hears_that_device_only(radio: SimRadio) -> None:
    add_emulator(radio, VictronEmulator, "a", key=KEY_HEX, name="Shunt A")
    b = add_emulator(radio, VictronEmulator, "b", key=KEY_HEX, name="Shunt B")
    listener = backend_of(radio).adverts.listener("Shunt B")
    await listener.start()
    heard = [await listener.next() for _ in range(3)]
    await listener.stop()
    assert {(a.address, a.name) for a in heard} == {(b.address, "Shunt B")}
    assert all(victron.COMPANY_ID in a.manufacturer_data and a.rssi == -60 for a in heard)


async def test_stop_ends_a_wait_and_drops_the_queue(radio: SimRadio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adverts, "QUEUE_SIZE", 3)
    em = add_emulator(radio, VictronEmulator, key=KEY_HEX)
    em.faults.hidden = True  # silent for now
    listener = backend_of(radio).adverts.listener(em.address)
    with pytest.raises(BmsDisconnectedError):
        await listener.next()  # not listening
    await listener.start()
    waiting = asyncio.create_task(listener.next())
    await asyncio.sleep(0.05)
    await listener.stop()
    with pytest.raises(BmsDisconnectedError):
        await waiting
    await listener.start()
    em.faults.hidden = False
    await asyncio.sleep(0.7)  # about 7 advertisements: the newest 3 are kept
    assert len(listener.take()) == 3
    assert listener.take() == []
    await listener.stop()
    await listener.stop()  # idempotent
    assert not listener.listening and listener.take() == []


async def test_a_listener_cancelled_while_waiting_leaves_the_scanner_to_the_others(radio: SimRadio) -> None:
    em = add_emulator(radio, VictronEmulator, key=KEY_HEX)
    backend = backend_of(radio)
    first, second = backend.adverts.listener(em.address), backend.adverts.listener(em.address)
    await first.start()
    await second.start()
    task = asyncio.create_task(first.next())
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await first.stop()
    assert (await second.next()).address == em.address
    await second.stop()
    assert backend.adverts.scanners_running == 0

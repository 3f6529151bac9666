"""Every device type read through an ESPHome proxy: the registry's drivers on the daemon's proxy backend, through
the real aioesphomeapi, bleak-esphome and habluetooth, to the simulated ESPHome node, to the emulators."""

from __future__ import annotations

import asyncio

import bleak
import bleak_retry_connector
import pytest

from bmslib.ble.esphome import ProxyManager
from bmslib.model import Sample
from bmslib.registry import device_types
from bmslib.sim.radio import SimRadio
from tests.proxy_helpers import WAIT, emulator_for, proxied, proxied_driver
from tests.sim_helpers import backend_of, device_config

TYPES = sorted(name for name, t in device_types().items() if t.emulator is not None and t.radio)


@pytest.mark.parametrize("type_name", TYPES)
async def test_every_type_reads_through_a_proxy(type_name: str) -> None:
    radio = SimRadio()
    em = emulator_for(radio, type_name)
    async with proxied(radio) as p:
        driver = proxied_driver(type_name, p.proxies, em)
        try:
            async with asyncio.timeout(WAIT):
                await driver.prepare()
                await driver.connect()
                first = await driver.read()
                second = await driver.read()
        finally:
            await driver.disconnect()
        for reading in (first, second):
            sample = Sample.build(reading, timestamp=0.0, mono=0.0)
            assert sample.voltage is not None and sample.voltage > 0, reading
        if device_types()[type_name].emulator is not None and type_name != "victron":
            assert p.nodes[0].api_connections >= 1
    await radio.aclose()


async def test_a_switch_command_goes_through_the_proxy() -> None:
    radio = SimRadio()
    em = emulator_for(radio, "jbd")
    async with proxied(radio) as p:
        driver = proxied_driver("jbd", p.proxies, em)
        try:
            async with asyncio.timeout(WAIT):
                await driver.connect()
                assert (await driver.read())["switches"]["charge"] is True
                await driver.set_switch("charge", False)
                assert (await driver.read())["switches"]["charge"] is False
                assert p.proxies.via(em.address) == "shed"
        finally:
            await driver.disconnect()
    await radio.aclose()


async def test_bleak_keeps_its_classes_and_the_simulated_radio_works_beside_the_proxies() -> None:
    before = (bleak.BleakClient, bleak.BleakScanner, bleak_retry_connector.BleakClient,
              bleak_retry_connector.BleakClientWithServiceCache)
    radio = SimRadio()
    em = emulator_for(radio, "jbd")
    other = emulator_for(radio, "jbd", "dev2")
    async with proxied(radio) as p:
        assert (bleak.BleakClient, bleak.BleakScanner, bleak_retry_connector.BleakClient,
                bleak_retry_connector.BleakClientWithServiceCache) == before
        direct = device_types()["jbd"].driver(device_config("jbd", address=other.address), address=other.address,
                                              backend=backend_of(radio), log=proxied_driver("jbd", p.proxies, em).log)
        through = proxied_driver("jbd", p.proxies, em)
        try:
            async with asyncio.timeout(WAIT):
                await direct.connect()
                await through.connect()
                assert (await direct.read())["voltage"] > 0
                assert (await through.read())["voltage"] > 0
        finally:
            await direct.disconnect()
            await through.disconnect()
    assert (bleak.BleakClient, bleak.BleakScanner, bleak_retry_connector.BleakClient,
            bleak_retry_connector.BleakClientWithServiceCache) == before
    await radio.aclose()


async def test_two_managers_in_one_process_keep_their_own_tables() -> None:
    radio_a, radio_b = SimRadio(), SimRadio()
    em_a, em_b = emulator_for(radio_a, "jbd", "a"), emulator_for(radio_b, "jbd", "b")
    async with proxied(radio_a, ("a",)) as pa, proxied(radio_b, ("b",)) as pb:
        async with asyncio.timeout(WAIT):
            while not (pa.proxies.paths(em_a.address) and pb.proxies.paths(em_b.address)):
                await asyncio.sleep(0.05)
        assert pa.proxies.paths(em_b.address) == [] and pb.proxies.paths(em_a.address) == []
        assert isinstance(pa.proxies, ProxyManager) and pa.proxies.bluetooth is not pb.proxies.bluetooth

"""Through ESPHome proxies: a proxy rebooting in the middle of a read, failover between two proxies with different
RSSI, more devices than slots, a wrong encryption key, scan. All through the real aioesphomeapi, bleak-esphome and
habluetooth against the simulated ESPHome node."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from pathlib import Path

import pytest

from bmslib.app import App
from bmslib.ble.scan import scan
from bmslib.config import parse_config
from bmslib.drivers.base import Driver
from bmslib.errors import BmsError
from bmslib.registry import device_types, type_infos
from bmslib.sim.esphome.node import EsphomeNode
from bmslib.sim.radio import SimRadio
from tests.proxy_helpers import WAIT, emulator_for, proxied, proxied_driver
from tests.test_cli import ROOT

KEY = base64.b64encode(bytes(range(32))).decode()
WRONG = base64.b64encode(bytes(range(1, 33))).decode()


async def _read_until_it_fails(driver: Driver) -> None:
    while True:
        await driver.read()


async def test_a_reboot_in_the_middle_of_a_read_is_a_typed_error_and_the_next_read_works() -> None:
    radio = SimRadio()
    em = emulator_for(radio, "jk")
    async with proxied(radio) as p:
        driver = proxied_driver("jk", p.proxies, em)
        try:
            async with asyncio.timeout(WAIT):
                await driver.connect()
                await driver.read()
                reboot = asyncio.get_running_loop().create_task(p.nodes[0].reboot(2.0))
                with pytest.raises(BmsError):  # a project error, nothing of the libraries
                    await _read_until_it_fails(driver)
                await reboot
            async with asyncio.timeout(WAIT * 2):
                while True:  # the proxy comes back by itself; the next connect and read go through
                    try:
                        await driver.connect()
                        reading = await driver.read()
                        break
                    except BmsError:
                        await asyncio.sleep(0.5)
            assert reading["cell_voltages"]
            assert p.proxies.links[0].connections >= 2
        finally:
            await driver.disconnect()
    await radio.aclose()


async def test_the_stronger_proxy_is_used_and_the_other_takes_over_when_it_dies() -> None:
    radio = SimRadio()
    em = emulator_for(radio, "jbd")
    gone: asyncio.Task[None] | None = None
    async with proxied(radio, ("near", "far")) as p:
        near, far = p.nodes
        near.knobs.rssi[em.address] = -50
        far.knobs.rssi[em.address] = -85
        driver = proxied_driver("jbd", p.proxies, em)
        try:
            async with asyncio.timeout(WAIT):
                while len(p.proxies.paths(em.address)) < 2 or p.proxies.paths(em.address)[0].name != "near":
                    await asyncio.sleep(0.05)
                await driver.connect()
                await driver.read()
                assert p.proxies.via(em.address) == "near"
                gone = asyncio.get_running_loop().create_task(near.reboot(120.0))  # gone for longer than the test
                await asyncio.sleep(0.5)
                with pytest.raises(BmsError):
                    await driver.read()
            async with asyncio.timeout(WAIT * 2):
                while True:
                    try:
                        await driver.connect()
                        await driver.read()
                        break
                    except BmsError:
                        await asyncio.sleep(0.5)
            assert p.proxies.via(em.address) == "far"
        finally:
            await driver.disconnect()
            if gone is not None:
                gone.cancel()
    await radio.aclose()


async def test_more_devices_than_slots_take_turns_and_every_one_is_read() -> None:
    radio = SimRadio()
    emulators = [emulator_for(radio, "jbd", f"d{i}") for i in range(5)]
    async with proxied(radio, ("shed",), slots=3) as p:
        async with asyncio.timeout(WAIT):
            while not all(p.proxies.paths(em.address) for em in emulators):
                await asyncio.sleep(0.05)
        data = {"ble_stack": "esphome", "bluetooth_proxies": [{"host": "127.0.0.1", "port": p.nodes[0].port,
                                                               "name": "shed"}],
                "keep_alive": True, "sample_period": 0.5, "publish_period": 0.5, "watchdog": False,
                "devices": [{"address": em.address, "type": "jbd", "alias": f"d{i}"}
                            for i, em in enumerate(emulators)]}
        config = parse_config(data, source="test", env={}, types=type_infos(device_types()))
        app = App(config, sinks=[], proxies=p.proxies)
        run = asyncio.get_running_loop().create_task(app.run())
        try:
            async with asyncio.timeout(WAIT * 4):
                while not all(rt.status.samples >= 2 for rt in app.devices.values()):
                    await asyncio.sleep(0.2)
                    assert len(p.nodes[0].connections) <= 3
        finally:
            app.request_stop()
            await asyncio.wait_for(run, WAIT)
    await radio.aclose()


async def test_a_wrong_key_is_one_log_line_and_the_other_proxy_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="batmon.proxy")
    radio = SimRadio()
    em = emulator_for(radio, "jbd")
    async with proxied(radio, ("locked", "open"), connect=False, node_keys=(KEY, None), keys=(WRONG, None)) as p:
        driver = proxied_driver("jbd", p.proxies, em)
        try:
            async with asyncio.timeout(WAIT):
                await p.proxies.wait_connected(1)
                await driver.connect()
                assert (await driver.read())["voltage"] > 0
                assert p.proxies.via(em.address) == "open"
                while not any("locked" in r.getMessage() for r in caplog.records if r.name == "batmon.proxy"):
                    await asyncio.sleep(0.05)
        finally:
            await driver.disconnect()
        lines = [r for r in caplog.records if r.name == "batmon.proxy" and "locked" in r.getMessage()]
        assert len(lines) == 1, [r.getMessage() for r in lines]
        assert lines[0].levelno == logging.ERROR
        assert "API encryption key is wrong" in lines[0].getMessage() and "noise_psk" in lines[0].getMessage()
        assert WRONG not in caplog.text and KEY not in caplog.text
    await radio.aclose()


async def test_a_node_without_bluetooth_proxy_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="batmon.proxy")
    radio = SimRadio()
    async with proxied(radio, ("plain",), connect=False, feature_flags=0) as p:
        async with asyncio.timeout(WAIT):
            while not any("plain" in r.getMessage() for r in caplog.records if r.name == "batmon.proxy"):
                await asyncio.sleep(0.05)
        assert not p.proxies.links[0].usable
    lines = [r.getMessage() for r in caplog.records if r.name == "batmon.proxy"]
    assert len(lines) == 1 and "bluetooth_proxy: active: true" in lines[0], lines


async def test_scan_lists_what_each_proxy_hears_with_its_name() -> None:
    radio = SimRadio()
    jbd, jk = emulator_for(radio, "jbd", "a"), emulator_for(radio, "jk", "b")
    async with proxied(radio, ("near", "far")) as p:
        p.nodes[0].knobs.rssi[jbd.address] = -40
        p.nodes[1].knobs.rssi[jbd.address] = -90
        p.nodes[1].knobs.not_heard.add(jk.address)
        results = await scan(p.proxies.backend, device_types(), timeout=2.0)
    rows = {(r.address, r.via): r for r in results}
    assert rows[jbd.address, "near"].rssi == -40 and rows[jbd.address, "far"].rssi == -90
    assert "jbd" in rows[jbd.address, "near"].types
    assert (jk.address, "near") in rows and (jk.address, "far") not in rows
    assert "near" in rows[jbd.address, "near"].describe()
    await radio.aclose()


async def test_a_device_pinned_to_a_proxy_uses_only_that_one() -> None:
    radio = SimRadio()
    em = emulator_for(radio, "jbd")
    async with proxied(radio, ("near", "far")) as p:
        p.nodes[0].knobs.rssi[em.address] = -40
        p.nodes[1].knobs.rssi[em.address] = -90
        driver = proxied_driver("jbd", p.proxies, em, adapter="far")
        try:
            async with asyncio.timeout(WAIT):
                while len(p.proxies.paths(em.address)) < 2 or p.proxies.paths(em.address)[0].name != "near":
                    await asyncio.sleep(0.05)
                await driver.prepare()
                await driver.connect()
                assert (await driver.read())["voltage"] > 0
            assert p.proxies.via(em.address) == "far"
            assert not p.nodes[0].connections and len(p.nodes[1].connections) == 1
        finally:
            await driver.disconnect()
    await radio.aclose()


async def test_main_scan_with_an_esphome_config_lists_the_proxys_devices(tmp_path: Path) -> None:
    radio = SimRadio()
    jbd = emulator_for(radio, "jbd", "a")
    async with EsphomeNode(radio, name="shed") as node:  # one API client: an ESP32 has one advertisement subscriber
        node.knobs.rssi[jbd.address] = -66
        options = tmp_path / "options.json"
        options.write_text(json.dumps({"ble_stack": "esphome", "bluetooth_proxies": [
            {"host": "127.0.0.1", "port": node.port, "name": "shed"}]}))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "main.py"), "scan", "--timeout", "3", "--config", str(options), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), WAIT * 2)
    assert proc.returncode == 0, err.decode()
    lines = [line for line in out.decode().splitlines() if line.startswith(jbd.address)]
    assert len(lines) == 1, out.decode() + err.decode()
    line = lines[0]
    assert "-66 dBm" in line and "shed" in line and "jbd" in line, line
    assert "via" in out.decode().splitlines()[0]
    await radio.aclose()

"""The bridge inside the daemon: configuration, the sampler, the published entities, the demo and emulators."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import bmslib.bms.bridge.emulators as bridge_emulators
from bmslib.app import App
from bmslib.bms import bridge
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.cli import demo_devices, load_app_config
from bmslib.device import DeviceStatus
from bmslib.entities import sample_entities
from bmslib.model import OutputSign
from bmslib.registry import device_types
from bmslib.sampler import DeviceSampler, SamplerPolicy
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Faults
from bmslib.sim.radio import SimRadio
from tests.sim_helpers import add_emulator, app_running, make_driver
from tests.test_app import RecordingSink, config


def test_bridge_types_in_a_config_file_pass_validation(tmp_path: Path) -> None:
    path = tmp_path / "options.yaml"
    path.write_text(textwrap.dedent("""\
        devices:
          - {address: 'C0:D6:3C:00:00:01', type: seplos, alias: house}
          - {address: 'A4:C1:37:00:00:02', type: jbd_ble, alias: camper, pin: '123456'}
          - {address: 'BT-TH-1234', type: renogy_ble, alias: shed}
        """))
    cfg = load_app_config(str(path), demo=False)
    assert [(d.alias, d.type) for d in cfg.devices] == [("house", "seplos"), ("camper", "jbd_ble"), ("shed", "renogy")]
    assert cfg.devices[1].pin == "123456"


async def test_the_daemon_samples_a_bridge_type_and_publishes_its_fets_read_only() -> None:
    radio = SimRadio()
    battery = BatteryModel(rng=random.Random(2), clock=lambda: 0.0, load=lambda _t: -6.0)  # charging
    add_emulator(radio, JbdEmulator, "pack", battery=battery)
    sink = RecordingSink()
    app = App(config([{"address": "sim:pack", "type": "jbd_ble", "alias": "pack"}]), radio=radio, sinks=[sink])
    try:
        async with app_running(app, stop_timeout=15):
            for _ in range(300):
                if sink.samples:
                    break
                await asyncio.sleep(0.1)
    finally:
        await radio.aclose()
    assert sink.samples, app.devices["pack"].status.last_error
    _, _, sample = sink.samples[0]
    assert sample.current == pytest.approx(-6.0, abs=0.011) and sample.battery_charging is True
    status = app.devices["pack"].status
    assert status.switches == frozenset() and status.device_info.manufacturer == "Jiabaida"
    entities = sample_entities(sample, status, OutputSign(invert=True))
    fets = [e for e in entities if e.key.startswith("switch/")]
    assert {e.switch for e in fets} == {"charge", "discharge", "balance"}
    assert all(e.component == "binary_sensor" and e.enabled_by_default for e in fets)  # never a switch


async def test_errors_of_a_bridged_device_are_a_log_line_and_a_status_not_a_crash(
        radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    em = add_emulator(radio, JbdEmulator, battery=BatteryModel(rng=random.Random(4), clock=lambda: 0.0),
                      faults=Faults(mute=True))
    driver = make_driver("jbd_ble", radio, em)
    status = DeviceStatus(alias="dev1", type="jbd_ble", address="sim:dev1", switches=frozenset())
    log = logging.LoggerAdapter(logging.getLogger("test.bridge"), {})
    sampler = DeviceSampler(driver, status, SamplerPolicy(period=1.0, keep_alive=False,
                                                          read_timeout=driver.read_timeout),
                            log=log, connect_lock=asyncio.Lock(), read_slot=None)
    with caplog.at_level(logging.WARNING):
        assert await sampler.cycle() is None
    assert status.errors == 1 and "no valid reply" in (status.last_error or "")
    assert "read failed" in caplog.text and "Traceback" not in caplog.text
    assert not driver.is_connected  # keep_alive off: disconnected after the cycle


def test_emulators_of_bridge_types_are_found_and_join_the_demo(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    (tmp_path / "seplos.py").write_text(textwrap.dedent("""\
        from bmslib.sim.emulator import Advertisement, Emulator


        class ThrowawaySeplos(Emulator):
            type_name = "seplos"
            gatt = ()

            def advertisement(self):
                return Advertisement(name=self.name)

            def handle_write(self, char_uuid, data):
                pass

            def handle_read(self, char_uuid):
                return b""


        EMULATOR = ThrowawaySeplos
        """))
    monkeypatch.setattr(bridge_emulators, "__path__", [*bridge_emulators.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, f"{bridge_emulators.__name__}.seplos", raising=False)
    found = bridge_emulators.discover()
    assert found["seplos"].__name__ == "ThrowawaySeplos"
    types = {t.name: t for t in bridge.family().types}
    assert types["seplos"].emulator is found["seplos"] and types["seplos"].in_demo
    assert types["renogy"].emulator is None and not types["renogy"].in_demo
    demo = {d["alias"]: d for d in demo_devices(types)}
    assert demo["demo_seplos"] == {"address": "sim:seplos1", "type": "seplos", "alias": "demo_seplos"}
    assert "demo_renogy" not in demo


def test_a_module_without_emulator_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "renogy.py").write_text("EMULATOR = 3\n")
    monkeypatch.setattr(bridge_emulators, "__path__", [str(tmp_path)])
    monkeypatch.delitem(sys.modules, f"{bridge_emulators.__name__}.renogy", raising=False)
    with pytest.raises(TypeError, match=r"emulators\.renogy has no EMULATOR"):
        bridge_emulators.discover()


def test_the_registry_demo_gives_each_bridge_emulator_a_demo_alias() -> None:
    types = device_types()
    demo: dict[str, Any] = {d["type"]: d for d in demo_devices(types)}
    for name, t in types.items():
        if t.via == "aiobmsble":
            assert (name in demo) == (t.emulator is not None and t.in_demo), name
            if name in demo:
                assert demo[name]["alias"] == f"demo_{name}"


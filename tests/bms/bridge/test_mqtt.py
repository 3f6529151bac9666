"""A bridged device through the daemon to a real mosquitto: its states, and its FET states announced as read-only
binary sensors, never as switches (batmon-ha announced aiobmsble's FETs as switches that always failed)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from bmslib.app import App
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.commands import SwitchCommand
from bmslib.config import parse_config
from bmslib.registry import type_infos
from bmslib.sim.battery import BatteryModel
from bmslib.sim.radio import SimRadio
from mqtt_util import MqttSink
from tests.mqtt_broker import Broker, Watcher, broker, wait_for, watcher
from tests.sim_helpers import add_emulator, app_running
from tests.test_mqtt_live import discovery_of, payloads

__all__ = ["broker", "watcher"]  # fixtures


FETS = {"pack/switch/charge", "pack/switch/discharge"}


def fet_topics(announced: dict[str, dict[str, Any]]) -> set[str]:
    """The state topics of the FET entities announced as binary sensors."""
    return {c.get("state_topic", "") for t, c in announced.items() if t.startswith("homeassistant/binary_sensor/")
            and c.get("state_topic", "").startswith("pack/switch/")}


async def test_a_bridged_device_publishes_its_states_and_read_only_fets(broker: Broker, watcher: Watcher,
                                                                        tmp_path: Path) -> None:
    radio = SimRadio()
    battery = BatteryModel(rng=random.Random(21), clock=lambda: 0.0, load=lambda _t: -8.0)  # charging at 8 A
    add_emulator(radio, JbdEmulator, "pack", battery=battery)
    config = parse_config({"devices": [{"address": "sim:pack", "type": "jbd_ble", "alias": "pack"}],
                           "sample_period": 0.3, "publish_period": 0.3, **broker.options()},
                          source="test", env={}, types=type_infos())
    app = App(config, radio=radio, sinks=[], state_dir=tmp_path)
    commands: asyncio.Queue[SwitchCommand] = asyncio.Queue()
    sink = MqttSink(config, app.sign, commands=commands,
                    statuses=[rt.status for rt in app.devices.values()], state_dir=tmp_path,
                    backoff=(0.1, 0.5), birth_delay=0.05, settle=0.3)
    app.sinks.append(sink)
    try:
        async with app_running(app):
            await wait_for(lambda: payloads(watcher, "pack/switch/charge"), what="the FET states")
            await wait_for(lambda: payloads(watcher, "pack/soc/current"), what="the current")
            await wait_for(lambda: fet_topics(discovery_of(watcher, "pack")) >= FETS, what="the FETs' discovery")
            latest = watcher.latest()
            announced = discovery_of(watcher, "pack")
    finally:
        await radio.aclose()
    # invert_current (default true): positive while charging, as for batmon's own types
    assert float(latest["pack/soc/current"].payload) == pytest.approx(8.0, abs=0.02)
    assert float(latest["pack/soc/total_voltage"].payload) == pytest.approx(battery.voltage, abs=0.02)
    assert latest["pack/switch/charge"].payload == "ON" and latest["pack/switch/discharge"].payload == "ON"
    assert not [t for t in announced if t.startswith("homeassistant/switch/")]
    assert fet_topics(announced) >= FETS
    assert all("command_topic" not in c for c in announced.values())
    assert commands.empty()

"""The MQTT sink against a real mosquitto, with the whole app running in-process on simulated devices.

Discovery (golden file, retained), states (on change and as a heartbeat), availability (device
expiry), broker loss and restart, Home Assistant's birth message, switch commands, TLS, a broker
that is down at start, and removal of entities a device no longer has.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bmslib.app import App
from bmslib.bms.jbd.protocol import frames as jbd
from bmslib.bms.victron.emulator import DEMO_KEY_HEX
from bmslib.commands import SwitchCommand
from bmslib.config import AppConfig, parse_config
from bmslib.model import DeviceInfo
from bmslib.mqtt.record import RECORD_FILE
from bmslib.mqtt.topics import daemon_status_topic
from bmslib.registry import type_infos
from bmslib.sim.emulator import Emulator
from mqtt_util import MqttSink
from tests.mqtt_broker import Broker, Watcher, broker, make_test_ca, tls_broker, wait_for, watcher
from tests.sim_helpers import app_running, fast_types

__all__ = ["broker", "tls_broker", "watcher"]  # fixtures

GOLDEN = Path(__file__).parent / "golden" / "mqtt_discovery.json"
UPDATE_GOLDEN = os.environ.get("BATMON_UPDATE_GOLDEN") == "1"
DEVICES = [{"address": "sim:jbd1", "type": "jbd", "alias": "jbd1"},
           {"address": "demo battery", "type": "dummy", "alias": "dummy1"}]


def make_config(b: Broker, devices: list[dict[str, Any]] | None = None, **options: Any) -> AppConfig:
    data = {"devices": devices or DEVICES, "sample_period": 0.2, "publish_period": 0.2,
            "expire_values_after": 2.0, **b.options(), **options}
    return parse_config(data, source="test", env={}, types=type_infos(fast_types()))


@dataclasses.dataclass
class Running:
    app: App
    sink: MqttSink
    commands: list[tuple[str, str, bool]]

    def emulator(self, sim_id: str = "jbd1") -> Emulator:
        assert self.app.radio is not None
        em = self.app.radio.by_sim_id(sim_id)
        assert em is not None
        return em


@contextlib.asynccontextmanager
async def running(config: AppConfig, state_dir: Path, **sink_options: Any) -> AsyncIterator[Running]:
    """The app with an MQTT sink tuned for tests (fast back-off, early pruning, short birth delay)."""
    app = App(config, types=fast_types(), sinks=[], state_dir=state_dir)
    commands: list[tuple[str, str, bool]] = []  # the switch commands the sink put on the app's queue

    class Recording(asyncio.Queue[SwitchCommand]):
        def put_nowait(self, item: SwitchCommand) -> None:
            commands.append((item.alias, item.switch, item.on))
            app.commands.put_nowait(item)

    options: dict[str, Any] = {"backoff": (0.1, 0.5), "prune_after": 3, "birth_delay": 0.05, "settle": 0.3}
    options.update(sink_options)
    sink = MqttSink(config, app.sign, commands=Recording(), statuses=[rt.status for rt in app.devices.values()],
                    state_dir=state_dir, **options)
    app.sinks.append(sink)
    async with app_running(app):
        yield Running(app, sink, commands)


def discovery_of(w: Watcher, node: str, since: float = 0.0) -> dict[str, dict[str, Any]]:
    return {m.topic: json.loads(m.payload) for m in w.seen(since=since)
            if m.topic.startswith("homeassistant/") and f"/{node}/" in m.topic and m.payload}


async def retained(w: Watcher, prefix: str = "") -> dict[str, str]:
    return await asyncio.to_thread(w.retained, prefix, 0.5)


def payloads(w: Watcher, topic: str, since: float = 0.0) -> list[str]:
    return [m.payload for m in w.seen(topic, since=since)]


def is_fet_write(write: tuple[str, bytes]) -> bool:
    parsed = jbd.parse_request(write[1])
    return parsed is not None and parsed[0] == jbd.WRITE and parsed[1] == jbd.REG_MOS


def normalised(configs: dict[str, str]) -> dict[str, Any]:
    out = {}
    for topic, text in sorted(configs.items()):
        cfg = json.loads(text)
        cfg["origin"]["sw_version"] = "<version>"
        out[topic] = cfg
    return out


# --- discovery ------------------------------------------------------------------------------------

async def test_discovery_is_retained_and_matches_the_golden_file(broker: Broker, watcher: Watcher,
                                                                  tmp_path: Path) -> None:
    cfg = make_config(broker)
    async with running(cfg, tmp_path):
        await wait_for(lambda: len(discovery_of(watcher, "jbd1")) >= 30 and "homeassistant/sensor/dummy1/"
                       "_meter_total_energy_charge/config" in discovery_of(watcher, "dummy1"), what="discovery")
        await wait_for(lambda: payloads(watcher, "jbd1/switch/charge"), what="a switch state")
        await wait_for(lambda: "model" in discovery_of(watcher, "jbd1")["homeassistant/switch/jbd1/charge/config"][
            "device"], what="device info")
        await asyncio.sleep(0.5)
        held = await retained(watcher)
    configs = {t: p for t, p in held.items() if t.startswith("homeassistant/")}
    got = normalised(configs)
    if UPDATE_GOLDEN:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    assert got == json.loads(GOLDEN.read_text(encoding="utf-8"))
    # everything the watcher saw announced is what the broker holds retained (nothing announced unretained)
    assert set(discovery_of(watcher, "jbd1")) | set(discovery_of(watcher, "dummy1")) == set(configs)
    # retained besides discovery: the daemon status and the per-device availability, never states
    status_topic = daemon_status_topic(["jbd1", "dummy1"])
    others = {t: p for t, p in held.items() if not t.startswith("homeassistant/")}
    assert others == {status_topic: "online", "jbd1/availability": "online", "dummy1/availability": "online"}


async def test_entities_and_states(broker: Broker, watcher: Watcher, tmp_path: Path) -> None:
    cfg = make_config(broker)
    async with running(cfg, tmp_path) as r:
        await wait_for(lambda: payloads(watcher, "jbd1/cell_voltages/delta"), what="cell states")
        await wait_for(lambda: payloads(watcher, "jbd1/meter/total_energy_charge"), what="meter states")
        battery = r.emulator().battery
        cells = battery.cells
        latest = watcher.latest()
    assert {f"jbd1/cell_voltages/{i}" for i in range(1, cells + 1)} <= set(latest)
    assert f"jbd1/cell_voltages/{cells + 1}" not in latest
    assert latest["jbd1/soc/capacity"].payload == f"{battery.capacity_ah:.1f}"
    assert float(latest["jbd1/soc/total_voltage"].payload) == pytest.approx(battery.voltage, abs=0.2)
    assert latest["jbd1/switch/charge"].payload == "ON"
    assert latest["jbd1/problem"].payload == "OFF" and latest["jbd1/alarms"].payload == "none"
    assert latest["jbd1/diag/last_error"].payload == "none"
    assert float(latest["jbd1/diag/link_quality"].payload) == 100.0
    assert all(not m.retain for t, m in latest.items() if not t.startswith(("homeassistant/", "batmon/"))
               and not t.endswith("/availability"))
    # invert_current (default true): current and power are published positive while charging
    current = float(latest["jbd1/soc/current"].payload)
    power = float(latest["jbd1/soc/power"].payload)
    assert current * power >= 0


async def test_the_originals_entities_with_its_topics_and_unique_ids(broker: Broker, watcher: Watcher,
                                                                     tmp_path: Path) -> None:
    # the values batmon-ha published that batmon took over (doc/Migrating.md); a JBD reports its protection
    # bits (problem code); the runtime is estimated while the pack discharges
    cfg = make_config(broker, devices=[{"address": "sim:jbd-1", "type": "jbd", "alias": "jbd-1"}])
    async with running(cfg, tmp_path) as r:
        r.emulator("jbd-1").battery.load = lambda t: 5.0  # a constant discharge
        await wait_for(lambda: payloads(watcher, "jbd_1/bms/runtime"), what="the runtime estimate")
        await wait_for(lambda: payloads(watcher, "jbd_1/battery_charging"), what="the charging state")
        await wait_for(lambda: payloads(watcher, "jbd_1/problem_code"), what="the problem code")
        wanted = {"jbd_1__problem_code", "jbd_1__battery_charging", "jbd_1__bms_runtime"}
        # a loaded machine may deliver a state before the discovery that announces it
        await wait_for(lambda: wanted <= {c.get("unique_id") for c in discovery_of(watcher, "jbd_1").values()},
                       what="the discovery of those entities")
        found = discovery_of(watcher, "jbd_1")
        latest = watcher.latest()
    unique_ids = {cfg_["unique_id"]: cfg_ for cfg_ in found.values()}
    for uid, topic in (("jbd_1__problem_code", "jbd_1/problem_code"),
                       ("jbd_1__battery_charging", "jbd_1/battery_charging"),
                       ("jbd_1__bms_runtime", "jbd_1/bms/runtime")):
        assert unique_ids[uid]["state_topic"] == topic
    assert unique_ids["jbd_1__battery_charging"]["device_class"] == "battery_charging"
    assert unique_ids["jbd_1__bms_runtime"]["device"]["identifiers"][0] == "jbd_1"
    assert latest["jbd_1/problem_code"].payload == "0"
    assert latest["jbd_1/battery_charging"].payload == "OFF"
    assert float(latest["jbd_1/bms/runtime"].payload) > 0
    assert not [t for t in latest if t.startswith("jbd-1/")]  # '-' becomes '_' as in the original


async def test_states_are_resent_before_they_could_expire(broker: Broker, watcher: Watcher, tmp_path: Path) -> None:
    # publish_period far beyond expire_values_after: only the heartbeat can keep unchanged values fresh
    cfg = make_config(broker, expire_values_after=1.0, publish_period=30.0)
    async with running(cfg, tmp_path):
        await wait_for(lambda: payloads(watcher, "jbd1/soc/capacity"), what="the first states")
        start = time.monotonic()
        await asyncio.sleep(3.0)
    for topic in ("jbd1/soc/capacity", "jbd1/soc/num_cycles", "jbd1/cell_voltages/1", "dummy1/soc/total_voltage"):
        times = [start] + [m.at for m in watcher.seen(topic, since=start)]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) >= 4, topic
        assert max(gaps) < 1.0, (topic, gaps)  # expire_after is 1 s; heartbeat every 0.5 s


async def test_device_info_arriving_later_is_announced_with_the_same_identifiers(broker: Broker, watcher: Watcher,
                                                                                tmp_path: Path) -> None:
    cfg = make_config(broker, expire_values_after=60.0)  # heartbeat 30 s: only the re-send after discovery counts
    topic = "homeassistant/sensor/dummy1/_soc_total_voltage/config"
    async with running(cfg, tmp_path) as r:
        await wait_for(lambda: topic in discovery_of(watcher, "dummy1"), what="discovery")
        first = discovery_of(watcher, "dummy1")[topic]["device"]
        changed = time.monotonic()
        status = r.app.devices["dummy1"].status
        status.device_info = status.device_info.merged(DeviceInfo(serial="SN-0042", name="Dummy Pack",
                                                                  hw_version="2"))
        await wait_for(lambda: topic in discovery_of(watcher, "dummy1", since=changed), timeout=3, what="re-announce")
        announced = max(m.at for m in watcher.seen(topic))
        # Home Assistant re-reads a changed config as 'expired': every state, unchanged ones too, follows it
        await wait_for(lambda: [m for m in watcher.seen("dummy1/soc/capacity") if m.at > announced], timeout=3,
                       what="the unchanged capacity re-sent")
        device = discovery_of(watcher, "dummy1", since=changed)[topic]["device"]
        held = json.loads((await retained(watcher, "homeassistant/sensor/dummy1/"))[topic])["device"]
    assert device == held
    # Home Assistant keeps the device: every identifier announced first is announced again
    assert first["identifiers"] == ["dummy1", "batmon_dummy_dummy1"]
    assert device["identifiers"] == ["dummy1", "SN-0042", "batmon_dummy_dummy1"]
    assert device["serial_number"] == "SN-0042" and device["hw_version"] == "2"
    assert device["name"] == "Dummy Pack (dummy1)" and first["name"] == "dummy1"


# --- availability ---------------------------------------------------------------------------------

async def test_device_goes_offline_after_expiry_and_back_online(broker: Broker, watcher: Watcher,
                                                                tmp_path: Path) -> None:
    cfg = make_config(broker, expire_values_after=1.0)
    async with running(cfg, tmp_path) as r:
        await wait_for(lambda: payloads(watcher, "jbd1/availability")[-1:] == ["online"], what="online")
        r.emulator().faults.mute = True
        muted = time.monotonic()
        await wait_for(lambda: "offline" in payloads(watcher, "jbd1/availability", since=muted), timeout=5,
                       what="offline")
        assert time.monotonic() - muted >= 0.5
        assert "offline" not in payloads(watcher, "dummy1/availability")[1:]  # the other device is unaffected
        assert (await retained(watcher, "jbd1/"))["jbd1/availability"] == "offline"
        # while offline, nothing is re-sent for the device (its values would look fresh)
        quiet_from = time.monotonic() + 0.3
        await asyncio.sleep(1.2)
        assert not [m for m in watcher.seen(since=quiet_from) if m.topic.startswith("jbd1/soc/")]
        r.emulator().faults.mute = False
        back = time.monotonic()
        await wait_for(lambda: payloads(watcher, "jbd1/availability")[-1] == "online", timeout=8, what="online again")
        # coming back, every state is sent at once (also the unchanged ones), so nothing stays expired
        await wait_for(lambda: payloads(watcher, "jbd1/soc/capacity", since=back), timeout=2, what="capacity")


async def test_a_broker_that_is_down_at_start_is_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="batmon.mqtt")
    b = Broker(tmp_path / "late")
    cfg = make_config(b)
    try:
        async with running(cfg, tmp_path) as r:
            await asyncio.sleep(1.0)
            assert not r.sink.conn.connected
            assert any("cannot connect to the MQTT broker" in m for m in caplog.messages)
            b.start()
            w = Watcher(b).start()
            try:
                await wait_for(lambda: r.sink.conn.connected, timeout=5, what="connected")
                await wait_for(lambda: payloads(w, "jbd1/soc/total_voltage"), timeout=5, what="states")
                assert "homeassistant/switch/jbd1/charge/config" in await retained(w, "homeassistant/")
            finally:
                w.stop()
    finally:
        b.stop()


@pytest.mark.parametrize("password", ["right", "wrong"])
async def test_credentials(tmp_path: Path, caplog: pytest.LogCaptureFixture, password: str) -> None:
    caplog.set_level(logging.INFO, logger="batmon.mqtt")
    b = Broker(tmp_path / "auth", users={"batmon": "s3cret-pw"})
    b.start()
    try:
        w = Watcher(b).start()
        pw = "s3cret-pw" if password == "right" else "guess"
        cfg = make_config(b, mqtt_user="batmon", mqtt_password=pw)
        try:
            async with running(cfg, tmp_path) as r:
                if password == "right":
                    await wait_for(lambda: payloads(w, "jbd1/soc/total_voltage"), timeout=5, what="states")
                else:
                    await wait_for(lambda: sum("refused the connection" in m for m in caplog.messages) >= 2,
                                   timeout=5, what="refusals, retried")
                    assert not r.sink.conn.connected and not w.seen("jbd1/soc/total_voltage")
            assert not any(pw in m for m in caplog.messages)  # the password never reaches the log
        finally:
            w.stop()
    finally:
        b.stop()


async def test_broker_killed_and_restarted(broker: Broker, watcher: Watcher, tmp_path: Path) -> None:
    cfg = make_config(broker)
    async with running(cfg, tmp_path) as r:
        await wait_for(lambda: payloads(watcher, "jbd1/switch/charge"), what="switch state")
        broker.kill()
        await wait_for(lambda: not r.sink.conn.connected, timeout=5, what="disconnect noticed")
        await asyncio.sleep(0.3)
        broker.start()  # same port, empty: no persistence, so everything retained must come from us again
        restarted = time.monotonic()
        await wait_for(lambda: r.sink.conn.connects >= 2, timeout=5, what="reconnect")
        await wait_for(lambda: "homeassistant/switch/jbd1/charge/config" in discovery_of(watcher, "jbd1", restarted),
                       timeout=5, what="discovery again")
        await asyncio.sleep(0.3)
        held = await retained(watcher)
        assert held[daemon_status_topic(["jbd1", "dummy1"])] == "online"
        assert held["jbd1/availability"] == "online"
        assert "homeassistant/switch/jbd1/charge/config" in held
        assert sum(t.startswith("homeassistant/sensor/jbd1/") for t in held) >= 25
        # the command subscription came back: a switch command reaches the simulated device
        await wait_for(watcher.client.is_connected, timeout=5, what="watcher reconnect")
        sent = time.monotonic()
        watcher.publish("homeassistant/switch/jbd1/charge/set", "OFF")
        await wait_for(lambda: not r.emulator().battery.charge_fet, timeout=5, what="charge FET off")
        await wait_for(lambda: "OFF" in payloads(watcher, "jbd1/switch/charge", since=sent), timeout=5,
                       what="state OFF")


async def test_home_assistant_birth_message_triggers_a_republish(broker: Broker, watcher: Watcher,
                                                                 tmp_path: Path) -> None:
    cfg = make_config(broker, publish_period=30.0, expire_values_after=60.0)  # nothing would come by itself
    async with running(cfg, tmp_path):
        await wait_for(lambda: payloads(watcher, "jbd1/soc/capacity"), what="first states")
        await asyncio.sleep(0.3)
        before = time.monotonic()
        await asyncio.sleep(0.3)
        assert not discovery_of(watcher, "jbd1", since=before)
        watcher.publish("homeassistant/status", "offline")
        await asyncio.sleep(0.3)
        assert not discovery_of(watcher, "jbd1", since=before)  # only 'online' counts
        watcher.publish("homeassistant/status", "online")
        await wait_for(lambda: len(discovery_of(watcher, "jbd1", since=before)) >= 25, timeout=3, what="discovery")
        await wait_for(lambda: payloads(watcher, "jbd1/soc/capacity", since=before), timeout=3, what="states")
        assert payloads(watcher, "jbd1/availability", since=before) == ["online"]


# --- switch commands ------------------------------------------------------------------------------

async def test_switch_commands_change_the_device_and_the_state_follows(broker: Broker, watcher: Watcher,
                                                                       tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="batmon.mqtt")
    cfg = make_config(broker)
    topic = "homeassistant/switch/jbd1/discharge/set"
    async with running(cfg, tmp_path) as r:
        battery = r.emulator().battery
        await wait_for(lambda: payloads(watcher, "jbd1/switch/discharge") == ["ON"], what="state ON")
        for word, fet in (("off", False), ("On", True), (" OFF\n", False), ("ON", True)):
            sent = time.monotonic()
            watcher.publish(topic, word)
            await wait_for(lambda fet=fet: battery.discharge_fet is fet, timeout=5, what=f"FET after {word!r}")
            expected = "ON" if fet else "OFF"
            await wait_for(lambda sent=sent, expected=expected: expected in payloads(
                watcher, "jbd1/switch/discharge", since=sent), timeout=5, what=f"state {expected}")
        assert r.commands == [("jbd1", "discharge", False), ("jbd1", "discharge", True),
                              ("jbd1", "discharge", False), ("jbd1", "discharge", True)]
        # bad payloads, other nodes, other topics and other switches are ignored
        for payload in ("toggle", "", "1", "on please", "\xff"):
            watcher.publish(topic, payload)
        watcher.publish("homeassistant/switch/jbd2/discharge/set", "OFF")
        watcher.publish("homeassistant/switch/jbd1/discharge/get", "OFF")
        watcher.publish("homeassistant/switch/jbd1/balance/set", "OFF")  # a JBD has no settable balance switch
        await asyncio.sleep(1.0)
        assert battery.discharge_fet is True
        assert len(r.commands) == 4
        assert sum("must be ON or OFF" in m for m in caplog.messages) == 5


async def test_a_retained_command_is_not_replayed(broker: Broker, watcher: Watcher, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    # a command left retained on the broker (a switch configured with retain) must not be executed again
    # whenever batmon (re)subscribes
    caplog.set_level(logging.INFO, logger="batmon.mqtt")
    watcher.publish("homeassistant/switch/jbd1/charge/set", "OFF", retain=True)
    cfg = make_config(broker)
    async with running(cfg, tmp_path) as r:
        await wait_for(lambda: payloads(watcher, "jbd1/switch/charge"), what="switch state")
        await wait_for(lambda: any("retained switch command" in m for m in caplog.messages), timeout=3,
                       what="the log line")
        await asyncio.sleep(0.5)
        assert r.commands == [] and r.emulator().battery.charge_fet is True


async def test_state_reports_the_device_not_the_command(broker: Broker, watcher: Watcher, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bmslib.sampler.SWITCH_CONFIRM_TIMEOUT", 0.6)
    cfg = make_config(broker)
    async with running(cfg, tmp_path) as r:
        battery = r.emulator().battery
        await wait_for(lambda: payloads(watcher, "jbd1/switch/charge") == ["ON"], what="state ON")
        monkeypatch.setattr(battery, "set_switch", lambda name, on: None)  # acknowledges, does nothing
        sent = time.monotonic()
        watcher.publish("homeassistant/switch/jbd1/charge/set", "OFF")
        await wait_for(lambda: len(payloads(watcher, "jbd1/switch/charge", since=sent)) >= 2, timeout=5,
                       what="the state re-sent after the command")
        await asyncio.sleep(0.8)
        assert any(is_fet_write(w) for w in r.emulator().writes)  # the command did reach the device
        assert set(payloads(watcher, "jbd1/switch/charge", since=sent)) == {"ON"}  # never an optimistic OFF
        assert battery.charge_fet is True


async def test_commands_are_rate_limited_per_device(broker: Broker, watcher: Watcher, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="batmon.mqtt")
    cfg = make_config(broker)
    async with running(cfg, tmp_path, commands_per_window=3, command_window=2.0) as r:
        await wait_for(lambda: payloads(watcher, "jbd1/switch/charge"), what="switch state")
        started = time.monotonic()
        for i in range(40):
            watcher.publish("homeassistant/switch/jbd1/charge/set", "ON" if i % 2 else "OFF")
        watcher.publish("homeassistant/switch/dummy1/charge/set", "OFF")  # another device has its own budget
        await wait_for(lambda: ("dummy1", "charge", False) in r.commands, timeout=3, what="dummy command")
        assert [c for c in r.commands if c[0] == "jbd1"] == [("jbd1", "charge", False), ("jbd1", "charge", True),
                                                             ("jbd1", "charge", False)]
        assert sum("dropping commands" in m for m in caplog.messages) == 1
        # sampling went on during the flood
        assert r.app.devices["jbd1"].status.last_sample is not None
        assert r.app.devices["jbd1"].status.last_sample.mono >= started
        await asyncio.sleep(max(0.0, 2.1 - (time.monotonic() - started)))
        watcher.publish("homeassistant/switch/jbd1/charge/set", "ON")
        await wait_for(lambda: len([c for c in r.commands if c[0] == "jbd1"]) == 4, timeout=3,
                       what="accepted after the window")


async def test_command_for_an_offline_device_is_refused(broker: Broker, watcher: Watcher, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cfg = make_config(broker, expire_values_after=1.0)
    async with running(cfg, tmp_path) as r:
        await wait_for(lambda: payloads(watcher, "jbd1/availability")[-1:] == ["online"], what="online")
        r.emulator().faults.mute = True
        muted = time.monotonic()
        await wait_for(lambda: "offline" in payloads(watcher, "jbd1/availability", since=muted), timeout=5,
                       what="offline")
        writes = len(r.emulator().writes)
        watcher.publish("homeassistant/switch/jbd1/charge/set", "OFF")
        await wait_for(lambda: r.commands, timeout=3, what="the command")
        await asyncio.sleep(0.3)
        assert any("refused: the device is offline" in m for m in caplog.messages)
        assert not any(is_fet_write(w) for w in r.emulator().writes[writes:])
        assert r.emulator().battery.charge_fet is True


# --- TLS ------------------------------------------------------------------------------------------

async def test_tls_with_a_test_ca(tls_broker: Broker, tmp_path: Path) -> None:
    cfg = make_config(tls_broker)
    w = Watcher(tls_broker).start()
    try:
        async with running(cfg, tmp_path) as r:
            await wait_for(lambda: payloads(w, "jbd1/soc/total_voltage"), timeout=5, what="states over TLS")
            await wait_for(lambda: payloads(w, "jbd1/switch/charge"), what="switch state")
            assert r.sink.conn.client.socket().version() is not None  # type: ignore[union-attr]
            w.publish("homeassistant/switch/jbd1/charge/set", "OFF")
            await wait_for(lambda: not r.emulator().battery.charge_fet, timeout=5, what="command over TLS")
            assert "homeassistant/switch/jbd1/charge/config" in await retained(w, "homeassistant/")
    finally:
        w.stop()


async def test_tls_with_an_unknown_ca_does_not_connect(tls_broker: Broker, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="batmon.mqtt")
    (tmp_path / "other").mkdir()
    other_ca, _, _ = make_test_ca(tmp_path / "other")
    cfg = make_config(tls_broker, mqtt_ca_cert=str(other_ca))
    async with running(cfg, tmp_path) as r:
        await wait_for(lambda: any("cannot connect" in m for m in caplog.messages), timeout=5, what="failure")
        await asyncio.sleep(0.5)
        assert not r.sink.conn.connected and r.sink.conn.connects == 0
        assert any("CERTIFICATE_VERIFY_FAILED" in m for m in caplog.messages)


# --- removal of entities that are gone --------------------------------------------------------------

async def test_entities_no_longer_reported_are_removed_across_restarts(broker: Broker, watcher: Watcher,
                                                                      tmp_path: Path) -> None:
    cfg = make_config(broker)
    # a first run announces everything and records it
    async with running(cfg, tmp_path):
        await wait_for(lambda: "homeassistant/sensor/dummy1/_meter_total_energy_charge/config" in discovery_of(
            watcher, "dummy1"), what="meters announced")
        await asyncio.sleep(0.5)
    record = json.loads((tmp_path / RECORD_FILE).read_text())
    announced = set(record["devices"]["jbd1"]["discovery"])
    assert "homeassistant/switch/jbd1/charge/config" in announced
    assert "homeassistant/sensor/jbd1/_meter_total_energy_charge/config" in announced
    # pretend an earlier run had more cells and a device that is no longer configured
    extra_cell = "homeassistant/sensor/jbd1/_cell_voltages_17/config"
    gone = ["homeassistant/sensor/gone/_soc_soc_percent/config", "homeassistant/switch/gone/charge/config"]
    record["devices"]["jbd1"]["discovery"].append(extra_cell)
    record["devices"]["gone"] = {"availability": "gone/availability", "discovery": gone}
    (tmp_path / RECORD_FILE).write_text(json.dumps(record))
    for topic in [extra_cell, *gone]:
        watcher.publish(topic, json.dumps({"unique_id": topic}), retain=True)
    watcher.publish("gone/availability", "online", retain=True)
    assert {extra_cell, *gone} <= set(await retained(watcher, "homeassistant/"))

    async with running(cfg, tmp_path, prune_after=3):
        await wait_for(lambda: payloads(watcher, "gone/availability")[-1:] == [""], timeout=5, what="gone removed")
        await wait_for(lambda: payloads(watcher, extra_cell)[-1:] == [""], timeout=5, what="extra cell removed")
        await asyncio.sleep(0.3)
        held = await retained(watcher)
    assert extra_cell not in held and not set(gone) & set(held) and "gone/availability" not in held
    assert "homeassistant/sensor/jbd1/_cell_voltages_1/config" in held  # nothing else was removed
    assert "homeassistant/sensor/jbd1/_meter_total_energy_charge/config" in held
    record = json.loads((tmp_path / RECORD_FILE).read_text())
    assert "gone" not in record["devices"]
    assert extra_cell not in record["devices"]["jbd1"]["discovery"]
    assert announced <= set(record["devices"]["jbd1"]["discovery"])



async def test_a_value_the_device_stops_reporting_is_unknown_not_expired(broker: Broker, watcher: Watcher,
                                                                        tmp_path: Path) -> None:
    # a Victron shows its runtime only while the battery discharges: when it stops, the runtime goes missing
    shunt = [{"address": "sim:victron1", "type": "victron", "alias": "shunt", "key": DEMO_KEY_HEX}]
    cfg = make_config(broker, shunt, expire_values_after=1.0)
    async with running(cfg, tmp_path) as r:
        battery = r.emulator("victron1").battery
        battery.load = lambda t: 5.0  # discharging
        await wait_for(lambda: [p for p in payloads(watcher, "shunt/bms/runtime") if p != "None"], what="a runtime")
        battery.load = lambda t: -5.0  # charging: no runtime
        await wait_for(lambda: payloads(watcher, "shunt/bms/runtime")[-1:] == ["None"], what="the runtime unknown")
        start = time.monotonic()
        await asyncio.sleep(2.5)
        latest = watcher.latest()
    # "None" (Home Assistant's unknown) is kept alive by the heartbeat, so expire_after (1 s) never runs out
    times = [start] + [m.at for m in watcher.seen("shunt/bms/runtime", since=start)]
    assert all(m.payload == "None" for m in watcher.seen("shunt/bms/runtime", since=start))
    assert max(b - a for a, b in itertools.pairwise([*times, time.monotonic()])) < 1.0
    assert latest["shunt/availability"].payload == "online"

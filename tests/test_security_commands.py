"""Switch commands over MQTT: a flood cannot starve sampling, hammer a BMS or flood the log.

Against a real mosquitto, the whole app in-process with its default MQTT sink and rate limit
(``COMMANDS_PER_WINDOW`` per ``COMMAND_WINDOW`` and device): a client floods one device's command topic
with valid and invalid payloads, retained commands, and near-miss topics, while the test measures

* what the BMS (emulator) receives: exactly the commands the sink passed on, at most the limit in every
  window (each written within seconds of being passed on), and the other devices receive none;
* sampling: every device, the flooded one too, keeps its sample rate, and the event loop stays responsive;
* the log: refused commands are logged at most the limit per window (plus one line saying so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bmslib.app import App
from bmslib.bms.jbd.protocol import frames as jbd
from bmslib.commands import CommandQueue, SwitchCommand
from bmslib.config import parse_config
from bmslib.device import DeviceStatus
from bmslib.model import OutputSign
from bmslib.registry import type_infos
from bmslib.sim.emulator import Emulator
from main import SINK_FACTORIES
from mqtt_util import COMMAND_WINDOW, COMMANDS_PER_WINDOW, MqttSink
from tests.mqtt_broker import Broker, broker, wait_for
from tests.sim_helpers import app_running

__all__ = ["broker"]  # fixture

PERIOD = 0.5  # [s]
FLOOD = 14.0  # [s] longer than one command window
DEVICES = [{"address": "sim:jbd1", "type": "jbd", "alias": "jbd1"},
           {"address": "sim:jbd2", "type": "jbd", "alias": "jbd2"},
           {"address": "demo battery", "type": "dummy", "alias": "dummy1"}]
TARGET = "homeassistant/switch/jbd1/charge/set"
NEAR_MISSES = ["homeassistant/switch/jbd1/charge/set/", "homeassistant/switch/jbd1/Charge/set",
               "homeassistant/switch/jbd2/charge", "homeassistant/switch/jbd1/balance/set", "jbd2/switch/charge",
               "homeassistant/switch/jbd3/charge/set", "homeassistant/switch/jbd2/charge/set/x"]


def record_fet_writes(em: Emulator) -> list[float]:
    """Times at which the emulator received a FET (switch) write."""
    times: list[float] = []
    receive = em.receive_write

    def spy(char_uuid: str, data: bytes) -> None:
        parsed = jbd.parse_request(data)
        if parsed is not None and parsed[0] == jbd.WRITE and parsed[1] == jbd.REG_MOS:
            times.append(time.monotonic())
        receive(char_uuid, data)

    em.receive_write = spy  # type: ignore[method-assign]
    return times


class SpyQueue(asyncio.Queue[SwitchCommand]):
    """A command queue that tells ``seen`` of each command put on it, then passes it on to ``to`` (if any)."""

    def __init__(self, seen: Callable[[SwitchCommand], object], to: CommandQueue | None = None) -> None:
        super().__init__()
        self.seen, self.to = seen, to

    def put_nowait(self, item: SwitchCommand) -> None:
        self.seen(item)
        if self.to is not None:
            self.to.put_nowait(item)


def most_in_a_window(times: list[float], window: float) -> int:
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


class Flooder(threading.Thread):
    """Publishes as fast as the client takes them: commands (valid, invalid, retained) and near misses."""

    def __init__(self, b: Broker, seconds: float) -> None:
        super().__init__(daemon=True)
        self.seconds = seconds
        self.sent = 0
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="flooder")
        self.client.max_queued_messages_set(0)
        self.client.connect(b.host, b.port, 30)

    def run(self) -> None:
        self.client.loop_start()
        end = time.monotonic() + self.seconds
        payloads = [b"ON", b"OFF", b"toggle", b"", b"\xff" * 300, b"of", b" on "]
        i = 0
        while time.monotonic() < end:
            i += 1
            self.client.publish(TARGET, payloads[i % len(payloads)], qos=0)
            if i % 5 == 0:
                self.client.publish(NEAR_MISSES[i % len(NEAR_MISSES)], b"OFF", qos=0)
            if i % 50 == 0:
                self.client.publish(TARGET, b"OFF", qos=0, retain=True)
                self.client.publish(TARGET, b"", qos=0, retain=True)  # (clears the retained message)
            self.sent += 1
            if i % 200 == 0:
                time.sleep(0.005)  # let the broker breathe: it drops QoS 0 for slow subscribers anyway
        self.client.loop_stop()
        self.client.disconnect()


@contextlib.asynccontextmanager
async def running_app(b: Broker, state_dir: Path) -> AsyncIterator[App]:
    config = parse_config({"devices": DEVICES, "sample_period": PERIOD, "publish_period": PERIOD,
                           "concurrent_sampling": True, **b.options()},
                          source="test", env={}, types=type_infos())
    app = App(config, state_dir=state_dir, sink_factories=SINK_FACTORIES)  # the MQTT sink, its default rate limit
    async with app_running(app):
        yield app


async def test_a_command_flood_neither_starves_sampling_nor_hammers_the_bms(
        broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="batmon")
    async with running_app(broker, tmp_path) as app:
        assert app.radio is not None
        em1, em2 = app.radio.by_sim_id("jbd1"), app.radio.by_sim_id("jbd2")
        assert em1 is not None and em2 is not None
        writes1, writes2 = record_fet_writes(em1), record_fet_writes(em2)
        sink = next(s for s in app.sinks if isinstance(s, MqttSink))
        accepted: list[float] = []  # when the sink passed a command for jbd1 on to the app
        sink.commands = SpyQueue(lambda c: accepted.extend([time.monotonic()] if c.alias == "jbd1" else []),
                                 app.commands)
        await wait_for(lambda: sink.conn.connected and all(rt.status.available for rt in app.devices.values()),
                       timeout=10, what="all devices online")
        lags: list[float] = []

        async def ticker() -> None:
            while True:
                before = time.monotonic()
                await asyncio.sleep(0.05)
                lags.append(time.monotonic() - before - 0.05)

        tick = asyncio.create_task(ticker())
        samples0 = {alias: rt.status.samples for alias, rt in app.devices.items()}
        start = time.monotonic()
        flooder = Flooder(broker, FLOOD)
        flooder.start()
        await asyncio.to_thread(flooder.join, FLOOD + 10)
        elapsed = time.monotonic() - start
        samples = {alias: rt.status.samples - samples0[alias] for alias, rt in app.devices.items()}
        tick.cancel()
        await asyncio.sleep(1.0)  # commands accepted at the end run now
    assert flooder.sent > 2000, flooder.sent

    # commands passed on: at most the limit in any window; the BMS got exactly those (nothing of the invalid,
    # retained or misdirected ones), each soon after it was passed on, and the other devices got nothing
    assert accepted, "no command was accepted at all"
    # (the sink's limiter stamps a command when the client thread receives it; this spy, when the loop hands it
    # on: on a loaded machine the two differ by up to a second, so the window here is one second shorter)
    assert most_in_a_window(accepted, COMMAND_WINDOW - 1.0) <= COMMANDS_PER_WINDOW, accepted
    assert len(writes1) == len(accepted) <= COMMANDS_PER_WINDOW * (int(FLOOD // COMMAND_WINDOW) + 1)
    assert all(0 <= w - a < 3.0 for a, w in zip(accepted, writes1, strict=True)), (accepted, writes1)
    assert writes2 == []

    # sampling went on at its rate for every device, and the loop stayed responsive
    for alias, n in samples.items():
        assert n >= 0.85 * elapsed / PERIOD, (alias, n, elapsed)
    assert max(lags) < 0.5, max(lags)

    # the log: refused commands at most the limit per window (and one line that says so), not one per message
    refused = [r for r in caplog.records if "ignoring" in r.getMessage() and "switch command" in r.getMessage()]
    assert len(refused) <= COMMANDS_PER_WINDOW * (int(FLOOD // COMMAND_WINDOW) + 2), len(refused)
    assert any("refused switch commands within" in r.getMessage() for r in caplog.records)
    assert any("dropping commands for now" in r.getMessage() for r in caplog.records)


def test_refused_commands_are_logged_again_after_the_window(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="batmon.mqtt")
    now = [0.0]
    config = parse_config({"devices": DEVICES[:1], "mqtt_broker": "127.0.0.1"}, source="test", env={},
                          types=type_infos())
    status = DeviceStatus(alias="jbd1", type="jbd", address="sim:jbd1", switches=frozenset({"charge"}))
    calls: list[bool] = []
    sink = MqttSink(config, OutputSign(True), commands=SpyQueue(lambda c: calls.append(c.on)), statuses=[status],
                    clock=lambda: now[0])
    sink._command_topics()
    for i in range(1000):
        sink._on_message(TARGET, b"nonsense", i % 2 == 0)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == COMMANDS_PER_WINDOW + 1 and "not logging them for now" in lines[-1]
    now[0] += COMMAND_WINDOW
    sink._on_message(TARGET, b"nonsense", False)
    assert len(caplog.records) == len(lines) + 1  # a new window: logged again
    sink._on_message(TARGET, b"ON", False)  # refused payloads do not use up the command budget
    assert calls == [True]

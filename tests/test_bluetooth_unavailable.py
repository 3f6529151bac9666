"""No Bluetooth on the host: batmon says so in one line and exits with status 1 (with or without the watchdog),
so that systemd's ``Restart=on-failure``, a Docker restart policy or the app's watchdog acts on it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from bleak.exc import BleakError

from bmslib.app import App
from bmslib.config import AppConfig, parse_config
from bmslib.registry import type_infos
from bmslib.sim.radio import SimRadio
from tests.sim_helpers import fast_types
from tests.test_ble_errors import raising, sim_backend

NO_ADAPTER = "No Bluetooth adapters found."


def config(devices: list[dict[str, Any]]) -> AppConfig:
    data = {"devices": devices, "sample_period": 0.2, "publish_period": 0.2, "watchdog": False}
    return parse_config(data, source="test", env={}, types=type_infos(fast_types()))


def no_adapter_app(devices: list[dict[str, Any]]) -> App:
    radio = SimRadio()  # the host's "Bluetooth": its scanner fails as bleak's does without an adapter
    backend = sim_backend(radio, scanner=raising(radio.scanner_backend(), "start", BleakError(NO_ADAPTER)))
    return App(config(devices), types=fast_types(), backend=backend, sinks=[], bluetooth_grace=1.0)


async def test_without_bluetooth_batmon_logs_one_line_and_exits_with_status_1(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = no_adapter_app([{"address": "AA:BB:CC:DD:EE:01", "type": "jbd", "alias": "b1"}])
    assert not app.config.watchdog
    code = await asyncio.wait_for(app.run(), 15)  # ends by itself
    assert code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors[0].startswith("Bluetooth is not available (no Bluetooth adapter")  # once, at the first try
    assert errors[-1].startswith("Bluetooth is not available (no Bluetooth adapter")
    assert errors[-1].endswith("and no device was read for 1 s: exiting with status 1")
    assert len(errors) == 2


async def test_a_device_that_is_read_keeps_batmon_running_without_bluetooth() -> None:
    app = no_adapter_app([{"address": "AA:BB:CC:DD:EE:01", "type": "jbd", "alias": "b1"},
                          {"address": "sim:demo", "type": "jbd", "alias": "demo"}])  # simulated: no Bluetooth
    task = asyncio.create_task(app.run())
    await asyncio.sleep(3.0)
    assert not task.done()
    assert app.devices["b1"].status.bluetooth_unavailable is not None
    assert app.devices["demo"].status.samples > 0
    app.request_stop()
    assert await asyncio.wait_for(task, 15) == 0

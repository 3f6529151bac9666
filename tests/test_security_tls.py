"""MQTT over TLS against a mosquitto with a test CA, beyond tests/test_mqtt_live.py (which covers TLS with the
right CA, and a server certificate from another CA being refused):

* TLS together with a password file: the right password connects, states and a command go through, a
  wrong password is refused (over TLS) and never logged;
* a certificate from the right CA but for another host is refused: the host name is checked, not only the
  chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bmslib.app import App
from bmslib.config import parse_config
from bmslib.registry import type_infos
from main import SINK_FACTORIES
from mqtt_util import MqttSink
from tests.mqtt_broker import Broker, Watcher, make_test_ca, wait_for
from tests.sim_helpers import app_running

DEVICES = [{"address": "sim:jbd1", "type": "jbd", "alias": "jbd1"}]


@contextlib.asynccontextmanager
async def running(b: Broker, state_dir: Path, **options: object) -> AsyncIterator[tuple[App, MqttSink]]:
    config = parse_config({"devices": DEVICES, "sample_period": 0.5, "publish_period": 0.5, **b.options(),
                           **options}, source="test", env={}, types=type_infos())
    app = App(config, state_dir=state_dir, sink_factories=SINK_FACTORIES)
    sink = next(s for s in app.sinks if isinstance(s, MqttSink))
    async with app_running(app):
        yield app, sink


@pytest.mark.parametrize("password", ["right", "wrong"])
async def test_tls_with_a_password_file(tmp_path: Path, caplog: pytest.LogCaptureFixture, password: str) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "tls-and-pw-4711"
    b = Broker(tmp_path / "broker", tls=True, users={"batmon": secret})
    b.start()
    try:
        w = Watcher(b).start()
        pw = secret if password == "right" else "not-the-password"
        try:
            async with running(b, tmp_path, mqtt_user="batmon", mqtt_password=pw) as (app, sink):
                if password == "right":
                    await wait_for(lambda: w.seen("jbd1/soc/total_voltage"), timeout=10, what="states over TLS")
                    assert sink.conn.client.socket().version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[union-attr]
                    w.publish("homeassistant/switch/jbd1/charge/set", "OFF")
                    assert app.radio is not None
                    em = app.radio.by_sim_id("jbd1")
                    assert em is not None
                    await wait_for(lambda: not em.battery.charge_fet, timeout=10, what="command over TLS")
                else:
                    await wait_for(lambda: sum("refused the connection" in m for m in caplog.messages) >= 2,
                                   timeout=10, what="refusals over TLS, retried")
                    assert sink.conn.connects == 0 and not w.seen("jbd1/soc/total_voltage")
        finally:
            w.stop()
    finally:
        b.stop()
    assert not any(pw in r.getMessage() for r in caplog.records)


async def test_a_certificate_for_another_host_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="batmon.mqtt")
    b = Broker(tmp_path / "broker", tls=True)
    make_test_ca(b.dir, host="127.0.0.2")  # same files, same CA role: a server certificate for 127.0.0.2
    b.start()
    try:
        async with running(b, tmp_path) as (_app, sink):  # connects to 127.0.0.1
            await wait_for(lambda: any("cannot connect" in m for m in caplog.messages), timeout=10, what="failure")
            await asyncio.sleep(0.5)
            assert not sink.conn.connected and sink.conn.connects == 0
    finally:
        b.stop()
    assert any("CERTIFICATE_VERIFY_FAILED" in m and ("IP address mismatch" in m or "hostname" in m.lower())
               for m in caplog.messages), caplog.messages

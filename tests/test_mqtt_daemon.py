"""The daemon as a subprocess against a real mosquitto: online, clean stop, and the last will on SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bmslib.mqtt.topics import daemon_status_topic
from tests.mqtt_broker import Broker, Watcher, broker, watcher

__all__ = ["broker", "watcher"]  # fixtures

ROOT = Path(__file__).resolve().parents[1]
DEVICES = [{"address": "sim:jbd1", "type": "jbd", "alias": "jbd1"}]


def wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def daemon(broker: Broker, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"devices": DEVICES, "sample_period": 0.5, "expire_values_after": 5.0,
                                   **broker.options()}))
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen([sys.executable, "main.py", "--config", str(options), "--state-dir", str(tmp_path)],
                            cwd=ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log.close()


def status_of(w: Watcher) -> list[str]:
    return [m.payload for m in w.seen(daemon_status_topic(["jbd1"]))]


def test_sigkill_triggers_the_last_will(daemon: subprocess.Popen[bytes], watcher: Watcher) -> None:
    wait(lambda: status_of(watcher)[-1:] == ["online"], 20, "the daemon online")
    wait(lambda: watcher.last("jbd1/soc/total_voltage"), 10, "states")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(5)
    killed = time.monotonic()
    wait(lambda: status_of(watcher)[-1:] == ["offline"], 5, "the last will")
    assert time.monotonic() - killed < 3
    held = watcher.retained("batmon/")
    assert held == {daemon_status_topic(["jbd1"]): "offline"}
    # the device topic still says online: availability_mode 'all' makes the entities unavailable anyway
    assert watcher.retained("jbd1/") == {"jbd1/availability": "online"}


def test_sigterm_says_offline_cleanly(daemon: subprocess.Popen[bytes], watcher: Watcher, tmp_path: Path) -> None:
    wait(lambda: status_of(watcher)[-1:] == ["online"], 20, "the daemon online")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
    wait(lambda: status_of(watcher)[-1:] == ["offline"], 2, "offline")
    assert "lost the connection" not in (tmp_path / "daemon.log").read_text()

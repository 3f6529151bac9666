"""Secrets never reach the log, at any level: the daemon (``main.py``) at debug level with every secret set.

The daemon runs as a subprocess with ``verbose_log: true`` and ``debug: true`` on every device, against
simulated devices that demand the secrets (a JBD with a password, ANT 2021 and legacy units with passwords,
a Victron SmartShunt with a pairing PIN, another one advertising with its own Instant Readout key), a
mosquitto with a password file, and an InfluxDB-compatible server (token, or the 1.8 user and password).
Switch commands make the ANT drivers send their passwords. Everything the process writes (stdout and
stderr: batmon's log, third-party loggers, warnings) and every file it leaves in its state directory is
searched for every secret in every form it takes on the way: as text, as hex (lower, upper, spaced,
colon-separated), as a Python bytes literal, in base64 (HTTP basic and token headers), and the very frames
that carry it (the JBD password encrypted with the device's MAC and random byte, the ANT authentication
frames in both address byte orders, the legacy ANT password register writes, the PIN as a number).

The simulated devices are the daemon's own (``sim:<id>``); a small bootstrap gives them their secrets
before ``bmslib.cli.main`` runs as ``main.py`` would.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import signal
import string
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bmslib.bms.ant.protocol import control as ant_control
from bmslib.bms.ant.protocol import legacy as ant_legacy
from bmslib.bms.jbd.protocol import auth as jbd_auth
from bmslib.sim.radio import sim_address
from tests.mqtt_broker import Broker, Watcher
from tests.victoria import Victoria

ROOT = Path(__file__).resolve().parent.parent
JBD_RANDOM = 0x5A  # the JBD emulator's "random" byte of the password handshake, fixed so the test can encrypt

BOOTSTRAP = """
import json, sys
import bmslib.app

secrets = json.loads(sys.argv[1])
build = bmslib.app.make_emulator

def make_emulator(device_type, sim_id, rng, **kwargs):
    em = build(device_type, sim_id, rng, **kwargs)
    for name, value in secrets.get(sim_id, {}).items():
        if name == "random_byte":
            em.random_byte = lambda value=value: value
        elif name == "key":
            em.key = bytes.fromhex(value)
        else:
            setattr(em, name, value)
    return em

bmslib.app.make_emulator = make_emulator
from main import SINK_FACTORIES, main
sys.exit(main(sys.argv[2:], sink_factories=SINK_FACTORIES))
"""


def token(n: int, alphabet: str = string.ascii_letters + string.digits + "!#%&*+-=?@^_~") -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def forms(secret: bytes) -> set[str]:
    """The ways ``secret`` could show up in a log line."""
    h = secret.hex()
    out = {h, h.upper(), secret.hex(" "), secret.hex(" ").upper(), secret.hex(":"), secret.hex(":").upper(),
           repr(secret), base64.b64encode(secret).decode()}
    text = secret.decode("latin-1")
    if text.isprintable():
        out.add(text)
    return {f for f in out if len(f) >= 4}


class Secrets:
    """Fresh secrets for one run, and every encoding of them the test searches for."""

    def __init__(self, influx: str) -> None:
        self.jbd = token(6)  # the JBD app allows six ASCII characters
        self.ant = token(16)
        self.ant_legacy = token(8)  # legacy ANT: eight ASCII characters
        self.victron_pin = f"{secrets.randbelow(900_000) + 100_000}"
        self.victron_key = secrets.token_hex(16)
        self.mqtt_password = token(20)
        self.influx = influx
        self.influx_token = token(32)
        self.influx_password = token(20)

    def devices(self) -> list[dict[str, object]]:
        return [
            {"address": "sim:jbdpw", "type": "jbd", "alias": "jbd_pw", "pin": self.jbd, "debug": True},
            {"address": "sim:antpw", "type": "ant", "alias": "ant_pw", "pin": self.ant, "debug": True},
            {"address": "sim:antlpw", "type": "ant_legacy", "alias": "antl_pw", "pin": self.ant_legacy, "debug": True},
            {"address": "sim:vicpin", "type": "victron", "alias": "vic_pin", "pin": self.victron_pin, "debug": True},
            {"address": "sim:vickey", "type": "victron", "alias": "vic_key", "key": self.victron_key, "debug": True},
        ]

    def emulators(self) -> dict[str, dict[str, object]]:
        return {"jbdpw": {"password": self.jbd, "random_byte": JBD_RANDOM},
                "antpw": {"password": self.ant}, "antlpw": {"password": self.ant_legacy},
                "vicpin": {"pin": self.victron_pin}, "vickey": {"key": self.victron_key}}

    def influx_options(self, server: Victoria) -> dict[str, object]:
        if self.influx == "token":
            return server.options(influxdb_token=self.influx_token)
        return {"influxdb_url": server.url, "influxdb_username": "batmon", "influxdb_password": self.influx_password,
                "influxdb_database": "batmon"}

    def needles(self) -> dict[str, set[str]]:
        """What must not appear, by what it is."""
        mac = jbd_auth.parse_mac(sim_address("jbdpw"))
        jbd_frame = jbd_auth.user_password_request(mac, self.jbd, JBD_RANDOM)
        found: dict[str, set[str]] = {
            "JBD password": forms(self.jbd.encode()),
            "JBD password, encrypted": forms(jbd_frame) | forms(jbd_frame[4:-1]),
            "ANT password": forms(self.ant.encode()),
            "ANT authentication frame": set().union(*(forms(ant_control.auth_request(self.ant, order))
                                                      for order in ant_control.AUTH_ORDERS)),
            "legacy ANT password": forms(self.ant_legacy.encode()),
            "legacy ANT password writes": set().union(*(forms(f) for f in ant_legacy.auth_writes(self.ant_legacy))),
            "Victron PIN": forms(self.victron_pin.encode()) | forms(int(self.victron_pin).to_bytes(4, "little"))
            | forms(int(self.victron_pin).to_bytes(4, "big")),
            "Victron key": forms(bytes.fromhex(self.victron_key)),
            "MQTT password": forms(self.mqtt_password.encode()) | forms(f"batmon:{self.mqtt_password}".encode()),
        }
        if self.influx == "token":
            found["InfluxDB token"] = forms(self.influx_token.encode())
        else:
            found["InfluxDB password"] = forms(self.influx_password.encode()) | forms(
                f"batmon:{self.influx_password}".encode())
        return found


def search(text: str, needles: dict[str, set[str]]) -> list[str]:
    hits = []
    for what, variants in needles.items():
        for v in variants:
            # digits inside a longer number or a hex dump are not the PIN (its hex forms are needles of their own)
            pattern = rf"(?<![0-9A-Fa-f]){re.escape(v)}(?![0-9A-Fa-f])" if v.isdigit() else re.escape(v)
            if re.search(pattern, text):
                line = next(ln for ln in text.splitlines() if re.search(pattern, ln))
                hits.append(f"{what} ({v!r}) in: {line[:200]}")
    return hits


def wait(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


@pytest.mark.parametrize("influx", ["token", "user and password"])
def test_no_secret_reaches_the_log_at_debug_level(tmp_path: Path, influx: str) -> None:
    s = Secrets(influx)
    broker = Broker(tmp_path / "broker", users={"batmon": s.mqtt_password})
    victoria = Victoria(tmp_path / "victoria")
    broker.start()
    victoria.start()
    watcher = Watcher(broker).start()
    state = tmp_path / "state"
    options = {"devices": s.devices(), "verbose_log": True, "sample_period": 1.0, "publish_period": 1.0,
               "mqtt_user": "batmon", "mqtt_password": s.mqtt_password, **broker.options(),
               **s.influx_options(victoria)}
    config = tmp_path / "options.json"
    config.write_text(json.dumps(options))
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    try:
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen([sys.executable, "-c", BOOTSTRAP, json.dumps(s.emulators()), "--config",
                                     str(config), "--state-dir", str(state)], cwd=ROOT, stdout=o, stderr=e,
                                    stdin=subprocess.DEVNULL)
        try:
            # every device reads (so every secret was used: handshake, pairing, key), over an authenticated broker
            for alias in ("jbd_pw", "ant_pw", "antl_pw", "vic_pin", "vic_key"):
                wait(lambda alias=alias: watcher.seen(f"{alias}/soc/total_voltage"), 30, f"states of {alias}")
            # the ANT drivers send their passwords with a switch command
            for alias in ("ant_pw", "antl_pw"):
                watcher.publish(f"homeassistant/switch/{alias}/charge/set", "OFF")
            for alias in ("ant_pw", "antl_pw"):
                wait(lambda alias=alias: "OFF" in [m.payload for m in watcher.seen(f"{alias}/switch/charge")], 20,
                     f"{alias} switched off (its password was accepted)")
            wait(victoria.export, 20, "points in the InfluxDB server")
            time.sleep(2.0)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    finally:
        watcher.stop()
        broker.stop()
        victoria.stop()
    log = err.read_text(errors="replace")
    assert "DEBUG" in log and "batmon.dev.jbd_pw" in log and " TX " in log  # it did log at debug level
    assert "Traceback" not in log
    texts = {"stderr": log, "stdout": out.read_text(errors="replace")}
    texts.update({f"state file {p.name}": p.read_text(errors="replace") for p in state.iterdir() if p.is_file()})
    hits = [f"{where}: {hit}" for where, text in texts.items() for hit in search(text, s.needles())]
    assert not hits, "\n".join(hits)


def test_the_search_finds_what_it_looks_for() -> None:
    s = Secrets("token")
    needles = s.needles()
    mac = jbd_auth.parse_mac(sim_address("jbdpw"))
    samples = [
        f"password is {s.jbd}", f"TX {jbd_auth.user_password_request(mac, s.jbd, JBD_RANDOM).hex()}",
        f"TX {ant_control.auth_request(s.ant, ant_control.AuthOrder.SWAPPED).hex()}",
        f"TX {ant_legacy.auth_writes(s.ant_legacy)[2].hex()}", f"pin={s.victron_pin}.", f"key {s.victron_key.upper()}",
        f"{bytes.fromhex(s.victron_key)!r}", f"Authorization: Token {s.influx_token}",
        f"Basic {base64.b64encode(f'batmon:{s.mqtt_password}'.encode()).decode()}",
    ]
    for line in samples:
        assert search(line, needles), line
    assert not search(f"t=1{s.victron_pin}2, RX a{s.victron_pin}f", {"Victron PIN": {s.victron_pin}})
    assert search(f"pin 0x{s.victron_pin}", {"Victron PIN": {s.victron_pin}})

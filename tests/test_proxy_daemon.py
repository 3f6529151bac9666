"""Batteries out of range, end to end: the daemon reads them only through an ESPHome Bluetooth proxy.

The daemon is ``main.py``, a process of its own, configured as a user would: ``ble_stack: esphome``, one
``bluetooth_proxies`` entry, a JBD and a JK by MAC address, a real mosquitto (tests/mqtt_broker.py). The
batteries are emulators on a simulated radio in this test's process, and the only way to them is the
simulated ESPHome node (bmslib/sim/esphome) on a loopback port, which speaks the native API (plaintext, and
Noise with a key) to the daemon's aioesphomeapi, bleak-esphome and habluetooth. Then the node reboots: its
API sessions and Bluetooth links drop and its port stays closed for a few seconds. The daemon must publish
both batteries again within 30 s of that (the issue's contract), without a restart.

A state only a read after the reboot can carry proves the publish fresh: as the node goes down, each
battery's cycle count is set to a value it never had, and the test waits for that value on MQTT (the
MQTT sink also re-sends unchanged states as a heartbeat, which must not count).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bmslib.cli import demo_devices
from bmslib.config import parse_config
from bmslib.demo_proxy import PROXY_NAME as PROXY_NAME_DEMO
from bmslib.demo_proxy import demo_radio, proxied_options
from bmslib.registry import device_types, type_infos
from bmslib.sim.emulator import Emulator
from bmslib.sim.esphome.node import EsphomeNode
from bmslib.sim.radio import SimRadio
from tests.mqtt_broker import Broker, Watcher, broker, wait_for, watcher
from tests.sim_helpers import add_emulator

__all__ = ["broker", "watcher"]  # fixtures

ROOT = Path(__file__).resolve().parents[1]
#: an API encryption key as ESPHome's dashboard makes them (base64 of 32 bytes); a test value, no secret
NOISE_PSK = base64.b64encode(bytes(range(101, 133))).decode()
PROXY_NAME = "shed"
DOWN_FOR = 3.0  # [s] the node's port stays closed this long while it reboots
CONTRACT = 30.0  # [s] the "publishes them again within 30 s"
START_TIMEOUT = 120.0  # [s] generous: the daemon's start, the proxy's first connect, on a loaded machine
CYCLES_TOPIC = "soc/num_cycles"
AFTER_REBOOT_CYCLES = 4242  # a cycle count neither battery had before the reboot


@contextlib.asynccontextmanager
async def daemon(options: dict[str, Any], directory: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``main.py`` with ``options`` as its options file, its log in ``directory/daemon.log``; SIGTERM at the
    end (SIGKILL if it does not stop)."""
    path = directory / "options.json"
    path.write_text(json.dumps(options))
    with (directory / "daemon.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "main.py", "--config", str(path), "--state-dir", str(directory), cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


def first_with(w: Watcher, topic: str, payload: str, since: float) -> float | None:
    """When ``payload`` first arrived on ``topic`` at or after ``since`` (monotonic), or None."""
    return next((m.at for m in w.seen(topic, since=since) if m.payload == payload), None)


@pytest.mark.parametrize("noise_psk", [None, NOISE_PSK], ids=["plaintext", "noise"])
async def test_daemon_reads_through_a_proxy_and_again_after_it_reboots(
        noise_psk: str | None, broker: Broker, watcher: Watcher, tmp_path: Path) -> None:
    types = device_types()
    radio = SimRadio()
    batteries: dict[str, tuple[str, Emulator]] = {}  # alias -> (type, emulator)
    for alias, type_name, seed in (("shed_jbd", "jbd", 1), ("shed_jk", "jk", 2)):
        emulator = types[type_name].emulator
        assert emulator is not None
        batteries[alias] = type_name, add_emulator(radio, emulator, alias.replace("_", ""), seed=seed)
    try:
        async with EsphomeNode(radio, noise_psk=noise_psk, name=PROXY_NAME) as node:
            proxy: dict[str, Any] = {"host": node.host, "port": node.port, "name": PROXY_NAME}
            if noise_psk is not None:
                proxy["noise_psk"] = noise_psk
            devices = [{"address": em.address, "type": t, "alias": a} for a, (t, em) in batteries.items()]
            options = {"devices": devices, "ble_stack": "esphome", "bluetooth_proxies": [proxy], **broker.options()}
            async with daemon(options, tmp_path) as proc:
                await wait_for(lambda: all(watcher.last(f"{a}/soc/total_voltage") for a in batteries), START_TIMEOUT,
                               "both batteries' first states, read through the proxy")
                assert node.sessions, "the daemon talks to the node"
                assert all(em.battery.cycles != AFTER_REBOOT_CYCLES for _, em in batteries.values())

                # the reboot: sessions and links drop now; only then does each battery get a cycle count it
                # never had, so that a state carrying it comes from a read after the reboot
                node.drop_sessions()
                down = time.monotonic()
                for _, em in batteries.values():
                    em.battery.cycles = AFTER_REBOOT_CYCLES
                await node.reboot(DOWN_FOR)
                up = time.monotonic()

                seen: dict[str, float] = {}

                def all_back() -> bool:
                    seen.update({a: at - down for a in batteries
                                 if (at := first_with(watcher, f"{a}/{CYCLES_TOPIC}", str(AFTER_REBOOT_CYCLES),
                                                      down)) is not None})
                    return len(seen) == len(batteries)

                # wait beyond the contract, so that a miss reports how late it was rather than a timeout
                await wait_for(all_back, CONTRACT + START_TIMEOUT, "both batteries published after the reboot",
                               interval=0.05)
                assert proc.returncode is None, "the daemon kept running (no restart)"
            log = (tmp_path / "daemon.log").read_text()
    finally:
        await radio.aclose()
    mode = "Noise" if noise_psk else "plaintext"
    print(f"\n[{mode}] node down {up - down:.1f} s; published again after the reboot began: "
          + ", ".join(f"{a} {t:.1f} s" for a, t in sorted(seen.items())))
    assert max(seen.values()) < CONTRACT, f"published again after {seen} s; the contract is {CONTRACT:g} s"
    assert node.boots == 2
    assert log.count(" starting with ") == 1, "one start, no restart"
    if noise_psk is not None:
        assert noise_psk not in log, "the API encryption key must never be logged"


# --- the demo through a simulated proxy --------------------------------------------------------------

def test_demo_options_reach_every_simulated_device_only_through_the_proxy() -> None:
    types = device_types()
    devices = demo_devices(types)
    radio = demo_radio(devices, types)
    options = proxied_options(devices, radio, types, port=16053, noise_psk=NOISE_PSK)
    config = parse_config(options, source="test", env={}, types=type_infos(types))
    assert config.ble_stack == "esphome"
    assert [(p.host, p.port, p.name) for p in config.bluetooth_proxies] == [("127.0.0.1", 16053, PROXY_NAME_DEMO)]
    assert config.bluetooth_proxies[0].noise_psk == NOISE_PSK
    simulated = [d for d in config.devices if not d.is_group and types[d.type].radio]
    assert simulated and not any(d.is_sim for d in config.devices)  # no sim: address: no simulated backend
    assert sorted(d.address for d in simulated) == sorted(em.address for em in radio.emulators)
    # the bank's packs share one bus, as the demo's sim:bank1?bank=demo and sim:bank2?bank=demo do
    bank = [radio.by_sim_id(sim_id) for sim_id in ("bank1", "bank2")]
    assert all(em is not None for em in bank)
    assert len(radio.bank("demo").packs) == 2


def test_demo_proxy_prints_samples_read_through_the_simulated_proxy(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--demo-proxy", "--state-dir", str(tmp_path)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if sum(1 for ln in lines if ln.startswith(("demo_jbd ", "demo_jk "))) >= 4:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + out
    assert proc.returncode == 0, err
    assert "read through a simulated ESPHome Bluetooth proxy" in out, out
    for alias in ("demo_jbd", "demo_jk"):
        assert any(ln.startswith(alias) and "SoC" in ln for ln in out.splitlines()), (alias, out, err)
    assert "Traceback" not in err

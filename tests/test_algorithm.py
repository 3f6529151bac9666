"""The ``soc`` charge algorithm: the spec, the state machine as a table, calibration, state, and the demo."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bmslib.algorithm import (
    RETRY_AFTER,
    AlgorithmRunner,
    SocController,
    SocSpec,
    SocState,
    parse_algorithm,
    reports_full,
    state_file_name,
    validate_algorithm,
)
from bmslib.app import App
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.cli import DEMO_BANK
from bmslib.commands import CommandQueue
from bmslib.config import parse_config
from bmslib.device import DeviceStatus
from bmslib.model import Sample
from bmslib.registry import type_infos
from tests.sim_helpers import app_running, fast_types
from tests.test_app import RecordingSink

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0
NOW = 1_750_000_000.0


# --- the spec -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "stop", "start"), [
    ("soc 90%", 90.0, 89.8), ("soc 90% 80%", 90.0, 80.0), ("SOC 90 80", 90.0, 80.0), ("  soc  100%  95% ", 100, 95),
    ("soc 90% 90%", 90.0, 89.8),  # CHARGE_START is at most CHARGE_STOP - 0.2
    ("soc 75.5% 25%", 75.5, 25.0), ("soc 0.1%", 0.1, 0.0), ("soc 90% 0%", 90.0, 0.0),
])
def test_valid_specs(text: str, stop: float, start: float) -> None:
    assert parse_algorithm(text) == SocSpec(charge_stop=stop, charge_start=start)
    assert validate_algorithm(text) is None


@pytest.mark.parametrize(("text", "problem"), [
    ("soc 80% 90%", "CHARGE_START (90 %) must not be above CHARGE_STOP (80 %)"),
    ("soc 120%", "CHARGE_STOP must be above 0 % and at most 100 %, got 120 %"),
    ("soc 0%", "CHARGE_STOP must be above 0 % and at most 100 %, got 0 %"),
    ("soc 90% 101%", "CHARGE_START must be at most 100 %, got 101 %"),
    ("soc -5%", "CHARGE_STOP '-5%' is not a percentage (like 90%)"),
    ("soc ninety", "CHARGE_STOP 'ninety' is not a percentage (like 90%)"),
    ("soc", "soc needs CHARGE_STOP%, e.g. 'soc 90%' or 'soc 90% 80%'"),
    ("soc 90% 80% 70%", "soc takes CHARGE_STOP% and optionally CHARGE_START%, got 3 values"),
    ("volt 3.4", "unknown algorithm 'volt' (known: soc; e.g. 'soc 90% 80%')"),
])
def test_invalid_specs(text: str, problem: str) -> None:
    assert validate_algorithm(text) == problem


@pytest.mark.parametrize(("devices", "line"), [
    ("[{address: 'sim:a', type: jbd, alias: a, algorithm: 'soc 80% 90%'}]",
     "devices[0].algorithm: CHARGE_START (90 %) must not be above CHARGE_STOP (80 %)"),
    ("[{address: 'sim:a', type: jbd, alias: a, algorithm: 'magic 1'}]",
     "devices[0].algorithm: unknown algorithm 'magic' (known: soc; e.g. 'soc 90% 80%')"),
    ("[{address: 'sim:v', type: victron, alias: v, algorithm: 'soc 90%'}]",
     "devices[0].algorithm: needs a device with a charge switch; type 'victron' has none"),
    ("[{address: 'sim:a', type: jbd, alias: a, algorithm: 'soc 90%', soc_calibration_days: -1}]",
     "devices[0].soc_calibration_days: must be >= 0, got -1"),
])
def test_invalid_algorithm_config_is_one_line_and_exit_status_2(tmp_path: Path, devices: str, line: str) -> None:
    cfg = tmp_path / "options.yaml"
    cfg.write_text(f"devices: {devices}\n")
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(cfg), "--state-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [line]


# --- the state machine as a table ----------------------------------------------------------------------------

@dataclass
class Step:
    soc: float | None = None
    toggle: bool | None = None  # a manual switch of the charge FET instead of a sample
    full: bool = False
    days: float = 0.0  # time passes before this step


def steps(*socs: float) -> list[Step]:
    return [Step(soc=s) for s in socs]


def on(on_: bool) -> Step:
    return Step(toggle=on_)


def simulate(spec: str, script: list[Step], *, switch: bool = True, charging: bool = True,
             last_calibration_days_ago: float = 0.0, calibration_days: float = 14.0) -> list[tuple[float, str]]:
    """Run the controller; the device obeys its decisions. Returns (SoC, 'on'/'off') per action."""
    ctl = SocController(parse_algorithm(spec), SocState(charging, NOW - last_calibration_days_ago * DAY),
                        calibration_days * DAY)
    now, actions = NOW, []
    for step in script:
        now += step.days * DAY + 1.0
        if step.toggle is not None:
            switch = step.toggle
            continue
        decision = ctl.update(step.soc, switch, full=step.full, now=now)
        if decision is not None:
            switch = decision.on
            actions.append((step.soc or 0.0, "on" if decision.on else "off"))
    return actions


TABLE: dict[str, tuple[dict[str, Any], list[Step], list[tuple[float, str]]]] = {
    "stop, then start": (
        {"spec": "soc 90% 80%"}, steps(50, 70, 89.9, 90, 95, 85, 80.1, 80, 79, 85, 90.5),
        [(90, "off"), (80, "on"), (90.5, "off")]),
    "default start is stop - 0.2": (
        {"spec": "soc 90%"}, steps(89, 90, 89.9, 89.8, 90.1), [(90, "off"), (89.8, "on"), (90.1, "off")]),
    "at start, the phase is enforced once (charging, switch found off)": (
        {"spec": "soc 90% 80%", "switch": False}, steps(85, 86), [(85, "on")]),
    "at start, the phase is enforced once (resting, switch found on)": (
        {"spec": "soc 90% 80%", "switch": True, "charging": False}, steps(85, 84), [(85, "off")]),
    "a start above CHARGE_STOP switches off": (
        {"spec": "soc 90% 80%"}, steps(95, 96), [(95, "off")]),
    "manual on while resting holds until the next crossing": (
        {"spec": "soc 90% 80%"}, [*steps(89, 90), on(True), *steps(92, 99, 100, 95, 85, 80, 75, 88, 90)],
        [(90, "off"), (90, "off")]),  # at 80 it is already on: no command; the next stop acts again
    "manual off while charging holds": (
        {"spec": "soc 90% 80%"}, [*steps(60, 70), on(False), *steps(69, 60, 40, 10)], []),
    "manual off then on by hand: the algorithm resumes at the next crossing": (
        {"spec": "soc 90% 80%"}, [*steps(60), on(False), *steps(55), on(True), *steps(70, 90)], [(90, "off")]),
    "missing SoC does nothing": (
        {"spec": "soc 90% 80%"}, [Step(soc=None), *steps(91), Step(soc=None)], [(91, "off")]),
    "calibration: charges past CHARGE_STOP until 99.5 %, then stops": (
        {"spec": "soc 90% 80%", "last_calibration_days_ago": 13.9},
        [*steps(85, 90), Step(soc=80, days=0.2), *steps(85, 90, 95, 99.4, 99.5, 99, 90, 85, 80)],
        [(90, "off"), (80, "on"), (99.5, "off"), (80, "on")]),
    "calibration starts by switching on while resting": (
        {"spec": "soc 90% 80%", "charging": False, "switch": False, "last_calibration_days_ago": 15},
        steps(85, 92, 99.6, 99.7), [(85, "on"), (99.6, "off")]),
    "calibration is done when the BMS reports full, below 99.5 %": (
        {"spec": "soc 90% 80%", "last_calibration_days_ago": 15},
        [*steps(93, 96), Step(soc=97, full=True), *steps(97)], [(97, "off")]),
    "calibration with CHARGE_STOP 100 % goes on charging to 100 %": (
        {"spec": "soc 100% 95%", "last_calibration_days_ago": 15}, steps(99, 99.5, 99.8, 100), [(100, "off")]),
    "manual off during calibration holds; on again by hand, it completes": (
        {"spec": "soc 90% 80%", "last_calibration_days_ago": 15},
        [*steps(85, 91), on(False), *steps(90, 70), on(True), *steps(80, 99.5)], [(99.5, "off")]),
    "calibration every N days: the next one is N days after the last": (
        {"spec": "soc 90% 80%", "last_calibration_days_ago": 15},
        [*steps(99.5, 80), Step(soc=85, days=13), *steps(90), Step(soc=80, days=0.5), Step(soc=85, days=0.6),
         *steps(91)],
        [(99.5, "off"), (80, "on"), (90, "off"), (80, "on")]),
    "calibration never, with 0 days": (
        {"spec": "soc 90% 80%", "last_calibration_days_ago": 1000, "calibration_days": 0}, steps(85, 91),
        [(91, "off")]),
}


@pytest.mark.parametrize("case", list(TABLE), ids=list(TABLE))
def test_switch_actions(case: str) -> None:
    options, script, expected = TABLE[case]
    spec = options.pop("spec")
    assert simulate(spec, script, **options) == expected
    options["spec"] = spec


def test_reasons_name_the_soc_and_the_threshold() -> None:
    ctl = SocController(parse_algorithm("soc 90% 80%"), SocState(True, NOW), 14 * DAY)
    off = ctl.update(90.1, True, full=False, now=NOW)
    assert off is not None and off.reason == "SoC 90.1 % >= 90 %: charge off" and ctl.status == off.reason
    on_ = ctl.update(79.96, False, full=False, now=NOW)
    assert on_ is not None and on_.reason == "SoC 80.0 % <= 80 %: charge on"
    ctl = SocController(parse_algorithm("soc 90% 80%"), SocState(True, NOW - 20 * DAY), 14 * DAY)
    cal = ctl.update(50, False, full=False, now=NOW)
    assert cal is not None and cal.reason.startswith("calibration due (last one 20.0 days ago): charge on")
    done = ctl.update(97, True, full=True, now=NOW)
    assert done is not None and done.reason == "calibration done (the BMS reports full); SoC 97.0 % >= 90 %: charge off"
    assert ctl.state.last_calibration_time == NOW


@pytest.mark.parametrize(("fields", "full"), [
    ({}, False), ({"alarms": ("battery_full",)}, True), ({"alarms": ("cell_overvoltage", "x")}, True),
    ({"alarms": ("cell_undervoltage",)}, False), ({"extra": {"battery_full": True}}, True),
    ({"extra": {"battery_full": False}}, False), ({"extra": {"charge_fet_status": "battery_full"}}, True),
])
def test_reports_full(fields: dict[str, Any], full: bool) -> None:
    assert reports_full(Sample(timestamp=0, mono=0, **fields)) is full


# --- the runner: requests, diagnostics, state -----------------------------------------------------------------

class Requests:
    """The App's command queue as the runner sees it; ``calls`` lists every command put on it so far."""

    def __init__(self) -> None:
        self.queue: CommandQueue = asyncio.Queue()
        self._calls: list[tuple[str, str, bool]] = []

    @property
    def calls(self) -> list[tuple[str, str, bool]]:
        while not self.queue.empty():
            command = self.queue.get_nowait()
            assert command.origin == "algorithm"
            self._calls.append((command.alias, command.switch, command.on))
        return self._calls


def soc_sample(soc: float, charge: bool | None = True) -> Sample:
    return Sample(timestamp=NOW, mono=0, soc=soc, switches=None if charge is None else {"charge": charge})


def runner(tmp_path: Path | None, requests: Requests, alias: str = "bat 1/x") -> AlgorithmRunner:
    return AlgorithmRunner(alias, parse_algorithm("soc 90% 80%"), state_dir=tmp_path, commands=requests.queue,
                           log=logging.getLogger("test.algo"), clock=lambda: NOW)


def device(available: bool = True) -> DeviceStatus:
    status = DeviceStatus(alias="bat 1/x", type="jbd", address="sim:x", switches=frozenset({"charge"}))
    status.available = available
    return status


async def test_state_is_persisted_atomically_in_the_original_format(tmp_path: Path) -> None:
    requests = Requests()
    r = runner(tmp_path, requests)
    status = device()
    await r.on_sample(status, soc_sample(85))
    path = tmp_path / state_file_name("bat 1/x")
    assert path.name == "bat_state_bat 1_x.json"
    assert json.loads(path.read_text()) == {"algorithm_state": {"soc": {"charging": True,
                                                                        "last_calibration_time": NOW}}}
    await r.on_sample(status, soc_sample(90.5))
    assert requests.calls == [("bat 1/x", "charge", False)]
    assert status.algorithm_status == "SoC 90.5 % >= 90 %: charge off"
    assert json.loads(path.read_text())["algorithm_state"]["soc"]["charging"] is False
    assert [p.name for p in tmp_path.iterdir()] == [path.name]

    again = runner(tmp_path, Requests())  # a restart reads it back: resting phase
    assert again.load().state == SocState(charging=False, last_calibration_time=NOW)


async def test_a_state_file_of_the_original_add_on_is_read(tmp_path: Path) -> None:
    (tmp_path / "bat_state_bat 1_x.json").write_text(
        '{"algorithm_state": {"soc": {"charging": false, "last_calibration_time": 1700000000.5}}}')
    assert runner(tmp_path, Requests()).load().state == SocState(False, 1700000000.5)


async def test_a_bad_state_file_starts_fresh_and_is_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "bat_state_bat 1_x.json").write_text('{"algorithm_state": {"soc": {"charging": "yes"}}}')
    assert runner(tmp_path, Requests()).load().state == SocState(True, NOW)
    assert "incomplete" in caplog.text
    (tmp_path / "bat_state_bat 1_x.json").write_text('{"algorithm_state": ')
    assert runner(tmp_path, Requests()).load().state == SocState(True, NOW)
    assert list(tmp_path.glob("bat_state_bat 1_x.json.corrupt-*"))


async def test_a_decision_waits_for_an_available_device_and_a_refusal_is_retried_later() -> None:
    requests = Requests()
    mono = [0.0]
    r = AlgorithmRunner("bat 1/x", parse_algorithm("soc 90% 80%"), state_dir=None, commands=requests.queue,
                        log=logging.getLogger("test.algo"), clock=lambda: NOW, mono=lambda: mono[0])
    status = device(available=False)
    await r.on_sample(status, soc_sample(95))  # first sample after connect: not available yet
    assert requests.calls == []
    status.available = True
    await r.on_sample(status, soc_sample(95))
    mono[0] += RETRY_AFTER - 1
    await r.on_sample(status, soc_sample(95))
    # refused by the App (or not carried out): the device still reports charge on; sent again later, not at
    # every sample
    assert requests.calls == [("bat 1/x", "charge", False)]
    mono[0] += 1
    await r.on_sample(status, soc_sample(95))
    await r.on_sample(status, soc_sample(95, charge=False))
    await r.on_sample(status, soc_sample(95, charge=False))
    assert requests.calls == [("bat 1/x", "charge", False)] * 2
    assert r.pending is None


async def test_a_decision_already_reflected_by_the_device_is_not_sent() -> None:
    requests = Requests()
    r = runner(None, requests)
    status = device(available=False)
    await r.on_sample(status, soc_sample(95))
    status.available = True
    await r.on_sample(status, soc_sample(95, charge=False))  # someone switched it off meanwhile
    assert requests.calls == []


# --- the demo: a group of two simulated batteries, its algorithm switching their charge FETs ------------------

async def test_the_demo_bank_algorithm_switches_the_simulated_charge_fets(tmp_path: Path) -> None:
    data = {"devices": [dict(d) for d in DEMO_BANK], "sample_period": 0.2, "publish_period": 0.2}
    cfg = parse_config(data, source="test", env={}, types=type_infos(fast_types()))
    app = App(cfg, types=fast_types(), sinks=[RecordingSink()], state_dir=tmp_path)
    assert app.radio is not None
    packs = [app.radio.by_sim_id(d["address"].removeprefix("sim:").partition("?")[0]) for d in DEMO_BANK[:2]]
    assert all(isinstance(p, JbdEmulator) and p.battery.charge_fet for p in packs)
    async with app_running(app, stop_timeout=10):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 8
        while any(p.battery.charge_fet for p in packs if p is not None) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
    assert not any(p.battery.charge_fet for p in packs if p is not None)
    bank = app.devices["demo_bank"].status
    assert bank.algorithm_status is not None and bank.algorithm_status.endswith(">= 55 %: charge off")
    assert bank.last_sample is not None and bank.last_sample.switches == {"charge": False, "discharge": True}
    state = json.loads((tmp_path / "bat_state_demo_bank.json").read_text())
    assert state["algorithm_state"]["soc"]["charging"] is False


@pytest.mark.parametrize("content", [
    '{"algorithm_state": {"soc": {"charging": true, "last_calibration_time": 1' + "0" * 400 + "}}}",
    '{"algorithm_state": {"soc": {"charging": true, "last_calibration_time": NaN}}}',
    '{"algorithm_state": {"soc": {"charging": true, "last_calibration_time": true}}}',
    '{"algorithm_state": {"soc": []}}', '{"algorithm_state": 5}', '{"other": 1}',
])
def test_odd_state_files_start_fresh(tmp_path: Path, content: str) -> None:
    (tmp_path / "bat_state_bat 1_x.json").write_text(content)
    assert runner(tmp_path, Requests()).load().state == SocState(True, NOW)

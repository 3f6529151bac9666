"""The application in-process: sampling isolation, availability, averaging, watchdog, switch commands."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bmslib.app import App
from bmslib.bms.jk.emulator import Jk04Emulator
from bmslib.config import AppConfig, parse_config
from bmslib.device import DeviceStatus
from bmslib.model import Sample
from bmslib.publishing import QUIET, Decision
from bmslib.registry import type_infos
from bmslib.sim.emulator import Emulator
from bmslib.sim.radio import SimRadio
from bmslib.sinks.base import Sink
from tests.sim_helpers import add_emulator, app_running, fast_types


class RecordingSink(Sink):
    """A sink that remembers what it was given (with the monotonic time it arrived)."""

    name = "recorder"

    def __init__(self) -> None:
        self.samples: list[tuple[float, str, Sample]] = []
        self.published: list[tuple[float, str, Sample]] = []
        self.availability: list[tuple[str, bool]] = []
        self.events: list[tuple[str, str]] = []  # (what, alias) in the order the sink got them
        self.stopped = False

    def on_sample(self, device: DeviceStatus, sample: Sample, decision: Decision = QUIET) -> None:
        now = time.monotonic()
        self.samples.append((now, device.alias, sample))
        self.events.append(("sample", device.alias))
        if decision.published is not None:
            self.published.append((now, device.alias, decision.published))
            self.events.append(("publish", device.alias))

    def on_meters(self, device: DeviceStatus, meters: Mapping[str, float]) -> None:
        self.events.append(("meters", device.alias))

    def on_availability(self, device: DeviceStatus, available: bool) -> None:
        self.availability.append((device.alias, available))

    async def stop(self, timeout: float) -> None:
        self.stopped = True

    def times(self, alias: str) -> list[float]:
        return [t for t, a, _ in self.samples if a == alias]


def config(devices: list[dict[str, Any]], **options: Any) -> AppConfig:
    data = {"devices": devices, "sample_period": 0.2, "publish_period": 0.2, **options}
    return parse_config(data, source="test", env={}, types=type_infos(fast_types()))


def max_gap(times: list[float]) -> float:
    return max(b - a for a, b in itertools.pairwise(times))


@pytest.mark.parametrize("concurrent", [False, True])
async def test_dead_device_delays_a_healthy_one_by_at_most_its_timeout(concurrent: bool) -> None:
    cfg = config([{"address": "sim:good", "type": "jbd", "alias": "good"},
                  {"address": "sim:dead", "type": "jbd", "alias": "dead"}], concurrent_sampling=concurrent)
    sink = RecordingSink()
    app = App(cfg, types=fast_types(), sinks=[sink])
    dead_timeout = app.devices["dead"].sampler.policy.read_timeout
    assert app.radio is not None
    dead = app.radio.by_sim_id("dead")
    assert dead is not None
    dead.faults.mute = True  # connects, never answers
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(4.0)
    good = sink.times("good")
    assert len(good) >= 8
    assert not sink.times("dead")
    assert app.devices["dead"].status.errors >= 2
    # serial: the healthy device waits for the dead one's read at most once per cycle
    assert max_gap(good[2:]) <= 0.2 + (0 if concurrent else dead_timeout) + 0.25
    if concurrent:
        assert len(good) >= 15  # nearly every 0.2 s period


def app_with_a_missing_device(aliases: list[str], scan_timeout: float) -> tuple[App, RecordingSink, Emulator]:
    """Simulated JBDs named by ``aliases`` (in that order), of which "gone" never shows up in a scan."""
    cfg = config([{"address": f"sim:{alias}", "type": "jbd", "alias": alias} for alias in aliases])
    sink = RecordingSink()
    app = App(cfg, types=fast_types(), sinks=[sink])
    assert app.radio is not None
    gone = app.radio.by_sim_id("gone")
    assert gone is not None
    gone.faults.hidden = True
    for rt in app.devices.values():
        rt.driver.transport.scan_timeout = scan_timeout  # type: ignore[attr-defined]
    return app, sink, gone


async def test_device_not_found_backs_off_without_blocking_others() -> None:
    app, sink, gone = app_with_a_missing_device(["good", "gone"], scan_timeout=0.5)
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(3.0)
        status = app.devices["gone"].status
        assert status.errors == 1  # one attempt, then backing off 5 s
        assert "not found" in (status.last_error or "")
        assert gone.requests == 0
    good = sink.times("good")
    assert len(good) >= 10 and max_gap(good[1:]) < 0.6


async def test_a_scan_for_a_missing_device_does_not_hold_up_the_connects_of_others() -> None:
    app, sink, _ = app_with_a_missing_device(["gone", "good"], scan_timeout=2.0)  # gone first: it scans first
    start = time.monotonic()
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(1.5)
    good = sink.times("good")
    assert good and good[0] - start < 1.0  # not after gone's 2 s scan


async def test_device_goes_unavailable_after_expiry_and_back_with_the_next_sample() -> None:
    cfg = config([{"address": "sim:b1", "type": "jbd", "alias": "b1"}], expire_values_after=1.0)
    sink = RecordingSink()
    app = App(cfg, types=fast_types(), sinks=[sink])
    assert app.radio is not None
    em = app.radio.by_sim_id("b1")
    assert em is not None
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(0.8)
        assert sink.availability == [("b1", True)]
        em.faults.mute = True
        await asyncio.sleep(2.5)
        assert sink.availability[-1] == ("b1", False)
        assert not app.request_switch("b1", "charge", False)  # refused while offline
        em.faults.mute = False
        await asyncio.sleep(2.5)
    assert sink.availability[-1] == ("b1", True)
    assert sink.availability.count(("b1", False)) == 1


async def test_publishes_average_voltage_current_power_and_resets_the_window() -> None:
    cfg = config([{"address": "x", "type": "dummy", "alias": "d"}], sample_period=0.1, publish_period=0.5)
    sink = RecordingSink()
    app = App(cfg, sinks=[sink])
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(2.2)
    assert 3 <= len(sink.published) <= 6
    assert len(sink.samples) >= 15
    # each published value is the mean of the raw samples since the previous publish
    raw = [(t, s) for t, _, s in sink.samples]
    prev_t = -1.0
    for t_pub, _, pub in sink.published[1:]:
        window = [s for t, s in raw if prev_t < t <= t_pub] if prev_t >= 0 else None
        if window:
            mean_i = sum(s.current or 0 for s in window) / len(window)
            assert pub.current == pytest.approx(mean_i, rel=1e-9, abs=1e-9)
            assert pub.soc == window[-1].soc  # other fields: the latest value
        prev_t = t_pub


async def test_meters_follow_a_devices_states_each_device_on_its_own() -> None:
    """At start every device's meters go out; then a device's meters follow its own sample and published
    states, every meter period (so they never hold up states, and devices do not send them all at once);
    at shutdown every device's meters go out once more."""
    cfg = config([{"address": "x", "type": "dummy", "alias": "a"}, {"address": "y", "type": "dummy", "alias": "b"}],
                 sample_period=0.1, publish_period=0.1)
    sink = RecordingSink()
    app = App(cfg, sinks=[sink], meter_period=0.5)
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(2.3)
    ev = sink.events
    assert ev[:2] == [("meters", "a"), ("meters", "b")]
    assert ev[-2:] == [("meters", "a"), ("meters", "b")]
    body = ev[2:-2]
    for alias in ("a", "b"):
        at = [k for k, e in enumerate(body) if e == ("meters", alias)]
        assert 3 <= len(at) <= 5, (alias, at)
        for k in at:
            assert body[k - 2:k] == [("sample", alias), ("publish", alias)], body[k - 3:k + 1]
        samples = [k for k, e in enumerate(body) if e == ("sample", alias)]
        between = [sum(1 for s in samples if a < s < b) for a, b in itertools.pairwise(at)]
        assert all(2 <= n <= 8 for n in between), between  # about every 0.5 s of 0.1 s samples


class FailingSink(Sink):
    """A sink whose every callback raises."""

    name = "failing"

    def on_sample(self, device: DeviceStatus, sample: Sample, decision: Decision = QUIET) -> None:
        raise RuntimeError("sink bug")

    def on_availability(self, device: DeviceStatus, available: bool) -> None:
        raise RuntimeError("sink bug")

    def on_meters(self, device: DeviceStatus, meters: Mapping[str, float]) -> None:
        raise RuntimeError("sink bug")


async def test_a_failing_sink_is_logged_once_and_neither_stops_sampling_nor_the_other_sinks(
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = config([{"address": "x", "type": "dummy", "alias": "d"}], sample_period=0.1, publish_period=0.1)
    sink = RecordingSink()
    app = App(cfg, sinks=[FailingSink(), sink])
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(1.0)
    assert len(sink.samples) >= 5 and len(sink.published) >= 5  # each sample once, after the failing sink
    assert sink.availability == [("d", True)]
    failures = [r for r in caplog.records if r.getMessage().startswith("sink failing failed")]
    assert len(failures) == 1, [r.getMessage() for r in failures]  # rate-limited: once a minute per sink
    assert failures[0].exc_info is not None  # with the traceback


async def test_a_power_jump_publishes_at_once() -> None:
    cfg = config([{"address": "x", "type": "dummy", "alias": "d"}], sample_period=0.1, publish_period=30)
    sink = RecordingSink()
    app = App(cfg, sinks=[sink])
    battery = app.devices["d"].driver.battery()  # type: ignore[attr-defined]
    battery.load = lambda t: 5.0
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(0.6)
        assert len(sink.published) == 1  # the first sample; next regular publish in 30 s
        battery.load = lambda t: 60.0  # a load switches on
        jump_at = time.monotonic()
        await asyncio.sleep(0.5)
    assert len(sink.published) == 2
    t_pub, _, pub = sink.published[1]
    assert t_pub - jump_at < 0.25  # with the first sample that saw the jump
    # the published value is the window's mean, which the jump sample pulls well above the 5 A idle
    assert pub.current is not None and pub.current > 10


async def test_watchdog_exits_with_status_1_when_no_device_samples() -> None:
    cfg = config([{"address": "sim:b1", "type": "jbd", "alias": "b1"}], watchdog=True)
    app = App(cfg, types=fast_types(), sinks=[RecordingSink()], watchdog_timeout=1.5)
    assert app.radio is not None
    em = app.radio.by_sim_id("b1")
    assert em is not None
    em.faults.mute = True
    start = time.monotonic()
    code = await asyncio.wait_for(app.run(), 10)
    assert code == 1
    assert 1.5 <= time.monotonic() - start < 4


async def test_watchdog_stays_quiet_while_samples_flow() -> None:
    cfg = config([{"address": "x", "type": "dummy", "alias": "d"}], watchdog=True)
    app = App(cfg, sinks=[RecordingSink()], watchdog_timeout=0.5)
    async with app_running(app, stop_timeout=10) as task:
        await asyncio.sleep(1.5)
        assert not task.done()
    assert app.exit_code == 0


async def test_switch_command_runs_between_reads_and_reads_back() -> None:
    cfg = config([{"address": "sim:b1", "type": "jbd", "alias": "b1"}], publish_period=30)
    sink = RecordingSink()
    app = App(cfg, types=fast_types(), sinks=[sink])
    assert app.radio is not None
    em = app.radio.by_sim_id("b1")
    assert em is not None
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(0.6)
        n = len(sink.published)
        assert app.request_switch("b1", "discharge", False)
        await asyncio.sleep(0.8)
        assert em.battery.discharge_fet is False
        assert len(sink.published) > n  # published at once, not after 30 s
        latest = sink.published[-1][2]
        assert latest.switches == {"charge": True, "discharge": False}  # what the device reports
        assert not app.request_switch("b1", "balance", True)  # JBD has no balancer switch


async def test_shutdown_stops_sinks_and_disconnects() -> None:
    cfg = config([{"address": "sim:b1", "type": "jbd", "alias": "b1"}])
    sink = RecordingSink()
    app = App(cfg, types=fast_types(), sinks=[sink])
    assert app.radio is not None
    em = app.radio.by_sim_id("b1")
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(0.5)
        assert em is not None and em.link is not None
    assert sink.stopped
    assert em.link is None


def test_secrets_are_not_in_the_config_repr() -> None:
    cfg = config([{"address": "sim:b1", "type": "jbd", "alias": "b1", "pin": "987654"}],
                 mqtt_broker="localhost", mqtt_password="hunter2-secret")
    text = repr(cfg)
    assert "987654" not in text and "hunter2-secret" not in text




@pytest.mark.parametrize("tool_present", [True, False])
async def test_bt_power_cycle_uses_bluetoothctl_or_says_it_skipped(
        tool_present: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    calls = tmp_path / "calls"
    if tool_present:  # a stand-in for BlueZ's bluetoothctl that records how it was called
        tool = tmp_path / "bluetoothctl"
        tool.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    cfg = config([{"address": "x", "type": "dummy", "alias": "d"}], bt_power_cycle=True)
    app = App(cfg, sinks=[RecordingSink()])
    with caplog.at_level(logging.INFO, logger="batmon"):
        await app._power_cycle_adapters()
    if tool_present:
        assert calls.read_text().splitlines() == ["power off", "power on"]
    else:
        assert [r.message for r in caplog.records] == ["bt_power_cycle: bluetoothctl not found, power cycle skipped"]


async def test_offered_switches_narrow_to_what_the_detected_variant_can_switch() -> None:
    # a legacy Daly does not report its discharge FET reliably: only the charge switch is offered
    cfg = config([{"address": "sim:d1", "type": "daly_legacy", "alias": "d1"},
                  {"address": "sim:d2", "type": "daly_modbus", "alias": "d2"}])
    app = App(cfg, sinks=[RecordingSink()])
    assert app.devices["d1"].status.switches == {"charge", "discharge"}  # the type's, before connecting
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(1.5)
        assert app.devices["d1"].status.samples > 0
        assert app.devices["d1"].status.switches == {"charge"}
        assert app.devices["d2"].status.switches == {"charge", "discharge"}
        assert not app.request_switch("d1", "discharge", False)


async def test_a_jk04_found_under_type_jk_offers_only_the_balancer() -> None:
    radio = SimRadio()
    add_emulator(radio, Jk04Emulator, "k1")  # an old active balancer, configured as plain `jk`
    cfg = config([{"address": "sim:k1", "type": "jk", "alias": "k1"}])
    app = App(cfg, sinks=[RecordingSink()], radio=radio)
    assert app.devices["k1"].status.switches == {"charge", "discharge", "balance"}
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(2.0)
        assert app.devices["k1"].status.samples > 0
        assert app.devices["k1"].status.switches == {"balance"}

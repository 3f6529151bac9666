"""Soak under faults: the daemon (``main.py`` in a subprocess) for N minutes against 20 simulated devices,
13 of them with random faults, while mosquitto is restarted every minute and the InfluxDB server
(victoria-metrics) goes down and comes back.

Run it with ``scripts/soak [--minutes N]`` (default 10; CI runs one minute). The faults come from the
daemon's own simulator (``BATMON_SIM_FAULTS``, see bmslib/sim/faults.py): seeded, so a failing run can
be repeated with ``BATMON_SOAK_SEED``. Checks:

* the daemon never crashes: it is alive at every look, its log has no traceback, and SIGTERM ends it
  with status 0 within the shutdown grace;
* every device with no faults samples at its rate and its states reach the broker at that rate (the
  seconds the broker is restarting excepted);
* every published value is physically plausible (no frame that failed its checks reaches MQTT): the
  corrupt episodes replace one byte of a frame with 0xFF, which turns a value implausible whenever it
  hits a number's high byte (tests/soak/test_fault_premise.py shows that it would);
* the charge and discharge energy meters (and the cycle counter) never decrease;
* memory does not grow: the least-squares slope of the daemon's RSS after the first minute stays under a
  bound a real leak would exceed (a run shorter than 5 minutes is still settling: its second half gets a
  bound that only a gross leak exceeds);
* a device that vanished and came back publishes again within one back-off period (the last
  "retry in N s" the daemon logged for it, plus one scan of a connect that held the connect lock, one
  sample period and a margin); a recovery that a new fault of the same device interrupts is not judged;
* InfluxDB output recovers after each outage (points written after the server's last restart).

A summary with the figures is printed (``scripts/soak`` shows it).
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bmslib.ble.transport import BleTransport
from bmslib.bms.victron.emulator import DEMO_KEY_HEX
from bmslib.cli import SHUTDOWN_GRACE
from tests.mqtt_broker import Broker
from tests.soak.observer import Observer
from tests.victoria import Victoria

pytestmark = pytest.mark.soak

ROOT = Path(__file__).resolve().parent.parent.parent
MINUTES = float(os.environ.get("BATMON_SOAK_MINUTES", "1"))
SEED = int(os.environ.get("BATMON_SOAK_SEED", "20261124"))
PERIOD = 1.0  # [s] sample_period and publish_period
WARM_UP = 10.0  # [s] before the rate checks start
BROKER_EVERY = 60.0  # [s] mosquitto is restarted this often, first at BROKER_FIRST
BROKER_FIRST = 30.0
INFLUX_EVERY, INFLUX_FIRST, INFLUX_DOWN = 90.0, 15.0, 20.0  # [s] victoria goes down for INFLUX_DOWN
LOOK_EVERY = 2.0  # [s] liveness check and RSS sample
RATE_MIN = 0.9  # fraction of the nominal sample rate healthy devices must reach
MESSAGE_RATE_MIN = 0.85  # fraction of the nominal rate of state messages (broker restarts excepted)
RSS_SLOPE_MAX = 1.0  # [MB/min] after the first minute; keeping one 2 kB object per sample of 20 devices: 2.4
RSS_SLOPE_MAX_SHORT = 8.0  # [MB/min] runs under 5 min, second half: start-up growth (~3 MB/min) has not settled
SCAN_TIMEOUT = inspect.signature(BleTransport).parameters["scan_timeout"].default  # [s]
RECOVERY_SLACK = SCAN_TIMEOUT + PERIOD + 3.0  # [s] one scan of a connect holding the lock, one period, margin


@dataclass(frozen=True)
class Dev:
    alias: str
    type: str
    healthy: bool
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def sim_id(self) -> str:
        return self.alias

    def entry(self) -> dict[str, Any]:
        return {"address": f"sim:{self.sim_id}", "type": self.type, "alias": self.alias, **self.options}


DEVICES = (
    # without faults: one per protocol family
    Dev("ok_jbd", "jbd", True), Dev("ok_jk", "jk", True), Dev("ok_daly", "daly", True),
    Dev("ok_ant", "ant", True), Dev("ok_sok", "sok", True), Dev("ok_supervolt", "supervolt", True),
    Dev("ok_victron", "victron", True),  # GATT (no key)
    # with faults: every type and variant
    Dev("f_jbd", "jbd", False), Dev("f_jk", "jk", False), Dev("f_jk_24s", "jk_24s", False),
    Dev("f_jk_32s", "jk_32s", False), Dev("f_jk04", "jk04", False), Dev("f_daly", "daly", False),
    Dev("f_daly_legacy", "daly_legacy", False), Dev("f_daly_modbus", "daly_modbus", False),
    Dev("f_ant", "ant", False), Dev("f_ant_legacy", "ant_legacy", False), Dev("f_sok", "sok", False),
    Dev("f_supervolt", "supervolt", False),
    Dev("f_victron", "victron", False, {"key": DEMO_KEY_HEX}),  # Instant Readout: only vanishes
)
HEALTHY = [d for d in DEVICES if d.healthy]
FAULTY = [d for d in DEVICES if not d.healthy]


# --- the run ----------------------------------------------------------------------------------------

@dataclass
class Run:
    """What happened during the soak, for the checks."""

    start: float = 0.0  # wall clock
    end: float = 0.0
    rss: list[tuple[float, float]] = field(default_factory=list)  # (t since start [s], RSS [MB])
    broker_down: list[tuple[float, float]] = field(default_factory=list)  # wall clock intervals
    influx_up_at: float = 0.0  # wall clock of victoria's last start
    exit_code: int | None = None
    stop_seconds: float = 0.0
    log: str = ""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx


@contextlib.contextmanager
def servers(tmp_path: Path) -> Iterator[tuple[Broker, Victoria]]:
    broker = Broker(tmp_path / "broker")
    victoria = Victoria(tmp_path / "victoria")
    broker.start()
    try:
        victoria.start()
        try:
            yield broker, victoria
        finally:
            victoria.stop()
    finally:
        broker.stop()


def soak(tmp_path: Path, broker: Broker, victoria: Victoria, seconds: float) -> Run:
    options = {
        "devices": [d.entry() for d in DEVICES], "sample_period": PERIOD, "publish_period": PERIOD,
        "concurrent_sampling": True, "keep_alive": True, **broker.options(), **victoria.options(),
    }
    config = tmp_path / "options.json"
    config.write_text(json.dumps(options, indent=1))
    env = {**os.environ, "BATMON_SIM_FAULTS": f"seed={SEED} devices={','.join(d.sim_id for d in FAULTY)}"}
    log_path = tmp_path / "daemon.log"
    run = Run()
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "main.py", "--config", str(config), "--state-dir",
                                 str(tmp_path / "state")], cwd=ROOT, stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, env=env)
    try:
        run.start = time.time()
        t0 = time.monotonic()
        next_broker, next_influx_down = BROKER_FIRST, INFLUX_FIRST
        influx_up_due: float | None = None
        run.influx_up_at = run.start
        while (now := time.monotonic() - t0) < seconds:
            assert proc.poll() is None, f"the daemon exited with {proc.returncode}: {log_path.read_text()[-3000:]}"
            run.rss.append((now, rss_mb(proc.pid)))
            if now >= next_broker:
                next_broker += BROKER_EVERY
                down = time.time()
                if len(run.broker_down) % 2:
                    broker.kill()  # every other time without a goodbye to the clients
                broker.restart()
                run.broker_down.append((down, time.time()))
            if influx_up_due is None and now >= next_influx_down and now + INFLUX_DOWN < seconds - 10:
                victoria.stop()
                influx_up_due, next_influx_down = now + INFLUX_DOWN, next_influx_down + INFLUX_EVERY
            if influx_up_due is not None and now >= influx_up_due:
                victoria.start()
                run.influx_up_at, influx_up_due = time.time(), None
            time.sleep(max(0.0, LOOK_EVERY - (time.monotonic() - t0 - now)))
        assert proc.poll() is None, f"the daemon exited with {proc.returncode}"
        if influx_up_due is not None:
            victoria.start()
            run.influx_up_at = time.time()
        run.end = time.time()
        proc.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        run.exit_code = proc.wait(SHUTDOWN_GRACE + 10)
        run.stop_seconds = time.monotonic() - stopping
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        run.log = log_path.read_text(errors="replace")
    return run


# --- reading the daemon's log ---------------------------------------------------------------------

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+)\s+([\w.]+): (.*)$")


def log_events(text: str) -> Iterator[tuple[float, str, str, str]]:
    """(wall clock, level, logger, message) of every log line."""
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if m:
            at = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time, as logged
            yield at, m.group(2), m.group(3), m.group(4)


@dataclass(frozen=True)
class Recovery:
    alias: str
    back: float  # wall clock the device came back
    backoff: float  # [s] the last back-off logged for it before that
    took: float | None  # [s] until its next state message (None: none seen)
    next_fault: float  # wall clock of its next fault episode (inf: none)

    @property
    def bound(self) -> float:
        return self.backoff + RECOVERY_SLACK

    @property
    def interrupted(self) -> bool:
        """A new fault came before the device published again: the recovery cannot be judged."""
        return self.next_fault < self.back + (self.took if self.took is not None else self.bound)


def recoveries(run: Run, observer: Observer) -> list[Recovery]:
    by_id = {d.sim_id: d.alias for d in DEVICES}
    backoff: dict[str, float] = {}
    episodes: dict[str, list[float]] = {}  # alias -> start of every fault episode
    backs: list[tuple[str, float, float]] = []
    for at, _level, logger, message in log_events(run.log):
        if logger.startswith("batmon.dev.") and (m := re.search(r"retry in (\d+) s$", message)):
            backoff[logger.removeprefix("batmon.dev.")] = float(m.group(1))
        elif logger == "batmon.sim.faults" and (m := re.fullmatch(r"sim fault: (\S+) (\w+) for .*", message)):
            episodes.setdefault(by_id[m.group(1)], []).append(at)
        elif logger == "batmon.sim.faults" and (m := re.fullmatch(r"sim fault: (\S+) vanish over", message)):
            alias = by_id[m.group(1)]
            backs.append((alias, at, backoff.pop(alias, 0.0)))
    out = []
    for alias, at, waited in backs:
        later = [s.at for s in observer.counts.get(alias, []) if s.at > at]
        following = [t for t in episodes.get(alias, []) if t > at]
        out.append(Recovery(alias, at, waited, later[0] - at if later else None,
                            following[0] if following else math.inf))
    return out


# --- the test -----------------------------------------------------------------------------------------

def test_soak_under_faults(tmp_path: Path) -> None:
    seconds = MINUTES * 60
    with servers(tmp_path) as (broker, victoria):
        observer = Observer(broker, [d.alias for d in DEVICES]).start()
        try:
            run = soak(tmp_path, broker, victoria, seconds)
            time.sleep(0.5)
        finally:
            observer.stop()
        influx_points = [s for s in victoria.export() if any(t / 1000 > run.influx_up_at + 2 for t in s.timestamps)]
    summary: dict[str, Any] = {"minutes": MINUTES, "seed": SEED, "messages": observer.messages,
                               "broker_restarts": len(run.broker_down), "stop_seconds": round(run.stop_seconds, 2)}
    failures: list[str] = []

    # the daemon never crashed and stopped cleanly
    if run.exit_code != 0:
        failures.append(f"exit status {run.exit_code} after SIGTERM")
    if "Traceback" in run.log:
        failures.append("a traceback in the daemon's log")
    if "shutdown took longer" in run.log:
        failures.append("shutdown hit the grace limit")
    levels = [level for _, level, _, _ in log_events(run.log)]
    summary["log_lines"] = {lvl: levels.count(lvl) for lvl in sorted(set(levels))}
    episodes = [m for _, _, logger, m in log_events(run.log) if logger == "batmon.sim.faults" and "over" not in m]
    summary["fault_episodes"] = {k: sum(f" {k} for " in m for m in episodes)
                                 for k in ("disconnect", "corrupt", "splice", "junk", "slow", "vanish")}

    # healthy devices keep their rate (samples counted by the daemon, messages counted by the broker's subscriber)
    window_start = run.start + WARM_UP
    window = run.end - window_start
    outage = sum(min(b, run.end) - max(a, window_start) + 2 * PERIOD for a, b in run.broker_down)
    rates = {}
    for d in HEALTHY:
        seen = [s for s in observer.counts[d.alias] if s.at >= window_start]
        if len(seen) < 2:
            failures.append(f"{d.alias}: {len(seen)} sample counter message(s) after the warm-up")
            continue
        sample_rate = (seen[-1].value - seen[0].value) / (seen[-1].at - seen[0].at) * PERIOD
        message_rate = len(seen) / (window - outage) * PERIOD
        rates[d.alias] = (round(sample_rate, 3), round(message_rate, 3))
        if sample_rate < RATE_MIN or message_rate < MESSAGE_RATE_MIN:
            failures.append(f"{d.alias}: samples at {sample_rate:.2f}, messages at {message_rate:.2f} of the "
                            f"nominal rate")
        offline = [a for a, p in observer.availability[d.alias] if p == "offline" and window_start <= a < run.end]
        if offline:
            failures.append(f"{d.alias}: went offline {len(offline)} time(s)")
    summary["healthy_rates"] = rates

    # every published value was plausible; increasing meters never decreased
    summary["implausible"] = len(observer.implausible)
    for at, topic, payload, why in observer.implausible[:20]:
        failures.append(f"implausible {topic} = {payload!r} at {at - run.start:.1f} s: {why}")
    for alias, key, before, after in observer.decreases:
        failures.append(f"{alias}/{key} went down from {before} to {after}")
    summary["meter_values_seen"] = sum(len(v) for v in observer.meters.values())
    if not observer.meters:
        failures.append("no meter values seen")
    silent = [d.alias for d in FAULTY if not observer.counts[d.alias]]
    if silent:
        failures.append(f"faulty devices never published: {silent}")

    # memory does not grow
    skip, limit = (60.0, RSS_SLOPE_MAX) if seconds >= 300 else (seconds / 2, RSS_SLOPE_MAX_SHORT)
    points = [(t / 60, mb) for t, mb in run.rss if t >= skip]
    growth = slope(points) if len(points) >= 3 else 0.0
    summary["rss_mb"] = {"first": round(run.rss[0][1], 1), "peak": round(max(mb for _, mb in run.rss), 1),
                         "last": round(run.rss[-1][1], 1), "slope_mb_per_min": round(growth, 3)}
    if growth > limit:
        failures.append(f"RSS grows {growth:.2f} MB/min after the first {skip:.0f} s (limit {limit})")

    # devices that came back recovered within one back-off period
    rec = [r for r in recoveries(run, observer) if r.back + r.bound < run.end]
    judged = [r for r in rec if not r.interrupted]
    summary["recoveries"] = {
        "judged": len(judged), "interrupted_by_a_new_fault": len(rec) - len(judged),
        "slowest": max(((r.alias, r.backoff, round(r.took, 1)) for r in judged if r.took is not None),
                       key=lambda x: x[2], default=None),
        "most_of_bound": max((round(r.took / r.bound, 2) for r in judged if r.took is not None), default=None)}
    for r in judged:
        if r.took is None or r.took > r.bound:
            failures.append(f"{r.alias} came back at {r.back - run.start:.0f} s and published again after "
                            f"{r.took} s (bound {r.bound:.0f} s: back-off {r.backoff:.0f} s + {RECOVERY_SLACK:.0f} s)")

    # InfluxDB output recovered after the server's last restart
    summary["influx_series_after_last_restart"] = len(influx_points)
    if not influx_points:
        failures.append("no InfluxDB points written after the server's last restart")

    summary["rss_curve"] = [(round(t), round(mb, 1)) for t, mb in run.rss[::max(1, len(run.rss) // 20)]]
    (tmp_path / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\nsoak summary:", json.dumps(summary))
    assert not failures, "\n".join(failures)

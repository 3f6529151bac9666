"""The daemon killed with SIGKILL at random moments, many times: the meter file is always valid, meters
never go back, and what is lost is at most what was integrated since the last save (one save interval).

SIGKILL_RUNS (default 14) sets the number of kills; SIGKILL_SEED replays a run.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bmslib.meters import INCREASING, METER_FILE, METER_NAMES

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("SIGKILL_RUNS", "14"))
SAVE_INTERVAL = 0.5  # [s] --save-interval of the daemon under test
SLACK = 0.25  # [s] scheduling and the write itself (fsync), on a busy machine
ALIASES = ("k1", "k2", "kd", "kg")

OPTIONS = """\
devices:
  - {address: "sim:k1", type: jbd, alias: k1}
  - {address: "sim:k2", type: jbd, alias: k2}
  - {address: "battery", type: dummy, alias: kd}
  - {address: "k1, k2", type: group_parallel, alias: kg}
sample_period: 0.1
publish_period: 5
watchdog: false
"""

Totals = dict[str, dict[str, float]]


def totals(doc: Any) -> Totals:
    """The meters of every device in a state file document, checked to be complete and finite."""
    assert isinstance(doc, dict) and set(doc) == set(ALIASES), doc
    out: Totals = {}
    for alias, entry in doc.items():
        assert set(entry) == set(METER_NAMES), entry
        out[alias] = {name: entry[name]["reading"] for name in METER_NAMES}
        assert all(math.isfinite(v) for v in out[alias].values()), entry
    return out


def assert_not_below(now: Totals, before: Totals) -> None:
    for alias, meters in before.items():
        for name in INCREASING:
            assert now[alias][name] >= meters[name], (alias, name, before, now)


def load_time(log: str) -> float | None:
    """Wall time at which the daemon loaded its meter file (from its log line), if it got that far."""
    for line in log.splitlines():
        if "meter states restored" in line or "no meter states in" in line:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")  # local time, as logged
            return stamp.timestamp()
    return None


def start(tmp_path: Path, state: Path, save_interval: float, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(tmp_path / "options.yaml"),
                                 "--state-dir", str(state), "--save-interval", str(save_interval)],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)


def watch(path: Path, until: float, seen: list[tuple[float, Totals]]) -> None:
    """Poll the file until ``until`` (monotonic); record every version, each of which must be valid."""
    last = None
    while time.monotonic() < until:
        try:
            stat = path.stat()
        except FileNotFoundError:
            stat = None
        if stat is not None and stat.st_mtime_ns != last:
            last = stat.st_mtime_ns
            seen.append((time.monotonic(), totals(json.loads(path.read_bytes()))))
        time.sleep(0.005)


def test_meters_survive_sigkill_at_random_moments(tmp_path: Path) -> None:
    seed = int(os.environ.get("SIGKILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"SIGKILL_SEED={seed}")
    (tmp_path / "options.yaml").write_text(OPTIONS)
    state = tmp_path / "state"
    state.mkdir()
    path = state / METER_FILE
    highest: Totals = {}
    windows: list[float] = []
    for run in range(RUNS):
        log = tmp_path / f"run{run}.log"
        life = rng.uniform(0.05, 0.7) if rng.random() < 0.3 else rng.uniform(0.7, 2.5)  # some die while starting
        proc = start(tmp_path, state, SAVE_INTERVAL, log)
        seen: list[tuple[float, Totals]] = []
        watch(path, time.monotonic() + life, seen)
        proc.send_signal(signal.SIGKILL)
        killed_wall = time.time()
        assert proc.wait(10) == -signal.SIGKILL
        text = log.read_text()
        assert "Traceback" not in text and "could not use" not in text and "moved to" not in text, text

        loaded = load_time(text)
        if not path.exists():  # killed before the very first save
            assert not highest  # a file, once written, never disappears
            assert loaded is None or killed_wall - loaded <= SAVE_INTERVAL + SLACK, text
            continue
        now = totals(json.loads(path.read_bytes()))  # the file a restart finds: complete and valid
        for _, version in seen:
            assert_not_below(version, highest)  # every version written is at least the one before
            highest = version
        assert_not_below(now, highest)
        highest = now
        # what a restart loses: what was integrated after the last save of this run (or since it loaded)
        if loaded is not None:
            last_save = path.stat().st_mtime
            window = killed_wall - max(last_save, loaded)
            windows.append(window)
            assert window <= SAVE_INTERVAL + SLACK, (run, window, text)
    leftovers = sorted(p.name for p in state.iterdir() if p.name != METER_FILE and not p.name.startswith("bat_"))
    assert all(p.endswith(".tmp") for p in leftovers), leftovers  # never a .corrupt-* file
    assert windows, "no run lived long enough to load its state"
    print(f"{RUNS} kills; longest window of unsaved samples {max(windows):.3f} s (save interval {SAVE_INTERVAL} s)")

    # a clean stop saves at once, whatever the save interval; the totals carried over every kill
    before = highest
    proc = start(tmp_path, state, 3600.0, tmp_path / "final.log")
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    stopped_wall = time.time()
    assert proc.wait(10) == 0
    final = totals(json.loads(path.read_bytes()))
    assert path.stat().st_mtime >= stopped_wall - 0.05
    assert_not_below(final, before)
    moved = sum(final[a]["total_energy_charge"] + final[a]["total_energy_discharge"] for a in ALIASES)
    assert moved > sum(before[a]["total_energy_charge"] + before[a]["total_energy_discharge"] for a in ALIASES)
    assert not list(state.glob("*.tmp"))

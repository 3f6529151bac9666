"""The daemon end to end: N simulated devices, a real mosquitto on loopback, a subscriber that counts.

    .venv/bin/python bench/pipeline.py --devices 10 --seconds 60 [--period 1] [--types jbd,daly]
                                       [--response-time 0.05] [--json out.json]

Starts mosquitto (tests/mqtt_broker.py), a subscriber to the cycle states (for the latency), a
subscriber process to ``#`` (bench/_count.py, for the message rate), and the daemon as a process of its
own (bench/_daemon.py: ``main.py`` plus a frame trace and counters) with N ``sim:`` devices of the
given types in turn, sampled and published every ``--period`` seconds. After all devices have
delivered a sample and ``--warmup`` seconds more, it measures for ``--seconds`` and prints:

* samples/s and published samples/s (the daemon's own counters);
* MQTT messages/s as the counting subscriber receives them (states, availability, meters; discovery
  is sent at start, before the window);
* CPU time of the daemon process per published sample (user + sys from /proc/<pid>/stat over the
  window, in microseconds; the emulators run inside that process and are included);
* peak RSS of the daemon process (VmHWM, whole run);
* latency from the emulator handing the last chunk of a read's last frame to the host until the
  subscriber receives the published ``cycles`` state of that sample (p50, p99). Types that push
  frames on their own (JK streams one every second; a read takes the newest) are reported apart:
  for them the figure is the age of the data, which the stream period sets, not the pipeline.
* with ``--response-time``: the sample rate against the bound the link sets (every request waits
  that long for its answer, so a sample cannot take less than requests per sample x response time).

Figures only; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._measure import (  # noqa: E402
    cpu_times,
    index_frames,
    machine,
    match_latencies,
    memory_mb,
    percentile,
    read_stalls,
)
from bmslib.registry import device_types  # noqa: E402
from bmslib.sim.radio import sim_address  # noqa: E402
from bmslib.sim.trace import read_trace  # noqa: E402
from tests.mqtt_broker import Broker, Watcher  # noqa: E402

#: the default mix: every frame protocol whose frames carry a cycle count (the trace's frame number)
MIXED = ("jbd", "daly", "ant", "jk", "sok", "supervolt")
#: types whose device pushes frames on its own; their latency is the age of the data
STREAMING = frozenset({"jk", "jk_24s", "jk_32s", "jk04"})
CYCLES_TOPIC = "soc/num_cycles"


def device_list(n: int, types: list[str]) -> list[dict[str, Any]]:
    known = device_types()
    devices = []
    for i in range(n):
        t = types[i % len(types)]
        emulator = known[t].emulator
        address = f"sim:{t}{i}" if known[t].radio else f"bench {t} {i}"
        entry: dict[str, Any] = {"address": address, "type": t, "alias": f"{t}_{i}"}
        if emulator is not None:
            entry.update(emulator.demo_options)  # e.g. a key that matches the emulator's
        devices.append(entry)
    return devices


def started(proc: subprocess.Popen[bytes], path: Path, timeout: float) -> bool:
    """Wait for ``proc`` to write ``path`` (it does once it handles SIGUSR1; before that, the signal would
    kill it). False when it ended or did not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def ask(proc: subprocess.Popen[bytes], path: Path, timeout: float) -> dict[str, Any] | None:
    """SIGUSR1 to ``proc``, then the JSON it writes to ``path`` in answer (its "mono" not before the
    question); None when the process has ended. Raises RuntimeError when no answer comes in time."""
    asked = time.monotonic()
    proc.send_signal(signal.SIGUSR1)
    deadline = asked + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        with contextlib.suppress(OSError, ValueError):
            data: dict[str, Any] = json.loads(path.read_text())
            if data["mono"] >= asked:
                return data
        time.sleep(0.01)
    raise RuntimeError(f"no answer to SIGUSR1 within {timeout:g} s")


def end(proc: subprocess.Popen[bytes], grace: float) -> int:
    """SIGTERM, then SIGKILL if ``proc`` has not ended after ``grace`` seconds; its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


class Daemon:
    """The daemon process (bench/_daemon.py) and its counters."""

    def __init__(self, directory: Path, options: dict[str, Any], *, trace: bool, response_time: float,
                 compiled: bool) -> None:
        self.dir = directory
        self.options_file = directory / "options.json"
        self.options_file.write_text(json.dumps(options))
        self.stats_file = directory / "stats.json"
        self.trace_file = directory / "frames.trace" if trace else None
        self.log = directory / "daemon.log"
        cmd = [sys.executable, "-m", "bench._daemon", "--config", str(self.options_file),
               "--state-dir", str(directory), "--stats", str(self.stats_file),
               "--response-time", str(response_time)]
        if self.trace_file is not None:
            cmd += ["--trace", str(self.trace_file)]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        cwd = ROOT
        if compiled:  # as from an image with precompiled bytecode: a compiled copy of the code (the tree is left alone)
            cwd = directory / "app"
            for name in ("main.py", "mqtt_util.py"):
                cwd.mkdir(exist_ok=True)
                shutil.copy2(ROOT / name, cwd / name)
            for name in ("bmslib", "bench"):
                shutil.copytree(ROOT / name, cwd / name, ignore=shutil.ignore_patterns("__pycache__"))
            subprocess.run([sys.executable, "-m", "compileall", "-q", "."], cwd=cwd, check=True,
                           stdout=subprocess.DEVNULL)
        self.started = time.monotonic()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """Ask for the counters (SIGUSR1) and wait for the fresh file."""
        if not started(self.proc, self.stats_file, timeout=30.0):
            raise RuntimeError(f"the daemon did not start (exit status {self.proc.returncode}); see {self.log}:\n"
                               + self.log.read_text()[-3000:])
        data = ask(self.proc, self.stats_file, timeout)
        if data is None:
            raise RuntimeError(f"the daemon exited with {self.proc.returncode}; see {self.log}:\n"
                               + self.log.read_text()[-3000:])
        return data

    def stop(self) -> int:
        return end(self.proc, 15)


def wait_ready(daemon: Daemon, aliases: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stats = daemon.stats()
        missing = [a for a in aliases if stats["devices"].get(a, {}).get("samples", 0) < 1]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no sample within {timeout:g} s from {', '.join(missing[:5])}; see {daemon.log}")
        time.sleep(0.2)


class MessageCounter:
    """bench/_count.py: a subscriber to ``#`` in a process of its own; :meth:`read` asks it for
    (monotonic time, messages so far)."""

    def __init__(self, path: Path, broker: Broker, timeout: float = 10.0) -> None:
        self.path = path
        self.proc = subprocess.Popen([sys.executable, "-m", "bench._count", "--host", broker.host, "--port",
                                      str(broker.port), "--out", str(path)], cwd=ROOT, stdin=subprocess.DEVNULL)
        if not started(self.proc, path, timeout):  # written once the subscription is acknowledged
            self.stop()
            raise RuntimeError("the counting subscriber did not subscribe")

    def read(self, timeout: float = 5.0) -> tuple[float, int]:
        data = ask(self.proc, self.path, timeout)
        if data is None:
            raise RuntimeError(f"the counting subscriber exited with {self.proc.returncode}")
        return data["mono"], data["messages"]

    def stop(self) -> None:
        end(self.proc, 5)


def run(args: argparse.Namespace) -> dict[str, Any]:
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    known = device_types()
    for t in types:
        if t not in known:
            raise SystemExit(f"--types: unknown type {t!r}")
    devices = device_list(args.devices, types)
    aliases = [d["alias"] for d in devices]
    type_of = {d["alias"]: d["type"] for d in devices}
    addresses = {d["alias"]: sim_address(d["address"].removeprefix("sim:")).upper()
                 for d in devices if d["address"].startswith("sim:")}
    with tempfile.TemporaryDirectory(prefix="batmon-bench-") as tmp:
        directory = Path(tmp)
        broker = Broker(directory / "broker", extra_conf=("set_tcp_nodelay true",) if args.broker_nodelay else ())
        broker.start()
        # latency: a subscriber to the cycle states only, so that it is not busy with the other messages
        # when one arrives; the count of all messages comes from a subscriber process of its own
        watcher = Watcher(broker, topics=(f"+/{CYCLES_TOPIC}",)).start()
        counter: MessageCounter | None = None
        daemon: Daemon | None = None
        try:
            counter = MessageCounter(directory / "count", broker)
            options = {"devices": devices, "sample_period": args.period, "publish_period": args.period,
                       "keep_alive": True, **broker.options()}
            daemon = Daemon(directory, options, trace=not args.no_trace, response_time=args.response_time,
                            compiled=args.bytecode == "compiled")
            wait_ready(daemon, aliases, timeout=30 + args.devices)
            time.sleep(args.warmup)
            # the subscriber keeps every message: collections of this process would stall its network
            # thread (and delay receive times) for tens of milliseconds; nothing here makes cycles
            gc.disable()
            stall_file = directory / "stalls"
            probe = subprocess.Popen([sys.executable, "-m", "bench._probe", "--seconds", str(args.seconds + 0.5),
                                      "--out", str(stall_file)], cwd=ROOT, stdin=subprocess.DEVNULL)
            t0, cpu0, s0, m0 = time.monotonic(), cpu_times(daemon.pid), daemon.stats(), counter.read()
            time.sleep(args.seconds)
            t1, cpu1, s1, m1 = time.monotonic(), cpu_times(daemon.pid), daemon.stats(), counter.read()
            probe.wait(10)
            stalls = read_stalls(stall_file)
            memory = memory_mb(daemon.pid)
            messages = watcher.seen(since=t0)
            messages = [m for m in messages if m.at <= t1]
        finally:
            gc.enable()
            code = daemon.stop() if daemon is not None else None
            if counter is not None:
                counter.stop()
            watcher.stop()
            broker.stop()
        if code not in (0, None):
            print(f"warning: the daemon exited with {code}", file=sys.stderr)
        deliveries = list(read_trace(daemon.trace_file)) if daemon.trace_file is not None else []

    window = s1["mono"] - s0["mono"]
    samples = s1["samples"] - s0["samples"]
    publishes = s1["publishes"] - s0["publishes"]
    requests = s1["requests"] - s0["requests"]
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    cpu = user + system
    cycles_msgs = []
    for m in messages:
        alias, _, key = m.topic.partition("/")
        if key == CYCLES_TOPIC and alias in addresses:
            cycles_msgs.append((alias, m.payload, m.at))
    frames = index_frames(deliveries)
    latencies, unmatched = match_latencies(cycles_msgs, addresses, frames)
    timed = []  # (latency, received, alias) of the request/reply types
    for alias, payload, at in cycles_msgs:
        latencies_of = match_latencies([(alias, payload, at)], addresses, frames)[0].get(alias)
        if latencies_of and type_of[alias] not in STREAMING:
            timed.append((latencies_of[0], at, alias))
    slowest = [(round(lat * 1e3, 2), round(at - t0, 2), alias) for lat, at, alias in sorted(timed, reverse=True)[:8]]
    polled = [lat for lat, _, _ in timed]
    # messages whose way from the frame to the subscriber overlapped a stall of the whole machine
    clean = [lat for lat, at, _ in timed if not any(start < at and start + late > at - lat for start, late in stalls)]
    per_type: dict[str, list[float]] = collections.defaultdict(list)
    for a, xs in latencies.items():
        per_type[type_of[a]].extend(xs)
    result: dict[str, Any] = {
        "machine": machine(),
        "devices": args.devices, "types": dict(collections.Counter(type_of.values())),
        "period": args.period, "seconds": round(t1 - t0, 2), "response_time": args.response_time,
        "bytecode": args.bytecode, "broker_nodelay": args.broker_nodelay,
        "samples_per_s": samples / window, "published_per_s": publishes / window,
        "mqtt_messages_per_s": (m1[1] - m0[1]) / (m1[0] - m0[0]),
        "cpu_us_per_published": cpu / publishes * 1e6 if publishes else float("nan"),
        "cpu_percent": 100 * cpu / (t1 - t0), "cpu_user_s": user, "cpu_sys_s": system,
        "cpu_us_per_sample": cpu / samples * 1e6 if samples else float("nan"),
        "peak_rss_mb": memory.get("VmHWM"), "rss_mb": memory.get("VmRSS"),
        "latency_ms": {"n": len(polled), "p50": percentile(polled, 50) * 1e3, "p99": percentile(polled, 99) * 1e3,
                       "max": max(polled, default=float("nan")) * 1e3},
        "latency_by_type_ms": {t: {"n": len(xs), "p50": percentile(xs, 50) * 1e3, "p99": percentile(xs, 99) * 1e3}
                               for t, xs in sorted(per_type.items())},
        "latency_outside_stalls_ms": {"n": len(clean), "p50": percentile(clean, 50) * 1e3,
                                      "p99": percentile(clean, 99) * 1e3},
        "machine_stalls": {"n": len(stalls), "longest_ms": max((late for _, late in stalls), default=0.0) * 1e3},
        "unmatched_messages": unmatched,
        "slowest_ms_at_s": slowest, "window_start_s": round(t0 - daemon.started, 2),
        "requests_per_sample": requests / samples if samples else float("nan"),
    }
    if args.response_time > 0 and samples:
        bound = 1.0 / (result["requests_per_sample"] * args.response_time) * len(addresses)
        result["rate_bound_per_s"] = bound
        result["rate_of_bound_percent"] = 100 * result["samples_per_s"] / bound
    return result


def report(r: dict[str, Any]) -> str:
    mix = ", ".join(f"{t} x{n}" for t, n in r["types"].items())
    lat = r["latency_ms"]
    lines = [
        f"machine: {r['machine']}",
        f"{r['devices']} device(s) ({mix}), sample and publish period {r['period']:g} s, "
        f"measured {r['seconds']:g} s, bytecode: {r['bytecode']}, broker TCP_NODELAY: "
        f"{'on' if r.get('broker_nodelay') else 'off (mosquitto default)'}",
        f"samples/s                 {r['samples_per_s']:9.2f}   (published samples/s {r['published_per_s']:.2f})",
        f"MQTT messages/s           {r['mqtt_messages_per_s']:9.1f}   (received by a subscriber to #)",
        f"CPU per published sample  {r['cpu_us_per_published']:9.0f} us (daemon process user+sys; "
        f"{r['cpu_percent']:.2f} % of one core; user {r['cpu_user_s']:.2f} s, sys {r['cpu_sys_s']:.2f} s; "
        f"{r['cpu_us_per_sample']:.0f} us per sample)",
        f"peak RSS (VmHWM)          {r['peak_rss_mb']:9.1f} MB (RSS at the end {r['rss_mb']:.1f} MB)",
    ]
    if lat["n"]:
        lines.append(f"latency frame -> broker   p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
                     f"max {lat['max']:.2f} ms (n={lat['n']}, request/reply types)")
    else:
        lines.append("latency frame -> broker   n/a (no traced request/reply device)")
    st, clean = r["machine_stalls"], r["latency_outside_stalls_ms"]
    lines.append(f"machine stalls            {st['n']} (an idle probe process woke > 10 ms late; longest "
                 f"{st['longest_ms']:.1f} ms)")
    if st["n"] and clean["n"]:
        lines.append(f"  latency outside them    p50 {clean['p50']:.2f} ms, p99 {clean['p99']:.2f} ms (n={clean['n']})")
    for t, v in r["latency_by_type_ms"].items():
        note = " (streaming: age of the newest frame when read)" if t in STREAMING else ""
        lines.append(f"  {t:<10} p50 {v['p50']:8.2f} ms, p99 {v['p99']:8.2f} ms (n={v['n']}){note}")
    if r["unmatched_messages"]:
        lines.append(f"  ({r['unmatched_messages']} cycles messages matched no frame)")
    if "rate_bound_per_s" in r:
        lines.append(f"rate vs link bound        {r['samples_per_s']:.2f} of {r['rate_bound_per_s']:.2f} samples/s "
                     f"= {r['rate_of_bound_percent']:.1f} % ({r['requests_per_sample']:.2f} requests per sample, "
                     f"{r['response_time'] * 1e3:g} ms each)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="batmon end to end: samples/s, MQTT messages/s, CPU per sample, "
                                "peak RSS, frame-to-broker latency")
    p.add_argument("--devices", type=int, default=10, help="simulated devices (default 10)")
    p.add_argument("--seconds", type=float, default=60.0, help="measurement window (default 60)")
    p.add_argument("--period", type=float, default=1.0, help="sample_period = publish_period (default 1 s)")
    p.add_argument("--types", default=",".join(MIXED),
                   help=f"device types, used in turn (default {','.join(MIXED)}; 'dummy' has no radio)")
    p.add_argument("--response-time", type=float, default=0.0,
                   help="every simulated device waits this long before each answer [s]")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds after every device's first sample")
    p.add_argument("--broker-nodelay", action="store_true",
                   help="the broker sets TCP_NODELAY on its sockets (mosquitto's set_tcp_nodelay; off by default)")
    p.add_argument("--no-trace", action="store_true", help="no frame trace (no latency figures)")
    p.add_argument("--bytecode", choices=("source", "compiled"), default="source",
                   help="source: the daemon compiles its modules at start (PYTHONDONTWRITEBYTECODE, as the add-on "
                   "image does); compiled: from precompiled bytecode (default source)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    result = run(args)
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

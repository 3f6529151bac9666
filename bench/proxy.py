"""Devices through one ESPHome Bluetooth proxy next to the same devices on the direct simulated radio.

    .venv/bin/python bench/proxy.py [--devices 3,6] [--seconds 30] [--period 1] [--slots 3] [--types jbd]
                                    [--json out.json]

For each device count N and each ``keep_alive`` (true, false) it runs two scenarios, one after the other
in one run, each in a process of its own (the figures of one do not leak into the next):

* ``direct``: N ``sim:`` devices, read by the App through bleak on the simulated radio;
* ``proxy``: the same N simulated devices (same ids, batteries and types) on a radio that only a simulated
  ESPHome node (bmslib/sim/esphome) with ``--slots`` connection slots bridges; the App is configured as a
  user with a proxy configures it (``ble_stack: esphome``, one ``bluetooth_proxies`` entry on a loopback
  port, the devices by MAC address) and reads them through aioesphomeapi, bleak-esphome and habluetooth.

Every scenario runs the real App with the user's defaults (serial sampling) and no sink, so the figures are
those of the read path. After every device has delivered a sample (or ``--settle`` seconds) and
``--warmup`` seconds more, it counts each device's samples over ``--seconds`` and prints:

* samples/s per device (min, mean, max over the devices; a device that was starved shows as min 0);
* CPU time of the process per sample (user + sys over the window, in microseconds). The emulators, and in
  ``proxy`` the node with its native API server, run inside that process: both sides of the link are in
  the figure, as both sides of the simulated radio are in ``direct``.

Figures only; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._measure import cpu_times, machine  # noqa: E402
from bmslib.app import App, make_emulator  # noqa: E402
from bmslib.config import parse_config  # noqa: E402
from bmslib.registry import device_types, type_infos  # noqa: E402
from bmslib.sim.radio import SimRadio  # noqa: E402

MODES = ("direct", "proxy")


def device_entries(n: int, types: list[str], keep_alive: bool) -> list[dict[str, Any]]:
    return [{"address": f"sim:{types[i % len(types)]}{i}", "type": types[i % len(types)],
             "alias": f"{types[i % len(types)]}_{i}", "keep_alive": keep_alive} for i in range(n)]


async def measure(mode: str, n: int, keep_alive: bool, *, types: list[str], seconds: float, period: float,
                  slots: int, settle: float, warmup: float) -> dict[str, Any]:
    """One scenario in this process: its figures."""
    known = device_types()
    devices = device_entries(n, types, keep_alive)
    options: dict[str, Any] = {"devices": devices, "sample_period": period, "publish_period": period}
    radio: SimRadio | None = None
    node: Any = None
    if mode == "proxy":
        from bmslib.sim.esphome.node import EsphomeNode  # noqa: PLC0415  (the direct scenario leaves it out)

        radio = SimRadio()
        for d in devices:
            sim_id = d["address"].removeprefix("sim:")
            radio.add(make_emulator(known[d["type"]], sim_id, random.Random(sim_id)), sim_id=sim_id)
            d["address"] = radio.emulators[-1].address  # by MAC, as a user configures it
        node = EsphomeNode(radio, name="bench-proxy")
        node.knobs.slots = slots
        await node.start()
        options.update(ble_stack="esphome",
                       bluetooth_proxies=[{"host": node.host, "port": node.port, "name": "bench-proxy"}])
    config = parse_config(options, source="bench", env={}, types=type_infos(known))
    app = App(config, sinks=[])
    statuses = [rt.status for rt in app.devices.values()]
    task = asyncio.create_task(app.run())
    try:
        deadline = time.monotonic() + settle
        while any(s.samples == 0 for s in statuses) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        unsettled = sum(1 for s in statuses if s.samples == 0)
        await asyncio.sleep(warmup)
        first = [s.samples for s in statuses]
        pid = os.getpid()
        cpu0, start = sum(cpu_times(pid)), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, elapsed = sum(cpu_times(pid)), time.monotonic() - start
        counts = [s.samples - f for s, f in zip(statuses, first, strict=True)]
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 60)
        if node is not None:
            await node.stop()
        if radio is not None:
            await radio.aclose()
    rates = [c / elapsed for c in counts]
    total = sum(counts)
    return {"mode": mode, "devices": n, "keep_alive": keep_alive, "seconds": elapsed,
            "rate_min": min(rates), "rate_mean": sum(rates) / n, "rate_max": max(rates), "samples": total,
            "cpu_us_per_sample": (cpu1 - cpu0) / total * 1e6 if total else float("nan"),
            "not_read_at_start": unsettled}


def run_scenario(mode: str, n: int, keep_alive: bool, args: argparse.Namespace) -> dict[str, Any]:
    """One scenario in a process of its own; its figures."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--scenario", f"{mode},{n},{int(keep_alive)}",
           "--seconds", str(args.seconds), "--period", str(args.period), "--slots", str(args.slots),
           "--types", args.types, "--settle", str(args.settle), "--warmup", str(args.warmup)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=args.seconds + args.settle + args.warmup + 180)
    if proc.returncode != 0:
        raise RuntimeError(f"scenario {mode} {n} keep_alive={keep_alive} failed:\n{proc.stdout}{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"machine: {machine()}",
             f"command: bench/proxy.py --devices {args.devices} --seconds {args.seconds:g} --period {args.period:g} "
             f"--slots {args.slots} --types {args.types}",
             f"sample_period {args.period:g} s, serial sampling, one proxy with {args.slots} connection slots",
             "",
             f"{'devices':>7}  {'keep_alive':>10}  {'path':>6}  {'samples/s per device (min/mean/max)':>36}  "
             f"{'CPU per sample':>14}  not read at start"]
    for r in results:
        rates = f"{r['rate_min']:.3f} / {r['rate_mean']:.3f} / {r['rate_max']:.3f}"
        lines.append(f"{r['devices']:>7}  {str(r['keep_alive']).lower():>10}  {r['mode']:>6}  {rates:>36}  "
                     f"{r['cpu_us_per_sample']:>11.0f} µs  {r['not_read_at_start']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", default="3,6", help="device counts, comma-separated (default 3,6)")
    p.add_argument("--seconds", type=float, default=30.0, help="measurement window per scenario (default 30)")
    p.add_argument("--period", type=float, default=1.0, help="sample_period = publish_period (default 1 s)")
    p.add_argument("--slots", type=int, default=3, help="the proxy's connection slots (default 3, an ESP32's)")
    p.add_argument("--types", default="jbd", help="device types, used in turn (default jbd)")
    p.add_argument("--settle", type=float, default=60.0,
                   help="at most this long for every device's first sample (default 60 s)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds after that before measuring (default 3)")
    p.add_argument("--keep-alive", default="true,false", help="keep_alive values to run (default true,false)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--scenario", help=argparse.SUPPRESS)  # mode,n,keep_alive: one scenario, JSON on stdout
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    types = args.types.split(",")
    if args.scenario:
        mode, n, keep = args.scenario.split(",")
        result = asyncio.run(measure(mode, int(n), keep == "1", types=types, seconds=args.seconds,
                                     period=args.period, slots=args.slots, settle=args.settle, warmup=args.warmup))
        print(json.dumps(result))
        return 0
    results = []
    for n in (int(x) for x in args.devices.split(",")):
        for keep_alive in (v.strip() == "true" for v in args.keep_alive.split(",")):
            for mode in MODES:  # side by side: direct, then the same devices through the proxy
                results.append(run_scenario(mode, n, keep_alive, args))
                print(f"  {mode} {n} keep_alive={str(keep_alive).lower()}: done", file=sys.stderr, flush=True)
    print(report(results, args))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Serial sampling's fairness: a healthy simulated JBD's sample rate alone and beside faulty ones.

    .venv/bin/python bench/fairness.py [--seconds 40] [--period 1]

Each scenario runs the App in process (serial sampling, ``concurrent_sampling: false``) with the real JBD
driver talking through bleak to emulators on the simulated radio; the faulty devices get their faults
from their addresses, as a user would set them (``sim:mute0?mute=1``). The healthy device is counted over
``--seconds`` from its first sample (connecting is left out). Scenarios: alone; beside a mute device
(connected, never answers); beside a hidden one (never found: a dead BMS); beside a slow one (every reply
late by ``--slow`` seconds); beside all of them at once with three mute ones (``mixed``). Prints samples/s
per scenario and the ratio to the rate alone.

Figures only; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bmslib.app import App
from bmslib.config import parse_config
from bmslib.registry import device_types, type_infos

SCENARIOS = {"alone": (), "mute": ("mute",), "hidden": ("hidden",), "slow": ("slow",),
             "mixed": ("mute", "mute", "mute", "hidden", "slow")}
KNOBS = {"mute": "mute=1", "hidden": "hidden=1", "slow": "latency={slow}"}  # the address's fault knobs


async def healthy_rate(faults: tuple[str, ...], *, seconds: float, period: float,
                       slow: float) -> tuple[float, str]:
    """Samples/s of the device "good" over ``seconds``, beside one device per fault in ``faults``; and what
    the others did (samples and failed attempts of each, for a look that the faults took effect)."""
    devices = [{"address": f"sim:{fault}{i}?{KNOBS[fault].format(slow=slow)}", "type": "jbd",
                "alias": f"{fault}{i}"} for i, fault in enumerate(faults)]  # the faulty ones first: they ask first
    devices.append({"address": "sim:good", "type": "jbd", "alias": "good"})
    data: dict[str, Any] = {"devices": devices, "sample_period": period, "publish_period": period,
                            "concurrent_sampling": False}
    app = App(parse_config(data, source="bench", env={}, types=type_infos(device_types())), sinks=[])
    status = app.devices["good"].status
    task = asyncio.create_task(app.run())
    try:
        while status.samples == 0:  # noqa: ASYNC110  (no event marks the first sample; 10 ms polls)
            await asyncio.sleep(0.01)
        first, start = status.samples, time.monotonic()
        await asyncio.sleep(seconds)
        rate = (status.samples - first) / (time.monotonic() - start)
        others = ", ".join(f"{rt.status.alias} {rt.status.samples}/{rt.status.errors}"
                           for rt in app.devices.values() if rt.status is not status)
        return rate, others
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--period", type=float, default=1.0)
    ap.add_argument("--slow", type=float, default=0.4, help="[s] reply latency of the slow device")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"some of {', '.join(SCENARIOS)}")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    alone: float | None = None
    print(f"serial sampling, sample_period {args.period:g} s, {args.seconds:g} s per scenario")
    for name in args.scenarios.split(","):
        rate, others = asyncio.run(healthy_rate(SCENARIOS[name], seconds=args.seconds,
                                        period=args.period, slow=args.slow))
        if alone is None and name == "alone":
            alone = rate
        ratio = f"{rate / alone:6.1%} of alone" if alone else ""
        beside = f"  (others, samples/failures: {others})" if others else ""
        print(f"{name:>8}: healthy {rate:6.3f} samples/s  {ratio}{beside}", flush=True)


if __name__ == "__main__":
    main()

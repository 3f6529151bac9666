"""The daemon as the pipeline benchmark runs it: ``python -m bench._daemon --config FILE ...``.

The same as ``main.py --config FILE`` (options file, logging, the App with main.py's sinks, SIGTERM
for a clean stop), with three additions the benchmark needs and the daemon has no option for:

* ``--trace FILE``: the simulated radio numbers the emulators' frames and logs their delivery
  (:mod:`bmslib.sim.trace`), so the benchmark can time each frame to the broker;
* ``--response-time S``: every emulator waits this long before it answers (a slow BLE link);
* ``--stats FILE``: the counters (samples, published samples, requests the emulators received) as
  JSON, with the monotonic time they were taken at; written once SIGUSR1 is handled, then at every
  SIGUSR1.

It is started by bench/pipeline.py, which measures this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from bmslib.app import App
from bmslib.cli import freeze_startup_objects, load_app_config, setup_logging
from bmslib.device import DeviceStatus
from bmslib.model import Sample
from bmslib.publishing import QUIET, Decision
from bmslib.sim.radio import SimRadio
from bmslib.sim.trace import FrameTrace
from bmslib.sinks.base import Sink
from main import SINK_FACTORIES

_LOG = logging.getLogger("batmon.bench")


class CountingSink(Sink):
    """Counts samples and published samples (two integer increments per call)."""

    name = "bench-counter"

    def __init__(self) -> None:
        self.samples = 0
        self.publishes = 0

    def on_sample(self, device: DeviceStatus, sample: Sample, decision: Decision = QUIET) -> None:
        self.samples += 1
        if decision.published is not None:
            self.publishes += 1


def write_stats(path: Path, app: App, counter: CountingSink, radio: SimRadio) -> None:
    stats = {
        "mono": time.monotonic(),
        "samples": counter.samples,
        "publishes": counter.publishes,
        "requests": sum(em.requests for em in radio.emulators),
        "devices": {alias: {"samples": rt.status.samples, "errors": rt.status.errors}
                    for alias, rt in app.devices.items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(stats))
    os.replace(tmp, path)


async def run(args: argparse.Namespace) -> int:
    config = load_app_config(args.config, demo=False)
    trace = FrameTrace(Path(args.trace)) if args.trace else None
    radio = SimRadio(trace=trace)
    app = App(config, radio=radio, state_dir=Path(args.state_dir), sink_factories=SINK_FACTORIES)
    for em in radio.emulators:
        em.faults.latency = args.response_time
    counter = CountingSink()
    app.sinks.append(counter)
    freeze_startup_objects()  # as main.py does
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, app.request_stop)
    loop.add_signal_handler(signal.SIGINT, app.request_stop)
    if args.stats:
        loop.add_signal_handler(signal.SIGUSR1, write_stats, Path(args.stats), app, counter, radio)
        write_stats(Path(args.stats), app, counter, radio)  # the file exists: SIGUSR1 is handled from now on
    _LOG.info("bench daemon: %d device(s)%s", len(app.devices), ", tracing frames" if trace else "")
    try:
        return await app.run()
    finally:
        if trace is not None:
            trace.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--trace")
    p.add_argument("--stats")
    p.add_argument("--response-time", type=float, default=0.0)
    args = p.parse_args()
    setup_logging(False)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())

"""Simulator knobs in a device's address (``sim:<id>?mute=1``) act on the App's simulated devices: drivers,
the transport and bleak are the real ones, talking to the emulators over the simulated radio."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import pytest

from bmslib.app import App
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.config import AppConfig, parse_config
from bmslib.registry import device_types, type_infos
from bmslib.sim.emulator import Emulator
from bmslib.sim.faults import DeviceFaults
from bmslib.sim.knobs import set_faults
from bmslib.sim.radio import SimRadio
from tests.sim_helpers import add_emulator, app_running, fast_types
from tests.test_app import RecordingSink


def config(devices: list[dict[str, Any]], **options: Any) -> AppConfig:
    data = {"devices": devices, "sample_period": 0.2, "publish_period": 0.2, "concurrent_sampling": True, **options}
    return parse_config(data, source="test", env={}, types=type_infos(fast_types()))


def jbd(address: str, alias: str) -> dict[str, Any]:
    return {"address": address, "type": "jbd", "alias": alias}


def emulator(app: App, sim_id: str) -> Emulator:
    assert app.radio is not None
    em = app.radio.by_sim_id(sim_id)
    assert em is not None
    return em


async def run_app(cfg: AppConfig, seconds: float, *, fast: bool = True) -> tuple[App, RecordingSink]:
    sink = RecordingSink()
    app = App(cfg, types=fast_types() if fast else device_types(), sinks=[sink])
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(seconds)
    return app, sink


async def test_a_mute_device_gets_requests_and_never_answers() -> None:
    app, sink = await run_app(config([jbd("sim:good", "good"), jbd("sim:quiet?mute=1", "quiet")]), 2.0)
    quiet = emulator(app, "quiet")
    assert quiet.faults.mute and not emulator(app, "good").faults.mute
    assert quiet.connections >= 1 and quiet.requests >= 1  # connected and asked, no reply
    assert not sink.times("quiet") and app.devices["quiet"].status.errors >= 1
    assert len(sink.times("good")) >= 5


async def test_latency_delays_every_reply() -> None:
    cfg = config([jbd("sim:fast", "fast"), jbd("sim:slow?latency=0.4", "slow")])
    app, sink = await run_app(cfg, 3.0, fast=False)
    slow, fast = sink.times("slow"), sink.times("fast")
    assert len(slow) >= 2 and len(fast) >= 8
    per_sample = emulator(app, "slow").requests / len(slow)  # requests (each answered after 0.4 s) per sample
    assert min(b - a for a, b in itertools.pairwise(slow)) >= 0.4 * int(per_sample) - 0.05
    assert max(b - a for a, b in itertools.pairwise(fast[1:])) < 0.4


async def test_a_hidden_device_is_never_found() -> None:
    cfg = config([jbd("sim:good", "good"), jbd("sim:gone?hidden=1", "gone")])
    sink = RecordingSink()
    app = App(cfg, types=fast_types(), sinks=[sink])
    for rt in app.devices.values():
        rt.driver.transport.scan_timeout = 0.5  # type: ignore[attr-defined]
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(1.5)
    gone = emulator(app, "gone")
    assert gone.connections == 0 and not sink.times("gone")
    assert "not found" in (app.devices["gone"].status.last_error or "")
    assert sink.times("good")


async def test_drop_after_drops_the_link_once_and_the_device_comes_back() -> None:
    app, sink = await run_app(config([jbd("sim:flaky?drop_after=3&drop_mid_frame=1", "flaky")],
                                     keep_alive=True), 3.0)
    flaky = emulator(app, "flaky")
    assert flaky.connections == 2  # dropped once, reconnected
    assert flaky.faults.disconnect_after is None  # used up
    assert len(sink.times("flaky")) >= 3


@pytest.mark.parametrize("knobs", ["corrupt_chunk=1&corrupt_to=255", "drop_chunk=1"])
async def test_corrupt_or_lost_chunks_give_no_sample(knobs: str) -> None:
    app, sink = await run_app(config([jbd(f"sim:bad?{knobs}", "bad")]), 1.5)
    assert emulator(app, "bad").requests >= 1
    assert not sink.times("bad") and app.devices["bad"].status.errors >= 1


async def test_junk_before_replies_is_skipped() -> None:
    app, sink = await run_app(config([jbd("sim:noisy?junk=1", "noisy")]), 1.5)
    assert emulator(app, "noisy").faults.junk == 1.0
    assert len(sink.times("noisy")) >= 3


async def test_knobs_of_a_device_already_on_a_given_radio_are_applied_too() -> None:
    radio = SimRadio()
    em = add_emulator(radio, JbdEmulator, "pre")
    App(config([jbd("sim:pre?latency=0.2&connect_delay=0.1", "pre")]), types=fast_types(), radio=radio,
        sinks=[RecordingSink()])
    assert (em.faults.latency, em.faults.connect_delay) == (0.2, 0.1)


async def test_random_fault_episodes_end_with_the_knobs_the_address_set() -> None:
    radio = SimRadio()
    em = add_emulator(radio, JbdEmulator, "dev1")
    set_faults(em.faults, (("latency", 0.25), ("drop_after", 99), ("junk", 0.5)))
    runner = DeviceFaults("dev1", em, random.Random(3), gap=0.01)
    runner._pause = lambda s, stop: asyncio.sleep(0)  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await task
    await radio.aclose()
    assert (em.faults.latency, em.faults.junk, em.faults.mute, em.faults.hidden) == (0.25, 0.5, False, False)
    assert em.faults.disconnect_after is None  # a one-time drop is not re-armed

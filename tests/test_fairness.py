"""Serial sampling is fair: a device that does not answer (or answers slowly) does not slow the healthy ones.

The devices are simulated JBDs read by the real driver through bleak over the simulated radio. The assertions
count samples over a window with wide margins: they hold on a loaded machine, and fail when a mute device
holds the read slot for its whole request timeout (5 s) as it once did.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from bmslib.app import App
from bmslib.config import AppConfig, parse_config
from bmslib.read_slot import ReadSlot, slot_lease
from bmslib.registry import device_types, type_infos
from bmslib.sampler import ERRORS_BEFORE_RECONNECT, SamplerPolicy
from bmslib.sim.emulator import Emulator
from tests.sim_helpers import app_running, fast_types

PERIOD = 0.5  # [s]
WINDOW = 10.0  # [s]: a healthy device alone reads about 20 times


def serial_config(aliases: list[str], period: float = PERIOD, knobs: dict[str, str] | None = None) -> AppConfig:
    """Simulated JBDs, read in turn; ``knobs``: an alias's fault knobs, in its address as a user sets them."""
    knobs = knobs or {}
    devices = [{"address": f"sim:{a}" + (f"?{knobs[a]}" if a in knobs else ""), "type": "jbd", "alias": a}
               for a in aliases]
    data: dict[str, Any] = {"devices": devices,
                            "sample_period": period, "publish_period": period, "concurrent_sampling": False}
    return parse_config(data, source="test", env={}, types=type_infos(device_types()))


async def samples_in_window(app: App, alias: str) -> int:
    """Samples of ``alias`` over :data:`WINDOW` seconds from its first sample (connecting is not counted: a
    mute device's set-up request holds the connect slot once, at start)."""
    status = app.devices[alias].status
    async with asyncio.timeout(20):
        while status.samples == 0:
            await asyncio.sleep(0.05)
    first = status.samples
    await asyncio.sleep(WINDOW)
    return status.samples - first


def emulator(app: App, alias: str) -> Emulator:
    assert app.radio is not None
    em = app.radio.by_sim_id(alias)
    assert em is not None
    return em


async def test_a_mute_device_does_not_slow_a_healthy_one() -> None:
    # mute first: it takes the read slot first
    app = App(serial_config(["mute", "good"], knobs={"mute": "mute=1"}), sinks=[])
    assert app.devices["mute"].sampler.policy.read_timeout >= 10  # the real JBD driver: 5 s per request
    assert emulator(app, "mute").faults.mute
    async with app_running(app, stop_timeout=20):
        good = await samples_in_window(app, "good")
    mute = app.devices["mute"].status
    assert mute.samples == 0 and mute.errors >= 1
    assert good >= 12, good  # about 20; when each mute read held the slot for 5 s, 3


async def test_a_healthy_device_keeps_its_rate_beside_several_mute_and_a_slow_one() -> None:
    app = App(serial_config(["mute1", "mute2", "mute3", "slow", "good"]), sinks=[])
    for alias in ("mute1", "mute2", "mute3"):
        emulator(app, alias).faults.mute = True
    emulator(app, "slow").faults.latency = 0.6  # each request: a read takes over 1 s, longer than the lease
    async with app_running(app, stop_timeout=20):
        good = await samples_in_window(app, "good")
    status = {alias: rt.status for alias, rt in app.devices.items()}
    assert all(status[a].samples == 0 and status[a].errors >= 1 for a in ("mute1", "mute2", "mute3"))
    assert status["slow"].samples >= 3 and status["slow"].errors == 0  # slow, but still read
    assert good >= 12, good


async def test_a_device_that_recovers_is_read_again_within_the_backoff_cap() -> None:
    data: dict[str, Any] = {"devices": [{"address": "sim:b1", "type": "jbd", "alias": "b1"}],
                            "sample_period": 0.1, "publish_period": 0.1}
    app = App(parse_config(data, source="test", env={}, types=type_infos(fast_types())), types=fast_types(), sinks=[])
    sampler = app.devices["b1"].sampler
    sampler.policy = dataclasses.replace(sampler.policy, read_backoff_cap=1.0)
    em = emulator(app, "b1")
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(0.5)
        em.faults.mute = True
        await asyncio.sleep(4.0)  # several failures: the back-off reaches its cap (1 s here)
        failures = sampler.status.consecutive_errors
        assert failures > ERRORS_BEFORE_RECONNECT
        before = sampler.status.samples
        em.faults.mute = False
        await asyncio.sleep(1.0 + 1.5)  # the cap, one read timeout (0.9 s) and a margin
        assert sampler.status.samples > before
        assert sampler.status.consecutive_errors == 0


def test_read_backoff_doubles_after_the_reconnect_and_is_capped() -> None:
    policy = SamplerPolicy(period=1.0, keep_alive=True)
    waits = [policy.read_backoff(n) for n in range(1, 12)]
    assert waits[:ERRORS_BEFORE_RECONNECT] == [1.0] * ERRORS_BEFORE_RECONNECT
    assert waits[ERRORS_BEFORE_RECONNECT:] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert SamplerPolicy(period=120.0, keep_alive=True).read_backoff(9) == 120.0  # never below one period


def test_the_lease_is_half_a_period_and_at_most_five_seconds() -> None:
    assert slot_lease(1.0) == 0.5
    assert slot_lease(60.0) == 5.0


async def test_the_slot_goes_first_come_first_served_and_passes_on_when_the_lease_runs_out() -> None:
    slot = ReadSlot(lease=0.2)
    order: list[str] = []

    async def read(name: str, seconds: float) -> None:
        async with slot.hold():
            order.append(name)
            await asyncio.sleep(seconds)
        order.append(f"{name} done")

    mute = asyncio.create_task(read("mute", 5.0))  # holds on past its lease
    await asyncio.sleep(0)
    others = [asyncio.create_task(read(n, 0.01)) for n in ("a", "b", "c")]
    await asyncio.wait_for(asyncio.gather(*others), 2.0)  # not after the mute read's 5 s
    assert order[:1] == ["mute"] and [x for x in order if x in "abc"] == ["a", "b", "c"]
    assert slot.overruns == 1
    mute.cancel()
    async with asyncio.timeout(1.0), slot.hold():  # a cancelled holder leaves the slot free
        pass

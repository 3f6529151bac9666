"""How the sampler handles errors: the BmsError family in one place (log line, status, counters, back-off,
reconnect), and anything else as a bug that is logged with its traceback without ending sampling."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import ClassVar

import pytest

from bmslib.ble.backend import BleBackend
from bmslib.device import DeviceStatus
from bmslib.drivers.base import Driver
from bmslib.errors import BmsAuthError, BmsError, DeviceNotFoundError, GattAuthError, GattError
from bmslib.model import Reading, Sample
from bmslib.sampler import ERRORS_BEFORE_RECONNECT, DeviceSampler, SamplerPolicy
from tests.sim_helpers import device_config

READING: Reading = {"voltage": 13.3, "current": 1.0, "soc": 50.0}


class ScriptedDriver(Driver):
    """Connects and reads as scripted: each entry is an exception to raise, or None to succeed."""

    switches: ClassVar[frozenset[str]] = frozenset({"charge"})

    def __init__(self) -> None:
        log = logging.LoggerAdapter(logging.getLogger("test.sampler"), {})
        super().__init__(device_config("dummy"), address="dev1", backend=BleBackend(), log=log)
        self.connects: deque[BaseException | None] = deque()
        self.reads: deque[BaseException | None] = deque()
        self.read_delay = 0.0
        self.connected = False
        self.connect_attempts = 0
        self.disconnects = 0

    @property
    def is_connected(self) -> bool:
        return self.connected

    async def connect(self) -> None:
        self.connect_attempts += 1
        if self.connects and (exc := self.connects.popleft()) is not None:
            raise exc
        self.connected = True

    async def disconnect(self) -> None:
        self.connected = False
        self.disconnects += 1

    async def read(self) -> Reading:
        await asyncio.sleep(self.read_delay)
        if self.reads and (exc := self.reads.popleft()) is not None:
            raise exc
        return dict(READING)  # type: ignore[return-value]

    async def set_switch(self, name: str, on: bool) -> None:
        raise GattError(f"write {name}", "Operation failed")


def make_sampler(driver: ScriptedDriver, *, keep_alive: bool = True, read_timeout: float = 1.0,
                 clock: list[float] | None = None) -> tuple[DeviceSampler, deque[Sample]]:
    """The sampler, and the samples its cycles read (those not yet yielded by ``samples()``)."""
    now = clock if clock is not None else [0.0]
    sampler = DeviceSampler(driver, DeviceStatus(alias="dev1", type="dummy", address="dev1", switches=driver.switches),
                            SamplerPolicy(period=0.05, keep_alive=keep_alive, read_timeout=read_timeout),
                            log=driver.log, connect_lock=asyncio.Lock(), read_slot=None, clock=lambda: now[0])
    return sampler, sampler._fresh


async def test_read_errors_are_recorded_logged_once_and_reconnect_after_a_few(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test.sampler")
    drv = ScriptedDriver()
    drv.reads.extend([GattError("read x", "Operation failed")] * ERRORS_BEFORE_RECONNECT)
    sampler, samples = make_sampler(drv, keep_alive=False)
    assert await sampler.cycle() is None
    assert sampler.status.last_error == "read x failed: Operation failed" and sampler.status.consecutive_errors == 1
    sampler.policy = SamplerPolicy(period=0.05, keep_alive=True)
    await drv.connect()
    for _ in range(ERRORS_BEFORE_RECONNECT - 1):
        assert await sampler.cycle() is None
    assert sampler.status.errors == ERRORS_BEFORE_RECONNECT and not drv.is_connected
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["read failed: read x failed: Operation failed"]  # once, not once per read
    assert any(f"{ERRORS_BEFORE_RECONNECT} reads failed in a row; reconnecting" in r.getMessage()
               for r in caplog.records)
    await drv.connect()
    assert await sampler.cycle() is not None and len(samples) == 1
    assert sampler.status.consecutive_errors == 0
    assert any(r.getMessage() == "reading again after: read x failed: Operation failed" for r in caplog.records)


async def test_a_read_over_the_samplers_own_timeout_says_so() -> None:
    drv = ScriptedDriver()
    drv.read_delay = 0.3
    sampler, _ = make_sampler(drv, read_timeout=0.1)
    await drv.connect()
    assert await sampler.cycle() is None
    assert sampler.status.last_error == "read took longer than 0.1 s"


async def test_connect_errors_back_off_with_a_line_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test.sampler")
    drv = ScriptedDriver()
    now = [100.0]
    sampler, _ = make_sampler(drv, keep_alive=False, clock=now)
    cases: list[tuple[BmsError, str]] = [
        (DeviceNotFoundError("dev1", "not seen within 10 s"), "not found: not seen within 10 s; retry in 5 s"),
        (GattAuthError("read x", "Insufficient authentication"),
         "authentication failed: read x failed: Insufficient authentication; retry in 10 s"),
        (BmsAuthError("wrong PIN"), "authentication failed: wrong PIN; retry in 20 s"),
        (GattError("subscribe x", "Operation failed"), "connect failed: subscribe x failed: Operation failed; "
                                                       "retry in 40 s"),
    ]
    for exc, line in cases:
        drv.connects.append(exc)
        assert await sampler.cycle() is None
        assert caplog.records[-1].getMessage() == line
        attempts = drv.connect_attempts
        assert await sampler.cycle() is None  # backing off: not tried again yet
        assert drv.connect_attempts == attempts
        now[0] += 1000.0
    assert await sampler.cycle() is not None


async def test_a_bug_is_logged_with_its_traceback_and_sampling_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test.sampler")
    drv = ScriptedDriver()
    drv.connects.append(ValueError("bug in connect"))
    drv.reads.append(KeyError("bug in read"))
    now = [0.0]
    sampler, _ = make_sampler(drv, keep_alive=True, clock=now)
    stop = asyncio.Event()
    samples: list[Sample] = []

    async def consume() -> None:
        async for sample in sampler.samples(stop):
            samples.append(sample)

    task = asyncio.create_task(consume())
    for _ in range(100):
        await asyncio.sleep(0.02)
        if any(r.getMessage() == "unexpected error while connecting" for r in caplog.records):
            break
    connecting = [r for r in caplog.records if r.getMessage() == "unexpected error while connecting"]
    assert len(connecting) == 1 and connecting[0].exc_info is not None
    assert sampler.status.last_error == "connect failed: ValueError: bug in connect"
    now[0] += 1000.0  # past the back-off
    for _ in range(100):
        await asyncio.sleep(0.02)
        if samples:
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    sampling = [r for r in caplog.records if r.getMessage() == "unexpected error while sampling"]
    assert len(sampling) == 1 and sampling[0].exc_info is not None
    assert isinstance(sampling[0].exc_info[1], KeyError)
    assert samples  # the sampler lived on and sampled


async def test_a_failing_switch_command_is_one_warning_and_the_reads_go_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test.sampler")
    drv = ScriptedDriver()
    sampler, _ = make_sampler(drv)
    await drv.connect()
    assert sampler.request_switch("charge", True)
    assert await sampler.cycle() is not None
    assert "switch charge on failed: write charge failed: Operation failed" in [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

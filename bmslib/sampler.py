"""Sampling policy for one device: connect, read under a timeout, back off, run switch commands.

Each device runs its own loop at a fixed rate. Isolation between devices:

* Connects (scan + connect) of all devices are serialised by one connect lock (BlueZ dislikes
  parallel connects), but a device that is not found backs off exponentially (capped, reset on
  success) and never holds up the reads of devices that are connected.
* In serial mode (``concurrent_sampling: false``) reads take turns in a shared read slot
  (:class:`~bmslib.read_slot.ReadSlot`: first come, first served, held for at most a lease of half a sample
  period), so a device that does not answer, or answers slowly, delays the others by at most one lease; its
  read goes on without the slot. In concurrent mode reads overlap.
* A device whose reads fail in a row is read less often (:meth:`SamplerPolicy.read_backoff`): one period
  after each of its first failures, then 2, 4, 8 ... periods after the failure, at most
  :data:`READ_BACKOFF_CAP` (or one period, if that is longer); a good read resets it. So a device that
  recovers is read again within that cap.
* Switch commands are queued and run between two reads, never in the middle of a request.

Errors: the BLE layer turns the radio's errors into :class:`~bmslib.errors.BmsError` subclasses, so that
family is all a failing device raises. Every call into the driver goes through :meth:`DeviceSampler._attempt`,
the one place that catches it. Any other exception is a bug: it is logged with its traceback (by the connect
or by the sampling loop) and sampling goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bmslib.device import DeviceStatus
from bmslib.drivers.base import Driver
from bmslib.errors import (
    BluetoothUnavailableError,
    BmsAuthError,
    BmsError,
    BmsTimeoutError,
    DeviceNotFoundError,
    UnavailableError,
)
from bmslib.model import Sample
from bmslib.read_slot import ReadSlot

T = TypeVar("T")

#: where a read that failed with UnavailableError goes: (the device, why), for the App to report it unavailable
UnavailableQueue = asyncio.Queue[tuple[DeviceStatus, str]]

BACKOFF_START = 5.0  # [s] first wait after "not found"
BACKOFF_CAP = 300.0  # [s] longest wait
READ_BACKOFF_CAP = 60.0  # [s] longest wait between two reads of a device whose reads fail (unless period is longer)
ERRORS_BEFORE_RECONNECT = 3
SWITCH_CONFIRM_TIMEOUT = 5.0  # [s] to see a switched state read back
MAX_PENDING_COMMANDS = 8


@dataclass(frozen=True)
class SamplerPolicy:
    period: float  # [s] sample_period
    keep_alive: bool
    current_calibration: float = 1.0
    read_timeout: float = 15.0  # [s] one complete read (all requests of a sample)
    backoff_start: float = BACKOFF_START
    backoff_cap: float = BACKOFF_CAP
    read_backoff_cap: float = READ_BACKOFF_CAP
    back_off_reads: bool = True  # False for a device without radio (a group): its reads cost nothing

    def read_backoff(self, failures: int) -> float:
        """[s] from a failed read to the next read, after ``failures`` failed reads in a row: one period for the
        first :data:`ERRORS_BEFORE_RECONNECT` (then the sampler reconnects), then 2, 4, 8 ... periods, at most
        ``read_backoff_cap`` (or one period, if that is longer)."""
        doublings = min(max(0, failures - ERRORS_BEFORE_RECONNECT), 32)
        return max(self.period, min(self.read_backoff_cap, self.period * 2.0 ** doublings))


class DeviceSampler:
    """Drives one device's driver, records samples and errors in its :class:`DeviceStatus` and yields the
    samples (:meth:`samples`)."""

    def __init__(self, driver: Driver, status: DeviceStatus, policy: SamplerPolicy, *,
                 log: logging.LoggerAdapter[logging.Logger],
                 connect_lock: asyncio.Lock, read_slot: ReadSlot | None,
                 unavailable: UnavailableQueue | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.driver = driver
        self.status = status
        self.policy = policy
        self.log = log
        self.connect_lock = connect_lock
        self.read_slot = read_slot
        self.unavailable = unavailable
        self.clock = clock
        self.commands: deque[tuple[str, bool]] = deque()
        self._fresh: deque[Sample] = deque()  # samples read in this cycle, not yet yielded
        self.wakeup = asyncio.Event()
        self._backoff = 0.0
        self._retry_at = 0.0
        self._read_retry_at = 0.0  # no periodic read before this (a read back-off); commands still run
        self._connect_task: asyncio.Task[None] | None = None
        self._last_error_logged: str | None = None
        self._unavailable_logged = False

    # --- commands ---
    def request_switch(self, name: str, on: bool) -> bool:
        """Queue a switch command (run between two reads). False if refused."""
        if name not in self.status.switches:
            self.log.warning("switch command for %r refused: this device has no such switch", name)
            return False
        if len(self.commands) >= MAX_PENDING_COMMANDS:
            self.log.warning("switch command for %r dropped: %d commands already pending", name, len(self.commands))
            return False
        self.commands.append((name, on))
        self.wakeup.set()
        return True

    # --- loop ---
    async def samples(self, stop: asyncio.Event) -> AsyncIterator[Sample]:
        """Sample until ``stop`` is set, then disconnect. Yields every good sample (those read to confirm a
        switch command included) after the cycle that read it, in the order read."""
        # one task for the whole run turns ``stop`` into a wakeup, so that each wait is on one event
        stopper = asyncio.get_running_loop().create_task(self._wake_on(stop), name=f"stop-{self.status.alias}")
        try:
            next_at = self.clock()
            while not stop.is_set():
                # woken (connected, a command) while a read back-off runs: only commands end the back-off
                if self.commands or self.clock() >= self._read_retry_at:
                    try:
                        await self.cycle()
                    except Exception:  # a bug must not end sampling of this device
                        self.log.exception("unexpected error while sampling")
                    while self._fresh:
                        yield self._fresh.popleft()
                    next_at = max(next_at + self.policy.period, self.clock())
                self.wakeup.clear()
                if stop.is_set():
                    break
                await self._wait(max(0.0, max(next_at, self._read_retry_at) - self.clock()))
        finally:
            stopper.cancel()
        await self.close()

    async def _wait(self, seconds: float) -> None:
        """Until ``seconds`` have passed or :attr:`wakeup` is set. A timer sets the event: cheaper, once per
        sample, than a timeout, which ends the wait by cancelling the task."""
        timer = asyncio.get_running_loop().call_later(seconds, self.wakeup.set)
        try:
            await self.wakeup.wait()
        finally:
            timer.cancel()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.wakeup.set()

    async def close(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connect_task
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.driver.disconnect()

    async def cycle(self) -> Sample | None:
        """One attempt: commands, then a read. Returns the sample, or None."""
        if not self.driver.is_connected:
            if self.policy.keep_alive:
                self._start_connect()
                return None
            if not await self._connect():
                return None
        try:
            await self._run_commands()
            sample = await self._read()
        finally:
            # read and release: a device whose connection slot another device waits for lets go of it (proxies)
            if not self.policy.keep_alive or self.driver.slot_wanted:
                await self.driver.disconnect()
        return sample

    # --- connecting ---
    def _start_connect(self) -> None:
        idle = self._connect_task is None or self._connect_task.done()
        if idle and self.clock() >= self._retry_at:
            self._connect_task = asyncio.get_running_loop().create_task(
                self._connect_then_wake(), name=f"connect-{self.status.alias}")

    async def _connect_then_wake(self) -> None:
        if await self._connect():
            self.wakeup.set()

    async def _connect(self) -> bool:
        if self.clock() < self._retry_at:
            return False
        try:
            failed = await self._attempt(self._prepare_and_connect, what="connect")
        except Exception as exc:  # a bug: logged with its traceback, and the device is tried again later
            self.log.exception("unexpected error while connecting")
            self._back_off(f"connect failed: {type(exc).__name__}: {exc}", quiet=True)
            return False
        if isinstance(failed, BmsError):
            self._connect_failed(failed)
            return False
        self._backoff = 0.0
        self._retry_at = 0.0
        self._unavailable_logged = False
        self.status.bluetooth_unavailable = self.status.bluetooth_unavailable_since = None
        self.status.rssi = self.driver.rssi
        self.status.device_info = self.status.device_info.merged(self.driver.device_info)
        self.status.switches = self.driver.offered_switches
        self.log.info("connected")
        return True

    async def _prepare_and_connect(self) -> None:
        await self.driver.prepare()  # a scan for a missing device must not hold the others' connects
        async with self.connect_lock:
            await self.driver.connect()

    def _connect_failed(self, exc: BmsError) -> None:
        """One log line a person can act on, the status, and the back-off."""
        if isinstance(exc, DeviceNotFoundError):
            self._back_off(f"not found: {exc.reason}")
        elif isinstance(exc, BluetoothUnavailableError):
            if not self._unavailable_logged:
                self.log.error("Bluetooth is not available (%s). Check that the host has a Bluetooth adapter, that "
                               "BlueZ runs, and that the add-on may use D-Bus.", exc)
                self._unavailable_logged = True
            self.status.bluetooth_unavailable = str(exc)
            if self.status.bluetooth_unavailable_since is None:
                self.status.bluetooth_unavailable_since = self.clock()
            self._back_off(f"Bluetooth unavailable: {exc}", quiet=True)
        elif isinstance(exc, BmsAuthError):
            self._back_off(f"authentication failed: {exc}")
        else:
            self._back_off(f"connect failed: {exc}")

    async def _attempt(self, call: Callable[[], Awaitable[T]], *, what: str, timeout: float | None = None,
                       exclusive: bool = False) -> T | BmsError:
        """Run one call into the driver and return its result, or the BmsError it raised: the one place the
        sampler catches errors. ``timeout``: the sampler's own limit, which becomes a BmsTimeoutError
        ("<what> took longer than ..."). ``exclusive``: take the read slot (serial mode) for the call, held for
        at most its lease. Any other exception is a bug and propagates."""
        deadline = asyncio.timeout(timeout)
        try:
            async with self._read_slot() if exclusive else contextlib.nullcontext(), deadline:
                return await call()
        except BmsError as exc:
            return exc
        except TimeoutError:
            if not deadline.expired():
                raise
            return BmsTimeoutError(f"{what} took longer than {timeout:g} s")

    def _back_off(self, message: str, *, quiet: bool = False) -> None:
        self._backoff = min(self.policy.backoff_cap, max(self.policy.backoff_start, self._backoff * 2))
        self._retry_at = self.clock() + self._backoff
        self.status.record_error(message)
        if not quiet:
            self.log.warning("%s; retry in %.0f s", message, self._backoff)

    # --- reading ---
    async def _read(self) -> Sample | None:
        reading = await self._attempt(self.driver.read, what="read", timeout=self.policy.read_timeout,
                                      exclusive=True)
        if isinstance(reading, BmsError):
            msg = str(reading) or type(reading).__name__
            self.status.record_error(msg)
            if self.policy.back_off_reads:
                self._read_retry_at = self.clock() + self.policy.read_backoff(self.status.consecutive_errors)
            if msg != self._last_error_logged:
                self.log.warning("read failed: %s", msg)
                self._last_error_logged = msg
            if isinstance(reading, UnavailableError) and self.unavailable is not None:
                self.unavailable.put_nowait((self.status, msg))
            if self.status.consecutive_errors >= ERRORS_BEFORE_RECONNECT and self.driver.is_connected:
                self.log.info("%d reads failed in a row; reconnecting", self.status.consecutive_errors)
                await self.driver.disconnect()
            return None
        now_wall, now_mono = time.time(), self.clock()
        sample = Sample.build(reading, timestamp=now_wall, mono=now_mono)
        sample = sample.scaled_current(self.policy.current_calibration)
        self._read_retry_at = 0.0
        if self._last_error_logged is not None:
            self.log.info("reading again after: %s", self._last_error_logged)
            self._last_error_logged = None
        self.status.record_sample(sample)
        self.status.device_info = self.status.device_info.merged(self.driver.device_info)
        self.status.switches = self.driver.offered_switches  # may narrow once the variant is known
        self.status.rssi = self.driver.rssi
        self._fresh.append(sample)
        return sample

    def _read_slot(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self.read_slot.hold() if self.read_slot is not None else contextlib.nullcontext()

    async def _run_commands(self) -> None:
        while self.commands:
            name, on = self.commands.popleft()
            word = "on" if on else "off"
            failed = await self._attempt(functools.partial(self.driver.set_switch, name, on), what="the command",
                                         timeout=self.policy.read_timeout, exclusive=True)
            if isinstance(failed, BmsError):
                self.log.warning("switch %s %s failed: %s", name, word, failed or type(failed).__name__)
                continue
            deadline = self.clock() + SWITCH_CONFIRM_TIMEOUT
            while True:
                sample = await self._read()
                state = sample.switches.get(name) if sample and sample.switches else None
                if state is on:
                    self.log.info("switch %s is %s (confirmed by the device)", name, word)
                    break
                if self.clock() >= deadline:
                    reported = "nothing" if state is None else ("on" if state else "off")
                    self.log.warning("switch %s %s not confirmed within %.0f s; the device reports %s", name,
                                     word, SWITCH_CONFIRM_TIMEOUT, reported)
                    break
                await asyncio.sleep(0.2)

"""The application object: built from a validated config, owns devices, samplers, sinks and shutdown.

Data flows one way through it. Each device's task takes the samples its sampler yields, runs the meters
and the charge algorithm on them, asks the device's :class:`DevicePublisher` what to publish, and hands
sample and decision to every sink through the sink interface. Switch commands come back the other way
on one :class:`CommandQueue` (from MQTT, groups and algorithms).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from bmslib.algorithm import DEFAULT_CALIBRATION_DAYS, AlgorithmRunner, parse_algorithm
from bmslib.auto_type import AutoDriver
from bmslib.ble.backend import BleBackend
from bmslib.commands import CommandQueue, SwitchCommand
from bmslib.config.settings import AUTO_TYPE, GROUP_MODES, AppConfig, DeviceConfig
from bmslib.detection import Detector
from bmslib.device import DeviceStatus
from bmslib.drivers.base import Driver
from bmslib.family import DeviceType
from bmslib.groups.combine import member_switches
from bmslib.groups.driver import FIRST_SAMPLE_WAIT, GroupDriver, age_limit
from bmslib.meters import METER_FILE, MeterBook, max_gap
from bmslib.model import OutputSign, Sample
from bmslib.publishing import METER_PUBLISH_PERIOD, Decision, DevicePublisher, expiry_warning, value_expiry
from bmslib.read_slot import ReadSlot, slot_lease
from bmslib.registry import device_types, families
from bmslib.sampler import DeviceSampler, SamplerPolicy, UnavailableQueue
from bmslib.sim.bank import ParallelBank, cell_resistance
from bmslib.sim.battery import BatteryModel, sine_load
from bmslib.sim.emulator import Emulator
from bmslib.sim.knobs import bank_name, set_faults
from bmslib.sim.radio import SimRadio, sim_address
from bmslib.sinks.base import Sink, SinkContext, SinkFactory

if TYPE_CHECKING:
    from bmslib.ble.esphome import ProxyManager

_LOG = logging.getLogger("batmon")

AVAILABILITY_CHECK = 1.0  # [s]
STATE_SAVE_PERIOD = 30.0  # [s] meter states are saved this often (and at shutdown)
EXIT_OK, EXIT_WATCHDOG, EXIT_NO_BLUETOOTH = 0, 1, 1
BLUETOOTH_GRACE = 30.0  # [s] Bluetooth may come up after batmon (BlueZ starting at boot)

_Item = TypeVar("_Item")


def device_logger(alias: str, debug: bool) -> logging.LoggerAdapter[logging.Logger]:
    """Per-device logger ``batmon.dev.<alias>``; ``debug: true`` lowers only this device's level."""
    logger = logging.getLogger(f"batmon.dev.{alias}")
    if debug:
        logger.setLevel(logging.DEBUG)
    return logging.LoggerAdapter(logger, {})


@dataclass
class DeviceRuntime:
    """One configured device while the daemon runs."""

    config: DeviceConfig
    type: DeviceType
    status: DeviceStatus
    driver: Driver
    sampler: DeviceSampler
    publisher: DevicePublisher


def make_emulator(device_type: DeviceType, sim_id: str, rng: random.Random, *,
                  bank: ParallelBank | None = None) -> Emulator:
    """A simulated device of ``device_type`` (used for ``sim:<id>``) with a battery of its own, or with a
    pack of ``bank`` (of the bank's cell count, sharing its load)."""
    assert device_type.emulator is not None
    cells, capacity = rng.choice((4, 8, 16)), rng.choice((100.0, 200.0, 280.0))
    battery = BatteryModel(cells=(bank and bank.cells) or cells, capacity_ah=capacity, soc=rng.uniform(30, 90),
                           rng=rng, load=sine_load(amplitude=rng.uniform(5, 20), period=rng.uniform(60, 180),
                                                   phase=rng.uniform(0, 6.28)))
    if bank is not None:
        battery.internal_resistance = cell_resistance(capacity)
        bank.join(battery)
    return device_type.emulator(address=sim_address(sim_id), name=f"{device_type.name.upper()}-{sim_id}",
                                battery=battery, rng=rng)


def simulated_device(radio: SimRadio, cfg: DeviceConfig, dtype: DeviceType) -> Emulator:
    """The emulator of the ``sim:<id>`` device ``cfg`` on ``radio``: the one put there before (by a test),
    else a new one of ``dtype`` (in its bank, when the address names one); the address's knobs set on it."""
    assert cfg.sim_id is not None
    emulator = radio.by_sim_id(cfg.sim_id)
    if emulator is None:
        if dtype.emulator is None:
            raise ValueError(f"type {cfg.type} has no emulator for {cfg.address}")
        bank = bank_name(cfg.sim_knobs)
        emulator = make_emulator(dtype, cfg.sim_id, random.Random(cfg.sim_id),
                                 bank=radio.bank(bank) if bank is not None else None)
        radio.add(emulator, sim_id=cfg.sim_id)
    set_faults(emulator.faults, cfg.sim_knobs)
    return emulator


def simulated_radio(devices: Sequence[DeviceConfig], types: Mapping[str, DeviceType]) -> SimRadio:
    """A simulated radio with the emulators of the ``sim:<id>`` devices among ``devices``, built as the App
    builds them (``main.py scan --demo`` scans the demo's devices on it)."""
    radio = SimRadio()
    for cfg in devices:
        dtype = types.get(cfg.type)
        if cfg.sim_id is not None and dtype is not None and dtype.radio and dtype.emulator is not None:
            simulated_device(radio, cfg, dtype)
    return radio


class App:
    """Runs the daemon for one :class:`AppConfig` until :meth:`request_stop` or the watchdog."""

    def __init__(self, config: AppConfig, *, types: Mapping[str, DeviceType] | None = None,
                 backend: BleBackend | None = None, radio: SimRadio | None = None, sinks: Sequence[Sink] | None = None,
                 proxies: ProxyManager | None = None,
                 sink_factories: Sequence[SinkFactory] = (), state_dir: Path | None = None,
                 watchdog_timeout: float | None = None, bluetooth_grace: float | None = None,
                 save_interval: float = STATE_SAVE_PERIOD, meter_period: float = METER_PUBLISH_PERIOD) -> None:
        self.config = config
        self.types = dict(types or device_types())
        self.detector: Detector | None = None  # for type: auto (built when a device needs it)
        #: with ``ble_stack: esphome``: the ESPHome proxies (given, or made here), started by :meth:`run` and closed
        #: by :meth:`shutdown`; every device but the simulated ones goes through them
        self.proxies = proxies
        if self.proxies is None and config.ble_stack == "esphome" and backend is None:
            from bmslib.ble.esphome import ProxyManager  # noqa: PLC0415  (its libraries only when asked for)

            self.proxies = ProxyManager(config.bluetooth_proxies)
        self.backend = backend or (self.proxies.backend if self.proxies is not None else BleBackend())
        self.radio = radio
        self._sim_backend: BleBackend | None = None  # one for all simulated devices: they share its scanners
        self.state_dir = state_dir or Path(".")
        self.sign = OutputSign(config.invert_current)
        self.watchdog_timeout = watchdog_timeout or max(300.0, 10 * config.sample_period)
        self.bluetooth_grace = bluetooth_grace or max(BLUETOOTH_GRACE, 2 * config.sample_period)
        self.stop_event = asyncio.Event()
        self.exit_code = EXIT_OK
        self.connect_lock = asyncio.Lock()
        self.read_slot = None if config.concurrent_sampling else ReadSlot(slot_lease(config.sample_period))
        self.devices: dict[str, DeviceRuntime] = {}
        self.commands: CommandQueue = asyncio.Queue()  # switch commands from MQTT, groups and algorithms
        self.unavailable: UnavailableQueue = asyncio.Queue()  # devices whose read said "unavailable now"
        self.meter_period = meter_period
        self._tasks: list[asyncio.Task[None]] = []
        self._sink_errors: dict[str, float] = {}
        self._last_sample_mono = time.monotonic()
        for dev in config.devices:
            if not dev.is_group:
                self._add_device(dev)
        for dev in config.devices:
            if dev.is_group:
                self._add_group(dev)
        #: the sinks in the order they get each event: the ones given, else those the factories build
        self.sinks: list[Sink] = list(sinks) if sinks is not None else self._build_sinks(sink_factories)
        # energy meters, charge algorithms (their state is kept in state_dir; without one, in memory only)
        self._persist = state_dir is not None
        self.save_interval = save_interval
        self.meter_book = MeterBook(self.state_dir / METER_FILE, log=_LOG)
        self.algorithms: dict[str, AlgorithmRunner] = {}
        for alias, rt in self.devices.items():
            self.meter_book.add_device(alias, max_gap(config.sample_period))
            if rt.config.algorithm is not None:
                self._add_algorithm(rt)
        self._state_lock = asyncio.Lock()

    # --- construction ---
    def _build_sinks(self, factories: Sequence[SinkFactory]) -> list[Sink]:
        context = SinkContext(config=self.config, sign=self.sign, commands=self.commands, state_dir=self.state_dir,
                              statuses=tuple(rt.status for rt in self.devices.values()))
        return [sink for factory in factories if (sink := factory(context)) is not None]

    def _sim_radio(self) -> SimRadio:
        if self.radio is None:
            self.radio = SimRadio()
        return self.radio

    def _add_device(self, cfg: DeviceConfig) -> None:
        auto = cfg.type == AUTO_TYPE
        dtype = self._auto_type() if auto else self.types[cfg.type]
        log = device_logger(cfg.alias, cfg.debug or self.config.verbose_log)
        backend, address = self.backend, cfg.address
        if cfg.sim_id is not None and dtype.radio:
            radio = self._sim_radio()
            if auto:  # the emulator put on the radio (by a test), else one no device answers for
                emulator = radio.by_sim_id(cfg.sim_id)
                address = emulator.address if emulator is not None else sim_address(cfg.sim_id)
            else:
                address = simulated_device(radio, cfg, dtype).address
            if self._sim_backend is None:
                self._sim_backend = BleBackend(radio.client_backend(), radio.scanner_backend(), simulated=True)
            backend = self._sim_backend
        if auto:
            driver: Driver = AutoDriver(cfg, address=address, backend=backend, log=log, detector=self._detector(),
                                        on_detected=functools.partial(self._detected, cfg.alias))
        else:
            driver = dtype.driver(cfg, address=address, backend=backend, log=log)
        status = DeviceStatus(alias=cfg.alias, type=cfg.type, address=cfg.address, switches=dtype.switches,
                              ble_address=address if dtype.radio else None)
        keep_alive = cfg.keep_alive if cfg.keep_alive is not None else self.config.keep_alive
        policy = SamplerPolicy(period=self.config.sample_period, keep_alive=keep_alive or not dtype.radio,
                               current_calibration=cfg.current_calibration,
                               read_timeout=driver.read_timeout, back_off_reads=dtype.radio)
        sampler = DeviceSampler(driver, status, policy, log=log, connect_lock=self.connect_lock,
                                read_slot=self.read_slot if dtype.radio else None)
        self.devices[cfg.alias] = DeviceRuntime(cfg, dtype, status, driver, sampler, self._publisher())

    def _auto_type(self) -> DeviceType:
        """The stand-in type of a ``type: auto`` device until its type is detected."""
        return DeviceType(AUTO_TYPE, "detected from the advertisement", AutoDriver, frozenset(), in_demo=False)

    def _detector(self) -> Detector:
        if self.detector is None:
            # the registry's families, with the App's types (a test may give drivers of its own)
            self.detector = Detector([dataclasses.replace(f, types=tuple(self.types.get(t.name, t) for t in f.types))
                                      for f in families()])
        return self.detector

    def _detected(self, alias: str, dtype: DeviceType, driver: Driver) -> None:
        """A ``type: auto`` device's type is known: it runs as that type from now on."""
        rt = self.devices[alias]
        rt.type = dtype
        rt.status.type = dtype.name
        rt.sampler.policy = dataclasses.replace(rt.sampler.policy, read_timeout=driver.read_timeout)

    def _add_group(self, cfg: DeviceConfig) -> None:
        """A group: a device without radio whose reads combine its members' latest samples."""
        members = [self.devices[alias] for alias in cfg.members]
        dtype = DeviceType(cfg.type, f"{GROUP_MODES[cfg.type]} group of configured devices", GroupDriver,
                           member_switches(m.status.switches for m in members), in_demo=False, radio=False)
        log = device_logger(cfg.alias, cfg.debug or self.config.verbose_log)
        driver = GroupDriver(cfg, address=cfg.address, backend=self.backend, log=log,
                             members=[m.status for m in members],
                             max_age=age_limit(self.config.expire_values_after, self.config.sample_period),
                             commands=self.commands)
        status = DeviceStatus(alias=cfg.alias, type=cfg.type, address=cfg.address, switches=dtype.switches,
                              device_info=driver.device_info, is_group=True)
        policy = SamplerPolicy(period=self.config.sample_period, keep_alive=True,
                               current_calibration=cfg.current_calibration, read_timeout=FIRST_SAMPLE_WAIT + 10,
                               back_off_reads=False)
        sampler = DeviceSampler(driver, status, policy, log=log, connect_lock=self.connect_lock, read_slot=None,
                                unavailable=self.unavailable)
        self.devices[cfg.alias] = DeviceRuntime(cfg, dtype, status, driver, sampler, self._publisher())

    def _publisher(self) -> DevicePublisher:
        return DevicePublisher(self.config.publish_period, meter_period=self.meter_period)

    def _report_unavailable(self, item: tuple[DeviceStatus, str]) -> None:
        """A read said the device has nothing current (a group with a stale member, ``why``): it is unavailable
        now, not after expire_values_after."""
        status, why = item
        if status.available:
            self._mark_unavailable(self.devices[status.alias], "unavailable: %s", why)

    def _mark_unavailable(self, rt: DeviceRuntime, message: str, *args: object) -> None:
        """The device is unavailable now: one warning on its log (``message % args``), then the sinks."""
        rt.status.available = False
        rt.sampler.log.warning(message, *args)
        self._sinks_availability(rt.status, False)

    def _add_algorithm(self, rt: DeviceRuntime) -> None:
        cfg = rt.config
        assert cfg.algorithm is not None
        days = cfg.soc_calibration_days if cfg.soc_calibration_days is not None else DEFAULT_CALIBRATION_DAYS
        self.algorithms[cfg.alias] = AlgorithmRunner(
            cfg.alias, parse_algorithm(cfg.algorithm), state_dir=self.state_dir if self._persist else None,
            commands=self.commands, log=rt.sampler.log, calibration_days=days)

    # --- meters, algorithms, state ---
    def _add_to_meters(self, status: DeviceStatus, sample: Sample) -> None:
        meters = self.meter_book.sets.get(status.alias)
        if meters is not None:
            meters.add(sample)
            status.meter_gaps = meters.gaps

    def _load_state(self) -> None:
        if self._persist:
            self.meter_book.load()  # until loaded, the book is never saved
        for algorithm in self.algorithms.values():
            algorithm.load()

    def _publish_meters(self) -> None:
        now = time.monotonic()
        for alias, rt in self.devices.items():
            rt.publisher.meters_sent(now)
            self._sinks_meters(rt.status, self.meter_book.readings(alias))

    async def _save_state(self) -> None:
        async with self._state_lock:
            await asyncio.to_thread(self.meter_book.save, self.meter_book.document())

    async def _state_loop(self) -> None:
        next_save = time.monotonic() + self.save_interval
        while not self.stop_event.is_set():
            await self._sleep(max(0.01, next_save - time.monotonic()))
            if time.monotonic() >= next_save and not self.stop_event.is_set():
                next_save = time.monotonic() + self.save_interval
                await self._save_state()

    # --- pipeline ---
    async def _device_loop(self, rt: DeviceRuntime) -> None:
        """The device's task: sample until stopped, each sample through hooks, publisher and sinks."""
        async for sample in rt.sampler.samples(self.stop_event):
            await self._on_sample(rt, sample)

    async def _on_sample(self, rt: DeviceRuntime, sample: Sample) -> None:
        now = self._last_sample_mono = time.monotonic()
        status = rt.status
        # the meters, then the device's algorithm (only for a device that has one); a failure in either must
        # not stop sampling (logged with traceback)
        try:
            self._add_to_meters(status, sample)
        except Exception:  # noqa: BLE001
            _LOG.exception("meters failed for %s", status.alias)
        algorithm = self.algorithms.get(status.alias)
        if algorithm is not None:
            try:
                await algorithm.on_sample(status, sample)
            except Exception:  # noqa: BLE001
                _LOG.exception("algorithm failed for %s", status.alias)
        if not status.available:
            status.available = True
            self._sinks_availability(status, True)
        self._sinks_sample(status, sample, rt.publisher.decide(sample, now))
        if rt.publisher.meters_due(now):
            self._sinks_meters(status, self.meter_book.readings(status.alias))

    # each sink gets each event once, through the sink interface; a failing sink is logged and skipped
    def _sinks_sample(self, status: DeviceStatus, sample: Sample, decision: Decision) -> None:
        for sink in self.sinks:
            try:
                sink.on_sample(status, sample, decision)
            except Exception:  # noqa: BLE001  (a failing sink must not stop sampling; logged with traceback)
                self._sink_failed(sink, "on_sample")

    def _sinks_availability(self, status: DeviceStatus, available: bool) -> None:
        for sink in self.sinks:
            try:
                sink.on_availability(status, available)
            except Exception:  # noqa: BLE001  (as above)
                self._sink_failed(sink, "on_availability")

    def _sinks_meters(self, status: DeviceStatus, meters: Mapping[str, float]) -> None:
        for sink in self.sinks:
            try:
                sink.on_meters(status, meters)
            except Exception:  # noqa: BLE001  (as above)
                self._sink_failed(sink, "on_meters")

    def _sink_failed(self, sink: Sink, method: str) -> None:
        """Log a sink's failure with its traceback, at most once a minute per sink."""
        now = time.monotonic()
        if now - self._sink_errors.get(sink.name, -1e9) > 60:
            self._sink_errors[sink.name] = now
            _LOG.exception("sink %s failed in %s (further failures within 60 s are not logged)", sink.name, method)

    # --- switch commands ---
    def _run_command(self, command: SwitchCommand) -> None:
        """One switch command from the queue; a refusal is logged by :meth:`request_switch`. A command from
        Home Assistant (MQTT) has the device's switch states echoed for a while."""
        self.request_switch(command.alias, command.switch, command.on, echo=command.origin == "mqtt")

    def request_switch(self, alias: str, name: str, on: bool, *, echo: bool = False) -> bool:
        """Queue a switch command for a device (from MQTT or an algorithm). False if refused (logged).
        ``echo``: the device's publisher re-sends its switch states for a while (a command from Home Assistant)."""
        rt = self.devices.get(alias)
        if rt is None:
            _LOG.warning("switch command for unknown device %r ignored", alias)
            return False
        if not rt.status.available:
            rt.sampler.log.warning("switch %s %s refused: the device is offline", name, "on" if on else "off")
            return False
        if rt.sampler.request_switch(name, on):
            rt.publisher.switch_commanded(time.monotonic(), echo=echo)
            return True
        return False

    async def _drain(self, queue: asyncio.Queue[_Item], handle: Callable[[_Item], None]) -> None:
        """Hand every item put on ``queue`` to ``handle``, until the App stops."""
        stop = asyncio.ensure_future(self.stop_event.wait())
        try:
            while not self.stop_event.is_set():
                get = asyncio.ensure_future(queue.get())
                await asyncio.wait((get, stop), return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    break
                try:
                    handle(get.result())
                except Exception:  # noqa: BLE001  (one bad item must not stop the queue; logged with traceback)
                    _LOG.exception("%s failed", getattr(handle, "__qualname__", handle))
        finally:
            stop.cancel()

    # --- background checks ---
    async def _availability_loop(self) -> None:
        expire = value_expiry(self.config.expire_values_after, self.config.sample_period)
        while not self.stop_event.is_set():
            if expire > 0:
                for rt in self.devices.values():
                    age = rt.status.age()
                    if rt.status.available and (age is None or age > expire):
                        self._mark_unavailable(rt, "no fresh sample for %.0f s: unavailable (last error: %s)",
                                               expire, rt.status.last_error or "-")
            await self._sleep(AVAILABILITY_CHECK)

    async def _watchdog_loop(self) -> None:
        while not self.stop_event.is_set():
            idle = time.monotonic() - self._last_sample_mono
            if idle > self.watchdog_timeout:
                _LOG.error("watchdog: no device produced a sample for %.0f s; exiting with status 1 so the "
                           "supervisor restarts the daemon", idle)
                self.exit_code = EXIT_WATCHDOG
                self.request_stop()
                return
            await self._sleep(min(5.0, self.watchdog_timeout / 4))

    async def _bluetooth_loop(self) -> None:
        """Exit with status 1 when the host's Bluetooth has been unavailable for :attr:`bluetooth_grace` seconds
        and no device was read in that time (whether or not the watchdog is on): a supervisor (systemd's
        ``Restart=on-failure``, a Docker restart policy, the app's watchdog) sees the failure and acts, where a
        daemon that keeps waiting would look healthy and read nothing."""
        while not self.stop_event.is_set():
            now = time.monotonic()
            down = [rt.status for rt in self.devices.values() if rt.status.bluetooth_unavailable_since is not None]
            since = min((s.bluetooth_unavailable_since or now for s in down), default=now)
            grace = self.bluetooth_grace
            if down and now - since >= grace and now - self._last_sample_mono >= grace:
                _LOG.error("Bluetooth is not available (%s) and no device was read for %.0f s: exiting with "
                           "status 1", down[0].bluetooth_unavailable, now - since)
                self.exit_code = EXIT_NO_BLUETOOTH
                self.request_stop()
                return
            await self._sleep(min(AVAILABILITY_CHECK, grace / 4))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stop_event.wait()

    async def _power_cycle_adapters(self) -> None:
        if not self.config.bt_power_cycle:
            return
        tool = shutil.which("bluetoothctl")
        if tool is None:
            _LOG.info("bt_power_cycle: bluetoothctl not found, power cycle skipped")
            return
        for state, pause in (("off", 1.0), ("on", 2.0)):
            proc = await asyncio.create_subprocess_exec(tool, "power", state, stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.PIPE)
            _, err = await proc.communicate()
            if proc.returncode:
                _LOG.warning("bt_power_cycle: 'bluetoothctl power %s' failed: %s", state,
                             err.decode(errors="replace").strip())
            await asyncio.sleep(pause)

    # --- life cycle ---
    def request_stop(self) -> None:
        self.stop_event.set()

    async def run(self) -> int:
        """Run until stopped; returns the process exit status."""
        warning = expiry_warning(self.config.expire_values_after, self.config.sample_period)
        if warning is not None:
            _LOG.warning(warning)
        if self.proxies is not None:
            names = ", ".join(link.describe() for link in self.proxies.links)
            _LOG.info("ble_stack esphome: devices are reached through the ESPHome proxies %s only, not through this "
                      "machine's Bluetooth adapters", names)
            await self.proxies.start()
        else:
            await self._power_cycle_adapters()
        self._load_state()
        for sink in self.sinks:
            await sink.start()
        self._publish_meters()
        self._last_sample_mono = time.monotonic()
        loop = asyncio.get_running_loop()
        for rt in self.devices.values():
            self._tasks.append(loop.create_task(self._device_loop(rt), name=f"sample-{rt.status.alias}"))
        self._tasks.append(loop.create_task(self._availability_loop(), name="availability"))
        self._tasks.append(loop.create_task(self._drain(self.commands, self._run_command), name="commands"))
        unavailable = self._drain(self.unavailable, self._report_unavailable)
        self._tasks.append(loop.create_task(unavailable, name="unavailable"))
        self._tasks.append(loop.create_task(self._state_loop(), name="state"))
        if any(rt.type.radio for rt in self.devices.values()):
            self._tasks.append(loop.create_task(self._bluetooth_loop(), name="bluetooth"))
        if not self.devices:
            _LOG.warning("no devices configured: nothing to sample (add entries to the devices option)")
        elif self.config.watchdog:
            self._tasks.append(loop.create_task(self._watchdog_loop(), name="watchdog"))
        _LOG.info("sampling %d device(s) every %g s", len(self.devices), self.config.sample_period)
        await self.stop_event.wait()
        await self.shutdown()
        return self.exit_code

    async def shutdown(self, timeout: float = 4.0) -> None:
        """Disconnect devices and flush sinks within ``timeout`` seconds."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=max(0.1, timeout / 2))
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._tasks:  # it ran: meters are final now
            self._publish_meters()
            await self._save_state()
        for sink in self.sinks:
            try:
                await sink.stop(max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001  (shutdown goes on; logged with traceback)
                _LOG.exception("sink %s failed to stop cleanly", sink.name)
        if self.proxies is not None:
            await self.proxies.stop()
        if self.radio is not None:
            await self.radio.aclose()

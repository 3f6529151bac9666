"""Charge control (``algorithm:`` on a device or group). One algorithm exists:

``soc CHARGE_STOP% [CHARGE_START%]``
    Switch the charge FET off when SoC reaches CHARGE_STOP and on again when it falls to CHARGE_START
    (default and at most CHARGE_STOP - 0.2 %). The algorithm acts only when SoC crosses a threshold, so a
    switch toggled by hand stays as it is until the next crossing. Every ``soc_calibration_days`` (14 by
    default; 0 = never) it charges to full once so the BMS can re-calibrate its SoC: done when SoC >=
    99.5 % or the BMS reports the battery full (a "battery full" state or an over-voltage protection).

The logic (:class:`SocController`) is pure; :class:`AlgorithmRunner` feeds it samples, puts its switch
commands on the App's command queue (the App runs them between two reads and reads them back), sends a
command again every 30 s while the device does not show it carried out, logs and publishes each action
with its reason, and keeps the state (charging or not, last calibration) in ``bat_state_<alias>.json``,
the file format of the add-on we replace, written atomically.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bmslib.commands import CommandQueue, SwitchCommand
from bmslib.device import DeviceStatus
from bmslib.model import Sample
from bmslib.state_store import StateFile

KNOWN: Final = ("soc",)
HYSTERESIS: Final = 0.2  # [%] CHARGE_START is at most CHARGE_STOP minus this
CALIBRATED_SOC: Final = 99.5  # [%] a calibration charge is done at or above this SoC
DEFAULT_CALIBRATION_DAYS: Final = 14.0
RETRY_AFTER: Final = 30.0  # [s] a switch command the device does not show carried out is sent again after this
#: Alarm names (or ANT charge FET states) that mean the charger cannot put more in: the battery is full.
FULL_ALARMS: Final = frozenset({"battery_full", "cell_overvoltage", "pack_overvoltage"})

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]


# --------------------------------------------------------------------------------------------------
# The specification


@dataclass(frozen=True, slots=True)
class SocSpec:
    """``soc CHARGE_STOP% [CHARGE_START%]`` with ``charge_start`` already the effective value."""

    charge_stop: float
    charge_start: float

    def __str__(self) -> str:
        return f"soc {self.charge_stop:g}% {self.charge_start:g}%"


_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*%?")


def _percent(token: str, what: str) -> float:
    m = _PERCENT.fullmatch(token)
    if m is None:
        raise ValueError(f"{what} {token!r} is not a percentage (like 90%)")
    return float(m[1])


def parse_algorithm(text: str) -> SocSpec:
    """Parse an ``algorithm`` option. Raises ValueError with a one-line explanation."""
    words = text.split()
    if not words:
        raise ValueError("is empty")
    name = words[0].lower()
    if name not in KNOWN:
        raise ValueError(f"unknown algorithm {words[0]!r} (known: {', '.join(KNOWN)}; e.g. 'soc 90% 80%')")
    args = words[1:]
    if not args:
        raise ValueError("soc needs CHARGE_STOP%, e.g. 'soc 90%' or 'soc 90% 80%'")
    if len(args) > 2:
        raise ValueError(f"soc takes CHARGE_STOP% and optionally CHARGE_START%, got {len(args)} values")
    stop = _percent(args[0], "CHARGE_STOP")
    if not 0 < stop <= 100:
        raise ValueError(f"CHARGE_STOP must be above 0 % and at most 100 %, got {stop:g} %")
    start = stop - HYSTERESIS
    if len(args) == 2:
        given = _percent(args[1], "CHARGE_START")
        if given > 100:
            raise ValueError(f"CHARGE_START must be at most 100 %, got {given:g} %")
        if given > stop:
            raise ValueError(f"CHARGE_START ({given:g} %) must not be above CHARGE_STOP ({stop:g} %)")
        start = min(given, stop - HYSTERESIS)
    return SocSpec(charge_stop=stop, charge_start=round(max(0.0, start), 3))


def validate_algorithm(text: str) -> str | None:
    """The config's ``validate_algorithm`` hook: the problem with ``text``, or None."""
    try:
        parse_algorithm(text)
    except ValueError as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------------------------------
# The logic


@dataclass
class SocState:
    """What survives a restart (the add-on we replace keeps the same two values)."""

    charging: bool  # True: between CHARGE_START and CHARGE_STOP on the way up (charge on)
    last_calibration_time: float  # [s] wall clock (epoch) of the last calibration (or of the first start)


@dataclass(frozen=True, slots=True)
class Decision:
    """Switch the charge FET ``on`` (or off), because of ``reason``."""

    on: bool
    reason: str


def reports_full(sample: Sample) -> bool:
    """Does the BMS say the battery is full (or refuse charge for over-voltage)?"""
    if sample.alarms and FULL_ALARMS.intersection(sample.alarms):
        return True
    extra = sample.extra
    return extra.get("battery_full") is True or extra.get("charge_fet_status") == "battery_full"


def _pct(x: float) -> str:
    return f"{x:.1f} %"


class SocController:
    """``soc`` as a pure state machine: :meth:`update` per sample -> a switch decision or None."""

    def __init__(self, spec: SocSpec, state: SocState, calibration_interval: float) -> None:
        self.spec = spec
        self.state = state
        self.calibration_interval = calibration_interval  # [s]; 0: never
        self.calibrating = False
        self._started = False  # the first update enforces the phase
        self.status = self._phase()

    def _phase(self) -> str:
        if self.calibrating:
            return f"calibrating: charging until SoC >= {CALIBRATED_SOC:g} % or the BMS reports full"
        if self.state.charging:
            return f"charging phase: charge off at SoC >= {self.spec.charge_stop:g} %"
        return f"resting phase: charge on at SoC <= {self.spec.charge_start:g} %"

    def calibration_due(self, now: float) -> bool:
        return self.calibration_interval > 0 and now - self.state.last_calibration_time >= self.calibration_interval

    def update(self, soc: float | None, charge_on: bool | None, *, full: bool, now: float) -> Decision | None:
        """One sample: SoC [%], the charge switch as read (None: not reported), the BMS's full flag, wall time."""
        if soc is None or not math.isfinite(soc):
            return None
        decision = self._update(soc, charge_on, full, now)
        self.status = decision.reason if decision is not None else self.status
        return decision

    def _update(self, soc: float, charge_on: bool | None, full: bool, now: float) -> Decision | None:
        spec, state = self.spec, self.state
        first, self._started = not self._started, True
        prefix = ""
        if self.calibration_due(now):
            if soc >= CALIBRATED_SOC or full:
                state.last_calibration_time = now
                self.calibrating = False
                state.charging = True  # so that CHARGE_STOP acts now
                why = "the BMS reports full" if full and soc < CALIBRATED_SOC else f"SoC {_pct(soc)}"
                prefix = f"calibration done ({why}); "
            elif not self.calibrating:
                self.calibrating = True
                state.charging = True
                days = (now - state.last_calibration_time) / 86400
                reason = (f"calibration due (last one {days:.1f} days ago): charge on until SoC >= "
                          f"{CALIBRATED_SOC:g} % or the BMS reports full")
                self.status = reason
                return Decision(True, reason) if charge_on is not True else None
            else:
                return None  # calibrating: CHARGE_STOP does not apply; a manual switch-off holds
        if state.charging and soc >= spec.charge_stop:
            state.charging = False
            reason = f"SoC {_pct(soc)} >= {spec.charge_stop:g} %: charge off"
        elif not state.charging and soc <= spec.charge_start:
            state.charging = True
            reason = f"SoC {_pct(soc)} <= {spec.charge_start:g} %: charge on"
        elif first or prefix:  # the phase is enforced once at start (a restart counts as a crossing)
            phase = "charging" if state.charging else "resting"
            reason = f"SoC {_pct(soc)}, {phase} phase: charge {'on' if state.charging else 'off'}"
            reason = reason if prefix else "at start: " + reason
        else:
            return None
        reason = prefix + reason
        if charge_on is state.charging:
            self.status = f"{reason} (already {'on' if charge_on else 'off'})"
            return None
        return Decision(state.charging, reason)


# --------------------------------------------------------------------------------------------------
# Running it for one device


def state_file_name(alias: str) -> str:
    """``bat_state_<alias>.json`` with characters other than word characters, '.', ' ' and '-' as '_'."""
    return "bat_state_" + re.sub(r"[^\w_. -]", "_", alias) + ".json"


def _state_from(data: Mapping[str, Any] | None, now: float) -> tuple[SocState, str | None]:
    """The state in a loaded file (format ``{"algorithm_state": {"soc": {...}}}``), or a fresh one and why."""
    fresh = SocState(charging=True, last_calibration_time=now)
    if data is None:
        return fresh, None
    soc = data.get("algorithm_state", {})
    soc = soc.get("soc") if isinstance(soc, Mapping) else None
    if not isinstance(soc, Mapping):
        return fresh, "it has no soc algorithm state"
    charging, last = soc.get("charging"), soc.get("last_calibration_time")
    try:
        when = float(last) if isinstance(last, int | float) and not isinstance(last, bool) else math.nan
    except OverflowError:
        when = math.nan
    if not isinstance(charging, bool) or not math.isfinite(when):
        return fresh, "its soc algorithm state is incomplete"
    return SocState(charging=charging, last_calibration_time=when), None


class AlgorithmRunner:
    """The ``soc`` algorithm of one device or group, wired to the app."""

    def __init__(self, alias: str, spec: SocSpec, *, state_dir: Path | None, commands: CommandQueue, log: Log,
                 calibration_days: float = DEFAULT_CALIBRATION_DAYS, clock: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self.alias = alias
        self.spec = spec
        self.commands = commands
        self.log = log
        self.clock = clock
        self.mono = mono
        self._sent_at: float | None = None  # [monotonic s] when the pending decision was last sent
        self.file = StateFile(state_dir / state_file_name(alias), log=log) if state_dir is not None else None
        self.calibration_interval = calibration_days * 86400.0
        self.controller: SocController | None = None
        self.pending: Decision | None = None  # a decision the device has not accepted yet
        self._saved: tuple[bool, float] | None = None

    def load(self) -> SocController:
        """Read the persisted state (or start fresh: charging, last calibration = now)."""
        if self.controller is None:
            data = self.file.load() if self.file is not None else None
            state, why = _state_from(data, self.clock())
            if why is not None and self.file is not None:
                self.log.warning("algorithm state in %s not used (%s); starting fresh", self.file.path, why)
            self.controller = SocController(self.spec, state, self.calibration_interval)
            # a fresh state is written at the first sample, so the first start counts as the last calibration
            self._saved = (state.charging, state.last_calibration_time) if data is not None and why is None else None
            self.log.info("algorithm %s: %s", self.spec, self.controller.status)
        return self.controller

    async def on_sample(self, status: DeviceStatus, sample: Sample) -> None:
        """The sample hook: decide, ask for the switch, publish the reason, persist a changed state."""
        ctl = self.load()
        charge_on = sample.switches.get("charge") if sample.switches is not None else None
        decision = ctl.update(sample.soc, charge_on, full=reports_full(sample), now=self.clock())
        if decision is not None:
            self.log.info("algorithm: %s", decision.reason)
            self.pending = decision
            self._sent_at = None
        elif ctl.status != status.algorithm_status and status.algorithm_status is not None:
            self.log.info("algorithm: %s", ctl.status)
        status.algorithm_status = ctl.status
        self._send_pending(status, charge_on)
        await self._persist()

    def _send_pending(self, status: DeviceStatus, charge_on: bool | None) -> None:
        pending = self.pending
        if pending is None:
            return
        if charge_on is pending.on:
            self.pending = None  # the device is already there
            return
        if not status.available:
            return  # the first sample of a (re)connect: send with the next one
        if self._sent_at is not None and self.mono() - self._sent_at < RETRY_AFTER:
            return  # sent; the App may have refused it (and logged why), or the device not switched yet
        self.commands.put_nowait(SwitchCommand(self.alias, "charge", pending.on, "algorithm"))
        if charge_on is None:
            self.pending = None  # the device does not report the switch: there is no read-back to wait for
        else:
            self._sent_at = self.mono()

    async def _persist(self) -> None:
        ctl = self.controller
        if ctl is None:
            return
        now = (ctl.state.charging, ctl.state.last_calibration_time)
        if now == self._saved:
            return
        doc = {"algorithm_state": {"soc": {"charging": now[0], "last_calibration_time": now[1]}}}
        if self.file is None or await asyncio.to_thread(self.file.save, doc):
            self._saved = now

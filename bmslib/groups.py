"""Battery groups (``type: group_parallel`` / ``group_serial``): a virtual device built from its members.

A group is a :class:`~bmslib.drivers.base.Driver` without a radio. Its sampler reads it like any device;
:meth:`GroupDriver.read` combines the latest sample of every member, provided none is older than the
group's age limit. A member that is stale (or has not sampled yet) makes the read fail with the
member named, and the group is reported unavailable at once instead of quietly expiring.

Formulas (all in the model's sign: current and power positive while discharging):

=================  ===============================  ========================================
value              parallel                         serial
=================  ===============================  ========================================
voltage            mean                             sum
current            sum                              mean (a log line when members disagree
                                                    by more than 10 %)
power              sum                              sum
charge, capacity   sums                             the lowest member's charge, the
                                                    smallest capacity
SoC                capacity-weighted mean (plain    the lowest member's
                   mean when a capacity is missing)
SoH                capacity-weighted mean           the lowest
cycles             mean, rounded                    mean, rounded
cells, temps       concatenated in member order     concatenated in member order
MOSFET temp        the highest                      the highest
alarms             every member's, once each        every member's, once each
switches           on only when on in every member  on only when on in every member
=================  ===============================  ========================================

A sum, mean or minimum needs the value from every member; if one member lacks it the group reports
nothing for it rather than a wrong number. Switch commands go to every member.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar, Final, Literal

from bmslib.ble.backend import BleBackend
from bmslib.device import DeviceStatus
from bmslib.drivers.base import DeviceLog, Driver
from bmslib.errors import BmsError
from bmslib.family import DeviceType
from bmslib.model import DeviceInfo, Reading, Sample

if TYPE_CHECKING:
    from bmslib.config import DeviceConfig

GroupMode = Literal["parallel", "serial"]
MODES: Final[dict[str, GroupMode]] = {"group_parallel": "parallel", "group_serial": "serial"}

CURRENT_DISAGREEMENT: Final = 0.10  # serial: members' currents further apart than this (relative) are logged
CURRENT_FLOOR: Final = 5.0  # [A] the disagreement is relative to at least this much, so idle noise is not logged
LOG_EVERY: Final = 300.0  # [s] a repeated condition (stale member, disagreeing currents) is logged this often
MIN_AGE_LIMIT: Final = 60.0  # [s] age limit when expire_values_after is 0 (never expire)
FIRST_SAMPLE_WAIT: Final = 50.0  # [s] the first read waits this long for every member's first sample

#: (alias, switch name, on) -> accepted; App.request_switch
SwitchRequest = Callable[[str, str, bool], bool]


class GroupMemberStaleError(BmsError):
    """A member has no sample recent enough for the group."""


def age_limit(expire_values_after: float, sample_period: float) -> float:
    """How old a member sample may be: expire_values_after (at least two sample periods; 0 = 60 s)."""
    base = expire_values_after if expire_values_after > 0 else MIN_AGE_LIMIT
    return max(base, 2.0 * sample_period)


# --------------------------------------------------------------------------------------------------
# Formulas


def _every(values: Iterable[float | None]) -> list[float] | None:
    """All values, or None when one of them is missing."""
    out: list[float] = []
    for v in values:
        if v is None or not math.isfinite(v):
            return None
        out.append(v)
    return out or None


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _weighted(values: list[float] | None, weights: list[float] | None) -> float | None:
    if values is None:
        return None
    if weights is not None and all(w > 0 for w in weights):
        return sum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights)
    return _mean(values)


def _concat(parts: Iterable[tuple[float, ...] | None]) -> tuple[float, ...] | None:
    present = [p for p in parts if p]
    return tuple(v for p in present for v in p) if present else None


def combined_switches(samples: Sequence[Sample]) -> dict[str, bool] | None:
    """Switches every member reports; each is on only when it is on in every member."""
    maps = [s.switches for s in samples]
    if not maps or any(m is None for m in maps):
        return None
    names = set.intersection(*(set(m) for m in maps if m is not None))
    return {n: all(m[n] for m in maps if m is not None) for n in sorted(names)}


def _common(samples: Sequence[Sample]) -> Reading:
    """What parallel and serial groups combine the same way."""
    reading: Reading = {}
    if (cells := _concat(s.cell_voltages for s in samples)) is not None:
        reading["cell_voltages"] = cells
    if (temps := _concat(s.temperatures for s in samples)) is not None:
        reading["temperatures"] = temps
    mos = [s.mos_temperature for s in samples if s.mos_temperature is not None]
    if mos:
        reading["mos_temperature"] = max(mos)
    reported = [s.alarms for s in samples if s.alarms is not None]
    if reported:
        reading["alarms"] = tuple(dict.fromkeys(a for alarms in reported for a in alarms))
    if (cycles := _every(s.cycles for s in samples)) is not None:
        reading["cycles"] = round(_mean(cycles))
    if (switches := combined_switches(samples)) is not None:
        reading["switches"] = switches
    if (power := _every(s.power for s in samples)) is not None:
        reading["power"] = sum(power)
    return reading


def combine_parallel(samples: Sequence[Sample]) -> Reading:
    """One reading for members connected in parallel (same voltage, currents add up)."""
    reading = _common(samples)
    volts = _every(s.voltage for s in samples)
    if volts is not None:
        reading["voltage"] = _mean(volts)
    for key in ("current", "charge", "capacity"):
        values = _every(getattr(s, key) for s in samples)
        if values is not None:
            reading[key] = sum(values)
    caps = _every(s.capacity for s in samples)
    if (soc := _weighted(_every(s.soc for s in samples), caps)) is not None:
        reading["soc"] = soc
    if (soh := _weighted(_every(s.soh for s in samples), caps)) is not None:
        reading["soh"] = soh
    return reading


def combine_serial(samples: Sequence[Sample]) -> tuple[Reading, bool]:
    """One reading for members connected in series (voltages add up, the same current flows).

    Also returns whether the members' currents disagree by more than 10 %.
    """
    reading = _common(samples)
    volts = _every(s.voltage for s in samples)
    if volts is not None:
        reading["voltage"] = sum(volts)
    disagree = False
    currents = _every(s.current for s in samples)
    if currents is not None:
        mean = _mean(currents)
        reading["current"] = mean
        disagree = max(currents) - min(currents) > CURRENT_DISAGREEMENT * max(abs(mean), CURRENT_FLOOR)
    for key in ("soc", "charge", "capacity", "soh"):
        values = _every(getattr(s, key) for s in samples)
        if values is not None:
            reading[key] = min(values)
    return reading, disagree


# --------------------------------------------------------------------------------------------------
# The driver


class GroupDriver(Driver):
    """A group of configured devices, read from their latest samples."""

    request_timeout: ClassVar[float] = 1.0

    def __init__(self, config: DeviceConfig, *, address: str, backend: BleBackend, log: DeviceLog,
                 members: Sequence[DeviceStatus] = (), max_age: float = 20.0,
                 request_switch: SwitchRequest | None = None,
                 on_stale: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config, address=address, backend=backend, log=log)
        self.mode: GroupMode = MODES[config.type]
        self.members = tuple(members)
        self.max_age = max_age
        self.request_switch = request_switch
        self.on_stale = on_stale
        self.clock = clock
        self._connected = False
        self._started = False  # a first complete read happened
        self._logged_at: dict[str, float] = {}  # condition -> when it was last logged
        self.device_info = DeviceInfo(manufacturer="batmon", model=f"{self.mode} group",
                                      name=f"{self.mode} group of {', '.join(m.alias for m in self.members)}")

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def offered_switches(self) -> frozenset[str]:
        """The switches every member offers (members may narrow theirs once they know their variant)."""
        return member_switches(m.switches for m in self.members)

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    def _log_limited(self, key: str, level: int, message: str, *args: object) -> None:
        now = self.clock()
        last = self._logged_at.get(key)
        if last is None or now - last >= LOG_EVERY:
            self._logged_at[key] = now
            self.log.log(level, message, *args)

    def fresh_samples(self) -> list[Sample]:
        """The members' latest samples; raises :class:`GroupMemberStaleError` naming the members that are too old."""
        now = self.clock()
        samples: list[Sample] = []
        waiting: list[str] = []
        stale: list[str] = []
        for member in self.members:
            sample = member.last_sample
            if sample is None:
                waiting.append(member.alias)
                continue
            age = now - sample.mono
            if age > self.max_age:
                stale.append(member.alias)
                self._log_limited(f"stale:{member.alias}", logging.WARNING,
                                  "member %s: last sample %.0f s ago (limit %g s); the group is unavailable",
                                  member.alias, age, self.max_age)
            else:
                self._logged_at.pop(f"stale:{member.alias}", None)
                samples.append(sample)
        if stale or waiting:
            parts = []
            if stale:
                parts.append(f"no sample within {self.max_age:g} s from member {', '.join(stale)}")
            if waiting:
                parts.append(f"waiting for the first sample of member {', '.join(waiting)}")
            message = "; ".join(parts)
            if stale and self.on_stale is not None:
                self.on_stale(message)
            raise GroupMemberStaleError(message)
        return samples

    async def read(self) -> Reading:
        if not self._started:  # members connect at the same time as the group starts: wait for them quietly
            deadline = self.clock() + FIRST_SAMPLE_WAIT
            while any(m.last_sample is None for m in self.members) and self.clock() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # (statuses have no event to wait on; this runs once, at start)
        samples = self.fresh_samples()
        self._started = True
        if self.mode == "parallel":
            return combine_parallel(samples)
        reading, disagree = combine_serial(samples)
        if disagree:
            shown = ", ".join(f"{m.alias} {s.current:.2f} A" for m, s in zip(self.members, samples, strict=True))
            self._log_limited("disagree", logging.WARNING, "serial members report different currents (%s); check "
                              "the wiring and current_calibration (logged at most every %.0f s)", shown, LOG_EVERY)
        return reading

    async def set_switch(self, name: str, on: bool) -> None:
        """Ask every member to switch; the group's read-back shows the combined state."""
        if self.request_switch is None:
            raise BmsError("this group cannot send switch commands")
        refused = [m.alias for m in self.members if not self.request_switch(m.alias, name, on)]
        if refused:
            word = "on" if on else "off"
            raise BmsError(f"switch {name} {word} refused by member {', '.join(refused)} (the others were asked)")


def member_switches(types: Iterable[frozenset[str]]) -> frozenset[str]:
    """The switches a group offers: those every member offers."""
    sets = list(types)
    return frozenset.intersection(*sets) if sets else frozenset()


def group_device_type(type_name: str, switches: frozenset[str]) -> DeviceType:
    """A :class:`DeviceType` for one configured group (its switches depend on its members)."""
    return DeviceType(type_name, f"{MODES[type_name]} group of configured devices", GroupDriver, switches,
                      in_demo=False, radio=False)

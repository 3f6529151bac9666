"""The group driver: a :class:`~bmslib.drivers.base.Driver` without a radio, read from its members' samples.

Its sampler reads a group like any device; :meth:`GroupDriver.read` combines (:mod:`bmslib.groups.combine`)
the latest sample of every member, provided none is older than the group's age limit. A member that is
stale (or has not sampled yet) makes the read fail with :class:`GroupMemberStaleError` naming it, an
:class:`~bmslib.errors.UnavailableError`: the sampler hands it to the App, which reports the group
unavailable at once instead of letting it quietly expire.

The narrow interface to the App: the group reads its members through :class:`Member` (read-only; a
:class:`~bmslib.device.DeviceStatus` is one) and asks for a switch by putting one
:class:`~bmslib.commands.SwitchCommand` per member on the App's :class:`~bmslib.commands.CommandQueue`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, Final, Protocol

from bmslib.ble.backend import BleBackend
from bmslib.commands import CommandQueue, SwitchCommand
from bmslib.config.settings import GROUP_MODES
from bmslib.drivers.base import DeviceLog, Driver
from bmslib.errors import BmsError, UnavailableError
from bmslib.groups.combine import combine_parallel, combine_serial, member_switches
from bmslib.model import DeviceInfo, Reading, Sample

if TYPE_CHECKING:
    from bmslib.config.settings import DeviceConfig

LOG_EVERY: Final = 300.0  # [s] a repeated condition (stale member, disagreeing currents) is logged this often
MIN_AGE_LIMIT: Final = 60.0  # [s] age limit when expire_values_after is 0 (never expire)
FIRST_SAMPLE_WAIT: Final = 50.0  # [s] the first read waits this long for every member's first sample


class Member(Protocol):
    """What a group reads of one member (a :class:`~bmslib.device.DeviceStatus`); it writes nothing."""

    @property
    def alias(self) -> str: ...

    @property
    def last_sample(self) -> Sample | None: ...

    @property
    def available(self) -> bool: ...

    @property
    def switches(self) -> frozenset[str]: ...


class GroupMemberStaleError(UnavailableError):
    """A member has no sample recent enough for the group (``stale``), or none yet (``waiting``)."""

    def __init__(self, message: str, *, stale: tuple[str, ...] = (), waiting: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.stale = stale
        self.waiting = waiting


def age_limit(expire_values_after: float, sample_period: float) -> float:
    """How old a member sample may be: expire_values_after (at least two sample periods; 0 = 60 s)."""
    base = expire_values_after if expire_values_after > 0 else MIN_AGE_LIMIT
    return max(base, 2.0 * sample_period)


class GroupDriver(Driver):
    """A group of configured devices, read from their latest samples."""

    request_timeout: ClassVar[float] = 1.0

    def __init__(self, config: DeviceConfig, *, address: str, backend: BleBackend, log: DeviceLog,
                 members: Sequence[Member] = (), max_age: float = 20.0, commands: CommandQueue | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config, address=address, backend=backend, log=log)
        self.mode = GROUP_MODES[config.type]
        self.members = tuple(members)
        self.max_age = max_age
        self.commands = commands
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
            raise GroupMemberStaleError("; ".join(parts), stale=tuple(stale), waiting=tuple(waiting))
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
        """Ask every member to switch (through the App's command queue); the group's read-back shows the result.

        The App decides on each command and logs a refusal on the member's log. A member that is offline or
        lacks the switch is named in the error raised here, as the App will refuse it.
        """
        if self.commands is None:
            raise BmsError("this group cannot send switch commands")
        refused = [m.alias for m in self.members if not m.available or name not in m.switches]
        for member in self.members:
            self.commands.put_nowait(SwitchCommand(member.alias, name, on, "group"))
        if refused:
            word = "on" if on else "off"
            raise BmsError(f"switch {name} {word} refused by member {', '.join(refused)} (the others were asked)")


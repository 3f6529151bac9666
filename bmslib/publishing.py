"""What is published, and when: one place for every publishing decision.

Per device (:class:`DevicePublisher`, one per device, fed by the App with each sample):

* **Averaging.** Between two publishes, voltage, current and power are averaged; everything else is the
  latest value. The window resets at every publish (even when it holds one sample).
* **The schedule.** The sample nearest the end of a ``publish_period`` is published: one that comes less
  than half a sample interval before the period is over is on time, because the next one would come half
  an interval or more after it. Without that slack, samples that arrive a few milliseconds early (reads
  take varying time) would wait a whole interval, and with ``publish_period`` equal to ``sample_period``
  only about every other sample would be published.
* **Power jumps.** A sudden power change publishes at once, so loads that switch on or off show up
  without waiting for ``publish_period``.
* **After a switch command** the next sample is published whatever the schedule says, and for
  :data:`SWITCH_ECHO` seconds after a command from Home Assistant the switch states are re-sent with
  every sample, changed or not (so a switch that did not move flips back in the UI at once).
* **Meters** go to the sinks every :data:`METER_PUBLISH_PERIOD`, right after one of the device's samples
  (so a burst of meters never holds up the states, and each device keeps its own sampling phase).

For the MQTT sink, which skips a state whose payload did not change, :class:`StateResend` says when
such a state is sent again all the same: the heartbeat (at most :data:`HEARTBEAT_MAX` apart, fewer than
``expire_values_after`` allows to lapse, spread out over time by a burst limit) and :data:`SETTLE`
seconds after a device's discovery was (re)published.

Pure decisions on the times it is given: no clock, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Final

from bmslib.model import Sample

#: [s] a device's meters go to the sinks this often, right after one of its samples (and for every
#: device at start and shutdown)
METER_PUBLISH_PERIOD: Final = 30.0
SWITCH_ECHO: Final = 8.0  # [s] after a command from MQTT the switch states are re-sent with every sample
HEARTBEAT_MAX: Final = 60.0  # [s] unchanged states are re-sent at least this often
HEARTBEAT_BURST_MIN: Final = 50  # re-sends per heartbeat tick allowed whatever the number of states
SETTLE: Final = 0.5  # [s] after discovery was (re)published, the device's states are sent again
POWER_JUMP = 0.15  # relative change that publishes at once
POWER_JUMP_FLOOR = 50.0  # [W] changes are relative to at least this much, so idle noise is no jump


class Averager:
    """Mean of voltage, current and power over the samples since the last :meth:`pop`."""

    _FIELDS = ("voltage", "current", "power")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._sums = dict.fromkeys(self._FIELDS, 0.0)
        self._counts = dict.fromkeys(self._FIELDS, 0)
        self._samples = 0
        self._last: Sample | None = None

    def add(self, sample: Sample) -> None:
        for f in self._FIELDS:
            v = getattr(sample, f)
            if v is not None and math.isfinite(v):
                self._sums[f] += v
                self._counts[f] += 1
        self._samples += 1
        self._last = sample

    def pop(self) -> Sample | None:
        """The latest sample with V, I, P replaced by their means; resets the window."""
        last = self._last
        if last is None:
            return None
        if self._samples == 1:  # the window is this one sample: its values are the means
            self._reset()
            return last
        means = {f: self._sums[f] / self._counts[f] if self._counts[f] else getattr(last, f) for f in self._FIELDS}
        self._reset()
        return dataclasses.replace(last, voltage=means["voltage"], current=means["current"], power=means["power"])


class PublishSchedule:
    """Decides when a device's averaged sample is published."""

    def __init__(self, period: float) -> None:
        self.period = period
        self._last_at: float | None = None
        self._last_power: float | None = None
        self._last_sample_at: float | None = None

    def due(self, sample: Sample, now: float) -> bool:
        previous, self._last_sample_at = self._last_sample_at, now
        if self._last_at is None:
            return True
        # half the interval since the previous sample (the next is expected as far off), at most half a period
        slack = min(now - previous, self.period) / 2 if previous is not None else 0.0
        if now - self._last_at >= self.period - slack - 1e-6:
            return True
        return self.is_power_jump(sample.power)

    def is_power_jump(self, power: float | None) -> bool:
        ref = self._last_power
        if power is None or ref is None:
            return False
        return abs(power - ref) > POWER_JUMP * max(abs(ref), POWER_JUMP_FLOOR)

    def published(self, sample: Sample, now: float, raw_power: float | None) -> None:
        self._last_at = now
        self._last_power = raw_power if raw_power is not None else sample.power


@dataclass(frozen=True, slots=True)
class Decision:
    """What the sinks do with one sample besides taking it as it is (InfluxDB writes every sample)."""

    #: the sample to publish now (voltage, current and power averaged since the previous publish); None: not now
    published: Sample | None = None
    #: re-send the switch states even when unchanged (a switch command from Home Assistant is recent)
    echo_switches: bool = False


#: the decision for a sample that is neither published nor echoed
QUIET: Final = Decision()
_ECHO: Final = Decision(echo_switches=True)


class DevicePublisher:
    """Every publishing decision for one device: averaging, schedule, power jumps, the publish after a
    switch command, the switch echo and when its meters are due."""

    def __init__(self, publish_period: float, *, meter_period: float = METER_PUBLISH_PERIOD,
                 switch_echo: float = SWITCH_ECHO) -> None:
        self.averager = Averager()
        self.schedule = PublishSchedule(publish_period)
        self.meter_period = meter_period
        self.switch_echo = switch_echo
        self._force = False
        self._echo_until = -math.inf
        self._meters_due = 0.0

    def decide(self, sample: Sample, now: float) -> Decision:
        """Take a fresh ``sample`` (arrived at monotonic ``now``): what the sinks do with it."""
        self.averager.add(sample)
        echo = now < self._echo_until
        if self._force or self.schedule.due(sample, now):
            self._force = False
            avg = self.averager.pop()
            if avg is not None:
                self.schedule.published(avg, now, sample.power)
                return Decision(avg, echo)
        return _ECHO if echo else QUIET

    def switch_commanded(self, now: float, *, echo: bool) -> None:
        """A switch command was accepted at ``now``: publish the next sample; with ``echo`` (the command came
        from Home Assistant) re-send the switch states with every sample for a while."""
        self._force = True
        if echo:
            self._echo_until = now + self.switch_echo

    def meters_due(self, now: float) -> bool:
        """True when the device's meters should go out now (after this sample); the next are due a period on."""
        if now < self._meters_due:
            return False
        self._meters_due = now + self.meter_period
        return True

    def meters_sent(self, now: float) -> None:
        """The meters went out at ``now`` outside a sample (start, shutdown): the next are due a period on."""
        self._meters_due = now + self.meter_period


@dataclass(frozen=True, slots=True)
class StateResend:
    """When a state whose payload did not change is sent again all the same (for a sink that skips repeats)."""

    heartbeat: float  # [s] an unchanged state is re-sent at least this often
    settle: float = SETTLE  # [s] after a device's discovery was (re)published, its states go out again

    @classmethod
    def for_expiry(cls, expire_values_after: float, *, settle: float = SETTLE) -> StateResend:
        """Heartbeat twice within ``expire_values_after`` (0: values never expire), at most HEARTBEAT_MAX."""
        heartbeat = min(expire_values_after / 2, HEARTBEAT_MAX) if expire_values_after > 0 else HEARTBEAT_MAX
        return cls(heartbeat, settle)

    @property
    def tick(self) -> float:
        """[s] how often the heartbeat looks for states due."""
        return max(0.05, min(1.0, self.heartbeat / 4))

    def budget(self, states: int) -> int:
        """Re-sends allowed per tick with ``states`` states to keep alive. States sent together (devices start
        together) would otherwise come due together at every heartbeat, all in one burst; spread out, each
        still goes out within 2/3 of a heartbeat of coming due."""
        return max(HEARTBEAT_BURST_MIN, math.ceil(1.5 * states * self.tick / self.heartbeat))

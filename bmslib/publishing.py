"""Between two publishes, voltage, current and power are averaged; everything else is the latest value.

The window resets at every publish (even when it holds one sample). A sudden power change publishes
at once, so loads that switch on or off show up without waiting for ``publish_period``.

The sample nearest the end of a period is published: one that comes less than half a sample
interval before the period is over is on time, because the next one would come half an interval or
more after it. Without that slack, samples that arrive a few milliseconds early (reads take varying
time) would wait a whole interval, and with ``publish_period`` equal to ``sample_period`` only about
every other sample would be published.
"""

from __future__ import annotations

import dataclasses
import math

from bmslib.model import Sample

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

"""Energy meters: trapezoidal integrals of every raw sample, per device, and their state file.

Sign, defined once: the model's current and power are positive while the battery **discharges**
(``current_calibration`` is already applied by the sampler; ``invert_current`` acts only on the
published current and power and never here). So

* ``total_energy_charge``    [kWh] = integral of max(0, -P): energy into the battery, only increases
* ``total_energy_discharge`` [kWh] = integral of max(0, +P): energy out of the battery, only increases
* ``total_energy``           [kWh] = integral of -P = charge - discharge (net energy into the battery)
* ``total_charge``           [Ah]  = integral of -I (net charge into the battery)
* ``total_cycles``           [1]   = SoC travelled / 200 % (100 -> 0 -> 100 % is one cycle), with a
  deadband so that a SoC flickering between two neighbouring values does not count
* ``total_abs_diff_charge``  [Ah]  = remaining charge travelled (the add-on we replace keeps it too)

Robustness: a missing or non-finite value is skipped (the segment is bridged to the next valid value
if that is within the gap limit); time comes from the monotonic clock (``Sample.mono``), so a
wall-clock step neither raises nor adds energy; a gap longer than ``max(600 s, 2 x sample_period)`` is
not integrated and is counted (:attr:`MeterSet.gaps`).

The state file ``bms_meter_states.json`` has the format of the add-on we replace, so its totals carry
over: ``{"<alias>": {"<meter>": {"reading": <number>}, ...}, ...}``. Entries of devices that are not
configured (any more) are kept as they are.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bmslib.model import Sample
from bmslib.state_store import StateFile

METER_FILE: Final = "bms_meter_states.json"

#: Meter names, in the order the add-on we replace keeps them.
METER_NAMES: Final = ("total_charge", "total_energy", "total_energy_discharge", "total_energy_charge",
                      "total_cycles", "total_abs_diff_charge")
#: Meters that never decrease.
INCREASING: Final = frozenset({"total_energy_discharge", "total_energy_charge", "total_cycles",
                               "total_abs_diff_charge"})

MIN_MAX_GAP: Final = 600.0  # [s] gaps up to this long are always integrated
SOC_DEADBAND: Final = 1.0  # [%] width of the cycle counter's dead band (one step of a 1 % SoC)
SOC_MAX_JUMP: Final = 20.0  # [%] a SoC jump larger than this between two samples is a re-calibration, not cycling
CHARGE_MAX_JUMP: Final = 0.2  # fraction of the capacity: a larger jump of the remaining charge is not counted

_WS_PER_KWH: Final = 3.6e6
_AS_PER_AH: Final = 3600.0


def max_gap(sample_period: float) -> float:
    """The longest time step that is integrated: max(600 s, 2 x sample_period)."""
    return max(MIN_MAX_GAP, 2.0 * sample_period)


def _valid(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _positive_part(y0: float, y1: float, dt: float) -> float:
    """Integral of max(0, y) over a step where y goes linearly from y0 to y1 in dt (exact at a zero crossing)."""
    if y0 >= 0 and y1 >= 0:
        return dt * (y0 + y1) / 2
    if y0 <= 0 and y1 <= 0:
        return 0.0
    top = max(y0, y1)
    return dt * top / (abs(y0) + abs(y1)) * top / 2  # the triangle above zero


@dataclass
class Integrator:
    """Trapezoidal integral of ``y`` over monotonic time, divided by ``scale``.

    ``positive_only``: integrate max(0, y), so the total never decreases.
    """

    scale: float
    max_gap: float
    positive_only: bool = False
    total: float = 0.0
    _last: tuple[float, float] | None = field(default=None, repr=False)

    def add(self, t: float, y: float | None) -> bool:
        """Add the point (t, y). Returns True when the step from the previous point was too long (not integrated)."""
        if y is None or not math.isfinite(y) or not math.isfinite(t):
            return False  # skipped: the next valid point bridges over it
        gap = False
        if self._last is not None:
            t0, y0 = self._last
            dt = t - t0
            if dt < 0 or dt > self.max_gap:
                gap = True
            elif self.positive_only:
                self.total += _positive_part(y0, y, dt) / self.scale
            else:
                self.total += dt * (y0 + y) / 2 / self.scale
        self._last = (t, y)
        return gap


@dataclass
class SwingCounter:
    """Sum of the distance a value travels, through a dead band (a play operator of width ``deadband``).

    The tracked point follows the value but lags it by up to half the band, so a value flickering
    between two neighbours no further apart than the band adds nothing, while steady movement counts in
    full (a reversal costs the band once). A jump larger than ``max_jump`` (or a gap longer than
    ``max_gap``) restarts tracking at the new value without counting.
    """

    deadband: float
    max_gap: float
    divisor: float = 1.0
    total: float = 0.0
    _last_t: float | None = field(default=None, repr=False)
    _tracked: float | None = field(default=None, repr=False)
    _last_y: float | None = field(default=None, repr=False)

    def add(self, t: float, y: float | None, max_jump: float = math.inf) -> bool:
        """Add the point (t, y). Returns True when the step was a gap (not counted)."""
        if y is None or not math.isfinite(y) or not math.isfinite(t):
            return False
        gap = False
        if self._tracked is None or self._last_t is None or self._last_y is None:
            self._tracked = y
        else:
            dt = t - self._last_t
            if dt < 0 or dt > self.max_gap:
                gap = True
                self._tracked = y
            elif abs(y - self._last_y) > max_jump:
                self._tracked = y
            else:
                half = self.deadband / 2
                tracked = max(y - half, min(y + half, self._tracked))
                self.total += abs(tracked - self._tracked) / self.divisor
                self._tracked = tracked
        self._last_t, self._last_y = t, y
        return gap


class MeterSet:
    """The meters of one device. Feed every raw sample to :meth:`add`."""

    def __init__(self, max_gap: float, readings: Mapping[str, float] | None = None) -> None:
        self.max_gap = max_gap
        self.charge = Integrator(_AS_PER_AH, max_gap)
        self.energy = Integrator(_WS_PER_KWH, max_gap)
        self.energy_discharge = Integrator(_WS_PER_KWH, max_gap, positive_only=True)
        self.energy_charge = Integrator(_WS_PER_KWH, max_gap, positive_only=True)
        self.cycles = SwingCounter(SOC_DEADBAND, max_gap, divisor=200.0)
        self.abs_diff_charge = SwingCounter(0.0, max_gap)
        self.gaps = 0  # steps longer than max_gap that were not integrated
        self.gap_seconds = 0.0  # their total length
        self._last_mono: float | None = None
        if readings:
            self.restore(readings)

    def _meters(self) -> dict[str, Integrator | SwingCounter]:
        return {"total_charge": self.charge, "total_energy": self.energy,
                "total_energy_discharge": self.energy_discharge, "total_energy_charge": self.energy_charge,
                "total_cycles": self.cycles, "total_abs_diff_charge": self.abs_diff_charge}

    def restore(self, readings: Mapping[str, float]) -> None:
        """Set totals (from the state file). Unknown names are ignored; the restart gap is not integrated."""
        for name, meter in self._meters().items():
            if name in readings:
                meter.total = float(readings[name])

    def add(self, sample: Sample) -> None:
        t = sample.mono
        if self._last_mono is not None and (t - self._last_mono > self.max_gap or t < self._last_mono):
            self.gaps += 1
            self.gap_seconds += abs(t - self._last_mono)
        self._last_mono = t
        current, power = sample.current, sample.power
        into_current = -current if current is not None else None
        into_power = -power if power is not None else None
        self.charge.add(t, into_current)
        self.energy.add(t, into_power)
        self.energy_discharge.add(t, power)
        self.energy_charge.add(t, into_power)
        self.cycles.add(t, sample.soc, SOC_MAX_JUMP)
        cap = sample.capacity
        self.abs_diff_charge.add(t, sample.charge, CHARGE_MAX_JUMP * cap if cap and cap > 0 else math.inf)

    def readings(self) -> dict[str, float]:
        """Meter name -> total, in :data:`METER_NAMES` order."""
        return {name: meter.total for name, meter in self._meters().items()}


# --------------------------------------------------------------------------------------------------
# The state file


def _reading(value: object) -> float | None:
    if isinstance(value, Mapping):
        value = value.get("reading")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer beyond the float range
        return None


def parse_meter_entry(alias: str, entry: object) -> tuple[dict[str, float], list[str]]:
    """The usable totals of one device's entry, and a description of each part that could not be used."""
    problems: list[str] = []
    if not isinstance(entry, Mapping):
        return {}, [f"{alias}: every meter (the entry is {type(entry).__name__}, not a mapping)"]
    values: dict[str, float] = {}
    for name, raw in entry.items():
        if name not in METER_NAMES:
            continue  # kept as it is, not ours to judge
        value = _reading(raw)
        if value is None:
            problems.append(f"{alias}.{name} (not a number: {str(raw)[:40]})")
        elif not math.isfinite(value) and name not in ("total_energy", "total_charge"):
            problems.append(f"{alias}.{name} (not a finite number: {value})")
        elif name in INCREASING and value < 0:
            problems.append(f"{alias}.{name} (negative: {value})")
        else:
            values[name] = value
    _repair_net_meters(alias, values, problems)
    return values, problems


def _repair_net_meters(alias: str, values: dict[str, float], problems: list[str]) -> None:
    """The add-on we replace could persist NaN for the net meters; rebuild what can be rebuilt."""
    energy = values.get("total_energy")
    if energy is not None and not math.isfinite(energy):
        charge, discharge = values.get("total_energy_charge"), values.get("total_energy_discharge")
        if charge is not None and discharge is not None:
            values["total_energy"] = charge - discharge
        else:
            del values["total_energy"]
            problems.append(f"{alias}.total_energy (NaN)")
    ah = values.get("total_charge")
    if ah is not None and not math.isfinite(ah):
        del values["total_charge"]
        problems.append(f"{alias}.total_charge (NaN)")


class MeterBook:
    """The meters of every device, and the state file they are loaded from and saved to.

    What the file holds for aliases that are not configured is written back unchanged.
    """

    def __init__(self, path: Path, *, log: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> None:
        self.file = StateFile(path, log=log)
        self.log = log
        self.sets: dict[str, MeterSet] = {}
        self._kept: dict[str, Any] = {}  # file entries of aliases without a MeterSet, as read
        self._extra: dict[str, dict[str, Any]] = {}  # unknown keys in configured devices' entries
        self.loaded = False  # nothing is saved before the file was read (it would overwrite the totals)

    def add_device(self, alias: str, max_gap_s: float) -> MeterSet:
        meters = self.sets[alias] = MeterSet(max_gap_s)
        return meters

    def load(self) -> None:
        """Read the state file; set the configured devices' totals. Problems are logged, never fatal."""
        data = self.file.load()
        self.loaded = True
        if data is None:
            self.log.info("no meter states in %s yet: meters start from zero", self.file.path)
            return
        problems: list[str] = []
        for alias, entry in data.items():
            if alias not in self.sets:
                self._kept[alias] = entry
                continue
            values, bad = parse_meter_entry(alias, entry)
            problems += bad
            self.sets[alias].restore(values)
            if isinstance(entry, Mapping):
                self._extra[alias] = {k: v for k, v in entry.items() if k not in METER_NAMES}
        if problems:
            aside = self.file.keep_copy()
            where = f"; the file as read is kept as {aside.name}" if aside is not None else ""
            self.log.error("meter states in %s: could not use %s; those meters start from zero%s",
                           self.file.path, ", ".join(problems), where)
        restored = [a for a in self.sets if a in data]
        if restored:
            self.log.info("meter states restored for %s from %s", ", ".join(restored), self.file.path)
        if self._kept:
            self.log.info("meter states kept for devices not in the configuration: %s", ", ".join(self._kept))

    def document(self) -> dict[str, Any]:
        """What :meth:`save` writes: the file's format, all configured devices plus the kept entries."""
        doc: dict[str, Any] = dict(self._kept)
        for alias, meters in self.sets.items():
            entry: dict[str, Any] = dict(self._extra.get(alias, {}))
            entry.update({name: {"reading": value} for name, value in meters.readings().items()})
            doc[alias] = entry
        return doc

    def save(self, doc: Mapping[str, Any] | None = None) -> bool:
        """Write ``doc`` (default: :meth:`document`) atomically. False when it could not be written (logged)."""
        if not self.loaded:
            return False
        return self.file.save(self.document() if doc is None else doc)

    def readings(self, alias: str) -> dict[str, float]:
        meters = self.sets.get(alias)
        return meters.readings() if meters is not None else {}

    def aliases(self) -> Iterable[str]:
        return self.sets.keys()

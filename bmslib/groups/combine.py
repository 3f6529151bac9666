"""How a group combines its members' samples into one reading: pure functions, no I/O, no asyncio.

All values are in the model's sign (current and power positive while discharging):

=================  ===============================  ========================================
value              parallel                         serial
=================  ===============================  ========================================
voltage            mean                             sum
current            sum                              mean (flagged when members disagree
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
nothing for it rather than a wrong number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Final

from bmslib.model import Reading, Sample

CURRENT_DISAGREEMENT: Final = 0.10  # serial: members' currents further apart than this (relative) are flagged
CURRENT_FLOOR: Final = 5.0  # [A] the disagreement is relative to at least this much, so idle noise is not flagged


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




def member_switches(types: Iterable[frozenset[str]]) -> frozenset[str]:
    """The switches a group offers: those every member offers."""
    sets = list(types)
    return frozenset.intersection(*sets) if sets else frozenset()

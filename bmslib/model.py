"""The one sample model: what a BMS reading is, with units and the current's sign in the types.

Sign convention (the same as the add-on batmon replaces): **current and power are positive while
the battery discharges** and negative while it charges. Protocol decoders convert the wire sign to
this convention; the published sign is chosen once, at the output boundary (``invert_current``).

Decoders return a :class:`Reading` (the fields one frame carries); drivers merge the readings of one
read into one, and the sampler (and the ``decode`` command) builds a frozen :class:`Sample` from it
with :meth:`Sample.build`, which is also the one place where derived values (power from V x I, SoC from
charge/capacity, ...) are computed.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

#: Names of the switches a device may offer.
SWITCH_NAMES = ("charge", "discharge", "balance")

#: The charging stages ``battery_mode`` takes (those of the add-on batmon replaces).
BATTERY_MODES = ("UNKNOWN", "BULK", "ABSORPTION", "FLOAT")

#: [A] a current (in the model's sign) below minus this counts as charging; above it as discharging
#: for the runtime estimate. Smaller currents are the idle noise of a BMS's current sensor.
IDLE_CURRENT = 0.1

#: ``extra`` entries decoders report under their own names, and the sample field each one feeds
#: when the reading lacks it (JBD, SOK, ANT: protection bits; JK: aged capacity; JK, ANT: charge
#: throughput; ANT: discharged Ah).
_FROM_EXTRA = (("problem_code", "protection_bitmask"), ("aged_capacity", "aged_capacity"),
               ("cycle_capacity", "cycle_capacity"),
               ("cycle_capacity", "total_cycle_capacity"), ("total_charge_net", "total_discharged"))
_EXTRA_KEYS = frozenset(key for _, key in _FROM_EXTRA)
_NUMBER_TYPES = (int, float)  # exact types: a bool flag is no number here

ExtraValue = float | int | str | bool


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What a device says about itself. Every field is optional."""

    manufacturer: str | None = None
    model: str | None = None
    hw_version: str | None = None
    sw_version: str | None = None
    serial: str | None = None
    name: str | None = None

    def merged(self, other: DeviceInfo | None) -> DeviceInfo:
        """Fields of ``other`` override ours where they are set. ``self`` itself when that changes nothing
        (the sampler merges the driver's info at every sample; it rarely changes)."""
        if other is None or other is self:
            return self
        changes = {name: v for name in _INFO_FIELDS
                   if (v := getattr(other, name)) is not None and v != getattr(self, name)}
        return dataclasses.replace(self, **changes) if changes else self

    def as_dict(self) -> dict[str, str]:
        return {f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None}


_INFO_FIELDS = tuple(f.name for f in dataclasses.fields(DeviceInfo))


class Reading(TypedDict, total=False):
    """The fields one decoded frame carries (a partial sample). Units and sign as in :class:`Sample`."""

    voltage: float
    current: float
    power: float
    soc: float
    charge: float
    capacity: float
    cycles: int
    temperatures: tuple[float, ...]
    mos_temperature: float
    balance_current: float
    cell_voltages: tuple[float, ...]
    switches: dict[str, bool]
    soh: float
    alarms: tuple[str, ...]
    uptime: float
    runtime: float
    problem_code: int
    aged_capacity: float
    cycle_capacity: float
    total_charge_net: float
    battery_charging: bool
    battery_mode: str
    extra: dict[str, ExtraValue]
    device_info: DeviceInfo


def merge_readings(*readings: Reading) -> Reading:
    """Later readings override earlier ones field by field; ``switches`` and ``extra`` are merged."""
    out: Reading = {}
    for r in readings:
        for key, value in r.items():
            if key in ("switches", "extra") and key in out:
                merged = dict(out[key])  # type: ignore[literal-required]
                merged.update(value)  # type: ignore[call-overload]
                out[key] = merged  # type: ignore[literal-required]
            elif key == "device_info" and "device_info" in out:
                out["device_info"] = out["device_info"].merged(value)  # type: ignore[arg-type]
            else:
                out[key] = value  # type: ignore[literal-required]
    return out


#: fields :meth:`Sample.build` makes floats (non-finite: None), and the series it makes tuples of finite floats
_NUMBER_FIELDS = frozenset({"voltage", "current", "power", "soc", "charge", "capacity", "mos_temperature",
                            "balance_current", "soh", "uptime", "runtime", "aged_capacity", "cycle_capacity",
                            "total_charge_net"})
_SERIES_FIELDS = frozenset({"temperatures", "cell_voltages"})
_MAPPING_FIELDS = frozenset({"switches", "extra"})  # copied into dicts of their own


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a battery. ``None`` means the device does not report the value."""

    timestamp: float  # [s] wall clock (time.time()) when the reading completed
    mono: float  # [s] monotonic clock (time.monotonic()) at the same moment; used for integration
    voltage: float | None = None  # [V] pack voltage
    current: float | None = None  # [A] positive = discharging, negative = charging
    power: float | None = None  # [W] positive = discharging, negative = charging
    soc: float | None = None  # [%] state of charge 0..100
    charge: float | None = None  # [Ah] remaining charge
    capacity: float | None = None  # [Ah] full capacity
    cycles: int | None = None  # full cycles counted by the BMS
    temperatures: tuple[float, ...] | None = None  # [°C] cell/pack probes, in device order
    mos_temperature: float | None = None  # [°C] MOSFET / power stage
    balance_current: float | None = None  # [A]
    cell_voltages: tuple[float, ...] | None = None  # [V] in cell order
    switches: Mapping[str, bool] | None = None  # name -> on; names from SWITCH_NAMES
    soh: float | None = None  # [%] state of health
    alarms: tuple[str, ...] | None = None  # decoded alarm names; () = no alarm, None = not reported
    uptime: float | None = None  # [s] device uptime
    runtime: float | None = None  # [s] time until empty (reported by the device or estimated)
    problem_code: int | None = None  # the device's raw protection/fault bitmask (0 = no problem)
    aged_capacity: float | None = None  # [Ah] full capacity after ageing (reported, or capacity x SoH)
    cycle_capacity: float | None = None  # [Ah] lifetime charge throughput the BMS counts
    total_charge_net: float | None = None  # [Ah] lifetime charge the BMS counts as discharged
    battery_charging: bool | None = None  # charging (reported, or derived from the current)
    battery_mode: str | None = None  # charging stage as reported (one of BATTERY_MODES)
    extra: Mapping[str, ExtraValue] = field(default_factory=dict)  # device-specific diagnostics

    @classmethod
    def build(cls, reading: Reading, *, timestamp: float, mono: float) -> Sample:
        """Build a sample from a (merged) reading, deriving what the device did not send.

        Derivations, in order: voltage = sum of cells; power = voltage x current; charge = soc x
        capacity; soc = charge / capacity; problem code, aged and cycle capacity and net charge from the
        ``extra`` entries decoders report them as (``_FROM_EXTRA``); aged capacity = capacity x SoH; charging =
        current below -``IDLE_CURRENT``; runtime = charge / current while discharging above
        ``IDLE_CURRENT`` (when the device does not report one). Non-finite numbers become ``None``.
        """
        isfinite = math.isfinite
        r: dict[str, Any] = {}
        for key, value in cast("Mapping[str, Any]", reading).items():
            if key in _NUMBER_FIELDS:
                x = float(value)
                r[key] = x + 0.0 if isfinite(x) else None  # -0.0 becomes 0.0
            elif key in _SERIES_FIELDS:
                r[key] = None if value is None else tuple([float(v) for v in value if isfinite(v)])
            elif key in _MAPPING_FIELDS:
                r[key] = dict(value)
            elif key != "device_info":
                r[key] = value
        cells = r.get("cell_voltages")
        if r.get("voltage") is None and cells:
            r["voltage"] = round(sum(cells), 3)
        if r.get("power") is None and r.get("voltage") is not None and r.get("current") is not None:
            r["power"] = r["voltage"] * r["current"]
        cap = r.get("capacity")
        if r.get("charge") is None and r.get("soc") is not None and cap:
            r["charge"] = r["soc"] * cap / 100.0
        if r.get("soc") is None and r.get("charge") is not None and cap:
            r["soc"] = max(0.0, min(100.0, r["charge"] / cap * 100.0))
        _derive_status(r)
        return cls(timestamp=timestamp, mono=mono, **r)

    def scaled_current(self, factor: float) -> Sample:
        """Current and power multiplied by ``factor`` (``current_calibration``; -1 flips the sign)."""
        if factor == 1.0:
            return self
        return dataclasses.replace(
            self,
            current=None if self.current is None else self.current * factor,
            power=None if self.power is None else self.power * factor,
        )

    # --- cell statistics (derived, one place) ---
    @property
    def cell_min(self) -> float | None:
        return min(self.cell_voltages) if self.cell_voltages else None

    @property
    def cell_max(self) -> float | None:
        return max(self.cell_voltages) if self.cell_voltages else None

    @property
    def cell_delta(self) -> float | None:
        c = self.cell_voltages
        return round(max(c) - min(c), 4) if c else None

    @property
    def cell_average(self) -> float | None:
        c = self.cell_voltages
        return round(sum(c) / len(c), 4) if c else None

    @property
    def cell_median(self) -> float | None:
        c = self.cell_voltages
        return statistics.median(c) if c else None

    @property
    def cell_min_index(self) -> int | None:
        """1-based index of the lowest cell."""
        c = self.cell_voltages
        return c.index(min(c)) + 1 if c else None

    @property
    def cell_max_index(self) -> int | None:
        """1-based index of the highest cell."""
        c = self.cell_voltages
        return c.index(max(c)) + 1 if c else None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict of the sample fields (sign as in the model)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("temperatures", "cell_voltages", "alarms"):
            if d[key] is not None:
                d[key] = list(d[key])
        d["switches"] = dict(self.switches) if self.switches is not None else None
        d["extra"] = dict(self.extra)
        return d


def _derive_status(r: dict[str, Any]) -> None:
    """The derivations of :meth:`Sample.build` after SoC and charge (see there), in place."""
    extra = r.get("extra")
    if extra and not _EXTRA_KEYS.isdisjoint(extra):
        for name, key in _FROM_EXTRA:
            if r.get(name) is None and type(v := extra.get(key)) in _NUMBER_TYPES and math.isfinite(v):
                r[name] = int(v) if name == "problem_code" else float(v)
    cap = r.get("capacity")
    if r.get("aged_capacity") is None and cap is not None and r.get("soh") is not None:
        r["aged_capacity"] = cap * r["soh"] / 100.0
    current = r.get("current")
    if current is not None:
        if r.get("battery_charging") is None:
            r["battery_charging"] = current < -IDLE_CURRENT
        charge = r.get("charge")
        if r.get("runtime") is None and charge is not None and current > IDLE_CURRENT:
            r["runtime"] = charge / current * 3600.0


@dataclass(frozen=True, slots=True)
class OutputSign:
    """The sign current and power are published with: the one place ``invert_current`` acts.

    ``invert=False``: as in the model (+ = discharging). ``invert=True`` (the default option, as in
    the add-on batmon replaces): + = charging.
    """

    invert: bool

    def current(self, sample: Sample) -> float | None:
        return None if sample.current is None else (-sample.current if self.invert else sample.current) + 0.0

    def power(self, sample: Sample) -> float | None:
        return None if sample.power is None else (-sample.power if self.invert else sample.power) + 0.0

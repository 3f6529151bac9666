"""What batmon publishes about a device: one frozen :class:`EntityDescription` per value.

The table says, for every value, its state subtopic (``key``, relative to the device's topic prefix),
the name and presentation Home Assistant shows (unit, device class, state class, display precision,
icon, entity category), and how the value is taken from a sample. The MQTT sink (``mqtt_util``)
builds discovery configs and state payloads from it; the InfluxDB sink uses ``field`` as the field
name. Nothing here knows about MQTT.

Keys, names and fields follow the add-on batmon replaces, so that users keep their entities and
history; values that add-on did not publish (alarm names, link diagnostics) have keys of their own.
Which entities a device has depends on what it reports: :func:`sample_entities` gives the list for a
sample (one entity per cell and per temperature probe, SoH only when reported, ...),
:func:`meter_entities` the energy meters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from bmslib.device import DeviceStatus
from bmslib.model import BATTERY_MODES, OutputSign, Sample

Value = float | int | str | bool
ValueFn = Callable[[Sample, DeviceStatus, OutputSign], Value | None]
Component = Literal["sensor", "binary_sensor", "switch"]

#: Longest text state (Home Assistant rejects states longer than 255 characters).
MAX_TEXT = 255

#: The energy meters and how each is presented (the meters themselves are computed elsewhere).
METER_NAMES = ("total_energy_charge", "total_energy_discharge", "total_energy", "total_charge", "total_cycles")

#: values published as they are, whatever ``decimals`` says
_AS_IS = (bool, str)
#: the types a value function passes on (bool is an int); a tuple, which isinstance checks faster than a union
_SCALARS = (int, float, str)


@dataclass(frozen=True, slots=True)
class EntityDescription:
    """One published value.

    ``key`` is the state subtopic (``soc/total_voltage``) and, with '/' replaced by '_', the suffix of
    the entity's unique id. ``value`` takes the value from a sample (None: not reported); meter
    entities have no ``value`` and name their meter in ``meter``. ``decimals`` is the resolution the
    value is published with (None: as it is). ``switch`` names the device switch a ``switch`` entity
    controls (and that a ``binary_sensor`` mirrors).
    """

    key: str
    name: str
    field: str  # InfluxDB field name
    component: Component = "sensor"
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    precision: int | None = None  # suggested_display_precision
    icon: str | None = None  # mdi icon name without the "mdi:" prefix
    entity_category: Literal["diagnostic", "config"] | None = None
    enabled_by_default: bool = True
    decimals: int | None = None
    value: ValueFn | None = None
    meter: str | None = None
    switch: str | None = None
    options: tuple[str, ...] | None = None  # the states of an ``enum`` sensor

    @property
    def key_id(self) -> str:
        """The key as one identifier: '/' replaced by '_' (``soc_total_voltage``)."""
        return self.key.replace("/", "_")

    def state(self, sample: Sample, status: DeviceStatus, sign: OutputSign) -> Value | None:
        """The value to publish for ``sample`` (rounded to ``decimals``), or None if not reported."""
        if self.value is None:
            return None
        return self.rounded(self.value(sample, status, sign))

    def rounded(self, value: Value | None) -> Value | None:
        if type(value) is float:  # the common case first (same result as below)
            if not math.isfinite(value):
                return None
            if self.decimals is None:
                return value
            return round(value) if self.decimals == 0 else round(value, self.decimals) + 0.0
        if type(value) is int:  # the next most common case (same result as below: round() of an int is itself)
            return value if not self.decimals else round(float(value), self.decimals) + 0.0
        if value is None or isinstance(value, _AS_IS):
            return value
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if self.decimals is None:
            return value
        if self.decimals == 0:
            return round(value)
        return round(float(value), self.decimals) + 0.0


# --- value functions ----------------------------------------------------------------------------------

def _attr(name: str) -> ValueFn:
    def get(s: Sample, st: DeviceStatus, sign: OutputSign) -> Value | None:
        v = getattr(s, name)
        return v if isinstance(v, _SCALARS) else None
    return get


def _cell(i: int) -> ValueFn:
    def get(s: Sample, st: DeviceStatus, sign: OutputSign) -> Value | None:
        c = s.cell_voltages
        return c[i] if c is not None and i < len(c) else None
    return get


def _temperature(i: int) -> ValueFn:
    def get(s: Sample, st: DeviceStatus, sign: OutputSign) -> Value | None:
        t = s.temperatures
        return t[i] if t is not None and i < len(t) else None
    return get


def _switch(name: str) -> ValueFn:
    def get(s: Sample, st: DeviceStatus, sign: OutputSign) -> Value | None:
        return s.switches.get(name) if s.switches is not None else None
    return get


def _problem(s: Sample, st: DeviceStatus, sign: OutputSign) -> Value | None:
    return None if s.alarms is None else bool(s.alarms)


def alarm_text(alarms: Iterable[str]) -> str:
    """Decoded alarm names as one text state: ``none`` when there is no alarm."""
    text = ", ".join(alarms) or "none"
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 3] + "..."


def _alarms(s: Sample, st: DeviceStatus, sign: OutputSign) -> Value | None:
    return None if s.alarms is None else alarm_text(s.alarms)


def _last_error(s: Sample, st: DeviceStatus, sign: OutputSign) -> Value | None:
    text = st.last_error or "none"
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 3] + "..."


# --- the table ----------------------------------------------------------------------------------------

def _sensor(key: str, name: str, field: str, value: ValueFn, **kw: object) -> EntityDescription:
    return EntityDescription(key=key, name=name, field=field, value=value, **kw)  # type: ignore[arg-type]


#: Entities every sample may have (each only when its value is reported), in publishing order.
SAMPLE_ENTITIES: tuple[EntityDescription, ...] = (
    _sensor("soc/total_voltage", "Voltage", "voltage", _attr("voltage"), unit="V", device_class="voltage",
            state_class="measurement", precision=2, icon="meter-electric", decimals=3),
    _sensor("soc/current", "Current", "current", lambda s, st, sign: sign.current(s), unit="A",
            device_class="current", state_class="measurement", precision=2, decimals=3),
    _sensor("soc/power", "Power", "power", lambda s, st, sign: sign.power(s), unit="W", device_class="power",
            state_class="measurement", precision=1, icon="flash", decimals=1),
    _sensor("soc/soc_percent", "Soc", "soc", _attr("soc"), unit="%", device_class="battery",
            state_class="measurement", precision=1, icon="battery", decimals=2),
    _sensor("mosfet_status/capacity_ah", "Charge", "charge", _attr("charge"), unit="Ah",
            state_class="measurement", precision=2, icon="battery-50", decimals=3),
    _sensor("soc/capacity", "Capacity", "capacity", _attr("capacity"), unit="Ah", precision=1,
            icon="battery-high", decimals=3),
    _sensor("soc/num_cycles", "Num_cycles", "num_cycles", _attr("cycles"), state_class="measurement",
            icon="battery-sync", decimals=0),
    _sensor("soc/balance_current", "Balance_current", "balance_current", _attr("balance_current"), unit="A",
            device_class="current", state_class="measurement", precision=2, icon="scale-unbalanced", decimals=3),
    _sensor("soc/soh", "Soh", "soh", _attr("soh"), unit="%", state_class="measurement", precision=1,
            icon="battery-heart-variant", decimals=1),
    _sensor("mosfet_status/temperature", "Mos_temperature", "mos_temperature", _attr("mos_temperature"),
            unit="°C", device_class="temperature", state_class="measurement", precision=1, icon="thermometer",
            decimals=1),
    _sensor("bms/runtime", "Runtime", "runtime", _attr("runtime"), unit="s", device_class="duration",
            state_class="measurement", precision=0, icon="timer-sand", decimals=0),
    EntityDescription(key="problem", name="problem", field="problem", component="binary_sensor",
                      device_class="problem", entity_category="diagnostic", value=_problem),
    _sensor("alarms", "Alarms", "alarms", _alarms, icon="alert-circle-outline", entity_category="diagnostic"),
    _sensor("problem_code", "problem code", "problem_code", _attr("problem_code"), icon="alert-circle-outline",
            entity_category="diagnostic"),
    EntityDescription(key="battery_charging", name="battery charging", field="battery_charging",
                      component="binary_sensor", device_class="battery_charging", value=_attr("battery_charging")),
    _sensor("battery_mode", "battery mode", "battery_mode", _attr("battery_mode"), device_class="enum",
            icon="battery-charging-medium", options=BATTERY_MODES),
    _sensor("soc/aged_capacity", "Aged_capacity", "aged_capacity", _attr("aged_capacity"), unit="Ah", precision=2,
            icon="battery-heart-variant", decimals=3),
    _sensor("soc/cycle_capacity", "Total_charge_throughput", "total_charge_throughput", _attr("cycle_capacity"),
            unit="Ah", decimals=3),
    _sensor("soc/total_charge_net", "Total_charge_net", "total_charge_net", _attr("total_charge_net"), unit="Ah",
            state_class="total_increasing", icon="battery-arrow-down", decimals=3),
    _sensor("bms/uptime", "Uptime", "uptime", _attr("uptime"), unit="s", device_class="duration",
            state_class="measurement", precision=0, icon="clock", entity_category="diagnostic", decimals=0),
)

#: Cell statistics (published when the device reports more than one cell).
CELL_STATS: tuple[EntityDescription, ...] = (
    *(_sensor(f"cell_voltages/{stat}", f"Cell Volt {stat}", f"voltage_cell_{field}",
              _attr(f"cell_{stat}"), unit="V", device_class="voltage", state_class="measurement", precision=3,
              decimals=4)
      for stat, field in (("min", "min"), ("max", "max"), ("average", "mean"), ("median", "median"),
                          ("delta", "delta"))),
    *(_sensor(f"cell_voltages/{stat}_index", f"Cell Index {stat}", f"voltage_cell_{stat}_index",
              _attr(f"cell_{stat}_index"), icon="numeric")
      for stat in ("min", "max")),
)

#: Link and monitoring diagnostics (from the device's run-time status, not from the BMS).
DIAGNOSTICS: tuple[EntityDescription, ...] = (
    _sensor("diag/link_quality", "Link quality", "link_quality", lambda s, st, sign: st.link_quality, unit="%",
            state_class="measurement", precision=0, icon="bluetooth-connect", entity_category="diagnostic",
            decimals=1),
    _sensor("diag/rssi", "RSSI", "rssi", lambda s, st, sign: st.rssi, unit="dBm", device_class="signal_strength",
            state_class="measurement", precision=0, entity_category="diagnostic", decimals=0),
    _sensor("diag/last_error", "Last error", "last_error", _last_error, icon="alert-outline",
            entity_category="diagnostic"),
    _sensor("diag/uptime", "Monitor uptime", "monitor_uptime", lambda s, st, sign: st.uptime, unit="s",
            device_class="duration", precision=0, icon="timer-outline", entity_category="diagnostic", decimals=0),
    _sensor("meter/sample_count", "Num_samples", "num_samples", lambda s, st, sign: st.samples,
            state_class="total_increasing", icon="counter", entity_category="diagnostic"),
    _sensor("diag/meter_gaps", "Meter gaps", "meter_gaps", lambda s, st, sign: st.meter_gaps,
            state_class="total_increasing", icon="timer-off-outline", entity_category="diagnostic"),
    _sensor("diag/algorithm", "Algorithm", "algorithm", lambda s, st, sign: st.algorithm_status,
            icon="robot-outline", entity_category="diagnostic"),
)

#: (component, key) and description of the entities above, as the entity diff looks them up
_SAMPLE_IDS = tuple(((d.component, d.key), d) for d in SAMPLE_ENTITIES)
_DIAGNOSTIC_IDS = tuple(((d.component, d.key), d) for d in DIAGNOSTICS)

_METERS: Mapping[str, EntityDescription] = {d.meter: d for d in (
    EntityDescription(key="meter/total_energy_charge", name="total energy input", field="meter_total_energy_charge",
                      unit="kWh", device_class="energy", state_class="total_increasing", precision=2,
                      icon="meter-electric", decimals=3, meter="total_energy_charge"),
    EntityDescription(key="meter/total_energy_discharge", name="total energy output",
                      field="meter_total_energy_discharge", unit="kWh", device_class="energy",
                      state_class="total_increasing", precision=2, icon="meter-electric", decimals=3,
                      meter="total_energy_discharge"),
    EntityDescription(key="meter/total_energy", name="total energy netted", field="meter_total_energy", unit="kWh",
                      device_class="energy", state_class="total", precision=2, icon="meter-electric", decimals=3,
                      meter="total_energy"),
    EntityDescription(key="meter/total_charge", name="total charge netted", field="meter_total_charge", unit="Ah",
                      state_class="total", precision=2, decimals=3, meter="total_charge"),
    EntityDescription(key="meter/total_cycles", name="total cycle count", field="meter_total_cycles",
                      state_class="total_increasing", precision=2, icon="battery-sync", decimals=3,
                      meter="total_cycles"),
) if d.meter is not None}


def cell_entities(n: int) -> tuple[EntityDescription, ...]:
    """One voltage entity per cell (1-based keys; names zero-padded to the width of ``n``), plus statistics."""
    width = len(str(n))
    cells = tuple(_sensor(f"cell_voltages/{i + 1}", f"Cell Volt {i + 1:0{width}d}", f"voltage_cell{i:03d}",
                          _cell(i), unit="V", device_class="voltage", state_class="measurement", precision=3,
                          decimals=4)
                  for i in range(n))
    return cells + (CELL_STATS if n > 1 else ())


def temperature_entities(n: int) -> tuple[EntityDescription, ...]:
    """One entity per temperature probe (1-based keys)."""
    return tuple(_sensor(f"temperatures/{i + 1}", f"Temperatures {i + 1}", f"temperatures_{i}", _temperature(i),
                         unit="°C", device_class="temperature", state_class="measurement", precision=1,
                         decimals=1)
                 for i in range(n))


def switch_entities(reported: Iterable[str], settable: Collection[str]) -> tuple[EntityDescription, ...]:
    """For each switch a device reports: a ``switch`` entity when batmon can set it, and a read-only
    ``binary_sensor`` mirror (disabled by default when there is a switch entity)."""
    out: list[EntityDescription] = []
    for name in sorted(reported):
        if name in settable:
            out.append(EntityDescription(key=f"switch/{name}", name=name, field=f"switches_{name}",
                                         component="switch", device_class="switch", value=_switch(name),
                                         switch=name))
        out.append(EntityDescription(key=f"switch/{name}", name=f"{name} switch", field=f"switches_{name}",
                                     component="binary_sensor", device_class="power", value=_switch(name),
                                     switch=name, enabled_by_default=name not in settable))
    return tuple(out)


def sample_entities(sample: Sample, status: DeviceStatus, sign: OutputSign) -> tuple[EntityDescription, ...]:
    """Every entity ``sample`` has a value for, in publishing order."""
    out = [d for d in SAMPLE_ENTITIES if d.state(sample, status, sign) is not None]
    out += cell_entities(len(sample.cell_voltages or ()))
    out += temperature_entities(len(sample.temperatures or ()))
    out += switch_entities(sample.switches or {}, status.switches)
    out += [d for d in DIAGNOSTICS if d.state(sample, status, sign) is not None]
    return tuple(out)


Layout = tuple[int, int, tuple[str, ...], frozenset[str]]


def list_layout(sample: Sample, status: DeviceStatus) -> Layout:
    """What the per-cell, per-probe and switch entities of a sample depend on (cell and probe counts, the
    switches reported, the switches the device offers): two samples with equal layouts have the same such
    entities."""
    return (len(sample.cell_voltages or ()), len(sample.temperatures or ()), tuple(sample.switches or ()),
            status.switches)


def new_sample_entities(sample: Sample, status: DeviceStatus, sign: OutputSign,
                        known: Container[tuple[str, str]], *, lists: bool = True) -> list[EntityDescription]:
    """``[d for d in sample_entities(sample, status, sign) if (d.component, d.key) not in known]``, in that
    order, without evaluating the known entities or building descriptions that are known already
    (a device's entities rarely change, and this runs at every publish).

    ``lists=False`` skips the per-cell, per-probe and switch entities: for a caller that knows them all
    already (they were found for a sample of the same :func:`list_layout`)."""
    out = [d for ident, d in _SAMPLE_IDS if ident not in known and d.state(sample, status, sign) is not None]
    if lists:
        out += _new_list_entities(sample, status, known)
    out += [d for ident, d in _DIAGNOSTIC_IDS if ident not in known and d.state(sample, status, sign) is not None]
    return out


def _new_list_entities(sample: Sample, status: DeviceStatus,
                       known: Container[tuple[str, str]]) -> list[EntityDescription]:
    out: list[EntityDescription] = []
    n = len(sample.cell_voltages or ())
    if any(("sensor", f"cell_voltages/{i + 1}") not in known for i in range(n)) \
            or (n > 1 and any((d.component, d.key) not in known for d in CELL_STATS)):
        out += [d for d in cell_entities(n) if (d.component, d.key) not in known]
    n = len(sample.temperatures or ())
    if any(("sensor", f"temperatures/{i + 1}") not in known for i in range(n)):
        out += [d for d in temperature_entities(n) if (d.component, d.key) not in known]
    reported = sample.switches or {}
    if any(("binary_sensor", f"switch/{name}") not in known
           or (name in status.switches and ("switch", f"switch/{name}") not in known) for name in reported):
        out += [d for d in switch_entities(reported, status.switches) if (d.component, d.key) not in known]
    return out


def meter_entities(names: Iterable[str]) -> tuple[EntityDescription, ...]:
    """The entities of the named energy meters (unknown names are skipped), in a fixed order."""
    wanted = set(names)
    return tuple(d for name, d in _METERS.items() if name in wanted)


def meter_entity(name: str) -> EntityDescription | None:
    return _METERS.get(name)

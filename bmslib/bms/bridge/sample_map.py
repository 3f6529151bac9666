"""aiobmsble's sample (a ``BMSSample`` dict) as batmon's :class:`~bmslib.model.Reading`: the one place it is mapped.

Pure code (no aiobmsble import, no I/O). aiobmsble counts current and power positive while **charging**;
batmon's model counts them positive while discharging, so both change sign here. What the plugin does not
report stays unset (``None`` in the sample). Values of the wrong type raise :class:`~bmslib.errors.FrameError`
naming the key, and so does a sample without any measurement (voltage, current, power, SoC, charge, cells or
temperatures); nothing else is raised.

=====================================  ==========================================================
aiobmsble                               batmon
=====================================  ==========================================================
``voltage``                             ``voltage``
``current``, ``power``                  ``current``, ``power``, sign changed
``battery_level``                       ``soc``
``battery_health``                      ``soh``
``cycle_charge`` [Ah]                   ``charge`` (remaining charge)
``design_capacity``                     ``capacity``
``cycles``                              ``cycles``
``cell_voltages``                       ``cell_voltages``
``temp_values``                         ``temperatures``; the first MOSFET probe is ``mos_temperature``
``temperature`` (no ``temp_values``)    ``temperatures`` (one probe)
``chrg_mosfet``, ``dischrg_mosfet``     ``switches`` ``charge``, ``discharge`` (read-only)
``balancer``                            ``switches`` ``balance`` (read-only: balancing or enabled)
``problem``, ``problem_code``           ``alarms`` (``()`` when no problem), ``problem_code``
``runtime`` [s]                         ``runtime``
``battery_charging``                    ``battery_charging``
``battery_mode``                        ``battery_mode`` (UNKNOWN, BULK, ABSORPTION, FLOAT)
``balance_current``                     ``balance_current``
``total_charge`` [Ah]                   ``total_charge_net``
``heater``, ``heater_current``,         ``extra`` (``heater``, ``heater_current``, ``pack_count``,
``pack_count``, ``balancer`` bit mask   ``balancing_cells``)
=====================================  ==========================================================

``cell_count``, ``temp_sensors``, ``delta_voltage``, ``cycle_capacity`` [Wh] and ``packs`` are left out: batmon
derives the first four itself, and aiobmsble has already combined the packs into the pack-level values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bmslib.errors import FrameError
from bmslib.model import BATTERY_MODES, ExtraValue, Reading

#: aiobmsble's BMSMode values -> batmon's battery mode names
_MODES = {-1: "UNKNOWN", 0: "BULK", 1: "ABSORPTION", 2: "FLOAT"}
#: plain numbers: aiobmsble key -> batmon key (and -1 where the sign changes)
_NUMBERS: tuple[tuple[str, str, float], ...] = (
    ("voltage", "voltage", 1.0), ("current", "current", -1.0), ("power", "power", -1.0),
    ("battery_level", "soc", 1.0), ("battery_health", "soh", 1.0), ("cycle_charge", "charge", 1.0),
    ("design_capacity", "capacity", 1.0), ("runtime", "runtime", 1.0), ("balance_current", "balance_current", 1.0),
    ("total_charge", "total_charge_net", 1.0),
)
_SWITCHES = (("chrg_mosfet", "charge"), ("dischrg_mosfet", "discharge"))
#: plugins whose current (and power) aiobmsble reports positive while DISCHARGING, against its own convention,
#: so batmon keeps their sign: ``ant`` (ANT 2021): real captures of ANT-BLE16ZMUB units (tests/vectors/ant.json:
#: +1.0 A on the wire while the remaining charge falls; -2.3 A while the status says charging) show the wire is
#: positive while discharging, and aiobmsble 0.31.0 passes it on unchanged (tests/test_crosscheck_aiobmsble.py)
CURRENT_SIGN_KEPT = frozenset({"ant"})
#: a reading needs one of these: a measurement of the battery
_MEASURED = frozenset({"voltage", "current", "power", "soc", "charge", "cell_voltages", "temperatures",
                       "mos_temperature"})


def _bad(key: str, value: object, want: str) -> FrameError:
    return FrameError(f"aiobmsble's sample: {key} is {type(value).__name__} {value!r:.40}, not {want}")


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(key, value, "a number")
    try:
        return float(value)
    except OverflowError:  # an int beyond any float
        raise _bad(key, value, "a number in range") from None


def _flag(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _bad(key, value, "a flag")


def _count(key: str, value: object) -> int:
    x = _number(key, value)
    if not math.isfinite(x) or x != int(x):
        raise _bad(key, value, "a whole number")
    return int(x)


def _series(key: str, value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise _bad(key, value, "a list")
    return list(value)


def _temperature(key: str, value: object) -> tuple[float, bool]:
    """(°C, is the MOSFET probe) of one of aiobmsble's TempSensor values (or a plain number)."""
    kind = getattr(value, "type", None)
    if kind is not None:
        try:
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            raise _bad(key, value, "a temperature") from None
    return _number(key, value), getattr(kind, "name", None) == "MOSFET"


def _mode(value: object) -> str:
    name = getattr(value, "name", None)
    if isinstance(name, str) and name in BATTERY_MODES:
        return name
    if isinstance(value, int) and not isinstance(value, bool) and value in _MODES:
        return _MODES[value]
    raise _bad("battery_mode", value, "a BMSMode")


def reading(sample: Mapping[str, Any], plugin: str = "") -> Reading:
    """batmon's reading of aiobmsble's ``sample`` (of its plugin ``plugin``: see :data:`CURRENT_SIGN_KEPT`).
    Raises FrameError when it is empty or a value has the wrong type."""
    if not sample:
        raise FrameError("aiobmsble's sample is empty")
    keep_sign = plugin in CURRENT_SIGN_KEPT
    r: dict[str, Any] = {}
    for key, ours, sign in _NUMBERS:
        if (v := sample.get(key)) is not None:
            r[ours] = _number(key, v) * (abs(sign) if keep_sign else sign)
    if (v := sample.get("cycles")) is not None:
        r["cycles"] = _count("cycles", v)
    if (v := sample.get("cell_voltages")) is not None:
        r["cell_voltages"] = tuple(_number("cell_voltages", c) for c in _series("cell_voltages", v))
    _temperatures(sample, r)
    switches = {ours: _flag(key, v) for key, ours in _SWITCHES if (v := sample.get(key)) is not None}
    extra: dict[str, ExtraValue] = {}
    if (v := sample.get("balancer")) is not None:
        if isinstance(v, bool):
            switches["balance"] = v
        else:
            mask = _count("balancer", v)
            switches["balance"] = mask != 0
            if mask > 1:
                extra["balancing_cells"] = mask
    if switches:
        r["switches"] = switches
    code = _count("problem_code", v) if (v := sample.get("problem_code")) is not None else None
    if code is not None:
        r["problem_code"] = code
    if (v := sample.get("problem")) is not None:
        problem = _flag("problem", v) or bool(code)
        r["alarms"] = ((f"problem code {code:#x}" if code else "problem"),) if problem else ()
    elif code is not None:
        r["alarms"] = (f"problem code {code:#x}",) if code else ()
    if (v := sample.get("battery_charging")) is not None:
        r["battery_charging"] = _flag("battery_charging", v)
    if (v := sample.get("battery_mode")) is not None:
        r["battery_mode"] = _mode(v)
    if (v := sample.get("heater")) is not None:
        extra["heater"] = _flag("heater", v)
    if (v := sample.get("heater_current")) is not None:
        extra["heater_current"] = _number("heater_current", v)
    if (v := sample.get("pack_count")) is not None:
        extra["pack_count"] = _count("pack_count", v)
    if extra:
        r["extra"] = extra
    if _MEASURED.isdisjoint(r):  # a flag or a counter alone says nothing about the battery
        raise FrameError(f"aiobmsble's sample has no value batmon reads (keys: {', '.join(sorted(sample))[:200]})")
    out: Reading = r  # type: ignore[assignment]
    return out


def _temperatures(sample: Mapping[str, Any], r: dict[str, Any]) -> None:
    values = sample.get("temp_values")
    if values is not None:
        probes: list[float] = []
        for value in _series("temp_values", values):
            celsius, mosfet = _temperature("temp_values", value)
            if mosfet and "mos_temperature" not in r:
                r["mos_temperature"] = celsius
            else:
                probes.append(celsius)
        r["temperatures"] = tuple(probes)
    elif (v := sample.get("temperature")) is not None:
        r["temperatures"] = (_number("temperature", v),)

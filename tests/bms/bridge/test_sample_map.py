"""The one mapping of aiobmsble's sample to batmon's reading (bmslib/bms/bridge/sample_map.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from aiobmsble import BMSMode, TempSensor
from hypothesis import given
from hypothesis import strategies as st

from bmslib.ble.aiobmsble_plugins import SAMPLE_KEYS
from bmslib.bms.bridge.sample_map import reading
from bmslib.errors import FrameError
from bmslib.model import Sample


def sample_of(**values: Any) -> Sample:
    return Sample.build(reading(values), timestamp=0.0, mono=0.0)


def test_current_and_power_change_sign() -> None:
    charging = sample_of(voltage=13.2, current=5.0, power=66.0)  # aiobmsble: + while charging
    assert charging.current == -5.0 and charging.power == -66.0  # batmon: - while charging
    assert sample_of(voltage=13.2, current=-2.5).current == 2.5
    assert sample_of(voltage=13.2, current=-2.5).power == pytest.approx(33.0)  # derived by batmon, in its sign
    assert sample_of(current=0.0).current == 0.0 and math.copysign(1, sample_of(current=0.0).current or 1) > 0


def test_a_full_sample_is_mapped_field_by_field() -> None:
    s = sample_of(
        voltage=13.3, current=-4.0, power=-53.2, battery_level=81, battery_health=97, cycle_charge=81.5,
        design_capacity=100, cycles=42, cell_voltages=[3.32, 3.33, 3.325, 3.325], delta_voltage=0.01,
        temp_values=[TempSensor(21.5, TempSensor.T.CELL), TempSensor(30.0, TempSensor.T.MOSFET),
                     TempSensor(22.0, TempSensor.T.AMBIENT)],
        temperature=24.5, chrg_mosfet=True, dischrg_mosfet=False, balancer=0b0101, balance_current=0.05,
        problem=True, problem_code=0x20, runtime=7335, battery_charging=False, battery_mode=BMSMode.FLOAT,
        total_charge=1234, heater=True, heater_current=1.5, pack_count=2, cycle_capacity=1083.9, cell_count=4,
        temp_sensors=3, packs=[])
    assert (s.voltage, s.current, s.power, s.soc, s.soh) == (13.3, 4.0, 53.2, 81.0, 97.0)
    assert (s.charge, s.capacity, s.cycles, s.runtime) == (81.5, 100.0, 42, 7335.0)
    assert s.cell_voltages == (3.32, 3.33, 3.325, 3.325)
    assert s.temperatures == (21.5, 22.0) and s.mos_temperature == 30.0
    assert s.switches == {"charge": True, "discharge": False, "balance": True}
    assert s.balance_current == 0.05 and s.total_charge_net == 1234.0
    assert s.problem_code == 0x20 and s.alarms == ("problem code 0x20",)
    assert s.battery_charging is False and s.battery_mode == "FLOAT"
    assert s.extra == {"balancing_cells": 5, "heater": True, "heater_current": 1.5, "pack_count": 2}


def test_what_the_plugin_does_not_report_stays_none() -> None:
    s = sample_of(voltage=26.6)
    assert s.voltage == 26.6
    for name in ("current", "soc", "charge", "capacity", "cycles", "temperatures", "mos_temperature",
                 "cell_voltages", "switches", "alarms", "problem_code", "runtime", "soh", "battery_mode"):
        assert getattr(s, name) is None, name


@pytest.mark.parametrize(("values", "alarms", "code"), [
    ({"problem": False}, (), None), ({"problem": True}, ("problem",), None),
    ({"problem": False, "problem_code": 0}, (), 0), ({"problem_code": 3}, ("problem code 0x3",), 3),
    ({"problem": False, "problem_code": 4}, ("problem code 0x4",), 4)])
def test_problem_flag_and_code(values: dict[str, Any], alarms: tuple[str, ...], code: int | None) -> None:
    s = sample_of(voltage=12.0, **values)
    assert s.alarms == alarms and s.problem_code == code


def test_temperature_without_probes_is_one_probe() -> None:
    assert sample_of(temperature=25.0).temperatures == (25.0,)
    assert sample_of(temp_values=[20.0, 21.0], temperature=20.5).temperatures == (20.0, 21.0)
    two_mosfets = sample_of(temp_values=[TempSensor(40.0, TempSensor.T.MOSFET), TempSensor(41.0, TempSensor.T.MOSFET)])
    assert two_mosfets.mos_temperature == 40.0 and two_mosfets.temperatures == (41.0,)


@pytest.mark.parametrize("values", [
    {}, {"cell_count": 4}, {"voltage": "13.2"}, {"voltage": True}, {"cycles": 1.5}, {"cell_voltages": 3.3},
    {"chrg_mosfet": 2}, {"battery_mode": 7}, {"temp_values": ["hot"]}, {"problem_code": -0.5},
    {"voltage": 10**400}, {"problem": False, "cycles": 3}, {"chrg_mosfet": True}])
def test_what_cannot_be_read_is_the_typed_error(values: dict[str, Any]) -> None:
    with pytest.raises(FrameError, match="aiobmsble's sample"):
        reading(values)


_NUMBER = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True))
_VALUE = st.one_of(st.none(), st.booleans(), _NUMBER, st.text(max_size=5),
                   st.lists(st.one_of(_NUMBER, st.builds(TempSensor, st.floats(), st.sampled_from(TempSensor.T))),
                            max_size=6),
                   st.sampled_from(BMSMode), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@given(st.dictionaries(st.sampled_from(sorted(SAMPLE_KEYS | {"unknown_key"})), _VALUE))
def test_any_sample_maps_or_raises_the_typed_error(values: dict[str, Any]) -> None:
    try:
        r = reading(values)
    except FrameError:
        return
    s = Sample.build(r, timestamp=0.0, mono=0.0)
    if isinstance(v := values.get("current"), int | float) and not isinstance(v, bool) and math.isfinite(v):
        assert s.current == -float(v) + 0.0
    s.as_dict()

"""The group combining formulas (bmslib.groups.combine): pure functions, tested without a driver or a loop."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

import pytest

from bmslib.groups import combine
from bmslib.groups.combine import combine_parallel, combine_serial, combined_switches, member_switches
from bmslib.model import Sample


def member(**fields: Any) -> Sample:
    return Sample(timestamp=0.0, mono=0.0, **fields)


A = member(voltage=13.2, current=10.0, power=132.0, soc=40.0, charge=80.0, capacity=200.0, cycles=10, soh=90.0,
           cell_voltages=(3.3, 3.31, 3.29, 3.3), temperatures=(20.0, 21.0), mos_temperature=25.0,
           switches={"charge": True, "discharge": True, "balance": False}, alarms=())
B = member(voltage=13.4, current=-4.0, power=-53.6, soc=85.0, charge=85.0, capacity=100.0, cycles=20, soh=100.0,
           cell_voltages=(3.35, 3.36, 3.34, 3.35), temperatures=(23.0,), mos_temperature=31.0,
           switches={"charge": False, "discharge": True}, alarms=("cell_overvoltage",))


# --- formulas ----------------------------------------------------------------------------------------------

def test_parallel_formulas() -> None:
    r = combine_parallel([A, B])
    assert r["voltage"] == pytest.approx(13.3)
    assert r["current"] == pytest.approx(6.0) and r["power"] == pytest.approx(78.4)
    assert r["charge"] == pytest.approx(165.0) and r["capacity"] == pytest.approx(300.0)
    assert r["soc"] == pytest.approx((40 * 200 + 85 * 100) / 300)  # capacity-weighted
    assert r["soh"] == pytest.approx((90 * 200 + 100 * 100) / 300)
    assert r["cycles"] == 15
    assert r["cell_voltages"] == (3.3, 3.31, 3.29, 3.3, 3.35, 3.36, 3.34, 3.35)
    assert r["temperatures"] == (20.0, 21.0, 23.0) and r["mos_temperature"] == 31.0
    assert r["alarms"] == ("cell_overvoltage",)
    assert r["switches"] == {"charge": False, "discharge": True}  # balance: not reported by B
    s = Sample.build(r, timestamp=0, mono=0)
    assert (s.cell_min, s.cell_max) == (3.29, 3.36)


def test_parallel_soc_without_capacities_is_the_plain_mean_and_missing_values_give_none() -> None:
    a = member(voltage=13.0, soc=40.0, current=2.0)
    b = member(voltage=13.2, soc=60.0)  # no capacity, no current
    r = combine_parallel([a, b])
    assert r["soc"] == pytest.approx(50.0)
    assert "current" not in r and "capacity" not in r and "power" not in r  # a sum of part of it would lie


def test_serial_formulas() -> None:
    a = member(voltage=26.4, current=10.0, power=264.0, soc=40.0, charge=80.0, capacity=200.0, soh=95.0)
    b = member(voltage=26.8, current=10.4, power=278.7, soc=85.0, charge=85.0, capacity=100.0, soh=99.0)
    r, disagree = combine_serial([a, b])
    assert r["voltage"] == pytest.approx(53.2)
    assert r["current"] == pytest.approx(10.2) and not disagree  # 4 % apart
    assert r["power"] == pytest.approx(542.7)
    assert (r["soc"], r["charge"], r["capacity"], r["soh"]) == (40.0, 80.0, 100.0, 95.0)


@pytest.mark.parametrize(("currents", "disagree"), [
    ((10.0, 11.5), True), ((10.0, 10.9), False), ((0.1, 0.3), False), ((-20.0, -17.0), True), ((0.0, 1.5), True)])
def test_serial_members_with_different_currents_are_flagged(currents: tuple[float, float], disagree: bool) -> None:
    _, flagged = combine_serial([member(voltage=13.0, current=c) for c in currents])
    assert flagged is disagree


# --- more of the table ---------------------------------------------------------------------------------------

def test_serial_takes_the_lowest_soc_charge_capacity_soh_and_shares_the_rest_with_parallel() -> None:
    r, disagree = combine_serial([A, B])
    assert (r["soc"], r["charge"], r["capacity"], r["soh"]) == (40.0, 80.0, 100.0, 90.0)
    assert r["voltage"] == pytest.approx(26.6) and r["current"] == pytest.approx(3.0)
    assert disagree  # 10 A and -4 A
    assert r["cell_voltages"] == combine_parallel([A, B])["cell_voltages"]
    assert (r["mos_temperature"], r["alarms"], r["cycles"]) == (31.0, ("cell_overvoltage",), 15)
    assert r["switches"] == {"charge": False, "discharge": True}


def test_a_value_that_is_not_finite_counts_as_missing() -> None:
    r = combine_parallel([member(voltage=13.0, current=math.nan, soc=50.0), member(voltage=13.2, current=1.0)])
    assert "current" not in r and "soc" not in r
    assert r["voltage"] == pytest.approx(13.1)


def test_alarms_are_listed_once_in_member_order_and_absent_when_no_member_reports_them() -> None:
    a = member(alarms=("cell_overvoltage", "pack_overvoltage"))
    b = member(alarms=("pack_overvoltage", "cell_undervoltage"))
    assert combine_parallel([a, b])["alarms"] == ("cell_overvoltage", "pack_overvoltage", "cell_undervoltage")
    assert combine_parallel([a, member()])["alarms"] == ("cell_overvoltage", "pack_overvoltage")
    assert "alarms" not in combine_parallel([member(), member()])


def test_switches_need_every_member_to_report_and_are_on_only_when_on_everywhere() -> None:
    on, off = {"charge": True, "discharge": True}, {"charge": False, "discharge": True}
    assert combined_switches([member(switches=on), member(switches=off)]) == {"charge": False, "discharge": True}
    assert combined_switches([member(switches=on), member()]) is None
    assert combined_switches([]) is None


def test_member_switches_is_the_intersection() -> None:
    assert member_switches([frozenset({"charge", "discharge"}), frozenset({"charge", "balance"})]) == {"charge"}
    assert member_switches([]) == frozenset()


@pytest.mark.parametrize("combine_fn", [combine_parallel, lambda s: combine_serial(s)[0]])
def test_one_member_is_its_own_group(combine_fn: Any) -> None:
    r = combine_fn([A])
    assert (r["voltage"], r["current"], r["soc"], r["capacity"]) == (13.2, 10.0, 40.0, 200.0)


def test_the_formulas_module_imports_no_asyncio_and_nothing_of_the_app() -> None:
    tree = ast.parse(Path(combine.__file__).read_text())
    imported = {n.name for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "math", "collections.abc", "typing", "bmslib.model"}, imported

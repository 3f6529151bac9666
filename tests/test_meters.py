"""Energy meters: integrals against analytic results, robustness, cycles, sign, and the original's file."""

from __future__ import annotations

import asyncio
import json
import math
import random
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.app import App
from bmslib.config import parse_config
from bmslib.device import DeviceStatus
from bmslib.drivers.base import Driver
from bmslib.family import DeviceType
from bmslib.meters import METER_FILE, METER_NAMES, MeterSet, max_gap
from bmslib.model import Reading, Sample
from bmslib.registry import device_types, type_infos
from bmslib.sinks.base import Sink
from tests.helpers import fuzz_settings
from tests.sim_helpers import app_running

KWH = 3.6e6  # W s


def sample(t: float, *, power: float | None = None, current: float | None = None, soc: float | None = None,
           charge: float | None = None, capacity: float | None = None, wall: float | None = None) -> Sample:
    return Sample(timestamp=1.7e9 + t if wall is None else wall, mono=t, power=power, current=current, soc=soc,
                  charge=charge, capacity=capacity)


def feed(meters: MeterSet, points: list[tuple[float, float | None]], field: str = "power") -> MeterSet:
    for t, y in points:
        meters.add(sample(t, **{field: y}))
    return meters


def uneven_times(end: float, rng: random.Random, lo: float = 0.3, hi: float = 3.0) -> list[float]:
    times = [0.0]
    while times[-1] < end:
        times.append(min(end, times[-1] + rng.uniform(lo, hi)))
    return times


# --- integrals against analytic results -------------------------------------------------------------

def test_constant_charging_power_and_current() -> None:
    m = MeterSet(max_gap(1.0))
    for t in range(3601):  # one hour charging at 1 kW and 20 A (model sign: negative = charging)
        m.add(sample(float(t), power=-1000.0, current=-20.0))
    r = m.readings()
    assert r["total_energy_charge"] == pytest.approx(1.0, rel=1e-12)
    assert r["total_energy_discharge"] == 0.0
    assert r["total_energy"] == pytest.approx(1.0, rel=1e-12)  # net = into the battery
    assert r["total_charge"] == pytest.approx(20.0, rel=1e-12)


def test_ramp_through_zero_is_exact_with_uneven_sample_times() -> None:
    """P = t - 1800 W over an hour: discharge = charge = 1800^2/2 W s; the zero crossing is split exactly."""
    times = uneven_times(3600.0, random.Random(7))
    m = feed(MeterSet(max_gap(1.0)), [(t, t - 1800.0) for t in times])
    r = m.readings()
    half = 1800.0**2 / 2 / KWH
    assert r["total_energy_discharge"] == pytest.approx(half, rel=1e-9)
    assert r["total_energy_charge"] == pytest.approx(half, rel=1e-9)
    assert r["total_energy"] == pytest.approx(0.0, abs=1e-12)


def test_sine_over_whole_periods_with_uneven_sample_times() -> None:
    amplitude, period, periods = 2000.0, 600.0, 6
    times = uneven_times(period * periods, random.Random(3))
    m = feed(MeterSet(max_gap(1.0)), [(t, amplitude * math.sin(2 * math.pi * t / period)) for t in times])
    r = m.readings()
    per_half = amplitude * period / math.pi / KWH  # integral of one half wave
    assert r["total_energy_discharge"] == pytest.approx(periods * per_half, rel=2e-3)
    assert r["total_energy_charge"] == pytest.approx(periods * per_half, rel=2e-3)
    assert abs(r["total_energy"]) < 1e-3 * periods * per_half


def test_trapezoid_of_a_quadratic_has_the_known_error() -> None:
    """y = t^2 on [0, 10] with step 1: the trapezoid rule overestimates by h^2 (b-a) y''/12 = 10/6."""
    m = feed(MeterSet(max_gap(1.0)), [(float(t), float(t * t)) for t in range(11)], field="current")
    # total_charge integrates -I, in Ah
    assert -m.readings()["total_charge"] * 3600 == pytest.approx(1000 / 3 + 10 / 6, rel=1e-12)


# --- robustness ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [None, math.nan, math.inf, -math.inf])
def test_missing_or_non_finite_values_are_skipped_and_bridged(bad: float | None) -> None:
    clean = feed(MeterSet(max_gap(1.0)), [(float(t), 100.0 + t) for t in range(0, 21, 2)])
    with_bad = MeterSet(max_gap(1.0))
    for t in range(21):
        y = 100.0 + t if t % 2 == 0 else bad
        with_bad.add(sample(float(t), power=y, current=y))
    for name in ("total_energy", "total_energy_discharge", "total_charge"):
        value = with_bad.readings()[name]
        assert math.isfinite(value)
    assert with_bad.readings()["total_energy_discharge"] == pytest.approx(clean.readings()["total_energy_discharge"])
    assert with_bad.gaps == 0


def test_a_nan_never_poisons_the_totals() -> None:
    m = MeterSet(max_gap(1.0))
    m.add(sample(0.0, power=100.0, current=5.0, soc=50.0, charge=50.0, capacity=100.0))
    m.add(sample(1.0, power=math.nan, current=math.nan, soc=math.nan, charge=math.nan, capacity=math.nan))
    m.add(sample(2.0, power=100.0, current=5.0, soc=50.0, charge=50.0, capacity=100.0))
    assert all(math.isfinite(v) for v in m.readings().values())
    assert m.readings()["total_energy_discharge"] == pytest.approx(200 / KWH)


def test_wall_clock_jumps_neither_raise_nor_add_energy() -> None:
    m = MeterSet(max_gap(1.0))
    walls = [1e9, 1e9 + 1, 1e9 - 3600, 1e9 - 3599, 1e9 + 86400, 1e9 + 86401]  # NTP steps back and forward
    for t, wall in enumerate(walls):
        m.add(sample(float(t), power=360.0, wall=wall))
    assert m.readings()["total_energy_discharge"] == pytest.approx(5 * 360 / KWH)
    assert m.gaps == 0


def test_a_monotonic_step_back_is_a_gap_not_an_error() -> None:
    m = feed(MeterSet(max_gap(1.0)), [(10.0, 100.0), (11.0, 100.0), (5.0, 100.0), (6.0, 100.0)])
    assert m.readings()["total_energy_discharge"] == pytest.approx(200 / KWH)
    assert m.gaps == 1


@pytest.mark.parametrize(("period", "gap", "integrated"), [
    (1.0, 599.0, True), (1.0, 600.0, True), (1.0, 601.0, False), (1.0, 7200.0, False),
    (500.0, 999.0, True), (500.0, 1001.0, False),  # 2 x sample_period when that is longer than 600 s
])
def test_long_gaps_are_not_integrated_and_are_counted(period: float, gap: float, integrated: bool) -> None:
    m = feed(MeterSet(max_gap(period)), [(0.0, 1000.0), (gap, 1000.0), (gap + 1, 1000.0)])
    expected = (gap + 1 if integrated else 1.0) * 1000 / KWH
    assert m.readings()["total_energy_discharge"] == pytest.approx(expected)
    assert (m.gaps, m.gap_seconds) == ((0, 0.0) if integrated else (1, gap))


def test_the_restart_gap_is_not_integrated() -> None:
    m = MeterSet(max_gap(1.0), readings={"total_energy_charge": 5.0})
    feed(m, [(100.0, -3600.0), (101.0, -3600.0)])
    assert m.readings()["total_energy_charge"] == pytest.approx(5.0 + 1e-3)


_STEP = st.tuples(st.floats(0.0, 1200.0),
                  st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32)))


@fuzz_settings
@given(st.lists(_STEP, max_size=60))
def test_charge_and_discharge_never_decrease_and_net_is_their_difference(steps: list[tuple[float, Any]]) -> None:
    m = MeterSet(max_gap(1.0))
    t = 0.0
    before = m.readings()
    for dt, y in steps:
        t += dt
        m.add(sample(t, power=y, current=y, soc=y, charge=y, capacity=100.0))
        now = m.readings()
        assert all(math.isfinite(v) for v in now.values())
        for name in ("total_energy_charge", "total_energy_discharge", "total_cycles", "total_abs_diff_charge"):
            assert now[name] >= before[name]
        before = now
    r = m.readings()
    scale = max(1.0, r["total_energy_charge"], r["total_energy_discharge"])
    assert r["total_energy"] == pytest.approx(r["total_energy_charge"] - r["total_energy_discharge"],
                                              abs=1e-9 * scale)


# --- cycles ---------------------------------------------------------------------------------------------

def soc_run(socs: list[float], dt: float = 10.0) -> MeterSet:
    m = MeterSet(max_gap(1.0))
    for i, s in enumerate(socs):
        m.add(sample(i * dt, soc=s))
    return m


def test_one_full_cycle_counts_one_less_the_deadband() -> None:
    down = [100.0 - i for i in range(101)]
    m = soc_run(down + down[::-1][1:])
    assert m.readings()["total_cycles"] == pytest.approx(1.0, abs=0.01)
    assert m.readings()["total_cycles"] <= 1.0


def test_soc_flicker_of_one_step_does_not_count() -> None:
    m = soc_run([50.0, 51.0] * 500)
    assert m.readings()["total_cycles"] <= 0.5 / 200  # at most the first half step


def test_fine_soc_steps_count_in_full() -> None:
    m = soc_run([20.0 + 0.1 * i for i in range(601)])  # 20 -> 80 % in 0.1 % steps
    assert m.readings()["total_cycles"] == pytest.approx((60.0 - 0.5) / 200)


def test_a_soc_jump_is_a_recalibration_not_cycling() -> None:
    m = soc_run([60.0, 60.0, 95.0, 95.0, 100.0])  # the BMS resets SoC near full
    assert m.readings()["total_cycles"] == pytest.approx(4.5 / 200)


def test_remaining_charge_travel_is_counted_without_jumps() -> None:
    m = MeterSet(max_gap(1.0))
    for t, ah in enumerate([50.0, 51.0, 52.0, 51.0, 90.0, 89.0]):  # 39 Ah jump (> 20 % of 100 Ah) skipped
        m.add(sample(float(t), charge=ah, capacity=100.0))
    assert m.readings()["total_abs_diff_charge"] == pytest.approx(4.0)


# --- the sign, end to end ---------------------------------------------------------------------------------

class ConstantDriver(Driver):
    """A battery without radio that is charged at 10 A / 500 W (model sign: negative)."""

    switches: ClassVar[frozenset[str]] = frozenset()
    _connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    async def read(self) -> Reading:
        return {"voltage": 50.0, "current": -10.0, "soc": 50.0}


CONSTANT = DeviceType("constant", "constant charging", ConstantDriver, frozenset(), radio=False, in_demo=False)


class MeterSink(Sink):
    name = "meters"

    def __init__(self) -> None:
        self.meters: list[tuple[str, dict[str, float]]] = []

    def on_meters(self, device: DeviceStatus, meters: Any) -> None:
        self.meters.append((device.alias, dict(meters)))


async def run_app(devices: list[dict[str, Any]], seconds: float, state_dir: Path | None, **options: Any) -> tuple[
        App, MeterSink]:
    types = {**device_types(), "constant": CONSTANT}
    cfg = parse_config({"devices": devices, "sample_period": 0.1, "publish_period": 0.1, **options},
                       source="test", env={}, types=type_infos(types))
    sink = MeterSink()
    app = App(cfg, types=types, sinks=[sink], state_dir=state_dir)
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(seconds)
    return app, sink


@pytest.mark.parametrize(("invert", "calibration", "charging"), [
    (True, 1.0, True), (False, 1.0, True), (True, -1.0, False), (False, -1.0, False)])
async def test_charge_energy_is_energy_into_the_battery_whatever_invert_current_says(
        invert: bool, calibration: float, charging: bool) -> None:
    app, _ = await run_app([{"address": "x", "type": "constant", "alias": "c",
                             "current_calibration": calibration}], 1.0, None, invert_current=invert)
    r = app.meter_book.readings("c")
    into, out = ("total_energy_charge", "total_energy_discharge") if charging else (
        "total_energy_discharge", "total_energy_charge")
    assert r[into] > 0 and r[out] == 0.0
    assert (r["total_energy"] > 0) is charging and (r["total_charge"] > 0) is charging
    # about 500 W for the ~0.9 s between the first and the last sample
    assert 0.5 * 500 / 3.6e6 < r[into] < 1.1 * 500 / 3.6e6


# --- the state file -------------------------------------------------------------------------------------

ORIGINAL_FILE = {  # the add-on we replace (fl4p/batmon-ha), bms_meter_states.json as it writes it
    "battery1": {"total_charge": {"reading": 12.3}, "total_energy": {"reading": 0.6},
                 "total_energy_discharge": {"reading": 123.4}, "total_energy_charge": {"reading": 130.2},
                 "total_cycles": {"reading": 41.7}, "total_abs_diff_charge": {"reading": 9876.5}},
    "old_battery": {"total_charge": {"reading": 1.0}, "total_energy": {"reading": 2.0},
                    "total_energy_discharge": {"reading": 3.0}, "total_energy_charge": {"reading": 5.0},
                    "total_cycles": {"reading": 0.5}, "total_abs_diff_charge": {"reading": 6.0}},
}


async def test_totals_of_the_original_add_on_carry_over_and_absent_devices_are_kept(tmp_path: Path) -> None:
    (tmp_path / METER_FILE).write_text(json.dumps(ORIGINAL_FILE, indent=2))
    _, sink = await run_app([{"address": "x", "type": "constant", "alias": "battery1"}], 1.0, tmp_path)
    first = next(m for a, m in sink.meters if a == "battery1")  # delivered at start, before any sample
    assert first == {name: ORIGINAL_FILE["battery1"][name]["reading"] for name in METER_NAMES}
    saved = json.loads((tmp_path / METER_FILE).read_text())
    assert saved["old_battery"] == ORIGINAL_FILE["old_battery"]  # not configured: kept as it was
    b1 = {name: v["reading"] for name, v in saved["battery1"].items()}
    assert set(b1) == set(METER_NAMES)
    assert b1["total_energy_charge"] > 130.2 and b1["total_energy_discharge"] == 123.4
    assert b1["total_cycles"] == 41.7
    assert sink.meters[-1] == ("battery1", b1)  # the last delivery (at shutdown) is what was saved


async def test_nan_totals_from_the_original_are_repaired_or_dropped_with_a_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / METER_FILE).write_text(
        '{"battery1": {"total_charge": {"reading": NaN}, "total_energy": {"reading": NaN},'
        ' "total_energy_charge": {"reading": 10.0}, "total_energy_discharge": {"reading": 4.0}}}')
    app, _ = await run_app([{"address": "x", "type": "constant", "alias": "battery1"}], 0.3, tmp_path)
    r = app.meter_book.readings("battery1")
    assert r["total_energy"] == pytest.approx(6.0, abs=1e-3)  # rebuilt as charge - discharge
    assert r["total_charge"] < 0.01  # lost: starts from zero
    lines = [rec.getMessage() for rec in caplog.records if "could not use" in rec.getMessage()]
    assert len(lines) == 1 and "battery1.total_charge (NaN)" in lines[0]
    assert list(tmp_path.glob(f"{METER_FILE}.corrupt-*"))  # the file as read is kept

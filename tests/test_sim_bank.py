"""Simulated packs in parallel (bmslib/sim/bank.py): one bus voltage, the bank's load split between them."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from bmslib.app import App
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.bms.jbd.protocol import frames as jbd
from bmslib.cli import DEMO_BANK
from bmslib.config import parse_config
from bmslib.registry import type_infos
from bmslib.sim.bank import ParallelBank
from bmslib.sim.battery import BatteryModel
from tests.sim_helpers import app_running, fast_types
from tests.test_app import RecordingSink


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bank_of(*capacities: float, load: float, cells: int = 4) -> tuple[ParallelBank, list[BatteryModel], Clock]:
    clock = Clock()
    bank = ParallelBank(lambda _t: load, clock=clock)
    packs = [bank.join(BatteryModel(cells=cells, capacity_ah=c, soc=30.0 + 20 * i, clock=clock,
                                    rng=random.Random(i))) for i, c in enumerate(capacities)]
    return bank, packs, clock


def step(packs: list[BatteryModel], clock: Clock, seconds: float) -> None:
    clock.now += seconds
    for p in packs:
        p.advance()


@pytest.mark.parametrize("load", [30.0, -30.0])
def test_packs_share_one_voltage_and_split_the_load(load: float) -> None:
    bank, packs, clock = bank_of(200.0, 100.0, load=load)
    assert packs[0].soc == packs[1].soc == pytest.approx((200 * 30 + 100 * 50) / 300)  # equalised on joining
    step(packs, clock, 60.0)
    a, b = packs
    assert a.voltage == pytest.approx(b.voltage, abs=4 * 0.0005 + 1e-9)  # the cells are rounded to mV
    assert a.current + b.current == pytest.approx(load)
    assert a.current * load > 0 and b.current * load > 0
    assert bank.bus_voltage() == pytest.approx(a.voltage, abs=0.003)


def test_the_fuller_pack_supplies_more_while_discharging_and_takes_less_while_charging() -> None:
    for load in (20.0, -20.0):
        _, packs, clock = bank_of(100.0, 100.0, load=load)
        packs[0].soc, packs[1].soc = 45.0, 85.0  # as if they had not been together long
        step(packs, clock, 1.0)
        full, low = packs[1], packs[0]
        assert full.current > low.current  # discharging: more out; charging: less in (less negative)
        assert full.current + low.current == pytest.approx(load)


def test_a_lower_resistance_pack_carries_more() -> None:
    _, packs, clock = bank_of(100.0, 100.0, load=30.0)
    packs[1].internal_resistance = packs[0].internal_resistance / 2
    step(packs, clock, 1.0)
    assert packs[1].current == pytest.approx(2 * packs[0].current, rel=0.05)


def test_a_pack_with_its_fet_off_carries_nothing_and_the_other_takes_the_load() -> None:
    _, packs, clock = bank_of(100.0, 100.0, load=25.0)
    packs[0].set_switch("discharge", False)
    step(packs, clock, 1.0)
    assert (packs[0].current, packs[1].current) == (0.0, pytest.approx(25.0))
    packs[1].set_switch("discharge", False)
    step(packs, clock, 1.0)
    assert (packs[0].current, packs[1].current) == (0.0, 0.0)


def test_packs_of_a_bank_have_the_same_cell_count() -> None:
    bank, _, _ = bank_of(100.0, load=1.0)
    with pytest.raises(ValueError, match="cannot join a bank of 4-cell packs"):
        bank.join(BatteryModel(cells=8))


def config(devices: list[dict[str, Any]]) -> Any:
    return parse_config({"devices": devices, "sample_period": 0.2, "publish_period": 0.2}, source="test", env={},
                        types=type_infos(fast_types()))


@pytest.mark.parametrize("load", [24.0, -24.0])
def test_the_demo_packs_report_one_voltage_and_currents_of_one_sign_in_their_protocol(load: float) -> None:
    app = App(config([dict(d) for d in DEMO_BANK]), types=fast_types(), sinks=[RecordingSink()])
    assert app.radio is not None
    app.radio.bank("demo").load = lambda _t: load
    packs = [app.radio.by_sim_id(s) for s in ("bank1", "bank2")]
    assert all(isinstance(p, JbdEmulator) for p in packs)
    for p in packs:
        assert isinstance(p, JbdEmulator)
        p.battery.advance()
    a, b = (jbd.decode_basic(p.basic_payload()) for p in packs if isinstance(p, JbdEmulator))
    assert a["voltage"] == pytest.approx(b["voltage"], abs=0.02)  # 10 mV units, cells rounded to 1 mV
    assert abs(a["current"] + b["current"]) == pytest.approx(abs(load), abs=0.03)
    assert a["current"] * b["current"] > 0
    assert a["capacity"] != b["capacity"]  # 200 Ah and 100 Ah: the bigger one ...
    assert abs(a["current"]) > abs(b["current"])  # ... at the same state of charge carries more


async def test_a_bank_of_sim_devices_through_the_app_and_the_parallel_group() -> None:
    devices = [{"address": "sim:p1?bank=house", "type": "jbd", "alias": "p1"},
               {"address": "sim:p2?bank=house", "type": "jbd", "alias": "p2"},
               {"address": "p1, p2", "type": "group_parallel", "alias": "house"}]
    sink = RecordingSink()
    app = App(config(devices), types=fast_types(), sinks=[sink])
    assert app.radio is not None
    app.radio.bank("house").load = lambda _t: 18.0
    async with app_running(app, stop_timeout=10):
        await asyncio.sleep(2.0)
    last = {alias: s for _, alias, s in sink.samples}
    p1, p2, house = last["p1"], last["p2"], last["house"]
    assert p1.voltage is not None and p2.voltage is not None and house.current is not None
    assert p1.voltage == pytest.approx(p2.voltage, abs=0.02)
    assert p1.current is not None and p2.current is not None
    assert p1.current > 0 and p2.current > 0  # both discharging (the model's sign)
    assert p1.current + p2.current == pytest.approx(18.0, abs=0.05)
    assert house.current == pytest.approx(18.0, abs=0.05)

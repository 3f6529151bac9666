"""CBT Power emulator (bmslib/bms/bridge/emulators/cbtpwr.py) against real captured frames and aiobmsble's plugin."""

from __future__ import annotations

import random
from typing import Any

import pytest
from aiobmsble.bms.cbtpwr_bms import BMS as CbtPowerPlugin
from aiobmsble.utils import bms_supported
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslib.bms.bridge.emulators import cbtpwr as cbtpwr_emulator
from bmslib.bms.bridge.emulators.cbtpwr import CbtPowerEmulator
from bmslib.bms.bridge.emulators.frames import cbtpwr
from bmslib.sim.battery import BatteryModel
from bmslib.sim.radio import sim_address
from tests.bms.bridge.emu_support import (
    captured_advertisement,
    load_capture,
    matching_plugins,
    read_with_plugin,
    temps_of,
    with_unmodeled,
)
from tests.bms.bridge.replay import read_replay, replay_emulator

CAPTURE = load_capture("cbtpwr")
BASE = 4  # data offset in a reply: the unmodeled ranges count from there


def encode(cmd: int, values: dict[str, Any]) -> bytes:
    if cbtpwr.CELLS_FIRST <= cmd <= cbtpwr.CELLS_LAST:
        return cbtpwr.cells_reply(cmd, values["cells"])
    if cmd == cbtpwr.TEMPS:
        return cbtpwr.temps_reply(values["temps"])
    return cbtpwr.values_reply(cmd, values)


@pytest.mark.parametrize("f", CAPTURE["frames"], ids=[f["name"] for f in CAPTURE["frames"]])
def test_encoder_rebuilds_the_captured_reply(f: dict[str, Any]) -> None:
    captured = bytes.fromhex(f["hex"])
    encoded = encode(f["cmd"], f["values"])
    mixed = with_unmodeled(encoded[:-3], captured[:-3], f["unmodeled"], base=BASE)
    body = mixed[2:]
    assert mixed + bytes((sum(body) & 0xFF,)) + cbtpwr.TAIL_RX == captured
    if not f["unmodeled"]:
        assert encoded == captured


def test_the_plugins_requests_parse() -> None:
    for f in CAPTURE["frames"]:
        request = bytes.fromhex(f["request"])
        assert cbtpwr.parse_request(request) == f["cmd"]
        assert cbtpwr.request(f["cmd"]) == request


@pytest.mark.parametrize(("which", "names"), [
    ("five_cells", ("cells_05", "cells_06_none", "temps", "soc", "power", "runtime", "capacity", "alarms")),
    ("twenty_cells", ("cells_05_20_cells", "cells_06_20_cells", "cells_07_20_cells", "cells_08_20_cells",
                      "temps_20_cells", "soc", "power_20_cells", "runtime", "capacity", "alarms")),
])
async def test_the_captured_replies_decode_as_aiobmsble_expects(which: str, names: tuple[str, ...]) -> None:
    frames = {f["name"]: f for f in CAPTURE["frames"]}
    replies = {bytes.fromhex(frames[n]["request"]): bytes.fromhex(frames[n]["hex"]) for n in names}
    em = replay_emulator(CbtPowerEmulator, replies, address=sim_address(f"cbt-{which}"), name="170R000121")
    sample, _info = await read_replay(CbtPowerPlugin, em, info=False)
    expected = dict(CAPTURE["expected_by_aiobmsble"][which])
    assert temps_of(sample) == expected.pop("temp_values")
    assert {k: sample.get(k) for k in expected} == expected


@pytest.mark.parametrize(("cells", "amps"), [(4, 7.31), (16, -12.47), (20, 3.0)])  # discharging, charging
async def test_aiobmsble_reads_the_live_battery(cells: int, amps: float) -> None:
    battery = BatteryModel(cells=cells, load=lambda _t: amps, rng=random.Random(cells), clock=lambda: 0.0)
    assert battery.current == amps
    em = CbtPowerEmulator(address=sim_address(f"cbt{cells}"), name="ignored", battery=battery,
                          rng=random.Random(cells))
    sample = await read_with_plugin(CbtPowerPlugin, em)
    assert sample["voltage"] == pytest.approx(battery.voltage, abs=0.0006)
    assert sample["current"] == pytest.approx(-battery.current, abs=0.0006)  # aiobmsble: + = charging
    assert sample["battery_level"] == round(battery.soc)
    assert sample["design_capacity"] == round(battery.capacity_ah)
    assert sample["cycles"] == battery.cycles
    assert sample["cell_voltages"] == pytest.approx(battery.cell_voltages, abs=0.0006)
    assert temps_of(sample) == [round(battery.temperatures[0])]  # the plugin reads the first probe, in degC
    if amps > 0:
        assert sample["runtime"] == pytest.approx(battery.charge_ah / amps * 3600, abs=0.01 * 3600)
    else:
        assert "runtime" not in sample


def test_the_advertisement_is_a_cbtpwr_one_only() -> None:
    em = CbtPowerEmulator(address=sim_address("cbt-adv"), name="SIM-cbtpwr1")
    assert em.name.startswith("100R") and len(em.name) == len("170R000121")
    assert matching_plugins(em) == {"cbtpwr"}
    assert bms_supported(CbtPowerPlugin, captured_advertisement(CAPTURE["advertisement"]), em.address)
    assert cbtpwr_emulator.EMULATOR is CbtPowerEmulator


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=12), st.builds(cbtpwr.request, st.integers(0, 255))), max_size=8))
def test_arbitrary_host_writes_never_crash_the_emulator(writes: list[bytes]) -> None:
    em = CbtPowerEmulator(address=sim_address("cbt-fuzz"), name="x", rng=random.Random(0),
                          battery=BatteryModel(rng=random.Random(0), clock=lambda: 0.0))
    for data in writes:
        em.handle_write(cbtpwr_emulator.WRITE_UUID, data)
        em.handle_write(cbtpwr_emulator.NOTIFY_UUID, data)

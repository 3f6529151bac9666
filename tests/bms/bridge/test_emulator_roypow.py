"""RoyPow emulator (bmslib/bms/bridge/emulators/roypow.py) against real captured frames and aiobmsble's plugin."""

from __future__ import annotations

import random
from typing import Any

import pytest
from aiobmsble.bms.roypow_bms import BMS as RoyPowPlugin
from aiobmsble.utils import bms_supported
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslib.bms.bridge.emulators import roypow as roypow_emulator
from bmslib.bms.bridge.emulators.frames import roypow
from bmslib.bms.bridge.emulators.roypow import RoyPowEmulator
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

CAPTURE = load_capture("roypow")
BASE = 6  # data offset in a reply: the unmodeled ranges count from there


def encode(cmd: int, v: dict[str, Any]) -> bytes:
    if cmd == roypow.CELLS:
        return roypow.cells_reply(v["cells"])
    if cmd == roypow.STATUS:
        return roypow.status_reply(v["current"], v["temps"], charge_fet=v["charge_fet"],
                                   discharge_fet=v["discharge_fet"], alarms=v["alarms"])
    return roypow.values_reply(v, v["runtime"])


@pytest.mark.parametrize("f", CAPTURE["frames"], ids=[f["name"] for f in CAPTURE["frames"]])
def test_encoder_rebuilds_the_captured_reply(f: dict[str, Any]) -> None:
    captured = bytes.fromhex(f["hex"]).removeprefix(roypow.AT_STAT).removesuffix(roypow.AT_STAT)
    encoded = encode(f["cmd"], f["values"])
    mixed = with_unmodeled(encoded[:-2], captured[:-2], f["unmodeled"], base=BASE)
    assert mixed + bytes((roypow.xor(mixed[3:]), roypow.TAIL)) == captured
    if f["cmd"] != roypow.STATUS:  # the pack values' unpinned bytes are sent as captured
        assert encoded == captured
    assert roypow.parse_request(bytes.fromhex(f["request"])) == f["cmd"]
    assert roypow.request(f["cmd"]).hex() == f["request"]


async def test_the_captured_replies_decode_as_aiobmsble_expects() -> None:
    """The replay includes the BLE module's AT+STAT text where it was captured. aiobmsble reads the remaining
    charge with the byte of tag 08 as its low byte: 98.056 Ah from the 98.173 Ah (0x17F7D mAh) sent."""
    replies = {bytes.fromhex(f["request"]): bytes.fromhex(f["hex"]) for f in CAPTURE["frames"]}
    em = replay_emulator(RoyPowEmulator, replies, address=sim_address("rp-replay"), name=" B12100A 220600016 ")
    sample, _info = await read_replay(RoyPowPlugin, em, info=False)
    expected = dict(CAPTURE["expected_by_aiobmsble"])
    assert temps_of(sample) == expected.pop("temp_values")
    assert {k: sample.get(k) for k in expected} == expected


@pytest.mark.parametrize(("cells", "amps", "fets"), [(4, 7.31, (True, True)), (8, -12.47, (True, False)),
                                                     (4, 0.0, (False, True))])
async def test_aiobmsble_reads_the_live_battery(cells: int, amps: float, fets: tuple[bool, bool]) -> None:
    battery = BatteryModel(cells=cells, load=lambda _t: amps, rng=random.Random(cells), clock=lambda: 0.0,
                           charge_fet=fets[0], discharge_fet=fets[1])
    assert battery.current == amps
    em = RoyPowEmulator(address=sim_address(f"rp{cells}{amps}"), name="ignored", battery=battery,
                        rng=random.Random(cells))
    sample = await read_with_plugin(RoyPowPlugin, em)
    assert sample["voltage"] == pytest.approx(battery.voltage, abs=0.006)
    assert sample["current"] == pytest.approx(-battery.current, abs=0.006)  # aiobmsble: + = charging
    assert sample["battery_level"] == round(battery.soc)
    assert sample["cycles"] == battery.cycles
    assert sample["cycle_charge"] == pytest.approx(battery.charge_ah, abs=0.256)  # the plugin's low byte: tag 08
    assert sample["cell_voltages"] == pytest.approx(battery.cell_voltages, abs=0.0006)
    assert temps_of(sample) == [round(t) for t in battery.temperatures]
    assert (sample["chrg_mosfet"], sample["dischrg_mosfet"]) == fets
    if amps > 0:
        assert sample["runtime"] == pytest.approx(battery.charge_ah / amps * 3600, abs=60)
    else:
        assert "runtime" not in sample


def test_the_advertisement_is_a_roypow_one_only() -> None:
    em = RoyPowEmulator(address=sim_address("rp-adv"), name="SIM-roypow1")
    assert em.name.startswith(" B12100A ") and em.name.endswith(" ")
    assert matching_plugins(em) == {"roypow"}
    assert bms_supported(RoyPowPlugin, captured_advertisement(CAPTURE["advertisement"]), em.address)
    assert roypow_emulator.EMULATOR is RoyPowEmulator


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=12), st.builds(roypow.request, st.integers(0, 255))), max_size=8))
def test_arbitrary_host_writes_never_crash_the_emulator(writes: list[bytes]) -> None:
    em = RoyPowEmulator(address=sim_address("rp-fuzz"), name="x", rng=random.Random(0),
                        battery=BatteryModel(rng=random.Random(0), clock=lambda: 0.0))
    em.on_connect()
    for data in writes:
        em.handle_write(roypow_emulator.CHAR_UUID, data)
        em.handle_write("0000ffe4-0000-1000-8000-00805f9b34fb", data)

"""Offgridtec emulator (bmslib/bms/bridge/emulators/ogt.py) against aiobmsble's test frames and its real plugin.

The frames of this family are not device captures (see captures/ogt.json): aiobmsble's test wrote them from
the protocol. The advertisement is a captured one.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from aiobmsble.bms.ogt_bms import BMS as OgtPlugin
from aiobmsble.utils import bms_supported
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslib.bms.bridge.emulators import ogt as ogt_emulator
from bmslib.bms.bridge.emulators.frames import ogt
from bmslib.bms.bridge.emulators.ogt import OgtEmulator
from bmslib.sim.battery import BatteryModel
from bmslib.sim.radio import sim_address
from tests.bms.bridge.emu_support import (
    captured_advertisement,
    load_capture,
    matching_plugins,
    read_with_plugin,
    temps_of,
)
from tests.bms.bridge.replay import read_replay, replay_emulator

CAPTURE = load_capture("ogt")


def test_the_key_follows_from_the_name() -> None:
    assert ogt.key("SmartBat-A12345") == ogt.key("SmartBat-B12294") == CAPTURE["key"]
    assert ogt.key("SmartBat-C12345") is None and ogt.key("SmartBat-B") is None and ogt.key("SmartBat-Bx1") is None


@pytest.mark.parametrize("f", CAPTURE["frames"], ids=[f["name"] for f in CAPTURE["frames"]])
def test_encoder_rebuilds_the_test_frame(f: dict[str, Any]) -> None:
    k = CAPTURE["key"]
    if f["field"] == "cell":
        encoded = ogt.reply(f["register"], round(f["value"] * 1000), k)
    else:
        raw, multiplier = ogt.raw_values(f["type"], {f["field"]: f["value"]})[f["register"]]
        encoded = ogt.reply(f["register"], raw, k, multiplier)
    assert encoded.hex() == f["hex"]
    length = 3 if f["field"] in ("charge", "current") else 1 if f["field"] == "soc" else 2
    assert ogt.request(f["type"], f["register"], length, k).hex() == f["request"]
    assert ogt.parse_request(bytes.fromhex(f["request"]), f["type"], k) == (f["register"], length)


@pytest.mark.parametrize("kind", ["A", "B"])
async def test_the_test_frames_decode_as_aiobmsble_expects(kind: str) -> None:
    name = "SmartBat-A12345" if kind == "A" else "SmartBat-B12294"
    k = CAPTURE["key"]
    replies: dict[bytes, bytes] = {bytes.fromhex(f["request"]): bytes.fromhex(f["hex"])
                                   for f in CAPTURE["frames"] if f["type"] == kind}
    register, _length = ogt.REGISTERS[kind]["design_capacity"]  # not in aiobmsble's test, read by 0.31.0
    raw, multiplier = ogt.raw_values(kind, {"design_capacity": 100})[register]
    replies[ogt.request(kind, register, 3, k)] = ogt.reply(register, raw, k, multiplier)
    if kind == "B":  # four cells: the fifth register answers Err
        replies[ogt.request(kind, 59, 2, k)] = ogt.error_reply(k)
    em = replay_emulator(OgtEmulator, replies, address=sim_address(f"ogt-replay-{kind}"), name=name)
    sample, _info = await read_replay(OgtPlugin, em, info=False)
    expected = dict(CAPTURE["expected_by_aiobmsble"][kind])
    assert temps_of(sample) == expected.pop("temp_values")
    assert {key: sample.get(key) for key in expected} == expected
    assert sample["design_capacity"] == 100


@pytest.mark.parametrize(("name", "cells", "amps"), [("ignored", 4, 7.31), ("SmartBat-B00042", 16, -12.47),
                                                     ("SmartBat-A15051", 4, 3.0)])
async def test_aiobmsble_reads_the_live_battery(name: str, cells: int, amps: float) -> None:
    battery = BatteryModel(cells=cells, load=lambda _t: amps, rng=random.Random(cells), clock=lambda: 0.0)
    assert battery.current == amps
    em = OgtEmulator(address=sim_address(f"ogt{cells}{amps}"), name=name, battery=battery, rng=random.Random(cells))
    sample = await read_with_plugin(OgtPlugin, em)
    resolution = 0.01  # A: 0.01 A; B: 1 mA times the multiplier 10
    assert sample["voltage"] == pytest.approx(battery.voltage, abs=0.0006)
    assert sample["current"] == pytest.approx(-battery.current, abs=resolution / 2 + 1e-9)  # aiobmsble: + = charging
    assert sample["battery_level"] == round(battery.soc)
    assert sample["cycles"] == battery.cycles
    assert sample["cycle_charge"] == pytest.approx(battery.charge_ah, abs=0.006)
    assert sample["design_capacity"] == round(battery.capacity_ah)
    assert temps_of(sample) == pytest.approx(battery.temperatures[:1], abs=0.051)
    if em.kind == "B":
        assert sample["cell_voltages"] == pytest.approx(battery.cell_voltages, abs=0.0006)
    else:
        assert "cell_voltages" not in sample
    if amps > 0:
        assert sample["runtime"] == pytest.approx(battery.charge_ah / amps * 3600, abs=60)
    else:
        assert "runtime" not in sample


def test_the_advertisement_is_an_ogt_one_only() -> None:
    em = OgtEmulator(address=sim_address("ogt-adv"), name="SIM-ogt1")
    assert em.name.startswith("SmartBat-B") and em.kind == "B"
    assert matching_plugins(em) == {"ogt"}
    assert bms_supported(OgtPlugin, captured_advertisement(CAPTURE["advertisement"]), em.address)
    assert OgtEmulator(address=sim_address("ogt-adv"), name="SmartBat-A12345").kind == "A"
    assert ogt_emulator.EMULATOR is OgtEmulator


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["SmartBat-A12345", "SmartBat-B15051"]),
       st.lists(st.one_of(st.binary(min_size=7, max_size=9),
                          st.tuples(st.sampled_from("AB"), st.integers(0, 255), st.integers(0, 255))),
                max_size=8))
def test_arbitrary_host_writes_never_crash_the_emulator(name: str, writes: list[Any]) -> None:
    em = OgtEmulator(address=sim_address("ogt-fuzz"), name=name, rng=random.Random(0),
                     battery=BatteryModel(rng=random.Random(0), clock=lambda: 0.0))
    for w in writes:
        data = w if isinstance(w, bytes) else ogt.request(w[0], w[1], w[2], em.key)
        em.handle_write(ogt_emulator.WRITE_UUID, data)
        em.handle_write(ogt_emulator.NOTIFY_UUID, data)

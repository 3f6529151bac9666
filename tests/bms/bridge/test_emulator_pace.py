"""Pace emulator (bmslib/bms/bridge/emulators/pace.py) against real captured frames and aiobmsble's own plugin."""

from __future__ import annotations

import random
from typing import Any

import pytest
from aiobmsble.bms.pace_bms import BMS as PacePlugin
from aiobmsble.utils import bms_supported
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslib.bms.bridge.emulators import pace as pace_emulator
from bmslib.bms.bridge.emulators.frames import pace
from bmslib.bms.bridge.emulators.pace import PaceEmulator
from bmslib.sim.battery import BatteryModel
from bmslib.sim.radio import sim_address
from tests.bms.bridge.emu_support import (
    captured_advertisement,
    frame_of,
    load_capture,
    matching_plugins,
    read_with_plugin,
    temps_of,
    with_unmodeled,
)
from tests.bms.bridge.replay import read_replay, replay_emulator

CAPTURE = load_capture("pace")
BASE = 8  # data offset in a frame: the unmodeled ranges count from there


def encode(name: str, values: dict[str, Any]) -> bytes:
    if name == "system":
        data = pace.sys_data(values)
    elif name == "pack":
        data = pace.pack_data(values)
    elif name == "cells":
        data = pace.cell_data(values["voltage"], values["cells"], values["temps"])
    elif name == "serial":
        data = pace.serial_data(values["serial"])
    else:
        data = pace.VERSIONS_DATA
    request = pace.parse(bytes.fromhex(frame_of(CAPTURE, name)["request"]))
    assert request is not None
    return pace.frame(request[0], data)


@pytest.mark.parametrize("name", [f["name"] for f in CAPTURE["frames"]])
def test_encoder_rebuilds_the_captured_reply(name: str) -> None:
    f = frame_of(CAPTURE, name)
    captured = bytes.fromhex(f["hex"])
    encoded = encode(name, f["values"])
    assert encoded[:BASE] == captured[:BASE]
    # the unmodeled bytes are taken from the capture, so the CRC must match too: recompute it over the mix
    mixed = with_unmodeled(encoded[:-3], captured[:-3], f["unmodeled"], base=BASE)
    assert mixed + pace.crc(mixed) + bytes((pace.TAIL,)) == captured
    if not f["unmodeled"]:
        assert encoded == captured


def test_requests_are_the_plugins() -> None:
    for f in CAPTURE["frames"]:
        parsed = pace.parse(bytes.fromhex(f["request"]))
        assert parsed is not None
        assert pace.frame(*parsed) == bytes.fromhex(f["request"])


async def test_the_captured_replies_decode_as_aiobmsble_expects() -> None:
    """aiobmsble 0.31.0's plugin reading the captured replies (replayed) gets what aiobmsble's test expects:
    the captures and the expectations hold for the pinned release."""
    replies = {bytes.fromhex(f["request"]): bytes.fromhex(f["hex"]) for f in CAPTURE["frames"]}
    em = replay_emulator(PaceEmulator, replies, address=sim_address("pace-replay"), name="PC-9662")
    sample, info = await read_replay(PacePlugin, em)
    pack = frame_of(CAPTURE, "pack")["expected_by_aiobmsble"]
    system = frame_of(CAPTURE, "system")["expected_by_aiobmsble"]
    cells = frame_of(CAPTURE, "cells")["expected_by_aiobmsble"]
    assert {k: sample[k] for k in system} == system  # pack count 1: the system values are the pack-level ones
    (got_pack,) = sample["packs"]
    assert {k: got_pack[k] for k in pack} == pack
    assert got_pack["cell_voltages"] == cells["cell_voltages"]
    assert temps_of(got_pack) == cells["temp_values"]
    assert info["serial_number"] == frame_of(CAPTURE, "serial")["expected_by_aiobmsble"]["serial_number"]
    assert {k: info[k] for k in ("sw_version", "hw_version")} == frame_of(CAPTURE, "versions")["expected_by_aiobmsble"]


@pytest.mark.parametrize(("seed", "amps"), [(1, 7.31), (7, -12.47)])  # discharging, charging
async def test_aiobmsble_reads_the_live_battery(seed: int, amps: float) -> None:
    battery = BatteryModel(cells=16, load=lambda _t: amps, rng=random.Random(seed), clock=lambda: 0.0)
    assert battery.current == amps
    em = PaceEmulator(address=sim_address(f"pace{seed}"), name="ignored", battery=battery, rng=random.Random(seed))
    sample = await read_with_plugin(PacePlugin, em)
    assert "packs" not in sample  # a pack on its own: its values are the sample's
    assert sample["voltage"] == pytest.approx(battery.voltage, abs=0.006)
    assert sample["current"] == pytest.approx(-battery.current, abs=0.006)  # aiobmsble: + = charging
    assert sample["battery_level"] == round(battery.soc)
    assert sample["cycle_charge"] == pytest.approx(battery.charge_ah, abs=0.006)
    assert sample["design_capacity"] == round(battery.capacity_ah)
    assert sample["cycles"] == battery.cycles
    assert sample["cell_voltages"] == pytest.approx(battery.cell_voltages, abs=0.0006)
    assert temps_of(sample) == pytest.approx([*battery.temperatures, battery.mos_temperature], abs=0.051)


async def test_a_four_cell_pack_still_sends_its_mosfet_probe() -> None:
    battery = BatteryModel(cells=4, temperature_probes=1, rng=random.Random(2), clock=lambda: 0.0)
    em = PaceEmulator(address=sim_address("pace4"), name="ignored", battery=battery, rng=random.Random(2))
    sample = await read_with_plugin(PacePlugin, em)
    assert sample["cell_voltages"] == pytest.approx(battery.cell_voltages, abs=0.0006)
    assert temps_of(sample) == pytest.approx([*battery.temperatures, battery.mos_temperature], abs=0.051)


def test_the_advertisement_is_a_pace_one_only() -> None:
    em = PaceEmulator(address=sim_address("pace-adv"), name="SIM-pace1")
    assert em.name.startswith("PC-") and len(em.name) == len("PC-9662")
    assert matching_plugins(em) == {"pace"}
    # the captured advertisement the emulator's is modelled on is a Pace one for aiobmsble, too
    assert bms_supported(PacePlugin, captured_advertisement(CAPTURE["advertisement"]), em.address)
    assert PaceEmulator(address=sim_address("pace-adv"), name="PC-1234").name == "PC-1234"
    assert pace_emulator.EMULATOR is PaceEmulator


_FRAME_TYPES = st.sampled_from([pace.SYS_INFO, pace.PACK_INFO, pace.CELL_INFO, pace.SERIAL, pace.VERSIONS,
                                bytes(6)])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40),
                          st.builds(pace.frame, _FRAME_TYPES, st.binary(max_size=8))), max_size=6))
def test_arbitrary_host_writes_never_crash_the_emulator(writes: list[bytes]) -> None:
    em = PaceEmulator(address=sim_address("pace-fuzz"), name="x", rng=random.Random(0),
                      battery=BatteryModel(rng=random.Random(0), clock=lambda: 0.0))
    em.on_connect()
    for data in writes:
        em.handle_write(pace_emulator.WRITE_UUID, data)
        em.handle_write(pace_emulator.NOTIFY_UUID, data)

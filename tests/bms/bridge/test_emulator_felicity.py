"""Felicity emulator (bmslib/bms/bridge/emulators/felicity.py) against real captured replies and aiobmsble's plugin."""

from __future__ import annotations

import random
from typing import Any

import pytest
from aiobmsble.bms.felicity_bms import BMS as FelicityPlugin
from aiobmsble.utils import bms_supported
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslib.bms.bridge.emulators import felicity as felicity_emulator
from bmslib.bms.bridge.emulators.felicity import FelicityEmulator
from bmslib.bms.bridge.emulators.frames import felicity
from bmslib.sim.battery import BatteryModel
from bmslib.sim.radio import sim_address
from tests.bms.bridge.emu_support import (
    captured_advertisement,
    frame_of,
    load_capture,
    matching_plugins,
    read_with_plugin,
    temps_of,
)
from tests.bms.bridge.replay import read_replay, replay_emulator

CAPTURE = load_capture("felicity")


def encode(name: str, values: dict[str, Any]) -> bytes:
    if name == "real_info":
        return felicity.real_info(values)
    if name == "basic_info":
        return felicity.basic_info(values["wifi_sn"], values["dev_sn"])
    return felicity.date_info(values["wifi_sn"], values["date"])


@pytest.mark.parametrize("name", [f["name"] for f in CAPTURE["frames"]])
def test_encoder_rebuilds_the_captured_reply(name: str) -> None:
    f = frame_of(CAPTURE, name)
    assert encode(name, f["values"]) == f["text"].encode()
    assert felicity.parse_command(f["request"].encode()) is not None


async def test_the_captured_replies_decode_as_aiobmsble_expects() -> None:
    replies = {f["request"].encode(): f["text"].encode() for f in CAPTURE["frames"]}
    em = replay_emulator(FelicityEmulator, replies, address=sim_address("fel-replay"), name="F100011002424470238")
    sample, info = await read_replay(FelicityPlugin, em)
    expected = CAPTURE["expected_by_aiobmsble"] | CAPTURE["expected_by_aiobmsble_0_31_0"]
    assert temps_of(sample) == expected.pop("temp_values")
    assert {k: sample.get(k) for k in expected} == expected
    assert info == CAPTURE["device_info_expected"]


@pytest.mark.parametrize(("cells", "amps"), [(4, 7.31), (16, -12.47)])  # discharging, charging
async def test_aiobmsble_reads_the_live_battery(cells: int, amps: float) -> None:
    battery = BatteryModel(cells=cells, load=lambda _t: amps, temperature_probes=3, rng=random.Random(cells),
                           clock=lambda: 0.0)
    assert battery.current == amps
    em = FelicityEmulator(address=sim_address(f"fel{cells}"), name="ignored", battery=battery,
                          rng=random.Random(cells))
    sample = await read_with_plugin(FelicityPlugin, em)
    assert sample["voltage"] == pytest.approx(battery.voltage, abs=0.0006)
    assert sample["current"] == pytest.approx(-battery.current, abs=0.051)  # aiobmsble: + = charging
    assert sample["battery_level"] == pytest.approx(battery.soc, abs=0.006)
    assert sample["cycle_charge"] == pytest.approx(battery.charge_ah, abs=0.01)
    assert sample["cell_voltages"] == pytest.approx(battery.cell_voltages, abs=0.0006)
    assert temps_of(sample) == pytest.approx(battery.temperatures, abs=0.051)


async def test_device_info_names_the_emulators_serial() -> None:
    em = FelicityEmulator(address=sim_address("fel-info"), name="ignored")
    _sample, info = await read_replay(FelicityPlugin, em)
    assert info["serial_number"] == em.name[1:] and len(em.name) == len("F100011002424470238")


def test_the_advertisement_is_a_felicity_one_only() -> None:
    em = FelicityEmulator(address=sim_address("fel-adv"), name="SIM-felicity1")
    assert matching_plugins(em) == {"felicity"}
    assert bms_supported(FelicityPlugin, captured_advertisement(CAPTURE["advertisement"]), em.address)
    assert FelicityEmulator(address=sim_address("fel-adv"), name="F074204831425240169").name == "F074204831425240169"
    assert felicity_emulator.EMULATOR is FelicityEmulator


_COMMANDS = st.sampled_from([felicity.command(c) for c in felicity.COMMANDS])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=48), _COMMANDS, _COMMANDS.map(lambda c: c + b"\r\n")), max_size=6))
def test_arbitrary_host_writes_never_crash_the_emulator(writes: list[bytes]) -> None:
    em = FelicityEmulator(address=sim_address("fel-fuzz"), name="x", rng=random.Random(0),
                          battery=BatteryModel(rng=random.Random(0), clock=lambda: 0.0))
    for data in writes:
        em.handle_write(felicity_emulator.WRITE_UUID, data)
        em.handle_write(felicity_emulator.NOTIFY_UUID, data)

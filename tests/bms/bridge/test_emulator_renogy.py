"""Renogy emulator (bmslib/bms/bridge/emulators/renogy.py) against real captured replies and aiobmsble's plugin."""

from __future__ import annotations

import random

import pytest
from aiobmsble.bms.renogy_bms import BMS as RenogyPlugin
from aiobmsble.utils import bms_supported
from hypothesis import given
from hypothesis import strategies as st

from bmslib.ble.aiobmsble_seam import Route, routed
from bmslib.bms.bridge.emulators.frames import renogy
from bmslib.bms.bridge.emulators.renogy import RenogyEmulator
from bmslib.sim.battery import BatteryModel
from bmslib.sim.radio import SimRadio
from tests.bms.bridge.emu_support import (
    captured_advertisement,
    discover,
    load_capture,
    matching_plugins,
    read_with_plugin,
    temps_of,
    with_unmodeled,
)
from tests.helpers import fuzz_settings

CAPTURE = load_capture("renogy")
BLOCKS = {"SUMMARY": renogy.SUMMARY, "CELLS": renogy.CELLS, "STATUS": renogy.STATUS, "INFO": renogy.INFO,
          "MODEL_NAME": renogy.MODEL_NAME}
HEAD = 3


def encode(frame: dict) -> bytes:
    v = frame["values"]
    match frame["name"]:
        case "SUMMARY":
            data = renogy.summary_data(v)
        case "CELLS":
            data = renogy.cells_data(v["cells"], v["temps"])
        case "STATUS":
            data = renogy.status_data(v["charge_fet"], v["discharge_fet"], v["heater"])
        case "INFO":
            data = renogy.info_data(v["serial"], v["name"], v["sw_version"])
        case _:
            data = renogy.model_data(v["model"])
    return renogy.reply(data)


@pytest.mark.parametrize("frame", CAPTURE["frames"], ids=lambda f: f["name"])
def test_encoder_rebuilds_the_captured_reply(frame: dict) -> None:
    captured = bytes.fromhex(frame["hex"])
    patched = with_unmodeled(encode(frame), captured, frame["unmodeled"], base=HEAD)
    assert renogy.reply(patched[HEAD:-2]) == captured


@pytest.mark.parametrize("frame", CAPTURE["frames"], ids=lambda f: f["name"])
def test_captured_request_is_the_block_the_emulator_answers(frame: dict) -> None:
    req = bytes.fromhex(frame["request"])
    assert renogy.parse_request(req) == (renogy.DEVICE, BLOCKS[frame["name"]])
    assert renogy.request(BLOCKS[frame["name"]]) == req


def test_capture_values_agree_with_what_aiobmsble_reads_from_them() -> None:
    want = CAPTURE["expected"]
    summary, cells = (next(f["values"] for f in CAPTURE["frames"] if f["name"] == n) for n in ("SUMMARY", "CELLS"))
    assert (summary["voltage"], summary["current"], summary["charge"], summary["cycles"]) == (
        want["voltage"], want["current"], want["cycle_charge"], want["cycles"])
    assert (cells["cells"], cells["temps"]) == (want["cell_voltages"], want["temp_values"])


@pytest.mark.parametrize(("cells", "probes", "current"), [(4, 2, -8.25), (16, 3, 31.5), (8, 1, 0.0)])
async def test_aiobmsble_reads_the_battery_through_the_simulated_radio(cells: int, probes: int, current: float) -> None:
    battery = BatteryModel(cells=cells, temperature_probes=probes, capacity_ah=100.0, soc=72.4,
                           load=lambda _t: current, rng=random.Random(cells), clock=lambda: 0.0,
                           discharge_fet=current >= 0)
    em = RenogyEmulator(address="60:98:66:ED:FC:11", name="renogy-test", battery=battery, rng=random.Random(1))
    sample = await read_with_plugin(RenogyPlugin, em, updates=2)
    assert sample["voltage"] == pytest.approx(battery.voltage, abs=0.051)  # 0.1 V on the wire
    assert sample["current"] == pytest.approx(-battery.current, abs=0.0051)  # aiobmsble: + while charging
    assert sample["cycle_charge"] == pytest.approx(battery.charge_ah, abs=0.0006)
    assert sample["battery_level"] == pytest.approx(battery.soc, abs=0.051)
    assert sample["design_capacity"] == 100
    assert sample["cycles"] == battery.cycles
    assert sample["cell_voltages"] == pytest.approx(battery.cell_voltages, abs=0.051)  # 0.1 V per cell
    assert temps_of(sample) == pytest.approx(battery.temperatures, abs=0.051)
    assert (sample["chrg_mosfet"], sample["dischrg_mosfet"]) == (battery.charge_fet, battery.discharge_fet)
    assert sample["problem_code"] == 0


async def test_device_info_as_the_plugin_reads_it() -> None:
    em = RenogyEmulator(address="60:98:66:ED:FC:11", name="x", rng=random.Random(1),
                               battery=BatteryModel(clock=lambda: 0.0, rng=random.Random(1)))
    radio = SimRadio()
    radio.add(em)
    dev, _ = await discover(radio, em)
    with routed(Route(backend=radio.client_backend())):
        plugin = RenogyPlugin(dev)
        try:
            info = await plugin.device_info()
        finally:
            await plugin.disconnect()
            await radio.aclose()
    assert info == {"serial_number": em.serial, "name": renogy.MODEL, "sw_version": renogy.SW_VERSION}


def test_advertisement_is_the_captured_one_and_matches_the_renogy_plugin_only() -> None:
    adv = CAPTURE["advertisement"]
    em = RenogyEmulator(address=adv["address"], name="RENOGY-renogy1")
    ours = em.advertisement()
    assert ours.name == adv["local_name"]
    assert {str(k): v.hex() for k, v in ours.manufacturer_data.items()} == adv["manufacturer_data"]
    assert list(ours.service_uuids) == adv["service_uuids"]
    assert matching_plugins(em) == {"renogy"}
    assert matching_plugins(RenogyEmulator(address="5E:01:02:03:04:05", name="RENOGY-renogy2")) == {"renogy"}
    assert bms_supported(RenogyPlugin, captured_advertisement(adv), adv["address"])


def test_unknown_block_gets_the_modbus_exception_reply() -> None:
    em = RenogyEmulator(address="5E:01:02:03:04:06", name="BT-TH-1")
    reply = em.answer((0x1000, 1))
    assert reply[:3] == b"\x30\x83\x02" and len(reply) == 5


@fuzz_settings
@given(st.lists(st.binary(max_size=12) | st.sampled_from([renogy.request(b) for b in BLOCKS.values()]), max_size=20))
def test_emulator_survives_any_host_writes(writes: list[bytes]) -> None:
    em = RenogyEmulator(address="5E:01:02:03:04:07", name="BT-TH-f",
                               battery=BatteryModel(clock=lambda: 0.0, rng=random.Random(5)))
    answered: list[bytes] = []
    em.notify = lambda frame, char_uuid=None, *, raw=False: answered.append(frame)  # type: ignore[method-assign]
    for w in writes:
        em.handle_write(renogy.WRITE_UUID, w)
        em.handle_write(renogy.NOTIFY_UUID, w)
    answered.clear()
    em.handle_write(renogy.WRITE_UUID, renogy.request(renogy.STATUS))
    assert answered == [renogy.reply(renogy.status_data(True, True))]

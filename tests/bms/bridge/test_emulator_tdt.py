"""TDT emulator (bmslib/bms/bridge/emulators/tdt.py) against real captured replies and aiobmsble's plugin."""

from __future__ import annotations

import random

import pytest
from aiobmsble.bms.tdt_bms import BMS as TdtPlugin
from aiobmsble.utils import bms_supported
from hypothesis import given
from hypothesis import strategies as st

from bmslib.ble.aiobmsble_seam import Route, routed
from bmslib.bms.bridge.emulators.frames import tdt
from bmslib.bms.bridge.emulators.tdt import TdtEmulator
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

CAPTURE = load_capture("tdt")
HEAD = 8  # head, version, address, 03, error, command, length (2)


def encode(case: dict) -> bytes:
    if case["cmd"] == tdt.CMD_CELLS:
        data = tdt.cells_data(case["cells"], case["temps"], case["values"])
    else:
        data = tdt.status_data(case["cells"], case["temps"], case["charge_fet"], case["discharge_fet"],
                               case["problem_code"], case["tail"], case["other_fet_bits"])
    return tdt.reply(case["cmd"], data, version=case["version"], addr=case["addr"])


@pytest.mark.parametrize("case", CAPTURE["frames"], ids=lambda f: f["name"])
def test_encoder_rebuilds_the_captured_reply(case: dict) -> None:
    captured = bytes.fromhex(case["hex"])
    patched = with_unmodeled(encode(case), captured, case["unmodeled"], base=HEAD)
    assert tdt.reply(case["cmd"], patched[HEAD:-3], version=case["version"], addr=case["addr"]) == captured


def test_capture_values_agree_with_what_aiobmsble_reads_from_them() -> None:
    for unit, want in CAPTURE["expected"].items():
        case = next(f for f in CAPTURE["frames"] if f["name"] == f"{unit}/8C")
        v = case["values"]
        assert (v["voltage"], v["current"], v["soc"], v["charge"], v["cycles"], case["cells"]) == (
            want["voltage"], want["current"], want["battery_level"], want["cycle_charge"], want["cycles"],
            want["cell_voltages"])
        # the test file read the temperatures with 273.1 K as 0 degC (see temperature_note)
        assert case["temps"] == pytest.approx([t + 0.1 for t in want["temp_values"]], abs=1e-9)


def test_requests_of_the_plugin_parse() -> None:
    for head in tdt.CMD_HEADS:
        for cmd in (tdt.CMD_CELLS, tdt.CMD_STATUS, tdt.CMD_INFO):
            req = TdtPlugin._cmd(cmd, cmd_head=head)
            assert req == tdt.request(cmd, head)
            assert tdt.parse_request(req) == cmd


@pytest.mark.parametrize(("cells", "probes", "current"), [(4, 2, 0.0), (16, 4, 5.7), (8, 1, -23.4)])
async def test_aiobmsble_reads_the_battery_through_the_simulated_radio(cells: int, probes: int, current: float) -> None:
    battery = BatteryModel(cells=cells, temperature_probes=probes, capacity_ah=100.0, soc=55.0,
                           load=lambda _t: current, rng=random.Random(cells), clock=lambda: 0.0)
    em = TdtEmulator(address="AA:C2:37:00:00:02", name="tdt-test", battery=battery, rng=random.Random(1))
    sample = await read_with_plugin(TdtPlugin, em, updates=2)
    assert em.unlocked  # the plugin wrote HiLink to FFFA
    assert sample["voltage"] == pytest.approx(battery.voltage, abs=0.0051)
    assert sample["current"] == pytest.approx(-battery.current, abs=0.051)  # aiobmsble: + while charging
    assert sample["battery_level"] == round(battery.soc)
    assert sample["cycle_charge"] == pytest.approx(battery.charge_ah, abs=0.051)
    assert sample["cycles"] == battery.cycles
    assert sample["cell_voltages"] == pytest.approx(battery.cell_voltages, abs=0.0005)
    assert temps_of(sample) == pytest.approx([tdt.AMBIENT_C, battery.mos_temperature, *battery.temperatures],
                                             abs=0.051)
    assert (sample["chrg_mosfet"], sample["dischrg_mosfet"]) == (True, True)
    assert sample["problem_code"] == 0


async def test_device_info_as_the_plugin_reads_it() -> None:
    em = TdtEmulator(address="AA:C2:37:00:00:03", name="x", rng=random.Random(1),
                         battery=BatteryModel(clock=lambda: 0.0, rng=random.Random(1)))
    radio = SimRadio()
    radio.add(em)
    dev, _ = await discover(radio, em)
    with routed(Route(backend=radio.client_backend())):
        plugin = TdtPlugin(dev)
        try:
            info = await plugin.device_info()
        finally:
            await plugin.disconnect()
            await radio.aclose()
    assert info == {"sw_version": em.sw_version, "manufacturer": em.manufacturer, "serial_number": em.serial}


def test_advertisement_is_the_captured_one_and_matches_the_tdt_plugin_only() -> None:
    adv = CAPTURE["advertisement"]
    em = TdtEmulator(address=adv["address"], name=adv["local_name"])
    ours = em.advertisement()
    assert ours.name == adv["local_name"]
    assert {str(k): v.hex() for k, v in ours.manufacturer_data.items()} == adv["manufacturer_data"]
    assert list(ours.service_uuids) == adv["service_uuids"]
    assert matching_plugins(em) == {"tdt"}
    demo = TdtEmulator(address="5E:01:02:03:04:05", name="TDT-tdt1")
    assert demo.name.startswith("WTDH") and matching_plugins(demo) == {"tdt"}
    assert bms_supported(TdtPlugin, captured_advertisement(adv), adv["address"])


@fuzz_settings
@given(st.lists(st.binary(max_size=16) | st.sampled_from([tdt.request(c, h) for c in (0x8C, 0x8D, 0x92, 0x90)
                                                          for h in tdt.CMD_HEADS] + [tdt.UNLOCK]), max_size=20))
def test_emulator_survives_any_host_writes(writes: list[bytes]) -> None:
    em = TdtEmulator(address="5E:01:02:03:04:07", name="WTDH-f",
                         battery=BatteryModel(clock=lambda: 0.0, rng=random.Random(5)))
    answered: list[bytes] = []
    em.notify = lambda frame, char_uuid=None, *, raw=False: answered.append(frame)  # type: ignore[method-assign]
    for w in writes:
        for uuid in (tdt.WRITE_UUID, tdt.CONFIG_UUID, tdt.NOTIFY_UUID):
            em.handle_write(uuid, w)
        assert em.handle_read(tdt.CONFIG_UUID) in (b"\x00", b"\x01")
    answered.clear()
    em.handle_write(tdt.WRITE_UUID, tdt.request(tdt.CMD_STATUS, 0x1E))
    assert answered == [em.answer(tdt.CMD_STATUS)]

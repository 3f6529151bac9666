"""Seplos V3 emulator (bmslib/bms/bridge/emulators/seplos.py) against real captured replies and aiobmsble's plugin."""

from __future__ import annotations

import random

import pytest
from aiobmsble.bms.seplos_bms import BMS as SeplosPlugin
from aiobmsble.utils import bms_supported
from hypothesis import given
from hypothesis import strategies as st

from bmslib.bms.bridge.emulators.frames import seplos
from bmslib.bms.bridge.emulators.seplos import SeplosEmulator
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Faults
from tests.bms.bridge.emu_support import (
    captured_advertisement,
    frame_of,
    load_capture,
    matching_plugins,
    read_with_plugin,
    temps_of,
    with_unmodeled,
)
from tests.helpers import fuzz_settings

CAPTURE = load_capture("seplos")
BLOCKS = {"EIA": seplos.EIA, "EIB": seplos.EIB, "EIC": seplos.EIC, "PIA": seplos.PIA, "PIB": seplos.PIB}
HEAD = 3  # device, function, byte count


def encode(frame: dict) -> bytes:
    """Our encoder's frame for a capture's values."""
    v, block = frame["values"], BLOCKS[frame["block"]]
    match frame["block"]:
        case "EIA":
            data = seplos.eia_data(v)
        case "EIB":
            data = seplos.eib_data(v)
        case "EIC":
            data = seplos.eic_data(v["charge_fet"], v["discharge_fet"])
        case "PIA":
            data = seplos.pia_data(v)
        case _:
            data = seplos.pib_data(v["cells"], v["cell_temps"], v["ambient"], v["mosfet"])
    return seplos.reply(frame["device"], block[0], data)


@pytest.mark.parametrize("frame", CAPTURE["frames"], ids=lambda f: f["name"])
def test_encoder_rebuilds_the_captured_reply(frame: dict) -> None:
    captured = bytes.fromhex(frame["hex"])
    encoded = encode(frame)
    # the bytes of fields the emulator does not model are taken over; all others, and the CRC over the
    # whole frame, must be the encoder's own
    patched = with_unmodeled(encoded, captured, frame["unmodeled"], base=HEAD)
    data = patched[HEAD:-2]
    assert seplos.reply(frame["device"], BLOCKS[frame["block"]][0], data) == captured


def test_capture_values_agree_with_what_aiobmsble_reads_from_them() -> None:
    eia, eib, pib1 = frame_of(CAPTURE, "EIA")["values"], frame_of(CAPTURE, "EIB")["values"], frame_of(CAPTURE, "PIB1")
    want = CAPTURE["expected"]
    assert (eia["voltage"], eia["current"], eia["charge"], eia["soc"], eia["cycles"], eia["pack_count"]) == (
        want["voltage"], want["current"], want["cycle_charge"], want["battery_level"], want["cycles"], want["pack_count"])
    assert eib["temp_avg"] == want["temperature"]
    v = pib1["values"]
    assert [*v["cell_temps"], v["ambient"], v["mosfet"]] == want["temp_values"][:6]


def test_request_builder_matches_the_plugin_and_parses_back() -> None:
    for device in (0, 1, 5):
        for block in BLOCKS.values():
            req = seplos.request(device, block)
            assert req == SeplosPlugin._cmd(device, *block)
            assert seplos.parse_request(req) == (device, block)


def test_unknown_register_gets_the_modbus_exception_reply() -> None:
    em = SeplosEmulator(address="5E:00:00:00:00:01", name="SP05B1")
    assert em.answer(0, (4, 0x3000, 2)) == bytes.fromhex(CAPTURE["error_reply"]["hex"])
    assert em.answer(2, seplos.PIA)[1] == 0x84  # one pack only


@pytest.mark.parametrize(("cells", "probes", "current"), [(16, 2, -12.5), (4, 4, 7.0), (8, 1, 0.0)])
async def test_aiobmsble_reads_the_battery_through_the_simulated_radio(cells: int, probes: int, current: float) -> None:
    battery = BatteryModel(cells=cells, temperature_probes=probes, capacity_ah=280.0, soc=47.9,
                           load=lambda _t: current, rng=random.Random(cells), clock=lambda: 0.0)
    em = SeplosEmulator(address="5E:00:00:00:5E:01", name="seplos-test", battery=battery,
                               rng=random.Random(1))
    sample = await read_with_plugin(SeplosPlugin, em, updates=2)
    assert sample["voltage"] == pytest.approx(battery.voltage, abs=0.006)
    assert sample["current"] == pytest.approx(-battery.current, abs=0.051)  # aiobmsble: + while charging
    assert sample["battery_level"] == pytest.approx(battery.soc, abs=0.051)
    assert sample["cycle_charge"] == pytest.approx(battery.charge_ah, abs=0.006)
    assert sample["cycles"] == battery.cycles
    assert sample["pack_count"] == 1
    assert sample["cell_voltages"] == pytest.approx(battery.cell_voltages, abs=0.0005)
    # aiobmsble 0.31 reports the temperatures per pack (cells, then MOSFET; the ambient slot is sent empty)
    assert temps_of(sample["packs"][0]) == pytest.approx([*battery.temperatures, battery.mos_temperature], abs=0.051)
    assert sample["temperature"] == pytest.approx(sum(battery.temperatures) / probes, abs=0.051)
    assert (sample["chrg_mosfet"], sample["dischrg_mosfet"]) == (True, True)
    assert sample["problem_code"] == 0


async def test_fet_states_and_faults_go_through_notify() -> None:
    battery = BatteryModel(clock=lambda: 0.0, rng=random.Random(2), charge_fet=False)
    em = SeplosEmulator(address="5E:00:00:00:5E:02", name="SP05B-2", battery=battery,
                               faults=Faults(latency=0.01, chunk_interval=0.001), rng=random.Random(2))
    sample = await read_with_plugin(SeplosPlugin, em)
    assert (sample["chrg_mosfet"], sample["dischrg_mosfet"]) == (False, True)
    assert em.requests == 5  # EIA, EIB, EIC, PIA, PIB


def test_advertisement_matches_the_seplos_plugin_only() -> None:
    em = SeplosEmulator(address="5E:00:00:00:5E:03", name="SEPLOS-seplos1")
    assert em.name.startswith("SP05B")
    assert matching_plugins(em) == {"seplos"}
    real = SeplosEmulator(address="5E:00:00:00:5E:04", name=CAPTURE["advertisement"]["local_name"])
    assert real.name == CAPTURE["advertisement"]["local_name"]
    assert matching_plugins(real) == {"seplos"}
    assert bms_supported(SeplosPlugin, captured_advertisement(CAPTURE["advertisement"]), real.address)


@fuzz_settings
@given(st.lists(st.binary(max_size=12) | st.sampled_from([seplos.request(d, b) for d in (0, 1, 2)
                                                          for b in BLOCKS.values()]), max_size=20))
def test_emulator_survives_any_host_writes(writes: list[bytes]) -> None:
    em = SeplosEmulator(address="5E:00:00:00:5E:05", name="SP05B-f",
                               battery=BatteryModel(clock=lambda: 0.0, rng=random.Random(5)))
    answered: list[bytes] = []
    em.notify = lambda frame, char_uuid=None, *, raw=False: answered.append(frame)  # type: ignore[method-assign]
    for w in writes:
        em.handle_write(seplos.WRITE_UUID, w)
        em.handle_write(seplos.NOTIFY_UUID, w)
    answered.clear()
    em.handle_write(seplos.WRITE_UUID, seplos.request(0, seplos.EIC))
    assert answered == [seplos.reply(0, 1, seplos.eic_data(True, True))]

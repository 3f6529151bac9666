"""Redodo emulator (bmslib/bms/bridge/emulators/redodo.py) against a real captured reply and aiobmsble's plugin."""

from __future__ import annotations

import random

import pytest
from aiobmsble.bms.redodo_bms import BMS as RedodoPlugin
from aiobmsble.utils import bms_supported
from hypothesis import given
from hypothesis import strategies as st

from bmslib.bms.bridge.emulators.frames import redodo
from bmslib.bms.bridge.emulators.redodo import RedodoEmulator
from bmslib.protocol.crc import sum8
from bmslib.sim.battery import BatteryModel
from tests.bms.bridge.emu_support import (
    captured_advertisement,
    load_capture,
    matching_plugins,
    read_with_plugin,
    temps_of,
    with_unmodeled,
)
from tests.helpers import fuzz_settings

CAPTURE = load_capture("redodo")
FRAME = CAPTURE["frames"][0]


def test_encoder_rebuilds_the_captured_reply() -> None:
    captured = bytes.fromhex(FRAME["hex"])
    encoded = redodo.status_frame(FRAME["values"], FRAME["cells"], FRAME["temps"])
    patched = bytearray(with_unmodeled(encoded, captured, FRAME["unmodeled"]))
    patched[-1] = sum8(bytes(patched[:-1]))  # the checksum over the taken-over bytes too
    assert bytes(patched) == captured
    # and the unmodeled bytes are the only difference (the checksum aside)
    assert [i for i in range(len(captured) - 1) if encoded[i] != captured[i]] == list(range(100, 102))


def test_captured_request_parses_and_capture_values_agree_with_aiobmsble() -> None:
    assert redodo.parse_request(bytes.fromhex(FRAME["request"])) == redodo.CMD_STATUS
    assert redodo.request() == bytes.fromhex(FRAME["request"])
    want, v = CAPTURE["expected"], FRAME["values"]
    assert (v["voltage"], v["current"], v["soc"], v["charge"], v["cycles"]) == (
        want["voltage"], want["current"], want["battery_level"], want["cycle_charge"], want["cycles"])
    assert (FRAME["cells"], FRAME["temps"]) == (want["cell_voltages"], want["temp_values"])


@pytest.mark.parametrize(("cells", "probes", "current"), [(8, 3, -14.75), (4, 2, 9.5), (16, 1, 0.0)])
async def test_aiobmsble_reads_the_battery_through_the_simulated_radio(cells: int, probes: int, current: float) -> None:
    battery = BatteryModel(cells=cells, temperature_probes=probes, capacity_ah=105.0, soc=65.0,
                           load=lambda _t: current, rng=random.Random(cells), clock=lambda: 0.0)
    em = RedodoEmulator(address="C8:47:80:15:D8:34", name="redodo-test", battery=battery, rng=random.Random(1))
    sample = await read_with_plugin(RedodoPlugin, em, updates=2)
    assert sample["voltage"] == pytest.approx(battery.voltage, abs=0.0006)
    assert sample["current"] == pytest.approx(-battery.current, abs=0.0006)  # aiobmsble: + while charging
    assert sample["battery_level"] == round(battery.soc)
    assert sample["cycle_charge"] == pytest.approx(battery.charge_ah, abs=0.006)
    assert sample["design_capacity"] == 105
    assert sample["cycles"] == battery.cycles
    assert sample["cell_voltages"] == pytest.approx(battery.cell_voltages, abs=0.0005)
    assert temps_of(sample) == pytest.approx(battery.temperatures, abs=0.51)  # whole degrees on the wire
    assert sample["problem_code"] == 0


def test_advertisement_is_the_captured_one_and_matches_the_redodo_plugin_only() -> None:
    adv = CAPTURE["advertisement"]
    em = RedodoEmulator(address=adv["address"], name=adv["local_name"])
    ours = em.advertisement()
    assert ours.name == adv["local_name"]
    assert {str(k): v.hex() for k, v in ours.manufacturer_data.items()} == adv["manufacturer_data"]
    assert list(ours.service_uuids) == adv["service_uuids"]
    assert matching_plugins(em) == {"redodo"}
    demo = RedodoEmulator(address="5E:01:02:03:04:05", name="REDODO-redodo1")
    assert demo.name.startswith("R-12") and matching_plugins(demo) == {"redodo"}
    assert bms_supported(RedodoPlugin, captured_advertisement(adv), adv["address"])


@fuzz_settings
@given(st.lists(st.binary(max_size=12) | st.sampled_from([redodo.request(), redodo.request(0x10)]), max_size=20))
def test_emulator_survives_any_host_writes(writes: list[bytes]) -> None:
    battery = BatteryModel(clock=lambda: 0.0, rng=random.Random(5))
    em = RedodoEmulator(address="5E:01:02:03:04:07", name="R-12-f", battery=battery)
    answered: list[bytes] = []
    em.notify = lambda frame, char_uuid=None, *, raw=False: answered.append(frame)  # type: ignore[method-assign]
    for w in writes:
        em.handle_write(redodo.WRITE_UUID, w)
        em.handle_write(redodo.NOTIFY_UUID, w)
    assert all(len(a) == redodo.FRAME_LEN for a in answered)
    answered.clear()
    em.handle_write(redodo.WRITE_UUID, redodo.request())
    assert answered == [em.status()]

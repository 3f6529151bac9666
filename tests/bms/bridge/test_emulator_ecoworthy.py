"""ECO-WORTHY emulator (bmslib/bms/bridge/emulators/ecoworthy.py) against real captured frames and aiobmsble's plugin."""

from __future__ import annotations

import random

import pytest
from aiobmsble.bms.ecoworthy_bms import BMS as EcoworthyPlugin
from aiobmsble.utils import bms_supported
from hypothesis import given
from hypothesis import strategies as st

from bmslib.bms.bridge.emulators.ecoworthy import EcoworthyEmulator
from bmslib.bms.bridge.emulators.frames import ecoworthy
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

CAPTURE = load_capture("ecoworthy")


@pytest.mark.parametrize("case", CAPTURE["frames"], ids=lambda f: f["name"])
def test_encoder_rebuilds_the_captured_frame(case: dict) -> None:
    captured, proto, mac = bytes.fromhex(case["hex"]), case["protocol"], bytes.fromhex(case["mac"])
    if case["kind"] == ecoworthy.A1:
        data = ecoworthy.a1_data(case["values"], proto)
    else:
        data = ecoworthy.a2_data(case["cells"], case["temps"])
    encoded = ecoworthy.frame(case["kind"], data, proto, mac)
    head = len(captured) - len(data) - 2
    patched = with_unmodeled(encoded, captured, case["unmodeled"], base=head)
    assert ecoworthy.frame(case["kind"], patched[head:-2], proto, mac) == captured


def test_the_captured_unlock_commands_are_accepted_and_the_values_agree_with_aiobmsble() -> None:
    assert all(ecoworthy.is_command(bytes.fromhex(c)) for c in CAPTURE["commands"])
    assert [c.hex() for c in EcoworthyPlugin._INIT_CMDS] == CAPTURE["commands"]
    for proto, a1, a2 in (("v1", "A1v1", "A2v1"), ("v2", "A1v2", "A2v2")):
        want = CAPTURE["expected"][proto]
        v = next(f for f in CAPTURE["frames"] if f["name"] == a1)["values"]
        cells = next(f for f in CAPTURE["frames"] if f["name"] == a2)
        assert (v["voltage"], v["current"], v["soc"], v["capacity"]) == (
            want["voltage"], want["current"], want["battery_level"], want["design_capacity"])
        assert (cells["cells"], cells["temps"]) == (want["cell_voltages"], want["temp_values"])


@pytest.mark.parametrize(("protocol", "cells", "probes", "current"),
                         [(1, 4, 3, -11.37), (2, 4, 2, 6.0), (1, 16, 1, 0.0), (2, 8, 4, -0.5)])
async def test_aiobmsble_reads_the_battery_through_the_simulated_radio(protocol: int, cells: int, probes: int,
                                                                     current: float) -> None:
    battery = BatteryModel(cells=cells, temperature_probes=probes, capacity_ah=100.0, soc=72.0,
                           load=lambda _t: current, rng=random.Random(cells), clock=lambda: 0.0)
    em = EcoworthyEmulator(address="5E:C2:E0:FA:B8:F0", name="ecoworthy-test", battery=battery,
                                     rng=random.Random(1), protocol=protocol)
    em.stream_interval = 0.2
    sample = await read_with_plugin(EcoworthyPlugin, em, updates=2)
    resolution = ecoworthy.CURRENT_SCALE[protocol]
    assert sample["voltage"] == pytest.approx(battery.voltage, abs=0.0051)
    assert sample["current"] == pytest.approx(-battery.current, abs=resolution / 2 + 1e-6)  # + while charging
    assert sample["battery_level"] == round(battery.soc)
    assert sample["design_capacity"] == 100
    assert sample["cell_count"] == cells
    assert sample["cell_voltages"] == pytest.approx(battery.cell_voltages, abs=0.0005)
    assert temps_of(sample) == pytest.approx(battery.temperatures, abs=0.051)
    assert sample["problem_code"] == 0


def test_advertisement_is_the_captured_one_and_matches_the_ecoworthy_plugin_only() -> None:
    adv = CAPTURE["advertisement"]
    em = EcoworthyEmulator(address="B4:C2:E0:FA:B8:F0", name="ECOWORTHY-ecoworthy1")
    ours = em.advertisement()
    assert ours.name == adv["local_name"]
    assert {str(k): v.hex() for k, v in ours.manufacturer_data.items()} == adv["manufacturer_data"]
    assert list(ours.service_uuids) == adv["service_uuids"]
    assert matching_plugins(em) == {"ecoworthy"}
    assert bms_supported(EcoworthyPlugin, captured_advertisement(adv), em.address)


def test_protocol_is_checked() -> None:
    with pytest.raises(ValueError, match="protocol must be 1 or 2"):
        EcoworthyEmulator(address="5E:00:00:00:00:01", name="x", protocol=3)


@fuzz_settings
@given(st.lists(st.binary(max_size=20) | st.sampled_from([bytes.fromhex(c) for c in CAPTURE["commands"]]),
                max_size=20))
def test_emulator_survives_any_host_writes(writes: list[bytes]) -> None:
    battery = BatteryModel(clock=lambda: 0.0, rng=random.Random(5))
    em = EcoworthyEmulator(address="5E:01:02:03:04:07", name="ECO-WORTHY 02_f", battery=battery)
    answered: list[bytes] = []
    em.notify = lambda frame, char_uuid=None, *, raw=False: answered.append(frame)  # type: ignore[method-assign]
    for w in writes:
        em.handle_write(ecoworthy.WRITE_UUID, w)
        em.handle_write(ecoworthy.NOTIFY_UUID, w)
    answered.clear()
    em.handle_write(ecoworthy.WRITE_UUID, bytes.fromhex(CAPTURE["commands"][0]))
    assert answered == list(em.frames())

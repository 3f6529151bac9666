"""Supervolt driver against the Supervolt emulator, through bleak's API on the simulated radio."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.ble.scan import classify
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.bms.sok.emulator import SokEmulator
from bmslib.bms.supervolt import protocol as supervolt
from bmslib.bms.supervolt.emulator import SupervoltEmulator
from bmslib.errors import BmsConnectError, BmsDisconnectedError, BmsTimeoutError, UnsupportedError
from bmslib.model import Sample
from bmslib.registry import device_types
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Emulator, Faults
from bmslib.sim.radio import SimRadio
from tests.helpers import fuzz_settings, load_vectors
from tests.sim_helpers import add_emulator, make_driver, native_types

ROOT = Path(__file__).parents[3]
VECTORS = load_vectors("supervolt")



def battery(current: float = 12.5, **kw: Any) -> BatteryModel:
    """A pack drawing a constant ``current`` (+ = discharging, the model's sign)."""
    return BatteryModel(load=lambda _t: current, **kw)


def requests_sent(em: Emulator) -> list[bytes]:
    return [data for _uuid, data in em.writes]


def check_reads_battery(s: Sample, b: BatteryModel) -> None:
    assert s.cell_voltages is not None and list(s.cell_voltages) == pytest.approx(b.cell_voltages, abs=0.0011)
    assert s.voltage == pytest.approx(b.voltage, abs=0.005)  # not transmitted: the sum of the cells
    assert s.current == pytest.approx(b.current, abs=0.011)  # model sign: + = discharging, as the battery
    assert s.temperatures is not None and len(s.temperatures) == supervolt.TEMP_SLOTS
    assert list(s.temperatures[:len(b.temperatures)]) == pytest.approx(b.temperatures, abs=0.51)
    assert s.soc == round(b.soc) and s.cycles == b.cycles
    assert s.charge == pytest.approx(b.charge_ah, abs=0.051) and s.capacity == b.capacity_ah
    assert s.switches == {"charge": b.charge_fet, "discharge": b.discharge_fet}


@pytest.mark.parametrize("current", [12.5, -7.25])
async def test_read_reports_the_emulated_battery(radio: SimRadio, current: float) -> None:
    em = add_emulator(radio, SupervoltEmulator, battery=battery(current, cells=8))
    drv = make_driver("supervolt", radio, em)
    await drv.connect()
    s = Sample.build(await drv.read(), timestamp=0, mono=0)
    check_reads_battery(s, em.battery)
    assert s.power == pytest.approx(s.voltage * current, rel=0.01)
    assert s.extra is not None and s.extra["design_capacity"] == em.battery.capacity_ah
    assert requests_sent(em) == [supervolt.REQUEST_REALTIME, supervolt.REQUEST_CAPACITY]
    assert em.writes[0][0] == supervolt.WRITE_UUID  # Nordic UART layout
    assert drv.device_info.name == em.name
    await drv.disconnect()


async def test_sixteen_cells_and_alarms(radio: SimRadio) -> None:
    em = add_emulator(radio, SupervoltEmulator, battery=battery(cells=16, temperature_probes=4))
    em.battery.alarms = ("short_circuit", "discharge_overtemperature")
    drv = make_driver("supervolt", radio, em)
    await drv.connect()
    s = Sample.build(await drv.read(), timestamp=0, mono=0)
    check_reads_battery(s, em.battery)
    assert s.alarms == ("short_circuit", "discharge_overtemperature")
    await drv.disconnect()


async def test_single_frame_unit_is_asked_only_for_the_realtime_reply(radio: SimRadio) -> None:
    em = add_emulator(radio, SupervoltEmulator, battery=battery(-3.0), single_frame=True)
    drv = make_driver("supervolt", radio, em)
    drv.request_timeout = 0.5  # the capacity request would go unanswered
    await drv.connect()
    for _ in range(2):
        check_reads_battery(Sample.build(await drv.read(), timestamp=0, mono=0), em.battery)
    assert requests_sent(em) == [supervolt.REQUEST_REALTIME] * 2
    await drv.disconnect()


async def test_two_frame_unit_keeps_asking_for_capacities(radio: SimRadio) -> None:
    em = add_emulator(radio, SupervoltEmulator)
    drv = make_driver("supervolt", radio, em)
    await drv.connect()
    await drv.read()
    await drv.read()
    assert requests_sent(em) == [supervolt.REQUEST_REALTIME, supervolt.REQUEST_CAPACITY] * 2
    await drv.disconnect()


async def test_ff00_layout_is_found_when_the_nordic_uart_service_is_absent(radio: SimRadio) -> None:
    em = add_emulator(radio, SupervoltEmulator, battery=battery(), layout="ff00")
    drv = make_driver("supervolt", radio, em)
    await drv.connect()
    check_reads_battery(Sample.build(await drv.read(), timestamp=0, mono=0), em.battery)
    assert {uuid for uuid, _ in em.writes} == {supervolt.ALT_WRITE_UUID}
    await drv.disconnect()


async def test_libattu_units_with_wrong_checksums_are_read_and_counted(radio: SimRadio) -> None:
    em = add_emulator(radio, SupervoltEmulator, battery=battery(), name="libattU0042", bad_checksum=True)
    drv = make_driver("supervolt", radio, em)
    await drv.connect()
    r = await drv.read()
    check_reads_battery(Sample.build(r, timestamp=0, mono=0), em.battery)
    assert r["extra"]["unverified_frames"] == 2
    r = await drv.read()
    assert r["extra"]["unverified_frames"] == 4
    await drv.disconnect()


async def test_wrong_checksums_are_rejected_from_other_units(radio: SimRadio) -> None:
    em = add_emulator(radio, SupervoltEmulator, name="libatt0042", bad_checksum=True)
    drv = make_driver("supervolt", radio, em)
    drv.request_timeout = 0.3
    await drv.connect()
    with pytest.raises(BmsTimeoutError):
        await drv.read()
    await drv.disconnect()


async def test_module_chatter_between_frames_is_not_an_error(radio: SimRadio) -> None:
    em = add_emulator(radio, SupervoltEmulator, chatter=True)
    drv = make_driver("supervolt", radio, em)
    await drv.connect()
    for _ in range(3):
        assert len((await drv.read())["cell_voltages"]) == em.battery.cells
    assert drv.assembler is not None and drv.assembler.dropped == 0
    await drv.disconnect()


async def test_fet_states_are_read_only(radio: SimRadio) -> None:
    em = add_emulator(radio, SupervoltEmulator)
    drv = make_driver("supervolt", radio, em)
    assert drv.switches == frozenset() and device_types()["supervolt"].switches == frozenset()
    await drv.connect()
    em.battery.set_switch("charge", False)  # the BMS opened its charge FET on its own
    r = await drv.read()
    assert r["switches"] == {"charge": False, "discharge": True}
    assert r["extra"]["charge_switch"] is False and r["extra"]["discharge_switch"] is True
    with pytest.raises(UnsupportedError):
        await drv.set_switch("charge", True)
    assert em.battery.charge_fet is False
    await drv.disconnect()


async def test_reads_survive_junk_small_chunks_and_latency(radio: SimRadio) -> None:
    em = add_emulator(radio, SupervoltEmulator, faults=Faults(junk=0.5, chunk_interval=0.002, latency=0.05))
    em.mtu = 7
    drv = make_driver("supervolt", radio, em)
    await drv.connect()
    for _ in range(5):
        r = await drv.read()
        assert len(r["cell_voltages"]) == em.battery.cells and "capacity" in r
    await drv.disconnect()


async def test_disconnect_mid_frame_fails_the_read_at_once_and_reconnect_recovers(radio: SimRadio) -> None:
    em = add_emulator(radio, SupervoltEmulator, faults=Faults(disconnect_after=1, disconnect_mid_frame=True))
    drv = make_driver("supervolt", radio, em)
    drv.request_timeout = 30.0  # the failure must not wait for it
    await drv.connect()
    with pytest.raises(BmsDisconnectedError):
        async with asyncio.timeout(5):
            await drv.read()
    assert not drv.is_connected
    await drv.connect()
    assert len((await drv.read())["cell_voltages"]) == em.battery.cells
    await drv.disconnect()


# --- newer Supervolt packs speak JBD ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "note"), [("SX100P-0042", "Supervolt v3"), ("SX60-1234", "Supervolt Ultra")])
async def test_jbd_speaking_pack_is_refused_with_one_error_naming_type_jbd(
        radio: SimRadio, caplog: pytest.LogCaptureFixture, name: str, note: str) -> None:
    em = add_emulator(radio, JbdEmulator, name=name)
    adv = em.advertisement()
    kinds, notes = classify(em.address, adv.name, list(adv.service_uuids), adv.manufacturer_data, native_types())
    assert kinds == ("jbd",) and any(note in n and "use type jbd" in n for n in notes)
    drv = make_driver("supervolt", radio, em)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            with pytest.raises(UnsupportedError, match=r"`type: jbd`"):
                await drv.connect()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "type: jbd" in errors[0].getMessage() and name in errors[0].getMessage()
    assert em.connections == 0  # refused before taking the pack's only connection
    jbd_drv = make_driver("jbd", radio, em)  # the type the message names does work
    await jbd_drv.connect()
    assert (await jbd_drv.read())["cell_voltages"]
    await jbd_drv.disconnect()


async def test_silent_ff00_device_gets_a_hint_to_try_jbd(radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    em = add_emulator(radio, JbdEmulator, name="JBD-SP04S034")  # FF00 too, but deaf to ASCII requests
    drv = make_driver("supervolt", radio, em)
    drv.request_timeout = 0.2
    await drv.connect()
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            with pytest.raises(BmsTimeoutError):
                await drv.read()
    hints = [r for r in caplog.records if "type: jbd" in r.getMessage()]
    assert len(hints) == 1
    await drv.disconnect()


async def test_device_without_a_supervolt_service_is_refused(radio: SimRadio) -> None:
    em = add_emulator(radio, SokEmulator)
    drv = make_driver("supervolt", radio, em)
    with pytest.raises(BmsConnectError, match="right device type"):
        await drv.connect()
    assert not drv.is_connected


# --- scan --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "layout"), [("SIM-1", "nus"), ("SIM-1", "ff00"), ("SV12V100AH-0001", "ff00"),
                                              ("libattU77", "nus")])
def test_scan_recognises_the_emulator_advertisement(name: str, layout: str) -> None:
    em = SupervoltEmulator(address="5E:00:00:00:00:01", name=name, layout=layout)
    adv = em.advertisement()
    kinds, notes = classify(em.address, adv.name, list(adv.service_uuids), adv.manufacturer_data, native_types())
    assert kinds == ("supervolt",) and notes == ()
    assert em.name == name or em.name.startswith("libatt")


# --- decode CLI on the vectors --------------------------------------------------------------------------


def decode_cli(*hex_chunks: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "main.py", "decode", "--type", "supervolt", *hex_chunks],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def fixture(frame_type_start: str) -> dict[str, Any]:
    return next(c for c in VECTORS if c["kind"].startswith("source test fixture")
                and c["frame_type"].startswith(frame_type_start))


def test_decode_cli_reproduces_the_realtime_and_capacity_vectors() -> None:
    rt, cap = fixture("realtime"), fixture("capacity")
    out = decode_cli(*rt["notifications"], *cap["notifications"])
    e = rt["expected"]
    assert (out["frames"], out["rejected"]) == (2, 0)
    assert out["cell_voltages"] == pytest.approx(e["cell_voltages"]) and len(out["cell_voltages"]) == e["cell_count"]
    assert out["voltage"] == pytest.approx(e["voltage_sum_of_cells"])
    assert out["current"] == pytest.approx(-e["current"])  # vectors: + = charging
    assert (out["soc"], out["cycles"]) == (e["soc"], e["cycles"])
    assert out["temperatures"][0] == e["temperatures"][0]
    assert out["switches"] == {"charge": e["chrg_mosfet"], "discharge": e["dischrg_mosfet"]}
    assert out["alarms"] == [] and e["problem_code"] == 0
    assert bool(out["extra"]["balance_bitmask"]) == e["balancer"]
    assert bool(out["extra"]["status_byte_54"]) == e["heater"]
    c = cap["expected"]
    assert (out["charge"], out["capacity"]) == (c["remaining_ah"], c["complete_ah"])
    assert out["extra"]["design_capacity"] == c["designed_ah"]


def test_decode_cli_reproduces_the_single_frame_vector() -> None:
    case = fixture("single-frame")
    out = decode_cli(*case["notifications"])
    e = case["expected"]
    assert (out["frames"], out["rejected"]) == (1, 0)
    assert out["cell_voltages"] == pytest.approx(e["cell_voltages"])
    assert out["current"] == pytest.approx(-e["current"])
    assert (out["soc"], out["cycles"], out["charge"]) == (e["soc"], e["cycles"], e["remaining_ah"])
    assert out["extra"]["design_capacity"] == e["design_capacity_ah"]
    assert out["temperatures"][0] == e["temperatures"][0]
    assert out["switches"] == {"charge": e["chrg_mosfet"], "discharge": e["dischrg_mosfet"]}
    assert bool(out["extra"]["status_byte_54"]) == e["heater"]


def test_decode_cli_rejects_the_synthetic_frames_with_a_copied_request_header() -> None:
    cases = [c for c in VECTORS if c["kind"].startswith("SYNTHETIC")]
    out = decode_cli(*(c["frame"] for c in cases))
    assert out["frames"] == 0 and out["rejected"] >= len(cases)
    assert out["cell_voltages"] is None


@fuzz_settings
@given(st.lists(st.binary(max_size=40) | st.sampled_from([supervolt.REQUEST_REALTIME, b":", b"~"]), max_size=20))
def test_emulator_survives_any_host_writes(writes: list[bytes]) -> None:
    em = SupervoltEmulator(address="5E:00:00:00:00:01", name="libatt1")
    answered: list[bytes] = []
    em.notify = lambda frame, char_uuid=None, *, raw=False: answered.append(frame)
    for w in writes:
        em.handle_write(supervolt.WRITE_UUID, w)
        assert len(em._rx) <= 256
    em.handle_write(supervolt.WRITE_UUID, b"~" + supervolt.REQUEST_REALTIME)
    assert answered and supervolt.decode(answered[-1])["cell_voltages"]

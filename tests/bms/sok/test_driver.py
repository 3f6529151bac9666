"""SOK driver against the SOK emulator, through bleak's API on the simulated radio."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.ble.scan import classify
from bmslib.bms.sok import protocol as sok
from bmslib.bms.sok.emulator import SokEmulator
from bmslib.bms.sok.emulator_frames import encode_name, encode_status, parse_request
from bmslib.errors import BmsDisconnectedError, BmsTimeoutError, UnsupportedError
from bmslib.model import Sample
from bmslib.registry import device_types
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Emulator, Faults
from bmslib.sim.radio import SimRadio
from tests.helpers import fuzz_settings, load_vectors
from tests.sim_helpers import add_emulator, make_driver, native_types

ROOT = Path(__file__).parents[3]
VECTORS = load_vectors("sok")



def battery(current: float = 12.5, **kw: Any) -> BatteryModel:
    """A pack drawing a constant ``current`` (+ = discharging, the model's sign)."""
    return BatteryModel(load=lambda _t: current, **kw)


def commands_sent(em: Emulator) -> list[int | None]:
    return [parse_request(data) for _uuid, data in em.writes]


def check_reads_battery(s: Sample, b: BatteryModel) -> None:
    assert s.voltage == pytest.approx(b.voltage, abs=0.0011)
    assert s.current == pytest.approx(b.current, abs=0.0011)  # model sign: + = discharging, as the battery
    assert s.cell_voltages is not None and list(s.cell_voltages) == pytest.approx(b.cell_voltages, abs=0.0011)
    assert s.temperatures is not None and list(s.temperatures) == pytest.approx(b.temperatures, abs=0.51)
    assert s.soc == round(b.soc) and s.cycles == b.cycles
    assert s.charge == pytest.approx(b.charge_ah, abs=0.0011) and s.capacity == b.capacity_ah
    assert s.switches == {"charge": b.charge_fet, "discharge": b.discharge_fet}


@pytest.mark.parametrize("current", [12.5, -30.25])
async def test_read_reports_the_emulated_battery(radio: SimRadio, current: float) -> None:
    em = add_emulator(radio, SokEmulator, battery=battery(current, cells=8))
    drv = make_driver("sok", radio, em)
    await drv.connect()
    r = await drv.read()
    s = Sample.build(r, timestamp=0, mono=0)
    check_reads_battery(s, em.battery)
    assert s.power == pytest.approx(s.voltage * current, rel=0.001)
    assert s.alarms == ()
    assert r["extra"]["manufacture_date"] == "2023-03-18" and r["extra"]["heater"] is False
    assert drv.device_info.model == SokEmulator.model
    assert commands_sent(em) == [sok.CMD_NAME, sok.CMD_INFO, sok.CMD_DETAIL, sok.CMD_PROTECTION]
    assert {uuid for uuid, _ in em.writes} == {sok.WRITE_UUID}
    await drv.disconnect()


async def test_name_is_asked_once_per_driver(radio: SimRadio) -> None:
    em = add_emulator(radio, SokEmulator)
    drv = make_driver("sok", radio, em)
    for _ in range(3):  # keep_alive off: the sampler connects for every reading
        await drv.connect()
        await drv.read()
        await drv.disconnect()
    assert commands_sent(em).count(sok.CMD_NAME) == 1
    assert commands_sent(em).count(sok.CMD_DETAIL) == 3
    assert drv.device_info.model == SokEmulator.model


@pytest.mark.parametrize(("cells", "repeat"), [(4, False), (7, False), (8, True), (13, False), (16, False)])
async def test_cell_lists_complete_without_waiting_for_a_timeout(radio: SimRadio, cells: int, repeat: bool) -> None:
    em = add_emulator(radio, SokEmulator, battery=battery(cells=cells), repeat_cells=repeat)
    drv = make_driver("sok", radio, em)
    drv.request_timeout = 3.0
    await drv.connect()
    started = time.monotonic()
    for _ in range(2):
        check_reads_battery(Sample.build(await drv.read(), timestamp=0, mono=0), em.battery)
    assert time.monotonic() - started < 1.0
    await drv.disconnect()


async def test_alarms_come_from_the_protection_reply(radio: SimRadio) -> None:
    em = add_emulator(radio, SokEmulator)
    em.battery.alarms = ("protection_3", "protection_12")
    drv = make_driver("sok", radio, em)
    await drv.connect()
    r = await drv.read()
    assert r["alarms"] == ("protection_3", "protection_12")
    assert r["extra"]["protection_bitmask"] == 1 << 3 | 1 << 12
    await drv.disconnect()


async def test_missing_protection_reply_is_not_an_error_and_not_asked_again(
        radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    em = add_emulator(radio, SokEmulator, answers_protection=False)
    drv = make_driver("sok", radio, em)
    drv.protection_timeout = 0.2
    await drv.connect()
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            r = await drv.read()
            check_reads_battery(Sample.build(r, timestamp=0, mono=0), em.battery)
            assert "alarms" not in r
    assert commands_sent(em).count(sok.CMD_PROTECTION) == 1
    assert len([rec for rec in caplog.records if "C4" in rec.getMessage()]) == 1
    await drv.disconnect()


async def test_fet_states_are_read_only(radio: SimRadio) -> None:
    em = add_emulator(radio, SokEmulator)
    drv = make_driver("sok", radio, em)
    assert drv.switches == frozenset() and device_types()["sok"].switches == frozenset()
    await drv.connect()
    em.battery.set_switch("discharge", False)  # the BMS opened its discharge FET on its own
    assert (await drv.read())["switches"] == {"charge": True, "discharge": False}
    with pytest.raises(UnsupportedError):
        await drv.set_switch("discharge", True)
    assert em.battery.discharge_fet is False
    await drv.disconnect()


async def test_reads_survive_junk_small_chunks_and_latency(radio: SimRadio) -> None:
    em = add_emulator(radio, SokEmulator, battery=battery(cells=16, clock=lambda: 0.0),  # frozen in time: the
                      faults=Faults(junk=0.5, chunk_interval=0.002, latency=0.02))  # values stay comparable
    em.mtu = 7  # 20-byte replies arrive in three chunks
    drv = make_driver("sok", radio, em)
    await drv.connect()
    for _ in range(4):
        check_reads_battery(Sample.build(await drv.read(), timestamp=0, mono=0), em.battery)
    await drv.disconnect()


async def test_disconnect_mid_frame_fails_the_read_at_once_and_reconnect_recovers(radio: SimRadio) -> None:
    em = add_emulator(radio, SokEmulator, battery=battery(clock=lambda: 0.0),  # frozen in time: the values
                      faults=Faults(disconnect_after=2, disconnect_mid_frame=True))  # do not move while it runs
    em.mtu = 10
    drv = make_driver("sok", radio, em)
    drv.request_timeout = 30.0  # the failure must not wait for it
    await drv.connect()  # C0 is the first write; C1 of the read drops the link halfway through F0
    with pytest.raises(BmsDisconnectedError):
        async with asyncio.timeout(5):
            await drv.read()
    assert not drv.is_connected
    await drv.connect()
    check_reads_battery(Sample.build(await drv.read(), timestamp=0, mono=0), em.battery)
    await drv.disconnect()


class StrayReplies(SokEmulator):
    """Mixes replies of other requests (a late name, a late cell reply) into every C1 answer."""

    def replies(self, command: int) -> list[bytes]:
        out = super().replies(command)
        if command == sok.CMD_INFO:
            out[1:1] = [encode_name("LATE"), *super().replies(sok.CMD_DETAIL)[2:3]]
        return out


async def test_replies_of_other_requests_are_ignored(radio: SimRadio) -> None:
    em = add_emulator(radio, StrayReplies, battery=battery(cells=8))
    drv = make_driver("sok", radio, em)
    await drv.connect()
    check_reads_battery(Sample.build(await drv.read(), timestamp=0, mono=0), em.battery)
    assert drv.device_info.model == SokEmulator.model
    assert drv.codec.ignored >= 2
    await drv.disconnect()


class LosesCellReplies(SokEmulator):
    """Leaves out the last cell reply while ``lose`` is set; ``no_voltage`` zeroes the F0 pack voltage."""

    lose = False
    no_voltage = False

    def replies(self, command: int) -> list[bytes]:
        out = super().replies(command)
        if command == sok.CMD_DETAIL and self.lose:
            out.pop()
        return out

    def status(self) -> bytes:
        if not self.no_voltage:
            return super().status()
        b = self.battery
        return encode_status({"voltage": 0, "current": b.current, "capacity": b.capacity_ah, "charge": b.charge_ah,
                              "cycles": b.cycles, "soc": round(b.soc)})


async def test_lost_cell_reply_fails_the_read_once_the_cell_count_is_known(radio: SimRadio) -> None:
    em = add_emulator(radio, LosesCellReplies, battery=battery(cells=8))
    drv = make_driver("sok", radio, em)
    drv.request_timeout = 0.3
    await drv.connect()
    assert len((await drv.read())["cell_voltages"]) == 8  # learns the cell count
    em.lose = True
    with pytest.raises(BmsTimeoutError):  # four cells of eight must not be published as the pack
        await drv.read()
    em.lose = False
    assert len((await drv.read())["cell_voltages"]) == 8
    await drv.disconnect()


async def test_undecidable_cell_list_gives_the_cells_received_after_the_timeout(radio: SimRadio) -> None:
    em = add_emulator(radio, LosesCellReplies, battery=battery(cells=8))
    em.no_voltage = True  # nothing tells whether eight cells are all
    drv = make_driver("sok", radio, em)
    drv.request_timeout = 0.3
    await drv.connect()
    started = time.monotonic()
    r = await drv.read()
    assert time.monotonic() - started >= 0.3
    assert list(r["cell_voltages"]) == pytest.approx(em.battery.cell_voltages, abs=0.0011)
    await drv.disconnect()


def test_scan_recognises_the_emulator_advertisement() -> None:
    for name in ("SIM-1", "SOK-24V1127", "ABC-0001"):
        em = SokEmulator(address="5E:00:00:00:00:02", name=name)
        adv = em.advertisement()
        kinds, _ = classify(em.address, adv.name, list(adv.service_uuids), adv.manufacturer_data, native_types())
        assert kinds == ("sok",)
        assert sok.SERVICE_UUID not in adv.service_uuids  # data service is not advertised


# --- decode CLI on the vectors --------------------------------------------------------------------------


def decode_cli(*hex_chunks: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "main.py", "decode", "--type", "sok", *hex_chunks],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_decode_cli_reproduces_the_reply_set_vector() -> None:
    case = next(c for c in VECTORS if "notifications" in c)
    name = next(c for c in VECTORS if c["frame_type"].startswith("name"))
    out = decode_cli(*case["notifications"], name["frame"])
    e = case["expected"]
    assert (out["frames"], out["rejected"]) == (len(case["notifications"]) + 1, 0)
    assert out["voltage"] == e["voltage"] and out["current"] == -e["current"]
    assert (out["soc"], out["charge"], out["capacity"], out["cycles"]) == (
        e["soc"], e["remaining_ah"], e["design_capacity_ah"], e["cycles"])
    assert out["cell_voltages"] == e["cell_voltages"] and len(out["cell_voltages"]) == e["cell_count"]
    assert out["temperatures"] == e["temperatures"] and len(out["temperatures"]) == e["temp_sensors"]
    assert out["switches"] == {"charge": e["charge_mosfet"], "discharge": e["discharge_mosfet"]}
    assert (out["extra"]["heater"], out["extra"]["balancing"]) == (e["heater"], e["balancer"])
    assert out["device_info"]["model"] == name["expected"]["model"]


def test_decode_cli_rejects_the_synthetic_frames_with_a_zero_crc() -> None:
    cases = [c for c in VECTORS if c["kind"].startswith("SYNTHETIC")]
    out = decode_cli(*(c["frame"] for c in cases))
    assert out["frames"] == 0 and out["rejected"] >= len(cases)
    assert out["voltage"] is None and out["cell_voltages"] is None


@fuzz_settings
@given(st.lists(st.binary(max_size=16) | st.sampled_from([sok.request(sok.CMD_INFO), b"\xee"]), max_size=20))
def test_emulator_survives_any_host_writes(writes: list[bytes]) -> None:
    em = SokEmulator(address="5E:00:00:00:00:02", name="SOK-1")
    answered: list[bytes] = []
    em.notify = lambda frame, char_uuid=None, *, raw=False: answered.append(frame)
    for w in writes:
        em.handle_write(sok.WRITE_UUID, w)
        assert len(em._rx) <= 64
    answered.clear()
    em.handle_write(sok.WRITE_UUID, bytes(6) + sok.request(sok.CMD_NAME))
    assert answered == [encode_name(SokEmulator.model)]

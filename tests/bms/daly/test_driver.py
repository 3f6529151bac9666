"""Daly driver against the Daly emulator (Modbus D2, legacy A5, 0x81), through bleak's API on the
simulated radio: reads in every protocol, protocol detection and its memory, forced types, switches
read back, chunking and junk, the FF00 GATT layout, and `decode` on the captured vectors."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.ble.scan import classify
from bmslib.bms.daly.driver import DalyDriver
from bmslib.bms.daly.emulator import DalyEmulator
from bmslib.bms.daly.protocol import codec as daly
from bmslib.bms.daly.protocol import legacy as daly_legacy
from bmslib.bms.daly.protocol import modbus as daly_modbus
from bmslib.bms.daly.protocol import p81 as daly_p81
from bmslib.bms.daly.protocol import rtu as daly_rtu
from bmslib.bms.daly.protocol.auto import DalyAutoCodec, DalyFrames
from bmslib.bms.daly.protocol.codec import DalyProtocol
from bmslib.errors import BmsConnectError, BmsDisconnectedError, BmsTimeoutError, FrameError, UnsupportedError
from bmslib.model import Reading, Sample
from bmslib.registry import device_types
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Faults
from bmslib.sim.radio import SimRadio
from tests.helpers import fuzz_settings, load_vectors
from tests.sim_helpers import add_emulator, make_driver, native_types

ROOT = Path(__file__).parents[3]
VECTORS = load_vectors("daly")
PROTOCOLS = ("modbus", "legacy", "p81")
PROBE = {p.value: daly.PROBES[p] for p in daly.PROBE_ORDER}
MODEL = {"modbus": "Daly Modbus D2 (H/K/M/S series)", "legacy": "Daly legacy A5", "p81": "Daly Modbus 0x81 (ESS-DL-BMS)"}
# wire resolution per protocol: voltage [V], temperature [°C], remaining charge [Ah]
RESOLUTION = {"modbus": (0.1, 1.0, 0.1), "legacy": (0.1, 1.0, 0.001), "p81": (0.1, 1.0, 0.1)}



def steady_battery(current: float = 12.5, *, cells: int = 8, probes: int = 2, seed: int = 1) -> BatteryModel:
    """A battery whose state does not move between two reads (frozen clock, constant load)."""
    return BatteryModel(cells=cells, temperature_probes=probes, load=lambda _t: current, clock=lambda: 100.0,
                        rng=random.Random(seed))


def daly_device(radio: SimRadio, protocol: str, *, type_name: str = "daly", battery: BatteryModel | None = None,
                faults: Faults | None = None, **kw: Any) -> tuple[DalyEmulator, DalyDriver]:
    em = add_emulator(radio, DalyEmulator, battery=battery or steady_battery(), faults=faults, protocol=protocol, **kw)
    assert isinstance(em, DalyEmulator)
    drv = make_driver(type_name, radio, em)
    assert isinstance(drv, DalyDriver)
    drv.probe_timeout = 0.3
    return em, drv


def sample(reading: Reading) -> Sample:
    return Sample.build(reading, timestamp=0, mono=0)


def writes(em: DalyEmulator) -> list[bytes]:
    return [data for _uuid, data in em.writes]


def assert_matches_battery(s: Sample, em: DalyEmulator, protocol: str) -> None:
    b = em.battery
    dv, dt, dq = RESOLUTION[protocol]
    assert s.voltage == pytest.approx(b.voltage, abs=dv / 2 + 1e-9)
    assert s.current == pytest.approx(b.current, abs=0.051)  # model sign: + = discharging, as the battery
    assert s.soc == pytest.approx(b.soc, abs=0.051)
    assert s.charge == pytest.approx(b.charge_ah, abs=dq / 2 + 1e-9)
    assert list(s.cell_voltages or ()) == pytest.approx(b.cell_voltages, abs=0.0011)
    assert list(s.temperatures or ()) == pytest.approx(b.temperatures, abs=dt / 2 + 1e-9)
    assert s.cycles == b.cycles


# --- reads in every protocol -----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("current", [12.5, -7.3])
async def test_each_protocol_reads_the_emulated_battery(radio: SimRadio, protocol: str, current: float) -> None:
    em, drv = daly_device(radio, protocol, battery=steady_battery(current))
    await drv.connect()
    assert drv.protocol is DalyProtocol(protocol)
    s = sample(await drv.read())
    assert_matches_battery(s, em, protocol)
    assert s.extra["state"] == ("discharging" if current > 0 else "charging")
    assert drv.device_info.manufacturer == "Daly" and drv.device_info.model == MODEL[protocol]
    if protocol == "legacy":
        assert s.switches == {"charge": True}  # the discharge byte is diagnostics only
        assert s.extra["discharge_mos_reported"] is True and s.extra["current_sign_learned"] is True
    else:
        assert s.switches == {"charge": True, "discharge": True}
    if protocol == "p81":
        assert s.mos_temperature == pytest.approx(em.battery.mos_temperature, abs=0.51)
    else:  # D2: the 62-register status read carries no MOSFET temperature; legacy has none
        assert s.mos_temperature is None
    if protocol == "modbus":
        assert drv.device_info.sw_version == DalyEmulator.sw_version
        assert drv.device_info.hw_version == DalyEmulator.hw_version
    await drv.disconnect()


async def test_modbus_alarms_reach_the_reading(radio: SimRadio) -> None:
    battery = steady_battery()
    battery.alarms = ("cell_overvoltage_warning", "eeprom_failure")
    _em, drv = daly_device(radio, "modbus", battery=battery)
    await drv.connect()
    assert sample(await drv.read()).alarms == ("eeprom_failure", "cell_overvoltage_warning")  # bit order
    await drv.disconnect()


@pytest.mark.parametrize(("cells", "probes"), [(16, 9), (3, 1), (7, 0)])
async def test_legacy_cells_and_temperatures_over_several_frames(radio: SimRadio, cells: int, probes: int) -> None:
    em, drv = daly_device(radio, "legacy", battery=steady_battery(cells=cells, probes=probes))
    await drv.connect()
    s = sample(await drv.read())
    assert len(s.cell_voltages or ()) == cells and em.legacy_frame_count(daly_legacy.CMD_CELLS) == -(-cells // 3)
    assert_matches_battery(s, em, "legacy")
    if probes == 0:
        assert s.temperatures is None
        assert daly_legacy.request(daly_legacy.CMD_TEMPS) not in writes(em)  # no frame to wait for: not asked
    await drv.disconnect()


async def test_legacy_several_frames_in_one_notification(radio: SimRadio) -> None:
    em, drv = daly_device(radio, "legacy", battery=steady_battery(cells=16, probes=9), mtu=244)
    await drv.connect()
    assert drv._frames is not None
    chunks, frames = drv.transport.chunks_received, drv._frames.frames
    s = sample(await drv.read())
    # 0x90, 0x93, 0x94 one frame each, 0x95 six, 0x96 two: eleven frames in five notifications
    assert drv._frames.frames - frames == 11
    assert drv.transport.chunks_received - chunks == 5
    assert_matches_battery(s, em, "legacy")
    await drv.disconnect()


class ShufflingLegacyEmulator(DalyEmulator):
    """Sends the pieces of a multi-frame reply last first, the last one twice in a row."""

    def legacy_reply(self, cmd: int) -> list[bytes]:
        frames = super().legacy_reply(cmd)
        return [frames[-1], *frames[::-1]] if len(frames) > 1 else frames


async def test_legacy_pieces_in_any_order_and_repeated(radio: SimRadio) -> None:
    em = add_emulator(radio, ShufflingLegacyEmulator, battery=steady_battery(cells=13, probes=8), protocol="legacy")
    drv = make_driver("daly_legacy", radio, em)
    await drv.connect()
    for _ in range(3):  # the repeated frame of one read must not leak into the next
        s = sample(await drv.read())
        assert list(s.cell_voltages or ()) == pytest.approx(em.battery.cell_voltages, abs=0.0011)
        assert list(s.temperatures or ()) == pytest.approx(em.battery.temperatures, abs=0.51)
    await drv.disconnect()


@pytest.mark.parametrize("current", [9.0, -9.0])
async def test_legacy_current_sign_learned_from_the_state_byte(radio: SimRadio, current: float) -> None:
    em, drv = daly_device(radio, "legacy", battery=steady_battery(current), legacy_inverted_current=True)
    await drv.connect()
    for _ in range(2):
        s = sample(await drv.read())
        assert s.current == pytest.approx(em.battery.current, abs=0.051)
        assert s.extra["current_sign_learned"] is True
    await drv.disconnect()


async def test_state_read_by_a_switch_command_does_not_pair_with_the_next_current(radio: SimRadio) -> None:
    em, drv = daly_device(radio, "legacy", battery=steady_battery(-9.0))
    await drv.connect()
    await drv.set_switch("charge", True)  # reads 0x93 back: "charging"
    em.battery.load = lambda _t: 9.0  # now discharging
    s = sample(await drv.read())
    assert s.current == pytest.approx(9.0, abs=0.051) and s.extra["state"] == "discharging"
    await drv.disconnect()


# --- detection ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_detection_probes_in_order_and_stops_at_the_answer(radio: SimRadio, protocol: str) -> None:
    em, drv = daly_device(radio, protocol)
    await drv.connect()
    order = [p.value for p in daly.PROBE_ORDER]
    probes = [PROBE[p] for p in order[:order.index(protocol) + 1]]
    assert writes(em)[:len(probes)] == probes
    assert not set(writes(em)[len(probes):]) & (set(PROBE.values()) - {PROBE[protocol]})
    await drv.disconnect()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_detected_protocol_is_remembered_across_reconnects(radio: SimRadio, protocol: str) -> None:
    em, drv = daly_device(radio, protocol)
    await drv.connect()
    await drv.read()
    await drv.disconnect()
    before = len(writes(em))
    await drv.connect()
    on_connect = writes(em)[before:]
    # no probe again; D2 reads its version block once per connection
    assert on_connect == ([daly_modbus.VERSION_REQUEST] if protocol == "modbus" else [])
    s = sample(await drv.read())
    assert_matches_battery(s, em, protocol)
    await drv.disconnect()


async def test_a_slow_reply_to_an_earlier_probe_still_decides(radio: SimRadio) -> None:
    em, drv = daly_device(radio, "modbus", faults=Faults(latency=0.4))
    await drv.connect()  # the D2 answer comes while the legacy probe waits
    assert drv.protocol is DalyProtocol.MODBUS
    assert writes(em)[:2] == [PROBE["modbus"], PROBE["legacy"]]
    assert_matches_battery(sample(await drv.read()), em, "modbus")
    await drv.disconnect()


async def test_no_answer_to_any_probe_fails_the_connect_and_probes_again_next_time(radio: SimRadio) -> None:
    em, drv = daly_device(radio, "legacy", faults=Faults(mute=True))
    with pytest.raises(BmsConnectError, match="WiFi"):
        await drv.connect()
    assert not drv.is_connected and drv.protocol is None
    assert writes(em) == [PROBE[p.value] for p in daly.PROBE_ORDER]
    em.faults.mute = False
    await drv.connect()
    assert drv.protocol is DalyProtocol.LEGACY
    await drv.disconnect()


async def test_probe_survives_junk_and_split_chunks(radio: SimRadio) -> None:
    for i, protocol in enumerate(PROTOCOLS):
        em = add_emulator(radio, DalyEmulator, f"junk{i}", battery=steady_battery(), protocol=protocol, seed=i,
                          faults=Faults(junk=1.0, chunk_interval=0.002), mtu=7)
        drv = make_driver("daly", radio, em)
        assert isinstance(drv, DalyDriver)
        drv.probe_timeout = 0.5
        await drv.connect()
        assert drv.protocol is DalyProtocol(protocol)
        await drv.disconnect()


def test_frames_assembler_locks_onto_the_first_protocol_it_sees() -> None:
    asm = DalyFrames()
    legacy = daly_legacy.encode(daly_legacy.CMD_INFO, {"cell_count": 4, "sensor_count": 1, "cycles": 3})
    d2 = daly_modbus.encode_version("a", "b")
    assert asm.feed(b"\x00\xff" + legacy[:5]) == []
    assert asm.feed(legacy[5:]) == [legacy]
    assert asm.protocol is DalyProtocol.LEGACY and asm.frames == 1 and asm.dropped == 1  # the junk
    assert asm.feed(d2) == []  # now only legacy frames pass
    assert asm.protocol is DalyProtocol.LEGACY


# --- forced types ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("type_name", "protocol"), [("daly_legacy", "legacy"), ("daly_modbus", "modbus")])
async def test_forced_types_do_not_probe(radio: SimRadio, type_name: str, protocol: str) -> None:
    em, drv = daly_device(radio, protocol, type_name=type_name)
    await drv.connect()
    assert drv.protocol is DalyProtocol(protocol)
    assert writes(em) == ([daly_modbus.VERSION_REQUEST] if protocol == "modbus" else [])
    assert_matches_battery(sample(await drv.read()), em, protocol)
    await drv.disconnect()


@pytest.mark.parametrize(("type_name", "device", "advice"), [
    ("daly_modbus", "legacy", "daly_legacy"), ("daly_legacy", "modbus", "daly_modbus"), ("daly_modbus", "p81", "daly"),
])
async def test_forced_type_that_the_device_does_not_speak_is_explained_once(
        radio: SimRadio, caplog: pytest.LogCaptureFixture, type_name: str, device: str, advice: str) -> None:
    caplog.set_level(logging.INFO)
    em, drv = daly_device(radio, device, type_name=type_name)
    drv.request_timeout = 0.2  # type: ignore[misc]
    await drv.connect()
    for _ in range(2):
        with pytest.raises(BmsTimeoutError):
            await drv.read()
    advice_lines = [r.getMessage() for r in caplog.records if "but the BMS answers in" in r.getMessage()]
    assert len(advice_lines) == 1 and f"`type: {advice}`" in advice_lines[0]
    assert drv.protocol is DalyProtocol({"daly_modbus": "modbus", "daly_legacy": "legacy"}[type_name])
    assert em.battery.charge_fet  # nothing was switched by the probing
    await drv.disconnect()


# --- switches ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", ["daly", "daly_modbus"])
@pytest.mark.parametrize(("name", "attr"), [("charge", "charge_fet"), ("discharge", "discharge_fet")])
async def test_modbus_switches_reach_the_emulator_and_read_back(radio: SimRadio, type_name: str, name: str,
                                                                attr: str) -> None:
    em, drv = daly_device(radio, "modbus", type_name=type_name)
    await drv.connect()
    other = "discharge" if name == "charge" else "charge"
    await drv.set_switch(name, False)
    assert getattr(em.battery, attr) is False
    assert writes(em)[-1] == daly_modbus.switch_request(name, False)
    assert (await drv.read())["switches"] == {name: False, other: True}
    await drv.set_switch(name, True)
    assert getattr(em.battery, attr) is True
    assert (await drv.read())["switches"] == {name: True, other: True}
    await drv.disconnect()


class WrongEchoEmulator(DalyEmulator):
    """Answers a switch write with an echo of another value."""

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        req = daly_modbus.parse_request(data)
        if req is not None and req.function == daly_rtu.WRITE:
            self.notify(daly_rtu.write_request(req.register, req.value ^ 1, address=daly_modbus.ADDRESS))
            return
        super().handle_write(char_uuid, data)


class RefusingEmulator(DalyEmulator):
    """Answers a switch write with a Modbus exception (illegal data address)."""

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        req = daly_modbus.parse_request(data)
        if req is not None and req.function == daly_rtu.WRITE:
            self.notify(daly_rtu.exception_response(daly_rtu.WRITE, 2, address=daly_modbus.ADDRESS))
            return
        super().handle_write(char_uuid, data)


@pytest.mark.parametrize(("cls", "error"), [(WrongEchoEmulator, FrameError), (RefusingEmulator, UnsupportedError)])
async def test_modbus_switch_accepted_only_on_a_matching_echo(radio: SimRadio, cls: type[DalyEmulator],
                                                              error: type[Exception]) -> None:
    em = add_emulator(radio, cls, battery=steady_battery(), protocol="modbus")
    drv = make_driver("daly_modbus", radio, em)
    await drv.connect()
    with pytest.raises(error):
        await drv.set_switch("charge", False)
    await drv.disconnect()


async def test_modbus_switch_without_echo_times_out(radio: SimRadio) -> None:
    em, drv = daly_device(radio, "modbus", type_name="daly_modbus")
    drv.request_timeout = 0.2  # type: ignore[misc]
    await drv.connect()
    em.faults.mute = True
    with pytest.raises(BmsTimeoutError):
        await drv.set_switch("discharge", False)
    await drv.disconnect()


@pytest.mark.parametrize("type_name", ["daly", "daly_legacy"])
async def test_legacy_switches_reach_the_emulator_and_read_back(radio: SimRadio, type_name: str) -> None:
    em, drv = daly_device(radio, "legacy", type_name=type_name)
    await drv.connect()
    await drv.set_switch("charge", False)
    assert em.battery.charge_fet is False
    assert daly_legacy.switch_request("charge", False) in writes(em)
    assert writes(em)[-1] == daly_legacy.request(daly_legacy.CMD_STATUS)  # read back at once
    assert (await drv.read())["switches"] == {"charge": False}
    await drv.set_switch("discharge", False)
    assert em.battery.discharge_fet is False and em.battery.charge_fet is False
    r = await drv.read()
    assert r["switches"] == {"charge": False} and r["extra"]["discharge_mos_reported"] is False
    await drv.set_switch("discharge", True)
    await drv.set_switch("charge", True)
    r = await drv.read()
    assert r["switches"] == {"charge": True} and r["extra"]["discharge_mos_reported"] is True
    assert em.battery.discharge_fet and em.battery.charge_fet
    await drv.disconnect()


async def test_legacy_discharge_byte_that_does_not_follow_is_reported_once(
        radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    em, drv = daly_device(radio, "legacy", legacy_stuck_discharge_byte=True)
    await drv.connect()
    for _ in range(2):
        await drv.set_switch("discharge", False)
    assert em.battery.discharge_fet is False  # it did switch; only the byte does not say so
    warnings = [r for r in caplog.records if "cannot confirm discharge switching" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    await drv.disconnect()


async def test_p81_is_read_only(radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    em, drv = daly_device(radio, "p81")
    await drv.connect()
    sent = len(writes(em))
    for name in ("charge", "discharge"):
        with pytest.raises(UnsupportedError, match=r"0x81.*no switch"):
            await drv.set_switch(name, False)
    assert len(writes(em)) == sent and em.battery.charge_fet and em.battery.discharge_fet
    assert any("read-only" in r.getMessage() for r in caplog.records)
    await drv.disconnect()


async def test_balance_is_no_daly_switch(radio: SimRadio) -> None:
    _em, drv = daly_device(radio, "modbus")
    assert "balance" not in drv.switches and device_types()["daly"].switches == {"charge", "discharge"}
    await drv.connect()
    with pytest.raises(UnsupportedError):
        await drv.set_switch("balance", True)
    await drv.disconnect()


async def test_switch_before_connect_is_refused(radio: SimRadio) -> None:
    _em, drv = daly_device(radio, "modbus")
    with pytest.raises(BmsDisconnectedError):
        await drv.set_switch("charge", False)


# --- faults ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mtu", [5, 20, 244])
async def test_reads_survive_junk_and_slow_chunks(radio: SimRadio, protocol: str, mtu: int) -> None:
    em, drv = daly_device(radio, protocol, battery=steady_battery(cells=16, probes=4), mtu=mtu,
                          faults=Faults(junk=0.5, chunk_interval=0.001, latency=0.02))
    drv.probe_timeout = 0.4
    await drv.connect()
    for _ in range(3):
        assert_matches_battery(sample(await drv.read()), em, protocol)
    assert drv._frames is not None and drv._frames.dropped > 0  # the junk was seen and dropped
    await drv.disconnect()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_disconnect_mid_frame_then_reconnect(radio: SimRadio, protocol: str) -> None:
    em, drv = daly_device(radio, protocol, battery=steady_battery(cells=16))
    await drv.connect()
    await drv.read()
    em.faults.disconnect_after = em.requests + 1 if protocol != "legacy" else em.requests + 4  # legacy: in 0x95
    em.faults.disconnect_mid_frame = True
    with pytest.raises(BmsDisconnectedError):
        await drv.read()
    assert not drv.is_connected
    before = len(writes(em))
    await drv.connect()
    assert not set(writes(em)[before:]) & (set(PROBE.values()) - {PROBE["legacy"]})  # no probing again
    assert_matches_battery(sample(await drv.read()), em, protocol)
    await drv.disconnect()


async def test_newer_firmware_on_service_ff00(radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    em, drv = daly_device(radio, "modbus", gatt_layout="ff00")
    await drv.connect()
    assert_matches_battery(sample(await drv.read()), em, "modbus")
    assert {uuid for uuid, _ in em.writes} == {daly.ALT_WRITE_UUID}
    await drv.set_switch("charge", False)
    assert em.battery.charge_fet is False
    await drv.disconnect()
    await drv.connect()  # remembered: straight to FF00
    assert_matches_battery(sample(await drv.read()), em, "modbus")
    assert sum("service FF00" in r.getMessage() for r in caplog.records) == 1
    await drv.disconnect()


# --- scan, registry, decode --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["DL-401710015C9B", "JHB-12345", "My battery"])
def test_scan_recognises_the_emulator_advertisement(name: str) -> None:
    em = DalyEmulator(address="40:17:10:01:5C:9B", name=name)
    adv = em.advertisement()
    kinds, _ = classify(em.address, adv.name, list(adv.service_uuids), adv.manufacturer_data, native_types())
    assert kinds == ("daly",)  # the forced types are not suggested by a scan


def test_registry_entries() -> None:
    types = device_types()
    assert types["daly"].in_demo and not types["daly_legacy"].in_demo and not types["daly_modbus"].in_demo
    for name, protocol in (("daly", None), ("daly_legacy", DalyProtocol.LEGACY), ("daly_modbus", DalyProtocol.MODBUS)):
        codec = types[name].codec
        assert codec is not None
        made = codec()
        assert isinstance(made, DalyAutoCodec) and made.protocol is protocol
        emulator = types[name].emulator
        assert emulator is not None and emulator.type_name == name
        assert emulator(address="40:17:10:01:5C:9B", name="x").protocol is (protocol or DalyProtocol.MODBUS)


def vector(frame_type: str, index: int = 0) -> dict[str, Any]:
    return [c for c in VECTORS if c["frame_type"] == frame_type][index]


def decode_cli(type_name: str, *hex_chunks: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "main.py", "decode", "--type", type_name, *hex_chunks],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def split(frame_hex: str, size: int = 20) -> list[str]:
    return [frame_hex[i:i + 2 * size] for i in range(0, len(frame_hex), 2 * size)]


@pytest.mark.parametrize("type_name", ["daly", "daly_modbus"])
def test_decode_cli_modbus_vectors(type_name: str) -> None:
    status, version = vector("read 62 regs @0x0000 response"), vector("read 32 regs @0x00A9 response")
    out = decode_cli(type_name, *split(status["frame"]), *split(version["frame"]))
    e = status["expected"]
    assert out["frames"] == 2 and out["rejected"] == 0
    assert out["voltage"] == pytest.approx(e["voltage"]) and out["soc"] == pytest.approx(e["soc"])
    assert out["current"] == pytest.approx(-e["current"])  # vectors are charge-positive
    assert out["cycles"] == e["cycles"] and out["charge"] == pytest.approx(e["remaining_ah"])
    assert out["cell_voltages"] == pytest.approx(e["cell_voltages"]) and len(out["cell_voltages"]) == e["cell_count"]
    assert out["temperatures"] == pytest.approx(e["temperatures"]) and len(out["temperatures"]) == e["temp_sensors"]
    assert out["extra"]["delta_cell_voltage"] == pytest.approx(e["delta_voltage"])
    assert out["extra"]["balancing"] is e["balancer"] and out["extra"]["alarm_bitmask"] == e["problem_code"]
    assert out["switches"] == {"charge": e["charge_mosfet"], "discharge": e["discharge_mosfet"]}
    assert out["device_info"]["sw_version"] == version["expected"]["sw_version"]
    assert out["device_info"]["hw_version"] == version["expected"]["hw_version"]
    mos = vector("read 9 regs @0x003E response")
    assert decode_cli(type_name, mos["frame"])["mos_temperature"] == pytest.approx(mos["expected"]["mos_temperature"])


def test_decode_cli_p81_vectors() -> None:
    cells, status = vector("P81_CELLS_FRAME"), vector("P81_STATUS_FRAME")
    out = decode_cli("daly", *split(cells["frame"]), *split(status["frame"]))
    e, f = cells["expected"], status["expected"]
    assert out["frames"] == 2 and out["rejected"] == 0
    assert out["voltage"] == pytest.approx(e["voltage"]) and out["soc"] == pytest.approx(e["soc"])
    assert out["current"] == pytest.approx(-e["current"])
    assert len(out["cell_voltages"]) == e["cell_count"] and len(out["temperatures"]) == e["temp_sensors"]
    assert out["cell_voltages"][0] == pytest.approx(e["cell_1_v"]) and out["cell_voltages"][1] == pytest.approx(
        e["cell_2_v"]) and out["cell_voltages"][15] == pytest.approx(e["cell_16_v"])
    assert out["temperatures"] == pytest.approx(e["temperatures"])
    assert out["extra"]["state"] == f["status"].lower() and out["charge"] == pytest.approx(f["remaining_ah"])
    assert out["cycles"] == f["cycles"] and out["extra"]["balancing"] is f["balancing"]
    assert out["switches"] == {"charge": f["charge_mosfet"], "discharge": f["discharge_mosfet"]}
    assert out["extra"]["precharge_mos"] is f["precharge_mosfet"]
    assert out["mos_temperature"] == pytest.approx(f["mosfet_temperature"])
    assert out["extra"]["board_temperature"] == pytest.approx(f["board_temperature"])
    # the forced types do not speak 0x81: nothing decodes
    assert decode_cli("daly_modbus", cells["frame"])["frames"] == 0


@pytest.mark.parametrize("type_name", ["daly", "daly_legacy"])
@pytest.mark.parametrize("index", [0, 1])
def test_decode_cli_legacy_vectors(type_name: str, index: int) -> None:
    info, status = vector("response 0x94"), vector("response 0x93", index)
    out = decode_cli(type_name, info["frame"] + status["frame"])  # two frames in one notification
    e, f = info["expected"], status["expected"]
    assert out["frames"] == 2 and out["rejected"] == 0
    assert out["cycles"] == e["cycles"] and out["extra"]["cell_count"] == e["cell_count"]
    assert out["extra"]["temperature_sensor_count"] == e["temp_sensors"]
    assert out["extra"]["charger_present"] is e["charger_present"] and out["extra"]["load_present"] is e["load_present"]
    assert out["extra"]["dio_bits"] == e["dio_bits"]
    assert out["charge"] == pytest.approx(f["remaining_mah"] / 1000)
    assert out["extra"]["state"] == {0: "idle", 1: "charging", 2: "discharging"}[f["state"]]
    assert out["switches"] == {"charge": f["charge_mosfet"]}
    assert out["extra"]["discharge_mos_reported"] is f["discharge_mosfet"]
    assert out["extra"]["bms_life"] == f["bms_life"]


def test_decode_cli_legacy_multi_frame_cells() -> None:
    """No capture of 0x95/0x96 exists: frames built by the device-side encoders, after a real 0x94."""
    info = vector("response 0x94")  # 8 cells, 1 sensor
    cells = [3.301 + i / 1000 for i in range(8)]
    pieces = "".join(f.hex() for f in daly_legacy.encode_cells(cells) + daly_legacy.encode_temperatures([21.0]))
    out = decode_cli("daly_legacy", info["frame"], *split(pieces, 20))
    assert out["cell_voltages"] == pytest.approx(cells) and out["temperatures"] == [21.0]
    assert out["frames"] == 5 and out["rejected"] == 0


def test_auto_codec_follows_the_frames() -> None:
    codec = DalyAutoCodec()
    assert codec.decode(daly_p81.encode_rt2({"cycles": 4}))["cycles"] == 4
    assert codec.decode(bytes.fromhex(vector("response 0x94")["frame"]))["cycles"] == 53
    with pytest.raises(FrameError):
        codec.decode(b"\x00" * 13)


# --- fuzzing the driver's assembler and codec ----------------------------------------------------------

_FRAMES = st.sampled_from([bytes.fromhex(c["frame"]) for c in VECTORS if not c["kind"].startswith("command")])


@fuzz_settings
@given(st.lists(st.one_of(st.binary(max_size=300), _FRAMES), max_size=12), st.sampled_from([None, *PROTOCOLS]))
def test_fuzz_frames_assembler_and_codec(pieces: list[bytes], protocol: str | None) -> None:
    codec = DalyAutoCodec(None if protocol is None else DalyProtocol(protocol))
    asm = codec.assembler()
    for piece in pieces:
        for frame in asm.feed(piece):
            assert daly.classify_reply(frame) is asm.protocol
            try:
                codec.decode(frame)
            except FrameError:
                pass
        assert asm.pending <= daly_rtu.MAX_FRAME


@fuzz_settings
@given(st.lists(_FRAMES, min_size=1, max_size=4), st.binary(max_size=20), st.integers(1, 40))
def test_fuzz_frames_of_one_protocol_come_through_junk_and_any_split(frames: list[bytes], junk: bytes,
                                                                    size: int) -> None:
    first = daly.classify_reply(frames[0])
    same = [f for f in frames if daly.classify_reply(f) is first]
    stream = junk.replace(b"\xa5", b"").replace(b"\xd2", b"").replace(b"\x51", b"") + b"".join(same)
    asm = DalyFrames()
    got = [f for i in range(0, len(stream), size) for f in asm.feed(stream[i:i + size])]
    assert got == same and asm.protocol is first


class NoVersionEmulator(DalyEmulator):
    """A D2 unit that does not answer the version read."""

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if data != daly_modbus.VERSION_REQUEST:
            super().handle_write(char_uuid, data)


async def test_unanswered_version_read_is_not_repeated(radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    em = add_emulator(radio, NoVersionEmulator, battery=steady_battery(), protocol="modbus")
    drv = make_driver("daly_modbus", radio, em)
    drv.request_timeout = 0.2  # type: ignore[misc]
    for _ in range(3):
        await drv.connect()
        assert_matches_battery(sample(await drv.read()), em, "modbus")
        await drv.disconnect()
    assert writes(em).count(daly_modbus.VERSION_REQUEST) == 1
    assert sum("no version information" in r.getMessage() for r in caplog.records) == 1
    assert drv.device_info.sw_version is None and drv.device_info.model == MODEL["modbus"]

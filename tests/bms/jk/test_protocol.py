"""JK protocol: real captures, framing and resync, layout choice, plausibility, fuzzing, round trips."""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.bms.jk.protocol import codec as jk
from bmslib.bms.jk.protocol import device_info_decoder
from bmslib.bms.jk.protocol import framing as jk_framing
from bmslib.bms.jk.protocol import jk02 as jk_jk02
from bmslib.bms.jk.protocol import jk04 as jk_jk04
from bmslib.bms.jk.protocol.codec import FrameLayout, JkAssembler, JkCodec
from bmslib.errors import FrameError, UnsupportedError
from bmslib.model import DeviceInfo, Reading, Sample, merge_readings
from tests.helpers import case_id, chunks_of, fuzz_settings, load_vectors

VECTORS = load_vectors("jk")
PROTOCOL_LAYOUTS = {"JK02_24S": FrameLayout.JK02_24S, "JK02_32S": FrameLayout.JK02_32S, "JK04": FrameLayout.JK04}


def kind_of(case: dict[str, Any]) -> str:
    """Which test checks a case: every case of the vector file must fall in one of these."""
    ft = case["frame_type"]
    if case["kind"].startswith("command"):
        return "command"
    for prefix, kind in (("cell_info", "cell_info"), ("settings", "settings"), ("device_info", "device_info"),
                         ("ack", "ack"), ("logbook", "logbook"), ("corrupt", "corrupt")):
        if ft.startswith(prefix):
            return kind
    return "stream"


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [c for c in VECTORS if kind_of(c) == kind]


def test_every_vector_case_is_checked_by_a_test() -> None:
    kinds = {kind_of(c) for c in VECTORS}
    assert kinds == {"command", "cell_info", "settings", "device_info", "ack", "logbook", "corrupt", "stream"}
    assert len(VECTORS) == sum(len(of_kind(k)) for k in kinds) == 44
    assert all(c["expected"] for c in VECTORS)


def assemble(chunks: list[bytes], asm: JkAssembler | None = None) -> list[bytes]:
    asm = asm or JkAssembler()
    return [f for c in chunks for f in asm.feed(c)]


def only_frame(case: dict[str, Any]) -> bytes:
    asm = JkAssembler()
    frames = assemble(chunks_of(case), asm)
    assert len(frames) == 1, f"expected one frame, got {len(frames)} (last error: {asm.last_error})"
    assert asm.dropped == 0
    return frames[0]


def device_info_case(case: dict[str, Any]) -> dict[str, Any] | None:
    """The device-info capture of the same device, if the vectors have one."""
    for c in of_kind("device_info"):
        if case["device"].startswith(c["device"]):
            return c
    return None


def session_codec(case: dict[str, Any]) -> JkCodec:
    """A codec as the driver would have it: after the device's device-info frame if captured,
    else with the layout forced from the case's protocol (type jk_24s / jk_32s / jk04)."""
    info = device_info_case(case)
    if info is None:
        return JkCodec(PROTOCOL_LAYOUTS[case["protocol"]])
    codec = JkCodec()
    codec.decode(only_frame(info))
    assert codec.layout is PROTOCOL_LAYOUTS[case["protocol"]]
    return codec


def sample(reading: Reading) -> Sample:
    return Sample.build(reading, timestamp=0.0, mono=0.0)


# --- cell info ------------------------------------------------------------------------------------


def aio_temperatures(r: Reading, layout: FrameLayout) -> list[float]:
    """Our temperatures in aiobmsble's presence-mask order (24S: T1, T2, MOS; 32S: MOS, T1, T2, @254,
    @256, @258)."""
    temps = list(r.get("temperatures", ()))
    if layout is FrameLayout.JK02_24S:
        return [*temps, r["mos_temperature"]]
    return [r["mos_temperature"], *temps[:2], r["extra"]["temperature_t5"], *temps[2:]]


def soh_check(r: Reading, x: float, layout: FrameLayout, frame: bytes) -> bool:
    if layout is FrameLayout.JK02_32S:
        return r["soh"] == x
    # the byte is there on 24S but not meaningful: read by the table, not reported
    return "soh" not in r and jk_jk02.CELL_INFO[layout].decode(frame)["soh"] == x


Check = Callable[[Reading, Any, FrameLayout, bytes], None]
CELL_CHECKS: dict[str, Check] = {
    "voltage": lambda r, x, lay, f: pytest.approx(x) == r["voltage"],
    "total_voltage_sum_of_cells": lambda r, x, lay, f: pytest.approx(x, abs=0.001) == sample(r).voltage,
    "current": lambda r, x, lay, f: pytest.approx(-x) == r["current"],  # vectors are charge-positive
    "soc": lambda r, x, lay, f: r["soc"] == x,
    "battery_level": lambda r, x, lay, f: r["soc"] == x,
    "soh": soh_check,
    "battery_health": soh_check,
    "remaining_ah": lambda r, x, lay, f: pytest.approx(x) == r["charge"],
    "cycle_charge": lambda r, x, lay, f: pytest.approx(x) == r["charge"],
    "full_charge_ah": lambda r, x, lay, f: pytest.approx(x) == r["extra"]["aged_capacity"] == r["capacity"],
    "design_capacity": lambda r, x, lay, f: int(r["extra"]["aged_capacity"]) == x,
    "cycle_capacity_ah": lambda r, x, lay, f: pytest.approx(x) == r["extra"]["cycle_capacity"],
    "cycles": lambda r, x, lay, f: r["cycles"] == x,
    "runtime_s": lambda r, x, lay, f: r["uptime"] == x,
    "t1": lambda r, x, lay, f: pytest.approx(x) == r["temperatures"][0],
    "t2": lambda r, x, lay, f: pytest.approx(x) == r["temperatures"][1],
    "mos_temperature": lambda r, x, lay, f: pytest.approx(x) == r["mos_temperature"],
    "temp_values": lambda r, x, lay, f: aio_temperatures(r, lay) == pytest.approx([t["value"] for t in x]),
    "temp_sensors": lambda r, x, lay, f: r["extra"]["temperature_presence"] == x,
    "charge_mosfet": lambda r, x, lay, f: r["switches"]["charge"] is x,
    "chrg_mosfet": lambda r, x, lay, f: r["switches"]["charge"] is x,
    "discharge_mosfet": lambda r, x, lay, f: r["switches"]["discharge"] is x,
    "dischrg_mosfet": lambda r, x, lay, f: r["switches"]["discharge"] is x,
    "heating": lambda r, x, lay, f: r["extra"]["heating"] is x,
    "balancing": lambda r, x, lay, f: r["extra"]["balancing"] is x,
    "balancer": lambda r, x, lay, f: r["extra"]["balancing"] is x,
    "balance_current": lambda r, x, lay, f: pytest.approx(x) == r["balance_current"],
    "balancing_current": lambda r, x, lay, f: pytest.approx(x, abs=0.01) == r["balance_current"],
    "errors_bitmask": lambda r, x, lay, f: r["extra"]["error_bitmask"] == x and r["alarms"] == (),
    "problem_code": lambda r, x, lay, f: int(r["extra"]["error_bitmask"]) & 0xFFFF == x and r["alarms"] == (),
    "battery_mode": lambda r, x, lay, f: r["extra"]["charge_status"] == x.rsplit(".", 1)[-1].lower(),
    "cell_count": lambda r, x, lay, f: r["extra"]["cell_count"] == len(r["cell_voltages"]) == x,
    "cell_voltages": lambda r, x, lay, f: list(r["cell_voltages"]) == pytest.approx(x),
    "cell_1_v": lambda r, x, lay, f: pytest.approx(x, abs=0.0005) == r["cell_voltages"][0],
    "cell_2_v": lambda r, x, lay, f: pytest.approx(x, abs=0.0005) == r["cell_voltages"][1],
    "min_cell_v": lambda r, x, lay, f: sample(r).cell_min == x,
    "max_cell_v": lambda r, x, lay, f: sample(r).cell_max == x,
    "min_cell_index": lambda r, x, lay, f: sample(r).cell_min_index == x,  # 1-based
    "max_cell_index": lambda r, x, lay, f: sample(r).cell_max_index == x,
    "delta_cell_v": lambda r, x, lay, f: pytest.approx(x) == sample(r).cell_delta,
    # aiobmsble reports the BMS's own delta field, which differs from max - min of the cells
    "delta_voltage": lambda r, x, lay, f: pytest.approx(x) == jk_jk02.CELL_INFO[lay].decode(f)["cell_delta"],
    "avg_cell_v": lambda r, x, lay, f: pytest.approx(x, abs=0.001) == sample(r).cell_average,
    "cell_resistance_ohm_1": lambda r, x, lay, f: r["extra"]["cell_resistance_1"] == x,
    "cell_resistance_ohm_2": lambda r, x, lay, f: r["extra"]["cell_resistance_2"] == x,
}


def check_cell_info_expected(r: Reading, expected: dict[str, Any], layout: FrameLayout, frame: bytes) -> None:
    unknown = set(expected) - set(CELL_CHECKS)
    assert not unknown, f"expected keys without a check: {unknown}"
    for key, x in expected.items():
        assert CELL_CHECKS[key](r, x, layout, frame), f"{key}: expected {x!r}"


@pytest.mark.parametrize("case", of_kind("cell_info"), ids=case_id)
def test_cell_info_vectors_decode_to_expected_values(case: dict[str, Any]) -> None:
    frame = only_frame(case)
    codec = session_codec(case)
    r = codec.decode(frame)
    check_cell_info_expected(r, case["expected"], PROTOCOL_LAYOUTS[case["protocol"]], frame)


@pytest.mark.parametrize("case", of_kind("cell_info"), ids=case_id)
def test_cell_info_before_device_info_fits_exactly_the_right_layout(case: dict[str, Any]) -> None:
    frame = only_frame(case)
    codec = JkCodec()
    guessed = codec.decode(frame)
    layout = PROTOCOL_LAYOUTS[case["protocol"]]
    assert codec.guessed_layout is layout
    assert codec.layout is None  # a guess is per frame, it does not fix the layout
    plain = JkCodec(layout).decode(frame)  # no firmware version known in either
    assert guessed == plain


# --- settings, device info, acks, logbook, corrupt --------------------------------------------------

SETTINGS_CHECKS: dict[str, Callable[[Reading, Any], bool]] = {
    "cell_count": lambda r, x: r["extra"]["cell_count_setting"] == x,
    "charge_switch": lambda r, x: r["extra"]["charge_enabled"] is x,
    "discharge_switch": lambda r, x: r["extra"]["discharge_enabled"] is x,
    "balancer_switch": lambda r, x: r["switches"] == {"balance": x},
    "nominal_capacity_ah": lambda r, x: r["capacity"] == x,
    "cell_uvp": lambda r, x: r["extra"]["cell_uvp"] == x,
    "cell_ovp": lambda r, x: r["extra"]["cell_ovp"] == x,
    "power_off_voltage": lambda r, x: r["extra"]["power_off_voltage"] == x,
    "balance_trigger_voltage": lambda r, x: r["extra"]["balance_trigger_voltage"] == x,
    "max_balance_current": lambda r, x: r["extra"]["max_balance_current"] == x,
    "voltage_calibration_vref": lambda r, x: pytest.approx(x, abs=0.001) == r["extra"]["voltage_calibration"],
    "balancing_start_voltage": lambda r, x: r["extra"]["balance_start_voltage"] == x,
}


@pytest.mark.parametrize("case", of_kind("settings"), ids=case_id)
def test_settings_vectors_decode_to_expected_values(case: dict[str, Any]) -> None:
    frame = only_frame(case)
    r = session_codec(case).decode(frame)
    assert not set(case["expected"]) - set(SETTINGS_CHECKS)
    for key, x in case["expected"].items():
        assert SETTINGS_CHECKS[key](r, x), f"{key}: expected {x!r}"


def check_device_info(r: Reading, exp: dict[str, Any]) -> None:
    info = r["device_info"]
    assert info.manufacturer == "JK"
    checks: dict[str, Callable[[Any], bool]] = {
        "vendor_id": lambda x: info.model == x,
        "hardware_version": lambda x: info.hw_version == x,
        "software_version": lambda x: info.sw_version == x,
        "device_name": lambda x: info.name == x,
        # aiobmsble keeps the first 8 characters of the serial; we keep the whole field
        "device_info": lambda x: (info.model, info.hw_version, info.sw_version, info.name) == (
            x["model"], x["hw_version"], x["sw_version"], x["name"]) and (info.serial or "").startswith(
            x["serial_number"]),
        "trailing_ack": lambda x: bytes.fromhex(x) == jk.ACK,
    }
    assert not set(exp) - set(checks)
    for key, x in exp.items():
        assert checks[key](x), f"{key}: expected {x!r}"


@pytest.mark.parametrize("case", of_kind("device_info"), ids=case_id)
def test_device_info_vectors_decode_and_choose_the_layout(case: dict[str, Any]) -> None:
    asm = JkAssembler()
    (frame,) = assemble(chunks_of(case), asm)
    assert asm.acks == (1 if "trailing_ack" in case["expected"] else 0)
    codec = JkCodec()
    r = codec.decode(frame)
    check_device_info(r, case["expected"])
    assert codec.layout is PROTOCOL_LAYOUTS[case["protocol"]]
    assert codec.layout_conflict is None


@pytest.mark.parametrize("case", of_kind("ack"), ids=case_id)
def test_ack_vectors_are_stripped_and_counted(case: dict[str, Any]) -> None:
    asm = JkAssembler()
    assert assemble(chunks_of(case), asm) == []
    assert bytes.fromhex(case["expected"]["ack_frame"]) == jk.ACK
    assert (asm.acks == 1) is case["expected"]["ready"]
    assert asm.dropped == 0 and asm.pending == 0


def test_logbook_vector_decodes_its_entries() -> None:
    (case,) = of_kind("logbook")
    frame = bytes.fromhex(case["frame"])
    assert JkAssembler().feed(frame) == []  # not one of the session's frame types
    assert JkAssembler(types=frozenset({5})).feed(frame) == [frame]
    entries = jk.decode_logbook(frame)
    exp = case["expected"]
    assert len(entries) == exp["log_count"]
    assert [(e.seconds, e.code) for e in entries] == [(e["ts"], e["code"]) for e in exp["entries"]]
    with pytest.raises(FrameError, match="not decoded"):
        JkCodec().decode(frame)


def test_corrupt_vector_is_dropped_by_the_assembler_and_refused_by_decode() -> None:
    (case,) = of_kind("corrupt")
    frame = bytes.fromhex(case["frame"])
    assert case["expected"]["crc_valid"] is False
    asm = JkAssembler()
    assert asm.feed(frame) == []
    assert asm.dropped == 1 and "checksum" in str(asm.last_error)
    with pytest.raises(FrameError, match="checksum"):
        JkCodec(FrameLayout.JK02_32S).decode(frame)


# --- streams ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", of_kind("stream"), ids=case_id)
def test_stream_vectors_yield_the_frames_in_order(case: dict[str, Any]) -> None:
    asm = JkAssembler()
    frames = assemble(chunks_of(case), asm)
    exp = case["expected"]
    assert [f"{f[4]:02x}" for f in frames] == exp["frames_out"]
    assert asm.dropped == exp.get("corrupt", 0)
    codec = JkCodec()
    readings = {f[4]: codec.decode(f) for f in frames}  # in arrival order: 02 is decoded by guessing
    if "cell_info" in exp:
        check_cell_info_expected(readings[2], exp["cell_info"], FrameLayout.JK02_32S, frames[0])
    if "device_info" in exp:
        check_device_info(readings[3], exp["device_info"])
        assert codec.layout is FrameLayout.JK02_32S


def test_session_of_device_info_settings_and_cell_info_builds_one_sample() -> None:
    info, settings = (only_frame(c) for c in VECTORS if c["device"].startswith("JK-B2A24S20P hw 10.X-W")
                      and kind_of(c) in ("device_info", "settings"))
    (cells_case,) = (c for c in of_kind("cell_info") if c["device"].startswith("JK-B2A24S20P hw 10.X-W"))
    codec = JkCodec()
    readings = [codec.decode(f) for f in (info, settings, only_frame(cells_case))]
    s = sample(merge_readings(*readings))
    assert s.capacity == 275.0  # user capacity from the settings frame
    assert s.current == pytest.approx(-12.219)  # charging
    assert s.power == pytest.approx(26.911 * -12.219)
    assert s.switches == {"charge": True, "discharge": True, "balance": True}
    assert s.extra["aged_capacity"] == 275.0 and s.extra["cell_count"] == 8


# --- commands ---------------------------------------------------------------------------------------


def rebuild(frame: bytes) -> bytes:
    cmd = jk.parse_command(frame)
    assert cmd is not None
    names = {v: k for k, v in jk_framing.SWITCH_REGISTERS.items()}
    if cmd.register in names:
        return jk.switch_command(names[cmd.register], bool(cmd.number))
    if cmd.register == jk_framing.REG_JK04_BALANCE:
        return jk.switch_command("balance", bool(cmd.number), FrameLayout.JK04)
    named = {jk.REQUEST_DEVICE_INFO[4]: jk.REQUEST_DEVICE_INFO, jk.REQUEST_CELL_INFO[4]: jk.REQUEST_CELL_INFO,
             jk.REQUEST_LOGBOOK[4]: jk.REQUEST_LOGBOOK}
    return named.get(cmd.register) or jk.command(cmd.register, cmd.value)


@pytest.mark.parametrize("case", of_kind("command"), ids=case_id)
def test_command_builders_match_the_captured_commands(case: dict[str, Any]) -> None:
    frame = bytes.fromhex(case["frame"])
    assert len(frame) == case["expected"]["length"]
    assert frame[-1] == case["expected"]["crc"]
    assert rebuild(frame) == frame
    register = int(re.findall(r"0x([0-9A-F]{2})", case["frame_type"])[0], 16)
    assert frame[4] == register


def test_switch_commands_per_layout() -> None:
    assert jk.switch_command("charge", True).hex() == "aa5590eb" "1d04" "01000000000000000000000000" "9c"
    assert jk.switch_command("discharge", False)[4:10] == bytes((0x1E, 4, 0, 0, 0, 0))
    codec = JkCodec(FrameLayout.JK04)
    assert codec.switch_command("balance", False)[4:7] == bytes((0x6C, 1, 0))
    with pytest.raises(UnsupportedError):
        codec.switch_command("charge", True)
    with pytest.raises(UnsupportedError):
        jk.switch_command("heater", True)


def test_parse_command_refuses_malformed_writes() -> None:
    good = jk.REQUEST_CELL_INFO
    assert jk.parse_command(good) == jk.Command(0x96, b"")
    too_long_value = jk_framing.HOST_HEADER + bytes((0x96, 14)) + bytes(13)
    too_long_value += bytes((sum(too_long_value) & 0xFF,))
    for bad in (b"", good[:-1], good[:-1] + b"\x00", b"\x55" + good[1:], good + b"\x00", too_long_value):
        assert jk.parse_command(bad) is None


# --- assembler: malformed input, resync, chunking ----------------------------------------------------

CELLS_24S = only_frame(VECTORS[1])
CELLS_32S = only_frame(VECTORS[16])
INFO_32S = only_frame(VECTORS[15])


def with_crc(body: bytes) -> bytes:
    return body[:299] + bytes((sum(body[:299]) & 0xFF,))


BAD_INPUT = {
    "empty": b"",
    "junk": b"\x01\x02\x03 hello \xff" * 5,
    "wrong_header": b"\x55\xaa\xeb\x91" + CELLS_24S[4:],
    "bad_checksum": CELLS_24S[:-1] + bytes(((CELLS_24S[-1] + 1) & 0xFF,)),
    "truncated": CELLS_24S[:200],
    "spliced_chunk_lost": CELLS_24S[:128] + CELLS_32S[:128],
    "wrong_type_valid_checksum": with_crc(CELLS_24S[:4] + b"\x04" + CELLS_24S[5:]),
    "ack_with_bad_checksum": jk.ACK[:-1] + b"\x00",
    "truncated_ack": jk.ACK[:10],
    "header_only": jk_framing.FRAME_HEADER,
}


@pytest.mark.parametrize("raw", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_malformed_input_is_dropped_and_the_next_frame_accepted(raw: bytes) -> None:
    asm = JkAssembler()
    assert asm.feed(raw) == []
    assert asm.feed(CELLS_32S) == [CELLS_32S]  # resync without a reset
    assert asm.dropped >= (1 if raw else 0) and asm.pending == 0


def test_noise_between_frames_is_stripped_without_counting_errors() -> None:
    stream = (b"AT\r\n" + CELLS_24S + jk.ACK + b"AT\r\n" + jk.REQUEST_CELL_INFO + INFO_32S + jk.ACK + CELLS_32S
              + b"AT\r\n")
    asm = JkAssembler()
    assert assemble([stream[i:i + 7] for i in range(0, len(stream), 7)], asm) == [CELLS_24S, INFO_32S, CELLS_32S]
    assert (asm.dropped, asm.acks, asm.filtered, asm.pending) == (0, 2, 6, 0)


def test_header_straddling_two_chunks_is_kept() -> None:
    asm = JkAssembler()
    for cut in (1, 2, 3):
        assert asm.feed(b"junk" + CELLS_32S[:cut]) == []
        assert asm.pending == cut
        assert asm.feed(CELLS_32S[cut:]) == [CELLS_32S]


def test_window_with_a_second_header_is_rejected_even_if_its_checksum_passes() -> None:
    # A lost chunk: frame A's first 128 bytes, then frame B. Byte 127 is chosen so that the
    # 300-byte window from A's header passes the checksum (the 1-in-256 coincidence on the radio).
    head = bytearray(CELLS_24S[:128])
    head[127] = (CELLS_32S[171] - sum(head[:127]) - sum(CELLS_32S[:171])) & 0xFF
    window = bytes(head) + CELLS_32S[:172]
    assert sum(window[:299]) & 0xFF == window[299]
    asm = JkAssembler()
    assert asm.feed(bytes(head) + CELLS_32S) == [CELLS_32S]
    assert asm.dropped == 1 and "second frame header" in str(asm.last_error)


@fuzz_settings
@given(st.lists(st.sampled_from([CELLS_24S, CELLS_32S, INFO_32S, jk.ACK, b"AT\r\n", jk.REQUEST_DEVICE_INFO]),
                max_size=8), st.lists(st.integers(1, 400), min_size=1, max_size=20))
def test_arbitrary_split_points_give_the_same_frames(parts: list[bytes], sizes: list[int]) -> None:
    stream = b"".join(parts)
    chunks, pos, k = [], 0, 0
    while pos < len(stream):
        chunks.append(stream[pos:pos + sizes[k % len(sizes)]])
        pos += sizes[k % len(sizes)]
        k += 1
    asm = JkAssembler()
    assert assemble(chunks, asm) == [p for p in parts if len(p) == 300]
    assert asm.dropped == 0 and asm.pending == 0


# --- passcodes ----------------------------------------------------------------------------------------

SECRET_INFO = jk.encode_device_info(
    DeviceInfo(model="JK_B2A8S20P", hw_version="11.XW", sw_version="11.26", serial="4040Z1", name="garage"),
    passcode="S3cr3tPass", setup_passcode="Setup9876",
)


def test_passcodes_never_reach_the_reading() -> None:
    r = JkCodec().decode(SECRET_INFO)
    assert r["device_info"].serial == "4040Z1"
    assert "S3cr3t" not in repr(r) and "9876" not in repr(r)
    jk04_info = only_frame(VECTORS[7])
    assert jk04_info[62:66] == b"1234"  # this capture has a passcode
    assert "1234" not in repr(JkCodec().decode(jk04_info))


def test_rejected_device_info_frames_are_redacted_in_errors() -> None:
    corrupt = SECRET_INFO[:-1] + bytes(((SECRET_INFO[-1] + 1) & 0xFF,))
    asm = JkAssembler()
    assert asm.feed(corrupt) == []
    assert asm.last_error is not None
    assert b"S3cr3t" not in asm.last_error.raw and b"9876" not in asm.last_error.raw
    assert b"S3cr3t".hex() not in str(asm.last_error)
    with pytest.raises(FrameError) as err:
        JkCodec().decode(corrupt)
    assert b"S3cr3t" not in err.value.raw and b"Setup9876" not in err.value.raw
    lost_start = corrupt[100:]  # a device-info frame whose first chunk was lost: junk, not logged
    asm.feed(lost_start + CELLS_32S)
    assert asm.last_error is not None and b"9876" not in asm.last_error.raw
    assert jk.redact(CELLS_32S) == CELLS_32S


def test_long_serial_only_from_firmware_that_writes_one() -> None:
    old = device_info_decoder.encode({"sw_version": "10.07", "serial": "20418030281", "short_passcode": "4321"})
    assert device_info_decoder.decode(old)["device_info"].serial == "20418030281"
    new = device_info_decoder.encode({"sw_version": "19.27", "serial": "51020BO49000422"})
    assert device_info_decoder.decode(new)["device_info"].serial == "51020BO49000422"


# --- layout choice ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("hw", "sw", "layout"), [
    ("10.XG", "10.07", FrameLayout.JK02_24S), ("6.X", "6.10", FrameLayout.JK02_24S), ("11.XA", "11.48", FrameLayout.JK02_32S),
    ("19A", "19.27", FrameLayout.JK02_32S), ("3.0", "3.3.0", FrameLayout.JK04), ("8.X", "8.0.3M", FrameLayout.JK04),
    ("8.X", "8.20", FrameLayout.JK02_24S), ("", "", None), ("abc", "x.y", None),
])
def test_layout_from_versions(hw: str, sw: str, layout: FrameLayout | None) -> None:
    assert device_info_decoder.layout_from_versions(hw, sw) is layout


def test_forced_layout_wins_but_a_disagreeing_device_info_is_reported() -> None:
    codec = JkCodec(jk.TYPE_LAYOUTS["jk_32s"])
    codec.decode(only_frame(VECTORS[0]))  # hw 10.XG sw 10.07: 24S
    assert codec.layout is FrameLayout.JK02_32S and codec.detected_layout is FrameLayout.JK02_24S
    assert codec.layout_conflict is not None and "10.07" in codec.layout_conflict
    assert "jk02_24s" in codec.layout_conflict
    with pytest.raises(FrameError, match="implausible"):
        codec.decode(CELLS_24S)  # the forced layout is used, and the plausibility checks catch it
    agreeing = JkCodec(jk.TYPE_LAYOUTS["jk_24s"])
    agreeing.decode(only_frame(VECTORS[0]))
    assert agreeing.layout_conflict is None
    assert jk.TYPE_LAYOUTS["jk"] is None and jk.TYPE_LAYOUTS["jk04"] is FrameLayout.JK04


def test_settings_before_device_info_are_held_then_merged() -> None:
    (settings_case,) = (c for c in of_kind("settings") if c["device"].startswith("JK-B2A24S20P hw 10.X-W"))
    codec = JkCodec()
    assert codec.decode(only_frame(settings_case)) == {}
    r = codec.decode(only_frame(VECTORS[29]))
    assert r["capacity"] == 275.0 and r["switches"] == {"balance": True}
    assert r["device_info"].model == "JK-B2A24S20P"
    assert "capacity" not in codec.decode(only_frame(VECTORS[31]))  # user capacity known now


def test_user_capacity_wins_over_the_aged_capacity_once_settings_are_seen() -> None:
    settings, status = (only_frame(c) for c in VECTORS if c["device"] == "JK_B2A8S20P fw 11.50 (4 cells)")
    codec = JkCodec(FrameLayout.JK02_32S)
    first = codec.decode(status)  # no settings yet: the aged capacity stands in
    assert first["capacity"] == first["extra"]["aged_capacity"] == 251.235
    merged = merge_readings(first, codec.decode(settings), codec.decode(status))
    assert merged["capacity"] == 320.0 and merged["extra"]["aged_capacity"] == 251.235


def test_newer_32s_firmware_reports_the_extra_probes() -> None:
    (case,) = (c for c in of_kind("cell_info") if c["device"].startswith("JK_PB2A16S15P") and
               c["source"].endswith("CELL_INFO_JK02_32S_V11"))
    frame = only_frame(case)
    assert session_codec(case).decode(frame)["temperatures"] == (17.7, 17.7, 17.9, 18.0)
    assert JkCodec(FrameLayout.JK02_32S).decode(frame)["temperatures"] == (17.7, 17.7)  # firmware unknown


# --- plausibility ----------------------------------------------------------------------------------

CELLS16 = [3.3] * 16
GOOD_VALUES: dict[str, float] = {"current": 5.0, "soc": 50, "charge": 50.0, "aged_capacity": 100.0, "t1": 20.0,
                                 "t2": 21.0, "mos_temperature": 25.0, "soh": 99, "uptime": 1000}
IMPLAUSIBLE: dict[str, tuple[dict[str, float], list[float]]] = {
    "pack_voltage_far_from_cells": ({"voltage": 1216000.0}, CELLS16),
    "pack_voltage_a_bit_off": ({"voltage": 49.0}, CELLS16),
    "cell_above_5v": ({}, [*CELLS16[:-1], 5.5]),
    "soc_above_100": ({"soc": 101}, CELLS16),
    "soh_above_100": ({"soh": 150}, CELLS16),
    "temperature_too_hot": ({"t2": 151.0}, CELLS16),
    "temperature_too_cold": ({"t1": -51.0}, CELLS16),
    "mos_temperature_too_hot": ({"mos_temperature": 300.0}, CELLS16),
    "current_absurd": ({"current": -30000.0}, CELLS16),
    "no_cells": ({"voltage": 0.0}, []),
}


@pytest.mark.parametrize("layout", [FrameLayout.JK02_24S, FrameLayout.JK02_32S])
@pytest.mark.parametrize(("values", "cells"), IMPLAUSIBLE.values(), ids=IMPLAUSIBLE.keys())
def test_implausible_cell_info_never_yields_a_reading(layout: FrameLayout, values: dict[str, float],
                                                      cells: list[float]) -> None:
    if layout is FrameLayout.JK02_24S and "soh" in values:
        values = {"soc": 101}  # the 24S SoH byte is not used, so not checked
    good = jk.encode_cell_info(layout, GOOD_VALUES, CELLS16)
    assert JkCodec(layout).decode(good)["voltage"] == pytest.approx(52.8)
    frame = jk.encode_cell_info(layout, {**GOOD_VALUES, **values}, cells)
    for codec in (JkCodec(layout), JkCodec()):
        with pytest.raises(FrameError):
            codec.decode(frame)


def test_cell_mask_beyond_the_slots_is_implausible() -> None:
    frame = jk.encode_cell_info(FrameLayout.JK02_24S, {**GOOD_VALUES, "cell_mask": 0x1FFFFFF}, CELLS16)
    with pytest.raises(FrameError, match="slots"):
        JkCodec(FrameLayout.JK02_24S).decode(frame)


@pytest.mark.parametrize("cells", [[3.3, 1e-30, 3.3], [3.3, 6.0], [0.0, 0.0], [3.3, math.nan]])
def test_implausible_jk04_cell_info(cells: list[float]) -> None:
    with pytest.raises(FrameError):
        JkCodec(FrameLayout.JK04).decode(jk.encode_cell_info(FrameLayout.JK04, {}, cells))


def test_jk04_average_must_match_the_cells() -> None:
    frame = jk.encode_cell_info(FrameLayout.JK04, {"cell_average": 2.0}, [3.3] * 4)
    with pytest.raises(FrameError, match="average"):
        JkCodec(FrameLayout.JK04).decode(frame)


def test_absent_temperature_sensors_are_not_reported() -> None:
    values = {**GOOD_VALUES, "temperature_presence": 0b101}  # 24S: T1 and MOS, no T2
    r = JkCodec(FrameLayout.JK02_24S).decode(jk.encode_cell_info(FrameLayout.JK02_24S, values, CELLS16))
    assert r["temperatures"] == (20.0,) and r["mos_temperature"] == 25.0
    values = {**GOOD_VALUES, "t1": -200.0, "t2": 999.0, "temperature_presence": 0b001}  # 32S: MOS only
    r = JkCodec(FrameLayout.JK02_32S).decode(jk.encode_cell_info(FrameLayout.JK02_32S, values, CELLS16))
    assert "temperatures" not in r and r["mos_temperature"] == 25.0
    values = {**GOOD_VALUES, "t2": -200.0}  # fitted flag set, but the "no sensor" value
    r = JkCodec(FrameLayout.JK02_24S).decode(jk.encode_cell_info(FrameLayout.JK02_24S, values, CELLS16))
    assert r["temperatures"] == (20.0,)


def test_error_bits_become_alarm_names() -> None:
    errors = 1 << 1 | 1 << 4 | 1 << 13 | 1 << 19 | 1 << 25 | 1 << 31
    r = JkCodec(FrameLayout.JK02_32S).decode(
        jk.encode_cell_info(FrameLayout.JK02_32S, {**GOOD_VALUES, "errors": errors}, CELLS16))
    assert r["alarms"] == ("mos_overtemperature", "discharge_overcurrent", "discharge_ocp2", "bit31")
    assert r["extra"]["battery_full"] is True and r["extra"]["error_bitmask"] == errors
    r24 = JkCodec(FrameLayout.JK02_24S).decode(
        jk.encode_cell_info(FrameLayout.JK02_24S, {**GOOD_VALUES, "errors": 1 << 11 | 1 << 15}, CELLS16))
    assert r24["alarms"] == ("cell_undervoltage", "discharge_overtemperature")


# --- fuzzing ------------------------------------------------------------------------------------------


def assert_plausible(r: Reading) -> None:
    """What every reading the codec returns must satisfy."""
    cells = r.get("cell_voltages", ())
    assert all(0.0 <= c <= 5.0 for c in cells)
    if "voltage" in r:
        assert abs(r["voltage"] - sum(cells)) <= max(1.0, 0.05 * sum(cells))
    assert r.get("soc", 0) <= 100 and r.get("soh", 0) <= 100
    for t in (*r.get("temperatures", ()), r.get("mos_temperature", 0.0)):
        assert -50.0 <= t <= 150.0
    sample(r)


def decode_or_frame_error(codec: JkCodec, frame: bytes) -> None:
    try:
        r = codec.decode(frame)
    except FrameError:
        return
    assert_plausible(r)


@fuzz_settings
@given(st.lists(st.one_of(st.binary(max_size=320), st.sampled_from([CELLS_24S, CELLS_32S, INFO_32S, jk.ACK])),
                max_size=10))
def test_fuzz_assembler_and_codec_never_raise_other_errors(chunks: list[bytes]) -> None:
    asm, codec = JkAssembler(), JkCodec()
    for c in chunks:
        for frame in asm.feed(c):
            decode_or_frame_error(codec, frame)
        assert asm.pending < 300


@fuzz_settings
@given(st.sampled_from([1, 2, 3, 5]), st.binary(min_size=294, max_size=294),
       st.sampled_from([None, *FrameLayout]))
def test_fuzz_valid_envelopes_with_random_bodies(kind: int, body: bytes, layout: FrameLayout | None) -> None:
    frame = jk_framing.response_frame(kind, bytes(6) + body)
    assert JkAssembler(types=frozenset({1, 2, 3, 5})).feed(frame) == [frame]
    decode_or_frame_error(JkCodec(layout), frame)


@fuzz_settings
@given(st.sampled_from([CELLS_24S, CELLS_32S, only_frame(VECTORS[8]), only_frame(VECTORS[25])]),
       st.lists(st.tuples(st.integers(6, 298), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, 299), st.sampled_from([CELLS_24S, CELLS_32S, INFO_32S]))
def test_fuzz_corrupted_and_spliced_real_frames_with_passing_checksums(
        frame: bytes, edits: list[tuple[int, int]], cut: int, other: bytes) -> None:
    spliced = bytearray(frame[:cut] + other[cut:])
    spliced[4] = frame[4]
    for pos, value in edits:
        spliced[pos] = value
    decode_or_frame_error(JkCodec(), with_crc(bytes(spliced)))
    decode_or_frame_error(JkCodec(FrameLayout.JK02_24S), with_crc(bytes(spliced)))


# --- round trips (device side) ----------------------------------------------------------------------

milli = st.integers(0, 4_000_000).map(lambda x: x / 1000)
cell_v = st.integers(1, 5000).map(lambda x: x / 1000)
temp = st.integers(-500, 1500).map(lambda x: x / 10)


@fuzz_settings
@given(layout=st.sampled_from([FrameLayout.JK02_24S, FrameLayout.JK02_32S]), data=st.data())
def test_jk02_cell_info_round_trip(layout: FrameLayout, data: st.DataObject) -> None:
    cells = data.draw(st.lists(cell_v, min_size=1, max_size=jk_jk02.SLOTS[layout]))
    ohms = data.draw(st.lists(st.integers(0, 1000).map(lambda x: x / 1000), min_size=len(cells),
                              max_size=len(cells)))
    temps = data.draw(st.fixed_dictionaries({}, optional={"t1": temp, "t2": temp, "mos_temperature": temp}))
    values = {
        "current": data.draw(st.integers(-2_000_000, 2_000_000)) / 1000, "soc": data.draw(st.integers(0, 100)),
        "charge": data.draw(milli), "aged_capacity": data.draw(milli), "cycles": data.draw(st.integers(0, 10**6)),
        "cycle_capacity": data.draw(milli), "soh": data.draw(st.integers(0, 100)),
        "uptime": data.draw(st.integers(0, 2**32 - 1)), "balance_current": data.draw(st.integers(-5000, 5000)) / 1000,
        "balance_action": data.draw(st.integers(0, 2)), "charge_fet": data.draw(st.integers(0, 1)),
        "discharge_fet": data.draw(st.integers(0, 1)), "errors": data.draw(st.integers(0, 0xFFFF)),
        "heating": data.draw(st.integers(0, 1)), **temps,
    }
    r = JkCodec(layout).decode(jk.encode_cell_info(layout, values, cells, ohms))
    assert r["cell_voltages"] == tuple(cells) and r["voltage"] == round(sum(cells), 3)
    for key in ("current", "soc", "charge", "cycles", "uptime", "balance_current"):
        assert r[key] == values[key]  # type: ignore[literal-required]
    assert r["switches"] == {"charge": bool(values["charge_fet"]), "discharge": bool(values["discharge_fet"])}
    assert r["extra"]["aged_capacity"] == values["aged_capacity"]
    assert r["extra"]["error_bitmask"] == values["errors"]
    assert r.get("soh") == (values["soh"] if layout is FrameLayout.JK02_32S else None)
    assert [r["extra"][f"cell_resistance_{i}"] for i in range(1, len(cells) + 1)] == ohms
    assert r.get("temperatures", ()) == tuple(temps[k] for k in ("t1", "t2") if k in temps)
    assert r.get("mos_temperature") == temps.get("mos_temperature")


@fuzz_settings
@given(st.lists(st.integers(1000, 45000).map(lambda x: x / 10000), min_size=1, max_size=24),
       st.integers(-500, 500).map(lambda x: x / 100), st.integers(0, 2), st.integers(0, 2**32 - 1))
def test_jk04_cell_info_round_trip(cells: list[float], balance: float, action: int, uptime: int) -> None:
    values = {"balance_current": balance, "balance_action": action, "uptime": uptime}
    r = JkCodec(FrameLayout.JK04).decode(jk.encode_cell_info(FrameLayout.JK04, values, cells, cells))
    assert r["cell_voltages"] == tuple(cells) and r["balance_current"] == balance and r["uptime"] == uptime
    assert r["extra"]["balancing"] is (action != 0) and r["extra"]["cell_resistance_1"] == cells[0]


@fuzz_settings
@given(st.integers(1, 32), st.integers(0, 1), st.integers(0, 1), st.integers(0, 1), milli, milli, milli,
       st.integers(-400, 1000).map(lambda x: x / 10))
def test_jk02_settings_round_trip(cells: int, charge: int, discharge: int, balance: int, capacity: float,
                                  ovp: float, current: float, utp: float) -> None:
    values = {"cell_count_setting": cells, "charge_enabled": charge, "discharge_enabled": discharge,
              "balance_enabled": balance, "capacity": capacity, "cell_ovp": ovp, "max_charge_current": current,
              "charge_utp": utp}
    r = JkCodec(FrameLayout.JK02_32S).decode(jk.encode_settings(FrameLayout.JK02_32S, values))
    assert r["switches"] == {"balance": bool(balance)}
    assert r.get("capacity") == (capacity or None)
    assert (r["extra"]["charge_enabled"], r["extra"]["discharge_enabled"]) == (bool(charge), bool(discharge))
    assert (r["extra"]["cell_count_setting"], r["extra"]["cell_ovp"]) == (cells, ovp)
    assert (r["extra"]["max_charge_current"], r["extra"]["charge_utp"]) == (current, utp)


@fuzz_settings
@given(st.integers(0, 24), st.integers(0, 1), st.integers(0, 50000).map(lambda x: x / 10000),
       st.integers(0, 50000).map(lambda x: x / 10000))
def test_jk04_settings_round_trip(cells: int, balance: int, start: float, current: float) -> None:
    values = {"cell_count_setting": cells, "balance_enabled": balance, "balance_start_voltage": start,
              "max_balance_current": current}
    r = JkCodec(FrameLayout.JK04).decode(jk.encode_settings(FrameLayout.JK04, values))
    assert r["switches"] == {"balance": bool(balance)}
    assert r["extra"]["cell_count_setting"] == cells
    assert (r["extra"]["balance_start_voltage"], r["extra"]["max_balance_current"]) == (start, current)


text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)


@fuzz_settings
@given(text.map(lambda s: s[:16]), text.map(lambda s: s[:8]), st.integers(0, 30), st.integers(0, 99),
       text.map(lambda s: s[:11]), text.map(lambda s: s[:16]), st.integers(0, 2**32 - 1))
def test_device_info_round_trip(model: str, hw: str, major: int, minor: int, serial: str, name: str,
                                uptime: int) -> None:
    info = DeviceInfo(manufacturer="JK", model=model, hw_version=hw, sw_version=f"{major}.{minor:02d}",
                      serial=serial, name=name)
    r = JkCodec().decode(jk.encode_device_info(info, uptime=uptime, passcode="9999", setup_passcode="8888"))
    assert r["device_info"] == info and r["uptime"] == uptime


@fuzz_settings
@given(st.lists(st.builds(jk.LogEntry, st.integers(0, 2**32 - 1), st.integers(0, 255)),
                max_size=jk.LOG_MAX_ENTRIES))
def test_logbook_round_trip(entries: list[jk.LogEntry]) -> None:
    assert jk.decode_logbook(jk.encode_logbook(tuple(entries))) == tuple(entries)


@fuzz_settings
@given(st.integers(0, 255), st.binary(max_size=13))
def test_command_round_trip(register: int, value: bytes) -> None:
    frame = jk.command(register, value)
    assert len(frame) == 20 and jk.parse_command(frame) == jk.Command(register, value)
    asm = JkAssembler()
    assert asm.feed(frame + CELLS_24S) == [CELLS_24S]  # an echo of it is stripped
    assert asm.filtered == 1


# --- advertisement ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mfr", "services", "matches"), [
    ({0x0B65: bytes.fromhex("88a0c847800fd5c5")}, [jk.SERVICE_UUID], True),
    ({0x4B4A: bytes.fromhex("0001")}, [jk.SERVICE_UUID.upper()], True),
    ({0x0B65: bytes.fromhex("0000c847800fd5c5")}, [jk.SERVICE_UUID], False),
    ({0x0B65: bytes.fromhex("88a0c847800fd5c5")}, [], False),
    ({}, [jk.SERVICE_UUID], False),
])
def test_matchers(mfr: dict[int, bytes], services: list[str], matches: bool) -> None:
    found = any(m.matches(address="C8:47:8C:00:00:01", name="JK_B2A8S20P", service_uuids=services,
                          manufacturer_data=mfr) for m in jk.MATCHERS)
    assert found is matches


def test_frame_layout_helpers_agree_with_the_captures() -> None:
    # The 32S block is 16 bytes longer for the cells, 32 for everything after: pin a few offsets.
    t24, t32 = jk_jk02.CELL_INFO[FrameLayout.JK02_24S], jk_jk02.CELL_INFO[FrameLayout.JK02_32S]
    assert (t24["voltage"].offset, t32["voltage"].offset) == (118, 150)
    assert (t24["cell_mask"].offset, t32["cell_mask"].offset) == (54, 70)
    assert (t24["errors"].offset, t32["errors"].offset) == (136, 166)
    assert jk_jk02.SETTINGS["capacity"].offset == 130 and jk_jk04.SETTINGS["balance_enabled"].offset == 114
    assert struct.unpack_from("<I", CELLS_32S, 150)[0] / 1000 == JkCodec(FrameLayout.JK02_32S).decode(CELLS_32S)["voltage"]

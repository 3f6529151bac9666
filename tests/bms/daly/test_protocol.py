"""Daly protocols (Modbus D2, legacy A5, Modbus 0x81): real captures, command frames, probing,
malformed frames, legacy multi-frame assembly and current sign, fuzzing, encode/decode round trips."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.bms.daly.protocol import codec as daly
from bmslib.bms.daly.protocol import legacy as daly_legacy
from bmslib.bms.daly.protocol import modbus as daly_modbus
from bmslib.bms.daly.protocol import p81 as daly_p81
from bmslib.bms.daly.protocol import rtu as daly_rtu
from bmslib.bms.daly.protocol.codec import DalyCodec, DalyProtocol
from bmslib.errors import FrameError, UnsupportedError
from bmslib.model import Reading, merge_readings
from tests.helpers import case_id, chunks_of, fuzz_settings, load_vectors

VECTORS = load_vectors("daly")
COMMANDS = [c for c in VECTORS if c["kind"].startswith("command")]
RESPONSES = [c for c in VECTORS if not c["kind"].startswith("command")]
PROTOCOL_OF = {"Daly v2 / Modbus D2": DalyProtocol.MODBUS, "Daly legacy A5": DalyProtocol.LEGACY,
               "Daly 0x81 variant": DalyProtocol.P81}
STATE = {0: "idle", 1: "charging", 2: "discharging"}  # pinned here, not imported

# Requests of the 0x81 variant as captured from an ESS-DL-BMS (esphome-daly-bms
# docs/pdus/ess-dl-bms-41_260321_0323.txt): RT1 and RT2 reads.
P81_RT1_CAPTURED = bytes.fromhex("8103000000405bfa")
P81_RT2_CAPTURED = bytes.fromhex("81030041003e8bce")


def vector(frame_type: str) -> bytes:
    (case,) = [c for c in VECTORS if c["frame_type"] == frame_type]
    return bytes.fromhex(case["frame"])


def notifications(frame: bytes, size: int = 20) -> list[bytes]:
    return [frame[i:i + size] for i in range(0, len(frame), size)]


def decode_all(codec: DalyCodec, chunks: list[bytes]) -> list[Reading]:
    asm = codec.assembler()
    return [codec.decode(f) for c in chunks for f in asm.feed(c)]


# --- captured replies ------------------------------------------------------------------------------


def _discharge(r: Reading, e: bool) -> None:
    if "discharge" in r.get("switches", {}):
        assert r["switches"]["discharge"] is e
    else:  # legacy: the byte is reported, not trusted as the switch state
        assert r["extra"]["discharge_mos_reported"] is e


def _sensors(r: Reading, e: int) -> None:
    if "temperatures" in r:
        assert len(r["temperatures"]) == e
    else:
        assert r["extra"]["temperature_sensor_count"] == e


def _problem_code(r: Reading, e: int) -> None:
    assert r["extra"]["alarm_bitmask"] == e
    assert (r["alarms"] == ()) is (e == 0)


CHECKS: dict[str, Callable[[Reading, Any], None]] = {
    "voltage": lambda r, e: pytest.approx(e) == r["voltage"],
    "current": lambda r, e: pytest.approx(-e) == r["current"],  # vectors charge-positive, model not
    "soc": lambda r, e: pytest.approx(e) == r["soc"],
    "cycles": lambda r, e: r["cycles"] == e,
    "remaining_ah": lambda r, e: pytest.approx(e) == r["charge"],
    "remaining_mah": lambda r, e: pytest.approx(e / 1000) == r["charge"],
    "cell_voltages": lambda r, e: pytest.approx(e) == list(r["cell_voltages"]),
    "cell_count": lambda r, e: r["extra"]["cell_count"] == e,
    "temp_sensors": _sensors,
    "temperatures": lambda r, e: pytest.approx(e) == list(r["temperatures"]),
    "delta_voltage": lambda r, e: pytest.approx(e) == r["extra"]["delta_cell_voltage"],
    "balancer": lambda r, e: r["extra"]["balancing"] is e,
    "balancing": lambda r, e: r["extra"]["balancing"] is e,
    "charge_mosfet": lambda r, e: r["switches"]["charge"] is e,
    "discharge_mosfet": _discharge,
    "precharge_mosfet": lambda r, e: r["extra"]["precharge_mos"] is e,
    "problem_code": _problem_code,
    "mos_temperature": lambda r, e: pytest.approx(e) == r["mos_temperature"],
    "mosfet_temperature": lambda r, e: pytest.approx(e) == r["mos_temperature"],
    "board_temperature": lambda r, e: pytest.approx(e) == r["extra"]["board_temperature"],
    "sw_version": lambda r, e: r["device_info"].sw_version == e,
    "hw_version": lambda r, e: r["device_info"].hw_version == e,
    "status": lambda r, e: r["extra"]["state"] == e.lower(),
    "state": lambda r, e: r["extra"]["state"] == STATE[e],
    "bms_life": lambda r, e: r["extra"]["bms_life"] == e,
    "charger_present": lambda r, e: r["extra"]["charger_present"] is e,
    "load_present": lambda r, e: r["extra"]["load_present"] is e,
    "dio_bits": lambda r, e: r["extra"]["dio_bits"] == e,
}


def check_expected(r: Reading, expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if m := re.fullmatch(r"cell_(\d+)_v", key):
            assert r["cell_voltages"][int(m[1]) - 1] == pytest.approx(value)
            continue
        assert key in CHECKS, f"expected key {key!r} is not checked by any test"
        result = CHECKS[key](r, value)
        assert result is None or result, f"{key}: expected {value!r}"


@pytest.mark.parametrize("case", RESPONSES, ids=case_id)
def test_vector_replies_decode_to_expected_values(case: dict[str, Any]) -> None:
    protocol = PROTOCOL_OF[case["protocol"]]
    frame = bytes.fromhex(case["frame"])
    assert daly.classify_reply(frame) is protocol
    (reading,) = decode_all(DalyCodec(protocol), notifications(frame))  # as 20-byte BLE notifications
    check_expected(reading, case["expected"])


@pytest.mark.parametrize("case", RESPONSES, ids=case_id)
def test_vector_replies_survive_other_chunkings(case: dict[str, Any]) -> None:
    codec = DalyCodec(PROTOCOL_OF[case["protocol"]])
    whole = decode_all(codec, chunks_of(case))
    for size in (1, 7, 13, 64):
        assert decode_all(DalyCodec(codec.protocol), notifications(bytes.fromhex(case["frame"]), size)) == whole


def test_legacy_payload_field_matches_frame() -> None:
    for case in RESPONSES:
        if "payload" in case:
            assert bytes.fromhex(case["frame"])[4:12].hex() == case["payload"]


def test_modbus_status_and_version_merge_into_one_reading() -> None:
    codec = DalyCodec(DalyProtocol.MODBUS)
    merged = merge_readings(*decode_all(codec, [vector("read 62 regs @0x0000 response"),
                                                vector("read 9 regs @0x003E response"),
                                                vector("read 32 regs @0x00A9 response")]))
    assert merged["mos_temperature"] == 38.0 and merged["voltage"] == 14.0
    assert merged["device_info"].manufacturer == "Daly" and merged["device_info"].sw_version == "T00K_321042_11"


def test_p81_blocks_merge_and_power_follows_discharge_sign() -> None:
    codec = DalyCodec(DalyProtocol.P81)
    merged = merge_readings(*decode_all(codec, [vector("P81_CELLS_FRAME"), vector("P81_STATUS_FRAME")]))
    assert merged["current"] == pytest.approx(8.9)  # discharging -> positive in the model
    assert merged["extra"]["state"] == "discharging"


# --- command frames --------------------------------------------------------------------------------

BUILDERS: dict[str, Callable[[], bytes]] = {
    **{f"request 0x{c:02x}": (lambda c=c: daly_legacy.request(c)) for c in range(0x90, 0x97)},
    "charge MOS on": lambda: daly_legacy.switch_request("charge", True),
    "charge MOS off": lambda: daly_legacy.switch_request("charge", False),
    "discharge MOS on": lambda: daly_legacy.switch_request("discharge", True),
    "discharge MOS off": lambda: daly_legacy.switch_request("discharge", False),
    "read status 62 regs": lambda: daly_modbus.status_request(62),
    "read status 80 regs": lambda: daly_modbus.status_request(80),
    "read MOS temp 9 regs @0x3E": lambda: daly_modbus.MOS_BLOCK_REQUEST,
    "read version 32 regs @0xA9": lambda: daly_modbus.VERSION_REQUEST,
    "read settings 41 regs @0x80": lambda: daly_modbus.SETTINGS_REQUEST,
    "read password 3 regs @0xC9": lambda: daly_modbus.PASSWORD_REQUEST,
    "charge MOS on (write 0x00A5=1)": lambda: daly_modbus.switch_request("charge", True),
    "charge MOS off (0x00A5=0)": lambda: daly_modbus.switch_request("charge", False),
    "discharge MOS on (0x00A6=1)": lambda: daly_modbus.switch_request("discharge", True),
    "discharge MOS off (0x00A6=0)": lambda: daly_modbus.switch_request("discharge", False),
}


@pytest.mark.parametrize("case", COMMANDS, ids=case_id)
def test_builders_match_command_frames(case: dict[str, Any]) -> None:
    frame = bytes.fromhex(case["frame"])
    assert BUILDERS[case["frame_type"]]() == frame
    exp = case["expected"]
    if "checksum" in exp:
        assert frame[-1] == exp["checksum"]
        assert daly_legacy.parse_request(frame) == (frame[2], frame[4:12])
    else:
        assert frame[-2:].hex() == exp["crc_le"]
        req = daly_modbus.parse_request(frame)
        assert req is not None and (req.register, req.value) == tuple(int.from_bytes(frame[i:i + 2]) for i in (2, 4))


def test_codec_switch_commands() -> None:
    modbus, legacy = DalyCodec(DalyProtocol.MODBUS), DalyCodec(DalyProtocol.LEGACY)
    assert modbus.switch_request("discharge", False) == bytes.fromhex("d20600a600007a4a")
    assert legacy.switch_request("charge", True) == bytes.fromhex("a580da08010000000000000008")
    for codec in (modbus, legacy):
        with pytest.raises(UnsupportedError, match="balance"):
            codec.switch_request("balance", True)
    with pytest.raises(UnsupportedError, match="0x81"):
        DalyCodec(DalyProtocol.P81).switch_request("charge", True)


def test_write_echo_confirms_only_the_same_write() -> None:
    codec = DalyCodec(DalyProtocol.MODBUS)
    on = codec.switch_request("charge", True)
    assert codec.switch_confirmed(on, on) is True
    assert codec.switch_confirmed(on, codec.switch_request("charge", False)) is False
    assert codec.switch_confirmed(on, on[:-1]) is False
    assert codec.switch_confirmed(daly_modbus.VERSION_REQUEST, daly_modbus.VERSION_REQUEST) is False  # not a write
    assert DalyCodec(DalyProtocol.LEGACY).switch_confirmed(b"", b"") is None
    # the echo is assembled like any reply and decodes to nothing
    (echo,) = codec.assembler().feed(on)
    assert codec.decode(echo) == {}


def test_modbus_exception_reply_raises_frame_error() -> None:
    frame = daly_rtu.exception_response(daly_rtu.WRITE, 2, address=daly_modbus.ADDRESS)
    (got,) = daly_modbus.assembler().feed(frame)
    with pytest.raises(FrameError, match="exception 0x02"):
        daly_modbus.decode(got)
    assert daly.classify_reply(frame) is DalyProtocol.MODBUS


# --- probing ----------------------------------------------------------------------------------------


def test_probes_are_the_documented_requests() -> None:
    assert daly.PROBES[DalyProtocol.MODBUS] == vector("read status 62 regs")
    assert daly.PROBES[DalyProtocol.LEGACY] == vector("request 0x90")
    assert daly.PROBES[DalyProtocol.P81] == P81_RT1_CAPTURED
    assert daly_p81.RT2_REQUEST == P81_RT2_CAPTURED
    rt2 = daly_p81.parse_request(P81_RT2_CAPTURED)
    assert rt2 is not None and (rt2.register, rt2.value) == (0x41, 62)
    assert daly_p81.parse_request(vector("read status 62 regs")) is None
    assert set(daly.PROBE_ORDER) == set(daly.PROBES)


@pytest.mark.parametrize(("data", "expected"), [
    (b"", DalyProtocol.UNKNOWN),
    (b"\x00\x01garbage", DalyProtocol.UNKNOWN),
    (bytes.fromhex("d2037c101f"), DalyProtocol.UNKNOWN),  # partial: keep accumulating
    (bytes.fromhex("a5019308010101ca0003dd38"), DalyProtocol.UNKNOWN),
    (bytes.fromhex("a58090080000000000000000bd"), DalyProtocol.UNKNOWN),  # our own request echoed
    (bytes.fromhex("a5019308010101ca0003dd3827"), DalyProtocol.UNKNOWN),  # bad checksum
    (b"AT\r\n" + bytes.fromhex("a5019308010101ca0003dd3826"), DalyProtocol.LEGACY),
])
def test_classify_reply(data: bytes, expected: DalyProtocol) -> None:
    assert daly.classify_reply(data) is expected


@pytest.mark.parametrize("protocol", daly.PROBE_ORDER)
def test_emulated_device_answers_its_probe_and_only_its_probe(protocol: DalyProtocol) -> None:
    """What an emulator built from the device-side helpers answers to each probe classifies right."""
    for probe_protocol, probe in daly.PROBES.items():
        reply = emulated_reply(protocol, probe)
        if probe_protocol is protocol:
            assert reply is not None and daly.classify_reply(reply) is protocol
        else:
            assert reply is None


def emulated_reply(protocol: DalyProtocol, request: bytes) -> bytes | None:
    if protocol is DalyProtocol.LEGACY:
        parsed = daly_legacy.parse_request(request)
        return None if parsed is None else daly_legacy.encode(parsed[0], {"voltage": 13.2, "soc": 50.0})
    address = daly_modbus.ADDRESS if protocol is DalyProtocol.MODBUS else daly_p81.REQUEST_ADDRESS
    req = daly_modbus.parse_request(request) if address == daly_modbus.ADDRESS else daly_p81.parse_request(request)
    if req is None:
        return None
    if protocol is DalyProtocol.MODBUS:
        return daly_modbus.encode_status({"voltage": 13.2}, [3.3] * 4, [25.0], registers=req.value)
    return daly_p81.encode_rt1({"voltage": 13.2}, [3.3] * 4, [25.0])


def test_type_names_force_a_protocol() -> None:
    assert daly.TYPE_PROTOCOLS == {"daly": None, "daly_legacy": DalyProtocol.LEGACY,
                                   "daly_modbus": DalyProtocol.MODBUS}
    with pytest.raises(ValueError, match="known protocol"):
        DalyCodec(DalyProtocol.UNKNOWN)
    with pytest.raises(ValueError, match="62 or 80"):
        DalyCodec(DalyProtocol.MODBUS, status_registers=64)


def test_poll_requests_per_protocol() -> None:
    assert DalyCodec(DalyProtocol.MODBUS).poll_requests() == (vector("read status 62 regs"),)
    assert DalyCodec(DalyProtocol.MODBUS, status_registers=80).poll_requests() == (vector("read status 80 regs"),)
    assert DalyCodec(DalyProtocol.P81).poll_requests() == (P81_RT1_CAPTURED, P81_RT2_CAPTURED)
    legacy = DalyCodec(DalyProtocol.LEGACY).poll_requests()
    assert [r[2] for r in legacy] == [0x90, 0x93, 0x94, 0x95, 0x96]  # 0x94 (counts) before 0x95/0x96
    assert DalyCodec(DalyProtocol.MODBUS).device_info_requests() == (vector("read version 32 regs @0xA9"),)
    assert DalyCodec(DalyProtocol.LEGACY).switches == ("charge", "discharge")
    assert DalyCodec(DalyProtocol.P81).switches == ()


# --- malformed frames ------------------------------------------------------------------------------

D2_GOOD = bytes.fromhex("d203120000000075300000004effffffffffffffff0b4e")  # MOS block capture
D2_OTHER = bytes.fromhex("d20600a500014b8a")
D2_SAME_LENGTH = daly_modbus.encode_mos_block({"mos_temperature": 51.0, "balance_current": 0.25})
A5_GOOD = bytes.fromhex("a5019308010101ca0003dd3826")
A5_OTHER = bytes.fromhex("a501940808010000020035dc5e")


def _bad(good: bytes, same_length: bytes, header: bytes) -> dict[str, bytes]:
    assert len(good) == len(same_length) and good != same_length
    return {
        "wrong_header": header + good[1:],
        "wrong_checksum": good[:-1] + bytes((good[-1] ^ 0x55,)),
        "truncated": good[:-3],
        "spliced": good[:9] + same_length[9:],  # both halves from valid frames, checksum of neither
        "junk": b"\x00\x13\x37junk",
    }


BAD_D2 = {**_bad(D2_GOOD, D2_SAME_LENGTH, b"\xd3"),
          "odd_byte_count": D2_GOOD[:2] + b"\x11" + D2_GOOD[3:],
          "longer_byte_count": D2_GOOD[:2] + b"\x14" + D2_GOOD[3:],
          "unknown_function": D2_GOOD[:1] + b"\x04" + D2_GOOD[2:],
          "from_p81_address": daly_rtu.read_response(D2_GOOD[3:-2], address=daly_p81.REPLY_ADDRESS)}
BAD_A5 = {**_bad(A5_GOOD, A5_OTHER, b"\xa4"),
          "host_address": A5_GOOD[:1] + b"\x80" + A5_GOOD[2:-1] + bytes(((A5_GOOD[-1] + 0x7F) & 0xFF,)),
          "wrong_length_byte": A5_GOOD[:3] + b"\x07" + A5_GOOD[4:-1] + bytes(((A5_GOOD[-1] - 1) & 0xFF,))}


@pytest.mark.parametrize("raw", BAD_D2.values(), ids=BAD_D2.keys())
def test_modbus_assembler_drops_malformed_and_recovers(raw: bytes) -> None:
    asm = daly_modbus.assembler()
    assert asm.feed(raw) == []
    asm.reset()
    assert asm.feed(raw + D2_GOOD) == [D2_GOOD]  # no reset needed between a bad and a good frame
    assert asm.dropped >= 1 and asm.pending == 0


@pytest.mark.parametrize("raw", BAD_A5.values(), ids=BAD_A5.keys())
def test_legacy_assembler_drops_malformed_and_recovers(raw: bytes) -> None:
    asm = daly_legacy.DalyLegacyAssembler()
    assert asm.feed(raw) == []
    asm.reset()
    assert asm.feed(raw + A5_GOOD) == [A5_GOOD]
    assert asm.dropped >= 1 and asm.pending == 0


@pytest.mark.parametrize(("asm_factory", "good", "other"), [
    (daly_modbus.assembler, D2_GOOD, D2_OTHER),
    (daly_legacy.DalyLegacyAssembler, A5_GOOD, A5_OTHER),
])
def test_junk_between_frames_and_several_frames_per_notification(asm_factory: Callable[[], Any], good: bytes,
                                                                 other: bytes) -> None:
    asm = asm_factory()
    stream = b"\x01junk" + good + b"\xff\xfe" + other + good
    assert asm.feed(stream) == [good, other, good]
    assert asm.dropped == 2


@pytest.mark.parametrize("bad", [b"", b"\xd2\x03", D2_GOOD[:-1], D2_GOOD[:-1] + b"\x00", D2_OTHER[:1] + b"\x10"
                                 + D2_OTHER[2:], bytes.fromhex("51037c") + D2_GOOD[3:]])
def test_modbus_decode_rejects_non_frames(bad: bytes) -> None:
    with pytest.raises(FrameError):
        daly_modbus.decode(bad)


@pytest.mark.parametrize("bad", [b"", A5_GOOD[:-1], A5_GOOD[:-1] + b"\x00", bytes.fromhex("a58090080000000000000000bd")])
def test_legacy_decode_rejects_non_frames(bad: bytes) -> None:
    with pytest.raises(FrameError):
        daly_legacy.LegacySession().decode(bad)


def test_implausible_counts_raise_frame_error() -> None:
    status = bytearray(vector("read 62 regs @0x0000 response")[3:-2])
    status[98:100] = (33).to_bytes(2)  # 33 cells in a 32-slot block
    with pytest.raises(FrameError, match="33 cells"):
        daly_modbus.decode(daly_rtu.read_response(bytes(status), address=daly_modbus.ADDRESS))
    with pytest.raises(FrameError, match="49 cells"):
        daly_legacy.LegacySession().decode(daly_legacy.encode(0x94, {"cell_count": 49}))
    rt1 = bytearray(vector("P81_CELLS_FRAME")[3:-2])
    rt1[122:124] = (9).to_bytes(2)
    with pytest.raises(FrameError, match="9 temperature sensors"):
        daly_p81.decode(daly_rtu.read_response(bytes(rt1), address=daly_p81.REPLY_ADDRESS))


# --- legacy: multi-frame cells and temperatures ------------------------------------------------------

INFO_8_CELLS = bytes.fromhex("a501940808010000020035dc5e")  # real capture: 8 cells, 1 sensor
CELLS_8 = [3.301, 3.302, 3.303, 3.304, 3.305, 3.306, 3.307, 3.308]


def test_cells_are_collected_across_frames() -> None:
    session = daly_legacy.LegacySession()
    session.decode(INFO_8_CELLS)
    frames = daly_legacy.encode_cells(CELLS_8)
    assert len(frames) == session.replies_expected(0x95) == 3
    assert [f[4] for f in frames] == [1, 2, 3]
    assert session.decode(frames[0]) == {}
    assert session.decode(frames[1]) == {}
    assert session.decode(frames[2]) == {"cell_voltages": tuple(CELLS_8)}
    # order does not matter, and the next round starts fresh
    assert [session.decode(f) for f in reversed(frames)][-1] == {"cell_voltages": tuple(CELLS_8)}


def test_cells_and_temperatures_from_one_notification_stream() -> None:
    codec = DalyCodec(DalyProtocol.LEGACY)
    temps = [20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0]
    info = daly_legacy.encode(0x94, {"cell_count": 8, "sensor_count": 9, "cycles": 53})
    stream = info + b"".join(daly_legacy.encode_cells(CELLS_8)) + b"".join(daly_legacy.encode_temperatures(temps))
    merged = merge_readings(*decode_all(codec, notifications(stream, 20)))
    assert merged["cell_voltages"] == tuple(CELLS_8)
    assert merged["temperatures"] == tuple(temps)
    assert merged["cycles"] == 53
    assert codec.replies_expected(daly_legacy.request(0x96)) == 2
    assert codec.replies_expected(daly_legacy.request(0x90)) == 1


def test_cells_before_counts_wait_for_0x94() -> None:
    session = daly_legacy.LegacySession()
    frames = daly_legacy.encode_cells(CELLS_8)
    assert session.replies_expected(0x95) is None
    assert [session.decode(f) for f in frames] == [{}, {}, {}]
    session.decode(INFO_8_CELLS)
    assert session.decode(frames[0]) == {"cell_voltages": tuple(CELLS_8)}


def test_cell_frame_index_out_of_range_raises_and_reset_forgets_pieces() -> None:
    session = daly_legacy.LegacySession()
    session.decode(INFO_8_CELLS)
    bogus = daly_legacy.response(0x95, bytes((4, 0x0C, 0xE4, 0, 0, 0, 0, 0)))  # 8 cells -> 3 frames
    with pytest.raises(FrameError, match="index 4"):
        session.decode(bogus)
    with pytest.raises(FrameError, match="index 0"):
        session.decode(daly_legacy.response(0x95, bytes(8)))
    frames = daly_legacy.encode_cells(CELLS_8)
    session.decode(frames[0])
    session.decode(frames[1])
    session.reset()
    assert session.decode(frames[2]) == {}


# --- legacy: current sign ---------------------------------------------------------------------------


def soc_frame(raw_current: int) -> bytes:
    return daly_legacy.response(0x90, bytes.fromhex("0084") + bytes(2) + raw_current.to_bytes(2) + bytes.fromhex("0320"))


def status_frame(state: int) -> bytes:
    return daly_legacy.response(0x93, bytes((state, 1, 1, 0)) + (100000).to_bytes(4))


def test_default_sign_is_raw_above_30000_discharging() -> None:
    session = daly_legacy.LegacySession()
    r = session.decode(soc_frame(30100))
    assert r["current"] == pytest.approx(10.0) and r["voltage"] == pytest.approx(13.2) and r["soc"] == 80.0
    assert session.decode(status_frame(0)).get("current") == pytest.approx(10.0)  # idle: no vote
    assert session.polarity_learned is False


@pytest.mark.parametrize("status_first", [False, True])
def test_state_byte_settles_the_sign(status_first: bool) -> None:
    session = daly_legacy.LegacySession()
    frames = [soc_frame(30100), status_frame(1)]  # raw says "discharging" by default, BMS says charging
    readings = [session.decode(f) for f in (reversed(frames) if status_first else frames)]
    assert merge_readings(*readings)["current"] == pytest.approx(-10.0)
    assert session.polarity == -1 and session.polarity_learned
    assert session.decode(soc_frame(29950))["current"] == pytest.approx(5.0)  # later frames use it at once


def test_learned_sign_needs_several_contrary_votes_to_flip() -> None:
    session = daly_legacy.LegacySession()
    for f in (soc_frame(30100), status_frame(2)):
        session.decode(f)
    assert session.polarity == 1
    for _ in range(2):  # a state byte lagging a current reversal for two samples changes nothing
        session.decode(soc_frame(29900))
        session.decode(status_frame(2))
        assert session.polarity == 1
    session.decode(soc_frame(29900))
    assert session.decode(status_frame(2))["current"] == pytest.approx(10.0)
    assert session.polarity == -1


def test_small_currents_do_not_vote() -> None:
    session = daly_legacy.LegacySession()
    session.decode(soc_frame(30004))
    session.decode(status_frame(1))
    assert not session.polarity_learned and session.polarity == 1


def test_0x91_0x92_extremes_go_to_extra() -> None:
    session = daly_legacy.LegacySession()
    cells = session.decode(daly_legacy.response(0x91, bytes.fromhex("0ce4030cd0070000")))
    assert cells == {"extra": {"cell_max": 3.3, "cell_max_index": 3, "cell_min": 3.28, "cell_min_index": 7}}
    temps = session.decode(daly_legacy.response(0x92, bytes.fromhex("4201410200000000")))
    assert temps == {"extra": {"temperature_max": 26.0, "temperature_max_index": 1, "temperature_min": 25.0,
                               "temperature_min_index": 2}}
    assert session.decode(daly_legacy.response(0x98, bytes(8))) == {}


# --- alarms -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bit", "name"), [
    (16, "charge_mos_overtemperature"), (24, "afe_chip_failure"), (29, "precharge_failed"),
    (32, "charge_overcurrent_warning"), (33, "charge_overcurrent_critical"), (39, "soc_low_critical"),
    (40, "cell_voltage_difference_warning"), (43, "temperature_difference_critical"),
    (48, "cell_overvoltage_warning"), (55, "pack_undervoltage_critical"),
    (56, "charge_overtemperature_warning"), (63, "discharge_undertemperature_critical"), (44, "bit44"), (3, "bit3"),
])
def test_alarm_word_bits_decode_to_names(bit: int, name: str) -> None:
    payload = bytearray(vector("read 62 regs @0x0000 response")[3:-2])
    payload[116:124] = (1 << bit).to_bytes(8)
    r = daly_modbus.decode(daly_rtu.read_response(bytes(payload), address=daly_modbus.ADDRESS))
    assert r["alarms"] == (name,)
    assert r["extra"]["alarm_bitmask"] == 1 << bit


# --- advertisement -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "uuids", "mfr", "expected"), [
    ("DL-401710015C9B", [daly.SERVICE_UUID], {}, True),
    ("DL-401710015C9B", [], {}, False),
    (None, [], {0x0302: bytes.fromhex("16401710015c9b444c")}, True),
    ("JHB-123", [], {}, True),
    ("JBD-SP04S", [daly.SERVICE_UUID], {0x0303 + 1: b""}, False),
])
def test_matchers(name: str | None, uuids: list[str], mfr: dict[int, bytes], expected: bool) -> None:
    hit = any(m.matches(address="40:17:10:01:5C:9B", name=name, service_uuids=uuids, manufacturer_data=mfr)
              for m in daly.MATCHERS)
    assert hit is expected


# --- fuzzing -----------------------------------------------------------------------------------------

FUZZ_BYTES = st.binary(max_size=64) | st.sampled_from([D2_GOOD, A5_GOOD, INFO_8_CELLS, vector("P81_STATUS_FRAME")])


@fuzz_settings
@given(st.sampled_from([DalyProtocol.MODBUS, DalyProtocol.LEGACY, DalyProtocol.P81]),
       st.lists(FUZZ_BYTES, max_size=12))
def test_fuzz_assembler_and_decoder_never_raise_other_errors(protocol: DalyProtocol, chunks: list[bytes]) -> None:
    codec = DalyCodec(protocol)
    asm = codec.assembler()
    for c in chunks:
        for frame in asm.feed(c):
            try:
                codec.decode(frame)
            except FrameError:
                pass
        assert asm.pending < (daly_legacy.FRAME_LEN if protocol is DalyProtocol.LEGACY else daly_rtu.MAX_FRAME)
    daly.classify_reply(b"".join(chunks))


@fuzz_settings
@given(st.sampled_from([daly_modbus.ADDRESS, daly_p81.REPLY_ADDRESS]), st.integers(0, 127).map(lambda n: 2 * n),
       st.randoms(use_true_random=False))
def test_fuzz_valid_modbus_envelopes_with_random_payloads(address: int, size: int, rnd: Any) -> None:
    frame = daly_rtu.read_response(rnd.randbytes(size), address=address)
    assert daly_rtu.ModbusAssembler(address).feed(frame) == [frame]
    try:
        (daly_modbus.decode if address == daly_modbus.ADDRESS else daly_p81.decode)(frame)
    except FrameError:
        pass


@fuzz_settings
@given(st.lists(st.tuples(st.integers(0x90, 0x98), st.binary(min_size=8, max_size=8)), max_size=20))
def test_fuzz_legacy_session_with_random_payloads(frames: list[tuple[int, bytes]]) -> None:
    session = daly_legacy.LegacySession()
    for cmd, payload in frames:
        try:
            r = session.decode(daly_legacy.response(cmd, payload))
        except FrameError:
            continue
        if "cell_voltages" in r:
            assert len(r["cell_voltages"]) == session.cell_count


@fuzz_settings
@given(st.data())
def test_chunking_at_arbitrary_split_points(data: st.DataObject) -> None:
    frames = [D2_GOOD, vector("read 62 regs @0x0000 response"), D2_OTHER]
    stream = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    asm = daly_modbus.assembler()
    assert [f for p in pieces for f in asm.feed(p)] == frames
    legacy = b"".join([A5_GOOD, INFO_8_CELLS, *daly_legacy.encode_cells(CELLS_8)])
    lcuts = sorted(data.draw(st.lists(st.integers(0, len(legacy)), max_size=20)))
    lasm = daly_legacy.DalyLegacyAssembler()
    got = [f for a, b in zip([0, *lcuts], [*lcuts, len(legacy)], strict=True) for f in lasm.feed(legacy[a:b])]
    assert b"".join(got) == legacy


# --- encode / decode round trips ----------------------------------------------------------------------

U16 = st.integers(0, 65535)


@fuzz_settings
@given(voltage=U16, current=U16, soc=st.integers(0, 1000), charge=U16, cycles=U16, state=st.integers(0, 2),
       mos=st.tuples(st.booleans(), st.booleans(), st.booleans()), alarm_mask=st.integers(0, 2**64 - 1),
       cells=st.lists(st.integers(0, 65535), max_size=32), temps=st.lists(st.integers(0, 255), max_size=8),
       registers=st.sampled_from([62, 80]), mos_temp=st.integers(1, 200))
def test_modbus_status_round_trip(voltage: int, current: int, soc: int, charge: int, cycles: int, state: int,
                                  mos: tuple[bool, bool, bool], alarm_mask: int, cells: list[int],
                                  temps: list[int], registers: int, mos_temp: int) -> None:
    alarms = daly_modbus.bits_to_names(alarm_mask, daly_modbus.ALARM_BITS)
    values = {"voltage": voltage / 10, "current": -(current - 30000) / 10, "soc": soc / 10, "charge": charge / 10,
              "cycles": cycles, "state": state, "balancing": mos[0], "charge_mos": mos[1], "discharge_mos": mos[2]}
    frame = daly_modbus.encode_status(values, [c / 1000 for c in cells], [t - 40 for t in temps], alarms,
                                      ext={"mos_temperature": mos_temp - 40}, registers=registers)
    r = DalyCodec(DalyProtocol.MODBUS, status_registers=registers).decode(frame)
    assert r["voltage"] == pytest.approx(voltage / 10) and r["current"] == pytest.approx(-(current - 30000) / 10)
    assert r["soc"] == pytest.approx(soc / 10) and r["charge"] == pytest.approx(charge / 10)
    assert r["cycles"] == cycles and r["extra"]["state"] == STATE[state] and r["extra"]["balancing"] is mos[0]
    assert r["switches"] == {"charge": mos[1], "discharge": mos[2]}
    assert r["alarms"] == alarms and r["extra"]["alarm_bitmask"] == alarm_mask
    assert list(r["cell_voltages"]) == pytest.approx([c / 1000 for c in cells])
    assert list(r["temperatures"]) == [t - 40 for t in temps]
    assert r.get("mos_temperature") == (mos_temp - 40 if registers == 80 else None)


@fuzz_settings
@given(sw=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.", max_size=16),
       hw=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.", max_size=16), mos_temp=st.integers(1, 200))
def test_modbus_version_and_mos_block_round_trip(sw: str, hw: str, mos_temp: int) -> None:
    info = daly_modbus.decode(daly_modbus.encode_version(sw, hw))["device_info"]
    assert (info.sw_version or "", info.hw_version or "") == (sw, hw)
    r = daly_modbus.decode(daly_modbus.encode_mos_block({"mos_temperature": mos_temp - 40, "balance_current": 1.5}))
    assert r["mos_temperature"] == mos_temp - 40 and r["balance_current"] == pytest.approx(1.5)
    assert "board_temperature" not in r["extra"]  # encoded as absent


@fuzz_settings
@given(voltage=U16, current=U16, soc=st.integers(0, 1000), cells=st.lists(st.integers(0, 65535), max_size=48),
       temps=st.lists(st.integers(0, 255), max_size=8), charge=U16, cycles=U16, state=st.integers(0, 2),
       flags=st.lists(st.booleans(), min_size=5, max_size=5), mos_temp=st.integers(0, 200))
def test_p81_round_trip(voltage: int, current: int, soc: int, cells: list[int], temps: list[int], charge: int,
                        cycles: int, state: int, flags: list[bool], mos_temp: int) -> None:
    rt1 = daly_p81.decode(daly_p81.encode_rt1({"voltage": voltage / 10, "current": -(current - 30000) / 10,
                                               "soc": soc / 10}, [c / 1000 for c in cells], [t - 40 for t in temps]))
    assert rt1["voltage"] == pytest.approx(voltage / 10) and rt1["current"] == pytest.approx(-(current - 30000) / 10)
    assert list(rt1["cell_voltages"]) == pytest.approx([c / 1000 for c in cells])
    assert list(rt1["temperatures"]) == [t - 40 for t in temps] and rt1["soc"] == pytest.approx(soc / 10)
    names = ("balancing", "charge_mos", "discharge_mos", "precharge_mos", "heating_mos")
    rt2 = daly_p81.decode(daly_p81.encode_rt2({"charge": charge / 10, "cycles": cycles, "state": state,
                                               "mos_temperature": mos_temp - 40, **dict(zip(names, flags, strict=True))}))
    assert rt2["charge"] == pytest.approx(charge / 10) and rt2["cycles"] == cycles
    assert rt2["switches"] == {"charge": flags[1], "discharge": flags[2]}
    assert (rt2["extra"]["balancing"], rt2["extra"]["precharge_mos"], rt2["extra"]["heating_mos"]) == (
        flags[0], flags[3], flags[4])
    assert rt2["mos_temperature"] == mos_temp - 40 and rt2["extra"]["state"] == STATE[state]


@fuzz_settings
@given(voltage=U16, current=U16, soc=st.integers(0, 1000), state=st.integers(0, 2), charge_mos=st.booleans(),
       remaining=st.integers(-(2**31), 2**31 - 1), cells=st.lists(st.integers(0, 65535), max_size=48),
       temps=st.lists(st.integers(0, 255), max_size=16), cycles=U16)
def test_legacy_round_trip(voltage: int, current: int, soc: int, state: int, charge_mos: bool, remaining: int,
                           cells: list[int], temps: list[int], cycles: int) -> None:
    session = daly_legacy.LegacySession()
    info = session.decode(daly_legacy.encode(0x94, {"cell_count": len(cells), "sensor_count": len(temps),
                                                    "cycles": cycles}))
    assert info["cycles"] == cycles and info["extra"]["cell_count"] == len(cells)
    soc_r = session.decode(daly_legacy.encode(0x90, {"voltage": voltage / 10, "current": (current - 30000) / 10,
                                                     "soc": soc / 10}))
    assert soc_r["voltage"] == pytest.approx(voltage / 10) and soc_r["soc"] == pytest.approx(soc / 10)
    assert soc_r["current"] == pytest.approx((current - 30000) / 10)  # nothing learned yet: table default
    status = session.decode(daly_legacy.encode(0x93, {"state": state, "charge_mos": charge_mos,
                                                      "charge": remaining / 1000}))
    assert status["charge"] == pytest.approx(remaining / 1000) and status["switches"] == {"charge": charge_mos}
    if state in (1, 2) and abs(current - 30000) >= 5:  # the state byte now decides the sign
        assert (status["current"] > 0) is (state == 2)
    got = [session.decode(f) for f in daly_legacy.encode_cells([c / 1000 for c in cells])]
    if cells:
        assert list(got[-1]["cell_voltages"]) == pytest.approx([c / 1000 for c in cells])
    got = [session.decode(f) for f in daly_legacy.encode_temperatures([t - 40 for t in temps])]
    if temps:
        assert list(got[-1]["temperatures"]) == [t - 40 for t in temps]


# --- Daly Modbus resync: the one-byte head 0xD2 also turns up inside register data -------------------

# Register data made of false heads: 0xD2 followed by what a read (03, with byte counts that point past
# the frame), a write echo (06) or an exception (83, 86) would start with, and runs of 0xD2.
FALSE_HEADS = bytes.fromhex("d2037c d20302 d206 d283 d286 d2d2d2 d203fe d203 d2")
D2_F0 = daly_rtu.read_response((FALSE_HEADS * 8)[:124], address=daly_modbus.ADDRESS)  # 62 registers, as status
D2_F1 = daly_rtu.read_response((FALSE_HEADS[::-1] * 2)[:18], address=daly_modbus.ADDRESS)  # 9 registers
D2_JUNK = {
    "lone_d2": b"\xd2",
    "d2_run": b"\xd2" * 30,
    "false_heads": FALSE_HEADS,
    "announces_a_long_read": b"\xd2\x03\x7c" + bytes(10),
    "exception_with_bad_crc": b"\xd2\x83\x02\x00\x00",
    "write_echo_cut_short": daly_modbus.switch_request("charge", True)[:6],
}


def _notifications(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def _feed_all(asm: daly_rtu.ModbusAssembler, chunks: list[bytes]) -> list[bytes]:
    return [f for c in chunks for f in asm.feed(c)]


def test_modbus_frames_full_of_false_heads_pass_in_any_chunking() -> None:
    assert D2_F0.count(0xD2) > 30 and len(D2_F0) == 129
    stream = D2_F0 + D2_F1 + D2_F0
    for size in (1, 2, 3, 5, 7, 11, 20, 64, 129, len(stream)):
        asm = daly_modbus.assembler()
        assert _feed_all(asm, _notifications(stream, size)) == [D2_F0, D2_F1, D2_F0], f"chunks of {size}"
        assert (asm.dropped, asm.pending) == (0, 0)


@pytest.mark.parametrize("junk", D2_JUNK.values(), ids=D2_JUNK.keys())
def test_modbus_junk_with_d2_bytes_before_a_frame(junk: bytes) -> None:
    for notifications in ([junk + D2_F0], [junk, D2_F0], [junk, *_notifications(D2_F0, 20)]):
        asm = daly_modbus.assembler()
        # the frame is out by the notification that completes it: nothing later is needed to push it out
        assert [asm.feed(n) for n in notifications][-1] == [D2_F0]
        assert asm.dropped >= 1 and asm.pending == 0


def test_modbus_truncated_frame_with_false_heads_then_a_valid_one() -> None:
    for cut in range(1, len(D2_F0)):
        for notifications in ([D2_F0[:cut] + D2_F1], [D2_F0[:cut], D2_F1]):
            asm = daly_modbus.assembler()
            assert [asm.feed(n) for n in notifications][-1] == [D2_F1], f"cut at {cut}"
            assert (asm.dropped, asm.pending) == (1, 0), f"cut at {cut}: {list(asm.recent_errors)}"
        asm = daly_modbus.assembler()
        assert _feed_all(asm, [D2_F0[:cut], *_notifications(D2_F1, 5)]) == [D2_F1], f"cut at {cut}, split"
        assert asm.pending == 0


def test_modbus_bad_crc_then_a_good_frame() -> None:
    for at in (3, 40, 127, 128):  # in the data (on a false head's bytes), in the CRC
        bad = bytearray(D2_F0)
        bad[at] ^= 0x10
        asm = daly_modbus.assembler()
        assert asm.feed(bytes(bad) + D2_F1) == [D2_F1], f"byte {at} changed"
        assert (asm.dropped, asm.pending) == (1, 0)
        assert asm.last_error is not None and "CRC" in asm.last_error.reason
        # Alone, the bad frame is dropped up to the first false head inside it that still waits for
        # bytes; the next frame then supersedes that one: two drops, and the frame is out at once.
        asm = daly_modbus.assembler()
        assert asm.feed(bytes(bad)) == [] and asm.recent_errors[0].reason == "CRC mismatch"
        assert asm.feed(D2_F1) == [D2_F1]
        assert asm.dropped <= 2 and asm.pending == 0


_D2_HEAVY = st.binary(max_size=40).map(lambda b: bytes(x if x % 3 else 0xD2 for x in b))  # a third are 0xD2


@fuzz_settings
@given(st.lists(st.tuples(_D2_HEAVY.filter(lambda b: len(b) % 2 == 0), st.integers(1, 40)), min_size=1,
                max_size=5))
def test_fuzz_modbus_frames_with_d2_heavy_data_are_never_lost(frames_and_sizes: list[tuple[bytes, int]]) -> None:
    """However a run of valid frames is chunked, the false heads in one frame's data never cost a frame."""
    frames = [daly_rtu.read_response(data, address=daly_modbus.ADDRESS) for data, _ in frames_and_sizes]
    asm = daly_modbus.assembler()
    got = [f for frame, (_, size) in zip(frames, frames_and_sizes, strict=True)
           for chunk in _notifications(frame, size) for f in asm.feed(chunk)]
    assert got == frames and asm.dropped == 0 and asm.pending == 0


@fuzz_settings
@given(_D2_HEAVY, _D2_HEAVY.filter(lambda b: len(b) % 2 == 0), st.integers(1, 40))
def test_fuzz_modbus_a_valid_frame_after_any_d2_heavy_prefix_gets_through(prefix: bytes, data: bytes,
                                                                         size: int) -> None:
    """Junk, a truncated or corrupted frame, anything before a valid frame: the frame is out when its
    last notification arrives."""
    frame = daly_rtu.read_response(data, address=daly_modbus.ADDRESS)
    asm = daly_modbus.assembler()
    assert _feed_all(asm, [prefix, *_notifications(frame, size)]) == [frame]
    assert asm.pending == 0

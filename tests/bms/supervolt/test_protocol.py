"""Supervolt ASCII protocol: vectors, lenient checksum mode, malformed frames, fuzzing, round trips."""

from __future__ import annotations

import fnmatch
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.bms.jbd.protocol import frames as jbd
from bmslib.bms.supervolt import emulator_frames
from bmslib.bms.supervolt import protocol as supervolt
from bmslib.errors import FrameError
from bmslib.model import Reading, Sample, merge_readings
from tests.helpers import case_id, chunks_of, fuzz_settings, load_vectors

VECTORS = load_vectors("supervolt")
COMMANDS = [c for c in VECTORS if c["kind"].startswith("command")]
SYNTHETIC = [c for c in VECTORS if c["kind"].startswith("SYNTHETIC")]
FIXTURES = [c for c in VECTORS if c["kind"].startswith("source test fixture")]

RT = bytes.fromhex(FIXTURES[0]["frame"])  # valid checksum, 128 characters
CAP = bytes.fromhex(FIXTURES[1]["frame"])  # 30 characters
SINGLE = bytes.fromhex(FIXTURES[2]["frame"])  # 140 characters


def assemble(chunks: list[bytes], **kw: bool) -> list[bytes]:
    asm = supervolt.SupervoltAssembler(**kw)
    return [f for c in chunks for f in asm.feed(c)]


def build(reading: Reading) -> Sample:
    return Sample.build(reading, timestamp=0.0, mono=0.0)


def check_expected(r: Reading, exp: dict) -> None:
    """Compare a reading with a vector's expected values; every key must be understood here."""
    done: set[str] = set()

    def has(key: str) -> bool:
        done.add(key)
        return key in exp

    if has("cell_voltages"):
        assert list(r["cell_voltages"]) == pytest.approx(exp["cell_voltages"])
    if has("cell_mv"):
        assert [round(v * 1000) for v in r["cell_voltages"]] == exp["cell_mv"]
    if has("cell_count"):
        assert r["extra"]["cell_count"] == exp["cell_count"] == len(r["cell_voltages"])
    for key in ("voltage_sum_of_cells", "total_voltage"):
        if has(key):
            assert build(r).voltage == pytest.approx(exp[key])
    if has("current"):  # charge-positive in the vectors
        assert r["current"] == pytest.approx(-exp["current"])
    if has("load_a_discharge_positive"):
        assert r["current"] == pytest.approx(exp["load_a_discharge_positive"])
    if has("discharging_a"):  # a case without "charging_a" says "load" = discharging, i.e. no charge current
        charging = exp["charging_a"] if has("charging_a") else 0.0
        assert r["current"] == pytest.approx(exp["discharging_a"] - charging)
    if has("soc"):
        assert r["soc"] == exp["soc"]
    if has("cycles"):
        assert r["cycles"] == exp["cycles"]
    if has("temperatures"):
        # aiobmsble reports only the first of the four probes, batmon-ha all four; we report four.
        assert len(r["temperatures"]) == 4
        assert list(r["temperatures"][:len(exp["temperatures"])]) == pytest.approx(exp["temperatures"])
    if has("working_state"):
        assert r["extra"]["working_state"] == exp["working_state"]
    if has("chrg_mosfet") and has("dischrg_mosfet"):
        assert r["switches"] == {"charge": exp["chrg_mosfet"], "discharge": exp["dischrg_mosfet"]}
    if has("problem_code"):
        assert r["extra"]["working_state"] & supervolt.ALARM_MASK == exp["problem_code"]
        assert r["alarms"] == ()
    if has("balancer"):
        assert bool(r["extra"]["balance_bitmask"]) == exp["balancer"]
    if has("heater"):  # aiobmsble's "heater" is byte 54, which batmon-ha calls "alarm"
        assert bool(r["extra"]["status_byte_54"]) == exp["heater"]
    if has("remaining_ah"):
        assert r["charge"] == pytest.approx(exp["remaining_ah"])
    if has("complete_ah"):
        assert r["capacity"] == pytest.approx(exp["complete_ah"])
    for key in ("designed_ah", "design_capacity_ah"):
        if has(key):
            assert r["extra"]["design_capacity"] == pytest.approx(exp[key])
    assert set(exp) <= done, f"unchecked expected keys: {set(exp) - done}"


@pytest.mark.parametrize("case", FIXTURES, ids=case_id)
def test_fixtures_assemble_from_notifications_and_decode(case: dict) -> None:
    frames = assemble(chunks_of(case))
    assert frames == [bytes.fromhex(case["frame"])]
    assert frames[0].decode("ascii") == case["frame_ascii"]
    check_expected(supervolt.decode(frames[0]), case["expected"])


@pytest.mark.parametrize("case", SYNTHETIC, ids=case_id)
def test_synthetic_frames_decode_after_repairing_their_envelope(case: dict) -> None:
    # batmon-ha's synthetic frames copy the request header (command 0x02, length field 0x50) and end
    # with a dummy checksum: a real reply would be rejected for that, and so are they ...
    frame = bytes.fromhex(case["frame"])
    assert assemble([frame]) == []
    assert assemble([frame], accept_plausible=True) == []
    with pytest.raises(FrameError, match="length field"):
        supervolt.decode(frame)
    # ... but their data bytes pin the field offsets: re-wrap them unchanged in a valid envelope.
    binary = bytes.fromhex(frame[1:-1].decode())
    repaired = supervolt.encode_frame(0x82, binary[5:-1])
    assert len(repaired) == len(frame) and repaired[11:-3] == frame[11:-3]
    assert assemble([repaired]) == [repaired]
    check_expected(supervolt.decode(repaired), case["expected"])


@pytest.mark.parametrize("case", COMMANDS, ids=case_id)
def test_request_builders_match_captured_commands(case: dict) -> None:
    frame = bytes.fromhex(case["frame"])
    assert frame.decode("ascii") == case["frame_ascii"]
    command = emulator_frames.parse_request(frame)
    assert command in (supervolt.CMD_REALTIME, supervolt.CMD_CAPACITY)
    assert supervolt.request(command) == frame
    assert frame in supervolt.SupervoltCodec().poll_requests()


def test_realtime_and_capacity_merge_into_one_sample() -> None:
    codec = supervolt.SupervoltCodec()
    (rt,) = assemble([RT])
    (cap,) = assemble([CAP])
    assert supervolt.frame_command(rt) == supervolt.CMD_REALTIME
    assert supervolt.frame_command(cap) == supervolt.CMD_CAPACITY
    sample = build(merge_readings(codec.decode(rt), codec.decode(cap)))
    assert sample.voltage == pytest.approx(39.517)
    assert sample.current == pytest.approx(0.02)  # 0.02 A discharging
    assert sample.power == pytest.approx(39.517 * 0.02)
    assert (sample.charge, sample.capacity, sample.soc) == (0.2, 1.0, 1.0)


def test_single_frame_unit_drops_the_capacity_request() -> None:
    codec = supervolt.SupervoltCodec()
    assert codec.poll_requests() == (supervolt.REQUEST_REALTIME, supervolt.REQUEST_CAPACITY)
    codec.decode(RT)
    assert not codec.single_frame
    r = codec.decode(SINGLE)
    assert codec.single_frame and codec.poll_requests() == (supervolt.REQUEST_REALTIME,)
    assert (r["charge"], r["capacity"]) == (110.0, 150.0)


# --- checksum-less units ---------------------------------------------------------------------------


RT_BAD_SUM = emulator_frames.with_checksum(RT, 0x00)


@pytest.mark.parametrize(("name", "lenient"), [
    ("libattU1234", True), ("libatt1234", False), ("SV12V100", False), (None, False), ("", False),
])
def test_only_known_names_accept_frames_with_a_wrong_checksum(name: str | None, lenient: bool) -> None:
    codec = supervolt.SupervoltCodec(name)
    assert codec.accept_plausible is lenient
    asm = codec.assembler()
    assert asm.feed(RT_BAD_SUM) == ([RT_BAD_SUM] if lenient else [])
    assert asm.unverified == int(lenient)
    assert asm.feed(RT) == [RT]  # a good frame never counts as unverified
    assert asm.unverified == int(lenient)


def realtime(**changes: float) -> bytes:
    values = {"soc": 80, "working_state": emulator_frames.working_state(charge_on=True, discharge_on=True),
              **emulator_frames.split_current(3.0)}
    cells, temps = [3.3] * 4, [20.0, 21.0, 22.0, 23.0]
    if "cell" in changes:
        cells[1] = changes.pop("cell")
    if "temp" in changes:
        temps[0] = changes.pop("temp")
    return emulator_frames.encode_realtime({**values, **changes}, cells, temps)


IMPLAUSIBLE = {
    "soc_over_100": realtime(soc=101),
    "cell_9V": realtime(cell=9.0),
    "cell_0V5": realtime(cell=0.5),
    "no_cells": emulator_frames.encode_realtime({"soc": 50}, [], [20.0]),
    "hot": realtime(temp=150.0),
    "current_600A": realtime(discharge_current=600.0),
    "capacity_zero_design": emulator_frames.encode_capacity({"charge": 10, "full": 10, "design": 0}),
    "capacity_charge_3x_design": emulator_frames.encode_capacity({"charge": 300, "full": 100, "design": 100}),
    "single_frame_zero_design": emulator_frames.encode_realtime({"soc": 50}, [3.3], [20.0], {"charge": 1}),
}


@pytest.mark.parametrize("frame", IMPLAUSIBLE.values(), ids=IMPLAUSIBLE.keys())
def test_lenient_mode_rejects_implausible_frames_with_a_wrong_checksum(frame: bytes) -> None:
    assert assemble([frame], accept_plausible=True) == [frame]  # checksum right: accepted as sent
    assert supervolt.plausibility_problem(frame) is not None
    bad = emulator_frames.with_checksum(frame, supervolt.checksum(frame[1:-3]) ^ 0x5A)
    asm = supervolt.SupervoltAssembler(accept_plausible=True)
    assert asm.feed(bad) == []
    assert asm.last_error is not None and "checksum mismatch and" in asm.last_error.reason


def test_plausible_frames_pass_the_plausibility_check() -> None:
    for frame in (RT, CAP, SINGLE, realtime()):
        assert supervolt.plausibility_problem(frame) is None


# --- malformed frames ------------------------------------------------------------------------------

BAD_FRAMES = {
    "empty": b"",
    "wrong_start": b";" + RT[1:],
    "wrong_end": RT[:-1] + b"!",
    "wrong_checksum": RT_BAD_SUM,
    "truncated": RT[:-2],
    "wrong_length_field": RT[:7] + b"0082" + RT[11:],
    "unknown_command": RT[:3] + b"83" + RT[5:],
    "capacity_with_realtime_length": CAP[:7] + b"0080" + CAP[11:],
    "non_hex_digit": RT[:40] + b"G" + RT[41:],
    "space_in_hex": RT[:40] + b" " + RT[41:],
    "end_too_early": RT[:60] + b"~",
    "request_not_reply": supervolt.REQUEST_REALTIME,
}


@pytest.mark.parametrize("raw", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_malformed_frames_are_dropped_not_raised(raw: bytes) -> None:
    asm = supervolt.SupervoltAssembler()
    assert asm.feed(raw) == []
    asm.reset()
    assert asm.feed(RT) == [RT]
    if raw != RT_BAD_SUM:
        with pytest.raises(FrameError):
            supervolt.decode(raw)


def test_spliced_frame_is_dropped_and_the_next_one_kept() -> None:
    asm = supervolt.SupervoltAssembler()
    assert asm.feed(RT[:70] + CAP + RT) == [CAP, RT]
    assert asm.dropped == 1


def test_junk_between_frames_is_counted_but_module_chatter_is_not() -> None:
    asm = supervolt.SupervoltAssembler()
    assert asm.feed(b"AT\r\n" + RT + b"AT\r\nAT\r\n" + CAP) == [RT, CAP]
    assert asm.dropped == 0
    assert asm.feed(b"\x00garbage~" + SINGLE + b"zz") == [SINGLE]
    assert asm.dropped == 2


def test_frame_longer_than_its_length_field_resyncs() -> None:
    asm = supervolt.SupervoltAssembler()
    assert asm.feed(RT[:-1] + b"00~" + CAP) == [CAP]
    assert asm.dropped >= 1


@fuzz_settings
@given(st.lists(st.integers(0, 300), max_size=12))
def test_any_split_of_a_frame_stream_gives_the_same_frames(cuts: list[int]) -> None:
    stream = RT + b"AT\r\n" + CAP + SINGLE + RT
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    assert assemble(chunks) == [RT, CAP, SINGLE, RT]


HEXISH = st.binary(max_size=48) | st.text("0123456789ABCDEF:~", max_size=160).map(str.encode)


@fuzz_settings
@given(st.lists(HEXISH, max_size=12), st.booleans())
def test_fuzz_assembler_and_decoder_never_raise_other_errors(chunks: list[bytes], lenient: bool) -> None:
    asm = supervolt.SupervoltAssembler(accept_plausible=lenient)
    for c in chunks:
        for frame in asm.feed(c):
            try:
                supervolt.decode(frame)
            except FrameError:
                pass
        assert asm.pending < supervolt.MAX_FRAME


REPLY_SHAPES = {(0x82, 57), (0x82, 63), (0x90, 8)}  # (command, data bytes after the header)


@fuzz_settings
@given(st.sampled_from([*sorted(REPLY_SHAPES), (0x02, 57), (0x90, 57), (0x82, 8)]), st.data())
def test_fuzz_valid_envelopes_with_random_data(shape: tuple[int, int], data: st.DataObject) -> None:
    command, size = shape
    frame = supervolt.encode_frame(command, data.draw(st.binary(min_size=size, max_size=size)))
    problem = supervolt.plausibility_problem(frame)
    bad_sum = emulator_frames.with_checksum(frame, supervolt.checksum(frame[1:-3]) ^ 0xFF)
    lenient = supervolt.SupervoltAssembler(accept_plausible=True)
    if shape in REPLY_SHAPES:
        assert isinstance(supervolt.decode(frame), dict)  # any data in a known reply decodes
        assert supervolt.SupervoltAssembler().feed(frame) == [frame]
        assert lenient.feed(bad_sum) == ([bad_sum] if problem is None else [])
    else:
        with pytest.raises(FrameError, match="unknown reply"):
            supervolt.decode(frame)
        assert problem is not None
        assert supervolt.SupervoltAssembler().feed(frame) == lenient.feed(bad_sum) == []


# --- device side -----------------------------------------------------------------------------------


@fuzz_settings
@given(
    charge=st.integers(0, 50000), discharge=st.integers(0, 50000), soc=st.integers(0, 100),
    state=st.integers(0, 0xFFFF), byte54=st.integers(0, 255), balance=st.integers(0, 0xFFFF),
    dcount=st.integers(0, 0xFFFF), ccount=st.integers(0, 0xFFFF),
    cells=st.lists(st.integers(1, 65535), min_size=1, max_size=16), temps=st.lists(st.integers(0, 255), max_size=4),
    caps=st.none() | st.tuples(st.integers(0, 65535), st.integers(0, 65535), st.integers(1, 65535)),
)
def test_realtime_encode_decode_round_trip(charge: int, discharge: int, soc: int, state: int, byte54: int,
                                           balance: int, dcount: int, ccount: int, cells: list[int],
                                           temps: list[int], caps: tuple[int, int, int] | None) -> None:
    values = {"charge_current": charge / 100, "discharge_current": discharge / 100, "soc": soc,
              "working_state": state, "status_byte_54": byte54, "balance_state": balance,
              "discharge_count": dcount, "charge_count": ccount}
    capacity = None if caps is None else dict(zip(("charge", "full", "design"), (c / 10 for c in caps), strict=True))
    frame = emulator_frames.encode_realtime(values, [c / 1000 for c in cells], [t - 40 for t in temps], capacity)
    assert supervolt.SupervoltAssembler().feed(frame) == [frame]
    r = supervolt.decode(frame)
    assert r["current"] == pytest.approx((discharge - charge) / 100)
    assert r["soc"] == soc and r["cycles"] == dcount
    assert list(r["cell_voltages"]) == pytest.approx([c / 1000 for c in cells])
    assert list(r["temperatures"]) == [t - 40 for t in temps] + [-40.0] * (4 - len(temps))
    assert r["switches"] == {"charge": bool(state & 0x2000), "discharge": bool(state & 0x1000)}
    assert r["extra"] | {"working_state": state, "status_byte_54": byte54, "balance_bitmask": balance,
                         "charge_count": ccount} == r["extra"]
    if capacity is not None:
        assert r["charge"] == pytest.approx(capacity["charge"])
        assert r["capacity"] == pytest.approx(capacity["full"] or capacity["design"])
        assert r["extra"]["design_capacity"] == pytest.approx(capacity["design"])
    else:
        assert "capacity" not in r


@fuzz_settings
@given(st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 65535))
def test_capacity_encode_decode_round_trip(charge: int, full: int, design: int) -> None:
    r = supervolt.decode(emulator_frames.encode_capacity({"charge": charge / 10, "full": full / 10, "design": design / 10}))
    assert r["charge"] == pytest.approx(charge / 10)
    assert r["capacity"] == pytest.approx((full or design) / 10)
    assert r["extra"]["design_capacity"] == pytest.approx(design / 10)


def test_working_state_alarms_and_switches() -> None:
    state = emulator_frames.working_state(charge_on=False, discharge_on=True, current=-2.0,
                                    alarms=("short_circuit", "charge_overtemperature"))
    assert state == 0x0001 | 0x0020 | 0x0100 | 0x1000 | 0x4000
    r = supervolt.decode(realtime(working_state=state))
    assert r["alarms"] == ("short_circuit", "charge_overtemperature")
    assert r["switches"] == {"charge": False, "discharge": True}
    assert r["extra"]["discharge_switch"] and not r["extra"]["charge_switch"]


def test_current_glitch_is_dropped_not_published() -> None:
    r = supervolt.decode(realtime(charge_current=0.0, discharge_current=612.5))
    assert "current" not in r and r["extra"]["current_glitch"] is True
    assert build(r).current is None


def test_parse_request_rejects_replies_and_bad_checksums() -> None:
    assert emulator_frames.parse_request(RT) is None
    assert emulator_frames.parse_request(emulator_frames.with_checksum(supervolt.REQUEST_CAPACITY, 0x06)) is None
    assert emulator_frames.parse_request(supervolt.encode_frame(0x03, b"", version=0x50)) is None
    assert emulator_frames.parse_request(b":00~") is None


# --- advertisement ---------------------------------------------------------------------------------


def matches(matchers: tuple, name: str, services: tuple[str, ...] = (), mfr: dict | None = None) -> bool:
    return any(m.matches(address="11:22:33:44:55:66", name=name, service_uuids=services,
                         manufacturer_data=mfr or {}) for m in matchers)


def test_matchers_claim_ascii_units() -> None:
    assert matches(supervolt.MATCHERS, "libattU0042", mfr={21320: b"\x01\x02"})
    assert matches(supervolt.MATCHERS, "libatt", services=(supervolt.SERVICE_UUID,))
    assert matches(supervolt.MATCHERS, "SV12V100AH-0001", mfr={33384: b""})
    assert not matches(supervolt.MATCHERS, "SV12V100AH-0001")
    assert not matches(supervolt.MATCHERS, "JBD-SP04S034", services=(jbd.SERVICE_UUID,))


@pytest.mark.parametrize("name", ["SX100-0042", "SX60-1234"])
def test_newer_supervolt_packs_are_left_to_jbd(name: str) -> None:
    for services in ((jbd.SERVICE_UUID,), (supervolt.SERVICE_UUID,), ()):
        assert not matches(supervolt.MATCHERS, name, services, {21320: b"", 33384: b""})
    assert matches(jbd.MATCHERS, name, (jbd.SERVICE_UUID,))
    assert supervolt.speaks_jbd(name)
    assert not supervolt.speaks_jbd("libattU1") and not supervolt.speaks_jbd(None)


def test_jbd_matchers_carry_every_name_we_hand_over() -> None:
    jbd_names = {m.local_name for m in jbd.MATCHERS if m.note}
    assert set(supervolt.JBD_PROTOCOL_NAMES) <= jbd_names
    for pattern in supervolt.JBD_PROTOCOL_NAMES:
        assert not any(m.local_name and fnmatch.fnmatchcase(pattern.rstrip("*"), m.local_name)
                       for m in supervolt.MATCHERS)

"""SOK / ABC-BMS protocol: vectors, reply-set collection, malformed frames, fuzzing, round trips."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.bms.sok import emulator_frames
from bmslib.bms.sok import protocol as sok
from bmslib.errors import FrameError
from bmslib.model import Reading, merge_readings
from bmslib.protocol.fields import decode_array
from tests.helpers import case_id, fuzz_settings, load_vectors

VECTORS = load_vectors("sok")
COMMANDS = [c for c in VECTORS if c["kind"].startswith("command")]
FIXTURE_SET = VECTORS[0]  # replies to C1 (F0, F2) and C2 (F0, F3, F4, F4)
SINGLE_FIXTURES = [c for c in VECTORS if c["kind"].startswith("source test fixture") and "frame" in c]
SYNTHETIC = {c["frame_type"]: c for c in VECTORS if c["kind"].startswith("SYNTHETIC")}

NOTIFICATIONS = [bytes.fromhex(h) for h in FIXTURE_SET["notifications"]]
F0, F2, _, F3, F4A, F4B = NOTIFICATIONS
F1 = bytes.fromhex(SINGLE_FIXTURES[0]["frame"])


def run(codec: sok.SokCodec, command: int, frames: list[bytes]) -> Reading:
    """Send ``command``, feed replies through a fresh assembler; return the set's reading."""
    assert emulator_frames.parse_request(codec.request(command)) == command
    asm = codec.assembler()
    for f in frames:
        for frame in asm.feed(f):
            codec.decode(frame)
    return codec.reading()


def test_fixture_reply_sets_decode_to_expected_values() -> None:
    assert [f[1] for f in NOTIFICATIONS] == [0xF0, 0xF2, 0xF0, 0xF3, 0xF4, 0xF4]
    codec = sok.SokCodec()
    info = run(codec, sok.CMD_INFO, NOTIFICATIONS[:2])
    assert codec.complete
    detail = run(codec, sok.CMD_DETAIL, NOTIFICATIONS[2:])
    assert codec.complete
    r = merge_readings(info, detail)
    exp = FIXTURE_SET["expected"]
    assert r["voltage"] == pytest.approx(exp["voltage"])
    assert r["current"] == pytest.approx(-exp["current"])
    assert r["soc"] == exp["soc"]
    assert r["charge"] == pytest.approx(exp["remaining_ah"])
    assert r["capacity"] == pytest.approx(exp["design_capacity_ah"])
    assert r["cycles"] == exp["cycles"]
    assert len(r["cell_voltages"]) == exp["cell_count"]
    assert list(r["cell_voltages"]) == pytest.approx(exp["cell_voltages"])
    assert len(r["temperatures"]) == exp["temp_sensors"]
    assert list(r["temperatures"]) == pytest.approx(exp["temperatures"])
    assert r["switches"] == {"charge": exp["charge_mosfet"], "discharge": exp["discharge_mosfet"]}
    assert r["extra"]["heater"] is exp["heater"]
    assert r["extra"]["balancing"] is exp["balancer"]
    assert r["extra"]["manufacture_date"] == "2023-03-18"
    assert codec.cell_count == 8  # learnt for the next poll


def test_name_reply_gives_the_model() -> None:
    codec = sok.SokCodec()
    r = run(codec, sok.CMD_NAME, [F1])
    assert codec.complete
    assert r["device_info"].model == SINGLE_FIXTURES[0]["expected"]["model"]


@pytest.mark.parametrize("case", [c for c in SINGLE_FIXTURES if "crc8_valid" in c["expected"]], ids=case_id)
def test_settings_replies_pass_the_crc_and_decode_to_nothing(case: dict) -> None:
    frame = bytes.fromhex(case["frame"])
    assert (sok.SokAssembler().feed(frame) == [frame]) is case["expected"]["crc8_valid"]
    assert sok.decode(frame) == {}


def test_settings_request_completes_with_all_five_replies() -> None:
    frames = [bytes.fromhex(c["frame"]) for c in SINGLE_FIXTURES if "crc8_valid" in c["expected"]]
    codec = sok.SokCodec()
    codec.request(sok.CMD_SETTINGS)
    for f in frames[:-1]:
        assert not codec.offer(f)
    assert codec.offer(frames[-1]) and codec.missing == frozenset()


# The sok-ble frames are synthetic with a zero CRC byte: the assembler must reject them; their
# data bytes are used to check field offsets only.
@pytest.mark.parametrize("case", SYNTHETIC.values(), ids=case_id)
def test_synthetic_frames_are_rejected_by_the_assembler(case: dict) -> None:
    frame = bytes.fromhex(case["frame"])
    assert sok.SokAssembler().feed(frame) == []
    fixed = sok.reply(frame[1], frame[2:-1])  # the CRC is the only defect
    assert fixed[:-1] == frame[:-1] and sok.SokAssembler().feed(fixed) == [fixed]


def test_synthetic_status_offsets() -> None:
    case = SYNTHETIC["CCF0"]
    r = sok.decode(bytes.fromhex(case["frame"]))
    assert r["current"] == pytest.approx(-case["expected"]["current"])
    assert r["soc"] == case["expected"]["soc"]
    assert r["cycles"] == case["expected"]["cycles"]


def test_synthetic_temperature_offset() -> None:
    case = SYNTHETIC["CCF2"]
    frame = bytes.fromhex(case["frame"])
    # sok-ble reads one probe at byte 5 whatever the count says; we follow the count byte (0 here)
    assert decode_array(frame, sok.TEMP_OFFSET, 1, "<h") == [case["expected"]["temperature"]]
    assert sok.decode(frame)["temperatures"] == ()


def test_synthetic_detail_capacity_offset() -> None:
    case = SYNTHETIC["CCF3"]
    r = sok.decode(bytes.fromhex(case["frame"]))
    assert r["extra"]["f3_capacity"] == pytest.approx(case["expected"]["sok_ble_capacity"])
    assert "manufacture_date" not in r["extra"]  # month 0: no date


def test_synthetic_cell_offsets() -> None:
    case = SYNTHETIC["CCF4"]
    cells = sok.decode_cells(bytes.fromhex(case["frame"]))
    assert list(cells) == [1, 2, 3, 4]
    assert list(cells.values()) == pytest.approx(case["expected"]["cell_voltages"])


@pytest.mark.parametrize("case", COMMANDS, ids=case_id)
def test_request_builders_match_captured_commands(case: dict) -> None:
    frame = bytes.fromhex(case["frame"])
    command = emulator_frames.parse_request(frame)
    assert command is not None and sok.request(command) == frame
    assert frame[-1] == case["expected"]["crc8"]


def test_poll_commands_are_info_and_detail() -> None:
    assert sok.POLL_COMMANDS == (sok.CMD_INFO, sok.CMD_DETAIL)
    assert emulator_frames.parse_request(bytes.fromhex("eec1000000cf")) is None  # wrong CRC
    assert emulator_frames.parse_request(bytes.fromhex("ddc000000041")) is None  # "break", not a request we serve


# --- completeness of a reply set --------------------------------------------------------------------


def status(voltage: float) -> bytes:
    return emulator_frames.encode_status({"voltage": voltage, "current": 1.5, "capacity": 100, "charge": 50,
                              "cycles": 3, "soc": 50})


DETAIL = emulator_frames.encode_detail({"year": 24, "month": 2, "day": 29, "heater": 1, "balancer": 0, "f3_capacity": 100})


def test_cells_complete_when_their_sum_meets_the_pack_voltage() -> None:
    cells = [3.3] * 8
    codec = sok.SokCodec()
    codec.request(sok.CMD_DETAIL)
    f4 = emulator_frames.encode_cells(cells)
    assert not codec.offer(status(26.4)) and not codec.offer(DETAIL)
    assert not codec.offer(f4[0])  # 13.2 V of 26.4 V: more to come
    assert codec.offer(f4[1])
    assert codec.reading()["cell_voltages"] == tuple(cells)


@pytest.mark.parametrize("count", [13, 22, 31])
def test_a_missing_last_cell_reply_is_noticed_on_large_packs(count: int) -> None:
    # The last reply holds 1-3 cells: under 10 % of the pack, but always at least one whole cell.
    cells = [3.3] * count
    codec = sok.SokCodec()
    codec.request(sok.CMD_DETAIL)
    f4 = emulator_frames.encode_cells(cells)
    for frame in (status(3.3 * count), DETAIL, *f4[:-1]):
        assert not codec.offer(frame)
    assert codec.offer(f4[-1])
    assert codec.reading()["cell_voltages"] == tuple(cells)


def test_cells_complete_when_the_sum_differs_from_the_pack_voltage_by_less_than_half_a_cell() -> None:
    codec = sok.SokCodec()
    codec.request(sok.CMD_DETAIL)
    for frame in (status(3.3 * 16 - 1.6), DETAIL, *emulator_frames.encode_cells([3.3] * 16)[:-1]):
        assert not codec.offer(frame)
    assert codec.offer(emulator_frames.encode_cells([3.3] * 16)[-1])
    codec.request(sok.CMD_DETAIL)
    codec.cell_count = None
    for frame in (status(3.3 * 16 - 1.7), DETAIL, *emulator_frames.encode_cells([3.3] * 16)):
        codec.offer(frame)
    assert not codec.complete  # 1.7 V off: more than half a cell, the set stays open


def test_cells_complete_on_a_partly_filled_cell_reply() -> None:
    codec = sok.SokCodec()
    codec.request(sok.CMD_DETAIL)
    f4 = emulator_frames.encode_cells([3.2, 3.3, 3.4, 3.5, 3.6, 3.7])
    for frame in (status(0.0), DETAIL, f4[0]):
        assert not codec.offer(frame)
    assert codec.offer(f4[1])
    assert codec.reading()["cell_voltages"] == (3.2, 3.3, 3.4, 3.5, 3.6, 3.7)
    assert codec.cell_count == 6


def test_cells_complete_when_they_repeat_and_the_count_is_learnt() -> None:
    codec = sok.SokCodec()
    codec.request(sok.CMD_DETAIL)
    f4 = emulator_frames.encode_cells([3.3] * 16)
    for frame in (status(0.0), DETAIL, *f4):  # no usable pack voltage
        assert not codec.offer(frame)
    assert codec.missing == {sok.F_CELLS}
    assert codec.offer(emulator_frames.encode_cells([3.9] * 4)[0])  # the first block again (newer values)
    assert codec.reading()["cell_voltages"] == (3.3,) * 16  # one consistent round is reported
    assert codec.cell_count == 16
    codec.request(sok.CMD_DETAIL)  # next poll: the learnt count ends the set without a repeat
    for frame in (status(0.0), DETAIL, *f4[:-1]):
        assert not codec.offer(frame)
    assert codec.offer(f4[-1])


def test_configured_cell_count_ends_the_set() -> None:
    codec = sok.SokCodec(cell_count=4)
    codec.request(sok.CMD_DETAIL)
    for frame in (status(0.0), DETAIL):
        codec.offer(frame)
    assert codec.offer(emulator_frames.encode_cells([3.3] * 8)[0])
    assert len(codec.reading()["cell_voltages"]) == 4


def test_a_gap_in_the_cells_keeps_the_set_open() -> None:
    codec = sok.SokCodec()
    codec.request(sok.CMD_DETAIL)
    f4 = emulator_frames.encode_cells([3.3] * 12)
    for frame in (status(39.6), DETAIL, f4[0], f4[2]):
        assert not codec.offer(frame)
    assert codec.reading()["cell_voltages"] == (3.3,) * 4  # only the gapless start is reported
    assert codec.offer(f4[1])
    assert len(codec.reading()["cell_voltages"]) == 12


def test_a_last_or_repeated_cell_reply_does_not_end_a_set_with_a_gap() -> None:
    codec = sok.SokCodec()
    codec.request(sok.CMD_DETAIL)
    f4 = emulator_frames.encode_cells([3.3] * 10)
    for frame in (status(0.0), DETAIL, f4[0], f4[2], f4[0]):  # partial last block, then a repeat
        assert not codec.offer(frame)
    assert codec.offer(f4[1])
    assert len(codec.reading()["cell_voltages"]) == 10


def test_replies_of_other_requests_and_late_cells_are_ignored() -> None:
    codec = sok.SokCodec()
    r = run(codec, sok.CMD_INFO, [F0, F4A, F3, F2])
    assert codec.complete and codec.ignored == 2
    assert "cell_voltages" not in r and "extra" not in r
    run(codec, sok.CMD_DETAIL, [F0, F3, F4A, F4B])
    assert codec.complete
    before = codec.reading()
    late = emulator_frames.encode_cells([4.0] * 8)[1]
    assert codec.decode(late) == before
    assert codec.ignored == 3


def test_without_a_request_frames_collect_but_never_complete() -> None:
    codec = sok.SokCodec()
    for f in NOTIFICATIONS:
        codec.decode(f)
    assert not codec.complete
    assert len(codec.reading()["cell_voltages"]) == 8


def test_offer_counts_undecodable_frames_instead_of_raising() -> None:
    codec = sok.SokCodec()
    codec.request(sok.CMD_INFO)
    bad = sok.reply(sok.F_FETS, bytes((1, 1, 9)))  # nine probes cannot fit
    with pytest.raises(FrameError, match="temperature"):
        codec.decode(bad)
    assert not codec.offer(bad) and codec.rejected == 1
    assert codec.offer(F0) is False and codec.offer(F2) is True


def test_protection_reply_names_the_set_flags() -> None:
    codec = sok.SokCodec()
    r = run(codec, sok.CMD_PROTECTION, [emulator_frames.encode_protection(["protection_0", "protection_9"])])
    assert codec.complete
    assert r["alarms"] == ("protection_0", "protection_9")
    assert r["extra"]["protection_bitmask"] == 0x0201
    flags = sok.reply(sok.F_PROTECTION, bytes([0xFE] * 16))  # only bit 0 of each byte counts
    assert sok.decode(flags)["alarms"] == ()


# --- malformed frames --------------------------------------------------------------------------------

BAD_FRAMES = {
    "empty": b"",
    "wrong_head": b"\xdd" + F0[1:],
    "wrong_type": F0[:1] + b"\x30" + F0[2:],
    "wrong_crc": F0[:-1] + bytes((F0[-1] ^ 1,)),
    "truncated": F0[:-1],
    "request_echo": sok.request(sok.CMD_INFO),
}


@pytest.mark.parametrize("raw", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_malformed_frames_are_dropped_not_raised(raw: bytes) -> None:
    asm = sok.SokAssembler()
    assert asm.feed(raw) == []
    asm.reset()
    assert asm.feed(F0) == [F0]
    if len(raw) != sok.FRAME_LEN or raw[:1] != b"\xcc":
        with pytest.raises(FrameError):
            sok.decode(raw)


def test_spliced_and_junk_separated_frames() -> None:
    asm = sok.SokAssembler()
    assert asm.feed(F0[:11] + F2 + b"\x00\x01junk" + F3) == [F2, F3]
    assert asm.dropped >= 2


@fuzz_settings
@given(st.lists(st.integers(0, 140), max_size=12))
def test_any_split_of_a_reply_stream_gives_the_same_frames(cuts: list[int]) -> None:
    stream = b"".join(NOTIFICATIONS) + F1
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    asm = sok.SokAssembler()
    frames = [f for a, b in itertools.pairwise(points) for f in asm.feed(stream[a:b])]
    assert frames == [*NOTIFICATIONS, F1]


@fuzz_settings
@given(st.lists(st.binary(max_size=48), max_size=12))
def test_fuzz_assembler_and_codec_never_raise_other_errors(chunks: list[bytes]) -> None:
    asm = sok.SokAssembler()
    codec = sok.SokCodec()
    codec.request(sok.CMD_DETAIL)
    for c in chunks:
        for frame in asm.feed(c):
            codec.offer(frame)
        assert asm.pending < sok.FRAME_LEN


@fuzz_settings
@given(st.integers(0xF0, 0xFF), st.binary(min_size=17, max_size=17), st.sampled_from(sorted(sok.REPLIES)))
def test_fuzz_valid_frames_with_random_bodies(kind: int, body: bytes, command: int) -> None:
    frame = sok.reply(kind, body)
    assert sok.SokAssembler().feed(frame) == [frame]
    for decoder in (sok.decode, sok.decode_cells):
        try:
            decoder(frame)
        except FrameError:
            pass
    codec = sok.SokCodec()
    codec.request(command)
    codec.offer(frame)
    codec.offer(frame)
    assert isinstance(codec.reading(), dict)


# --- device side -----------------------------------------------------------------------------------


@fuzz_settings
@given(
    voltage=st.integers(0, 2**24 - 1), current=st.integers(-(2**23), 2**23 - 1),
    capacity=st.integers(0, 2**24 - 1), charge=st.integers(0, 2**24 - 1),
    cycles=st.integers(0, 65535), soc=st.integers(0, 100),
    fets=st.tuples(st.booleans(), st.booleans()), temps=st.lists(st.integers(-32768, 32767), max_size=7),
    cells=st.lists(st.integers(1, 65535), min_size=1, max_size=32),
)
def test_encode_decode_round_trip(voltage: int, current: int, capacity: int, charge: int, cycles: int,
                                  soc: int, fets: tuple[bool, bool], temps: list[int], cells: list[int]) -> None:
    r = sok.decode(emulator_frames.encode_status({"voltage": voltage / 1000, "current": -current / 1000,
                                      "capacity": capacity / 1000, "charge": charge / 1000,
                                      "cycles": cycles, "soc": soc}))
    assert r["voltage"] == pytest.approx(voltage / 1000)
    assert r["current"] == pytest.approx(-current / 1000)
    assert (r["capacity"], r["charge"]) == pytest.approx((capacity / 1000, charge / 1000))
    assert (r["cycles"], r["soc"]) == (cycles, soc)
    f = sok.decode(emulator_frames.encode_fets(*fets, [float(t) for t in temps]))
    assert f["switches"] == {"charge": fets[0], "discharge": fets[1]}
    assert list(f["temperatures"]) == temps
    volts = [c / 1000 for c in cells]
    codec = sok.SokCodec(cell_count=len(cells))
    codec.request(sok.CMD_DETAIL)
    for frame in (emulator_frames.encode_status({"voltage": 0}), DETAIL, *emulator_frames.encode_cells(volts)):
        codec.offer(frame)
    assert codec.complete
    assert list(codec.reading()["cell_voltages"]) == pytest.approx(volts)


def test_detail_and_name_round_trip() -> None:
    r = sok.decode(DETAIL)
    assert r["extra"] == {"heater": True, "balancing": False, "f3_capacity": 100.0, "manufacture_date": "2024-02-29"}
    assert sok.decode(emulator_frames.encode_name("SOK-BMS\r"))["device_info"].model == "SOK-BMS"
    assert sok.decode(emulator_frames.encode_name("")) == {}


# --- advertisement ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "services", "expected"), [
    ("SOK-24V1127", (sok.ADVERTISED_SERVICE_UUID,), True),
    ("SOK-AA02120", (sok.ADVERTISED_SERVICE_UUID, sok.SERVICE_UUID), True),
    ("ABC-1234", (sok.ADVERTISED_SERVICE_UUID.upper(),), True),
    ("Hoover", (sok.ADVERTISED_SERVICE_UUID,), True),
    ("SOK-24V1127", (sok.SERVICE_UUID,), False),  # the data service is not what it advertises
    ("SOK-24V1127", (), False),
    ("JBD-SP04S034", (sok.ADVERTISED_SERVICE_UUID,), False),
])
def test_matchers(name: str, services: tuple[str, ...], expected: bool) -> None:
    got = any(m.matches(address="D6:6C:0A:61:14:30", name=name, service_uuids=services, manufacturer_data={})
              for m in sok.MATCHERS)
    assert got is expected

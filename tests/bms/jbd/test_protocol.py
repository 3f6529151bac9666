"""JBD protocol: real captures, malformed frames, fuzzing and encode/decode round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.bms.jbd.protocol import frames as jbd
from bmslib.errors import FrameError
from bmslib.model import Reading, merge_readings
from tests.helpers import case_id, chunks_of, fuzz_settings, load_vectors

VECTORS = load_vectors("jbd")
RESPONSES = [c for c in VECTORS if ("frame" in c or "notifications" in c) and c["kind"] != "command (host->BMS)"]
COMMANDS = [c for c in VECTORS if c["kind"] == "command (host->BMS)"]


def decode_chunks(chunks: list[bytes]) -> Reading:
    asm = jbd.JbdAssembler()
    frames = [f for c in chunks for f in asm.feed(c)]
    assert len(frames) == 1, f"expected one frame, got {len(frames)} (last error: {asm.last_error})"
    return jbd.decode(frames[0])


@pytest.mark.parametrize("case", [c for c in RESPONSES if c["frame_type"] != "error_counts(0xAA)"], ids=case_id)
def test_vectors_decode_to_expected_values(case: dict) -> None:
    r = decode_chunks(chunks_of(case))
    exp = case["expected"]
    if "voltage" in exp:
        assert r["voltage"] == pytest.approx(exp["voltage"])
    if "current" in exp:  # vectors are charge-positive, the model is discharge-positive
        assert r["current"] == pytest.approx(-exp["current"])
    if "remaining_ah" in exp:
        assert r["charge"] == pytest.approx(exp["remaining_ah"])
    for key in ("nominal_ah", "design_capacity_ah"):
        if key in exp:
            assert r["capacity"] == pytest.approx(exp[key])
    if "cycles" in exp:
        assert r["cycles"] == exp["cycles"]
    if "soc" in exp:
        assert r["soc"] == exp["soc"]
    if "temperatures" in exp:
        assert list(r["temperatures"]) == pytest.approx(exp["temperatures"], abs=0.05)
    if "charge_mosfet" in exp:
        assert r["switches"] == {"charge": exp["charge_mosfet"], "discharge": exp["discharge_mosfet"]}
    if "cell_count" in exp:
        assert r["extra"]["cell_count"] == exp["cell_count"]
    if "production_date" in exp:
        assert r["extra"]["production_date"] == exp["production_date"]
    if "software_version" in exp:
        assert float(r["device_info"].sw_version or "nan") == exp["software_version"]
    for key in ("errors_bitmask", "problem_code"):
        if key in exp:
            assert r["extra"]["protection_bitmask"] == exp[key]
            assert r["alarms"] == ()
    if "cell_voltages" in exp:
        assert list(r["cell_voltages"]) == pytest.approx(exp["cell_voltages"])
    if "model" in exp:
        assert r["device_info"].model == exp["model"]
    if "hw_version" in exp:
        assert r["device_info"].model == exp["hw_version"]


@pytest.mark.parametrize("case", COMMANDS, ids=case_id)
def test_request_builders_match_captured_commands(case: dict) -> None:
    frame = bytes.fromhex(case["frame"])
    _mode, register, data = jbd.parse_request(frame) or (None, None, None)
    if register == jbd.REG_MOS:
        mask = data[1]
        assert jbd.mos_request(charge_on=not mask & 1, discharge_on=not mask & 2) == frame
    else:
        assert jbd.request(register) == frame
    assert frame[-3:-1].hex() == case["expected"]["checksum"]


def test_basic_and_cells_merge_into_one_sample_reading() -> None:
    basic = decode_chunks(chunks_of(RESPONSES[0]))
    cells = decode_chunks(chunks_of(RESPONSES[1]))
    merged = merge_readings(basic, cells)
    assert merged["voltage"] == 15.6 and len(merged["cell_voltages"]) == 4


GOOD = bytes.fromhex("dd0400080f450f3d0f370f3dfec677")
BAD_FRAMES = {
    "empty": b"",
    "wrong_start": b"\xee" + GOOD[1:],
    "wrong_end": GOOD[:-1] + b"\x00",
    "wrong_checksum": GOOD[:-3] + b"\x00\x00\x77",
    "truncated": GOOD[:-2],
    "wrong_length": GOOD[:3] + b"\x09" + GOOD[4:],
    "bad_status": GOOD[:2] + b"\x05" + GOOD[3:],
}


@pytest.mark.parametrize("raw", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_malformed_frames_are_dropped_not_raised(raw: bytes) -> None:
    asm = jbd.JbdAssembler()
    assert asm.feed(raw) == []
    # the assembler recovers: a good frame right after is accepted
    asm.reset()
    assert asm.feed(GOOD) == [GOOD]


def test_error_status_reply_raises_frame_error() -> None:
    frame = jbd.response(jbd.REG_BASIC, b"", status=jbd.STATUS_ERROR)
    (got,) = jbd.JbdAssembler().feed(frame)
    with pytest.raises(FrameError, match="error status"):
        jbd.decode(got)


def test_resync_after_junk_and_split_frames() -> None:
    asm = jbd.JbdAssembler()
    stream = b"\x01\x02junk" + GOOD + b"\xdd\x03" + GOOD  # a stray start byte before the next frame
    frames = [f for i in range(0, len(stream), 3) for f in asm.feed(stream[i:i + 3])]
    assert frames == [GOOD, GOOD]
    assert asm.dropped >= 1


@fuzz_settings
@given(st.lists(st.binary(max_size=64), max_size=12))
def test_fuzz_assembler_and_decoder_never_raise_other_errors(chunks: list[bytes]) -> None:
    asm = jbd.JbdAssembler()
    for c in chunks:
        for frame in asm.feed(c):
            try:
                jbd.decode(frame)
            except FrameError:
                pass
    assert asm.pending <= 262


@fuzz_settings
@given(st.integers(0, 255), st.binary(max_size=255))
def test_fuzz_valid_envelopes_with_random_payloads(register: int, payload: bytes) -> None:
    frame = jbd.response(register, payload)
    assert jbd.JbdAssembler().feed(frame) == [frame]
    try:
        jbd.decode(frame)
    except FrameError:
        pass


@fuzz_settings
@given(
    voltage=st.integers(0, 65535), current=st.integers(-32768, 32767), charge=st.integers(0, 65535),
    capacity=st.integers(0, 65535), cycles=st.integers(0, 65535), soc=st.integers(0, 100),
    fet=st.integers(0, 3), temps=st.lists(st.integers(0, 65535), max_size=8),
    cells=st.lists(st.integers(0, 65535), min_size=1, max_size=32),
)
def test_encode_decode_round_trip(voltage: int, current: int, charge: int, capacity: int, cycles: int,
                                  soc: int, fet: int, temps: list[int], cells: list[int]) -> None:
    values = {"voltage": voltage / 100, "current": -current / 100, "charge": charge / 100,
              "capacity": capacity / 100, "cycles": cycles, "soc": soc, "fet": fet, "cell_count": len(cells)}
    temperatures = [t / 10 - 273.1 for t in temps]
    r = jbd.decode(jbd.response(jbd.REG_BASIC, jbd.encode_basic(values, temperatures)))
    assert r["voltage"] == pytest.approx(voltage / 100)
    assert r["current"] == pytest.approx(-current / 100)
    assert r["charge"] == pytest.approx(charge / 100)
    assert r["cycles"] == cycles and r["soc"] == soc
    assert r["switches"] == {"charge": bool(fet & 1), "discharge": bool(fet & 2)}
    assert list(r["temperatures"]) == pytest.approx(temperatures, abs=0.051)
    c = jbd.decode(jbd.response(jbd.REG_CELLS, jbd.encode_cells([v / 1000 for v in cells])))
    assert list(c["cell_voltages"]) == pytest.approx([v / 1000 for v in cells])

"""JBD FF AA password handshake: the captured exchange, state machine, device side, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.bms.jbd.protocol import auth as jbd_auth
from bmslib.bms.jbd.protocol.auth import AuthOutcome, JbdAuthDevice, JbdAuthSession
from tests.helpers import fuzz_settings, load_vectors

(CAPTURE,) = [c for c in load_vectors("jbd") if "sequence" in c]
HOST = [bytes.fromhex(h) for d, h in CAPTURE["sequence"] if d == ">>>"]
BMS = [bytes.fromhex(h) for d, h in CAPTURE["sequence"] if d == "<<<"]
MAC = "a4:c1:37:04:2d:be"
PASSWORD = CAPTURE["expected"]["password"]
RANDOM = CAPTURE["expected"]["random_byte"]
# the capture goes on with the first DD poll once the handshake is done
AUTH_HOST, FIRST_POLL = HOST[:-1], HOST[-1]

# basic-info reply from the same capture (two notifications)
DD_CHUNKS = [bytes.fromhex("dd03001d053600004ff253340001309b00000000"),
             bytes.fromhex("000044600304030bb70bbf0bb9fa1677")]


def run(session: JbdAuthSession, device: JbdAuthDevice, *, max_steps: int = 10) -> list[bytes]:
    """Drive session against device; return the requests written."""
    sent = [session.start()]
    for _ in range(max_steps):
        reply = device.handle(sent[-1])
        assert reply is not None
        nxt = session.feed(reply)
        if nxt is None:
            break
        sent.append(nxt)
    return sent


def test_capture_shape() -> None:
    assert bytes.fromhex("dda50300fffd77") == FIRST_POLL
    assert len(AUTH_HOST) == len(BMS) == 4
    assert RANDOM == 0x37 == BMS[1][4]


def test_builders_reproduce_the_captured_requests() -> None:
    mac = jbd_auth.parse_mac(MAC)
    assert jbd_auth.app_key_request() == AUTH_HOST[0]
    assert jbd_auth.random_request() == AUTH_HOST[1]
    assert jbd_auth.user_password_request(mac, PASSWORD, RANDOM) == AUTH_HOST[2]
    assert jbd_auth.root_password_request(mac, RANDOM) == AUTH_HOST[3]
    assert jbd_auth.encrypt(mac, PASSWORD.encode(), RANDOM).hex() == CAPTURE["expected"]["encrypted_password"]


def test_session_reproduces_the_capture_byte_for_byte() -> None:
    session = JbdAuthSession(MAC, PASSWORD)
    sent = [session.start()]
    for reply in BMS:
        assert not session.finished
        nxt = session.feed(reply)
        if nxt is not None:
            sent.append(nxt)
    assert sent == AUTH_HOST
    assert session.outcome is AuthOutcome.DONE and session.awaiting is None


def test_device_reproduces_the_captured_replies() -> None:
    device = JbdAuthDevice(MAC, PASSWORD, random_byte=lambda: RANDOM)
    assert not device.authenticated
    assert [device.handle(r) for r in AUTH_HOST] == BMS
    assert device.authenticated
    assert device.handle(FIRST_POLL) is None  # DD frames are not the handshake's business


def test_session_against_device_with_dd_frames_and_junk_interleaved() -> None:
    session = JbdAuthSession(bytes.fromhex("a4c137042dbe"), PASSWORD)
    device = JbdAuthDevice(MAC, PASSWORD, random_byte=lambda: RANDOM)
    sent = [session.start()]
    while not session.finished:
        reply = device.handle(sent[-1])
        assert reply is not None
        nxt = None
        for chunk in (DD_CHUNKS[0], b"\x00\xff", DD_CHUNKS[1], reply[:3], reply[3:], b"\xff\xaa\x77"):
            nxt = session.feed(chunk) or nxt
        if nxt is not None:
            sent.append(nxt)
    assert sent == AUTH_HOST and session.outcome is AuthOutcome.DONE


def test_no_password_required() -> None:
    session = JbdAuthSession(MAC)
    device = JbdAuthDevice(MAC, None)
    assert device.authenticated
    assert run(session, device) == [jbd_auth.app_key_request()]
    assert session.outcome is AuthOutcome.NO_PASSWORD and session.finished


def test_wrong_password_is_rejected_once_and_clearly() -> None:
    session = JbdAuthSession(MAC, "654321")
    device = JbdAuthDevice(MAC, PASSWORD, random_byte=lambda: RANDOM)
    sent = run(session, device)
    assert [s[2] for s in sent] == [0x15, 0x17, 0x18]  # no root password after a rejection
    assert session.outcome is AuthOutcome.REJECTED and "user password" in session.reason
    assert not device.authenticated
    assert session.feed(BMS[3]) is None and session.outcome is AuthOutcome.REJECTED  # stays over


def test_app_key_and_root_rejections() -> None:
    session = JbdAuthSession(MAC, PASSWORD)
    session.start()
    assert session.feed(jbd_auth.frame(0x15, b"\x01")) is None
    assert session.outcome is AuthOutcome.REJECTED and "app key" in session.reason
    session.start()
    for reply in BMS[:3]:
        session.feed(reply)
    assert session.feed(jbd_auth.frame(0x1D, b"\x01")) is None
    assert session.outcome is AuthOutcome.REJECTED and "root password" in session.reason


def test_unexpected_and_stale_replies_are_ignored() -> None:
    session = JbdAuthSession(MAC, PASSWORD)
    assert session.feed(BMS[0]) is None and session.awaiting is None  # nothing asked yet
    session.start()
    assert session.awaiting == 0x15
    assert session.feed(BMS[2]) is None  # a 0x18 reply while waiting for 0x15
    assert session.feed(jbd_auth.frame(0x15, b"\x00\x00")) is None  # wrong length
    assert not session.finished
    assert session.feed(BMS[0]) == AUTH_HOST[1]


def test_device_rejects_passwords_sent_out_of_order() -> None:
    device = JbdAuthDevice(MAC, PASSWORD, random_byte=lambda: RANDOM)
    assert device.handle(AUTH_HOST[2]) == jbd_auth.frame(0x18, b"\x01")  # no random asked yet
    assert device.handle(AUTH_HOST[1]) == BMS[1]
    assert device.handle(AUTH_HOST[3]) == jbd_auth.frame(0x1D, b"\x01")  # root before user
    assert not device.authenticated
    assert device.handle(jbd_auth.frame(0x16, b"123123654321")) == jbd_auth.frame(0x16, b"\x01")


GOOD = BMS[1]
BAD_FRAMES = {
    "empty": b"",
    "wrong_header": b"\xff\xab" + GOOD[2:],
    "wrong_checksum": GOOD[:-1] + b"\x00",
    "truncated": GOOD[:-1],
    "unknown_command": jbd_auth.frame(0x42, b"\x00"),
    "too_long": jbd_auth.frame(0x15, bytes(40)),
    "dd_frame": b"".join(DD_CHUNKS),
    "dd_checksum_looks_like_header": bytes.fromhex("dd0400022a2affaa77"),
}


@pytest.mark.parametrize("raw", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_malformed_frames_are_dropped(raw: bytes) -> None:
    asm = jbd_auth.FfAaAssembler()
    assert asm.feed(raw) == []
    assert jbd_auth.parse_frame(raw) is None
    assert asm.feed(GOOD) == [GOOD]  # and the next good frame still comes through


def test_header_split_across_notifications() -> None:
    asm = jbd_auth.FfAaAssembler()
    stream = b"junk\xff" + b"".join(BMS) + b"\x77"
    frames = [f for i in range(0, len(stream), 1) for f in asm.feed(stream[i:i + 1])]
    assert frames == BMS and asm.dropped >= 1


@pytest.mark.parametrize("mac", ["", "a4:c1:37:04:2d", "zz:c1:37:04:2d:be", b"\x01\x02"])
def test_parse_mac_rejects_non_macs(mac: str | bytes) -> None:
    with pytest.raises(ValueError, match="MAC"):
        jbd_auth.parse_mac(mac)


@pytest.mark.parametrize("password", ["", "12345", "1234567", "12345é"])
def test_password_must_be_six_ascii_characters(password: str) -> None:
    with pytest.raises(ValueError, match="6 ASCII") as info:
        JbdAuthSession(MAC, password)
    assert not password or password not in str(info.value)


@fuzz_settings
@given(st.binary(min_size=6, max_size=6), st.text(st.characters(max_codepoint=127), min_size=6, max_size=6),
       st.integers(0, 255))
def test_session_and_device_agree_for_any_mac_password_and_random(mac: bytes, password: str, rnd: int) -> None:
    session = JbdAuthSession(mac, password)
    device = JbdAuthDevice(mac, password, random_byte=lambda: rnd)
    assert len(run(session, device)) == 4
    assert session.outcome is AuthOutcome.DONE and device.authenticated


@fuzz_settings
@given(st.binary(min_size=6, max_size=6), st.integers(0, 255),
       st.lists(st.tuples(st.sampled_from(sorted(jbd_auth.KNOWN_COMMANDS)), st.binary(max_size=32))))
def test_frame_parse_round_trip(mac: bytes, rnd: int, frames: list[tuple[int, bytes]]) -> None:
    stream = b"".join(jbd_auth.frame(cmd, data) for cmd, data in frames)
    got = [jbd_auth.parse_frame(f) for f in jbd_auth.FfAaAssembler().feed(stream)]
    assert got == frames
    secret = bytes(range(15))
    assert jbd_auth.encrypt(mac, secret, rnd) != jbd_auth.encrypt(mac, secret, (rnd + 1) & 0xFF)


@fuzz_settings
@given(st.lists(st.binary(max_size=48), max_size=12))
def test_fuzz_assembler_session_and_device(chunks: list[bytes]) -> None:
    asm = jbd_auth.FfAaAssembler()
    session = JbdAuthSession(MAC, PASSWORD)
    session.start()
    device = JbdAuthDevice(MAC, PASSWORD)
    for c in chunks:
        for f in asm.feed(c):
            assert jbd_auth.parse_frame(f) is not None
        nxt = session.feed(c)
        assert nxt is None or jbd_auth.parse_frame(nxt) is not None
        reply = device.handle(c)
        assert reply is None or jbd_auth.parse_frame(reply) is not None
        assert asm.pending <= jbd_auth.MAX_DATA + 5

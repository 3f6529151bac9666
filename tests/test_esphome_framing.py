"""The simulated ESPHome node's frame codecs and Noise responder: unit tests and fuzz (hypothesis).

The frames are checked against aioesphomeapi's own encoders (the client's side of the same wire).
"""

from __future__ import annotations

import asyncio
import base64

import pytest
from aioesphomeapi._frame_helper.packets import make_plain_text_packets
from aioesphomeapi.noise import NoiseHandshake
from hypothesis import given
from hypothesis import strategies as st

from bmslib.sim.esphome import framing
from bmslib.sim.esphome.node import EsphomeNode
from bmslib.sim.esphome.noise import PROLOGUE, NoiseResponder, State, decode_psk
from bmslib.sim.radio import SimRadio

KEY = base64.b64encode(bytes(range(32))).decode()


@given(st.integers(min_value=0, max_value=2**28 - 1))
def test_varint_round_trip(value: int) -> None:
    raw = framing.encode_varint(value)
    assert framing.decode_varint(raw + b"\xff", 0) == (value, len(raw))
    assert framing.decode_varint(raw[:-1], 0) is None


def test_varint_too_long() -> None:
    with pytest.raises(framing.FrameError):
        framing.decode_varint(b"\x80\x80\x80\x80\x01", 0)


@given(st.lists(st.tuples(st.integers(0, 200), st.binary(max_size=300)), max_size=8), st.data())
def test_plaintext_frames_as_the_client_writes_them(messages: list[tuple[int, bytes]], data: st.DataObject) -> None:
    wire = b"".join(make_plain_text_packets(messages))
    assert b"".join(framing.encode_plaintext(t, p) for t, p in messages) == wire
    decoder = framing.PlaintextDecoder()
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(wire):  # arriving in pieces of any size
        step = data.draw(st.integers(1, 64))
        out += decoder.feed(wire[pos:pos + step])
        pos += step
    assert out == messages


def test_plaintext_decoder_rejects_other_markers() -> None:
    with pytest.raises(framing.FrameError) as err:
        framing.PlaintextDecoder().feed(b"\x01\x00\x00")
    assert err.value.marker == framing.NOISE
    with pytest.raises(framing.FrameError):
        framing.PlaintextDecoder().feed(b"\x00\xff\xff\x7f\x01")  # length beyond 65535


def test_noise_frames() -> None:
    wire = framing.encode_noise(b"abc") + framing.encode_noise(b"")
    decoder = framing.NoiseDecoder()
    assert decoder.feed(wire[:4]) == []
    assert decoder.feed(wire[4:]) == [b"abc", b""]
    with pytest.raises(framing.FrameError) as err:
        framing.NoiseDecoder().feed(b"\x00\x03\x01")
    assert err.value.marker == framing.PLAINTEXT
    assert framing.decode_noise_message(framing.encode_noise_message(0x1234, b"xy")) == (0x1234, b"xy")
    with pytest.raises(framing.FrameError):
        framing.decode_noise_message(b"\x00\x01\x00")


@given(st.lists(st.binary(max_size=80), max_size=6))
def test_decoders_raise_only_frame_error_on_junk(chunks: list[bytes]) -> None:
    for decoder in (framing.PlaintextDecoder(), framing.NoiseDecoder()):
        try:
            for chunk in chunks:
                decoder.feed(chunk)
        except framing.FrameError:
            pass


def _handshake(client: NoiseHandshake, server: NoiseResponder) -> list[bytes]:
    assert server.handshake(b"") == [b"\x01proxy-1\x00240ac4000001\x00"]  # the server hello
    return server.handshake(b"\x00" + client.write_message())


def test_noise_handshake_and_messages_against_the_client() -> None:
    client = NoiseHandshake(KEY, PROLOGUE)
    server = NoiseResponder(decode_psk(KEY), name="proxy-1", mac="240ac4000001")
    [reply] = _handshake(client, server)
    assert reply[0] == 0x00 and server.state is State.READY
    client.read_message(reply[1:])
    encrypt, decrypt = client.get_ciphers()
    assert server.decrypt(encrypt.encrypt(framing.encode_noise_message(7, b"ping"))) == (7, b"ping")
    assert framing.decode_noise_message(decrypt.decrypt(server.encrypt(8, b"pong"))) == (8, b"pong")
    with pytest.raises(framing.FrameError):
        server.decrypt(b"\x00" * 20)


def test_noise_wrong_key_is_a_mac_failure() -> None:
    client = NoiseHandshake(base64.b64encode(bytes(32)).decode(), PROLOGUE)
    server = NoiseResponder(decode_psk(KEY), name="proxy-1", mac="240ac4000001")
    assert _handshake(client, server) == [b"\x01Handshake MAC failure"]
    assert server.state is State.FAILED


@pytest.mark.parametrize("bad", ["", "not base64!", base64.b64encode(bytes(16)).decode()])
def test_bad_keys(bad: str) -> None:
    with pytest.raises(ValueError, match="encryption key"):
        decode_psk(bad)


@given(st.lists(st.binary(max_size=100), max_size=5))
def test_noise_responder_raises_only_frame_error_on_junk(frames: list[bytes]) -> None:
    server = NoiseResponder(decode_psk(KEY), name="n", mac="m")
    for frame in frames:
        try:
            if server.state is State.READY:
                server.decrypt(frame)
            else:
                server.handshake(frame)
        except framing.FrameError:
            pass


@pytest.mark.parametrize("psk", [None, KEY], ids=["plaintext", "noise"])
async def test_node_survives_junk_from_a_client(radio: SimRadio, psk: str | None) -> None:
    junk = [b"\x00\xff\xff\xff\xff\xff", b"\x02garbage", b"\x01\x00\x05\x00abcd\x01\x00\x03\x00xy",
            b"\x00\x05\x01\x08\x08\x08\x08\x08"]
    async with EsphomeNode(radio, noise_psk=psk) as node:
        for raw in junk:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            writer.write(raw)
            await writer.drain()
            await asyncio.wait_for(reader.read(), 20)  # the node answers what it can and closes
            writer.close()
        assert node.listening

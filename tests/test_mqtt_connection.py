"""The MQTT connection against a real mosquitto: Nagle off on the socket, and QoS 0 messages framed by
batmon and sent together (one buffer per turn of the event loop) arrive complete, in the order they
were published, interleaved correctly with QoS 1 messages, with their retain flags."""

from __future__ import annotations

import asyncio
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.config import MqttConfig
from bmslib.mqtt.connection import MqttConnection, publish_packet
from tests.mqtt_broker import Broker, Watcher, broker, wait_for, watcher

__all__ = ["broker", "watcher"]  # fixtures


def _connection(broker: Broker, name: str) -> MqttConnection:
    config = MqttConfig(host=broker.host, port=broker.port, user=None, password=None, tls=False, ca_cert=None,
                        discovery_prefix="homeassistant")
    return MqttConnection(config, client_id=name, will_topic=f"batmon/{name}/status",
                          on_connected=lambda: None, on_message=lambda *_: None)


async def test_the_mqtt_socket_has_nagle_off(broker: Broker) -> None:
    conn = _connection(broker, "nodelay-test")
    conn.start()
    try:
        await wait_for(lambda: conn.connected, what="the connection")
        sock = conn.client.socket()
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        await conn.stop(1.0)


def _sequence() -> list[tuple[str, str, bool, int]]:
    """(topic, payload, retain, qos): short and long payloads (1-, 2- and 3-byte remaining lengths),
    non-ASCII text, an empty payload, retained ones, and QoS 1 messages in between."""
    msgs: list[tuple[str, str, bool, int]] = []
    for i in range(40):
        msgs.append((f"seq/state/{i}", f"{i * 0.5:.2f}", False, 0))
    msgs.append(("seq/qos1/a", "between", True, 1))
    msgs.append(("seq/long/200", "x" * 200, False, 0))
    msgs.append(("seq/long/20000", "y" * 20_000, True, 0))
    msgs.append(("seq/text/°C", "Überladung ⚡", True, 0))
    msgs.append(("seq/empty", "", False, 0))
    msgs.append(("seq/qos1/b", "after", False, 1))
    msgs.extend((f"seq/tail/{i}", str(i), i % 2 == 0, 0) for i in range(10))
    return msgs


@pytest.mark.parametrize("batching", [True, False], ids=["batched", "paho-publish"])
async def test_messages_arrive_complete_and_in_order(broker: Broker, watcher: Watcher, batching: bool) -> None:
    conn = _connection(broker, f"order-{batching}")
    conn.start()
    try:
        await wait_for(lambda: conn.connected, what="the connection")
        if not batching:
            conn._batching = False  # the path taken when paho's write queue is not as expected
        sent = _sequence()
        for topic, payload, retain, qos in sent:
            assert conn.publish(topic, payload, retain=retain, qos=qos)
        await wait_for(lambda: len(watcher.seen()) >= len(sent), what="every message")
        got = [(m.topic, m.payload) for m in watcher.seen()]
        assert got == [(t, p) for t, p, _, _ in sent]
        held = await asyncio.to_thread(watcher.retained, "seq/", 0.5)
        assert held == {t: p for t, p, r, _ in sent if r and p}
    finally:
        await conn.stop(1.0)


async def test_more_than_one_buffer_in_one_turn(broker: Broker, watcher: Watcher) -> None:
    """200 kB of states queued without yielding to the loop: handed to paho in several buffers, none lost."""
    conn = _connection(broker, "big-turn")
    conn.start()
    try:
        await wait_for(lambda: conn.connected, what="the connection")
        for i in range(200):
            assert conn.publish(f"big/{i}", f"{i:04d}" + "z" * 1000)
        await wait_for(lambda: len(watcher.seen()) >= 200, what="200 messages")
        assert [m.topic for m in watcher.seen()] == [f"big/{i}" for i in range(200)]
        assert all(m.payload.startswith(f"{i:04d}") and len(m.payload) == 1004
                   for i, m in enumerate(watcher.seen()))
    finally:
        await conn.stop(1.0)


@pytest.mark.parametrize("batching", [True, False], ids=["batched", "paho-publish"])
async def test_a_topic_no_publisher_may_use_is_refused_alone(broker: Broker, watcher: Watcher,
                                                             batching: bool) -> None:
    conn = _connection(broker, f"bad-topic-{batching}")
    conn.start()
    try:
        await wait_for(lambda: conn.connected, what="the connection")
        conn._batching = batching and conn._batching
        assert conn.publish("ok/1", "a")
        for bad in ("bad/+/x", "bad/#", ""):
            assert not conn.publish(bad, "b")
        assert conn.publish("ok/2", "c")
        await wait_for(lambda: len(watcher.seen()) >= 2, what="the good messages")
        await asyncio.sleep(0.2)
        assert [(m.topic, m.payload) for m in watcher.seen()] == [("ok/1", "a"), ("ok/2", "c")]
    finally:
        await conn.stop(1.0)


def _parse(packet: bytes) -> tuple[int, str, bytes]:
    """An independent reading of a PUBLISH packet: (first byte, topic, payload); checks the lengths."""
    n = shift = 0
    i = 1
    while True:
        byte = packet[i]
        n |= (byte & 0x7F) << shift
        shift += 7
        i += 1
        if not byte & 0x80:
            break
    assert len(packet) - i == n, "remaining length"
    tlen = int.from_bytes(packet[i:i + 2], "big")
    topic = packet[i + 2:i + 2 + tlen].decode()
    return packet[0], topic, packet[i + 2 + tlen:]


@given(topic=st.text(st.characters(blacklist_characters="+#\0", blacklist_categories=("Cs",)), min_size=1,
                     max_size=80),
       payload=st.text(st.characters(blacklist_categories=("Cs",)), max_size=300) | st.sampled_from(["a" * 16_400]),
       retain=st.booleans())
def test_publish_packet_frames_what_it_was_given(topic: str, payload: str, retain: bool) -> None:
    first, got_topic, got_payload = _parse(publish_packet(topic, payload, retain))
    assert first == (0x31 if retain else 0x30)
    assert got_topic == topic
    assert got_payload == payload.encode()


@pytest.mark.parametrize("topic", ["", "a/+", "a/#", "a\0b", "t" * 70_000])
def test_publish_packet_refuses_topics_no_publisher_may_use(topic: str) -> None:
    with pytest.raises(ValueError):
        publish_packet(topic, "x", False)

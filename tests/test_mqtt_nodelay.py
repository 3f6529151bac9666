"""The daemon's MQTT socket sends each packet at once (TCP_NODELAY): with Nagle's algorithm a state could
wait for the broker's delayed ACK (40 ms on Linux), which bench/pipeline.py saw as a p99 of about 42 ms."""

from __future__ import annotations

import socket

from bmslib.config import MqttConfig
from bmslib.mqtt_connection import MqttConnection
from tests.mqtt_broker import Broker, broker, wait_for

__all__ = ["broker"]  # fixture


async def test_the_mqtt_socket_has_nagle_off(broker: Broker) -> None:
    config = MqttConfig(host=broker.host, port=broker.port, user=None, password=None, tls=False, ca_cert=None,
                        discovery_prefix="homeassistant")
    conn = MqttConnection(config, client_id="nodelay-test", will_topic="batmon/test/status",
                          on_connected=lambda: None, on_message=lambda *_: None)
    conn.start()
    try:
        await wait_for(lambda: conn.connected, what="the connection")
        sock = conn.client.socket()
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        await conn.stop(1.0)

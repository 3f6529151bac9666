"""A real mosquitto broker for tests, and a small MQTT client to watch and poke it.

:class:`Broker` starts Debian's ``mosquitto`` on a free loopback port with a generated config (no
persistence: a restart forgets retained messages, as a broker that lost its disk would). It can be
stopped, killed and restarted on the same port. ``tls=True`` serves TLS only, with a server
certificate signed by a test CA generated at test time (``broker.ca_cert``).

:class:`Watcher` is a paho client (its own thread) that records every message it sees.

Fixtures: ``broker``, ``tls_broker`` and ``watcher`` (import them into a test module).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.servers import ServerProcess, find_binary

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto")


def mosquitto_binary() -> str:
    return find_binary("mosquitto", MOSQUITTO_PATHS)


def mosquitto_passwd_binary() -> str:
    return shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"  # same Debian package as mosquitto


def make_test_ca(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``host`` (IP and localhost SANs): (ca.pem, server.pem, server.key)."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "batmon test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


class Broker(ServerProcess):
    """One mosquitto process on 127.0.0.1:<port>."""

    name = "mosquitto"

    def __init__(self, directory: Path, *, tls: bool = False, users: dict[str, str] | None = None,
                 extra_conf: tuple[str, ...] = ()) -> None:
        super().__init__(directory, "mosquitto.log")
        self.tls = tls
        self.ca_cert: Path | None = None
        self.users = dict(users or {})
        lines = [f"listener {self.port} {self.host}", f"allow_anonymous {'false' if users else 'true'}",
                 "persistence false",
                 "log_dest stderr", "log_type error", "log_type warning", "log_type notice", "log_type information",
                 "connection_messages true", "max_keepalive 120"]
        if os.geteuid() == 0:
            lines.append("user root")
        if tls:
            self.ca_cert, cert, key = make_test_ca(self.dir)
            lines += [f"cafile {self.ca_cert}", f"certfile {cert}", f"keyfile {key}", "tls_version tlsv1.2"]
        if users:
            passwords = self.dir / "passwords"
            for n, (user, password) in enumerate(self.users.items()):
                subprocess.run([mosquitto_passwd_binary(), *(["-c"] if n == 0 else []), "-b", str(passwords), user,
                                password], check=True, capture_output=True)
            lines.append(f"password_file {passwords}")
        lines.extend(extra_conf)
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> None:
        self.spawn([mosquitto_binary(), "-c", str(self.conf)], self._listening, timeout)

    def _listening(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.2):
            return True
        return False

    def stop(self, grace: float = 5.0) -> None:
        super().stop(grace)

    def restart(self) -> None:
        self.stop()
        self.start()

    def options(self, **extra: object) -> dict[str, object]:
        """The batmon options that point at this broker."""
        opts: dict[str, object] = {"mqtt_broker": self.host, "mqtt_port": self.port}
        if self.tls:
            opts.update(mqtt_tls=True, mqtt_ca_cert=str(self.ca_cert))
        opts.update(extra)
        return opts


@dataclass(frozen=True)
class Message:
    topic: str
    payload: str
    retain: bool
    at: float


class Watcher:
    """A paho client (own network thread) that records every message on its subscriptions."""

    def __init__(self, broker: Broker, topics: tuple[str, ...] = ("#",)) -> None:
        self.broker = broker
        self.topics = topics
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"watcher-{os.getpid()}-{id(self):x}")
        if broker.tls:
            assert broker.ca_cert is not None
            c.tls_set(ca_certs=str(broker.ca_cert))
        if broker.users:
            user, password = next(iter(broker.users.items()))
            c.username_pw_set(user, password)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.reconnect_delay_set(0.1, 0.5)
        self.client = c

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        client.subscribe([(t, 1) for t in self.topics])
        self._connected.set()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Message(msg.topic, msg.payload.decode("utf-8", "replace"), bool(msg.retain),
                                         time.monotonic()))

    def start(self) -> Watcher:
        self.client.connect_async(self.broker.host, self.broker.port, 30)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("watcher could not connect")
        time.sleep(0.1)  # let the subscription settle
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def seen(self, topic: str | None = None, since: float = 0.0) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if (topic is None or m.topic == topic) and m.at >= since]

    def last(self, topic: str) -> Message | None:
        found = self.seen(topic)
        return found[-1] if found else None

    def latest(self, since: float = 0.0) -> dict[str, Message]:
        """The newest message per topic."""
        out: dict[str, Message] = {}
        for m in self.seen(since=since):
            out[m.topic] = m
        return out

    def retained(self, prefix: str = "", timeout: float = 1.0) -> dict[str, str]:
        """What the broker holds retained under ``prefix`` (a fresh subscription), empty payloads left out."""
        got: dict[str, str] = {}
        done = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"retained-{time.monotonic_ns()}")
        if self.broker.tls:
            c.tls_set(ca_certs=str(self.broker.ca_cert))
        if self.broker.users:
            c.username_pw_set(*next(iter(self.broker.users.items())))

        def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
            if msg.retain and msg.payload:
                got[msg.topic] = msg.payload.decode()

        def on_connect(client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
            client.subscribe(f"{prefix}#" if prefix else "#", 1)
            done.set()

        c.on_message = on_message
        c.on_connect = on_connect
        c.connect(self.broker.host, self.broker.port, 30)
        c.loop_start()
        done.wait(5)
        time.sleep(timeout)
        c.disconnect()
        c.loop_stop()
        return got


async def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition",
                   interval: float = 0.02) -> object:
    """Poll ``predicate`` on the event loop until it returns something truthy (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "tls-broker", tls=True)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def watcher(broker: Broker) -> Iterator[Watcher]:
    w = Watcher(broker).start()
    try:
        yield w
    finally:
        w.stop()

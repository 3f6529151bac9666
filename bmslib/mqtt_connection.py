"""A paho-mqtt 2.x client on the asyncio event loop, with reconnects and a last will.

paho's socket callbacks register the socket with the loop (``add_reader``/``add_writer`` calling
``loop_read``/``loop_write``, a timer calling ``loop_misc``), so no paho thread exists and nothing blocks
the loop. Only the TCP connect and the TLS handshake run in an executor thread. The connection is made
in the background, retried with exponential back-off while the broker is down and re-made forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bmslib.config import MqttConfig

_LOG = logging.getLogger("batmon.mqtt")

ONLINE, OFFLINE = "online", "offline"


class _TlsContext(ssl.SSLContext):
    """The client TLS context; remembers the socket it wrapped last, so that a connect whose handshake
    failed does not leave that socket open (paho does not close it)."""

    last: ssl.SSLSocket | None = None

    @classmethod
    def for_broker(cls, ca_cert: str | None) -> _TlsContext:
        ctx = cls(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
        if ca_cert:
            ctx.load_verify_locations(cafile=ca_cert)
        else:
            ctx.load_default_certs()
        return ctx

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        sock = super().wrap_socket(*args, **kwargs)
        self.last = sock
        return sock

    def close_failed(self) -> None:
        sock, self.last = self.last, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


class MqttConnection:
    """A paho-mqtt client driven by the asyncio event loop (no paho thread).

    :meth:`start` returns at once; the connection is made in the background and re-made whenever it
    drops, with back-off from ``backoff[0]`` doubling up to ``backoff[1]`` seconds while the broker
    cannot be reached. ``on_connected`` runs on the loop after every successful (re)connect,
    ``on_message(topic, payload, retained)`` for every message received.
    """

    def __init__(self, config: MqttConfig, *, client_id: str, will_topic: str,
                 on_connected: Callable[[], None], on_message: Callable[[str, bytes, bool], None],
                 backoff: tuple[float, float] = (1.0, 60.0), keepalive: int = 30) -> None:
        self.config = config
        self.will_topic = will_topic
        self.on_connected = on_connected
        self.on_message = on_message
        self.backoff = backoff
        self.connected = False
        self.connects = 0  # successful connects (for tests and logs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ended = asyncio.Event()
        self._stopping = False
        self._connecting = False
        self._failures = 0
        self._sock: Any = None
        self._tls: _TlsContext | None = None
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        c.enable_logger(logging.getLogger("batmon.mqtt.paho"))
        c.connect_timeout = 5.0
        if config.user:
            c.username_pw_set(config.user, config.password)
        if config.tls:
            self._tls = _TlsContext.for_broker(config.ca_cert)
            c.tls_set_context(self._tls)
        c.will_set(will_topic, OFFLINE, qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        c.connect_async(config.host, config.port, keepalive)
        self.client = c

    # --- public ---
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._tasks = [self._loop.create_task(self._supervise(), name="mqtt-connect"),
                       self._loop.create_task(self._misc(), name="mqtt-misc")]

    def publish(self, topic: str, payload: str, *, retain: bool = False, qos: int = 0) -> bool:
        """Queue a message; False when not connected (nothing is queued then)."""
        if not self.connected:
            return False
        try:
            info = self.client.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, OSError) as exc:
            _LOG.warning("publish to %s failed: %s", topic, exc)
            return False
        return info.rc == paho.MQTT_ERR_SUCCESS

    def subscribe(self, topics: Iterable[str], qos: int = 1) -> None:
        wanted = [(t, qos) for t in topics]
        for start in range(0, len(wanted), 64):
            self.client.subscribe(wanted[start:start + 64])

    async def stop(self, timeout: float) -> None:
        """Mark the daemon offline, disconnect cleanly (no last will), and stop."""
        self._stopping = True
        if self.connected:
            self.publish(self.will_topic, OFFLINE, retain=True, qos=1)
            self._ended.clear()
            self.client.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, timeout)):
                    await self._ended.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._unwatch()

    # --- background ---
    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.backoff[0]
        while not self._stopping:
            self._ended.clear()
            self._connecting = True
            try:
                await loop.run_in_executor(None, self.client.reconnect)
            except (OSError, ssl.SSLError, ValueError) as exc:
                self._connecting = False
                if self._tls is not None:
                    self._tls.close_failed()
                self._failures += 1
                if self._failures == 1 or self._failures % 20 == 0:
                    _LOG.warning("cannot connect to the MQTT broker %s:%s: %s; retrying (every %.0f s at most)",
                                 self.config.host, self.config.port, exc or type(exc).__name__, self.backoff[1])
                else:
                    _LOG.debug("connect to %s:%s failed: %s", self.config.host, self.config.port, exc)
                await asyncio.sleep(delay)
                delay = min(self.backoff[1], delay * 2)
                continue
            self._connecting = False
            await self._ended.wait()
            if self._stopped():
                return
            if self._failures == 0:  # the session was up: reconnect soon
                delay = self.backoff[0]
                await asyncio.sleep(delay)
            else:  # refused (credentials, ...): back off
                await asyncio.sleep(delay)
                delay = min(self.backoff[1], delay * 2)

    def _stopped(self) -> bool:
        return self._stopping

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self._connecting and self.client.socket() is not None:
                try:
                    self.client.loop_misc()
                except Exception:  # noqa: BLE001  (paho must not end the timer; logged with traceback)
                    _LOG.exception("MQTT keepalive handling failed")

    # --- paho callbacks (on the loop thread, except socket open/register during a connect) ---
    def _on_connect(self, client: paho.Client, userdata: object, flags: object, reason: Any,
                    properties: object) -> None:
        if reason.is_failure:
            self._failures += 1
            _LOG.error("the MQTT broker %s:%s refused the connection: %s", self.config.host, self.config.port,
                       reason)
            return
        if self._failures:
            _LOG.info("connected to the MQTT broker %s:%s", self.config.host, self.config.port)
        else:
            _LOG.info("connected to the MQTT broker %s:%s%s", self.config.host, self.config.port,
                      " (TLS)" if self.config.tls else "")
        self._failures = 0
        self.connected = True
        self.connects += 1
        try:
            self.on_connected()
        except Exception:  # noqa: BLE001  (a bug there must not break the connection; logged)
            _LOG.exception("MQTT on-connect handling failed")

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: object, reason: Any,
                       properties: object) -> None:
        was = self.connected
        self.connected = False
        if was and not self._stopping:
            _LOG.warning("lost the connection to the MQTT broker (%s); reconnecting", reason)
        self._ended.set()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        try:
            self.on_message(msg.topic, bytes(msg.payload), bool(msg.retain))
        except Exception:  # noqa: BLE001  (one bad message must not break the connection; logged)
            _LOG.exception("handling the MQTT message on %s failed", msg.topic)

    def _on_socket_open(self, client: paho.Client, userdata: object, sock: Any) -> None:
        # every state is a small packet of its own: with Nagle's algorithm one could wait for the broker's
        # delayed ACK (40 ms on Linux) before it leaves
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._on_loop(lambda: self._watch(sock))

    def _on_socket_close(self, client: paho.Client, userdata: object, sock: Any) -> None:
        self._on_loop(self._unwatch)

    def _on_register_write(self, client: paho.Client, userdata: object, sock: Any) -> None:
        self._on_loop(lambda: self._want_write(sock, True))

    def _on_unregister_write(self, client: paho.Client, userdata: object, sock: Any) -> None:
        self._on_loop(lambda: self._want_write(sock, False))

    def _on_loop(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    # --- socket watching (loop thread only) ---
    def _watch(self, sock: Any) -> None:
        self._unwatch()
        assert self._loop is not None
        try:
            self._loop.add_reader(sock, self._readable)
        except (ValueError, OSError):  # closed before we got to it
            return
        self._sock = sock

    def _unwatch(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None or self._loop is None:
            return
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(sock)
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(sock)

    def _want_write(self, sock: Any, on: bool) -> None:
        if self._loop is None or sock is not self._sock:
            return
        with contextlib.suppress(ValueError, OSError):
            if on:
                self._loop.add_writer(sock, self._writable)
            else:
                self._loop.remove_writer(sock)

    def _readable(self) -> None:
        try:
            rc = self.client.loop_read()
            sock = self.client.socket()
            # TLS: records already decrypted sit in the SSL object, not in the socket; drain them
            while rc == paho.MQTT_ERR_SUCCESS and sock is not None and isinstance(sock, ssl.SSLSocket) \
                    and sock.pending() > 0:
                rc = self.client.loop_read()
        except Exception:  # noqa: BLE001  (must not escape into the event loop; logged with traceback)
            _LOG.exception("MQTT read failed")

    def _writable(self) -> None:
        try:
            self.client.loop_write()
        except Exception:  # noqa: BLE001  (must not escape into the event loop; logged with traceback)
            _LOG.exception("MQTT write failed")

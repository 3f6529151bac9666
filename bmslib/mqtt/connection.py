"""A paho-mqtt 2.x client on the asyncio event loop, with reconnects and a last will.

paho's socket callbacks register the socket with the loop (``add_reader``/``add_writer`` calling
``loop_read``/``loop_write``, a timer calling ``loop_misc``), so no paho thread exists and nothing blocks
the loop. Only the TCP connect and the TLS handshake run in an executor thread. The connection is made
in the background, retried with exponential back-off while the broker is down and re-made forever.

QoS 0 messages (the states, most of the traffic) are framed here as MQTT 3.1.1 PUBLISH packets and
handed to paho together, once per turn of the event loop, as one buffer on paho's write queue, which is
then written at once (paho's public ``loop_write``): paho's ``publish()`` costs about 15 us of Python per
message (a message-info object with its own condition variable, a lock for the message id, logging) and
writes each message with a system call of its own. The framed form of each topic is kept, so a state
costs the framing of its payload only.
Anything else (QoS 1, subscriptions, pings) goes through paho as usual, after the pending states, so
the order of messages is kept. The write queue is paho's private ``_packet_queue`` (paho-mqtt is
pinned); when it is not there as expected, every message goes through ``publish()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

_LOG = logging.getLogger("batmon.mqtt")

ONLINE, OFFLINE = "online", "offline"

_PUBLISH = 0x30  # MQTT control packet type 3, in the high nibble of the first byte
_MAX_REMAINING = 268_435_455  # the largest remaining length four bytes can encode
_FLUSH_BYTES = 64 * 1024  # hand pending states to paho at once beyond this
_TOPIC_CACHE = 20_000  # framed topic names kept per connection (a device has a few dozen state topics)


def topic_field(topic: str) -> bytes:
    """The topic name of a PUBLISH packet as it is framed (two length bytes, then UTF-8). Raises ValueError for
    a topic a publisher may not use (empty, wildcards, NUL, longer than 65535 bytes)."""
    if not topic or "+" in topic or "#" in topic or "\0" in topic:
        raise ValueError(f"invalid topic {topic!r}")
    t = topic.encode()
    if len(t) > 0xFFFF:
        raise ValueError("topic longer than 65535 bytes")
    return len(t).to_bytes(2, "big") + t


def fixed_header(remaining: int, retain: bool) -> bytes:
    """The fixed header of a QoS 0 PUBLISH packet whose variable header and payload are ``remaining`` bytes.
    Raises ValueError beyond the largest length MQTT can encode."""
    first = _PUBLISH | 1 if retain else _PUBLISH
    if remaining < 128:  # one length byte: nearly every state
        return bytes((first, remaining))
    if remaining > _MAX_REMAINING:
        raise ValueError("payload too large for one MQTT packet")
    head = bytearray((first,))
    while True:
        remaining, digit = divmod(remaining, 128)
        head.append(digit | 0x80 if remaining else digit)
        if not remaining:
            return bytes(head)


class BrokerSettings(Protocol):
    """What the connection needs to know of the broker (``bmslib.config.MqttConfig`` has it; the MQTT
    package does not import config, which imports the package's topic naming)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def user(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def tls(self) -> bool: ...
    @property
    def ca_cert(self) -> str | None: ...


def publish_packet(topic: str, payload: str, retain: bool) -> bytes:
    """One MQTT 3.1.1 PUBLISH packet at QoS 0 (no packet identifier). Raises ValueError for a topic a
    publisher may not use (empty, wildcards, NUL, longer than 65535 bytes) or a packet too large."""
    t = topic_field(topic)
    p = payload.encode()
    return fixed_header(len(t) + len(p), retain) + t + p


def _can_queue_packets(client: paho.Client) -> bool:
    """paho has the write queue this module hands QoS 0 packets to, and speaks MQTT 3.1.1."""
    queue = getattr(client, "_packet_queue", None)
    if not callable(queue) or client.protocol != MQTTProtocolVersion.MQTTv311:
        return False
    try:
        params = list(inspect.signature(queue).parameters)
    except (TypeError, ValueError):
        return False
    return params[:5] == ["command", "packet", "mid", "qos", "info"]


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

    def __init__(self, config: BrokerSettings, *, client_id: str, will_topic: str,
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
        self._pending = bytearray()  # QoS 0 PUBLISH packets not yet handed to paho
        self._pending_count = 0
        self._flush_scheduled = False
        self._topics: dict[str, bytes] = {}  # topic -> its framed form (topic_field), for the states' topics
        self._queueing = False  # flush() is handing packets to paho and writes them itself right after
        self._in_paho = False  # in loop_read/loop_write/loop_misc (paho's callbacks run then): no write of ours
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
        self._batching = _can_queue_packets(c)
        if not self._batching:
            _LOG.info("paho-mqtt's write queue is not as expected: publishing each message on its own")

    # --- public ---
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._tasks = [self._loop.create_task(self._supervise(), name="mqtt-connect"),
                       self._loop.create_task(self._misc(), name="mqtt-misc")]

    def publish(self, topic: str, payload: str, *, retain: bool = False, qos: int = 0) -> bool:
        """Queue a message; False when not connected (nothing is queued then).

        QoS 0 messages leave together at the end of this turn of the event loop; any other message first
        sends those already queued, so messages leave in the order they were published."""
        if not self.connected:
            return False
        if qos == 0 and self._batching and self._loop is not None:
            try:
                t = self._topics.get(topic)
                if t is None:
                    t = topic_field(topic)
                    if len(self._topics) < _TOPIC_CACHE:
                        self._topics[topic] = t
                p = payload.encode()
                head = fixed_header(len(t) + len(p), retain)
            except ValueError as exc:
                _LOG.warning("publish to %s failed: %s", topic, exc)
                return False
            pending = self._pending
            pending += head
            pending += t
            pending += p
            self._pending_count += 1
            if len(self._pending) >= _FLUSH_BYTES:
                self.flush()
            elif not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self.flush)
            return True
        self.flush()
        try:
            info = self.client.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, OSError) as exc:
            _LOG.warning("publish to %s failed: %s", topic, exc)
            return False
        return info.rc == paho.MQTT_ERR_SUCCESS

    def flush(self) -> None:
        """Hand the pending QoS 0 packets to paho's write queue as one buffer."""
        self._flush_scheduled = False
        if not self._pending:
            return
        data, count = bytes(self._pending), self._pending_count
        self._pending.clear()
        self._pending_count = 0
        if not self.connected:
            return  # QoS 0: dropped, as paho does while disconnected; states are re-sent on connect
        # Outside paho's own calls, write now what the socket takes (usually all of it), rather than on the next
        # turn of the loop once the socket is reported writable: that costs two epoll_ctl calls and a wake-up
        # per flush. (Inside them, paho may hold a lock its error handling takes again.)
        direct = not self._in_paho
        self._queueing = direct  # paho's request to watch the socket for writing is then not needed
        try:
            self.client._packet_queue(paho.PUBLISH, data, 0, 0, paho.MQTTMessageInfo(0))
        except Exception:  # noqa: BLE001  (paho's internals changed: fall back to publish(); logged)
            _LOG.exception("handing %d message(s) to paho failed; publishing each message on its own from now",
                           count)
            self._batching = False
            return
        finally:
            self._queueing = False
        if _LOG.isEnabledFor(logging.DEBUG):
            _LOG.debug("sending %d state message(s), %d bytes", count, len(data))
        if direct:
            self._writable()
            if self._sock is not None and self.client.want_write():  # paho does not ask again: watch here
                self._want_write(self._sock, True)

    def subscribe(self, topics: Iterable[str], qos: int = 1) -> None:
        self.flush()
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
                self._in_paho = True
                try:
                    self.client.loop_misc()
                except Exception:  # noqa: BLE001  (paho must not end the timer; logged with traceback)
                    _LOG.exception("MQTT keepalive handling failed")
                finally:
                    self._in_paho = False

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
        if self._queueing and threading.get_ident() == self._loop_thread:
            return  # flush() writes, and watches the socket itself if not all was written
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
        self._in_paho = True
        try:
            rc = self.client.loop_read()
            sock = self.client.socket()
            # TLS: records already decrypted sit in the SSL object, not in the socket; drain them
            while rc == paho.MQTT_ERR_SUCCESS and sock is not None and isinstance(sock, ssl.SSLSocket) \
                    and sock.pending() > 0:
                rc = self.client.loop_read()
        except Exception:  # noqa: BLE001  (must not escape into the event loop; logged with traceback)
            _LOG.exception("MQTT read failed")
        finally:
            self._in_paho = False

    def _writable(self) -> None:
        self._in_paho = True
        try:
            self.client.loop_write()
        except Exception:  # noqa: BLE001  (must not escape into the event loop; logged with traceback)
            _LOG.exception("MQTT write failed")
        finally:
            self._in_paho = False

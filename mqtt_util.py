"""MQTT side of batmon: samples to topics, Home Assistant discovery, availability and switch commands.

From the wire up:

* :class:`~bmslib.mqtt.connection.MqttConnection` runs a paho-mqtt 2.x client on the asyncio event
  loop (no paho thread), reconnecting forever; its last will marks the daemon offline.
* Naming (:class:`DeviceTopics`, from :func:`bmslib.config.topic_prefix` and ``mqtt_node_id``) and the discovery payload
  builders (:func:`discovery_config`, :func:`device_block`): pure functions of the entity table in
  :mod:`bmslib.entities`, compatible with the add-on batmon replaces (see doc/MQTT.md).
* :class:`MqttSink`, the sink the app feeds: it announces entities (retained), publishes states on
  change and as a heartbeat, keeps availability, routes switch commands to the app, and removes
  the discovery of entities a device no longer has (a record of what was announced is kept in the
  state directory).

All sink callbacks run on the event loop and only queue bytes on a non-blocking socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bmslib import __version__
from bmslib.config import AppConfig, mqtt_node_id, topic_prefix
from bmslib.device import DeviceStatus
from bmslib.entities import (
    METER_NAMES,
    EntityDescription,
    Layout,
    Value,
    list_layout,
    meter_entities,
    meter_entity,
    new_sample_entities,
)
from bmslib.model import DeviceInfo, OutputSign, Sample
from bmslib.mqtt.connection import OFFLINE, ONLINE, MqttConnection
from bmslib.sinks.base import Sink
from bmslib.state_store import write_atomically

_LOG = logging.getLogger("batmon.mqtt")

#: File in the state directory that records which discovery topics were announced per device.
RECORD_FILE = "mqtt_discovery.json"
HEARTBEAT_MAX = 60.0  # [s] unchanged states are re-sent at least this often
HEARTBEAT_BURST_MIN = 50  # re-sends per heartbeat tick allowed whatever the number of states
COMMANDS_PER_WINDOW = 5  # switch commands accepted per device per COMMAND_WINDOW
COMMAND_WINDOW = 10.0  # [s]
SWITCH_ECHO = 8.0  # [s] after a command the switch state is re-sent with every sample, changed or not
PRUNE_AFTER = 10  # publishes of a device before entities it no longer has are removed
BIRTH_DELAY = 1.0  # [s] after Home Assistant's birth message, before everything is re-published
SETTLE = 0.5  # [s] after discovery was (re)published, the device's states are sent again

SendFn = Callable[[str, str, bool], bool]
SwitchRequest = Callable[[str, str, bool], bool]


# --------------------------------------------------------------------------------------------------
# Naming

def object_id(desc: EntityDescription) -> str:
    """The discovery object id: ``_<key_id>`` for sensors, the key's last level for the others."""
    return f"_{desc.key_id}" if desc.component == "sensor" else desc.key.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class DeviceTopics:
    """All topics of one device."""

    prefix: str
    node: str
    discovery_prefix: str

    @classmethod
    def for_alias(cls, alias: str, discovery_prefix: str) -> DeviceTopics:
        prefix = topic_prefix(alias)
        return cls(prefix=prefix, node=mqtt_node_id(prefix), discovery_prefix=discovery_prefix)

    def state(self, desc: EntityDescription) -> str:
        return f"{self.prefix}/{desc.key}"

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    def discovery(self, desc: EntityDescription) -> str:
        return f"{self.discovery_prefix}/{desc.component}/{self.node}/{object_id(desc)}/config"

    def command(self, switch: str) -> str:
        return f"{self.discovery_prefix}/switch/{self.node}/{switch}/set"

    def unique_id(self, desc: EntityDescription) -> str:
        return f"{self.prefix}__{desc.key_id}"


def instance_id(aliases: Iterable[str]) -> str:
    """A short id of this daemon instance (from its devices), used in its status topic."""
    return hashlib.sha1("\n".join(sorted(aliases)).encode(), usedforsecurity=False).hexdigest()[:8]


def daemon_status_topic(aliases: Iterable[str]) -> str:
    return f"batmon/{instance_id(aliases)}/status"


# --------------------------------------------------------------------------------------------------
# Payloads

def format_payload(value: Value) -> str:
    """A state payload: ``ON``/``OFF`` for booleans, numbers as plain decimal text, text as is."""
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, float):
        text = repr(value)  # the shortest text that reads back as the value; "12.0" for whole numbers
        if "e" in text:  # no exponent notation: plain digits (values are rounded before this)
            text = f"{value:.10f}".rstrip("0")
            text += "0" if text.endswith(".") else ""
        return text
    return str(value)


def device_block(status: DeviceStatus, topics: DeviceTopics) -> dict[str, Any]:
    """The discovery ``device`` block. Its identifier comes from the BLE address (or type and alias) and
    never changes when device info arrives later; the other fields fill in when known."""
    info: DeviceInfo = status.device_info
    block: dict[str, Any] = {
        "identifiers": [f"batmon_{status.identifier}"],
        "name": f"{info.name} ({topics.prefix})" if info.name else topics.prefix,
    }
    for key, value in (("manufacturer", info.manufacturer), ("model", info.model), ("sw_version", info.sw_version),
                       ("hw_version", info.hw_version), ("serial_number", info.serial)):
        if value:
            block[key] = value
    return block


ORIGIN = {"name": "batmon", "sw_version": __version__}


def config_digest(payload: str) -> bytes:
    """What is kept of a discovery payload sent, to tell whether it changed."""
    return hashlib.blake2b(payload.encode(), digest_size=16).digest()


def expire_after(expire_values_after: float) -> int | None:
    return max(1, math.ceil(expire_values_after)) if expire_values_after > 0 else None


def discovery_config(desc: EntityDescription, topics: DeviceTopics, *, device: Mapping[str, Any],
                     daemon_topic: str, expire: int | None) -> dict[str, Any]:
    """The discovery payload of one entity."""
    cfg: dict[str, Any] = {
        "unique_id": topics.unique_id(desc),
        "name": desc.name,
        "state_topic": topics.state(desc),
    }
    if desc.component == "switch":
        assert desc.switch is not None
        cfg["command_topic"] = topics.command(desc.switch)
        cfg["payload_on"], cfg["payload_off"] = "ON", "OFF"
    for key, value in (("device_class", desc.device_class), ("state_class", desc.state_class),
                       ("unit_of_measurement", desc.unit), ("suggested_display_precision", desc.precision),
                       ("entity_category", desc.entity_category)):
        if value is not None:
            cfg[key] = value
    if desc.icon:
        cfg["icon"] = f"mdi:{desc.icon}"
    if not desc.enabled_by_default:
        cfg["enabled_by_default"] = False
    if expire is not None and desc.component != "switch":
        cfg["expire_after"] = expire
    cfg["availability"] = [{"topic": daemon_topic}, {"topic": topics.availability}]
    cfg["availability_mode"] = "all"
    cfg["device"] = dict(device)
    cfg["origin"] = dict(ORIGIN)
    return cfg


# --------------------------------------------------------------------------------------------------
# What was announced, across restarts


class DiscoveryRecord:
    """Per device alias: its availability topic and the discovery topics announced for it.

    Kept as JSON in the state directory so that entities a device no longer has (fewer cells, a device
    removed from the options) can be removed after a restart too.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.devices: dict[str, dict[str, Any]] = {}
        self._dirty = False

    def load(self) -> None:
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            _LOG.warning("ignoring %s (%s): entities removed while batmon was down stay in Home Assistant",
                         self.path, exc)
            return
        devices = data.get("devices") if isinstance(data, dict) else None
        if isinstance(devices, dict):
            for alias, entry in devices.items():
                if isinstance(entry, dict) and isinstance(entry.get("discovery"), list):
                    self.devices[str(alias)] = {
                        "availability": str(entry.get("availability") or ""),
                        "discovery": sorted({str(t) for t in entry["discovery"]}),
                    }

    def topics(self, alias: str) -> set[str]:
        return set(self.devices.get(alias, {}).get("discovery", ()))

    def set(self, alias: str, availability: str, topics: Iterable[str]) -> None:
        entry = {"availability": availability, "discovery": sorted(set(topics))}
        if self.devices.get(alias) != entry:
            self.devices[alias] = entry
            self._dirty = True

    def forget(self, alias: str) -> None:
        if self.devices.pop(alias, None) is not None:
            self._dirty = True

    def save(self) -> None:
        if not self._dirty or self.path is None:
            return
        self._dirty = False
        data = json.dumps({"version": 1, "devices": self.devices}, indent=1, sort_keys=True).encode()
        try:
            write_atomically(self.path, data)
        except OSError as exc:
            _LOG.warning("cannot write %s: %s", self.path, exc)


# --------------------------------------------------------------------------------------------------
# The sink


@dataclass(slots=True)
class _SentState:
    payload: str
    at: float  # monotonic time of the last send (-inf: send at the next chance)


_UNSET = object()


class _Slot:
    """One state topic of a device's publish plan, and the payload of the last value it formatted: a value
    equal to that one (and of the same type) has the same payload, so it is not rounded and formatted again.
    (For floats that holds when the entity rounds: rounding makes 0.0 of -0.0.)"""

    __slots__ = ("desc", "last", "payload", "rounds_floats", "topic", "value")

    def __init__(self, topic: str, desc: EntityDescription) -> None:
        assert desc.value is not None
        self.topic = topic
        self.desc = desc
        self.value = desc.value
        self.rounds_floats = desc.decimals is not None
        self.last: object = _UNSET
        self.payload: str | None = None

    def payload_of(self, sample: Sample, status: DeviceStatus, sign: OutputSign) -> str | None:
        """The state payload for ``sample`` (None: not reported)."""
        raw = self.value(sample, status, sign)
        last = self.last
        if raw is last or (type(raw) is type(last) and raw == last and (self.rounds_floats or type(raw) is not float)):
            return self.payload
        self.last = raw
        value = self.desc.rounded(raw)
        self.payload = None if value is None else format_payload(value)
        return self.payload


@dataclass(slots=True)
class _Window:
    """A sliding window: at most ``limit`` events within ``seconds``. ``just_filled`` is true after the
    first event turned away since the last one let in (so "over the limit" is said once per episode)."""

    times: deque[float] = field(default_factory=deque)
    full: bool = False
    just_filled: bool = False

    def admit(self, now: float, limit: int, seconds: float) -> bool:
        while self.times and now - self.times[0] >= seconds:
            self.times.popleft()
        if len(self.times) >= limit:
            self.just_filled = not self.full
            self.full = True
            return False
        self.full = self.just_filled = False
        self.times.append(now)
        return True


@dataclass
class _Device:
    alias: str
    topics: DeviceTopics
    status: DeviceStatus | None = None
    entities: dict[tuple[str, str], EntityDescription] = field(default_factory=dict)
    configs: dict[str, bytes] = field(default_factory=dict)  # discovery topic -> digest of the payload sent
    states: dict[str, _SentState] = field(default_factory=dict)
    meters: dict[str, float] = field(default_factory=dict)
    available: bool = False
    publishes: int = 0
    pruned: bool = False
    info: DeviceInfo | None = None
    echo_switches_until: float = -math.inf
    resend: asyncio.TimerHandle | None = None
    commands: _Window = field(default_factory=_Window)  # switch commands passed on
    refusals: _Window = field(default_factory=_Window)  # refused commands logged
    #: the state topics to publish (one slot per topic) and the switch mirrors on_sample sends; made from
    #: ``entities`` when needed (None: entities changed)
    plan: tuple[list[_Slot], list[_Slot]] | None = None
    #: the list layout (cells, probes, switches) of the last sample whose entities were all looked for
    layout: Layout | None = None

    def publish_plan(self) -> tuple[list[_Slot], list[_Slot]]:
        if self.plan is None:
            states: dict[str, EntityDescription] = {}
            for desc in self.entities.values():
                if desc.meter is None:
                    states.setdefault(self.topics.state(desc), desc)
            mirrors = [_Slot(self.topics.state(d), d) for d in self.entities.values()
                       if d.switch is not None and d.component != "switch"]
            self.plan = [_Slot(topic, desc) for topic, desc in states.items()], mirrors
        return self.plan


class MqttSink(Sink):
    """Publishes to MQTT for Home Assistant (see the module docstring and doc/MQTT.md)."""

    name = "mqtt"

    def __init__(self, config: AppConfig, sign: OutputSign, *, request_switch: SwitchRequest,
                 statuses: Callable[[], Iterable[DeviceStatus]], state_dir: Path | None = None,
                 backoff: tuple[float, float] = (1.0, 60.0), keepalive: int = 30,
                 prune_after: int = PRUNE_AFTER, birth_delay: float = BIRTH_DELAY, settle: float = SETTLE,
                 commands_per_window: int = COMMANDS_PER_WINDOW, command_window: float = COMMAND_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        assert config.mqtt is not None
        self.config = config
        self.mqtt = config.mqtt
        self.sign = sign
        self.request_switch = request_switch
        self.statuses = statuses
        self.prune_after = prune_after
        self.birth_delay = birth_delay
        self.settle = settle
        self.commands_per_window = commands_per_window
        self.command_window = command_window
        self.clock = clock
        self.expire = expire_after(config.expire_values_after)
        self.heartbeat = min(config.expire_values_after / 2, HEARTBEAT_MAX) if self.expire else HEARTBEAT_MAX
        self.aliases = tuple(d.alias for d in config.devices)
        self.status_topic = daemon_status_topic(self.aliases)
        self.birth_topic = f"{self.mqtt.discovery_prefix}/status"
        self.record = DiscoveryRecord(state_dir / RECORD_FILE if state_dir is not None else None)
        self.devices: dict[str, _Device] = {
            a: _Device(a, DeviceTopics.for_alias(a, self.mqtt.discovery_prefix)) for a in self.aliases}
        self._commands: dict[str, tuple[str, str]] = {}  # command topic -> (alias, switch)
        client_id = f"batmon-{instance_id(self.aliases)}-{secrets.token_hex(2)}"
        self.conn = MqttConnection(self.mqtt, client_id=client_id, will_topic=self.status_topic,
                                   on_connected=self._on_connected, on_message=self._on_message,
                                   backoff=backoff, keepalive=keepalive)
        self._tasks: list[asyncio.Task[None]] = []
        self._birth_task: asyncio.Task[None] | None = None

    # --- life cycle ---
    async def start(self) -> None:
        self.record.load()
        self.conn.start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._heartbeat(), name="mqtt-heartbeat"))

    async def stop(self, timeout: float) -> None:
        for dev in self.devices.values():
            if dev.resend is not None:
                dev.resend.cancel()
        for task in (*self._tasks, *([self._birth_task] if self._birth_task else [])):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.record.save()
        await self.conn.stop(timeout)

    # --- sink callbacks ---
    def on_sample(self, device: DeviceStatus, sample: Sample) -> None:
        dev = self._device(device)
        if not dev.entities:
            return
        now = self.clock()
        echo = now < dev.echo_switches_until
        for slot in dev.publish_plan()[1]:  # one send per state topic
            payload = slot.payload_of(sample, device, self.sign)
            if payload is not None:
                self._send_state(dev, slot.topic, payload, now, force=echo)

    def on_publish(self, device: DeviceStatus, sample: Sample) -> None:
        dev = self._device(device)
        dev.publishes += 1
        # the per-cell, per-probe and switch entities are looked for only when the layout changed (once
        # looked for, they are in dev.entities, and entities are never dropped from it)
        layout = list_layout(sample, device)
        new = new_sample_entities(sample, device, self.sign, dev.entities, lists=layout != dev.layout)
        dev.layout = layout
        for d in new:
            dev.entities[(d.component, d.key)] = d
            dev.plan = None
        if (new or (dev.info is not device.device_info and dev.info != device.device_info)) and self._announce(dev):
            for st in dev.states.values():  # configs changed: Home Assistant needs every state again
                st.at = -math.inf
        if not dev.pruned and dev.publishes >= self.prune_after:
            self._prune(dev)
        now = self.clock()
        states, sign = dev.states, self.sign
        for slot in dev.publish_plan()[0]:
            payload = slot.payload_of(sample, device, sign)
            if payload is None:
                states.pop(slot.topic, None)  # not reported now: let it expire rather than repeat it
            else:
                self._send_state(dev, slot.topic, payload, now)

    def on_availability(self, device: DeviceStatus, available: bool) -> None:
        dev = self._device(device)
        dev.available = available
        if available:
            for st in dev.states.values():
                st.at = -math.inf
        self.conn.publish(dev.topics.availability, ONLINE if available else OFFLINE, retain=True, qos=1)

    def on_meters(self, device: DeviceStatus, meters: Mapping[str, float]) -> None:
        dev = self._device(device)
        fresh = False
        for name, value in meters.items():
            desc = meter_entity(name)
            if desc is None or value is None or not math.isfinite(value):
                continue
            dev.meters[name] = value
            if ("sensor", desc.key) not in dev.entities:
                dev.entities[("sensor", desc.key)] = desc
                dev.plan = None
                fresh = True
        if fresh:
            self._announce(dev)
        now = self.clock()
        for desc in meter_entities(dev.meters):
            assert desc.meter is not None
            reading = desc.rounded(dev.meters[desc.meter])
            if reading is not None:
                self._send_state(dev, dev.topics.state(desc), format_payload(reading), now)

    # --- internals ---
    def _device(self, status: DeviceStatus) -> _Device:
        dev = self.devices.get(status.alias)
        if dev is None:
            dev = self.devices[status.alias] = _Device(
                status.alias, DeviceTopics.for_alias(status.alias, self.mqtt.discovery_prefix))
        dev.status = status
        return dev

    def _send_state(self, dev: _Device, topic: str, payload: str, now: float, *, force: bool = False) -> None:
        """Publish a state unless it was sent with this payload less than a heartbeat ago (``now``)."""
        last = dev.states.get(topic)
        if last is None:
            dev.states[topic] = _SentState(payload, now if self.conn.publish(topic, payload) else -math.inf)
        elif force or last.payload != payload or now - last.at >= self.heartbeat:
            last.payload = payload
            last.at = now if self.conn.publish(topic, payload) else -math.inf

    def _configs(self, dev: _Device) -> dict[str, str]:
        assert dev.status is not None
        device = device_block(dev.status, dev.topics)
        out: dict[str, str] = {}
        for desc in dev.entities.values():
            cfg = discovery_config(desc, dev.topics, device=device, daemon_topic=self.status_topic,
                                   expire=self.expire)
            out[dev.topics.discovery(desc)] = json.dumps(cfg, ensure_ascii=False)
        return out

    def _announce(self, dev: _Device, *, force: bool = False) -> bool:
        """Publish (retained) the discovery configs that changed, or all of them with ``force``.
        True if anything was published."""
        if dev.status is None or not dev.entities:
            return False
        dev.info = dev.status.device_info
        if not self.conn.connected:
            return False
        sent = False
        for topic, payload in self._configs(dev).items():
            digest = config_digest(payload)  # not the payload: about 600 bytes per entity and device
            changed = force or dev.configs.get(topic) != digest
            if changed and self.conn.publish(topic, payload, retain=True, qos=1):
                dev.configs[topic] = digest
                sent = True
        self._remember(dev, set(dev.configs))
        if sent:
            self._resend_later(dev)
        return sent

    def _resend_later(self, dev: _Device) -> None:
        """Send the device's states again shortly after its discovery was (re)published: Home Assistant
        marks an entity with ``expire_after`` unavailable whenever it (re)reads its config, and a state
        sent before it subscribed is lost (states are not retained)."""
        if dev.resend is not None:
            dev.resend.cancel()
        dev.resend = asyncio.get_running_loop().call_later(self.settle, self._resend_states, dev)

    def _resend_states(self, dev: _Device) -> None:
        dev.resend = None
        if not self.conn.connected or not dev.available:
            return
        now = self.clock()
        for topic, st in dev.states.items():
            if self.conn.publish(topic, st.payload):
                st.at = now

    def _meter_topics(self, dev: _Device) -> set[str]:
        return {dev.topics.discovery(d) for d in meter_entities(METER_NAMES)}

    def _remember(self, dev: _Device, topics: set[str]) -> None:
        """Record ``topics`` as announced for ``dev``. Until the device is pruned, topics recorded in an
        earlier run stay in the record (they may still be removed); meter topics always stay (meters
        deliver their first values later than samples)."""
        recorded = self.record.topics(dev.alias)
        keep = recorded if not dev.pruned else recorded & self._meter_topics(dev)
        self.record.set(dev.alias, dev.topics.availability, topics | keep)
        self.record.save()

    def _prune(self, dev: _Device) -> None:
        """Remove the discovery of entities announced in an earlier run that this device no longer has."""
        if not self.conn.connected or not dev.configs:
            return
        current = set(self._configs(dev))
        meters = self._meter_topics(dev)
        stale = {t for t in self.record.topics(dev.alias) if t not in current and t not in meters}
        for topic in sorted(stale):
            _LOG.info("%s: removing entity %s (no longer reported)", dev.alias, topic)
            self.conn.publish(topic, "", retain=True, qos=1)
        dev.pruned = True
        self._remember(dev, current)

    def _remove_unconfigured(self) -> None:
        for alias in sorted(set(self.record.devices) - set(self.aliases)):
            entry = self.record.devices[alias]
            _LOG.info("device %r is no longer configured: removing its %d entities from Home Assistant", alias,
                      len(entry["discovery"]))
            for topic in entry["discovery"]:
                self.conn.publish(topic, "", retain=True, qos=1)
            if entry.get("availability"):
                self.conn.publish(entry["availability"], "", retain=True, qos=1)
            self.record.forget(alias)
        self.record.save()

    def _republish(self) -> None:
        """Everything, as after a connect: availability, discovery (retained), then current states."""
        self.conn.publish(self.status_topic, ONLINE, retain=True, qos=1)
        for dev in self.devices.values():
            self.conn.publish(dev.topics.availability, ONLINE if dev.available else OFFLINE, retain=True, qos=1)
        for dev in self.devices.values():
            self._announce(dev, force=True)
        now = self.clock()
        for dev in self.devices.values():
            if dev.available:
                for topic, st in dev.states.items():
                    if self.conn.publish(topic, st.payload):
                        st.at = now

    def _on_connected(self) -> None:
        self._command_topics()
        self.conn.subscribe([self.birth_topic, *self._commands])
        self._remove_unconfigured()
        self._republish()

    def _command_topics(self) -> None:
        self._commands.clear()
        for status in self.statuses():
            dev = self._device(status)
            for switch in sorted(status.switches):
                self._commands[dev.topics.command(switch)] = (status.alias, switch)

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self.birth_topic:
            if payload.strip().lower() == b"online":
                self._schedule_republish()
            return
        target = self._commands.get(topic)
        if target is None:
            return
        alias, switch = target
        dev = self.devices[alias]
        text = payload.decode("utf-8", errors="replace").strip()
        if retained:
            self._refused(dev, "%s: ignoring a retained switch command on %s (commands must not be retained)", alias,
                          topic)
            return
        word = payload.strip().upper().decode("ascii", errors="replace")  # bytes: ASCII white space and case only
        if word not in ("ON", "OFF"):
            self._refused(dev, "%s: ignoring switch command %r on %s: the payload must be ON or OFF", alias,
                          text[:40], topic)
            return
        if not self._rate_ok(dev):
            return
        _LOG.info("%s: switch %s %s requested over MQTT", alias, switch, word.lower())
        if self.request_switch(alias, switch, word == "ON"):
            dev.echo_switches_until = self.clock() + SWITCH_ECHO

    def _refused(self, dev: _Device, message: str, *args: object) -> None:
        """Log a refused command; not more than ``commands_per_window`` per window and device (a flood of bad
        commands must not flood the log)."""
        if dev.refusals.admit(self.clock(), self.commands_per_window, self.command_window):
            _LOG.warning(message, *args)
        elif dev.refusals.just_filled:
            _LOG.warning("%s: more than %d refused switch commands within %.0f s; not logging them for now",
                         dev.alias, self.commands_per_window, self.command_window)

    def _rate_ok(self, dev: _Device) -> bool:
        if dev.commands.admit(self.clock(), self.commands_per_window, self.command_window):
            return True
        if dev.commands.just_filled:
            _LOG.warning("%s: more than %d switch commands within %.0f s; dropping commands for now",
                         dev.alias, self.commands_per_window, self.command_window)
        return False

    def _schedule_republish(self) -> None:
        if self._birth_task is not None and not self._birth_task.done():
            return

        async def later() -> None:
            await asyncio.sleep(self.birth_delay)
            _LOG.info("Home Assistant came online: re-publishing discovery and states")
            self._republish()

        self._birth_task = asyncio.get_running_loop().create_task(later(), name="mqtt-birth")

    async def _heartbeat(self) -> None:
        tick = max(0.05, min(1.0, self.heartbeat / 4))
        while True:
            await asyncio.sleep(tick)
            if not self.conn.connected:
                continue
            # At most this many re-sends per tick. States sent together (devices start together) would
            # otherwise come due together at every heartbeat, all in one burst; spread out, each still
            # goes out within 2/3 of a heartbeat of coming due.
            total = sum(len(dev.states) for dev in self.devices.values() if dev.available)
            budget = max(HEARTBEAT_BURST_MIN, math.ceil(1.5 * total * tick / self.heartbeat))
            now = self.clock()
            for dev in self.devices.values():
                if not dev.available:
                    continue
                for topic, st in dev.states.items():
                    if budget <= 0:
                        break
                    if now - st.at >= self.heartbeat and self.conn.publish(topic, st.payload):
                        st.at = now
                        budget -= 1



# --------------------------------------------------------------------------------------------------
# Documentation: the entity table of doc/MQTT.md is generated from the entity table itself


def _doc_rows() -> list[tuple[EntityDescription, dict[str, str], str]]:
    """(description, textual substitutions, when published) for every kind of entity, in doc order."""
    from bmslib.entities import (  # noqa: PLC0415  (only the doc needs them)
        DIAGNOSTICS,
        SAMPLE_ENTITIES,
        cell_entities,
        switch_entities,
        temperature_entities,
    )

    rows: list[tuple[EntityDescription, dict[str, str], str]] = []
    for d in SAMPLE_ENTITIES:
        rows.append((d, {}, "when the device reports it"))
    cell = cell_entities(1)[0]
    rows.append((cell, {"cell_voltages/1": "cell_voltages/<i>", "cell_voltages_1": "cell_voltages_<i>",
                        "Cell Volt 1": "Cell Volt <i>"}, "per cell, i = 1..n; the name pads i to the digits of n"))
    for d in cell_entities(2)[2:]:
        rows.append((d, {}, "more than one cell"))
    rows.append((temperature_entities(1)[0], {"/1": "/<i>", "_1": "_<i>", "Temperatures 1": "Temperatures <i>"},
                 "per temperature probe, i = 1..n"))
    sw = {"charge": "<name>"}
    for d in switch_entities(["charge"], {"charge"}):
        rows.append((d, sw, "per switch batmon can set (charge, discharge, balance)" if d.component == "switch"
                     else "per switch reported; disabled by default where a switch entity exists"))
    when = {"diag/rssi": "when the RSSI is known", "diag/algorithm": "with an algorithm configured"}
    for d in DIAGNOSTICS:
        rows.append((d, {}, when.get(d.key, "always")))
    for d in meter_entities(METER_NAMES):
        rows.append((d, {}, "once the meters have a value"))
    return rows


def entity_table_markdown(alias: str = "battery1", discovery_prefix: str = "homeassistant") -> str:
    """The Markdown table of every entity batmon can publish for a device ``alias``."""
    topics = DeviceTopics.for_alias(alias, discovery_prefix)
    columns = ("state topic", "discovery topic", "unique_id", "name", "component", "unit", "device_class",
               "state_class", "precision", "category", "published")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for d, subst, when in _doc_rows():
        names = [topics.state(d), topics.discovery(d), topics.unique_id(d), d.name]
        for old, new in subst.items():
            names = [n.replace(old, new) for n in names]
        cells = [f"`{n}`" for n in names[:3]] + [names[3], d.component, d.unit or "", d.device_class or "",
                                                d.state_class or "", "" if d.precision is None else str(d.precision),
                                                d.entity_category or "", when]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

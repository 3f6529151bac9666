"""The MQTT sink: samples to topics for Home Assistant, with discovery, availability and switch commands.

It announces entities (retained), publishes states on change and as a heartbeat, keeps availability,
puts switch commands on the App's queue, and removes the discovery of entities a device no longer has
(a record of what was announced is kept in the state directory). What is published and when (the
averaged sample, the switch echo, when an unchanged state is sent again) is decided by
:mod:`bmslib.publishing`; what it builds on is in :mod:`bmslib.mqtt` (topics, discovery payloads, the
discovery record, the connection: paho-mqtt on the asyncio loop, reconnecting, with a last will).

All sink callbacks run on the event loop and only queue bytes on a non-blocking socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bmslib.commands import CommandQueue, SwitchCommand
from bmslib.config import AppConfig
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
from bmslib.mqtt.discovery import config_digest, device_block, discovery_config, expire_after
from bmslib.mqtt.record import RECORD_FILE, DiscoveryRecord
from bmslib.mqtt.topics import DeviceTopics, daemon_status_topic, instance_id
from bmslib.publishing import QUIET, SETTLE, Decision, StateResend
from bmslib.sinks.base import Sink, SinkContext

_LOG = logging.getLogger("batmon.mqtt")

COMMANDS_PER_WINDOW: Final = 5  # switch commands accepted per device per COMMAND_WINDOW
COMMAND_WINDOW: Final = 10.0  # [s]
PRUNE_AFTER: Final = 10  # publishes of a device before entities it no longer has are removed
BIRTH_DELAY: Final = 1.0  # [s] after Home Assistant's birth message, before everything is re-published


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

    def __init__(self, config: AppConfig, sign: OutputSign, *, commands: CommandQueue,
                 statuses: Sequence[DeviceStatus], state_dir: Path | None = None,
                 backoff: tuple[float, float] = (1.0, 60.0), keepalive: int = 30,
                 prune_after: int = PRUNE_AFTER, birth_delay: float = BIRTH_DELAY, settle: float = SETTLE,
                 commands_per_window: int = COMMANDS_PER_WINDOW, command_window: float = COMMAND_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        assert config.mqtt is not None
        self.config = config
        self.mqtt = config.mqtt
        self.sign = sign
        self.commands = commands  # the App's: switch commands go there
        self.statuses = statuses
        self.prune_after = prune_after
        self.birth_delay = birth_delay
        self.commands_per_window = commands_per_window
        self.command_window = command_window
        self.clock = clock
        self.expire = expire_after(config.expire_values_after)
        self.resend = StateResend.for_expiry(config.expire_values_after, settle=settle)
        self.heartbeat = self.resend.heartbeat
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
    def on_sample(self, device: DeviceStatus, sample: Sample, decision: Decision = QUIET) -> None:
        """Switch states from every sample (re-sent when the decision echoes them); all states when the
        decision publishes."""
        dev = self._device(device)
        if dev.entities:
            now = self.clock()
            echo = decision.echo_switches
            for slot in dev.publish_plan()[1]:  # one send per state topic
                payload = slot.payload_of(sample, device, self.sign)
                if payload is not None:
                    self._send_state(dev, slot.topic, payload, now, force=echo)
        if decision.published is not None:
            self._publish(dev, device, decision.published)

    def _publish(self, dev: _Device, device: DeviceStatus, sample: Sample) -> None:
        """Announce the entities ``sample`` brings, then send the states that changed."""
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
        dev.resend = asyncio.get_running_loop().call_later(self.resend.settle, self._resend_states, dev)

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
        for status in self.statuses:
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
        self.commands.put_nowait(SwitchCommand(alias, switch, word == "ON", "mqtt"))  # right after the rate check
        _LOG.info("%s: switch %s %s requested over MQTT", alias, switch, word.lower())

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
        """Re-send unchanged states a heartbeat after they were last sent, a budget per tick (see StateResend)."""
        tick = self.resend.tick
        while True:
            await asyncio.sleep(tick)
            if not self.conn.connected:
                continue
            budget = self.resend.budget(sum(len(dev.states) for dev in self.devices.values() if dev.available))
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


def mqtt_sink(context: SinkContext) -> MqttSink | None:
    """The MQTT sink when the options name a broker (a :data:`~bmslib.sinks.base.SinkFactory`)."""
    if context.config.mqtt is None:
        return None
    return MqttSink(context.config, context.sign, commands=context.commands, statuses=context.statuses,
                    state_dir=context.state_dir)

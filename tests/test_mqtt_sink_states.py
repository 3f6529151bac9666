"""Which state messages the MQTT sink sends for a run of samples (no broker: the connection is replaced by
a recorder). The reference is the rule itself: a state is sent when its payload (the entity's rounded value,
formatted) differs from the last one sent, or a heartbeat after that; a value no longer reported is dropped.
Every entity the device had is evaluated at every publish (a statistic of one cell is still a value)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bmslib.config import parse_config
from bmslib.device import DeviceStatus
from bmslib.entities import EntityDescription, sample_entities
from bmslib.model import OutputSign, Sample
from bmslib.mqtt.topics import DeviceTopics
from bmslib.publishing import Decision
from bmslib.registry import device_types, type_infos
from mqtt_util import MqttSink, format_payload
from tests.helpers import fuzz_settings


class Recorder:
    """Stands in for the sink's connection: always connected, records what is published."""

    def __init__(self) -> None:
        self.connected = True
        self.sent: list[tuple[str, str, bool]] = []

    def publish(self, topic: str, payload: str, *, retain: bool = False, qos: int = 0) -> bool:
        self.sent.append((topic, payload, retain))
        return True

    def states(self) -> dict[str, str]:
        out = {t: p for t, p, retain in self.sent if not retain}
        self.sent.clear()
        return out


def make_sink(clock: list[float]) -> tuple[MqttSink, Recorder, DeviceStatus]:
    config = parse_config({"devices": [{"address": "x", "type": "dummy", "alias": "bat"}],
                           "mqtt_broker": "127.0.0.1", "expire_values_after": 20},
                          source="test", env={}, types=type_infos(device_types()))
    sink = MqttSink(config, OutputSign(True), commands=asyncio.Queue(), statuses=[],
                    clock=lambda: clock[0], settle=3600.0)
    rec = Recorder()
    sink.conn = rec  # type: ignore[assignment]
    status = DeviceStatus(alias="bat", type="dummy", address="x", switches=frozenset({"charge"}),
                          clock=lambda: clock[0])
    sink.on_availability(status, True)
    rec.sent.clear()
    return sink, rec, status


def publish(sink: MqttSink, status: DeviceStatus, sample: Sample) -> None:
    """The sink gets ``sample`` with the publisher's decision to publish it."""
    sink.on_sample(status, sample, Decision(published=sample))


def build(reading: dict[str, Any], t: float) -> Sample:
    return Sample.build(reading, timestamp=t, mono=t)  # type: ignore[arg-type]


readings = st.fixed_dictionaries(
    {"voltage": st.sampled_from([13.2, 13.2004, 13.25, -0.0, 0.0]),
     "current": st.sampled_from([0.0, -0.0, 1.0, 1.0004, -2.5]),
     "soc": st.sampled_from([50.0, 50.001, 51.0]),
     "cell_voltages": st.sampled_from([(3.3, 3.3, 3.3, 3.3), (3.3, 3.31, 3.3, 3.3), (3.3, 3.3, 3.3, 3.3, 3.29),
                                       (3.3,)]),
     "switches": st.sampled_from([{"charge": True}, {"charge": False}, {"charge": True, "discharge": True}])},
    optional={"temperatures": st.sampled_from([(20.0,), (20.04,), (21.0, 22.0)]),
              "alarms": st.sampled_from([(), ("cell_overvoltage",)]),
              "cycles": st.sampled_from([7, 8])})


@fuzz_settings
@given(run=st.lists(st.tuples(readings, st.sampled_from([0.5, 1.0, 4.0, 11.0])), min_size=1, max_size=12))
async def test_states_sent_are_the_changed_payloads_and_the_heartbeats(
        run: list[tuple[dict[str, Any], float]]) -> None:
    clock = [100.0]
    sink, rec, status = make_sink(clock)
    topics = DeviceTopics.for_alias("bat", "homeassistant")
    last: dict[str, tuple[str, float]] = {}  # topic -> (payload, sent at) as the reference keeps it
    known: dict[tuple[str, str], EntityDescription] = {}  # every entity seen so far; the sink keeps them all
    for reading, step in run:
        clock[0] += step
        sample = build(reading, clock[0])
        status.record_sample(sample)
        publish(sink, status, sample)
        want: dict[str, str] = {}
        current: dict[str, str] = {}
        new = [d for d in sample_entities(sample, status, sink.sign) if (d.component, d.key) not in known]
        if new:  # announced: every state is sent again
            known.update({(d.component, d.key): d for d in new})
            last = {topic: (payload, -math.inf) for topic, (payload, _) in last.items()}
        for d in known.values():
            value = d.state(sample, status, sink.sign)
            if value is not None:
                current.setdefault(topics.state(d), format_payload(value))
        for topic, payload in current.items():
            before = last.get(topic)
            if before is None or before[0] != payload or clock[0] - before[1] >= sink.heartbeat:
                want[topic] = payload
                last[topic] = (payload, clock[0])
        for topic in set(last) - set(current):
            del last[topic]  # not reported now: dropped, sent again (as new) when it comes back
        assert rec.states() == want


async def test_a_cell_that_appears_is_announced_and_published() -> None:
    clock = [100.0]
    sink, rec, status = make_sink(clock)
    four = {"voltage": 13.2, "cell_voltages": (3.3, 3.3, 3.3, 3.3)}
    for _ in range(3):
        clock[0] += 1.0
        publish(sink, status, build(four, clock[0]))
    rec.sent.clear()
    clock[0] += 1.0
    publish(sink, status, build({"voltage": 16.5, "cell_voltages": (3.3, 3.3, 3.3, 3.3, 3.3)}, clock[0]))
    retained = {t for t, _, retain in rec.sent if retain}
    assert "homeassistant/sensor/bat/_cell_voltages_5/config" in retained
    assert rec.states()["bat/cell_voltages/5"] == "3.3"
    # the same layout again: nothing new to announce
    clock[0] += 1.0
    publish(sink, status, build({"voltage": 16.6, "cell_voltages": (3.3, 3.3, 3.3, 3.3, 3.31)}, clock[0]))
    assert not [t for t, _, retain in rec.sent if retain]
    assert math.isclose(float(rec.states()["bat/cell_voltages/5"]), 3.31)

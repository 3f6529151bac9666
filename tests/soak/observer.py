"""What the soak test watches: every state the daemon publishes, checked as it arrives.

:func:`problem` says why one published state is not physically plausible (None when it is).
:class:`Observer` is an MQTT subscriber on every device's topics that checks each message with it and
keeps only what the soak's other checks need: the sample counters of every device (with their arrival
times), the increasing meters, availability changes, and the implausible messages themselves. It
reconnects by itself when the broker restarts.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.mqtt_broker import Broker

#: key (topic after ``<alias>/``) -> (low, high), inclusive. Checked for every number published under it.
RANGES: dict[str, tuple[float, float]] = {
    "soc/total_voltage": (0.0, 100.0),  # [V] the simulated packs have 4, 8 or 16 LFP cells
    "soc/current": (-500.0, 500.0),  # [A]
    "soc/power": (-50_000.0, 50_000.0),  # [W]
    "soc/soc_percent": (0.0, 100.0),
    "soc/soh": (0.0, 100.0),
    "soc/capacity": (0.0, 2000.0),  # [Ah]
    "soc/aged_capacity": (0.0, 2000.0),  # [Ah]
    "soc/cycle_capacity": (0.0, 1e9),  # [Ah] charge throughput
    "soc/total_charge_net": (-1e9, 1e9),  # [Ah]
    "problem_code": (0.0, 2.0**32),  # protection bits
    "mosfet_status/capacity_ah": (0.0, 2000.0),  # [Ah] charge left
    "soc/num_cycles": (0.0, 100_000.0),
    "soc/balance_current": (-50.0, 50.0),  # [A]
    "mosfet_status/temperature": (-50.0, 150.0),  # [°C]
    "bms/runtime": (0.0, 1e7),  # [s]
    "bms/uptime": (0.0, 1e9),  # [s]
    "diag/link_quality": (0.0, 100.0),  # [%]
    "diag/rssi": (-127.0, 20.0),  # [dBm]
    "diag/uptime": (0.0, 1e7),  # [s]
    "meter/sample_count": (0.0, 1e9),
    "diag/meter_gaps": (0.0, 1e9),
}
#: key patterns -> range
PATTERNS: tuple[tuple[re.Pattern[str], tuple[float, float]], ...] = (
    (re.compile(r"cell_voltages/(\d+|min|max|average|median|delta)"), (0.0, 5.0)),  # [V]
    (re.compile(r"cell_voltages/(min|max)_index"), (0.0, 64.0)),
    (re.compile(r"temperatures/\d+"), (-50.0, 150.0)),  # [°C]
    (re.compile(r"meter/total_(energy_charge|energy_discharge|energy|charge|cycles|abs_diff_charge)"), (-1e9, 1e9)),
)
#: keys whose payload is text; anything else must be a finite number within its range
TEXT = re.compile(r"availability|alarms|diag/last_error|diag/algorithm|battery_mode")
ON_OFF = re.compile(r"problem|battery_charging|switch/\w+")
#: the payload of a value the device does not report now (Home Assistant shows it as unknown); a pack's
#: voltage, current, power and SoC must never be it
UNKNOWN = "None"
ALWAYS_REPORTED = frozenset({"soc/total_voltage", "soc/current", "soc/power", "soc/soc_percent"})
#: meters that must never decrease
INCREASING = ("meter/total_energy_charge", "meter/total_energy_discharge", "meter/total_cycles")


def problem(key: str, payload: str) -> str | None:
    """Why ``payload`` published under ``<alias>/<key>`` is not plausible, or None."""
    if TEXT.fullmatch(key):
        if key == "availability" and payload not in ("online", "offline", ""):
            return f"availability {payload!r}"
        return None
    if payload == UNKNOWN:
        return f"{key} reported as unknown" if key in ALWAYS_REPORTED else None
    if ON_OFF.fullmatch(key):
        return None if payload in ("ON", "OFF") else f"{payload!r} is neither ON nor OFF"
    try:
        value = float(payload)
    except ValueError:
        return f"{payload!r} is not a number"
    if not math.isfinite(value):
        return f"{payload!r} is not finite"
    bounds = RANGES.get(key) or next((r for p, r in PATTERNS if p.fullmatch(key)), None)
    if bounds is None:
        return f"no plausibility rule for {key!r} (add one to tests/soak/observer.py)"
    low, high = bounds
    if not low <= value <= high:
        return f"{value:g} outside {low:g}..{high:g}"
    return None


@dataclass(frozen=True)
class Seen:
    at: float  # wall-clock time of arrival [s]
    value: float


class Observer:
    """Subscribes to ``<alias>/#`` for every device and checks every message (its own network thread)."""

    def __init__(self, broker: Broker, aliases: Iterable[str]) -> None:
        self.aliases = tuple(aliases)
        self.messages = 0
        self.implausible: list[tuple[float, str, str, str]] = []  # (at, topic, payload, why)
        self.counts: dict[str, list[Seen]] = defaultdict(list)  # alias -> meter/sample_count messages
        self.meters: dict[tuple[str, str], list[Seen]] = defaultdict(list)  # (alias, key) -> increasing meters
        self.availability: dict[str, list[tuple[float, str]]] = defaultdict(list)
        self.decreases: list[tuple[str, str, float, float]] = []  # (alias, key, before, after)
        self.connects = 0
        self._lock = threading.Lock()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"soak-observer-{time.monotonic_ns()}")
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(0.1, 0.5)
        self._broker = broker
        self._connected = threading.Event()

    def start(self) -> Observer:
        self._client.connect_async(self._broker.host, self._broker.port, 30)
        self._client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("the soak observer could not connect to the broker")
        time.sleep(0.2)
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        client.subscribe([(f"{a}/#", 0) for a in self.aliases])
        self.connects += 1
        self._connected.set()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        at = time.time()
        alias, _, key = msg.topic.partition("/")
        payload = msg.payload.decode("utf-8", "replace")
        why = problem(key, payload)
        with self._lock:
            self.messages += 1
            if why is not None:
                self.implausible.append((at, msg.topic, payload, why))
                return
            if key == "availability":
                self.availability[alias].append((at, payload))
            elif key == "meter/sample_count":
                self.counts[alias].append(Seen(at, float(payload)))
            elif key in INCREASING:
                series = self.meters[(alias, key)]
                value = float(payload)
                if series and value < series[-1].value:
                    self.decreases.append((alias, key, series[-1].value, value))
                series.append(Seen(at, value))

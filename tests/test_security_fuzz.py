"""Nothing from the network can make the daemon raise: MQTT messages and BLE advertisements, fuzzed.

(The frame assemblers and decoders of every protocol are fuzzed in tests/test_protocol_*.py.)

* The MQTT message handler of the sink, for any topic, payload and retain flag: no exception, and a switch
  is requested only for the exact command topic of a configured device's offered switch, only for a
  payload that is ON or OFF (ASCII, any case, surrounded by ASCII white space at most), never for a
  retained message, and at most ``commands_per_window`` times per device and window.
* The advertisement classifier of ``scan`` (every type's matchers) for any name, service UUIDs and
  manufacturer data.
* Victron Instant Readout: the driver's advertisement callback for any advertisement (any address,
  company, data) with the right and a wrong key; the GATT driver's notification callback for any value.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bmslib.ble.adverts import advertisement_of
from bmslib.ble.scan import classify
from bmslib.bms.victron.driver import VictronAdvDriver, VictronGattDriver
from bmslib.bms.victron.emulator import DEMO_KEY_HEX
from bmslib.bms.victron.protocol import gatt as victron
from bmslib.commands import CommandQueue
from bmslib.config import parse_config
from bmslib.device import DeviceStatus
from bmslib.model import OutputSign, Sample
from bmslib.registry import device_types, type_infos
from bmslib.sim.radio import SimRadio
from mqtt_util import MqttSink
from tests.helpers import FUZZ_EXAMPLES
from tests.sim_helpers import make_driver

fuzz = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DEVICES = [{"address": "sim:a", "type": "jbd", "alias": "jbd1"},
           {"address": "sim:b", "type": "ant", "alias": "pack/b"},  # topics 'pack/b/...', node 'pack_b'
           {"address": "sim:c", "type": "victron", "alias": "shunt"},  # no switches
           {"address": "demo", "type": "dummy", "alias": "dummy1"}]
ANNOUNCED = {"jbd1": {"charge", "discharge"}, "pack/b": {"charge", "discharge", "balance"}, "shunt": set(),
             "dummy1": {"charge", "discharge"}}
COMMANDS = {f"homeassistant/switch/{alias.replace('/', '_')}/{switch}/set": (alias, switch)
            for alias, switches in ANNOUNCED.items() for switch in switches}
NEAR_MISSES = [
    "homeassistant/switch/jbd1/charge/set/", "homeassistant/switch/jbd1/charge/Set", "homeassistant/switch/JBD1/charge/set",
    "homeassistant/switch/jbd1/charge", "homeassistant/switch/jbd1/balance/set", "homeassistant/switch/jbd1//set",
    "homeassistant/switch/pack/b/charge/set", "homeassistant/switch/shunt/charge/set", "homeassistant/switch/+/charge/set",
    "homeassistant/switch/#", "/homeassistant/switch/jbd1/charge/set", "homeassistant/switch/jbd1/charge/set\x00",
    "homeassistant/switch/jbd2/charge/set", "jbd1/switch/charge", "homeassistant/status", "batmon/x/status",
    "homeassistant/binary_sensor/jbd1/charge/set", "homeassistant/switch/jbd1/charge/set ",
]
PAYLOADS = [b"ON", b"OFF", b"on", b"Off", b" ON\n", b"\tOFF\r\n", b"ON ON", b"ONN", b"0", b"1", b"true", b"",
            b"\xff\xfe", "oﬀ".encode(), "\u3000ON".encode(), "ON\u2028".encode(), "ＯＮ".encode(), b"\x00ON",
            b"ON\x00", b"\x1cOFF", b"toggle", b"O" * 100_000]


def accepted(topic: str, payload: bytes, retained: bool) -> tuple[str, str, bool] | None:
    """What the handler may request for this message: (alias, switch, on), or None."""
    if topic not in COMMANDS or retained:
        return None
    word = payload.strip(b" \t\r\n\x0b\x0c").upper()
    if word not in (b"ON", b"OFF"):
        return None
    alias, switch = COMMANDS[topic]
    return alias, switch, word == b"ON"


class Handler:
    """The real MQTT sink (never connected), its command table built as after a connect."""

    def __init__(self) -> None:
        types = device_types()
        config = parse_config({"devices": DEVICES, "mqtt_broker": "127.0.0.1"}, source="test", env={},
                              types=type_infos(types))
        self.now = 0.0
        self.commands: CommandQueue = asyncio.Queue()
        statuses = [DeviceStatus(alias=d.alias, type=d.type, address=d.address,
                                 switches=frozenset(ANNOUNCED[d.alias])) for d in config.devices]
        self.sink = MqttSink(config, OutputSign(True), commands=self.commands, statuses=statuses,
                             clock=lambda: self.now)
        self.sink._command_topics()
        assert self.sink._commands == COMMANDS

    def message(self, topic: str, payload: bytes, retained: bool) -> list[tuple[str, str, bool]]:
        """The switch commands the sink put on the App's queue for this message."""
        self.sink._on_message(topic, payload, retained)
        calls = []
        while not self.commands.empty():
            command = self.commands.get_nowait()
            calls.append((command.alias, command.switch, command.on))
        return calls


@pytest.fixture(scope="module")
def handler() -> Iterator[Handler]:
    logging.getLogger("batmon.mqtt").setLevel(logging.CRITICAL)  # thousands of rejected commands
    try:
        yield Handler()
    finally:
        logging.getLogger("batmon.mqtt").setLevel(logging.NOTSET)


topics = st.one_of(st.sampled_from(sorted(COMMANDS)), st.sampled_from(NEAR_MISSES), st.text(max_size=80))
payloads = st.one_of(st.sampled_from(PAYLOADS), st.binary(max_size=64), st.text(max_size=16).map(str.encode))


@fuzz
@given(topics, payloads, st.booleans())
@example("homeassistant/switch/jbd1/charge/set", "oﬀ".encode(), False)  # 'ﬀ'.upper() == 'FF'
@example("homeassistant/switch/jbd1/charge/set", "\u3000ON\u2028".encode(), False)  # Unicode white space
def test_mqtt_commands_only_exact_topic_on_off_not_retained(handler: Handler, topic: str, payload: bytes,
                                                           retained: bool) -> None:
    handler.now += 1000.0  # a fresh rate window: the rate limit is tested below
    want = accepted(topic, payload, retained)
    assert handler.message(topic, payload, retained) == ([want] if want else [])


@fuzz
@given(st.lists(st.tuples(st.sampled_from(sorted(COMMANDS)), st.sampled_from([b"ON", b"OFF"]),
                          st.floats(0.0, 3.0)), max_size=60))
def test_mqtt_commands_are_limited_per_device_and_window(handler: Handler,
                                                         messages: list[tuple[str, bytes, float]]) -> None:
    handler.now += 1000.0
    window, limit = handler.sink.command_window, handler.sink.commands_per_window
    accepted_at: dict[str, list[float]] = {}
    for topic, payload, pause in messages:
        handler.now += pause
        for alias, _switch, _on in handler.message(topic, payload, False):
            accepted_at.setdefault(alias, []).append(handler.now)
    for times in accepted_at.values():
        for i, t in enumerate(times):
            assert len([u for u in times[: i + 1] if t - u < window]) <= limit


# --- advertisements -------------------------------------------------------------------------------

macs = st.builds(lambda b: ":".join(f"{x:02X}" for x in b), st.binary(min_size=6, max_size=6))
uuids = st.one_of(st.sampled_from([m.service_uuid for t in device_types().values() for m in t.matchers
                                   if m.service_uuid]), st.uuids().map(str), st.text(max_size=40))
manufacturer = st.dictionaries(st.one_of(st.sampled_from([victron.COMPANY_ID, 0x1822, 0x0B65, 0x585A, 0x0000]),
                                         st.integers(0, 0xFFFF)), st.binary(max_size=32), max_size=4)
names = st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["ANT-BLE16ZMUB", "JK_B2A8S20P", "SmartShunt",
                                                                    "libattU", "DL-40D63C", "SOK-AA12487", "xiaoxiang"]))


@fuzz
@given(macs, names, st.lists(uuids, max_size=4), manufacturer)
def test_scan_classifier_accepts_any_advertisement(address: str, name: str | None, service_uuids: list[str],
                                                   mfr: dict[int, bytes]) -> None:
    types = device_types()
    found, notes = classify(address, name, service_uuids, mfr, types)
    assert set(found) <= set(types)
    assert all(isinstance(n, str) for n in notes)


@pytest.fixture(scope="module")
def victron_drivers() -> dict[str, Any]:
    radio = SimRadio()
    address = "5E:00:00:00:00:01"
    drivers: dict[str, Any] = {
        "right key": make_driver("victron", radio, None, address=address, key=DEMO_KEY_HEX, debug=True),
        "wrong key": make_driver("victron", radio, None, address=address, key="f" * 32, debug=True),
        "gatt": make_driver("victron", radio, None, address=address, debug=True),
    }
    assert isinstance(drivers["right key"], VictronAdvDriver) and isinstance(drivers["gatt"], VictronGattDriver)
    return drivers


def plausible_if_published(reading: dict[str, Any]) -> None:
    """A reading the driver keeps must at least build a sample (the soak's plausibility rules are wider)."""
    sample = Sample.build(reading, timestamp=0.0, mono=0.0)  # type: ignore[arg-type]
    for value in (sample.voltage, sample.current, sample.soc):
        assert value is None or math.isfinite(value)


@fuzz
@given(st.sampled_from(["right key", "wrong key"]), st.one_of(st.just("5E:00:00:00:00:01"), macs), names,
       manufacturer, st.one_of(st.none(), st.integers(-127, 20)))
@example("right key", "5E:00:00:00:00:01", None, {victron.COMPANY_ID: bytes.fromhex("100289a302b0cd" + "01" * 9)},
         -60)  # header, record type and nonce of a battery monitor, key byte and record garbage
def test_victron_advertisement_callback_never_raises(victron_drivers: dict[str, Any], which: str, address: str,
                                                    name: str | None, mfr: dict[int, bytes],
                                                    rssi: int | None) -> None:
    driver: VictronAdvDriver = victron_drivers[which]
    device = BLEDevice(address, name, {})
    adv = AdvertisementData(local_name=name, manufacturer_data=mfr, service_data={}, service_uuids=[],
                            tx_power=None, rssi=rssi if rssi is not None else -127, platform_data=())
    driver._on_advertisement(advertisement_of(device, adv))  # as the BLE layer's shared scanner hands it over
    assert len(driver._notes_logged) <= 32
    if driver._latest is not None:
        plausible_if_published(dict(driver._latest))


@fuzz
@given(st.one_of(st.sampled_from([c.uuid for c in victron.CHARACTERISTICS]), st.uuids().map(str)),
       st.binary(max_size=24))
def test_victron_gatt_notification_callback_never_raises(victron_drivers: dict[str, Any], uuid: str,
                                                        value: bytes) -> None:
    victron_drivers["gatt"]._on_value(uuid, value)

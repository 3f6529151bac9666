"""End to end: the daemon (``--demo``) publishes to mosquitto, a real Home Assistant 2025.4.4 on Python 3.13
(the app image's Python) consumes the discovery; checked through Home Assistant's REST API, and its
websocket API for the Energy dashboard's own validation of the meters. Run with scripts/test-ha (installs
Home Assistant into .havenv the first time)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ha.hass import HAVENV, ROOT, HomeAssistant
from tests.mqtt_broker import Broker, Watcher, broker, watcher
from tests.servers import free_port

__all__ = ["broker", "watcher"]  # fixtures

pytestmark = pytest.mark.ha

EXPIRE = 4.0  # [s] expire_values_after: short, so a missing heartbeat would show as a flicker
WATCH = 60.0  # [s] no entity of a live device may turn unavailable during this long a watch


def wait(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def daemon(broker: Broker, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    options = tmp_path / "options.json"
    options.write_text(json.dumps({**broker.options(), "expire_values_after": EXPIRE}))
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen([sys.executable, "main.py", "--demo", "--config", str(options), "--state-dir",
                             str(tmp_path)], cwd=ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log.close()


@pytest.fixture
def hass(tmp_path: Path, broker: Broker) -> Iterator[HomeAssistant]:
    if not (HAVENV / "bin" / "hass").exists():
        pytest.fail(f"no Home Assistant in {HAVENV}: run scripts/test-ha")
    ha = HomeAssistant(tmp_path / "ha", free_port())
    ha.start()
    try:
        ha.onboard()
        ha.setup_mqtt(broker.host, broker.port)
        yield ha
    finally:
        ha.stop()


def by_name(states: dict[str, dict[str, Any]], friendly: str) -> dict[str, Any] | None:
    for s in states.values():
        if s["attributes"].get("friendly_name") == friendly:
            return s
    return None


def entity(ha: HomeAssistant, friendly: str, timeout: float = 30) -> dict[str, Any]:
    found: dict[str, Any] = wait(lambda: by_name(ha.states(), friendly), timeout, f"entity {friendly!r}")
    return found


def issue_types(issues: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """``energy/validate``'s issues of one source as {issue type: [[entity_id, detail], ...]}."""
    return {i["type"]: sorted(i["affected_entities"]) for i in issues}


def check_energy_dashboard(ha: HomeAssistant, watcher: Watcher) -> None:
    """One device's charge and discharge meters as the battery source of the Energy dashboard: Home Assistant's
    ``energy/validate`` reports no issue for them. A voltage sensor given as a device's consumption is the
    control: validation must flag it, so an empty answer for the meters means something."""
    for key in ("charge", "discharge"):
        msg = watcher.last(f"homeassistant/sensor/demo_jbd/_meter_total_energy_{key}/config")
        assert msg is not None, key
        config = json.loads(msg.payload)
        assert (config["device_class"], config["state_class"], config["unit_of_measurement"]) == (
            "energy", "total_increasing", "kWh"), config
    states = ha.states()
    into = by_name(states, "demo_jbd total energy input")
    out_of = by_name(states, "demo_jbd total energy output")
    voltage = by_name(states, "demo_jbd Voltage")
    assert into is not None and out_of is not None and voltage is not None
    meters = {out_of["entity_id"], into["entity_id"]}
    with ha.websocket() as ws:
        ws.command("energy/save_prefs",
                   energy_sources=[{"type": "battery", "stat_energy_from": out_of["entity_id"],
                                    "stat_energy_to": into["entity_id"]}],
                   device_consumption=[{"stat_consumption": voltage["entity_id"]}])
        prefs = ws.command("energy/get_prefs")
        assert prefs["energy_sources"] == [{"type": "battery", "stat_energy_from": out_of["entity_id"],
                                            "stat_energy_to": into["entity_id"]}]
        # Before the recorder's first statistics run for these sensors the only possible complaint is the
        # missing statistics (the run is every 5 minutes; the test hook brings it forward).
        first = ws.command("energy/validate")
        before = issue_types(first["energy_sources"][0])
        assert set(before) <= {"statistics_not_defined"}, first
        assert {e for e, _ in before.get("statistics_not_defined", [])} <= meters, first
        ha.call("batmon_e2e", "compile_statistics")

        def validated() -> dict[str, Any] | None:
            result: dict[str, Any] = ws.command("energy/validate")
            return result if result["energy_sources"] == [[]] else None

        try:
            result = wait(validated, 20, "energy/validate without issues for the battery meters", interval=1)
        except AssertionError:
            raise AssertionError(f"energy/validate: {ws.command('energy/validate')}") from None
        print(f"energy/validate before the statistics run: {first}\nenergy/validate after: {result}")
        control = issue_types(result["device_consumption"][0])
        assert control == {"entity_unexpected_device_class": [[voltage["entity_id"], "voltage"]],
                           "entity_state_class_measurement_no_last_reset": [[voltage["entity_id"], None]]}, result
        # what the dashboard's statistic picker offers: long-term statistics with a sum, in an energy unit
        offered = {s["statistic_id"]: s for s in ws.command("recorder/list_statistic_ids", statistic_type="sum")}
        for meter in meters:
            assert meter in offered, sorted(offered)
            assert offered[meter]["has_sum"] and offered[meter]["unit_class"] == "energy", offered[meter]
            assert offered[meter]["statistics_unit_of_measurement"] == "kWh", offered[meter]
        # and the recorder's own statistics check (Developer tools → Statistics) has nothing to say about them
        problems = ws.command("recorder/validate_statistics")
        assert not meters & set(problems), problems


def pinned_home_assistant() -> str:
    """The Home Assistant release tests/ha/requirements.txt pins."""
    for line in (Path(__file__).parent / "requirements.txt").read_text().splitlines():
        if line.startswith("homeassistant=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError("tests/ha/requirements.txt pins no homeassistant")


def test_home_assistant_consumes_batmon(broker: Broker, watcher: Watcher, daemon: subprocess.Popen[bytes],
                                        hass: HomeAssistant, tmp_path: Path) -> None:
    ha = hass
    # --- the Home Assistant under test is the pinned release, on the app image's Python (3.13) ---
    assert ha.request("GET", "/api/config")["version"] == pinned_home_assistant() == "2025.4.4"
    python = subprocess.run([str(HAVENV / "bin" / "python"), "-c", "import sys; print(*sys.version_info[:2])"],
                            capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert python == ["3", "13"], python
    # --- the expected entities exist, with units, device classes and values ---
    expected = {
        "demo_jbd Voltage": ("V", "voltage", "measurement"),
        "demo_jbd Current": ("A", "current", "measurement"),
        "demo_jbd Power": ("W", "power", "measurement"),
        "demo_jbd Soc": ("%", "battery", "measurement"),
        "demo_jbd Charge": ("Ah", None, "measurement"),
        "demo_jbd Capacity": ("Ah", None, None),
        "demo_jbd Cell Volt 1": ("V", "voltage", "measurement"),
        "demo_jbd Cell Volt delta": ("V", "voltage", "measurement"),
        "demo_jbd Temperatures 1": ("°C", "temperature", "measurement"),
        "demo_jbd Link quality": ("%", None, "measurement"),
        "demo_dummy Voltage": ("V", "voltage", "measurement"),
        "demo_dummy Mos_temperature": ("°C", "temperature", "measurement"),
        "demo_jbd total energy input": ("kWh", "energy", "total_increasing"),
        "demo_jbd total energy output": ("kWh", "energy", "total_increasing"),
        "demo_jbd total energy netted": ("kWh", "energy", "total"),
        "demo_dummy total charge netted": ("Ah", None, "total"),
    }
    for name, (unit, device_class, state_class) in expected.items():
        s = entity(ha, name, timeout=60)
        attrs = s["attributes"]
        assert attrs.get("unit_of_measurement") == unit, (name, attrs)
        assert attrs.get("device_class") == device_class, (name, attrs)
        assert attrs.get("state_class") == state_class, (name, attrs)
        wait(lambda name=name: by_name(ha.states(), name)["state"] not in ("unknown", "unavailable"), 15,
             f"a value for {name}")
    for name in ("demo_jbd charge", "demo_jbd discharge", "demo_dummy charge", "demo_jbd problem",
                 "demo_jbd Alarms"):
        wait(lambda name=name: (by_name(ha.states(), name) or {}).get("state") not in (None, "unknown", "unavailable"),
             15, f"a state for {name}")
    states = ha.states()
    for name in ("demo_jbd charge", "demo_jbd discharge", "demo_dummy charge"):
        sw = by_name(states, name)
        assert sw is not None and sw["entity_id"].startswith("switch.") and sw["state"] == "on", (name, sw)
    problem = by_name(states, "demo_jbd problem")
    assert problem is not None and problem["entity_id"].startswith("binary_sensor.") and problem["state"] == "off"
    assert by_name(states, "demo_jbd Alarms")["state"] == "none"  # type: ignore[index]
    assert by_name(states, "demo_jbd charge switch") is None  # the read-only mirror is disabled by default
    # a value in Home Assistant is the one on the state topic
    capacity = by_name(states, "demo_jbd Capacity")
    assert capacity is not None
    assert float(capacity["state"]) == float(watcher.last("demo_jbd/soc/capacity").payload)  # type: ignore[union-attr]
    cells = [s for s in states.values() if re.fullmatch(r"demo_jbd Cell Volt \d+", s["attributes"]["friendly_name"])]
    assert len(cells) >= 4 and all(3.0 < float(c["state"]) < 3.7 for c in cells)
    voltage = float(by_name(states, "demo_jbd Voltage")["state"])  # type: ignore[index]
    assert voltage == pytest.approx(sum(float(c["state"]) for c in cells), abs=0.5)

    # --- no entity flickers to unavailable while the daemon runs ---
    demo = [s["entity_id"] for s in ha.states().values() if s["attributes"].get("friendly_name", "").startswith(
        "demo_") and s["entity_id"].split(".")[0] in ("sensor", "binary_sensor", "switch")]
    assert len(demo) > 100
    # (an entity created from discovery is unavailable until its first state, a switch unknown: wait for all of
    # them once; a sensor may be unknown after that: a value its device does not report now is sent as None)
    wait(lambda: not [e for e, st in ha.states().items() if e in demo and (
        st["state"] == "unavailable" or (st["state"] == "unknown" and e.startswith("switch.")))],
         20, "a state for every entity")
    watch_until = time.monotonic() + WATCH
    while time.monotonic() < watch_until:
        now = ha.states()
        bad = [e for e in demo if now.get(e, {}).get("state") == "unavailable"]
        assert not bad, bad
        time.sleep(0.5)

    # --- a value the device stops reporting is unknown, not unavailable: the Victron's runtime (time-to-go),
    # which it shows only while the battery discharges (the demo's load swings between charge and discharge) ---
    def runtime_payload() -> str | None:
        msg = watcher.last("demo_victron/bms/runtime")
        return None if msg is None else msg.payload

    def is_runtime(state: dict[str, Any]) -> bool:
        name = state["attributes"].get("friendly_name", "")  # the device name may carry the model
        return bool(state["entity_id"].startswith("sensor.") and (
            name == "demo_victron Runtime" or name.endswith("(demo_victron) Runtime")))

    # (the entity exists once the runtime was reported: the demo may start while charging)
    runtime_id = wait(lambda: next((s["entity_id"] for s in ha.states().values() if is_runtime(s)), None), 130,
                      "the Victron's runtime entity (the battery discharging once)", interval=1)
    wait(lambda: runtime_payload() == "None", 130, "the Victron not discharging (its runtime published as None)",
         interval=1)
    wait(lambda: ha.state(runtime_id)["state"] == "unknown", 10, "the runtime unknown")  # type: ignore[index]
    stopped = time.monotonic()
    while time.monotonic() < stopped + 2 * EXPIRE and runtime_payload() == "None":  # (until discharging again)
        # expire_after would have made it unavailable by now
        assert ha.state(runtime_id)["state"] == "unknown", ha.state(runtime_id)  # type: ignore[index]
        time.sleep(0.5)

    # --- the energy meters are accepted by the Energy dashboard, as Home Assistant itself validates them ---
    check_energy_dashboard(ha, watcher)

    # --- a switch toggled in Home Assistant changes the simulated device, and HA shows what it reports ---
    sw_id = by_name(ha.states(), "demo_jbd charge")["entity_id"]  # type: ignore[index]
    sent = time.monotonic()
    ha.call("switch", "turn_off", entity_id=sw_id)
    wait(lambda: "OFF" in [m.payload for m in watcher.seen("demo_jbd/switch/charge", since=sent)], 10,
         "the device reporting the charge switch off")
    cmd = [m.payload for m in watcher.seen("homeassistant/switch/demo_jbd/charge/set", since=sent)]
    assert cmd == ["OFF"]
    wait(lambda: ha.state(sw_id)["state"] == "off", 10, "the switch off in Home Assistant")  # type: ignore[index]
    assert "switch charge is off (confirmed by the device)" in (tmp_path / "daemon.log").read_text()
    ha.call("switch", "turn_on", entity_id=sw_id)
    wait(lambda: ha.state(sw_id)["state"] == "on", 10, "the switch on again")  # type: ignore[index]

    # --- stopping the daemon makes the entities unavailable ---
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    wait(lambda: all(ha.state(e)["state"] == "unavailable" for e in demo[:40]), 10,  # type: ignore[index]
         "entities unavailable after the daemon stopped")
    assert all(s["state"] == "unavailable" for e, s in ha.states().items() if e in demo)

    # --- Home Assistant had nothing to complain about in our discovery ---
    log = (ha.dir / "ha.log").read_text(errors="replace")
    mqtt_errors = [line for line in log.splitlines() if ("ERROR" in line or "WARNING" in line) and "mqtt" in line]
    assert not mqtt_errors, "\n".join(mqtt_errors[:20])


#: Run in .havenv: the keys Home Assistant's own MQTT discovery schemas accept, as JSON.
_SCHEMA_KEYS = """
import json
import voluptuous as vol
from homeassistant.components.mqtt import binary_sensor, schemas, sensor, switch

def keys(s):
    if isinstance(s, vol.All):
        return set().union(*(keys(v) for v in s.validators))
    return {str(k) for k in s.schema} if isinstance(s, vol.Schema) else set()

print(json.dumps({"sensor": sorted(keys(sensor.DISCOVERY_SCHEMA)),
                  "binary_sensor": sorted(keys(binary_sensor.DISCOVERY_SCHEMA)),
                  "switch": sorted(keys(switch.DISCOVERY_SCHEMA)),
                  "device": sorted(keys(schemas.MQTT_ENTITY_DEVICE_INFO_SCHEMA)),
                  "origin": sorted(keys(schemas.MQTT_ORIGIN_INFO_SCHEMA))}))
"""


def test_the_discovery_key_tables_are_home_assistants() -> None:
    """tests/test_discovery_keys.py's tables of accepted keys are what this Home Assistant's schemas accept."""
    from tests.test_discovery_keys import ACCEPTED, ACCEPTED_DEVICE, ACCEPTED_ORIGIN  # noqa: PLC0415

    if not (HAVENV / "bin" / "python").exists():
        pytest.fail(f"no Home Assistant in {HAVENV}: run scripts/test-ha")
    out = subprocess.run([str(HAVENV / "bin" / "python"), "-c", _SCHEMA_KEYS], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    real = {k: set(v) for k, v in json.loads(out).items()}
    for component, accepted in ACCEPTED.items():
        assert set(accepted) == real[component], (component, set(accepted) ^ real[component])
    assert set(ACCEPTED_DEVICE) == real["device"] and set(ACCEPTED_ORIGIN) == real["origin"]


def test_the_unknown_payload_is_home_assistants() -> None:
    """The payload batmon sends for a value not reported (mqtt_util.UNKNOWN) is the one this Home Assistant's
    MQTT sensor, binary sensor and switch turn into unknown (their PAYLOAD_NONE)."""
    from mqtt_util import UNKNOWN  # noqa: PLC0415

    if not (HAVENV / "bin" / "python").exists():
        pytest.fail(f"no Home Assistant in {HAVENV}: run scripts/test-ha")
    script = ("import json\nfrom homeassistant.components.mqtt import binary_sensor, sensor, switch\n"
              "print(json.dumps([m.PAYLOAD_NONE for m in (sensor, binary_sensor, switch)]))")
    out = subprocess.run([str(HAVENV / "bin" / "python"), "-c", script], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    assert json.loads(out) == [UNKNOWN] * 3

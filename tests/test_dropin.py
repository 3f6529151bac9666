"""A drop-in for fl4p/batmon-ha users: its entities (problem code, charging, mode, aged and cycle capacity,
net charge, runtime for every BMS), its type names (read as batmon's, or refused in one line naming what to
use instead) and its topic prefix rule ('-' becomes '_')."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from bmslib.app import make_emulator
from bmslib.ble.backend import BleBackend
from bmslib.cli import name_unnamed_devices
from bmslib.config import ConfigError, parse_config
from bmslib.config.advertised_names import NAMES_FILE, unnamed, with_advertised_names
from bmslib.config.original_types import AIOBMSBLE_NATIVE, REFUSED, RENAMED, dropin_names, original_type
from bmslib.device import DeviceStatus
from bmslib.entities import SAMPLE_ENTITIES, sample_entities
from bmslib.model import BATTERY_MODES, IDLE_CURRENT, OutputSign, Reading, Sample
from bmslib.mqtt.discovery import device_block, discovery_config
from bmslib.mqtt.topics import DeviceTopics
from bmslib.registry import device_types, type_infos
from bmslib.sim.radio import SimRadio, sim_address
from tests.test_cli import run

MAC = "AA:BB:CC:DD:EE:01"


def build(**reading: Any) -> Sample:
    r: Reading = reading  # type: ignore[assignment]
    return Sample.build(r, timestamp=1.0, mono=1.0)


# --- the values --------------------------------------------------------------------------------------

def test_runtime_is_estimated_from_charge_and_discharge_current() -> None:
    assert build(current=10.0, charge=50.0).runtime == pytest.approx(18000.0)  # 50 Ah at 10 A: 5 h
    assert build(current=10.0, soc=50.0, capacity=100.0).runtime == pytest.approx(18000.0)  # charge from SoC
    assert build(current=-10.0, charge=50.0).runtime is None  # charging
    assert build(current=IDLE_CURRENT / 2, charge=50.0).runtime is None  # idle noise
    assert build(current=10.0).runtime is None  # no charge known
    assert build(current=10.0, charge=50.0, runtime=600.0).runtime == 600.0  # the device's own wins


def test_charging_follows_the_current_in_the_models_sign() -> None:
    assert build(current=-5.0).battery_charging is True
    assert build(current=5.0).battery_charging is False
    assert build(current=-IDLE_CURRENT / 2).battery_charging is False
    assert build().battery_charging is None
    assert build(current=5.0, battery_charging=True).battery_charging is True  # reported wins


def test_mode_is_published_as_reported() -> None:
    assert build().battery_mode is None
    assert build(battery_mode="FLOAT").battery_mode == "FLOAT"
    assert BATTERY_MODES == ("UNKNOWN", "BULK", "ABSORPTION", "FLOAT")


def test_aged_capacity_problem_code_cycle_capacity_and_net_charge() -> None:
    s = build(capacity=200.0, soh=90.0,
              extra={"protection_bitmask": 4096, "total_cycle_capacity": 1234.5, "total_discharged": 987.0})
    assert s.aged_capacity == pytest.approx(180.0)
    assert s.problem_code == 4096 and isinstance(s.problem_code, int)
    assert s.cycle_capacity == 1234.5 and s.total_charge_net == 987.0
    assert build(extra={"cycle_capacity": 55.5}).cycle_capacity == 55.5  # JK's name
    assert build(capacity=200.0).aged_capacity is None
    assert build(aged_capacity=170.0, capacity=200.0, soh=90.0).aged_capacity == 170.0  # reported wins
    assert build(problem_code=3, extra={"protection_bitmask": 1}).problem_code == 3
    assert build(extra={"protection_bitmask": True}).problem_code is None  # a flag is not a bitmask


ORIGINAL = {  # key -> (component, unique id suffix, name, device_class, state_class, unit, icon)
    "problem_code": ("sensor", "problem_code", "problem code", None, None, None, "mdi:alert-circle-outline"),
    "battery_charging": ("binary_sensor", "battery_charging", "battery charging", "battery_charging", None, None,
                         None),
    "battery_mode": ("sensor", "battery_mode", "battery mode", "enum", None, None, "mdi:battery-charging-medium"),
    "soc/aged_capacity": ("sensor", "soc_aged_capacity", "Aged_capacity", None, None, "Ah",
                          "mdi:battery-heart-variant"),
    "soc/cycle_capacity": ("sensor", "soc_cycle_capacity", "Total_charge_throughput", None, None, "Ah", None),
    "soc/total_charge_net": ("sensor", "soc_total_charge_net", "Total_charge_net", None, "total_increasing", "Ah",
                             "mdi:battery-arrow-down"),
    "bms/runtime": ("sensor", "bms_runtime", "Runtime", "duration", "measurement", "s", "mdi:timer-sand"),
}


def test_the_originals_entities_are_published_as_it_published_them() -> None:
    s = build(voltage=53.0, current=10.0, charge=50.0, capacity=100.0, soh=95.0, battery_mode="BULK",
              extra={"protection_bitmask": 0, "total_cycle_capacity": 10.0, "total_discharged": 5.0})
    status = DeviceStatus(alias="Bat-DB", type="jbd", address=MAC, switches=frozenset(), ble_address=MAC)
    topics = DeviceTopics.for_alias("Bat-DB", "homeassistant")
    device = device_block(status, topics)
    descs = {d.key: d for d in sample_entities(s, status, OutputSign(True))}
    for key, (component, uid, name, dclass, sclass, unit, icon) in ORIGINAL.items():
        d = descs[key]
        cfg = discovery_config(d, topics, device=device, daemon_topic="batmon/x/status", expire=20)
        assert d.component == component, key
        assert cfg["unique_id"] == f"Bat_DB__{uid}" and cfg["state_topic"] == f"Bat_DB/{key}", key
        assert (cfg["name"], cfg.get("device_class"), cfg.get("state_class"), cfg.get("unit_of_measurement"),
                cfg.get("icon")) == (name, dclass, sclass, unit, icon), key
    assert discovery_config(descs["battery_mode"], topics, device=device, daemon_topic="t",
                            expire=None)["options"] == ["UNKNOWN", "BULK", "ABSORPTION", "FLOAT"]
    assert descs["problem_code"].state(s, status, OutputSign(True)) == 0
    assert descs["battery_charging"].state(s, status, OutputSign(True)) is False
    assert {d.key for d in SAMPLE_ENTITIES} >= set(ORIGINAL)


# --- types ----------------------------------------------------------------------------------------

def parse(type_name: str) -> Any:
    return parse_config({"devices": [{"address": MAC, "type": type_name, "alias": "b"}]}, source="test", env={},
                        types=type_infos())


def refusal(type_name: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse(type_name)
    return list(err.value.problems)


@pytest.mark.parametrize(("name", "batmon"), sorted(RENAMED.items()))
def test_the_originals_renamed_types_are_read_with_one_line(name: str, batmon: str) -> None:
    cfg = parse(name)
    assert cfg.devices[0].type == batmon
    assert list(cfg.warnings) == [f"devices[0].type: '{name}' is batmon-ha's name; read as '{batmon}'"]


def test_the_originals_types_are_all_known_to_the_table() -> None:
    # the add-on's registry (2.13) and its 'sok' alias; each is batmon's, renamed or refused
    original = ["daly", "daly2", "jbd", "jk", "jk_24s", "jk_32s", "jk_uart", "daly_uart", "pace_uart", "ant",
                "victron", "group_parallel", "supervolt", "sok", "sok_legacy", "litime", "basen", "basen_uart",
                "noname_modbus", "dummy", "snoop"]
    ours = set(device_types()) | {"group_parallel"}
    assert all(name in ours or name in RENAMED or name in REFUSED for name in original)


def test_wired_and_unsupported_types_are_refused_in_one_line() -> None:
    assert refusal("jk_uart") == ["devices[0].type: 'jk_uart' is a wired (RS485/UART) BMS, which batmon does not "
                                  "read (Bluetooth only); keep it in batmon-ha"]
    assert refusal("snoop:jk,jbd") == ["devices[0].type: 'snoop:jk,jbd' is batmon-ha's protocol inspector; use "
                                       "`main.py scan` to see which type batmon would use"]
    assert refusal("litime") == ["devices[0].type: 'litime' is a BMS batmon does not support; keep it in batmon-ha"]


@pytest.mark.parametrize(("name", "batmon"), [
    ("seplos_ble", "seplos"), ("seplos_aiobmsble", "seplos"), ("renogy_pro_ble", "renogy_pro"),
    ("Ecoworthy_BLE", "ecoworthy")])
def test_aiobmsble_names_of_bridge_only_plugins_are_read_as_the_plugins_type(name: str, batmon: str) -> None:
    cfg = parse(name)
    assert cfg.devices[0].type == batmon
    assert list(cfg.warnings) == [f"devices[0].type: '{name}' is batmon-ha's name; read as '{batmon}'"]


@pytest.mark.parametrize(("name", "batmon", "native"), [
    ("jikong", "jikong_ble", "jk"), ("abc", "abc_ble", "sok"), ("ej", "ej_ble", "supervolt"),
    ("ant_leg", "ant_leg_ble", "ant_legacy"), ("jikong_aiobmsble", "jikong_ble", "jk"),
    ("jbd_aiobmsble", "jbd_ble", "jbd"), ("ant_leg_aiobmsble", "ant_leg_ble", "ant_legacy")])
def test_aiobmsble_names_of_natively_read_bmses_are_the_bridge_type_with_a_note(name: str, batmon: str,
                                                                                native: str) -> None:
    cfg = parse(name)
    assert cfg.devices[0].type == batmon
    assert list(cfg.warnings) == [f"devices[0].type: '{name}' is batmon-ha's name; read as '{batmon}' (batmon's "
                                  f"own type '{native}' reads the same BMS and can switch)"]


def test_the_bridge_types_of_natively_read_bmses_are_read_as_they_are() -> None:
    for module, ours in AIOBMSBLE_NATIVE.items():
        assert ours in device_types()
        cfg = parse(f"{module}_ble")
        assert cfg.devices[0].type == f"{module}_ble" and not cfg.warnings
    assert original_type("jbd") == (None, "")  # batmon's own names are not the table's business


def test_a_name_aiobmsble_has_no_plugin_for_is_not_a_known_type() -> None:
    (problem,) = refusal("nonesuch_ble")
    assert problem.startswith("devices[0].type: 'nonesuch_ble' is not a known type (")


def test_every_dropin_name_is_offered_by_the_addon_schema_and_read() -> None:
    types = device_types()
    plugins = [name.removesuffix("_ble") if name.removesuffix("_ble") in AIOBMSBLE_NATIVE else name
               for name, t in types.items() if t.via == "aiobmsble"]
    names = dropin_names(plugins)
    assert len(names) > 100 and not set(names) & set(types)
    for name, ours in names.items():
        assert parse(name).devices[0].type == ours


def test_a_refused_type_exits_with_status_2_and_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "options.yaml"
    cfg.write_text(f"devices:\n  - {{address: '{MAC}', type: daly_uart, alias: a}}\n")
    proc = run("--config", str(cfg))
    assert proc.returncode == 2
    assert "devices[0].type: 'daly_uart' is a wired" in proc.stderr and "Traceback" not in proc.stderr


# --- a device without alias: named after its advertised name --------------------------------------

def parse_devices(*entries: dict[str, Any]) -> Any:
    return parse_config({"devices": list(entries)}, source="test", env={}, types=type_infos())


def test_a_device_without_alias_is_named_after_its_advertised_name() -> None:
    cfg = parse_devices({"address": MAC.lower(), "type": "jbd"}, {"address": "sim:x", "type": "jbd"},
                        {"address": MAC, "type": "group_parallel", "alias": "bank"})
    assert cfg.devices[0].alias == "aabbccddee01" and cfg.devices[0].alias_from_address
    assert not cfg.devices[1].alias_from_address  # sim:x is named x
    assert unnamed(cfg) == [MAC]
    named, lines = with_advertised_names(cfg, {MAC.lower(): " JBD-SP04S034-L4S "})
    assert named.devices[0].alias == "JBD-SP04S034-L4S"  # meters keyed by it; topics JBD_SP04S034_L4S/...
    assert named.devices[2].members == ("JBD-SP04S034-L4S",)  # the group follows
    assert lines == ["devices[0]: no alias: named 'JBD-SP04S034-L4S' after its advertised name, as batmon-ha did"]
    kept, lines = with_advertised_names(cfg, {})
    assert kept.devices[0].alias == "aabbccddee01" and len(lines) == 1 and "set alias" in lines[0]


def test_an_advertised_name_that_cannot_be_an_alias_is_not_used() -> None:
    cfg = parse_devices({"address": MAC, "type": "jbd"}, {"address": "sim:y", "type": "jbd", "alias": "bat_1"})
    for name in ("a#b", "bat-1", "BAT_1"):  # not a topic level; another device's topics; another's alias
        named, lines = with_advertised_names(cfg, {MAC: name})
        assert named.devices[0].alias == "aabbccddee01", name
        assert len(lines) == 1 and lines[0].endswith("set alias"), name


async def test_names_are_scanned_once_and_remembered(tmp_path: Path) -> None:
    radio = SimRadio()
    radio.add(make_emulator(device_types()["jbd"], "p1", random.Random(1)), sim_id="p1")
    backend = BleBackend(radio.client_backend(), radio.scanner_backend(), simulated=True)
    address = sim_address("p1")
    cfg = parse_devices({"address": address, "type": "jbd"})
    named = await name_unnamed_devices(cfg, tmp_path, backend=backend, timeout=0.5)
    assert named.devices[0].alias == "JBD-p1"
    assert json.loads((tmp_path / NAMES_FILE).read_text()) == {address: "JBD-p1"}
    # out of range at the next start: the remembered name holds (no scan: an empty radio would find nothing)
    empty = SimRadio()
    backend = BleBackend(empty.client_backend(), empty.scanner_backend(), simulated=True)
    again = await name_unnamed_devices(cfg, tmp_path, backend=backend, timeout=0.5)
    assert again.devices[0].alias == "JBD-p1"

"""``ble_stack`` and ``bluetooth_proxies``: validated like every option (one line naming the option and the value,
exit status 2), the API encryption key never shown, a device's ``adapter`` naming a proxy pins it there."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from bmslib.config.settings import ProxyConfig
from tests.test_cli import run
from tests.test_config import MAC1, MAC2, dev, devices, parse, problems

KEY = base64.b64encode(bytes(range(32))).decode()
SECRET_LOOKING = "c2VjcmV0LWJ1dC10b28tc2hvcnQ="  # base64 of 21 bytes: a wrong key


def proxies(*entries: dict[str, Any], stack: str = "esphome", **top: Any) -> dict[str, Any]:
    return {"ble_stack": stack, "bluetooth_proxies": list(entries), **top}


def test_proxies_are_read_with_their_defaults() -> None:
    config = parse(proxies({"host": "192.168.1.20", "noise_psk": KEY}, {"host": "shed.local", "port": 6054,
                                                                         "name": "shed"}))
    assert config.ble_stack == "esphome"
    assert config.bluetooth_proxies == (ProxyConfig("192.168.1.20", 6053, KEY, "192.168.1.20"),
                                        ProxyConfig("shed.local", 6054, None, "shed"))
    assert KEY not in repr(config)
    assert config.warnings == ()


def test_the_default_is_bleak_and_the_originals_other_stacks_are_read_as_bleak() -> None:
    assert parse({}).ble_stack == "bleak"
    config = parse({"ble_stack": "bumble"})
    assert config.ble_stack == "bleak"
    assert config.warnings == ("ble_stack: 'bumble' is not available in batmon; read as 'bleak' (the host's "
                               "adapters)",)


@pytest.mark.parametrize(("data", "problem"), [
    ({"ble_stack": "bluez"}, "ble_stack: 'bluez' is not a Bluetooth stack (bleak, esphome)"),
    (proxies(), "bluetooth_proxies: ble_stack is esphome: add at least one proxy (host, and noise_psk when its "
                "API is encrypted)"),
    (proxies({"port": 6053}), "bluetooth_proxies[0].host: is required"),
    (proxies({"host": "proxy:6053"}), "bluetooth_proxies[0].host: 'proxy:6053' is not a host name or IP address "
                                      "(the port goes into port)"),
    (proxies({"host": "a b"}), "bluetooth_proxies[0].host: 'a b' is not a host name or IP address"),
    (proxies({"host": "p", "port": 70000}), "bluetooth_proxies[0].port: must be 1..65535, got 70000"),
    (proxies({"host": "p", "name": "hci0"}), "bluetooth_proxies[0].name: 'hci0' looks like a local adapter (hciN "
                                             "or a MAC address); choose another name"),
    (proxies({"host": "p"}, {"host": "q", "name": "P"}), "bluetooth_proxies[1].name: 'P' is already the name of "
                                                         "bluetooth_proxies[0]"),
    (proxies({"host": "p", "name": "a"}, {"host": "p", "name": "b"}),
     "bluetooth_proxies[1].host: p:6053 is already bluetooth_proxies[0]"),
    (proxies("p"), "bluetooth_proxies[0]: expected a mapping with host (and port, noise_psk, name), got 'p'"),
])
def test_a_bad_value_is_one_line_naming_the_option(data: dict[str, Any], problem: str) -> None:
    assert problems(data) == [problem]


@pytest.mark.parametrize("key", [SECRET_LOOKING, "not base64 at all!", KEY[:-4]])
def test_a_wrong_key_is_refused_without_showing_it(key: str) -> None:
    found = problems(proxies({"host": "p", "noise_psk": key}))
    assert len(found) == 1 and found[0].startswith("bluetooth_proxies[0].noise_psk: is not an ESPHome API "
                                                   "encryption key")
    assert key not in found[0] and key[:8] not in found[0]


def test_a_device_adapter_names_a_proxy_with_esphome_only() -> None:
    config = parse(proxies({"host": "p", "name": "shed"}, {"host": "q"},
                           devices=[dev(MAC1, adapter="SHED"), dev(MAC2, alias="b")]))
    assert [d.adapter for d in config.devices] == ["shed", None]
    assert problems(proxies({"host": "p", "name": "shed"}, devices=[dev(MAC1, adapter="hci0")])) == [
        "devices[0].adapter: 'hci0' is not one of the bluetooth_proxies (shed); with ble_stack: esphome a device "
        "is reached through the proxies only"]
    assert problems(proxies({"host": "p", "name": "shed"}, stack="bleak", devices=[dev(MAC1, adapter="shed")])) == [
        "devices[0].adapter: 'shed' names a proxy, but ble_stack is bleak (set ble_stack: esphome)"]
    # a simulated device keeps the simulated radio, whatever it names
    assert parse(proxies({"host": "p"}, **devices(dev("sim:a", adapter="hci1")))).devices[0].adapter == "hci1"


def test_proxies_without_esphome_are_a_warning() -> None:
    assert parse(proxies({"host": "p"}, stack="bleak")).warnings == (
        "bluetooth_proxies: not used, because ble_stack is bleak (set ble_stack: esphome)",)


def test_the_daemon_exits_with_status_2_on_a_wrong_key_and_never_prints_it(tmp_path: Path) -> None:
    options = tmp_path / "options.json"
    options.write_text(f'{{"ble_stack": "esphome", "bluetooth_proxies": [{{"host": "p", "noise_psk": '
                       f'"{SECRET_LOOKING}"}}]}}')
    proc = run("--config", str(options))
    assert proc.returncode == 2
    assert "bluetooth_proxies[0].noise_psk: is not an ESPHome API encryption key" in proc.stderr
    assert SECRET_LOOKING not in proc.stdout + proc.stderr

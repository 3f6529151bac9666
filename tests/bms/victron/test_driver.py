"""Victron SmartShunt driver against the Victron emulator, through bleak's API on the simulated radio.

GATT mode (PIN pairing, keep-alive, notified and re-read values) and Instant Readout mode (encrypted
advertisements through the simulated scanner: freshness, wrong key, other record types), the
registry's choice between them, the demo's key, scan classification and the `decode` command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bmslib.ble.scan import classify
from bmslib.bms.victron.driver import VictronAdvDriver, VictronGattDriver, make_driver
from bmslib.bms.victron.emulator import DEMO_KEY, DEMO_KEY_HEX, VictronEmulator
from bmslib.bms.victron.protocol import advertisement as victron_adv
from bmslib.bms.victron.protocol import gatt as victron
from bmslib.cli import demo_devices, load_app_config
from bmslib.errors import (
    BmsAuthError,
    BmsConnectError,
    BmsDisconnectedError,
    BmsTimeoutError,
    DeviceNotFoundError,
)
from bmslib.model import Sample
from bmslib.registry import device_types
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Faults
from bmslib.sim.radio import SimRadio
from tests.helpers import load_vectors
from tests.sim_helpers import add_emulator, backend_of, device_config, native_types
from tests.sim_helpers import make_driver as make_test_driver

ROOT = Path(__file__).resolve().parents[3]
VECTORS = load_vectors("victron")
(ADV_CASE,) = [c for c in VECTORS if c.get("encryption_key") and "error" not in c["expected"]]
(WRONG_KEY_CASE,) = [c for c in VECTORS if c.get("encryption_key") and "error" in c["expected"]]
(KEEPALIVE_CASE,) = [c for c in VECTORS if c["frame_type"].startswith("keep-alive")]
PIN = "739146"  # distinctive, so a leak into any log line is easy to find
WRONG_PIN = "582013"
KEY_HEX = "4f1c0a8e6b2d9357e0c4a1b8f63d2e90"


class Load:
    """A battery load that tests can change: current [A], + = discharging."""

    def __init__(self, amps: float) -> None:
        self.amps = amps

    def __call__(self, t: float) -> float:
        return self.amps


def battery(load: Load, seed: int = 1) -> BatteryModel:
    """A battery on a frozen clock: its state changes only when the test changes the load."""
    return BatteryModel(cells=16, capacity_ah=280.0, soc=62.5, load=load, clock=lambda: 1000.0,
                        rng=random.Random(seed))



def gatt_driver(radio: SimRadio, em: VictronEmulator, **cfg) -> VictronGattDriver:
    drv = make_test_driver("victron", radio, em, **cfg)
    assert isinstance(drv, VictronGattDriver)
    return drv


def adv_driver(radio: SimRadio, em: VictronEmulator, key: str = KEY_HEX, **cfg) -> VictronAdvDriver:
    drv = make_test_driver("victron", radio, em, key=key, **cfg)
    assert isinstance(drv, VictronAdvDriver)
    drv.scan_timeout = 2.0
    drv.request_timeout = 1.0
    return drv


def assert_matches_battery(s: Sample, b: BatteryModel, *, soc_step: float) -> None:
    assert s.voltage == pytest.approx(b.voltage, abs=0.006)
    assert s.current == pytest.approx(b.current, abs=0.0006)  # model sign: + = discharging
    assert s.soc == pytest.approx(b.soc, abs=soc_step / 2 + 1e-9)
    assert s.temperatures == pytest.approx((b.temperatures[0],), abs=0.006)
    assert s.extra["consumed_ah"] == pytest.approx(b.charge_ah - b.capacity_ah, abs=0.051)
    if b.current > 0:
        assert s.runtime == pytest.approx(b.charge_ah / b.current * 3600, abs=30.5)
    else:
        assert s.runtime is None  # the shunt shows time-to-go only while discharging


def build(reading) -> Sample:
    return Sample.build(reading, timestamp=0, mono=0)


# --- GATT ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("amps", [7.5, -12.25])
async def test_gatt_read_reports_the_emulated_battery(radio: SimRadio, amps: float) -> None:
    em = add_emulator(radio, VictronEmulator, battery=battery(Load(amps)), pin=PIN)
    drv = gatt_driver(radio, em, pin=PIN)
    await drv.connect()
    s = build(await drv.read())
    b = em.battery
    assert_matches_battery(s, b, soc_step=0.01)
    assert s.power == pytest.approx(b.voltage * b.current, abs=1.0)  # the shunt's own power value
    assert s.cell_voltages is None and s.switches is None  # a shunt: no cells, nothing to switch
    assert drv.device_info.manufacturer == "Victron Energy"
    assert em.bonded and em.pair_attempts == 1
    await drv.disconnect()
    assert not drv.is_connected and em.link is None


async def test_gatt_wrong_pin_is_refused_with_one_clear_message_and_never_logged(
        radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    em = add_emulator(radio, VictronEmulator, battery=battery(Load(3.0)), pin=PIN)
    drv = gatt_driver(radio, em, pin=WRONG_PIN)  # the test config has debug: true (TX lines logged)
    with pytest.raises(BmsAuthError) as err:
        await drv.connect()
    text = str(err.value)
    assert "pairing with the SmartShunt failed" in text
    for hint in ("`pin:`", "VictronConnect", "GATT", "bluetoothctl", "`key:`"):
        assert hint in text
    assert not drv.is_connected and em.link is None and not em.bonded
    assert em.keepalives == 0  # nothing was written before pairing
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert WRONG_PIN not in text and PIN not in text
    assert WRONG_PIN not in logged and PIN not in logged


async def test_gatt_pin_is_not_logged_on_success_either(radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    em = add_emulator(radio, VictronEmulator, battery=battery(Load(3.0)), pin=PIN)
    drv = gatt_driver(radio, em, pin=PIN)
    await drv.connect()
    await drv.read()
    await drv.disconnect()
    assert any("TX" in r.getMessage() for r in caplog.records)  # debug logging was on
    assert all(PIN not in r.getMessage() for r in caplog.records)


async def test_gatt_unpaired_without_pin_says_how_to_pair(radio: SimRadio) -> None:
    em = add_emulator(radio, VictronEmulator, battery=battery(Load(3.0)), pin=PIN)
    drv = gatt_driver(radio, em)
    with pytest.raises(BmsAuthError, match="is not paired with this host") as err:
        await drv.connect()
    assert "bluetoothctl" in str(err.value)
    assert not drv.is_connected


async def test_gatt_bonded_beforehand_needs_no_pin(radio: SimRadio) -> None:
    """What pairing once with bluetoothctl gives: the host holds the bond, batmon needs no PIN."""
    em = add_emulator(radio, VictronEmulator, battery=battery(Load(3.0)), pin=PIN)
    em.bonded = True
    drv = gatt_driver(radio, em)
    await drv.connect()
    assert build(await drv.read()).voltage == pytest.approx(em.battery.voltage, abs=0.006)
    assert em.pair_attempts == 0
    await drv.disconnect()


async def test_gatt_service_missing_tells_to_enable_it(radio: SimRadio) -> None:
    em = add_emulator(radio, VictronEmulator, gatt_enabled=False)
    drv = gatt_driver(radio, em)
    with pytest.raises(BmsConnectError, match="GATT service is not there: enable it in VictronConnect"):
        await drv.connect()
    assert not drv.is_connected and em.link is None


async def test_gatt_keepalive_keeps_the_link_and_its_absence_loses_it(radio: SimRadio) -> None:
    em = add_emulator(radio, VictronEmulator, battery=battery(Load(3.0)), link_timeout=0.3)
    drv = gatt_driver(radio, em)
    drv.keepalive_period, drv.keepalive_ms = 0.1, 300
    await drv.connect()
    await asyncio.sleep(1.0)
    assert drv.is_connected and em.keepalives >= 5
    assert em.keepalive_ms == 300
    await drv.read()
    await drv.disconnect()

    # the value batmon really writes, as in the add-on it replaces
    drv = gatt_driver(radio, em)
    await drv.connect()
    assert em.writes[-1] == (victron.KEEPALIVE_UUID, bytes.fromhex(KEEPALIVE_CASE["frame"]))
    await drv.disconnect()

    drv = gatt_driver(radio, em)
    drv.keepalive_period, drv.keepalive_ms = 100.0, 300  # one keep-alive at connect, then none
    await drv.connect()
    await asyncio.sleep(0.6)
    assert not drv.is_connected and em.link is None  # the shunt dropped the link
    with pytest.raises(BmsDisconnectedError):
        await drv.read()
    await drv.disconnect()


async def test_gatt_values_follow_notifications_without_reads(radio: SimRadio) -> None:
    class CountingVictron(VictronEmulator):
        reads = 0

        def handle_read(self, char_uuid: str) -> bytes:
            CountingVictron.reads += 1
            return super().handle_read(char_uuid)

    load = Load(4.0)
    em = add_emulator(radio, CountingVictron, battery=battery(load), notify_interval=0.05)
    drv = gatt_driver(radio, em)
    drv.reread_after = 100.0
    await drv.connect()
    reads_at_connect = CountingVictron.reads
    assert reads_at_connect == len(victron.CHARACTERISTICS)  # every value once at connect
    load.amps = -9.5
    await asyncio.sleep(0.3)
    s = build(await drv.read())
    assert s.current == pytest.approx(-9.5, abs=0.0006)
    assert s.runtime is None  # turned not-available while charging: cleared, not kept
    assert CountingVictron.reads == reads_at_connect  # notified values were not read again
    await drv.disconnect()


async def test_gatt_rereads_values_whose_notifications_stopped(radio: SimRadio) -> None:
    load = Load(4.0)
    em = add_emulator(radio, VictronEmulator, battery=battery(load), notify_interval=0.05,
                      faults=Faults(drop_chunk=1.0))  # every notification is lost (stale-notify bug)
    drv = gatt_driver(radio, em)
    drv.reread_after = 0.2
    await drv.connect()
    load.amps = 11.0
    await asyncio.sleep(0.1)
    assert build(await drv.read()).current == pytest.approx(4.0, abs=0.0006)  # still within reread_after
    await asyncio.sleep(0.25)
    assert build(await drv.read()).current == pytest.approx(11.0, abs=0.0006)  # read again
    await drv.disconnect()


async def test_gatt_link_drop_fails_reads_and_reconnect_recovers(radio: SimRadio) -> None:
    em = add_emulator(radio, VictronEmulator, battery=battery(Load(2.0)),
                      faults=Faults(latency=0.02), notify_interval=0.05)
    drv = gatt_driver(radio, em)
    drv.keepalive_period = 0.05
    await drv.connect()
    await drv.read()
    em.drop_link()
    await asyncio.sleep(0.01)
    assert not drv.is_connected
    with pytest.raises(BmsDisconnectedError):
        await drv.read()
    await drv.connect()
    assert em.connections == 2
    keepalives = em.keepalives
    await asyncio.sleep(0.3)
    assert 3 <= em.keepalives - keepalives <= 8  # one keep-alive loop, not two (the old one ended)
    assert build(await drv.read()).voltage == pytest.approx(em.battery.voltage, abs=0.006)
    await drv.disconnect()


# --- Instant Readout ----------------------------------------------------------------------------


@pytest.mark.parametrize("amps", [7.5, -12.25])
async def test_instant_readout_reports_the_emulated_battery_without_connecting(radio: SimRadio,
                                                                                amps: float) -> None:
    em = add_emulator(radio, VictronEmulator, battery=battery(Load(amps)), key=KEY_HEX)
    drv = adv_driver(radio, em)
    await drv.connect()
    assert drv.is_connected  # listening
    s = build(await drv.read())
    assert_matches_battery(s, em.battery, soc_step=0.1)
    assert s.power == pytest.approx(s.voltage * s.current)  # not advertised: derived
    assert s.alarms == ()
    assert drv.device_info.model == "SmartShunt 500A/50mV"
    assert drv.rssi == -60
    assert em.connections == 0 and em.pair_attempts == 0  # no connection, no pairing
    await drv.disconnect()
    assert not drv.is_connected
    with pytest.raises(BmsDisconnectedError):
        await drv.read()


async def test_instant_readout_works_while_another_client_holds_the_gatt_link(radio: SimRadio) -> None:
    em = add_emulator(radio, VictronEmulator, battery=battery(Load(5.0)), key=KEY_HEX)
    app = gatt_driver(radio, em)  # e.g. VictronConnect
    await app.connect()
    listener = adv_driver(radio, em)
    await listener.connect()
    assert build(await listener.read()).current == pytest.approx(5.0, abs=0.0006)
    assert em.link is not None and em.connections == 1
    await listener.disconnect()
    await app.disconnect()


async def test_instant_readout_never_returns_a_stale_reading(radio: SimRadio) -> None:
    em = add_emulator(radio, VictronEmulator, battery=battery(Load(5.0)), key=KEY_HEX)
    drv = adv_driver(radio, em)
    drv.request_timeout = 0.4
    await drv.connect()
    await drv.read()
    first = drv.advertisements
    await drv.read()
    assert drv.advertisements > first  # each read waits for an advertisement it has not returned
    em.faults.hidden = True  # out of range
    with contextlib.suppress(BmsTimeoutError):
        await drv.read()  # at most one advertisement that came before hiding
    with pytest.raises(BmsTimeoutError, match=r"no fresh advertisement within 0\.4 s"):
        await drv.read()
    em.faults.hidden = False
    assert build(await drv.read()).voltage == pytest.approx(em.battery.voltage, abs=0.006)
    await drv.disconnect()


async def test_instant_readout_wrong_key_is_one_clear_error_per_device(
        radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    em = add_emulator(radio, VictronEmulator, key=KEY_HEX)
    wrong = "a0" + KEY_HEX[2:][::-1]
    drv = adv_driver(radio, em, key=wrong)
    for _ in range(3):  # the sampler retries after backing off
        with pytest.raises(BmsAuthError, match="advertisement key does not match this device") as err:
            await drv.connect()
        assert not drv.is_connected
    assert "0x4F" in str(err.value) and "0xA0" in str(err.value)  # only the public key-check byte
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "Encryption data" in errors[0].getMessage() and "`key:`" in errors[0].getMessage()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert KEY_HEX not in logged and wrong not in logged
    assert KEY_HEX[2:] not in str(err.value) and wrong[2:] not in str(err.value)


async def test_instant_readout_skips_other_record_types_with_one_debug_line(
        radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="test.victron")
    em = add_emulator(radio, VictronEmulator, key=KEY_HEX, record_type=0x01)  # a solar charger
    drv = adv_driver(radio, em)
    drv.request_timeout = 0.35
    await drv.connect()  # heard: the device is there
    with pytest.raises(BmsTimeoutError, match=r"it sends record type 0x01 \(solar charger\)"):
        await drv.read()
    skipped = [r for r in caplog.records if "skipped: record type 0x01 (solar charger)" in r.getMessage()]
    assert len(skipped) == 1 and skipped[0].levelno == logging.DEBUG
    assert drv.advertisements == 0
    await drv.disconnect()


async def test_instant_readout_device_not_heard(radio: SimRadio) -> None:
    em = add_emulator(radio, VictronEmulator, key=KEY_HEX, faults=Faults(hidden=True))
    drv = adv_driver(radio, em)
    drv.scan_timeout = 0.3
    with pytest.raises(DeviceNotFoundError, match="Instant readout turned on"):
        await drv.connect()
    assert not drv.is_connected


# --- registry, demo, scan, decode ----------------------------------------------------------------


def test_registry_entry_and_mode_choice() -> None:
    t = device_types()["victron"]
    assert t.accepts_pin and t.accepts_key
    assert t.switches == frozenset() and t.decoder is not None and t.in_demo
    assert t.emulator is VictronEmulator
    log = logging.LoggerAdapter(logging.getLogger("test.victron"), {})
    kw = {"address": "C0:FF:EE:00:00:01", "backend": backend_of(SimRadio()), "log": log}
    assert isinstance(t.driver(device_config("victron", key=KEY_HEX), **kw), VictronAdvDriver)
    assert isinstance(t.driver(device_config("victron", pin=PIN), **kw), VictronGattDriver)
    assert isinstance(make_driver(device_config("victron"), **kw), VictronGattDriver)


async def test_demo_victron_uses_instant_readout_with_the_emulators_key(tmp_path: Path) -> None:
    (entry,) = [d for d in demo_devices(device_types()) if d["type"] == "victron"]
    assert entry["key"] == DEMO_KEY_HEX and bytes.fromhex(DEMO_KEY_HEX) == DEMO_KEY
    options = tmp_path / "options.json"
    options.write_text("{}")
    config = load_app_config(str(options), demo=True)
    from bmslib.app import App  # noqa: PLC0415

    app = App(config, sinks=[])
    try:
        rt = app.devices[entry["alias"]]
        assert isinstance(rt.driver, VictronAdvDriver)
        await rt.driver.connect()
        s = build(await rt.driver.read())
        assert app.radio is not None
        em = app.radio.by_sim_id("victron1")
        assert em is not None and s.voltage == pytest.approx(em.battery.voltage, abs=0.006)
        await rt.driver.disconnect()
    finally:
        if app.radio is not None:
            await app.radio.aclose()


def test_scan_recognises_the_emulator_advertisement() -> None:
    em = VictronEmulator(address="C0:FF:EE:00:00:01", name="SmartShunt HQ2230ABCDE")
    adv = em.advertisement()
    assert adv.manufacturer_data[victron.COMPANY_ID][0] == victron_adv.RECORD_PRODUCT_ADVERTISEMENT
    kinds, notes = classify(em.address, adv.name, list(adv.service_uuids), adv.manufacturer_data, native_types())
    assert kinds == ("victron",)
    assert any("Instant Readout needs the advertisement key" in n for n in notes)


def test_emulator_advertisements_are_fresh_and_decode_to_the_battery() -> None:
    b = battery(Load(6.0))
    em = VictronEmulator(address="C0:FF:EE:00:00:01", name="SmartShunt", battery=b, key=KEY_HEX)
    codec = victron_adv.VictronAdvCodec(bytes.fromhex(KEY_HEX))
    first, second = (codec.decode(bytes(em.advertisement().manufacturer_data[victron.COMPANY_ID]))
                     for _ in range(2))
    assert second.nonce == (first.nonce + 1) & 0xFFFF
    assert first.reading["current"] == pytest.approx(6.0) and first.reading["voltage"] == round(b.voltage, 2)


def run_decode(*args: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "decode", "--type", "victron", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    return proc.returncode, (json.loads(proc.stdout) if proc.returncode == 0 else {"stderr": proc.stderr})


def test_decode_cli_reproduces_the_vector() -> None:
    exp = ADV_CASE["expected"]
    for data in (ADV_CASE["frame"], "e102" + ADV_CASE["frame"]):  # with or without the company id
        code, out = run_decode("--key", ADV_CASE["encryption_key"], data)
        assert code == 0, out
        assert out["voltage"] == exp["voltage"] and out["soc"] == exp["soc"]
        assert out["current"] == -exp["current"] + 0.0  # charge-positive vector, discharge-positive model
        assert out["extra"]["consumed_ah"] == exp["consumed_ah"]
        assert out["runtime"] is None and exp["remaining_mins"] is None
        assert out["extra"]["alarm_bitmask"] == exp["alarm"] and out["alarms"] == []
        assert out["temperatures"] is None and exp["aux_mode"] == 3  # aux input: none
        (adv,) = out["advertisements"]
        assert adv == {"product_id": f"0x{exp['model_id']:04X}", "record_type": exp["record_type"],
                       "nonce": exp["nonce"]}
        assert out["frames"] == 1 and out["rejected"] == 0
        assert out["device_info"] == {"manufacturer": "Victron Energy", "model": "SmartShunt 500A/50mV"}


def test_decode_cli_wrong_key_and_missing_key() -> None:
    code, out = run_decode("--key", WRONG_KEY_CASE["encryption_key"], WRONG_KEY_CASE["frame"])
    assert code == 0
    assert out["voltage"] is None and out["frames"] == 0 and out["rejected"] == 1
    (error,) = out["errors"]
    assert "does not match this device" in error and "0xAF" in error and "0xFF" in error
    code, out = run_decode(ADV_CASE["frame"])
    assert code == 2 and "needs --key" in out["stderr"]

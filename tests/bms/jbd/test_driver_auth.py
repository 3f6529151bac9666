"""JBD password (``FF AA`` handshake) through the JBD driver and emulator on the simulated radio.

The captured exchange (tests/vectors/jbd.json) is reproduced byte for byte; a wrong password is
refused with one clear message that never contains the password; BMS without a password, or without
handshake support, keep working when ``pin:`` is set.
"""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from bmslib.bms.jbd.driver import JbdDriver
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.bms.jbd.protocol import auth as jbd_auth
from bmslib.config import ConfigError, parse_config
from bmslib.device import DeviceStatus
from bmslib.errors import BmsAuthError, BmsTimeoutError
from bmslib.model import Sample
from bmslib.registry import type_infos
from bmslib.sampler import DeviceSampler, SamplerPolicy
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Faults
from bmslib.sim.radio import SimRadio
from tests.helpers import load_vectors
from tests.sim_helpers import add_emulator, make_driver

(CAPTURE,) = [c for c in load_vectors("jbd") if "sequence" in c]
HOST = [bytes.fromhex(h) for d, h in CAPTURE["sequence"] if d == ">>>"]
BMS = [bytes.fromhex(h) for d, h in CAPTURE["sequence"] if d == "<<<"]
AUTH_HOST = HOST[:-1]  # the capture ends with the first DD poll after the handshake
CAPTURED_MAC = "A4:C1:37:04:2D:BE"
PASSWORD = CAPTURE["expected"]["password"]
RANDOM = CAPTURE["expected"]["random_byte"]
OTHER = "907153"  # a wrong password, distinctive enough to find in logs


class RecordingJbd(JbdEmulator):
    """The JBD emulator, remembering every frame it notified."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.sent: list[bytes] = []

    def notify(self, frame: bytes, char_uuid: str | None = None, *, raw: bool = False) -> None:
        self.sent.append(bytes(frame))
        super().notify(frame, char_uuid, raw=raw)


class OldFirmwareJbd(JbdEmulator):
    """A JBD without password support: it ignores ``FF AA`` frames."""

    def handle_auth(self, request: bytes) -> None:
        return None



def jbd_driver(radio: SimRadio, em: JbdEmulator, **cfg) -> JbdDriver:
    drv = make_driver("jbd", radio, em, **cfg)
    assert isinstance(drv, JbdDriver)
    drv.request_timeout = 0.5
    drv.auth_timeout = 0.3
    return drv


def ffaa_writes(em: JbdEmulator) -> list[bytes]:
    return [data for _, data in em.writes if data[:2] == jbd_auth.HEADER]


def dd_writes(em: JbdEmulator) -> list[bytes]:
    return [data for _, data in em.writes if data[:1] == b"\xdd"]


async def test_handshake_reproduces_the_captured_exchange(radio: SimRadio) -> None:
    em = RecordingJbd(address=CAPTURED_MAC, name="JBD-SP04S034", password=PASSWORD, random_byte=lambda: RANDOM,
                      rng=random.Random(1))
    radio.add(em, sim_id="dev1")
    drv = jbd_driver(radio, em, pin=PASSWORD)
    await drv.connect()
    assert ffaa_writes(em) == AUTH_HOST  # what the app sent, byte for byte
    assert [f for f in em.sent if f[:2] == jbd_auth.HEADER] == BMS  # what the BMS answered
    assert em.authenticated
    s = Sample.build(await drv.read(), timestamp=0, mono=0)
    assert s.voltage == pytest.approx(em.battery.voltage, abs=0.011)
    assert len(s.cell_voltages or ()) == em.battery.cells
    assert HOST[-1] in dd_writes(em)  # the basic-info poll of the capture, after the handshake
    await drv.disconnect()


async def test_right_password_reads_and_switches(radio: SimRadio) -> None:
    em = add_emulator(radio, JbdEmulator, password=PASSWORD, faults=Faults(junk=0.5, latency=0.02))
    drv = jbd_driver(radio, em, pin=PASSWORD)
    await drv.connect()
    assert em.authenticated
    await drv.read()
    await drv.set_switch("charge", False)
    assert em.battery.charge_fet is False
    assert (await drv.read())["switches"]["charge"] is False
    await drv.disconnect()
    await drv.connect()  # the BMS asks again on every connection
    assert len(ffaa_writes(em)) == 8 and em.authenticated
    await drv.disconnect()


async def test_wrong_password_is_refused_clearly_and_never_shown(radio: SimRadio,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    em = add_emulator(radio, JbdEmulator, password=PASSWORD)
    drv = jbd_driver(radio, em, pin=OTHER)  # debug: true in the test config (TX lines logged)
    with pytest.raises(BmsAuthError) as err:
        await drv.connect()
    text = str(err.value)
    assert text == ("the BMS refused the password (user password rejected (status 0x01)): check `pin:`, "
                    "the 6-character password set in the JBD app")
    assert not drv.is_connected and em.link is None and not em.authenticated
    assert len(ffaa_writes(em)) == 3 and dd_writes(em) == []  # app key, random, user password; no polls
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "credential" in logged  # the TX lines of the handshake were logged, without their bytes
    for secret in (OTHER, PASSWORD, OTHER.encode().hex(), PASSWORD.encode().hex()):
        assert secret not in logged and secret not in text
    assert all(data.hex() not in logged for data in ffaa_writes(em))


async def test_wrong_password_is_reported_once_by_the_sampler(radio: SimRadio,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    em = add_emulator(radio, JbdEmulator, password=PASSWORD)
    drv = jbd_driver(radio, em, pin=OTHER)
    log = logging.LoggerAdapter(logging.getLogger("test.sampler"), {})
    status = DeviceStatus(alias="dev1", type="jbd", address="sim:dev1", switches=drv.switches)

    sampler = DeviceSampler(drv, status, SamplerPolicy(period=0.05, keep_alive=False), log=log,
                            connect_lock=asyncio.Lock(), read_slot=None)
    for _ in range(5):
        assert await sampler.cycle() is None
    assert not sampler._fresh, "no sample with a wrong password"
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1
    assert lines[0].startswith("authentication failed: the BMS refused the password") and "retry in" in lines[0]
    assert em.connections == 1  # backed off: not hammering the BMS with wrong passwords
    assert status.last_error is not None and "refused the password" in status.last_error


async def test_without_pin_a_locked_bms_answers_nothing(radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    em = add_emulator(radio, JbdEmulator, password=PASSWORD)
    drv = jbd_driver(radio, em)
    await drv.connect()
    assert any("a BMS with a password answers nothing until it gets it: then set `pin:`" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(BmsTimeoutError):
        await drv.read()
    assert ffaa_writes(em) == []
    await drv.disconnect()


async def test_pin_on_a_bms_without_password(radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    em = add_emulator(radio, JbdEmulator)
    drv = jbd_driver(radio, em, pin=PASSWORD)
    for _ in range(2):
        await drv.connect()
        assert len((await drv.read())["cell_voltages"]) == em.battery.cells
        await drv.disconnect()
    assert ffaa_writes(em) == [AUTH_HOST[0]] * 2  # only the app key: "no password" ends the handshake
    notes = [r for r in caplog.records if "asks for no password" in r.getMessage()]
    assert len(notes) == 1


async def test_pin_on_firmware_without_the_handshake(radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    em = add_emulator(radio, OldFirmwareJbd)
    drv = jbd_driver(radio, em, pin=PASSWORD)
    for _ in range(2):
        await drv.connect()
        assert len((await drv.read())["cell_voltages"]) == em.battery.cells
        await drv.disconnect()
    assert ffaa_writes(em) == [AUTH_HOST[0]]  # tried once; not again on the next connection
    assert sum("does not answer the password handshake" in r.getMessage() for r in caplog.records) == 1


async def test_malformed_pin_is_refused_without_echo(radio: SimRadio) -> None:
    em = add_emulator(radio, JbdEmulator, password=PASSWORD)
    drv = jbd_driver(radio, em, pin="12345")
    with pytest.raises(BmsAuthError, match="must be 6 ASCII characters") as err:
        await drv.connect()
    assert "12345" not in str(err.value)
    assert not drv.is_connected and em.writes == []


@pytest.mark.parametrize("pin", ["12345", "1234567", "12345\u00e9"])
def test_a_pin_the_jbd_app_could_not_set_is_a_config_error(pin: str) -> None:
    """Found when the options are read, before anything starts, in one line without the PIN."""
    data = {"devices": [{"address": "sim:jbd1", "type": "jbd", "alias": "b", "pin": pin}]}
    with pytest.raises(ConfigError) as err:
        parse_config(data, source="test", env={}, types=type_infos())
    (line,) = err.value.problems
    assert line.startswith("devices[0].pin: the JBD password must be 6 ASCII characters (the one set in the JBD app)")
    assert pin not in line
    ok = parse_config({"devices": [{**data["devices"][0], "pin": PASSWORD}]}, source="test", env={},
                      types=type_infos())
    assert ok.devices[0].pin == PASSWORD


def test_emulator_refuses_a_password_the_bms_app_could_not_set() -> None:
    with pytest.raises(ValueError, match="6 ASCII characters"):
        JbdEmulator(address=CAPTURED_MAC, name="JBD", password="too long", battery=BatteryModel())

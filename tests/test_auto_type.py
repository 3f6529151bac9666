"""``type: auto`` (or no ``type``): the real App detects the type from the advertisement heard over the simulated
radio, logs it, and reads and publishes the device as that type; a device it cannot detect stays unavailable
with a line a person can act on, and the daemon goes on."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bmslib import auto_type
from bmslib.app import App
from bmslib.auto_type import AutoDriver, DetectionError
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.bms.jk.emulator import JkEmulator
from bmslib.config import ConfigError
from bmslib.detection import Detector
from bmslib.family import DeviceType, Family
from bmslib.protocol.base import AdvertisementMatcher
from bmslib.sim.radio import SimRadio
from tests.sim_helpers import add_emulator, app_running, backend_of, device_config, make_driver
from tests.test_app import RecordingSink, config


async def wait_for(predicate: object, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_a_jbd_and_a_jk_configured_auto_are_detected_read_and_published(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    radio = SimRadio()
    add_emulator(radio, JbdEmulator, "p1", name="JBD-SP04S034")
    add_emulator(radio, JkEmulator, "p2", name="JK-B2A24S15P")
    cfg = config([{"address": "sim:p1", "type": "auto", "alias": "p1"},
                  {"address": "sim:p2", "alias": "p2"}])  # no type: auto as well
    assert [d.type for d in cfg.devices] == ["auto", "auto"]
    sink = RecordingSink()
    app = App(cfg, sinks=[sink], radio=radio)
    assert app.devices["p1"].status.switches == frozenset()  # nothing known before detection
    async with app_running(app, stop_timeout=10):
        await wait_for(lambda: {a for _, a, _ in sink.published} == {"p1", "p2"})
        assert app.devices["p1"].status.type == "jbd" and app.devices["p2"].status.type == "jk"
        assert app.devices["p1"].type.name == "jbd"
        assert app.devices["p1"].status.switches == {"charge", "discharge"}
        assert ("p1", True) in sink.availability
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count("p1: detected type jbd from its advertisement (JBD-SP04S034)") == 1
    assert lines.count("p2: detected type jk from its advertisement (JK-B2A24S15P)") == 1
    published = next(s for _, a, s in sink.published if a == "p1")
    assert published.voltage is not None and published.voltage > 0


async def test_an_unrecognised_and_an_unheard_device_stay_unavailable_with_a_line_to_act_on(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto_type, "LISTEN_TIME", 1.0)
    caplog.set_level(logging.INFO)
    radio = SimRadio()
    add_emulator(radio, JbdEmulator, "odd", name="MYSTERY-1")  # a JBD no matcher knows by this advertisement
    add_emulator(radio, JbdEmulator, "ok", name="JBD-OK")
    cfg = config([{"address": "sim:odd", "type": "auto", "alias": "odd"},
                  {"address": "sim:gone", "type": "auto", "alias": "gone"},  # nothing on the radio
                  {"address": "sim:ok", "type": "auto", "alias": "ok"}])
    sink = RecordingSink()
    app = App(cfg, sinks=[sink], radio=radio)
    async with app_running(app, stop_timeout=10) as task:
        await wait_for(lambda: any(a == "ok" for _, a, _ in sink.published)
                       and app.devices["odd"].status.errors > 0 and app.devices["gone"].status.errors > 0)
        assert not task.done()
        assert app.devices["odd"].status.samples == 0 and not app.devices["odd"].status.available
        assert app.devices["gone"].status.samples == 0 and not app.devices["gone"].status.available
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "type auto: its advertisement (MYSTERY-1) matches no known type; set `type:`" in text
    assert ("not found: type auto: no advertisement heard within 1 s (out of range, or connected to another app?); "
            "the type is detected once it is heard, or set `type:`") in text


def test_auto_in_the_config() -> None:
    assert config([{"address": "AA:BB:CC:DD:EE:01", "alias": "a", "pin": "1234"}]).devices[0].type == "auto"
    assert config([{"address": "AA:BB:CC:DD:EE:01", "type": "AUTO", "key": "0" * 32}]).devices[0].type == "auto"
    with pytest.raises(ConfigError) as err:
        config([{"address": "AA:BB:CC:DD:EE:01", "type": "auto", "algorithm": "soc 90% 80%"}])
    assert any(p.startswith("devices[0].algorithm: needs a device with a charge switch, known only once the type "
                            "is detected") for p in err.value.problems)


async def test_an_advertisement_of_several_families_names_them_and_picks_none() -> None:
    """AutoDriver on its own, with a registry where two families' matchers take the same advertisement."""

    def kind(name: str, via: str) -> DeviceType:
        return DeviceType(name, name, make_driver, frozenset(), matchers=(AdvertisementMatcher(local_name="TWIN-*"),),
                          via=via)  # the driver is never built: no type is picked

    radio = SimRadio()
    em = add_emulator(radio, JbdEmulator, "t1", name="TWIN-1")
    detector = Detector([Family("one", "One", (kind("one", "native"),)),
                         Family("bridge", "aiobmsble", (kind("other", "aiobmsble"),))])
    driver = AutoDriver(device_config("auto", "sim:t1", "t1"), address=em.address, backend=backend_of(radio),
                        log=logging.LoggerAdapter(logging.getLogger("test.auto"), {}), detector=detector,
                        listen_time=1.0)
    try:
        with pytest.raises(DetectionError) as err:
            await driver.prepare()
        assert err.value.reason == ("type auto: its advertisement (TWIN-1) fits several BMS types (one, other); "
                                    "set `type:` to the one it is")
        assert driver.inner is None and not driver.is_connected and driver.offered_switches == frozenset()
    finally:
        await radio.aclose()

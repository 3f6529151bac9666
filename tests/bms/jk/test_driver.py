"""JK driver against the JK emulator, through bleak's API on the simulated radio; `decode` on the vectors."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bmslib.ble.scan import classify
from bmslib.bms.jk.driver import JkDriver
from bmslib.bms.jk.emulator import JkEmulator
from bmslib.bms.jk.protocol import codec as jk
from bmslib.bms.jk.protocol import jk02 as jk_jk02
from bmslib.bms.jk.protocol.codec import FrameLayout, JkCodec
from bmslib.errors import BmsDisconnectedError, BmsTimeoutError, UnsupportedError
from bmslib.model import Reading, Sample
from bmslib.registry import device_types
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Faults
from bmslib.sim.radio import SimRadio
from tests.helpers import case_id, chunks_of, load_vectors
from tests.sim_helpers import add_emulator, make_driver, native_types

ROOT = Path(__file__).resolve().parents[3]
REQUEST_TIMEOUT = 1.0  # [s] the drivers' request timeout in these tests
PERIOD = 0.05  # [s] the emulators' cell-info period in these tests
SLOW = 60.0  # [s] a period so long that after the first frame nothing more comes in a test
LAYOUTS = (FrameLayout.JK02_24S, FrameLayout.JK02_32S, FrameLayout.JK04)
FETS = {"charge": "charge_fet", "discharge": "discharge_fet", "balance": "balancer"}



def steady_battery(cells: int = 8, current: float = 12.5, **kw: Any) -> BatteryModel:
    """A battery with a constant load (current + = discharging), so frames a few ms apart agree."""
    return BatteryModel(cells=cells, capacity_ah=280.0, soc=55.0, load=lambda _t: current, **kw)


def emulator(radio: SimRadio, layout: FrameLayout = FrameLayout.JK02_32S, *, battery: BatteryModel | None = None,
             **kw: Any) -> JkEmulator:
    em = add_emulator(radio, JkEmulator, battery=battery or steady_battery(), layout=layout,
                      stream_period=kw.pop("stream_period", PERIOD), **kw)
    assert isinstance(em, JkEmulator)
    return em


def driver(radio: SimRadio, em: JkEmulator, type_name: str = "jk", **cfg: Any) -> JkDriver:
    drv = make_driver(type_name, radio, em, **cfg)
    assert isinstance(drv, JkDriver)
    drv.request_timeout = REQUEST_TIMEOUT  # type: ignore[misc]
    return drv


def commands(em: JkEmulator, register: int) -> int:
    """How many host commands for ``register`` the emulator received."""
    return sum(1 for _uuid, data in em.writes if (cmd := jk.parse_command(data)) and cmd.register == register)


def decoded(em: JkEmulator, frame: bytes) -> Reading:
    """What a frame the emulator sent says, decoded on its own."""
    return JkCodec(em.layout).decode(frame)


# --- readings, layouts, GATT layouts ---------------------------------------------------------------

@pytest.mark.parametrize("module", ["new", "old"])
@pytest.mark.parametrize("layout", LAYOUTS)
async def test_read_reports_the_emulated_battery(radio: SimRadio, layout: FrameLayout, module: str) -> None:
    em = emulator(radio, layout, module=module)
    drv = driver(radio, em)
    await drv.connect()
    s = Sample.build(await drv.read(), timestamp=0, mono=0)
    b = em.battery
    assert drv.codec.layout is layout and drv.codec.forced_layout is None  # chosen from the device info
    assert drv.device_info.model == em.model and drv.device_info.sw_version == em.sw_version
    assert drv.device_info.manufacturer == "JK"
    assert list(s.cell_voltages or ()) == pytest.approx(b.cell_voltages, abs=0.0011)
    assert s.voltage == pytest.approx(b.voltage, abs=0.01)
    assert s.extra["cell_resistance_1"] == pytest.approx(b.internal_resistance)
    if layout is FrameLayout.JK04:  # an active balancer: cells, balancing, the balancer switch
        assert s.current is None and s.soc is None and s.temperatures is None
        assert s.switches == {"balance": True}
        assert s.extra["cell_count_setting"] == b.cells
    else:
        assert s.current == pytest.approx(12.5)  # model sign: + = discharging, as the battery
        assert s.soc == round(b.soc) and s.charge == pytest.approx(b.charge_ah, abs=0.01)
        assert s.capacity == b.capacity_ah  # the user capacity from the settings frame ...
        assert s.extra["aged_capacity"] == pytest.approx(b.capacity_ah * 0.98)  # ... not the aged one
        assert s.cycles == b.cycles and s.soh == (98 if layout is FrameLayout.JK02_32S else None)
        assert list(s.temperatures or ()) == pytest.approx(b.temperatures, abs=0.06)
        assert s.mos_temperature == pytest.approx(b.mos_temperature, abs=0.06)
        assert s.switches == {"charge": True, "discharge": True, "balance": True}
        assert s.extra["charge_enabled"] is True and s.extra["cell_uvp"] == 2.6
        assert s.alarms == ()
    await drv.disconnect()


@pytest.mark.parametrize(("layout", "firmware"), [
    (FrameLayout.JK02_24S, ("10.XG", "10.08")),
    (FrameLayout.JK02_32S, ("11.XA", "11.48")),
    (FrameLayout.JK02_32S, ("19A", "19.27")),
    (FrameLayout.JK04, ("8.X", "8.0.3M")),  # JK-B5A24S
])
async def test_layout_follows_the_firmware_in_the_device_info(radio: SimRadio, layout: FrameLayout,
                                                              firmware: tuple[str, str],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    em = emulator(radio, layout, firmware=firmware)
    drv = driver(radio, em)
    with caplog.at_level(logging.INFO):
        await drv.connect()
        reading = await drv.read()
    assert drv.codec.detected_layout is layout
    assert len(reading["cell_voltages"]) == em.battery.cells
    assert f"frame layout {layout} (hardware {firmware[0]} / software {firmware[1]})" in caplog.text
    await drv.disconnect()


async def test_without_device_info_each_frame_is_decoded_with_the_layout_it_fits(radio: SimRadio) -> None:
    em = emulator(radio, FrameLayout.JK02_24S, answers_device_info=False)
    drv = driver(radio, em)
    await drv.connect()  # waits out the device-info request, then starts the stream
    s = Sample.build(await drv.read(), timestamp=0, mono=0)
    assert drv.codec.layout is None and drv.codec.guessed_layout is FrameLayout.JK02_24S
    assert s.current == pytest.approx(12.5) and len(s.cell_voltages or ()) == em.battery.cells
    assert drv.device_info.model is None
    await drv.disconnect()


async def test_forced_layout_wins_over_the_device_info_with_one_warning(
        radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    # A 32S device whose device info suggests 24S: the software rule gets it wrong, jk_32s fixes it.
    em = emulator(radio, FrameLayout.JK02_32S, firmware=("10.XG", "10.07"))
    drv = driver(radio, em, "jk_32s")
    with caplog.at_level(logging.INFO):
        for _ in range(2):  # the warning comes once, not on every connect
            await drv.connect()
            s = Sample.build(await drv.read(), timestamp=0, mono=0)
            assert s.current == pytest.approx(12.5) and len(s.cell_voltages or ()) == em.battery.cells
            await drv.disconnect()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "jk02_32s is configured" in message and "10.XG / software 10.07" in message and "jk_24s" in message
    assert drv.codec.layout is FrameLayout.JK02_32S and drv.codec.detected_layout is FrameLayout.JK02_24S


async def test_wrong_layout_means_missing_data_not_wrong_data(radio: SimRadio) -> None:
    em = emulator(radio, FrameLayout.JK02_32S, firmware=("10.XG", "10.07"))
    drv = driver(radio, em)  # auto: the device info says 24S, the frames are 32S
    await drv.connect()
    started = time.monotonic()
    with pytest.raises(BmsTimeoutError, match="frames dropped, last: implausible jk02_24s cell info"):
        await drv.read()
    assert time.monotonic() - started < 2 * REQUEST_TIMEOUT + 0.5  # within the sampler's read timeout
    await drv.disconnect()


async def test_forced_layout_matching_the_device_info_does_not_warn(
        radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    em = emulator(radio, FrameLayout.JK04)
    drv = driver(radio, em, "jk04")
    with caplog.at_level(logging.INFO):
        await drv.connect()
        await drv.read()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "frame layout jk04 (configured)" in caplog.text
    await drv.disconnect()


# --- the stream: freshness, stop and restart -----------------------------------------------------

async def test_a_read_is_the_newest_frame_and_never_the_same_one_twice(radio: SimRadio) -> None:
    ramp = BatteryModel(cells=4, load=lambda t: 1.0 + 10 * t)  # the current differs in every frame
    em = emulator(radio, FrameLayout.JK02_32S, battery=ramp)
    drv = driver(radio, em)
    await drv.connect()
    await drv.read()
    await asyncio.sleep(5 * PERIOD)  # several frames arrive unread
    em.stop_stream()
    await asyncio.sleep(0.05)  # the last one is delivered
    assert em.last_cell_frame is not None
    newest = em.last_cell_frame
    assert (await drv.read())["current"] == decoded(em, newest)["current"]
    # Nothing new has come: the next read does not repeat that frame, it restarts the stream.
    sent, requests = em.cell_frames, commands(em, 0x96)
    again = await drv.read()
    assert commands(em, 0x96) == requests + 1 and em.cell_frames > sent
    assert again["current"] != decoded(em, newest)["current"]
    await drv.disconnect()


async def test_a_stopped_stream_is_restarted_within_the_request_timeout(radio: SimRadio) -> None:
    em = emulator(radio, stream_period=SLOW)  # one frame after 0x96, then silence: a stopped stream
    drv = driver(radio, em)
    await drv.connect()
    await drv.read()
    stopped, requests = time.monotonic(), commands(em, 0x96)
    reading = await drv.read()
    waited = time.monotonic() - stopped
    assert commands(em, 0x96) == requests + 1 and em.cell_frames == 2
    assert REQUEST_TIMEOUT - 0.1 <= waited <= REQUEST_TIMEOUT + 0.3
    assert em.last_cell_frame is not None
    assert reading["uptime"] == decoded(em, em.last_cell_frame)["uptime"]
    await drv.disconnect()


async def test_a_stream_paused_by_the_device_is_restarted(radio: SimRadio) -> None:
    em = emulator(radio)
    drv = driver(radio, em)
    await drv.connect()
    await drv.read()
    em.stop_stream()
    requests = commands(em, 0x96)
    for _ in range(4):  # the buffered frame (if any), then frames of the restarted stream
        assert len((await drv.read())["cell_voltages"]) == em.battery.cells
    assert commands(em, 0x96) == requests + 1 and em.streaming
    await drv.disconnect()


async def test_a_read_after_a_long_silence_restarts_the_stream_at_once(radio: SimRadio) -> None:
    em = emulator(radio, stream_period=SLOW)
    drv = driver(radio, em)
    await drv.connect()
    await drv.read()
    await asyncio.sleep(REQUEST_TIMEOUT + 0.1)  # the sampler waits between reads
    started = time.monotonic()
    await drv.read()
    assert time.monotonic() - started < 0.5 and em.cell_frames == 2
    await drv.disconnect()


async def test_a_muted_device_fails_the_read_within_twice_the_timeout_then_recovers(radio: SimRadio) -> None:
    em = emulator(radio, stream_period=SLOW)
    drv = driver(radio, em)
    await drv.connect()
    await drv.read()
    em.faults.mute = True
    started, requests = time.monotonic(), em.requests
    with pytest.raises(BmsTimeoutError, match="no usable cell-info frame"):
        await drv.read()
    assert time.monotonic() - started <= 2 * REQUEST_TIMEOUT + 0.3
    assert em.requests == requests + 1  # one restart (0x96) per read
    em.faults.mute = False
    assert len((await drv.read())["cell_voltages"]) == em.battery.cells
    await drv.disconnect()


# --- switches ------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", [FrameLayout.JK02_24S, FrameLayout.JK02_32S])
@pytest.mark.parametrize("name", ["charge", "discharge", "balance"])
async def test_switches_reach_the_battery_and_read_back(radio: SimRadio, layout: FrameLayout, name: str) -> None:
    em = emulator(radio, layout)
    drv = driver(radio, em)
    await drv.connect()
    await drv.read()
    for on in (False, True):
        await drv.set_switch(name, on)
        assert getattr(em.battery, FETS[name]) is on
        s = Sample.build(await drv.read(), timestamp=0, mono=0)  # the very next read shows the new state
        assert s.switches == {n: (on if n == name else True) for n in FETS}
        if name != "balance":
            assert s.extra[f"{name}_enabled"] is on  # the app's switch, from the re-read settings frame
    assert commands(em, {"charge": 0x1D, "discharge": 0x1E, "balance": 0x1F}[name]) == 2
    await drv.disconnect()


async def test_a_switch_read_back_is_never_a_frame_from_before_the_command(radio: SimRadio) -> None:
    # With latency most switch commands find a cell-info frame on its way; it arrives after the
    # command and still shows the old state, so it must not be reported as the read-back.
    em = emulator(radio, faults=Faults(latency=0.04))
    drv = driver(radio, em)
    await drv.connect()
    await drv.read()
    for on in (False, True) * 4:
        await drv.set_switch("charge", on)
        assert (await drv.read())["switches"]["charge"] is on
    await drv.disconnect()


async def test_discharge_off_stops_the_current(radio: SimRadio) -> None:
    em = emulator(radio)
    drv = driver(radio, em)
    await drv.connect()
    assert (await drv.read())["current"] == pytest.approx(12.5)
    await drv.set_switch("discharge", False)
    assert (await drv.read())["current"] == 0.0
    await drv.disconnect()


@pytest.mark.parametrize("type_name", ["jk", "jk04"])
async def test_jk04_has_only_the_balancer_switch(radio: SimRadio, type_name: str) -> None:
    em = emulator(radio, FrameLayout.JK04)
    drv = driver(radio, em, type_name)
    await drv.connect()
    await drv.read()
    await drv.set_switch("balance", False)
    assert em.battery.balancer is False and commands(em, 0x6C) == 1
    assert (await drv.read())["switches"] == {"balance": False}
    await drv.set_switch("balance", True)
    assert (await drv.read())["switches"] == {"balance": True}
    with pytest.raises(UnsupportedError):
        await drv.set_switch("charge", False)
    assert em.battery.charge_fet is True and commands(em, 0x1D) == 0
    assert device_types()["jk04"].switches == {"balance"}
    await drv.disconnect()


async def test_balancer_switch_without_a_settings_frame_fails_clearly(radio: SimRadio) -> None:
    em = emulator(radio)
    drv = driver(radio, em)
    await drv.connect()
    await drv.read()
    em.faults.mute = True
    with pytest.raises(BmsTimeoutError, match="balancer switch sent, but no settings frame"):
        await drv.set_switch("balance", False)
    em.faults.mute = False
    await asyncio.sleep(3 * PERIOD)  # the stream goes on (the device never saw the command)
    requests = em.requests
    switches = (await drv.read())["switches"]
    assert em.requests == requests  # a streamed frame, no new settings frame
    assert switches == {"charge": True, "discharge": True}  # no balancer state from before the command
    await drv.disconnect()


# --- radio trouble ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mtu", [20, 7, 128, 244])
async def test_reads_survive_any_chunking_junk_at_noise_and_echoes(radio: SimRadio, mtu: int) -> None:
    em = emulator(radio, mtu=mtu, at_noise=1.0, echo=True, faults=Faults(junk=0.5, latency=0.01))
    drv = driver(radio, em)
    await drv.connect()
    assert drv.device_info.model == em.model
    for _ in range(4):
        s = Sample.build(await drv.read(), timestamp=0, mono=0)
        assert list(s.cell_voltages or ()) == pytest.approx(em.battery.cell_voltages, abs=0.0011)
        assert s.current == pytest.approx(12.5)
    await drv.set_switch("balance", False)  # its ack, echo and AT are stripped as well
    assert (await drv.read())["switches"]["balance"] is False
    await drv.disconnect()


async def test_a_disconnect_mid_frame_then_reconnect(radio: SimRadio) -> None:
    # The link drops after the first 128 bytes of the settings frame (the reply to the second write).
    em = emulator(radio, faults=Faults(disconnect_after=2, disconnect_mid_frame=True))
    drv = driver(radio, em)
    with pytest.raises(BmsDisconnectedError):
        await drv.connect()
    assert not drv.is_connected
    await drv.connect()  # the partial frame is gone: the new session starts clean
    s = Sample.build(await drv.read(), timestamp=0, mono=0)
    assert em.connections == 2
    assert list(s.cell_voltages or ()) == pytest.approx(em.battery.cell_voltages, abs=0.0011)
    assert s.capacity == em.battery.capacity_ah
    await drv.disconnect()


async def test_a_link_drop_during_a_read_fails_it_at_once(radio: SimRadio) -> None:
    em = emulator(radio, stream_period=SLOW)
    drv = driver(radio, em)
    await drv.connect()
    await drv.read()
    asyncio.get_running_loop().call_later(0.1, em.drop_link)  # while the next read waits
    started = time.monotonic()
    with pytest.raises(BmsDisconnectedError):
        await drv.read()
    assert time.monotonic() - started < 0.5
    await drv.connect()
    assert len((await drv.read())["cell_voltages"]) == em.battery.cells
    await drv.disconnect()


# --- secrets ---------------------------------------------------------------------------------------

async def test_passcodes_are_never_logged(radio: SimRadio, caplog: pytest.LogCaptureFixture) -> None:
    secret = "Zq8-pass-7"
    em = emulator(radio, passcode=secret, mtu=20)
    drv = driver(radio, em, debug=True)
    with caplog.at_level(logging.DEBUG):
        await drv.connect()
        await drv.read()
        await drv.set_switch("balance", False)
        await drv.disconnect()
    text = caplog.text
    assert "RX 55aaeb9003" in text  # the device-info frame is logged (debug) ...
    assert (b"*" * 16).hex() in text  # ... with its passcode fields overwritten
    assert secret not in text and secret.encode().hex() not in text
    assert secret.encode()[:4].hex() not in text  # not even a piece of it (raw chunks are not logged)


# --- scan and decode ---------------------------------------------------------------------------------

def test_scan_recognises_the_emulator_advertisement() -> None:
    em = JkEmulator(address="C8:47:8C:00:00:01", name="JK_B2A8S20P")
    adv = em.advertisement()
    kinds, _ = classify(em.address, adv.name, list(adv.service_uuids), adv.manufacturer_data, native_types())
    assert "jk" in kinds


VECTORS = load_vectors("jk")
FORCED_TYPES = {"JK02_24S": "jk_24s", "JK02_32S": "jk_32s", "JK04": "jk04"}


def _same_device(case: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The case of frame type ``kind`` captured from the device of ``case`` (if there is one)."""
    for other in VECTORS:
        if other["frame_type"].startswith(kind) and case["device"].startswith(other["device"]):
            return other
    return None


def _decode_cases() -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """(type, cases whose chunks are decoded in order, expected values) for every cell-info vector."""
    out = []
    for case in VECTORS:
        if case["frame_type"].startswith("cell_info"):
            info, settings = _same_device(case, "device_info"), _same_device(case, "settings")
            if info is not None:
                out.append(("jk", [c for c in (info, settings, case) if c is not None], case["expected"]))
            else:
                out.append((FORCED_TYPES[case["protocol"]], [c for c in (settings, case) if c is not None],
                            case["expected"]))
        elif case["frame_type"].startswith("stream"):
            exp = {**case["expected"]["cell_info"], "device_info": case["expected"]["device_info"]}
            out.append(("jk", [case], exp))
    return out


DECODE_CASES = _decode_cases()


def test_every_cell_info_vector_is_decoded_by_the_cli() -> None:
    cells = [c for c in VECTORS if c["frame_type"].startswith(("cell_info", "stream"))]
    assert len(DECODE_CASES) == len(cells) == 15
    assert {t for t, _, _ in DECODE_CASES} == {"jk", "jk_24s", "jk_32s", "jk04"}


@pytest.mark.parametrize(("type_name", "cases", "exp"), DECODE_CASES,
                         ids=[f"{t}:{case_id(cs[-1])}" for t, cs, _ in DECODE_CASES])
def test_decode_cli_reproduces_the_vectors(type_name: str, cases: list[dict[str, Any]], exp: dict[str, Any]) -> None:
    chunks = [c.hex() for case in cases for c in chunks_of(case)]
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "decode", "--type", type_name, *chunks],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    frames = sum(len(c["expected"]["frames_out"]) if "frames_out" in c["expected"] else 1 for c in cases)
    assert out["rejected"] == 0 and out["frames"] == frames
    checked = 0
    for key, field in (("voltage", "voltage"), ("total_voltage_sum_of_cells", "voltage"), ("soc", "soc"),
                       ("battery_level", "soc"), ("cycles", "cycles"), ("runtime_s", "uptime"),
                       ("remaining_ah", "charge"), ("cycle_charge", "charge"), ("soh", "soh"),
                       ("battery_health", "soh"), ("mos_temperature", "mos_temperature"),
                       ("balance_current", "balance_current"), ("balancing_current", "balance_current")):
        if key in exp and not (field == "soh" and cases[-1]["protocol"] == "JK02_24S"):  # no SoH in 24S frames
            assert out[field] == pytest.approx(exp[key], abs=0.0011), key
            checked += 1
    if "current" in exp:
        assert out["current"] == pytest.approx(-exp["current"])  # the model's sign: + = discharging
        checked += 1
    if "cell_voltages" in exp:
        assert out["cell_voltages"] == pytest.approx(exp["cell_voltages"], abs=0.0001)
        checked += 1
    if "balancing" in exp:
        assert out["extra"]["balancing"] is exp["balancing"]
    if "cell_count" in exp:
        assert out["extra"]["cell_count"] == exp["cell_count"]
    if "t1" in exp:
        assert out["temperatures"][:2] == pytest.approx([exp["t1"], exp["t2"]])
    for key in ("charge_mosfet", "chrg_mosfet"):
        if key in exp:
            assert out["switches"]["charge"] is exp[key]
    for key in ("discharge_mosfet", "dischrg_mosfet"):
        if key in exp:
            assert out["switches"]["discharge"] is exp[key]
    settings = next((c["expected"] for c in cases if c["frame_type"].startswith("settings")), None)
    if settings is not None:
        assert out["switches"]["balance"] is settings["balancer_switch"]
    if settings is not None and "nominal_capacity_ah" in settings:  # the user capacity, not the aged one
        assert out["capacity"] == settings["nominal_capacity_ah"]
    elif "full_charge_ah" in exp:
        assert out["capacity"] == pytest.approx(exp["full_charge_ah"])
    info = exp.get("device_info") or next((c["expected"] for c in cases if c["frame_type"].startswith("device_info")),
                                          None)
    if info is not None:
        model = info.get("vendor_id") or info["device_info"]["model"]
        assert out["device_info"]["model"] == model and out["device_info"]["manufacturer"] == "JK"
    assert checked >= 2


def _cell_stats(layout: FrameLayout, frame: bytes) -> tuple[list[float], float, float]:
    """A JK02 cell-info frame's cells and its own average and delta fields."""
    values = jk_jk02.CELL_INFO[layout].decode(frame)
    n = int(values["cell_mask"]).bit_count()
    cells = [int.from_bytes(frame[6 + 2 * i:8 + 2 * i], "little") / 1000 for i in range(n)]
    return cells, float(values["cell_average"]), float(values["cell_delta"])


REAL_JK02_CELL_INFO = [c for c in load_vectors("jk") if c.get("frame_type") == "cell_info(0x02)" and "frame" in c
                       and c["kind"].startswith("real device capture") and "JK04" not in c["protocol"]]


@pytest.mark.parametrize("case", REAL_JK02_CELL_INFO, ids=case_id)
def test_real_units_fill_in_the_cell_average_and_delta(case: dict[str, Any]) -> None:
    layout = FrameLayout.JK02_32S if "32S" in case["protocol"] else FrameLayout.JK02_24S
    cells, average, delta = _cell_stats(layout, bytes.fromhex(case["frame"]))
    assert delta == pytest.approx(max(cells) - min(cells), abs=0.0021) and delta > 0
    assert average == pytest.approx(sum(cells) / len(cells), abs=0.0011)


@pytest.mark.parametrize("layout", [FrameLayout.JK02_24S, FrameLayout.JK02_32S])
def test_emulator_fills_in_the_cell_average_and_delta_as_real_units_do(layout: FrameLayout) -> None:
    """aiobmsble reports the frame's delta field; the emulator once left it 0 (found by the cross-check)."""
    em = JkEmulator(address="C8:47:80:00:00:01", name="JK-B2A24S", layout=layout,
                    battery=BatteryModel(clock=lambda: 0.0))
    cells, average, delta = _cell_stats(layout, em.cell_info_frame())
    assert delta == pytest.approx(max(cells) - min(cells), abs=0.0005) and delta > 0
    assert average == pytest.approx(sum(cells) / len(cells), abs=0.0006)

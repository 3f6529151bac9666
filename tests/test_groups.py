"""Battery groups: formulas, stale members, switch fan-out, and the group as a device of the app."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bmslib.app import App
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.commands import CommandQueue
from bmslib.config import parse_config
from bmslib.device import DeviceStatus
from bmslib.errors import UnavailableError
from bmslib.groups import driver as groups
from bmslib.groups.driver import GroupDriver, GroupMemberStaleError, age_limit
from bmslib.model import Sample
from bmslib.registry import type_infos
from tests.sim_helpers import app_running, device_config, fast_types
from tests.test_app import RecordingSink

ROOT = Path(__file__).resolve().parent.parent


# --- the driver: age limit and stale members ----------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def statuses(clock: Clock, *aliases: str) -> list[DeviceStatus]:
    return [DeviceStatus(alias=a, type="jbd", address=f"sim:{a}", switches=frozenset({"charge"}), clock=clock)
            for a in aliases]


def group_driver(members: list[DeviceStatus], clock: Clock, **kw: Any) -> GroupDriver:
    cfg = device_config("group_parallel", address="a,b", alias="g", members=tuple(m.alias for m in members))
    return GroupDriver(cfg, address=cfg.address, backend=None, log=logging.LoggerAdapter(logging.getLogger("g")),  # type: ignore[arg-type]
                       members=members, max_age=20.0, clock=clock, **kw)


def test_age_limit() -> None:
    assert age_limit(20.0, 1.0) == 20.0
    assert age_limit(20.0, 30.0) == 60.0  # at least two sample periods
    assert age_limit(0.0, 1.0) == 60.0  # expire_values_after 0 (never): a minute


async def test_a_stale_member_fails_the_read_naming_it_with_a_rate_limited_log(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    a, b = statuses(clock, "a", "b")
    stale_calls: list[tuple[str, ...]] = []  # what the sampler hands the App: the group is unavailable now
    drv = group_driver([a, b], clock)
    a.record_sample(Sample(timestamp=0, mono=clock.now, voltage=13.0, soc=50.0))
    b.record_sample(Sample(timestamp=0, mono=clock.now - 5, voltage=13.2, soc=70.0))
    assert (await drv.read())["voltage"] == pytest.approx(13.1)
    clock.now += 16  # b is 21 s old now
    a.record_sample(Sample(timestamp=0, mono=clock.now, voltage=13.0, soc=50.0))
    for _ in range(3):
        with pytest.raises(GroupMemberStaleError, match=r"no sample within 20 s from member b$") as raised:
            await drv.read()
        assert isinstance(raised.value, UnavailableError)
        stale_calls.append(raised.value.stale)
    assert stale_calls == [("b",)] * 3
    logged = [r.getMessage() for r in caplog.records if "member b" in r.getMessage()]
    assert len(logged) == 1 and "21 s ago" in logged[0]
    clock.now += groups.LOG_EVERY
    a.record_sample(Sample(timestamp=0, mono=clock.now, voltage=13.0, soc=50.0))
    with pytest.raises(GroupMemberStaleError):
        await drv.read()
    assert len([r for r in caplog.records if "member b" in r.getMessage()]) == 2


async def test_the_first_read_waits_for_members_then_names_the_missing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(groups, "FIRST_SAMPLE_WAIT", 0.3)
    clock = Clock()
    a, b = statuses(clock, "a", "b")
    drv = group_driver([a, b], clock=lambda: asyncio.get_running_loop().time())  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, a.record_sample, Sample(timestamp=0, mono=loop.time(), voltage=13.0))
    started = loop.time()
    with pytest.raises(GroupMemberStaleError, match=r"^waiting for the first sample of member b$"):
        await drv.read()
    assert 0.25 < loop.time() - started < 1.0


async def test_switch_commands_go_to_every_member_and_refusals_are_named() -> None:
    clock = Clock()
    members = statuses(clock, "a", "b", "c")
    for m in members:
        m.available = m.alias != "b"  # the App refuses commands for an offline device
    commands: CommandQueue = asyncio.Queue()
    drv = group_driver(members, clock, commands=commands)
    with pytest.raises(Exception, match=r"switch charge off refused by member b \(the others were asked\)"):
        await drv.set_switch("charge", False)
    sent = [commands.get_nowait() for _ in range(commands.qsize())]
    asked = [(c.alias, c.switch, c.on) for c in sent]
    assert asked == [("a", "charge", False), ("b", "charge", False), ("c", "charge", False)]
    assert {c.origin for c in sent} == {"group"}


# --- in the app, with simulated batteries --------------------------------------------------------------------

def bank(group_type: str = "group_parallel", **options: Any) -> Any:
    devices = [{"address": "sim:ga", "type": "jbd", "alias": "ga"},
               {"address": "sim:gb", "type": "jbd", "alias": "gb"},
               {"address": "ga, sim:gb", "type": group_type, "alias": "grp"}]
    data = {"devices": devices, "sample_period": 0.2, "publish_period": 0.2, **options}
    return parse_config(data, source="test", env={}, types=type_infos(fast_types()))


def emulators(app: App) -> tuple[JbdEmulator, JbdEmulator]:
    assert app.radio is not None
    a, b = app.radio.by_sim_id("ga"), app.radio.by_sim_id("gb")
    assert isinstance(a, JbdEmulator) and isinstance(b, JbdEmulator)
    return a, b


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_group_is_a_device_with_its_own_samples_meters_and_combined_switches() -> None:
    sink = RecordingSink()
    app = App(bank(), types=fast_types(), sinks=[sink])
    grp = app.devices["grp"]
    assert grp.status.is_group and grp.type.radio is False and grp.status.switches == frozenset(
        {"charge", "discharge"})
    ea, eb = emulators(app)
    async with app_running(app, stop_timeout=10):
        await wait_for(lambda: grp.status.available)
        await asyncio.sleep(0.5)
        a, b, g = (app.devices[x].status.last_sample for x in ("ga", "gb", "grp"))
        assert a is not None and b is not None and g is not None
        assert g.capacity == pytest.approx((a.capacity or 0) + (b.capacity or 0))
        assert len(g.cell_voltages or ()) == len(a.cell_voltages or ()) + len(b.cell_voltages or ())
        assert g.switches == {"charge": True, "discharge": True}
        eb.battery.set_switch("charge", False)  # by hand, on one member only
        await wait_for(lambda: (s := grp.status.last_sample) is not None and s.switches == {
            "charge": False, "discharge": True})
        assert ea.battery.charge_fet  # the other member is untouched
        assert app.request_switch("grp", "discharge", False)
        await wait_for(lambda: not ea.battery.discharge_fet and not eb.battery.discharge_fet)
        await wait_for(lambda: (s := grp.status.last_sample) is not None and s.switches == {
            "charge": False, "discharge": False})
        assert app.request_switch("grp", "charge", True)
        await wait_for(lambda: ea.battery.charge_fet and eb.battery.charge_fet)
    assert any(alias == "grp" for _, alias, _ in sink.published)
    assert set(app.meter_book.sets) == {"ga", "gb", "grp"}
    assert app.meter_book.sets["grp"].readings() != app.meter_book.sets["ga"].readings()


async def test_a_stale_member_makes_the_group_unavailable_at_once_and_it_comes_back(
        caplog: pytest.LogCaptureFixture) -> None:
    sink = RecordingSink()
    app = App(bank(expire_values_after=1.0), types=fast_types(), sinks=[sink])
    _, eb = emulators(app)
    async with app_running(app, stop_timeout=10):
        await wait_for(lambda: app.devices["grp"].status.available)
        eb.faults.mute = True
        loop = asyncio.get_running_loop()
        muted_at = loop.time()
        await wait_for(lambda: ("grp", False) in sink.availability)
        # the member's own last sample was < 0.2 s before; limit 1 s, so about 1.2 s (not 1 s + 1 s of expiry)
        assert loop.time() - muted_at < 1.9
        eb.faults.mute = False
        await wait_for(lambda: sink.availability[-1] == ("grp", True) or app.devices["grp"].status.available)
    assert any("member gb" in r.getMessage() and r.name == "batmon.dev.grp" for r in caplog.records)


async def test_serial_group_in_the_app() -> None:
    app = App(bank("group_serial"), types=fast_types(), sinks=[RecordingSink()])
    async with app_running(app, stop_timeout=10):
        await wait_for(lambda: app.devices["grp"].status.last_sample is not None)
        await asyncio.sleep(0.3)
    a, b, g = (app.devices[x].status.last_sample for x in ("ga", "gb", "grp"))
    assert a is not None and b is not None and g is not None
    assert g.capacity == min(a.capacity or 0, b.capacity or 0)
    assert g.soc is not None and g.soc <= max(a.soc or 0, b.soc or 0)


# --- config errors, end to end ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("devices", "line"), [
    ("[{address: 'sim:a', type: jbd, alias: a}, {address: 'a, b', type: group_parallel, alias: g}]",
     "devices[1].address: group member 'b' is not a configured device (a)"),
    ("[{address: 'sim:a', type: jbd, alias: a}, {address: a, type: group_parallel, alias: g1},"
     " {address: 'sim:a', type: group_serial, alias: g2}]",
     "devices[2].address: group member 'sim:a' is already in group 'g1' (devices[1])"),
    ("[{address: 'sim:a', type: jbd, alias: a}, {address: 'a, g', type: group_parallel, alias: g}]",
     "devices[1].address: group 'g' cannot contain itself"),
])
def test_group_config_errors_are_one_line_and_exit_status_2(tmp_path: Path, devices: str, line: str) -> None:
    cfg = tmp_path / "options.yaml"
    cfg.write_text(f"devices: {devices}\n")
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(cfg), "--state-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [line]

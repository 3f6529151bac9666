"""The soak's premises, checked on every frame protocol (part of the normal suite, a few seconds).

1. The corrupt episode (one byte of a frame replaced with 0xFF, see bmslib/sim/faults.py) is always
   caught by the assembler: no frame the emulator sent with such a byte ever comes out of it.
2. Had such a frame got through, the soak would have noticed: decoding it directly (the assembler's
   checks skipped) gives, for a good share of the positions, a value the soak's plausibility rules
   (tests/soak/observer.py) refuse, or a FrameError from the decoder's own checks.

Also: the fault plan's variable is parsed strictly, and its schedule is reproducible from the seed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bmslib.device import DeviceStatus
from bmslib.drivers.base import BleDriver
from bmslib.entities import sample_entities
from bmslib.errors import FrameError
from bmslib.model import OutputSign, Sample
from bmslib.registry import device_types
from bmslib.sim.emulator import Emulator
from bmslib.sim.faults import CORRUPT_BYTE, DeviceFaults, FaultPlan, from_environment
from bmslib.sim.radio import SimRadio
from mqtt_util import format_payload
from tests.sim_helpers import add_emulator, make_driver
from tests.soak.observer import problem

ROOT = Path(__file__).resolve().parent.parent.parent
FRAME_TYPES = sorted(name for name, t in device_types().items() if t.emulator is not None and t.codec is not None)
#: share of the corrupted positions that must be refused (by the decoder or the plausibility rules) per type
MIN_CAUGHT = 0.15


async def sent_frames(type_name: str) -> tuple[BleDriver, list[bytes]]:
    """The driver after two reads, and the frames its emulator sent (as handed to the radio)."""
    radio = SimRadio()
    em = add_emulator(radio, device_types()[type_name].emulator)  # type: ignore[arg-type]
    sent: list[bytes] = []
    notify = em.notify

    def record(frame: bytes, char_uuid: str | None = None, *, raw: bool = False) -> None:
        if not raw:
            sent.append(bytes(frame))
        notify(frame, char_uuid, raw=raw)

    em.notify = record  # type: ignore[method-assign]
    driver = make_driver(type_name, radio, em, debug=False)
    assert isinstance(driver, BleDriver)
    try:
        await driver.connect()
        for _ in range(2):
            await driver.read()
    finally:
        await driver.disconnect()
        await radio.aclose()
    return driver, list(dict.fromkeys(sent))


def corrupted(frame: bytes) -> Iterator[bytes]:
    """``frame`` with each of its bytes in turn replaced as the corrupt episode does."""
    for i, b in enumerate(frame):
        yield frame[:i] + bytes((CORRUPT_BYTE if b != CORRUPT_BYTE else b ^ 0x80,)) + frame[i + 1:]


def refused(frame: bytes, type_name: str) -> bool:
    """True if a fresh codec's decoder raises FrameError on ``frame`` or a state published from the decoded
    frame is implausible."""
    codec = device_types()[type_name].codec
    assert codec is not None
    try:
        reading = codec().decode(frame)
    except FrameError:
        return True
    sample = Sample.build(reading, timestamp=0.0, mono=0.0)
    status = DeviceStatus(alias="x", type="t", address="a", switches=frozenset())
    sign = OutputSign(True)
    for desc in sample_entities(sample, status, sign):
        value = desc.state(sample, status, sign)
        if value is not None and problem(desc.key, format_payload(value)) is not None:
            return True
    return False


@pytest.mark.parametrize("type_name", FRAME_TYPES)
async def test_one_byte_set_to_ff_never_passes_and_would_be_noticed(type_name: str) -> None:
    driver, frames = await sent_frames(type_name)
    assert frames
    positions = caught = 0
    for sent in frames:
        whole = driver.codec.assembler().feed(sent)  # what the host takes from this notification unharmed
        readings = [driver.codec.decode(f) for f in whole]
        for bad in corrupted(sent):
            for f in driver.codec.assembler().feed(bad):
                # a changed byte the checks do not cover must be one that carries nothing the decoder reads
                # (the ANT device-info frame has 6 bytes after its CRC; the register byte of a JBD reply is
                # outside its checksum, and a reply to a register never asked for says nothing)
                assert f in whole or driver.codec.decode(f) in [*readings, {}], \
                    f"{type_name}: a corrupted frame passed the assembler: {f.hex()}"
        for frame in whole:
            for bad in corrupted(frame):
                positions += 1
                caught += refused(bad, type_name)
    assert positions
    share = caught / positions
    assert share >= MIN_CAUGHT, f"{type_name}: only {caught} of {positions} corruptions would be noticed"


# --- the plan ------------------------------------------------------------------------------------

def test_plan_parsing() -> None:
    assert from_environment({}) is None
    assert from_environment({"BATMON_SIM_FAULTS": " "}) is None
    plan = from_environment({"BATMON_SIM_FAULTS": "seed=7; devices=a,b gap=2.5"})
    assert plan == FaultPlan(seed=7, devices=frozenset({"a", "b"}), gap=2.5)
    assert plan.problem(["a", "b", "c"]) is None
    assert plan.problem(["a"]) == "BATMON_SIM_FAULTS: no simulated device with id b"
    for bad in ("devices=a", "seed=x", "seed=1 gap=0", "seed=1 gap=-1", "seed=1 colour=red", "seed=1 seed=2",
                "seed", "seed=1 gap=nan"):
        with pytest.raises(ValueError, match="BATMON_SIM_FAULTS"):
            FaultPlan.parse(bad)


async def episodes(seed: int, seconds: float) -> list[str]:
    """The episode log lines of one device under a fast clock (a plan's gap of 0.01 s)."""
    radio = SimRadio()
    em: Emulator = add_emulator(radio, device_types()["jbd"].emulator)  # type: ignore[arg-type]
    lines: list[str] = []
    runner = DeviceFaults("dev1", em, random.Random(f"{seed}:dev1"), gap=0.01)
    original = runner._episode

    async def fast(kind: str, length: float, stop: asyncio.Event, detail: str = "") -> None:
        lines.append(f"{kind} {length:.3f}{detail}")
        await original(kind, 0.001, stop, detail)

    runner._episode = fast  # type: ignore[method-assign]
    runner._pause = lambda s, stop: asyncio.sleep(0)  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    await radio.aclose()
    return lines


async def test_the_schedule_follows_the_seed() -> None:
    a, b, c = await episodes(1, 0.05), await episodes(1, 0.05), await episodes(2, 0.05)
    n = min(len(a), len(b), len(c))
    assert n >= 10
    assert a[:n] == b[:n]
    assert a[:n] != c[:n]
    assert {line.split()[0] for line in a} == {"disconnect", "corrupt", "splice", "junk", "slow", "vanish"}


@pytest.mark.parametrize(("value", "message"), [
    ("seed=1 devices=jbd1,nope", "no simulated device with id nope"),
    ("seed=one", "seed must be an integer"),
])
def test_the_daemon_refuses_a_plan_that_does_not_fit(tmp_path: Path, value: str, message: str) -> None:
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"devices": [{"address": "sim:jbd1", "type": "jbd", "alias": "jbd1"}]}))
    result = subprocess.run([sys.executable, "main.py", "--config", str(options), "--state-dir", str(tmp_path)],
                            cwd=ROOT, env={**os.environ, "BATMON_SIM_FAULTS": value}, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize(("key", "payload", "ok"), [
    ("soc/total_voltage", "52.1", True), ("soc/total_voltage", "652.8", False), ("soc/total_voltage", "-0.5", False),
    ("soc/soc_percent", "100", True), ("soc/soc_percent", "255", False), ("cell_voltages/3", "3.301", True),
    ("cell_voltages/3", "65.28", False), ("cell_voltages/delta", "0.012", True), ("temperatures/2", "6280.4", False),
    ("temperatures/1", "-12.5", True), ("mosfet_status/temperature", "151", False), ("soc/current", "nan", False),
    ("soc/power", "inf", False), ("soc/current", "-12.3", True), ("switch/charge", "ON", True),
    ("switch/charge", "on", False), ("availability", "online", True), ("alarms", "cell overvoltage", True),
    ("meter/total_energy_charge", "1.234", True), ("soc/brand_new_value", "1", False), ("soc/capacity", "x", False),
])
def test_plausibility_rules(key: str, payload: str, ok: bool) -> None:
    assert (problem(key, payload) is None) is ok

"""The benchmark scripts run and print their figures (no timing is asserted), and the frame trace
they rely on numbers frames so that a published cycle count names its frame."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench._measure import DeviceFrames, frame_latency, index_frames, match_latencies, percentile
from bmslib.registry import device_types
from bmslib.sim.radio import SimRadio
from bmslib.sim.trace import STAMP_MODULO, Delivery, FrameTrace, read_trace
from tests.mqtt_broker import mosquitto_binary
from tests.sim_helpers import add_emulator, make_driver

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str, timeout: float = 120) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_pipeline_bench_runs_and_prints_its_figures(tmp_path: Path) -> None:
    mosquitto_binary()  # fails with a clear message where mosquitto is missing
    out_json = tmp_path / "figures.json"
    out = run_script("bench/pipeline.py", "--devices", "3", "--types", "jbd,dummy,jk", "--seconds", "1",
                     "--warmup", "0.3", "--period", "0.2", "--json", str(out_json))
    for label in ("samples/s", "MQTT messages/s", "CPU per published sample", "peak RSS (VmHWM)",
                  "latency frame -> broker   p50", "machine:"):
        assert label in out, out
    figures = json.loads(out_json.read_text())
    assert figures["types"] == {"jbd": 1, "dummy": 1, "jk": 1}
    assert figures["samples_per_s"] > 0
    assert figures["published_per_s"] > 0
    assert figures["mqtt_messages_per_s"] > 0
    # process CPU time comes in clock ticks (10 ms): a one-second window of this small run may hold none
    assert math.isfinite(figures["cpu_us_per_published"]) and figures["cpu_us_per_published"] >= 0
    assert figures["peak_rss_mb"] > 10
    assert figures["latency_ms"]["n"] >= 1  # the jbd device's cycles states matched traced frames
    assert figures["latency_ms"]["p99"] >= figures["latency_ms"]["p50"] > 0
    assert figures["latency_by_type_ms"]["jk"]["n"] >= 1  # reported apart (a stream's data age)
    assert figures["unmatched_messages"] == 0


def test_pipeline_bench_rate_against_the_link_bound(tmp_path: Path) -> None:
    out_json = tmp_path / "figures.json"
    out = run_script("bench/pipeline.py", "--devices", "1", "--types", "jbd", "--seconds", "1", "--warmup", "0.3",
                     "--period", "0.001", "--response-time", "0.05", "--json", str(out_json))
    assert "rate vs link bound" in out, out
    figures = json.loads(out_json.read_text())
    assert figures["requests_per_sample"] >= 1
    assert 0 < figures["rate_of_bound_percent"] <= 101


def test_fairness_bench_prints_the_rates_and_ratios() -> None:
    out = run_script("bench/fairness.py", "--seconds", "1", "--period", "0.5", "--scenarios", "alone,hidden,slow")
    for label in ("alone: healthy", "hidden: healthy", "slow: healthy", "of alone"):
        assert label in out, out


def test_proxy_bench_prints_both_paths_side_by_side(tmp_path: Path) -> None:
    out_json = tmp_path / "figures.json"
    out = run_script("bench/proxy.py", "--devices", "2", "--seconds", "1", "--warmup", "0.3", "--period", "0.5",
                     "--keep-alive", "true", "--json", str(out_json), timeout=300)
    for label in ("machine:", "command:", "samples/s per device", "CPU per sample", "direct", "proxy"):
        assert label in out, out
    results = json.loads(out_json.read_text())["results"]
    assert [(r["mode"], r["devices"], r["keep_alive"]) for r in results] == [("direct", 2, True), ("proxy", 2, True)]
    for r in results:
        assert r["samples"] > 0, r  # both paths read the devices
        assert r["not_read_at_start"] == 0, r


def test_decoder_bench_prints_every_type() -> None:
    out = run_script("bench/decoders.py", "--seconds", "0.1")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line and not line.startswith("victron:")}
    assert set(rows) == {p.stem for p in (ROOT / "tests" / "vectors").glob("*.json")}
    for name, row in rows.items():
        captures, frames = int(row[1]), int(row[2])
        assert captures > 0 and frames > 0, name
        assert float(row[4].replace(",", "")) > 0 and float(row[5].replace(",", "")) > 0, name


# --- the frame trace --------------------------------------------------------------------------------

@pytest.mark.parametrize("type_name", ["jbd", "daly", "ant", "sok", "supervolt", "jk"])
async def test_published_cycles_name_a_delivered_frame(type_name: str, tmp_path: Path) -> None:
    trace = FrameTrace(tmp_path / "trace")
    radio = SimRadio(trace=trace)
    emulator = device_types()[type_name].emulator
    assert emulator is not None
    em = add_emulator(radio, emulator)
    driver = make_driver(type_name, radio, em)
    try:
        await driver.connect()
        readings = [await driver.read() for _ in range(3)]
    finally:
        await driver.disconnect()
        await radio.aclose()
        trace.close()
    deliveries = list(read_trace(tmp_path / "trace"))
    numbers = [d.frame for d in deliveries]
    assert {d.address for d in deliveries} == {em.address}
    assert numbers == sorted(numbers)  # one emulator numbers its frames in order
    cycles = [r["cycles"] for r in readings]
    assert len(set(cycles)) == 3  # each read carries a frame of its own
    assert all(c in numbers for c in cycles)


def test_without_a_trace_nothing_is_stamped() -> None:
    radio = SimRadio()
    emulator = device_types()["jbd"].emulator
    assert emulator is not None
    em = add_emulator(radio, emulator)
    assert em.trace is None
    before = em.battery.cycles
    em.notify(b"frame")  # not connected: dropped, and the battery is left alone
    assert em.battery.cycles == before


def test_stamps_wrap_within_16_bits() -> None:
    assert FrameTrace.next_stamp(STAMP_MODULO - 1) == 0
    assert FrameTrace.next_stamp(41) == 42


def test_read_trace_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "trace"
    path.write_text("1.000000 AA:BB 7\n1.500000 AA:BB 8\n2.0000")
    assert list(read_trace(path)) == [Delivery(1.0, "AA:BB", 7), Delivery(1.5, "AA:BB", 8)]


# --- matching published cycle counts to frames -------------------------------------------------------

def frames_of(*entries: tuple[float, int]) -> DeviceFrames:
    return index_frames(Delivery(t, "X", n) for t, n in entries)["X"]


def test_latency_runs_from_the_last_frame_of_the_read() -> None:
    # a read: frame 10 carries the cycle count, frame 11 (cells) ends the read; the next read starts at 2.0
    frames = frames_of((1.000, 10), (1.004, 11), (2.000, 12), (2.003, 13))
    assert frame_latency(frames, 10, 1.0065) == pytest.approx(0.0025)
    assert frame_latency(frames, 12, 2.005) == pytest.approx(0.002)


def test_a_value_no_frame_carried_does_not_match() -> None:
    frames = frames_of((1.0, 10), (1.004, 11))
    assert frame_latency(frames, 99, 1.01) is None
    assert frame_latency(frames, 10, 0.5) is None  # received before the frame: not this one
    assert frame_latency(frames, 10, 30.0) is None  # far too late: a re-send, not this sample


def test_a_wrapped_number_matches_its_newest_frame() -> None:
    frames = frames_of((1.0, 5), (1.002, 6), (9.0, 5), (9.002, 6))
    assert frame_latency(frames, 5, 9.003) == pytest.approx(0.001)


def test_match_latencies_counts_unmatched_messages() -> None:
    frames = {"A1": frames_of((1.0, 3), (1.001, 4))}
    msgs = [("a", "3", 1.002), ("a", "7", 1.5), ("a", "not a number", 1.6), ("b", "3", 1.002)]
    latencies, unmatched = match_latencies(msgs, {"a": "A1"}, frames)
    assert latencies == {"a": [pytest.approx(0.001)]}
    assert unmatched == 3


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0
    assert percentile([5.0], 1) == 5.0

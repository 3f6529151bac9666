"""The InfluxDB sink: point layout, buffering and retries, against a real VictoriaMetrics (its InfluxDB
v2 write endpoint) and, for the server answers VictoriaMetrics never gives (refusals, auth, an old
InfluxDB 1.x), a small local HTTP server that plays InfluxDB."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.server
import itertools
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bmslib.config import InfluxConfig, parse_config
from bmslib.device import DeviceStatus
from bmslib.model import OutputSign, Sample
from bmslib.registry import type_infos
from bmslib.sinks.influx import InfluxSink, InfluxWriter, WriteError, cell_lines, meter_line, sample_line, too_old
from tests.victoria import Victoria, series_by, victoria_fixture  # noqa: F401  (the `victoria` fixture)

ROOT = Path(__file__).resolve().parent.parent


def influx_config(url: str, **kw: Any) -> InfluxConfig:
    fields: dict[str, Any] = {"url": url, "token": "test-token", "org": "home", "bucket": "batmon", "username": None,
                              "password": None, "database": None, "verify_ssl": True, "api": "v2"}
    fields.update(kw)
    return InfluxConfig(**fields)


def status(alias: str = "bat1", switches: frozenset[str] = frozenset()) -> DeviceStatus:
    return DeviceStatus(alias=alias, type="jbd", address="sim:x", switches=switches)


def sample(ts: float, *, current: float = 2.0, cells: tuple[float, ...] = (3.301, 3.305, 3.299, 3.310),
           **extra: Any) -> Sample:
    reading: dict[str, Any] = {"voltage": 13.215, "current": current, "soc": 55.5, "capacity": 100.0,
                               "cycles": 12, "temperatures": (21.5, 22.25), "mos_temperature": 30.0,
                               "cell_voltages": cells, "switches": {"charge": True, "discharge": False},
                               "alarms": ()}
    reading.update(extra)
    return Sample.build(reading, timestamp=ts, mono=ts)  # type: ignore[arg-type]


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, str], int]:
    """A line as (measurement, tags, raw field values, time); good enough for the lines under test
    (no escaped commas or spaces in field values)."""
    head, fields_text, ts = line.rsplit(" ", 2)
    measurement, *tag_parts = head.split(",")
    tags = dict(p.split("=", 1) for p in tag_parts)
    fields = dict(p.split("=", 1) for p in fields_text.split(","))
    return measurement, tags, fields, int(ts)


# --------------------------------------------------------------------------------------------------
# Point layout (pure)


def test_sample_line_fields_tags_types_and_sign() -> None:
    st = status("bat1", frozenset({"charge", "discharge"}))
    st.record_sample(sample(1_700_000_000.1234))
    line = sample_line("bat1", sample(1_700_000_000.1234), st, OutputSign(invert=True))
    assert line is not None
    measurement, tags, fields, ts = parse_line(line)
    assert measurement == "batmon"
    assert tags == {"device": "bat1"}
    assert ts == 1_700_000_000_123  # ms
    # published sign: +2 A discharging in the model is -2 A with invert_current
    assert float(fields["current"]) == -2.0
    assert float(fields["power"]) == pytest.approx(-26.4, abs=0.1)
    assert float(fields["voltage"]) == 13.215
    assert float(fields["soc"]) == 55.5
    assert float(fields["num_cycles"]) == 12.0 and not fields["num_cycles"].endswith("i")  # a float, as before
    assert float(fields["temperatures_0"]) == 21.5
    assert float(fields["temperatures_1"]) == 22.2  # entity resolution: 0.1 °C (22.25 rounds to even)
    assert float(fields["mos_temperature"]) == 30.0
    assert fields["switches_charge"] == "1.0"
    assert fields["switches_discharge"] == "0.0"
    assert fields["problem"] == "0.0"
    assert fields["alarms"] == '"none"'
    # cells in mV: integers per cell and for min/max, floats for mean/median/delta
    assert fields["voltage_cell000"] == "3301i"
    assert fields["voltage_cell003"] == "3310i"
    assert fields["voltage_cell_min"] == "3299i"
    assert fields["voltage_cell_max"] == "3310i"
    assert float(fields["voltage_cell_mean"]) == pytest.approx(3303.75, abs=0.06)  # model: 0.1 mV
    assert float(fields["voltage_cell_median"]) == pytest.approx(3303.0, abs=0.05)
    assert float(fields["voltage_cell_delta"]) == pytest.approx(11.0, abs=0.05)
    assert float(fields["num_samples"]) == 1.0
    assert "soh" not in fields  # not reported: no field, never NaN


def test_sample_line_model_sign_without_invert_and_no_empty_point() -> None:
    line = sample_line("b", sample(1.0, current=-3.0), status(), OutputSign(invert=False))
    assert line is not None
    assert float(parse_line(line)[2]["current"]) == -3.0  # charging stays negative
    bare = Sample.build({}, timestamp=1.0, mono=1.0)
    # a sample without values still has the monitor's diagnostics, but never an empty field set
    empty = sample_line("b", bare, status(), OutputSign(invert=True))
    assert empty is None or " " in empty


def test_tags_and_strings_are_escaped() -> None:
    st = status("my bat,1")
    st.last_error = 'timeout "read"\nagain'
    line = sample_line("my bat,1=x", sample(2.0, alarms=("over voltage",)), st, OutputSign(invert=True))
    assert line is not None
    assert line.startswith("batmon,device=my\\ bat\\,1\\=x ")
    assert 'alarms="over voltage"' in line
    assert 'last_error="timeout \\"read\\"\\nagain"' in line
    assert "\n" not in line


def test_cell_lines_one_point_per_cell() -> None:
    lines = cell_lines("bat1", sample(3.0))
    assert [parse_line(line) for line in lines] == [
        ("cells", {"cell_index": str(i), "device": "bat1"}, {"voltage": f"{mv}i"}, 3000)
        for i, mv in enumerate((3301, 3305, 3299, 3310))
    ]
    assert cell_lines("bat1", sample(3.0, cells=())) == []


def test_meter_line_names_rounding_and_nan() -> None:
    line = meter_line("bat1", {"total_energy_charge": 1.2345678, "total_cycles": 3.0, "total_charge": math.nan},
                      1000.0)
    assert line is not None
    measurement, tags, fields, ts = parse_line(line)
    assert (measurement, tags, ts) == ("batmon", {"device": "bat1"}, 1_000_000)
    assert fields == {"meter_total_energy_charge": "1.23457", "meter_total_cycles": "3.0"}
    assert meter_line("bat1", {"total_charge": math.nan}, 1.0) is None


@pytest.mark.parametrize(("version", "old"), [
    ("1.7.10", True), ("1.6.4", True), ("v1.7.0", True), ("1.8.0", False), ("1.8.10", False), ("1.11.8", False),
    ("v2.7.4", False), ("2.0.0", False), ("3.0.1", False), (None, False), ("unknown", False), ("", False),
])
def test_too_old(version: str | None, old: bool) -> None:
    assert too_old(version) is old


# --------------------------------------------------------------------------------------------------
# Buffering, with a writer under the test's control


class FakeWriter:
    """Records batches; ``down`` makes writes fail as an unreachable server would."""

    target = "fake"

    def __init__(self) -> None:
        self.down = False
        self.refuse = False
        self.server_version: str | None = "2.7.4"
        self.batches: list[list[str]] = []
        self.closed = False

    def version(self, timeout: float) -> str | None:
        if self.down:
            raise WriteError("connection refused", retry=True)
        return self.server_version

    def write(self, lines: list[str], timeout: float) -> None:
        if self.down:
            raise WriteError("connection refused", retry=True)
        if self.refuse:
            raise WriteError("HTTP 400: bad line", retry=False)
        self.batches.append(list(lines))

    def close(self) -> None:
        self.closed = True

    @property
    def lines(self) -> list[str]:
        return [line for batch in self.batches for line in batch]


def fast_sink(writer: Any, **kw: Any) -> InfluxSink:
    opts: dict[str, Any] = {"capacity": 1000, "batch_size": 100, "flush_interval": 0.02, "backoff": (0.02, 0.1)}
    opts.update(kw)
    return InfluxSink(None, OutputSign(invert=True), writer=writer, **opts)


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_overflow_drops_oldest_counts_and_reports_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    writer = FakeWriter()
    writer.down = True
    sink = fast_sink(writer, capacity=10, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="batmon.influxdb")
    await sink.start()
    sink.add(f"m v={i} {i}" for i in range(25))
    assert sink.dropped == 15
    assert list(sink.buffer) == [f"m v={i} {i}" for i in range(15, 25)]
    reports = [r for r in caplog.records if "buffer full" in r.getMessage()]
    assert len(reports) == 1 and "dropped the 15 oldest" in reports[0].getMessage()
    now[0] = 30.0
    sink.add(["m v=25 25"])
    assert len([r for r in caplog.records if "buffer full" in r.getMessage()]) == 1  # not again within a minute
    now[0] = 61.0
    sink.add(["m v=26 26"])
    reports = [r for r in caplog.records if "buffer full" in r.getMessage()]
    assert len(reports) == 2 and "dropped the 2 oldest" in reports[1].getMessage() and "17 in all" in \
        reports[1].getMessage()
    writer.down = False
    await until(lambda: len(writer.lines) == 10)
    assert writer.lines == [f"m v={i} {i}" for i in range(17, 27)]  # the newest survive, in order
    await sink.stop(1.0)
    assert sink.dropped == 17 and sink.written == 10 and sink.lost_at_shutdown == 0


async def test_failed_batch_goes_back_in_order_and_backoff_grows() -> None:
    writer = FakeWriter()
    writer.down = True
    attempts: list[float] = []
    original = writer.write

    def counting(lines: list[str], timeout: float) -> None:
        attempts.append(time.monotonic())
        original(lines, timeout)

    writer.write = counting  # type: ignore[method-assign]
    writer.server_version = None
    sink = fast_sink(writer, batch_size=3, backoff=(0.05, 0.2))
    sink.add(f"m v={i} {i}" for i in range(7))
    sink._checked = True  # skip the version question: only writes are counted here
    await sink.start()
    await asyncio.sleep(1.2)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(attempts) >= 4
    assert gaps[2] > gaps[0] + 0.05  # pauses grow (0.05, 0.1, 0.2 s plus the flush interval) ...
    assert max(gaps) < 0.2 + 0.3  # ... up to the maximum
    assert list(sink.buffer) == [f"m v={i} {i}" for i in range(7)]  # nothing lost, order kept
    writer.down = False
    await until(lambda: len(writer.lines) == 7)
    assert writer.lines == [f"m v={i} {i}" for i in range(7)]
    assert [len(b) for b in writer.batches] == [3, 3, 1]
    await sink.stop(1.0)


async def test_refused_batch_is_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    writer = FakeWriter()
    writer.refuse = True
    sink = fast_sink(writer, batch_size=2)
    await sink.start()
    sink.add(["a v=1 1", "a v=2 2", "a v=3 3"])
    await until(lambda: sink.refused == 3)
    writer.refuse = False
    sink.add(["a v=4 4"])
    await until(lambda: writer.lines == ["a v=4 4"])
    assert any("refused 2 point(s)" in r.getMessage() for r in caplog.records)
    await sink.stop(1.0)


async def test_old_influxdb_1x_turns_output_off_with_the_version(caplog: pytest.LogCaptureFixture) -> None:
    writer = FakeWriter()
    writer.server_version = "1.7.10"
    sink = fast_sink(writer)
    await sink.start()
    sink.add(["a v=1 1"])
    await until(lambda: sink.disabled is not None)
    assert "1.7.10" in sink.disabled and "1.8" in sink.disabled  # type: ignore[operator]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "1.7.10" in errors[0].getMessage()
    sink.add(["a v=2 2"])
    await asyncio.sleep(0.1)
    assert writer.batches == [] and sink.pending == 0
    await sink.stop(1.0)
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


async def test_callbacks_never_wait_for_a_hanging_server() -> None:
    """A server that accepts connections and never answers: the event loop stays responsive."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        sink = InfluxSink(influx_config(url), OutputSign(invert=True), flush_interval=0.01, batch_size=5,
                          request_timeout=2.0)
        await sink.start()
        st = status()
        lags: list[float] = []
        worst_call = 0.0
        for _ in range(60):
            t0 = time.perf_counter()
            sink.on_sample(st, sample(time.time()))
            worst_call = max(worst_call, time.perf_counter() - t0)
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)
        assert worst_call < 0.05  # a blocked call would take the request timeout (2 s)
        assert max(lags) < 0.1
        assert sink.written == 0 and sink.pending > 0
        t0 = time.monotonic()
        await sink.stop(0.5)
        assert time.monotonic() - t0 < 1.0
        assert sink.lost_at_shutdown > 0


# --------------------------------------------------------------------------------------------------
# A real server: VictoriaMetrics


def fast_real_sink(url: str, **kw: Any) -> InfluxSink:
    opts: dict[str, Any] = {"flush_interval": 0.05, "backoff": (0.05, 0.3), "request_timeout": 2.0}
    opts.update(kw)
    return InfluxSink(influx_config(url), OutputSign(invert=True), **opts)


async def test_points_land_with_tags_and_fields(victoria: Victoria) -> None:
    sink = fast_real_sink(victoria.url)
    await sink.start()
    st = status("bat1", frozenset({"charge", "discharge"}))
    t0 = time.time()
    for i in range(3):
        s = sample(t0 + i, current=1.0 + i)
        st.record_sample(s)
        sink.on_sample(st, s)
    sink.on_meters(st, {"total_energy_charge": 1.5, "total_cycles": 0.25})
    await until(lambda: sink.written == 3 + 3 * 4 + 1)
    series = victoria.wait_for(lambda s: len(series_by(s, "batmon_current", device="bat1")) == 1
                               and len(series_by(s, "cells_voltage")) == 4
                               and bool(series_by(s, "batmon_meter_total_energy_charge")))
    current = series_by(series, "batmon_current", device="bat1")[0]
    assert current.values == [-1.0, -2.0, -3.0]  # published sign
    assert current.timestamps == [round((t0 + i) * 1000) for i in range(3)]
    assert series_by(series, "batmon_voltage", device="bat1")[0].values == [13.215] * 3
    assert series_by(series, "batmon_switches_charge", device="bat1")[0].values == [1.0] * 3
    assert series_by(series, "batmon_temperatures_1", device="bat1")[0].values == [22.2] * 3
    assert series_by(series, "batmon_voltage_cell002", device="bat1")[0].values == [3299.0] * 3
    cells = {s.labels["cell_index"]: s.values for s in series_by(series, "cells_voltage", device="bat1")}
    assert cells == {"0": [3301.0] * 3, "1": [3305.0] * 3, "2": [3299.0] * 3, "3": [3310.0] * 3}
    assert series_by(series, "batmon_meter_total_energy_charge", device="bat1")[0].values == [1.5]
    assert series_by(series, "batmon_meter_total_cycles", device="bat1")[0].values == [0.25]
    await sink.stop(2.0)
    assert sink.lost_at_shutdown == 0 and sink.dropped == 0


async def test_server_down_at_start_then_away_and_back_loses_nothing(victoria: Victoria) -> None:
    victoria.stop()
    sink = fast_real_sink(victoria.url, capacity=10_000)
    await sink.start()
    st = status("bat1")
    t0 = time.time() - 100
    n = 0

    async def feed(count: int) -> None:
        nonlocal n
        for _ in range(count):
            sink.on_sample(st, sample(t0 + n * 0.5))
            n += 1
            await asyncio.sleep(0.005)

    await feed(40)  # down at start
    assert sink.written == 0 and sink.pending == 40 * 5
    victoria.start()
    await feed(20)
    await until(lambda: sink.written == 60 * 5, timeout=10)
    victoria.stop()  # goes away
    await feed(40)
    await asyncio.sleep(0.5)
    assert sink.pending == 40 * 5
    victoria.start()  # and comes back
    await feed(10)
    await until(lambda: sink.written == 110 * 5 and sink.pending == 0, timeout=10)
    series = victoria.wait_for(lambda s: sum(len(x.values) for x in series_by(s, "batmon_voltage")) == 110)
    stamps = series_by(series, "batmon_voltage", device="bat1")[0].timestamps
    assert stamps == [round((t0 + i * 0.5) * 1000) for i in range(110)]
    cells = series_by(victoria.export('{__name__="cells_voltage"}'), "cells_voltage")
    assert sorted(len(c.values) for c in cells) == [110] * 4
    assert sink.dropped == 0 and sink.refused == 0
    await sink.stop(2.0)


async def test_shutdown_flushes_the_buffer_within_the_limit(victoria: Victoria) -> None:
    sink = fast_real_sink(victoria.url, flush_interval=60.0, batch_size=2_000)
    await sink.start()
    t0 = time.time() - 1000
    lines = [f"flush,device=d v={i} {round((t0 + i * 0.01) * 1000)}" for i in range(10_000)]
    sink.add(lines[:1_000])  # below a batch: waits for the flush interval (a minute) ...
    await asyncio.sleep(0.2)
    assert sink.written == 0
    sink.add(lines[1_000:])
    started = time.monotonic()
    await sink.stop(5.0)  # ... or for stop()
    took = time.monotonic() - started
    assert took < 5.0
    assert sink.written == 10_000 and sink.lost_at_shutdown == 0
    series = victoria.wait_for(lambda s: sum(len(x.values) for x in series_by(s, "flush_v")) == 10_000,
                               match='{__name__="flush_v"}')
    assert series[0].values[:3] == [0.0, 1.0, 2.0]


async def test_shutdown_gives_up_at_the_limit_when_the_server_is_gone(victoria: Victoria,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    victoria.stop()
    sink = fast_real_sink(victoria.url)
    await sink.start()
    sink.add([f"gone v={i} {i + 1_700_000_000_000}" for i in range(50)])
    started = time.monotonic()
    await sink.stop(0.5)
    assert time.monotonic() - started < 1.5
    assert sink.lost_at_shutdown == 50
    assert any("50 point(s) not written at shutdown" in r.getMessage() for r in caplog.records)


def test_demo_points_land(victoria: Victoria, tmp_path: Path) -> None:
    """The daemon with --demo and an options file pointing at the server: every demo device writes."""
    options = tmp_path / "options.yaml"
    options.write_text(yaml.safe_dump({**victoria.options(), "watchdog": False}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTT_")}
    proc = subprocess.Popen([sys.executable, "main.py", "--demo", "--config", str(options), "--state-dir",
                             str(tmp_path / "state")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        series = victoria.wait_for(
            lambda s: {x.labels.get("device") for x in series_by(s, "batmon_voltage")} >= {"demo_jbd", "demo_jk",
                                                                                         "demo_dummy", "demo_bank"}
            and bool(series_by(s, "cells_voltage", device="demo_jbd"))
            and bool(series_by(s, "batmon_meter_total_energy_charge", device="demo_jbd")),
            timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err[-3000:]
    devices = {x.labels["device"] for x in series_by(series, "batmon_voltage")}
    cfg = parse_config(yaml.safe_load(options.read_text()), source="t", env={}, types=type_infos())
    assert cfg.influxdb is not None
    assert "InfluxDB: writing to" in err and "test-token" not in err + out
    assert len(devices) >= 8
    for s in series_by(series, "batmon_voltage"):
        assert all(0 < v < 100 for v in s.values)


# --------------------------------------------------------------------------------------------------
# What the client sends, and what it makes of answers VictoriaMetrics never gives


class FakeInflux(http.server.ThreadingHTTPServer):
    """Answers /ping with a version header and /api/v2/write with a chosen status; records requests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeHandler)
        self.version: str | None = "2.7.4"
        self.status = 204
        self.message = ""
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FakeHandler(http.server.BaseHTTPRequestHandler):
    server: FakeInflux

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _record(self, body: bytes) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.requests.append({"path": parts.path, "query": dict(urllib.parse.parse_qsl(parts.query)),
                                     "auth": self.headers.get("Authorization"), "body": body.decode()})

    def do_GET(self) -> None:
        self._record(b"")
        self.send_response(204)
        if self.server.version:
            self.send_header("X-Influxdb-Version", self.server.version)
        self.end_headers()

    do_HEAD = do_GET

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._record(body)
        if self.server.status == 204:
            self.send_response(204)
            self.end_headers()
            return
        payload = json.dumps({"code": "invalid", "message": self.server.message}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def fake_influx() -> Iterator[FakeInflux]:
    server = FakeInflux()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_v2_request_token_org_bucket_precision_gzip(fake_influx: FakeInflux) -> None:
    writer = InfluxWriter(influx_config(fake_influx.url, token="s3cret"))
    assert writer.version(2.0) == "2.7.4"
    writer.write(["a v=1 1", "a v=2 2"], 2.0)
    writer.close()
    post = next(r for r in fake_influx.requests if r["path"] == "/api/v2/write")
    assert post["query"] == {"org": "home", "bucket": "batmon", "precision": "ms"}
    assert post["auth"] == "Token s3cret"
    assert post["body"] == "a v=1 1\na v=2 2"
    assert "s3cret" not in writer.target


def test_v1_compat_user_password_token_and_database_bucket(fake_influx: FakeInflux) -> None:
    cfg = influx_config(fake_influx.url, token=None, org=None, bucket=None, username="bat", password="pw",
                        database="batmon/autogen", api="v1")
    writer = InfluxWriter(cfg)
    writer.write(["a v=1 1"], 2.0)
    writer.close()
    post = fake_influx.requests[-1]
    assert post["query"] == {"org": "-", "bucket": "batmon/autogen", "precision": "ms"}
    assert post["auth"] == "Token bat:pw"
    anonymous = InfluxWriter(influx_config(fake_influx.url, token=None, org=None, bucket=None, database="db",
                                           api="v1"))
    anonymous.write(["a v=1 1"], 2.0)
    anonymous.close()
    assert fake_influx.requests[-1]["auth"] is None


@pytest.mark.parametrize(("status_code", "retry", "hint"), [
    (400, False, "unable to parse"), (413, False, ""), (422, False, ""),
    (401, True, "check the token"), (403, True, "check the token"), (404, True, "1.8 or newer"),
    (429, True, ""), (500, True, ""), (503, True, ""),
])
def test_http_errors_are_classified(fake_influx: FakeInflux, status_code: int, retry: bool, hint: str) -> None:
    fake_influx.status = status_code
    fake_influx.message = "unable to parse 'x': missing fields"
    writer = InfluxWriter(influx_config(fake_influx.url))
    with pytest.raises(WriteError) as info:
        writer.write(["x"], 2.0)
    writer.close()
    assert info.value.retry is retry
    assert f"HTTP {status_code}" in str(info.value)
    assert hint in str(info.value)
    assert "unable to parse" in str(info.value)  # the server's own message


def test_unreachable_server_is_retryable_and_credentials_stay_out_of_messages() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    writer = InfluxWriter(influx_config(f"http://user:pw@127.0.0.1:{port}", token="tok123"))
    for call in (lambda: writer.version(1.0), lambda: writer.write(["a v=1 1"], 1.0)):
        with pytest.raises(WriteError) as info:
            call()
        assert info.value.retry
        assert "tok123" not in str(info.value)
    assert writer.target == f"http://127.0.0.1:{port} (bucket 'batmon')"
    writer.close()


async def test_old_server_over_http_is_named_in_the_error(fake_influx: FakeInflux,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    fake_influx.version = "1.7.10"
    sink = InfluxSink(influx_config(fake_influx.url), OutputSign(invert=True), flush_interval=0.01)
    await sink.start()
    sink.add(["a v=1 1"])
    await until(lambda: sink.disabled is not None)
    await sink.stop(1.0)
    assert not [r for r in fake_influx.requests if r["path"] == "/api/v2/write"]
    assert any("InfluxDB 1.7.10" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def test_app_creates_the_influx_sink_only_when_configured(tmp_path: Path) -> None:
    from bmslib.app import App  # noqa: PLC0415
    from main import SINK_FACTORIES  # noqa: PLC0415

    base = {"devices": [{"address": "sim:a", "type": "jbd", "alias": "a"}]}
    with_influx = parse_config({**base, "influxdb_url": "http://127.0.0.1:9", "influxdb_token": "t",
                                "influxdb_org": "o", "influxdb_bucket": "b"}, source="t", env={}, types=type_infos())
    without = parse_config(base, source="t", env={}, types=type_infos())

    async def build(cfg: Any) -> list[str]:
        app = App(cfg, state_dir=tmp_path, sink_factories=SINK_FACTORIES)
        names = [s.name for s in app.sinks]
        with contextlib.suppress(Exception):
            await app.radio.aclose() if app.radio else None
        return names

    assert "influxdb" in asyncio.run(build(with_influx))
    assert "influxdb" not in asyncio.run(build(without))


async def test_a_writer_bug_is_logged_and_writing_goes_on(monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    import bmslib.sinks.influx as influx  # noqa: PLC0415

    monkeypatch.setattr(influx, "RESTART_PAUSE", 0.05)
    writer = FakeWriter()
    original = writer.write
    calls = [0]

    def buggy(lines: list[str], timeout: float) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("a bug")
        original(lines, timeout)

    writer.write = buggy  # type: ignore[method-assign]
    sink = fast_sink(writer)
    await sink.start()
    sink.add(["a v=1 1", "a v=2 2"])
    await until(lambda: writer.lines == ["a v=1 1", "a v=2 2"])
    assert any("writer failed" in r.getMessage() and r.exc_info for r in caplog.records)
    await sink.stop(1.0)
    assert sink.lost_at_shutdown == 0


async def test_a_request_cut_off_at_shutdown_counts_as_lost() -> None:
    release = threading.Event()

    class SlowWriter(FakeWriter):
        def write(self, lines: list[str], timeout: float) -> None:
            release.wait(5)
            super().write(lines, timeout)

    writer = SlowWriter()
    sink = fast_sink(writer)
    await sink.start()
    sink.add(["a v=1 1", "a v=2 2", "a v=3 3"])
    await asyncio.sleep(0.2)  # the request is under way and hangs
    started = time.monotonic()
    await sink.stop(0.3)
    assert time.monotonic() - started < 1.0
    assert sink.lost_at_shutdown == 3 and sink.written == 0
    release.set()

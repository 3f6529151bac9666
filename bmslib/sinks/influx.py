"""InfluxDB output: every raw sample, cell voltages and energy meters, written in batches off the event loop.

Points (names as in the add-on batmon replaces, so that existing dashboards keep working):

* measurement ``batmon``, tag ``device=<alias>``: the sample's fields, named by ``field`` in
  :mod:`bmslib.entities` (``voltage``, ``current``, ``power``, ``soc``, ``charge``, ``temperatures_0``,
  ``switches_charge``, ...). Numbers and switch states are floats (switches and ``problem`` 1.0/0.0),
  text values (``alarms``, ``last_error``) strings. Current and power carry the published sign
  (``invert_current``). The cell fields are integers in mV: ``voltage_cell000``, ... and
  ``voltage_cell_min``/``voltage_cell_max``; ``voltage_cell_mean``, ``voltage_cell_median`` and
  ``voltage_cell_delta`` are floats in mV.
* measurement ``cells``, tags ``device`` and ``cell_index`` (0-based): field ``voltage``, integer mV.
* measurement ``batmon``, tag ``device``: ``meter_<name>`` (``meter_total_energy_charge``, ...),
  every 30 s.

Timestamps are the sample's wall-clock time in milliseconds.

The callbacks only encode points into a bounded buffer; a task of the sink's own writes them in batches,
each HTTP request in a worker thread, so a slow or absent server never delays sampling. While the server
cannot be reached the points stay in the buffer and writing is retried with a growing pause; when the
buffer is full the oldest points are dropped (counted, and reported at most once a minute). A batch the
server refuses as invalid (HTTP 400, 413, 422) is dropped and counted, so that one bad point cannot
block the rest. :meth:`InfluxSink.stop` writes what is left within its time limit.

Writes go to the ``/api/v2/write`` endpoint with influxdb-client: InfluxDB 2.x and 3.x with token,
org and bucket; InfluxDB 1.8 and later (whose compatibility endpoint takes ``username:password`` as
the token and ``database/retention`` as the bucket) with the 1.x options. An InfluxDB 1.x older than
1.8 has no such endpoint: batmon asks the server's version (``/ping``) before the first write and,
for such a server, logs one error naming the version and turns InfluxDB output off.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import math
import re
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from bmslib.config.settings import InfluxConfig
from bmslib.device import DeviceStatus
from bmslib.entities import CELL_STATS, DIAGNOSTICS, SAMPLE_ENTITIES, switch_entities, temperature_entities
from bmslib.model import OutputSign, Sample
from bmslib.publishing import QUIET, Decision
from bmslib.sinks.base import Sink, SinkContext

__all__ = [
    "InfluxSink",
    "InfluxWriter",
    "WriteError",
    "Writer",
    "cell_lines",
    "meter_line",
    "sample_line",
    "too_old",
]

_LOG = logging.getLogger("batmon.influxdb")

MEASUREMENT = "batmon"
CELLS_MEASUREMENT = "cells"
CAPACITY = 50_000  # points held while the server is unreachable (about 50 min of one 16-cell device at 1 s)
BATCH_SIZE = 5_000  # points per request
FLUSH_INTERVAL = 1.0  # [s] a partial batch waits at most this long
BACKOFF_MIN, BACKOFF_MAX = 1.0, 30.0  # [s] pause after a failed write, doubled per failure
REQUEST_TIMEOUT = 10.0  # [s] per HTTP request
REPORT_INTERVAL = 60.0  # [s] at most one report of dropped points / ongoing failures per this time
SHUTDOWN_RETRY = 0.2  # [s] pause between write attempts while flushing at shutdown
RESTART_PAUSE = 5.0  # [s] before the writer task starts over after an unexpected error
MIN_V1 = (1, 8)  # the first InfluxDB 1.x with /api/v2/write
REFUSED = frozenset({400, 413, 422})  # the server will never take this batch: drop it

#: Cell statistics written in mV as integers (the add-on batmon replaces wrote them so), the rest as float mV.
_INT_MV_STATS = frozenset({"voltage_cell_min", "voltage_cell_max"})
_MV_STATS = frozenset({"voltage_cell_min", "voltage_cell_max", "voltage_cell_mean", "voltage_cell_median",
                       "voltage_cell_delta"})


# --------------------------------------------------------------------------------------------------
# Points


def _escape_key(text: str) -> str:
    """A measurement, tag key, tag value or field key in line protocol."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ") \
        .replace("\n", "\\n")


def _escape_measurement(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ").replace("\n", "\\n")


def _field_value(value: float | int | str | bool) -> str | None:
    """A field value in line protocol: bools and numbers as floats, ``int`` marked with ``i``."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, bool):
        return "1.0" if value else "0.0"
    if isinstance(value, int):
        return f"{value}i"
    if not math.isfinite(value):
        return None
    return repr(float(value))


def _line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, float | int | str | bool],
          ms: int) -> str | None:
    encoded = [f"{_escape_key(k)}={v}" for k, raw in fields.items() if (v := _field_value(raw)) is not None]
    if not encoded:
        return None
    tag_text = "".join(f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(tags.items()) if v)
    return f"{_escape_measurement(measurement)}{tag_text} {','.join(encoded)} {ms}"


def _ms(timestamp: float) -> int:
    return round(timestamp * 1000)


def _as_float(value: float | int | str | bool) -> float | str:
    """Numbers and bools as float (no field type conflict when a value happens to be whole), text as is."""
    return value if isinstance(value, str) else float(value)


def sample_line(alias: str, sample: Sample, status: DeviceStatus, sign: OutputSign) -> str | None:
    """The ``batmon`` point of one sample (None when it has no field)."""
    fields: dict[str, float | int | str | bool] = {}
    n_cells = len(sample.cell_voltages or ())
    described = (*SAMPLE_ENTITIES,
                 *temperature_entities(len(sample.temperatures or ())),
                 *switch_entities(sample.switches or {}, ()),
                 *(CELL_STATS if n_cells > 1 else ()),
                 *DIAGNOSTICS)
    for entity in described:
        if entity.field in fields:
            continue  # a switch has two entities with one field
        value = entity.state(sample, status, sign)
        if value is None:
            continue
        if entity.field in _MV_STATS and not isinstance(value, bool | str):
            mv = float(value) * 1000.0
            value = round(mv) if entity.field in _INT_MV_STATS else round(mv, 1)
            fields[entity.field] = value
            continue
        fields[entity.field] = _as_float(value)
    for i, volts in enumerate(sample.cell_voltages or ()):
        fields[f"voltage_cell{i:03d}"] = round(volts * 1000.0)
    return _line(MEASUREMENT, {"device": alias}, fields, _ms(sample.timestamp))


def cell_lines(alias: str, sample: Sample) -> list[str]:
    """One ``cells`` point per cell: tags device and cell_index (0-based), field voltage in mV."""
    ms = _ms(sample.timestamp)
    lines = (_line(CELLS_MEASUREMENT, {"device": alias, "cell_index": str(i)}, {"voltage": round(v * 1000.0)}, ms)
             for i, v in enumerate(sample.cell_voltages or ()))
    return [line for line in lines if line is not None]


def meter_line(alias: str, readings: Mapping[str, float], timestamp: float) -> str | None:
    """The energy meters of one device as ``meter_<name>`` fields of a ``batmon`` point."""
    fields = {f"meter_{name}": round(value, 5) for name, value in readings.items() if math.isfinite(value)}
    return _line(MEASUREMENT, {"device": alias}, fields, _ms(timestamp))


# --------------------------------------------------------------------------------------------------
# The server


class WriteError(Exception):
    """A request failed. ``retry``: the same points may succeed later (server down, overloaded, auth)."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class Writer(Protocol):
    """What the sink needs from a server connection (blocking calls; the sink runs them in a thread)."""

    @property
    def target(self) -> str:
        """Where the points go, for log lines (no credentials)."""

    def version(self, timeout: float) -> str | None:
        """The server's version (``/ping``), or None when it does not say. WriteError when unreachable."""

    def write(self, lines: Sequence[str], timeout: float) -> None:
        """Write the points or raise WriteError."""

    def close(self) -> None:
        """Release connections."""


def _public_url(url: str) -> str:
    """The URL without user and password."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _api_message(exc: Any) -> str:
    """The text of an influxdb-client ApiException: the server's message when it sent JSON."""
    body = getattr(exc, "body", None)
    message = ""
    if isinstance(body, bytes | str):
        raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            doc = json.loads(raw)
            message = str(doc.get("message") or doc.get("error") or raw) if isinstance(doc, dict) else raw
        except ValueError:
            message = raw
    return _short(message or str(getattr(exc, "reason", "") or "no reason given"))


def _describe(exc: BaseException) -> str:
    """One line for a connection failure (urllib3 wraps the interesting part)."""
    reason = getattr(exc, "reason", None)
    text = str(reason if isinstance(reason, BaseException) else exc) or type(exc).__name__
    return _short(f"{type(exc).__name__}: {text}")


class InfluxWriter:
    """Writes with influxdb-client to ``/api/v2/write`` (InfluxDB 2.x, 3.x and 1.8+)."""

    def __init__(self, config: InfluxConfig) -> None:
        # loaded only when InfluxDB is configured; typed Any (the library's own hints are partial)
        influx: Any = importlib.import_module("influxdb_client")
        self._api_exception: type[Exception] = importlib.import_module("influxdb_client.rest").ApiException
        self._precision = influx.WritePrecision.MS
        if config.api == "v1":
            # InfluxDB 1.8's compatibility endpoint: "username:password" as the token, "database[/rp]" as the
            # bucket, and no organisation.
            user, password = config.username or "", config.password or ""
            token = f"{user}:{password}" if user or password else None
            self._bucket = config.database or ""
            self._org = "-"
        else:
            token = config.token
            self._bucket = config.bucket or ""
            self._org = config.org or ""
        if not config.verify_ssl:
            # the user asked for it; the warning would otherwise repeat on every request
            urllib3: Any = importlib.import_module("urllib3")
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        self._url = config.url
        self._client: Any = influx.InfluxDBClient(url=config.url, token=token, org=self._org,
                                                  verify_ssl=config.verify_ssl, enable_gzip=True,
                                                  timeout=int(REQUEST_TIMEOUT * 1000))
        self._write: Any = influx.WriteService(self._client.api_client)
        self._ping: Any = influx.PingService(self._client.api_client)

    @property
    def target(self) -> str:
        return f"{_public_url(self._url)} (bucket {self._bucket!r})"

    def version(self, timeout: float) -> str | None:
        try:
            response = self._ping.get_ping_with_http_info(_return_http_data_only=False,
                                                          _request_timeout=_ms_timeout(timeout))
        except self._api_exception:
            return None  # a /ping that wants authentication (InfluxDB 3) or is missing: the version is unknown
        except Exception as exc:  # noqa: BLE001  (urllib3 and socket errors: the server cannot be reached)
            raise WriteError(_describe(exc), retry=True) from None
        headers = response[2] if isinstance(response, tuple) and len(response) >= 3 else {}
        value = headers.get("X-Influxdb-Version") if hasattr(headers, "get") else None
        return str(value) if value else None

    def write(self, lines: Sequence[str], timeout: float) -> None:
        body = "\n".join(lines).encode()
        try:
            self._write.post_write(org=self._org, bucket=self._bucket, body=body, precision=self._precision,
                                   content_type="text/plain; charset=utf-8", _request_timeout=_ms_timeout(timeout))
        except self._api_exception as exc:
            status = int(getattr(exc, "status", 0) or 0)
            hint = ""
            if status == 404:
                hint = " (does the bucket or database exist? InfluxDB 1.x needs version 1.8 or newer)"
            elif status in (401, 403):
                hint = " (check the token, or the user name and password)"
            raise WriteError(f"HTTP {status}: {_api_message(exc)}{hint}", retry=status not in REFUSED) from None
        except Exception as exc:  # noqa: BLE001  (urllib3 and socket errors: the server cannot be reached)
            raise WriteError(_describe(exc), retry=True) from None

    def close(self) -> None:
        self._client.close()


def _ms_timeout(seconds: float) -> int:
    """influxdb-client takes request timeouts in milliseconds (0 would mean its default)."""
    return max(1, round(seconds * 1000))


_VERSION = re.compile(r"v?(\d+)\.(\d+)")


def too_old(version: str | None) -> bool:
    """True for an InfluxDB 1.x older than 1.8 (no /api/v2/write); unknown versions are given a try."""
    m = _VERSION.match((version or "").strip())
    return m is not None and int(m[1]) == 1 and (int(m[1]), int(m[2])) < MIN_V1


# --------------------------------------------------------------------------------------------------
# The sink


class InfluxSink(Sink):
    """Buffers points from the callbacks; its own task writes them (see the module docstring)."""

    name = "influxdb"

    def __init__(self, config: InfluxConfig | None, sign: OutputSign, *, writer: Writer | None = None,
                 capacity: int = CAPACITY, batch_size: int = BATCH_SIZE, flush_interval: float = FLUSH_INTERVAL,
                 backoff: tuple[float, float] = (BACKOFF_MIN, BACKOFF_MAX), request_timeout: float = REQUEST_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic, log: logging.Logger = _LOG) -> None:
        if writer is None:
            if config is None:
                raise ValueError("InfluxSink needs a config or a writer")
            writer = InfluxWriter(config)
        self.writer = writer
        self.sign = sign
        self.capacity = max(1, capacity)
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self.backoff_min, self.backoff_max = backoff
        self.request_timeout = request_timeout
        self.clock = clock
        self.log = log
        self.buffer: deque[str] = deque()
        # counters (points)
        self.written = 0
        self.dropped = 0  # oldest points dropped because the buffer was full
        self.refused = 0  # points in batches the server refused as invalid
        self.lost_at_shutdown = 0
        self.disabled: str | None = None  # why output is off (a server too old), else None
        self.version: str | None = None
        self._checked = False
        self._unreported_drops = 0
        self._last_drop_report: float | None = None
        self._failing_since: float | None = None
        self._failures = 0
        self._last_failure_report = 0.0
        self._stopping = False
        self._deadline = math.inf
        self._wake: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # --- callbacks (event loop; never block) ---
    def on_sample(self, device: DeviceStatus, sample: Sample, decision: Decision = QUIET) -> None:
        """Every sample is written (the publisher's decision is for the sinks that publish)."""
        line = sample_line(device.alias, sample, device, self.sign)
        lines = [line] if line is not None else []
        lines += cell_lines(device.alias, sample)
        self.add(lines)

    def on_meters(self, device: DeviceStatus, meters: Mapping[str, float]) -> None:
        line = meter_line(device.alias, meters, time.time())
        if line is not None:
            self.add([line])

    def add(self, lines: Iterable[str]) -> None:
        """Queue encoded points; the oldest are dropped (and counted) when the buffer is full."""
        if self.disabled is not None:
            return
        for line in lines:
            if len(self.buffer) >= self.capacity:
                self.buffer.popleft()
                self.dropped += 1
                self._unreported_drops += 1
            self.buffer.append(line)
        if self._unreported_drops:
            self._report_drops()
        if len(self.buffer) >= self.batch_size and self._wake is not None:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self.buffer)

    # --- life cycle ---
    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="influxdb-writer")
        self.log.info("InfluxDB: writing to %s", self.writer.target)

    async def stop(self, timeout: float) -> None:
        """Write what is buffered within ``timeout`` seconds, then close."""
        self._deadline = self.clock() + max(0.0, timeout)
        self._stopping = True
        for event in (self._wake, self._stop_event):
            if event is not None:
                event.set()
        task = self._task
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=max(0.01, timeout))
            if not done:  # a request still under way at the deadline: abandoned (its thread ends by itself)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._report_drops(force=True)
        self.lost_at_shutdown = len(self.buffer)
        if self.lost_at_shutdown and self.disabled is None:
            self.log.warning("InfluxDB: %d point(s) not written at shutdown (the server did not take them "
                             "within %.1f s)", self.lost_at_shutdown, timeout)
        self.buffer.clear()
        self.log.info("InfluxDB: %d point(s) written, %d dropped (buffer full), %d refused by the server",
                      self.written, self.dropped, self.refused)
        await asyncio.to_thread(self._close_writer)

    def _close_writer(self) -> None:
        try:
            self.writer.close()
        except Exception:  # closing must not fail shutdown
            self.log.debug("InfluxDB: closing the client failed", exc_info=True)

    # --- the writer task ---
    async def _run(self) -> None:
        """The writer task: a failure of its own (a bug) is logged and the loop starts over."""
        while True:
            try:
                await self._loop()
                return
            except Exception:
                self.log.exception("InfluxDB writer failed; starting it again in %.0f s", RESTART_PAUSE)
                if self._stop_requested():
                    return
                assert self._stop_event is not None
                await self._wait(self._stop_event, RESTART_PAUSE)

    async def _loop(self) -> None:
        assert self._wake is not None
        assert self._stop_event is not None
        backoff = self.backoff_min
        while not self._stop_requested():
            await self._wait(self._wake, self.flush_interval)
            self._wake.clear()
            if self._stop_requested():
                break
            self._report_drops()
            if not self.buffer or self.disabled is not None:
                continue
            if await self._drain():
                backoff = self.backoff_min
            else:
                await self._wait(self._stop_event, backoff)
                backoff = min(self.backoff_max, backoff * 2)
        await self._final_flush()

    def _stop_requested(self) -> bool:
        return self._stopping

    @staticmethod
    async def _wait(event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await event.wait()

    async def _drain(self) -> bool:
        """Write batches until the buffer is empty. False when the server could not be reached."""
        if not self._checked and not await self._check_server():
            return self.disabled is not None  # a disabled sink needs no retries
        while self.buffer and not self._stop_requested():
            if not await self._write_batch(self.request_timeout):
                return False
        return True

    async def _final_flush(self) -> None:
        while self.buffer and self.disabled is None:
            left = self._deadline - self.clock()
            if left <= 0:
                return
            if not await self._write_batch(min(self.request_timeout, left)):
                await asyncio.sleep(min(SHUTDOWN_RETRY, max(0.0, self._deadline - self.clock())))

    async def _write_batch(self, timeout: float) -> bool:
        """Write the oldest batch. False (batch kept) when the server could not take it now."""
        n = min(self.batch_size, len(self.buffer))
        batch = [self.buffer.popleft() for _ in range(n)]
        try:
            await _in_thread(self.writer.write, batch, timeout)
        except WriteError as exc:
            if exc.retry:
                self._requeue(batch)
                self._note_failure(str(exc))
                return False
            self.refused += n
            self.log.error("InfluxDB refused %d point(s), dropped: %s", n, exc)  # noqa: TRY400  (no traceback)
            return True
        except BaseException:  # cancelled at the shutdown deadline, or a bug: the points are not lost here
            self._requeue(batch)
            raise
        self.written += n
        self._note_success()
        return True

    async def _check_server(self) -> bool:
        """Ask the server's version once before the first write. False: unreachable, or too old."""
        try:
            version = await _in_thread(self.writer.version, self.request_timeout)
        except WriteError as exc:
            self._note_failure(str(exc))
            return False
        self._checked = True
        self.version = version
        if too_old(version):
            self.disabled = (f"the server at {self.writer.target} is InfluxDB {version}; batmon writes through "
                             "/api/v2/write, which InfluxDB 1.x has from version 1.8 on: upgrade the server to "
                             "1.8 or newer (or use InfluxDB 2 or 3)")
            self.log.error("InfluxDB output is off: %s", self.disabled)
            self.buffer.clear()
            return False
        self.log.info("InfluxDB %s reachable at %s", version or "(version not reported)", self.writer.target)
        return True

    def _requeue(self, batch: list[str]) -> None:
        self.buffer.extendleft(reversed(batch))
        excess = len(self.buffer) - self.capacity
        for _ in range(max(0, excess)):
            self.buffer.popleft()
        if excess > 0:
            self.dropped += excess
            self._unreported_drops += excess
            self._report_drops()

    def _note_failure(self, reason: str) -> None:
        now = self.clock()
        self._failures += 1
        if self._failing_since is None:
            self._failing_since = now
            self._last_failure_report = now
            self.log.warning("InfluxDB write to %s failed: %s; keeping the points and retrying (buffer %d/%d)",
                             self.writer.target, reason, len(self.buffer), self.capacity)
        elif now - self._last_failure_report >= REPORT_INTERVAL:
            self._last_failure_report = now
            self.log.warning("InfluxDB still unreachable for %.0f s (%d failed attempts): %s (buffer %d/%d)",
                             now - self._failing_since, self._failures, reason, len(self.buffer), self.capacity)

    def _note_success(self) -> None:
        if self._failing_since is not None:
            self.log.info("InfluxDB writes succeed again after %.0f s", self.clock() - self._failing_since)
        self._failing_since = None
        self._failures = 0

    def _report_drops(self, *, force: bool = False) -> None:
        if not self._unreported_drops:
            return
        now = self.clock()
        if not force and self._last_drop_report is not None and now - self._last_drop_report < REPORT_INTERVAL:
            return
        self._last_drop_report = now
        self.log.warning("InfluxDB buffer full (%d points): dropped the %d oldest point(s) since the last report "
                         "(%d in all)", self.capacity, self._unreported_drops, self.dropped)
        self._unreported_drops = 0


async def _in_thread[T](fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call in a daemon thread of its own.

    Not the loop's default executor: a request that hangs past shutdown must neither occupy a shared
    worker nor hold up the interpreter's exit (executor threads are joined at exit, daemon threads not).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def work() -> None:
        try:
            outcome: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001  (handed to the awaiting task, which decides)
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed while the request ran
            loop.call_soon_threadsafe(deliver, *outcome)

    threading.Thread(target=work, name="influxdb-io", daemon=True).start()
    return await future


def influx_sink(context: SinkContext) -> InfluxSink | None:
    """The InfluxDB sink when the options name a server (a :data:`~bmslib.sinks.base.SinkFactory`)."""
    return InfluxSink(context.config.influxdb, context.sign) if context.config.influxdb is not None else None

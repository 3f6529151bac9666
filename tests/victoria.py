"""A real VictoriaMetrics server for the InfluxDB tests.

:class:`Victoria` starts Debian's ``victoria-metrics`` on a free loopback port with a storage directory
of its own. It takes InfluxDB line protocol on ``/api/v2/write`` (and ``/write``); what it stored can
be read back with :meth:`Victoria.export` (``/api/v1/export``: one series per measurement, field and
tag set, named ``<measurement>_<field>``). It can be stopped and started again on the same port and
storage, to play a database that goes away and comes back.

Fixture: ``victoria`` (import ``victoria_fixture`` into a test module).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BINARY_PATHS = ("/usr/bin/victoria-metrics",)


def victoria_binary() -> str:
    for path in BINARY_PATHS:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("victoria-metrics")
    if found is None:
        pytest.fail("victoria-metrics is not installed (scripts/test installs it: apt-get install victoria-metrics)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Series:
    """One exported series: ``name`` is ``<measurement>_<field>``, ``labels`` the tags."""

    name: str
    labels: dict[str, str]
    values: list[float]
    timestamps: list[int]  # [ms]


class Victoria:
    """One victoria-metrics process on 127.0.0.1:<port>."""

    host = "127.0.0.1"

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.storage = self.dir / "storage"
        self.port = free_port()
        self.log = self.dir / "victoria-metrics.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        assert not self.running, "already running"
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [victoria_binary(), f"-storageDataPath={self.storage}", f"-httpListenAddr={self.host}:{self.port}",
             "-retentionPeriod=100y", "-search.latencyOffset=0s", "-loggerLevel=WARN"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"victoria-metrics exited with {self.proc.returncode}: {self.log_text()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/health", timeout=0.5) as r:
                if r.status == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"victoria-metrics did not answer on {self.port}: {self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM and wait: the port refuses connections afterwards."""
        if self.running:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def export(self, match: str = '{__name__=~".+"}') -> list[Series]:
        """Every stored series matching the selector (flushed first, so new points are visible)."""
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=5).close()
        query = urllib.parse.urlencode({"match[]": match, "start": "0", "end": str(int(time.time()) + 86_400)})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as r:
            text = r.read().decode()
        out = []
        for line in text.splitlines():
            if not line.strip():
                continue
            doc = json.loads(line)
            labels = dict(doc["metric"])
            name = labels.pop("__name__")
            out.append(Series(name, labels, [float(v) for v in doc["values"]], [int(t) for t in doc["timestamps"]]))
        return out

    def wait_for(self, predicate: Callable[[list[Series]], bool], *, match: str = '{__name__=~".+"}',
                 timeout: float = 10.0) -> list[Series]:
        """Export until ``predicate`` holds (the server shows new points about a second after writing)."""
        deadline = time.monotonic() + timeout
        series: list[Series] = []
        while time.monotonic() < deadline:
            series = self.export(match)
            if predicate(series):
                return series
            time.sleep(0.3)
        names = sorted({s.name for s in series})
        raise AssertionError(f"condition not met within {timeout} s; series: {names[:40]}")

    def options(self, **extra: object) -> dict[str, object]:
        """batmon options that point InfluxDB output at this server (as an InfluxDB 2 with token/org/bucket)."""
        opts: dict[str, object] = {"influxdb_url": self.url, "influxdb_token": "test-token",
                                   "influxdb_org": "home", "influxdb_bucket": "batmon"}
        opts.update(extra)
        return opts


def series_by(series: list[Series], name: str, **labels: str) -> list[Series]:
    return [s for s in series if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


@pytest.fixture(name="victoria")
def victoria_fixture(tmp_path: Path) -> Iterator[Victoria]:
    server = Victoria(tmp_path / "victoria")
    server.start()
    try:
        yield server
    finally:
        server.stop()

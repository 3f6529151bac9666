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
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import ServerProcess, find_binary

BINARY_PATHS = ("/usr/bin/victoria-metrics",)


def victoria_binary() -> str:
    return find_binary("victoria-metrics", BINARY_PATHS)


@dataclass(frozen=True)
class Series:
    """One exported series: ``name`` is ``<measurement>_<field>``, ``labels`` the tags."""

    name: str
    labels: dict[str, str]
    values: list[float]
    timestamps: list[int]  # [ms]


class Victoria(ServerProcess):
    """One victoria-metrics process on 127.0.0.1:<port>."""

    name = "victoria-metrics"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "victoria-metrics.log")
        self.storage = self.dir / "storage"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        self.spawn([victoria_binary(), f"-storageDataPath={self.storage}", f"-httpListenAddr={self.host}:{self.port}",
                    "-retentionPeriod=100y", "-search.latencyOffset=0s", "-loggerLevel=WARN"], self._healthy, timeout)

    def _healthy(self) -> bool:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/health", timeout=0.5) as r:
            return bool(r.status == 200)
        return False

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

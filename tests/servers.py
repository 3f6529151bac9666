"""What the tests' real servers (mosquitto, victoria-metrics) share: a free port, the Debian binary,
and a process with a log file that is started until it answers and stopped or killed on demand."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(name: str, paths: Sequence[str]) -> str:
    """The Debian package's binary (scripts/test installs the package when it is missing)."""
    for path in paths:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (scripts/test installs it: apt-get install {name})")
    return found


class ServerProcess:
    """A server on 127.0.0.1:<port> whose output goes to ``log``; it can be stopped and started again."""

    host = "127.0.0.1"
    name = "server"

    def __init__(self, directory: Path, log_name: str) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = self.dir / log_name
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self, argv: Sequence[str], ready: Callable[[], bool], timeout: float) -> None:
        """Start ``argv`` and wait until ``ready()`` (or fail with the end of the log)."""
        assert not self.running, "already running"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(list(argv), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_text()}")
            if ready():
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not answer on {self.port}: {self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL after ``grace`` seconds): the port refuses connections afterwards."""
        if self.running:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients (they see the connection drop)."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

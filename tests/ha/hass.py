"""A real Home Assistant for the end-to-end test: configuration, start, onboarding and REST calls.

Home Assistant runs from its own virtualenv (``.havenv``, made by scripts/test-ha) as a subprocess
with a fresh configuration directory (recorder on a SQLite file there, the energy integration, and
the test hooks in custom_components/batmon_e2e); everything here talks to it over HTTP and its
websocket API with the standard library, so the test itself runs in batmon's own virtualenv.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HAVENV = Path(os.environ.get("BATMON_HAVENV", ROOT / ".havenv"))
HOOKS = Path(__file__).resolve().parent / "custom_components" / "batmon_e2e"  # see its docstring

CONFIGURATION = """\
homeassistant:
  name: Test
  latitude: 52.0
  longitude: 5.0
  elevation: 0
  unit_system: metric
  time_zone: UTC
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
recorder:
  db_url: sqlite:///{db}
  commit_interval: 1
energy:
batmon_e2e:
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: info
"""


class HomeAssistant:
    """One Home Assistant process on 127.0.0.1:<port> with its config in ``directory``."""

    def __init__(self, directory: Path, port: int) -> None:
        self.dir = directory
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.token: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "configuration.yaml").write_text(CONFIGURATION.format(port=port, db=self.dir / "recorder.db"))
        shutil.copytree(HOOKS, self.dir / "custom_components" / HOOKS.name,
                        ignore=shutil.ignore_patterns("__pycache__"))
        self.log = self.dir / "ha.log"

    # --- process ---
    def start(self, timeout: float = 120.0) -> None:
        hass = HAVENV / "bin" / "hass"
        out = (self.dir / "stdout.log").open("wb")
        self.proc = subprocess.Popen([str(hass), "-c", str(self.dir), "--log-file", str(self.log), "--skip-pip"],
                                     stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Home Assistant exited with {self.proc.returncode}: {self.tail()}")
            try:
                self.request("GET", "/api/", auth=False)
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"Home Assistant did not answer within {timeout} s: {self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    # --- HTTP ---
    def request(self, method: str, path: str, body: Any = None, *, auth: bool = True, form: bool = False,
                timeout: float = 30.0) -> Any:
        headers = {}
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        if auth:
            assert self.token is not None, "onboard() first"
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode()
        return json.loads(text) if text else None

    def onboard(self) -> None:
        """Create the owner user through onboarding and get an access token (no browser)."""
        client_id = f"{self.base}/"
        user = self.request("POST", "/api/onboarding/users", {
            "client_id": client_id, "name": "Test", "username": "test", "password": "test-password-1",
            "language": "en"}, auth=False)
        token = self.request("POST", "/auth/token", {
            "grant_type": "authorization_code", "code": user["auth_code"], "client_id": client_id},
            auth=False, form=True)
        self.token = token["access_token"]

    def setup_mqtt(self, broker_host: str, broker_port: int) -> None:
        flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt",
                                                                       "show_advanced_options": False})
        result = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                              {"broker": broker_host, "port": broker_port})
        if result.get("type") != "create_entry":
            raise RuntimeError(f"MQTT config flow did not finish: {result}")

    # --- states and services ---
    def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}

    def state(self, entity_id: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.request("GET", f"/api/states/{entity_id}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return result

    def call(self, domain: str, service: str, **data: Any) -> Any:
        return self.request("POST", f"/api/services/{domain}/{service}", data)

    def websocket(self) -> Websocket:
        assert self.token is not None, "onboard() first"
        return Websocket("127.0.0.1", self.port, self.token)


class Websocket:
    """A minimal client for Home Assistant's websocket API (RFC 6455 text frames, standard library only):
    authenticates with the access token, then ``command()`` sends one command and returns its result."""

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, host: str, port: int, token: str, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.next_id = 1
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET /api/websocket HTTP/1.1\r\n"
                          + f"Host: {host}:{port}\r\n".encode()
                          + b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                          + b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1:2] != ["101"]:
            raise ConnectionError(f"websocket upgrade refused: {lines[0]}")
        accept = base64.b64encode(hashlib.sha1(key + self.GUID).digest()).decode()
        if f"sec-websocket-accept: {accept.lower()}" not in [line.lower() for line in lines]:
            raise ConnectionError(f"bad websocket handshake: {lines}")
        if (hello := self.receive())["type"] != "auth_required":
            raise ConnectionError(f"unexpected greeting {hello}")
        self.send({"type": "auth", "access_token": token})
        if (answer := self.receive())["type"] != "auth_ok":
            raise ConnectionError(f"websocket authentication failed: {answer}")

    def __enter__(self) -> Websocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()

    def command(self, type_: str, **data: Any) -> Any:
        """Send one command; return its result, raise RuntimeError with Home Assistant's error if it failed."""
        msg_id = self.next_id
        self.next_id += 1
        self.send({"id": msg_id, "type": type_, **data})
        while True:
            msg = self.receive()
            if msg.get("id") == msg_id and msg.get("type") == "result":
                if not msg.get("success"):
                    raise RuntimeError(f"{type_} failed: {msg.get('error')}")
                return msg.get("result")

    def send(self, message: dict[str, Any]) -> None:
        self._send_frame(0x1, json.dumps(message).encode())

    def receive(self) -> dict[str, Any]:
        payload = b""
        while True:
            fin, opcode, data = self._read_frame()
            if opcode == 0x9:  # ping
                self._send_frame(0xA, data)
                continue
            if opcode == 0xA:  # pong
                continue
            if opcode == 0x8:
                raise ConnectionError("Home Assistant closed the websocket")
            payload += data
            if fin:
                result: dict[str, Any] = json.loads(payload)
                return result

    # --- framing ---
    def _send_frame(self, opcode: int, data: bytes) -> None:
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)  # a client masks every frame
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("websocket closed by Home Assistant")
        self.buf += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _read_frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._take(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._take(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._take(8))
        mask = self._take(4) if b1 & 0x80 else b""
        data = self._take(n)
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return bool(b0 & 0x80), b0 & 0x0F, data

"""A real Home Assistant for the end-to-end test: configuration, start, onboarding and REST calls.

Home Assistant runs from its own virtualenv (``.havenv``, made by scripts/test-ha) as a subprocess
with a fresh configuration directory; everything here talks to it over HTTP with the standard
library, so the test itself runs in batmon's own virtualenv.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HAVENV = Path(os.environ.get("BATMON_HAVENV", ROOT / ".havenv"))

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
        (self.dir / "configuration.yaml").write_text(CONFIGURATION.format(port=port))
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

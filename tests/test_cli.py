"""The command line as a user runs it: the daemon, `scan` and `decode`, as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import case_id, chunks_of, load_vectors

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


JBD_FRAMES = [c for c in load_vectors("jbd") if ("frame" in c or "notifications" in c)
              and c["kind"] != "command (host->BMS)" and c["frame_type"] != "error_counts(0xAA)"]


@pytest.mark.parametrize("case", JBD_FRAMES, ids=case_id)
def test_decode_reproduces_jbd_vectors(case: dict) -> None:
    proc = run("decode", "--type", "jbd", *(c.hex() for c in chunks_of(case)))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    exp = case["expected"]
    assert out["frames"] == 1 and out["rejected"] == 0
    if "voltage" in exp:
        assert out["voltage"] == pytest.approx(exp["voltage"])
    if "current" in exp:
        assert out["current"] == pytest.approx(-exp["current"])  # decode prints the model sign: + = discharging
    if "soc" in exp:
        assert out["soc"] == exp["soc"]
    if "temperatures" in exp:
        assert out["temperatures"] == pytest.approx(exp["temperatures"], abs=0.05)
    if "cell_voltages" in exp:
        assert out["cell_voltages"] == pytest.approx(exp["cell_voltages"])
    if "model" in exp:
        assert out["device_info"]["model"] == exp["model"]
    for absent in ("mos_temperature", "soh", "balance_current"):
        assert out[absent] is None


def test_decode_of_a_whole_session_merges_frames() -> None:
    basic, cells = JBD_FRAMES[0], JBD_FRAMES[1]
    proc = run("decode", "--type", "jbd", *(c.hex() for c in chunks_of(basic) + chunks_of(cells)))
    out = json.loads(proc.stdout)
    assert out["frames"] == 2
    assert out["voltage"] == 15.6 and len(out["cell_voltages"]) == 4
    assert out["power"] == 0.0 and out["switches"] == {"charge": True, "discharge": True}


def test_decode_reports_rejected_frames_without_a_traceback() -> None:
    proc = run("decode", "--type", "jbd", "dd0400080f450f3d0f370f3d000077")
    assert proc.returncode == 0
    out = json.loads(proc.stdout)
    assert out["frames"] == 0 and out["rejected"] >= 1 and "checksum mismatch" in out["errors"][0]


def test_decode_of_a_truncated_frame_says_where_it_stopped_and_exits_1() -> None:
    proc = run("decode", "--type", "jbd", "dd03001d", "0618")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == ("jbd: no complete frame in 6 bytes: a frame starting at byte 0 (dd03001d0618) is cut "
                           "off, the input ends 6 bytes into it\n")


def test_decode_of_junk_then_a_truncated_frame_counts_the_junk() -> None:
    basic = JBD_FRAMES[0]
    whole = b"".join(chunks_of(basic))
    proc = run("decode", "--type", "jbd", "0011", whole.hex(), whole[:5].hex())
    assert proc.returncode == 0, proc.stderr  # a complete frame came: its values are printed
    assert json.loads(proc.stdout)["frames"] == 1
    proc = run("decode", "--type", "jbd", "0011", whole[:5].hex())
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("jbd: no complete frame in 7 bytes: a frame starting at byte 2 (")
    assert proc.stderr.endswith(") is cut off, the input ends 5 bytes into it; 1 rejected before it\n")


def test_decode_unknown_type_is_one_line_and_status_2() -> None:
    proc = run("decode", "--type", "jkk", "00")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "'jkk' is not a known type" in proc.stderr


def test_scan_lists_simulated_devices_with_their_type() -> None:
    proc = run("scan", "--demo", "--timeout", "1")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if "JBD-jbd1" in ln]
    assert len(lines) == 1 and lines[0].rstrip().endswith("jbd")


def test_bad_config_is_refused_with_one_line_per_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "options.yaml"
    cfg.write_text("devices:\n"
                   "  - {address: 'sim:a', type: jbd, alias: a}\n"
                   "  - {address: 'AA:BB:CC:DD:EE', type: jkk, alias: a}\n"
                   "sample_period: 0\n")
    proc = run("--config", str(cfg))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert any(ln.startswith("devices[1].type: 'jkk' is not a known type (") for ln in lines)
    assert any(ln.startswith("devices[1].address: 'AA:BB:CC:DD:EE'") for ln in lines)
    assert any(ln.startswith("devices[1].alias: 'a' is already used") for ln in lines)
    assert "sample_period: must be > 0, got 0" in lines


def test_a_bad_simulator_knob_is_one_line_and_status_2(tmp_path: Path) -> None:
    cfg = tmp_path / "options.yaml"
    cfg.write_text("devices:\n  - {address: 'sim:b3?latency=0.3&drop_after=five', type: jbd}\n")
    proc = run("--config", str(cfg))
    assert proc.returncode == 2
    assert proc.stderr == ("devices[0].address: 'sim:b3?latency=0.3&drop_after=five': drop_after=five: must be an "
                           "integer\n")


def test_missing_config_is_one_line(tmp_path: Path) -> None:
    proc = run(cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no configuration file found" in proc.stderr


def test_demo_prints_samples_every_second_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--demo", "--state-dir", str(tmp_path)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        time.sleep(5)
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - start < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    for alias in ("demo_jbd", "demo_dummy"):
        lines = [ln for ln in out.splitlines() if ln.startswith(alias)]
        assert 3 <= len(lines) <= 7, (alias, out)
        assert "V " in lines[-1] and "SoC" in lines[-1]
    assert "Traceback" not in err


def test_missing_bluetooth_stack_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "options.yaml"
    cfg.write_text("devices: [{address: 'AA:BB:CC:DD:EE:01', type: jbd, alias: real1}]\nwatchdog: false\n")
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-such-socket"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(cfg)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    lines = [ln for ln in err.splitlines() if "Bluetooth is not available" in ln]
    assert len(lines) == 1 and "D-Bus" in lines[0]
    assert "Traceback" not in err


def test_scan_without_bluetooth_stack_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-such-socket"}
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "scan", "--timeout", "1"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=30, check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("scan failed: ")


def test_state_dir_is_created_and_an_impossible_one_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "options.yaml"
    cfg.write_text("devices: []\n")
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run("--config", str(cfg), "--state-dir", str(blocker / "state"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("--state-dir: cannot create") and proc.stderr.count("\n") == 1
    target = tmp_path / "new" / "state"
    daemon = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(cfg), "--state-dir",
                               str(target)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=10)
    assert daemon.returncode == 0 and target.is_dir()
    assert "no devices configured" in err


def test_adapter_given_by_mac_is_resolved_or_reported_with_the_adapters_seen(tmp_path: Path) -> None:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-such-socket"}
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "scan", "--adapter", "aa:bb:cc:dd:ee:ff",
                           "--timeout", "1"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=30,
                          check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "no Bluetooth adapter with address AA:BB:CC:DD:EE:FF (adapters:" in proc.stderr


def test_demo_keeps_its_state_apart_from_a_real_meter_file(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--demo"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert (tmp_path / "demo-state" / "bms_meter_states.json").is_file()
    assert not (tmp_path / "bms_meter_states.json").exists()

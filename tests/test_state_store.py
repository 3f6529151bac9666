"""State files: atomic and durable writes, corrupt files set aside with what was lost, kept entries."""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmslib.meters import INCREASING, METER_FILE, METER_NAMES, MeterBook
from bmslib.state_store import StateFile
from tests.helpers import fuzz_settings

LOG = logging.getLogger("test.state")


def state_file(tmp_path: Path, name: str = "state.json") -> StateFile:
    return StateFile(tmp_path / name, log=LOG, clock=lambda: 1_700_000_000.0)


def test_save_then_load_round_trips_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    f = state_file(tmp_path)
    assert f.load() is None  # absent: nothing yet, nothing logged as lost
    doc = {"a": {"x": {"reading": 1.5}}, "b": {}}
    assert f.save(doc)
    assert f.load() == doc
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert json.loads((tmp_path / "state.json").read_text()) == doc


def test_write_order_is_temp_fsync_rename_directory_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_fsync, real_replace, real_open = os.fsync, os.replace, os.open
    opened: dict[int, str] = {}

    def spy_open(path: Any, flags: int, *args: Any) -> int:
        fd = real_open(path, flags, *args)
        opened[fd] = Path(path).name or str(path)
        return fd

    def spy_fsync(fd: int) -> None:
        calls.append(f"fsync {opened.get(fd, '?')}")
        real_fsync(fd)

    def spy_replace(src: Any, dst: Any) -> None:
        calls.append(f"replace {Path(src).name} -> {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    assert state_file(tmp_path).save({"a": 1})
    tmp = f"state.json.{os.getpid()}.tmp"
    assert calls == [f"fsync {tmp}", f"replace {tmp} -> state.json", f"fsync {tmp_path.name}"]


def test_a_failed_write_keeps_the_old_file_and_logs_each_new_error_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    f = state_file(tmp_path)
    assert f.save({"old": True})

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    assert not f.save({"new": True})
    assert not f.save({"new": True})
    monkeypatch.undo()
    assert f.load() == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # the temp file is gone
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left on device" in errors[0]
    assert f.save({"new": True})
    assert any("written again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("content", "why"), [
    (b'{\n  "battery1": {\n    "total_charge": {\n      "reading": 12', "is not valid JSON"),  # cut short
    (b"", "is empty"),
    (b"\x00\x00\x00\x00", "is not valid JSON"),  # a block of zeros after a power cut
    (b"[1, 2]", "holds list, not a JSON object"),
    (b"\xff\xfe{}", "is not valid JSON"),
])
def test_a_corrupt_file_is_moved_aside_with_one_line_saying_what_was_lost(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, why: str) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    f = state_file(tmp_path)
    assert f.load() is None
    aside = tmp_path / "state.json.corrupt-20231114T221320Z"
    assert aside.read_bytes() == content and not path.exists()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert why in errors[0] and aside.name in errors[0]
    assert f"lost: {len(content)} bytes" in errors[0]
    if content.startswith(b"{\n"):
        assert "battery1" in errors[0]  # which entries were in the lost file
    assert f.save({"fresh": 1}) and f.load() == {"fresh": 1}
    assert aside.read_bytes() == content  # never overwritten


def test_a_second_corrupt_file_in_the_same_second_gets_its_own_name(tmp_path: Path) -> None:
    f = state_file(tmp_path)
    for junk in (b"x", b"y"):
        (tmp_path / "state.json").write_bytes(junk)
        assert f.load() is None
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["state.json.corrupt-20231114T221320Z", "state.json.corrupt-20231114T221320Z-1"]


def test_an_unreadable_file_that_cannot_be_moved_is_never_overwritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.json"
    path.mkdir()  # reading it fails (IsADirectoryError)

    def refuse(src: Any, dst: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    f = state_file(tmp_path)
    assert f.load() is None and f.blocked
    assert not f.save({"a": 1})
    monkeypatch.undo()
    assert path.is_dir()
    assert "will not be overwritten" in caplog.text


def test_temporary_files_left_by_a_crash_are_removed_at_load(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"a": 1}')
    (tmp_path / "state.json.4242.tmp").write_text('{"a": ')  # ours, cut short
    (tmp_path / "state.json.x7f3qa.tmp").write_text("{")  # the original add-on's naming
    (tmp_path / "other.json.1.tmp").write_text("{")  # not ours
    assert state_file(tmp_path).load() == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json.1.tmp", "state.json"]


# --- the meter book on top of it ---------------------------------------------------------------------------

def book(tmp_path: Path, *aliases: str) -> MeterBook:
    b = MeterBook(tmp_path / METER_FILE, log=LOG)
    for alias in aliases:
        b.add_device(alias, 600.0)
    return b


def test_the_book_is_never_saved_before_it_was_loaded(tmp_path: Path) -> None:
    (tmp_path / METER_FILE).write_text('{"a": {"total_cycles": {"reading": 3.0}}}')
    b = book(tmp_path, "a")
    assert not b.save()
    b.load()
    assert b.save()
    assert json.loads((tmp_path / METER_FILE).read_text())["a"]["total_cycles"] == {"reading": 3.0}


def test_unusable_entries_are_reported_and_the_file_kept_while_good_ones_load(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    original = {
        "a": {"total_energy_charge": {"reading": "12 kWh"}, "total_energy_discharge": {"reading": 4.0},
              "total_cycles": {"reading": -1.0}, "future_meter": {"reading": 1}},
        "b": ["not", "a", "mapping"],
        "gone": {"total_energy_charge": {"reading": "whatever"}},  # not configured: kept, not judged
    }
    (tmp_path / METER_FILE).write_text(json.dumps(original))
    b = book(tmp_path, "a", "b")
    b.load()
    assert b.readings("a")["total_energy_discharge"] == 4.0
    assert b.readings("a")["total_energy_charge"] == 0.0 and b.readings("a")["total_cycles"] == 0.0
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(lines) == 1
    for part in ("a.total_energy_charge (not a number", "a.total_cycles (negative", "b: every meter"):
        assert part in lines[0]
    assert "gone" not in lines[0]
    kept = list(tmp_path.glob(f"{METER_FILE}.corrupt-*"))
    assert len(kept) == 1 and json.loads(kept[0].read_text()) == original
    assert b.save()
    saved = json.loads((tmp_path / METER_FILE).read_text())
    assert saved["gone"] == original["gone"] and saved["a"]["future_meter"] == {"reading": 1}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.just(10**400) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["a", "b", "reading", *METER_NAMES]), children, max_size=6),
    max_leaves=30)


@fuzz_settings
@given(st.one_of(_JSON, st.dictionaries(st.sampled_from(["a", "b", "c"]), _JSON, max_size=3)))
def test_any_json_in_the_meter_file_loads_without_error_and_gives_sane_totals(doc: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / METER_FILE
        path.write_text(json.dumps(doc))
        b = MeterBook(path, log=logging.getLogger("test.fuzz"))
        b.add_device("a", 600.0)
        b.add_device("b", 600.0)
        b.load()
        for alias in ("a", "b"):
            readings = b.readings(alias)
            assert all(math.isfinite(v) for v in readings.values())
            assert all(readings[name] >= 0 for name in INCREASING)
        assert b.save()
        saved = json.loads(path.read_text())
        assert isinstance(saved, dict) and {"a", "b"} <= set(saved)
        if isinstance(doc, dict) and "c" in doc:
            assert json.dumps(saved["c"]) == json.dumps(doc["c"])  # kept as it was (NaN included)

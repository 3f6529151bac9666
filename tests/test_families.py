"""Every BMS family follows the recipe of doc/Architecture.md ("Adding a BMS family")."""

from __future__ import annotations

from pathlib import Path

import pytest

from bmslib.family import Family
from bmslib.registry import device_types, families

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = families()


def test_the_registry_finds_every_family_folder() -> None:
    folders = {p.name for p in (ROOT / "bmslib" / "bms").iterdir() if (p / "__init__.py").is_file()}
    assert {f.name for f in FAMILIES} == folders
    assert [t.name for f in FAMILIES for t in f.types] == list(device_types())


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_family_has_its_files(family: Family) -> None:
    folder = ROOT / "bmslib" / "bms" / family.name
    if any(t.codec is not None or t.decoder is not None for t in family.types):
        assert (folder / "protocol.py").is_file() or (folder / "protocol" / "__init__.py").is_file()
        assert (ROOT / "tests" / "vectors" / f"{family.name}.json").is_file()
        assert (ROOT / "tests" / "bms" / family.name / "test_protocol.py").is_file()
        assert (ROOT / "tests" / "bms" / family.name / "test_driver.py").is_file()
    if any(t.emulator is not None for t in family.types):
        # one emulator module, or (a family of many types, the bridge) one module per type under emulators/
        assert (folder / "emulator.py").is_file() or (folder / "emulators" / "__init__.py").is_file()
        for t in family.types:
            assert t.emulator is None or t.emulator.__module__ in (
                f"bmslib.bms.{family.name}.emulator", f"bmslib.bms.{family.name}.emulators.{t.name}")
    if family.doc_page is not None:
        assert (ROOT / "doc" / "bms" / f"{family.doc_page}.md").is_file()
    for t in family.types:
        assert t.doc is not None, f"{t.name}: no row for doc/BMSes.md"

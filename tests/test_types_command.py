"""``main.py types``: every device type as JSON, the same list the add-on's schema offers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bmslib.config.original_types import RENAMED, dropin_names
from bmslib.config.settings import AUTO_TYPE
from bmslib.derived_files import bridged_plugins
from bmslib.registry import device_types, families

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def listed() -> list[dict[str, Any]]:
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "types"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert isinstance(document, list)
    return document


def schema_types() -> set[str]:
    manifest = yaml.safe_load((ROOT / "config.yaml").read_text())
    text = manifest["schema"]["devices"][0]["type"]
    return set(text.removeprefix("list(").removesuffix("?").removesuffix(")").split("|"))


def test_every_type_is_listed_with_what_it_is(listed: list[dict[str, Any]]) -> None:
    types = device_types()
    by_name = {entry["name"]: entry for entry in listed}
    assert len(by_name) == len(listed)
    for entry in listed:
        assert {"name", "family", "via", "devices", "reads", "switches", "accepts_pin", "accepts_key"} <= set(entry)
        assert entry["via"] in ("native", "aiobmsble") and entry["devices"].strip()
        assert entry["doc"] is None or (ROOT / entry["doc"]).is_file(), entry
        if entry["via"] == "aiobmsble":  # the bridge lists what each plugin reads
            assert entry["reads"] and all(r.strip() for r in entry["reads"]), entry
        assert entry["switches"] == sorted(entry["switches"])
    for name, t in types.items():
        assert by_name[name]["via"] == t.via and set(by_name[name]["switches"]) == t.switches
        assert (by_name[name]["accepts_pin"], by_name[name]["accepts_key"]) == (t.accepts_pin, t.accepts_key)
    assert by_name["jbd"]["family"] == "jbd" and by_name["jbd"]["via"] == "native"
    assert {"charge", "discharge"} <= set(by_name["jbd"]["switches"])


def test_config_yaml_offers_every_listed_type_and_lists_no_other(listed: list[dict[str, Any]]) -> None:
    # less batmon-ha's names that the loader reads as batmon's types, and auto (detected)
    dropin = dropin_names(bridged_plugins(families()))
    offered = schema_types() - set(RENAMED) - set(dropin) - {AUTO_TYPE}
    assert offered == {entry["name"] for entry in listed}


def test_at_least_45_types_are_read_through_aiobmsble(listed: list[dict[str, Any]]) -> None:
    bridged = sorted(entry["name"] for entry in listed if entry["via"] == "aiobmsble")
    print(f"\n{len(bridged)} types through aiobmsble: {', '.join(bridged)}")
    assert len(bridged) >= 45
    assert set(bridged) <= schema_types()

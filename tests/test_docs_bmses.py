"""doc/BMSes.md names every device type the registry knows, and links pages that exist."""

from __future__ import annotations

import re
from pathlib import Path

from bmslib.config import GROUP_TYPES
from bmslib.registry import device_types

DOC = Path(__file__).resolve().parent.parent / "doc"


def test_every_type_has_a_row_and_every_link_resolves() -> None:
    text = (DOC / "BMSes.md").read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`([a-z0-9_]+)`", row.split("|")[1])}
    assert named == set(device_types()) | set(GROUP_TYPES)
    for link in re.findall(r"\]\(([^)]+\.md)\)", text):
        assert (DOC / link).is_file(), link

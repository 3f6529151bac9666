"""The files derived from the families' metadata are up to date, and the generator rewrites only its parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bmslib import derived_files
from bmslib.registry import families


def test_no_derived_file_is_stale() -> None:
    stale = derived_files.stale()
    assert not stale, f"stale derived files {stale}: run scripts/generate ({derived_files.COMMAND})"


def test_a_region_is_rewritten_between_its_markers_only(tmp_path: Path) -> None:
    fams = families()
    (region,) = [r for r in derived_files.REGIONS if r.path == "config.yaml"]
    begin, end = region.markers()
    text = f"schema:\n  devices:\n    - address: str\n      {begin}      type: list(old)\n      {end}\n      alias: str?\n"
    new = derived_files.rewrite(text, region, fams)
    assert new.startswith(f"schema:\n  devices:\n    - address: str\n      {begin}      type: list(abc|abc_aiobmsble|abc_ble|")
    assert "|ant|" in new and "|seplos|" in new and "|victron|" in new
    assert new.endswith(f"|x123smart_ble)\n      {end}\n      alias: str?\n")
    assert derived_files.rewrite(new, region, fams) == new
    with pytest.raises(ValueError, match="markers"):
        derived_files.rewrite("type: list(old)\n", region, fams)


def test_an_inline_region_keeps_the_text_around_it() -> None:
    fams = families()
    (region,) = [r for r in derived_files.REGIONS if r.path == "README.md" and r.name == "types"]
    begin, end = region.markers()
    new = derived_files.rewrite(f"| type | {begin}old{end} (see doc) |\n", region, fams)
    assert new == f"| type | {begin}{derived_files.readme_types(fams, '')}{end} (see doc) |\n"

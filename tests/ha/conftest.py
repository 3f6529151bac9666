"""The Home Assistant end-to-end test runs only when selected (``-m ha``, as scripts/test-ha does)."""

from __future__ import annotations

import re

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expr = str(config.getoption("markexpr") or "")
    if re.fullmatch(r"\s*ha\s*", expr):
        return
    skip = pytest.mark.skip(reason="Home Assistant end-to-end test: run scripts/test-ha")
    for item in items:
        if item.get_closest_marker("ha") is not None:
            item.add_marker(skip)

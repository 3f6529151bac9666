"""Shared fixtures. Fuzz runs are unseeded; reproduce a failure with ``pytest --hypothesis-seed=N``
(hypothesis prints the seed and a ``@reproduce_failure`` line when a property fails)."""

import re
from collections.abc import AsyncIterator

import pytest

from bmslib.sim.radio import SimRadio


@pytest.fixture
async def radio() -> AsyncIterator[SimRadio]:
    """A simulated radio for emulators; its emulators are closed after the test."""
    r = SimRadio()
    yield r
    await r.aclose()


#: suites that run only when selected alone (``-m ha`` as scripts/test-ha does, ``-m soak`` as scripts/soak does)
OPT_IN = {
    "ha": "Home Assistant end-to-end test: run scripts/test-ha",
    "soak": "soak test under faults: run scripts/soak [--minutes N]",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expr = str(config.getoption("markexpr") or "")
    for marker, reason in OPT_IN.items():
        if re.fullmatch(rf"\s*{marker}\s*", expr):
            continue
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if item.get_closest_marker(marker) is not None:
                item.add_marker(skip)

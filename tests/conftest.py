"""Shared fixtures. Fuzz runs are unseeded; reproduce a failure with ``pytest --hypothesis-seed=N``
(hypothesis prints the seed and a ``@reproduce_failure`` line when a property fails)."""

from collections.abc import AsyncIterator

import pytest

from bmslib.sim.radio import SimRadio


@pytest.fixture
async def radio() -> AsyncIterator[SimRadio]:
    """A simulated radio for emulators; its emulators are closed after the test."""
    r = SimRadio()
    yield r
    await r.aclose()

"""Small helpers shared by the tests (no mocks of project code live here)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import settings

VECTORS = Path(__file__).parent / "vectors"


def load_vectors(bms: str) -> list[dict[str, Any]]:
    """The cases of ``tests/vectors/<bms>.json`` (copied from the shared captures, with provenance)."""
    return json.loads((VECTORS / f"{bms}.json").read_text())


def chunks_of(case: dict[str, Any]) -> list[bytes]:
    """The notification chunks of a vector case (``notifications``) or its single ``frame``."""
    if "notifications" in case:
        return [bytes.fromhex(h) for h in case["notifications"]]
    return [bytes.fromhex(case["frame"])]


def case_id(case: dict[str, Any]) -> str:
    return f"{case.get('frame_type', '?')}:{case.get('device', '?')}"[:60]


# Fuzzing: unseeded so runs explore; reproduce a failure with `pytest --hypothesis-seed=N`.
# FUZZ_EXAMPLES raises the example count for a longer local run.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
fuzz_settings = settings(max_examples=FUZZ_EXAMPLES, deadline=None)

"""What a family's offline decoder (the ``decode`` command) returns, before it is printed as JSON. Sans-IO."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bmslib.model import Reading


@dataclass(frozen=True)
class Decoded:
    """The merged reading of some captured input, with its statistics."""

    reading: Reading
    frames: int  # frames (or advertisements) decoded
    rejected: int  # frames (or advertisements) rejected
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # added to the JSON as they are (e.g. "advertisements")

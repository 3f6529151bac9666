"""A request a family declares for the shared request/response driver (bmslib.drivers.request_response). Sans-IO."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: True for the frame that answers a request
ReplyMatch = Callable[[bytes], bool]


@dataclass(frozen=True, slots=True)
class Request:
    """One request: its bytes, how its reply is recognised, and what no reply means."""

    name: str  # for logs: "no reply to the <name> request"
    data: bytes
    reply: ReplyMatch
    command: int = 0  # the family's command or register number, for a driver whose exchange needs it
    timeout: float | None = None  # seconds; None: the driver's request_timeout
    #: no reply is logged and leaves the reading without this part, instead of failing the read
    optional: bool = False
    #: sent once per driver, answered or not (data that never changes, such as the model name)
    once: bool = False
    #: optional and never answered: not sent again after its first timeout
    give_up: bool = False
    #: the log line for no reply (default: "no reply to the <name> request; continuing without it")
    unanswered: str = ""

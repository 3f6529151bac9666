"""Switch commands on their way to a device: the one message type that flows towards the App.

MQTT (a Home Assistant switch), a charge algorithm and a group all ask for a switch the same way: they
put a :class:`SwitchCommand` on the App's :class:`CommandQueue`. The App decides (is the device known,
online, does it have that switch, is a command already pending) and logs a refusal in one line; the
sender does not wait for the answer, so nothing calls up into the App.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

Origin = Literal["mqtt", "algorithm", "group"]


@dataclass(frozen=True, slots=True)
class SwitchCommand:
    """Switch ``switch`` of the device ``alias`` on or off."""

    alias: str
    switch: str  # a name from bmslib.model.SWITCH_NAMES
    on: bool
    origin: Origin


#: what senders hold: the App's queue of switch commands
CommandQueue = asyncio.Queue[SwitchCommand]

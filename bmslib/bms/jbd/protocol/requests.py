"""The JBD requests the shared request/response driver sends, and how each reply is recognised. Sans-IO."""

from __future__ import annotations

from collections.abc import Mapping

from bmslib.bms.jbd.protocol import frames
from bmslib.protocol.requests import ReplyMatch, Request


def reply_to(register: int) -> ReplyMatch:
    """The ``DD`` reply frame of ``register``."""
    return lambda frame: frame[0] == frames.START and frames.frame_register(frame) == register


def read(name: str, register: int) -> Request:
    """Read ``register``."""
    return Request(name, frames.request(register), reply_to(register), command=register)


#: each read: basic info (with the FET states), then the cell voltages
POLLS = (read("basic-info", frames.REG_BASIC), read("cell-voltage", frames.REG_CELLS))
#: after connecting, until the model is known
SETUP_REQUESTS = (read("hardware-version", frames.REG_HW),)


def switch_request(name: str, on: bool, switches: Mapping[str, bool]) -> Request:
    """Register 0xE1 sets both FETs at once: the one not switched keeps its reported state (on if unknown)."""
    want = {"charge": switches.get("charge", True), "discharge": switches.get("discharge", True), name: on}
    data = frames.mos_request(want["charge"], want["discharge"])
    return Request("FET", data, reply_to(frames.REG_MOS), command=frames.REG_MOS)

"""The knobs a simulated device takes in its address: ``sim:<id>?<knob>=<value>&...``.

:data:`KNOBS` is the one list of them (names, kinds, bounds, meanings): the config loader validates an
address's query against it, doc/Configuration.md shows it, and :func:`set_faults` applies the values to an
emulator's :class:`~bmslib.sim.emulator.Faults`. Most knobs are fault knobs of the emulator; ``bank`` puts
the device's battery into a parallel bank shared with the other devices that name the same bank.
Pure data and small functions (the config layer imports this module).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from bmslib.sim.emulator import Faults

#: a knob's validated value
KnobValue = bool | int | float | str
#: the knobs of one simulated device in the order written, as (name, value)
KnobValues = tuple[tuple[str, KnobValue], ...]


@dataclass(frozen=True, slots=True)
class Knob:
    """One knob: its name in the address, its kind and bounds, what it does, and what it sets."""

    name: str
    #: bool: 0/1/true/false; int and float: a number within ``minimum``..``maximum``; name: letters, digits,
    #: '_' and '-'
    kind: Literal["bool", "int", "float", "name"]
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    #: the :class:`~bmslib.sim.emulator.Faults` attribute it sets; None: not a fault (``bank``)
    fault: str | None = None


KNOBS: Final[tuple[Knob, ...]] = (
    Knob("latency", "float", "seconds the device waits before each reply", 0, 60, fault="latency"),
    Knob("chunk_interval", "float", "seconds between the notification chunks of one reply", 0, 10,
         fault="chunk_interval"),
    Knob("drop_chunk", "float", "probability that a notification chunk is lost (the rest of a frame runs into "
         "the next one)", 0, 1, fault="drop_chunk"),
    Knob("corrupt_chunk", "float", "probability that a notification chunk has one bit flipped", 0, 1,
         fault="corrupt_chunk"),
    Knob("corrupt_to", "int", "with corrupt_chunk: instead of a flipped bit, corrupt_chunk is the probability "
         "that a reply has one byte replaced with this value", 0, 255, fault="corrupt_to"),
    Knob("junk", "float", "probability that 1-8 random bytes come before a reply", 0, 1, fault="junk"),
    Knob("drop_after", "int", "the device drops the link once, when it receives its N-th request (counted "
         "from start)", 1, 1_000_000, fault="disconnect_after"),
    Knob("drop_mid_frame", "bool", "with drop_after: the link drops halfway through the reply to that "
         "request instead of before it", fault="disconnect_mid_frame"),
    Knob("mute", "bool", "the device accepts connections and requests but never answers", fault="mute"),
    Knob("hidden", "bool", "the device never advertises and refuses connections (out of range)",
         fault="hidden"),
    Knob("connect_delay", "float", "seconds a connection takes to come up", 0, 60, fault="connect_delay"),
    Knob("bank", "name", "the device's battery is one pack of the parallel bank of this name: the packs that "
         "name it share one bus voltage and split the bank's load current"),
)


def knob(name: str) -> Knob | None:
    """The knob called ``name``, or None."""
    return next((k for k in KNOBS if k.name == name), None)


def set_faults(faults: Faults, values: Iterable[tuple[str, KnobValue]]) -> None:
    """Set the fault knobs among ``values`` (validated by the config loader) on an emulator's ``faults``."""
    for name, value in values:
        k = knob(name)
        if k is not None and k.fault is not None:
            setattr(faults, k.fault, value)


def bank_name(values: Iterable[tuple[str, KnobValue]]) -> str | None:
    """The parallel bank the device's battery belongs to, or None."""
    return next((str(v) for name, v in values if name == "bank"), None)

"""What a BMS family declares: :class:`Family` (one per ``bmslib.bms`` subpackage) and its :class:`DeviceType`s.

Each family's ``__init__`` has a ``family()`` returning its :class:`Family`; :mod:`bmslib.registry` finds
them. Everything the daemon, the CLI, the config validation and the derived files (``scripts/generate``,
``python -m bmslib.derived_files``) need to know about a ``type:`` value is one :class:`DeviceType`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bmslib.config.settings import TypeInfo
from bmslib.protocol.base import AdvertisementMatcher, Codec
from bmslib.protocol.decoded import Decoded

if TYPE_CHECKING:
    from bmslib.drivers.base import Driver
    from bmslib.sim.emulator import Emulator

#: `decode` for a type whose input is not notification chunks (e.g. advertisements):
#: (hex inputs as bytes, options such as {"key": ...}) -> what was decoded
Decoder = Callable[[Sequence[bytes], Mapping[str, str]], Decoded]


@dataclass(frozen=True, slots=True)
class TypeDoc:
    """The row of doc/BMSes.md's type table (written by ``scripts/generate``).

    Consecutive types of one family with equal :class:`TypeDoc` share one row.
    """

    devices: str  # which devices this type reads
    switches: str  # what can be switched
    secrets: str = "–"  # what `pin:` / `key:` mean for this type
    reads: str = ""  # what is read, when the family's page does not say it (the bridge's types)


@dataclass(frozen=True)
class DeviceType:
    """Everything the daemon needs to know about one ``type:`` value."""

    name: str
    description: str
    driver: Callable[..., Driver]  # called with (config, address=, backend=, log=)
    switches: frozenset[str]
    codec: Callable[[], Codec] | None = None  # for `decode`; None: not a frame protocol
    emulator: type[Emulator] | None = None  # device side in the simulator
    matchers: tuple[AdvertisementMatcher, ...] = ()
    accepts_pin: bool = False
    accepts_key: bool = False
    pin_problem: Callable[[str], str | None] | None = None  # see TypeInfo
    in_demo: bool = True  # one simulated device of this type in --demo
    radio: bool = True  # False: no Bluetooth at all (dummy)
    decoder: Decoder | None = None  # `decode` when the input is not notification chunks
    doc: TypeDoc | None = None  # its row in doc/BMSes.md; None: not listed there (e.g. a group)
    #: who speaks the protocol: "native" (batmon's own driver, bmslib/bms/<family>) or "aiobmsble" (the bridge)
    via: str = "native"

    def info(self) -> TypeInfo:
        return TypeInfo(name=self.name, switches=self.switches, accepts_pin=self.accepts_pin,
                        accepts_key=self.accepts_key, pin_problem=self.pin_problem)


@dataclass(frozen=True)
class Family:
    """One BMS family: its types (the first is the one most users set) and how the docs name it."""

    name: str  # the subpackage of bmslib.bms
    display_name: str  # short, for link texts and lists ("JK", "JBD", ...)
    types: tuple[DeviceType, ...]
    #: its page, doc/bms/<doc_page>.md; None: no page (dummy)
    doc_page: str | None = None
    #: a few words for DOCS.md's type list ("JK/Jikong")
    summary: str = ""
    #: what the types after the first are for, in DOCS.md ("for those models": "`jk_24s`, ... for those models")
    variants_note: str = ""

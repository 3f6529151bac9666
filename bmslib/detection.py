"""Which device type an advertisement is: the matchers of every type, then a few rules (pure code).

The families' matchers (batmon's own and, through the bridge, aiobmsble's) say which types an advertisement
fits (:func:`bmslib.ble.scan.classify`). :class:`Detector` then decides:

1. aiobmsble's plugin of a family batmon reads natively (``jbd_ble``, ``jikong_ble``, ...) counts as batmon's
   native type of that family (``jbd``, ``jk``): the same BMS, and the native driver can switch;
2. of the types left, the first of each family (in the family's order: the type most users set) stands for it;
   every aiobmsble plugin is a family of its own (they read different BMSes);
3. one family left: that type. Several: ambiguous, the candidates are listed and none is picked. None: nothing.

Used by ``main.py scan`` and by ``type: auto`` (:mod:`bmslib.drivers.auto`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bmslib.ble.scan import classify
from bmslib.config.original_types import AIOBMSBLE_NATIVE
from bmslib.family import DeviceType, Family

#: the suffix of the types of aiobmsble's plugins for families batmon also reads natively (``jbd_ble``)
BRIDGE_SUFFIX = "_ble"


@dataclass(frozen=True, slots=True)
class Detection:
    """What an advertisement says about the device's type."""

    type: str | None  # the type to use; None: nothing matched, or ambiguous
    candidates: tuple[str, ...] = ()  # one type per family left, when several families are (ambiguous)
    matched: tuple[str, ...] = ()  # every type whose matchers accept the advertisement
    notes: tuple[str, ...] = ()  # the matchers' notes

    @property
    def ambiguous(self) -> bool:
        return len(self.candidates) > 1

    def label(self) -> str:
        """``jbd``, ``ambiguous: jbd|seplos`` or ``-`` (scan's column)."""
        if self.ambiguous:
            return "ambiguous: " + "|".join(self.candidates)
        return self.type or "-"


class Detector:
    """Detects device types from advertisements, with the types of ``families`` (the registry's)."""

    def __init__(self, families: Sequence[Family]) -> None:
        self.types: dict[str, DeviceType] = {t.name: t for f in families for t in f.types}
        #: type -> the unit ambiguity is judged by: its family, or the type itself for a non-native type
        self._unit = {t.name: (f.name if t.via == "native" else f"{f.name}:{t.name}")
                      for f in families for t in f.types}
        self._order = {name: i for i, name in enumerate(self.types)}

    def native_of(self, type_name: str) -> str:
        """batmon's native type of the family whose aiobmsble plugin ``type_name`` is, else ``type_name``."""
        t = self.types.get(type_name)
        if t is None or t.via == "native" or not type_name.endswith(BRIDGE_SUFFIX):
            return type_name
        plugin = type_name.removesuffix(BRIDGE_SUFFIX)
        native = AIOBMSBLE_NATIVE.get(plugin, plugin)
        found = self.types.get(native)
        return native if found is not None and found.via == "native" else type_name

    def resolve(self, matched: Sequence[str], notes: Sequence[str] = ()) -> Detection:
        """Apply the rules (module docstring) to the types whose matchers matched."""
        known = [name for name in matched if name in self.types]
        chosen: dict[str, str] = {}  # unit -> its first type
        for name in sorted({self.native_of(n) for n in known}, key=self._order.__getitem__):
            chosen.setdefault(self._unit[name], name)
        picks = tuple(chosen.values())
        if len(picks) == 1:
            return Detection(picks[0], (), tuple(known), tuple(notes))
        return Detection(None, picks, tuple(known), tuple(notes))

    def detect(self, *, address: str, name: str | None, service_uuids: Sequence[str] = (),
               manufacturer_data: Mapping[int, bytes] | None = None,
               service_data: Mapping[str, bytes] | None = None) -> Detection:
        """The type one advertisement shows (``address`` for a matcher's OUI)."""
        matched, notes = classify(address, name, service_uuids, manufacturer_data or {}, self.types,
                                  service_data or {})
        return self.resolve(matched, notes)

    def agrees(self, detected: str | None, simulated: str) -> bool:
        """Whether ``detected`` is the type a device that speaks ``simulated`` should be detected as: the same,
        or batmon's native type for aiobmsble's plugin of the same family (rule 1), or the first type of the
        family of a variant that forces a layout (``jk_24s`` is detected as ``jk``)."""
        if detected is None:
            return False
        if detected == simulated:
            return True
        native = self.native_of(simulated)
        return native == detected or self._unit.get(native) == self._unit.get(detected)

"""ANT BMS over BLE: what both protocol generations share, variant detection, and the codec.

Two generations answer on the same GATT characteristic (service FFE0, characteristic FFE1 carries
both directions): the 2021 protocol (:mod:`bmslib.bms.ant.protocol.frames_2021`, commands in
:mod:`bmslib.bms.ant.protocol.control`) and the legacy protocol (:mod:`bmslib.bms.ant.protocol.legacy`).
The advertised name tells them apart only for some models; otherwise the first reply does (a 2021
unit answers the ``7E A1`` status request, a legacy unit only ``DB DB``). Writes must be sent
without response: write-with-response fails with "insufficient authorization" on some stacks.
"""

from __future__ import annotations

import enum
import re

from bmslib.bms.ant.protocol import data_2021 as ant_2021_data
from bmslib.bms.ant.protocol import frames_2021 as ant_2021
from bmslib.bms.ant.protocol import legacy as ant_legacy
from bmslib.model import Reading
from bmslib.protocol.base import AdvertisementMatcher, FrameAssembler

SERVICE_UUID = "0000ffe0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000ffe1-0000-1000-8000-00805f9b34fb"
WRITE_UUID = NOTIFY_UUID
WRITE_WITHOUT_RESPONSE = True


class Variant(enum.Enum):
    V2021 = "2021"
    LEGACY = "legacy"


# Names whose model code pins the generation. Others ("ANT-BLE24C-001", "ANT-BLE22AACB-0489", ...)
# are seen with both generations: detect those from the first reply.
_NAME_2021 = re.compile(r"ANT@BLE|ANT-BLE\d\d[A-Z]{2}UB")  # ANT-BLE16ZMUB, -24BHUB, -20PHUB, ANT@BLE24CBUB
_NAME_LEGACY = re.compile(r"ANT-BLE\d\dS\Z")  # ANT-BLE16S


def variant_from_name(name: str | None) -> Variant | None:
    """The protocol generation an advertised name implies, or None if the name does not tell."""
    name = (name or "").strip()
    if _NAME_2021.match(name):
        return Variant.V2021
    if _NAME_LEGACY.match(name):
        return Variant.LEGACY
    return None


def variant_from_reply(data: bytes) -> Variant | None:
    """The generation whose frame header appears first in ``data`` (a notification), or None."""
    new, old = data.find(ant_2021.HEAD), data.find(ant_legacy.HEADER)
    if new >= 0 and (old < 0 or new < old):
        return Variant.V2021
    return Variant.LEGACY if old >= 0 else None


class AutoAssembler(FrameAssembler):
    """Assembles both generations until the first valid frame shows which one the unit speaks,
    then only that one (``variant`` tells which)."""

    def __init__(self) -> None:
        super().__init__()
        self.variant: Variant | None = None
        self._parts: dict[Variant, FrameAssembler] = {
            Variant.V2021: ant_2021.Ant2021Assembler(), Variant.LEGACY: ant_legacy.AntLegacyAssembler(),
        }

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        for variant, part in list(self._parts.items()):
            got = part.feed(chunk)
            if got and self.variant is None:
                self.variant = variant
            out += got
        if self.variant is not None:
            self._parts = {self.variant: self._parts[self.variant]}
        parts = list(self._parts.values())
        self.frames = sum(p.frames for p in parts)
        self.dropped = min(p.dropped for p in parts)
        self.last_error = next((p.last_error for p in parts if p.last_error), None)
        return out

    def reset(self) -> None:
        for part in self._parts.values():
            part.reset()

    @property
    def pending(self) -> int:
        return max(p.pending for p in self._parts.values())


class AntCodec:
    """Session state: the generation (None = detect; set by the first frame that decodes) and the
    current sign learned from the 2021 battery status byte (+1: wire current positive while
    discharging, as observed)."""

    def __init__(self, variant: Variant | None = None) -> None:
        self.variant = variant
        self.polarity = 1

    def assembler(self) -> FrameAssembler:
        if self.variant is Variant.V2021:
            return ant_2021.Ant2021Assembler()
        if self.variant is Variant.LEGACY:
            return ant_legacy.AntLegacyAssembler()
        return AutoAssembler()

    def decode(self, frame: bytes) -> Reading:
        if frame.startswith(ant_legacy.HEADER):
            reading = ant_legacy.decode(frame)
            self.variant = self.variant or Variant.LEGACY
            return reading
        reading = ant_2021_data.decode(frame, self.polarity)
        self.variant = self.variant or Variant.V2021
        learned = ant_2021_data.status_polarity(frame)
        if learned is not None:
            self.polarity = learned
        return reading


MATCHERS = (
    AdvertisementMatcher(service_uuid=SERVICE_UUID, local_name="ANT-BLE*"),
    AdvertisementMatcher(service_uuid=SERVICE_UUID, local_name="ANT@BLE*"),
)

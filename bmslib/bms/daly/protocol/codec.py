"""Daly BMS: three incompatible wire protocols behind one name, sans-IO.

* Modbus "D2" (H/K/M/S series, 2022+): :mod:`bmslib.bms.daly.protocol.modbus`.
* Legacy "A5" (older series): :mod:`bmslib.bms.daly.protocol.legacy`.
* Modbus "0x81" (ESS-DL-BMS / Sun Deposit): :mod:`bmslib.bms.daly.protocol.p81`, read-only.

Type ``daly`` probes once at connect: the driver sends :data:`PROBES` in :data:`PROBE_ORDER`, feeds
what comes back to :func:`classify_reply`, and keeps the answer for the session. Types
``daly_legacy`` and ``daly_modbus`` skip the probe (:data:`TYPE_PROTOCOLS`). :class:`DalyCodec`
then speaks the chosen protocol: assembler, decoder, the reads of one sample, switch commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from bmslib.bms.daly.protocol import legacy as daly_legacy
from bmslib.bms.daly.protocol import modbus as daly_modbus
from bmslib.bms.daly.protocol import p81 as daly_p81
from bmslib.bms.daly.protocol.legacy import DalyLegacyAssembler, LegacySession
from bmslib.bms.daly.protocol.rtu import ModbusAssembler
from bmslib.errors import UnsupportedError
from bmslib.model import Reading
from bmslib.protocol.base import AdvertisementMatcher, FrameAssembler

SERVICE_UUID = "0000fff0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000fff1-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000fff2-0000-1000-8000-00805f9b34fb"
# Newer DL-/JHB- firmware refuses notifications on FFF1; the same protocol then runs on FF00.
ALT_SERVICE_UUID = "0000ff00-0000-1000-8000-00805f9b34fb"
ALT_NOTIFY_UUID = "0000ff01-0000-1000-8000-00805f9b34fb"
ALT_WRITE_UUID = "0000ff02-0000-1000-8000-00805f9b34fb"


class DalyProtocol(StrEnum):
    MODBUS = "modbus"
    LEGACY = "legacy"
    P81 = "p81"
    UNKNOWN = "unknown"


PROTOCOL_NAMES: Mapping[DalyProtocol, str] = {
    DalyProtocol.MODBUS: "Daly Modbus D2 (H/K/M/S series)",
    DalyProtocol.LEGACY: "Daly legacy A5",
    DalyProtocol.P81: "Daly Modbus 0x81 (ESS-DL-BMS)",
    DalyProtocol.UNKNOWN: "no known Daly protocol",
}

#: Configured type -> protocol (None: probe at connect).
TYPE_PROTOCOLS: Mapping[str, DalyProtocol | None] = {
    "daly": None, "daly_legacy": DalyProtocol.LEGACY, "daly_modbus": DalyProtocol.MODBUS,
}

#: One request per protocol that a device of that protocol answers; each is addressed so that the
#: other protocols ignore it. D2 first: it is the current product line.
PROBES: Mapping[DalyProtocol, bytes] = {
    DalyProtocol.MODBUS: daly_modbus.status_request(62),
    DalyProtocol.LEGACY: daly_legacy.request(daly_legacy.CMD_SOC),
    DalyProtocol.P81: daly_p81.RT1_REQUEST,
}
PROBE_ORDER = (DalyProtocol.MODBUS, DalyProtocol.LEGACY, DalyProtocol.P81)


def _assemblers() -> tuple[tuple[DalyProtocol, FrameAssembler], ...]:
    return ((DalyProtocol.MODBUS, ModbusAssembler(daly_modbus.ADDRESS)),
            (DalyProtocol.P81, ModbusAssembler(daly_p81.REPLY_ADDRESS)),
            (DalyProtocol.LEGACY, DalyLegacyAssembler()))


def classify_reply(data: bytes) -> DalyProtocol:
    """Which protocol ``data`` (the bytes received after a probe, concatenated) is spoken in.

    A protocol is recognised only by a complete frame with a valid checksum, so junk or a partial
    reply gives UNKNOWN: keep accumulating until the probe times out. A Modbus exception reply
    counts, since it proves the protocol.
    """
    for protocol, assembler in _assemblers():
        if assembler.feed(data):
            return protocol
    return DalyProtocol.UNKNOWN


class DalyCodec:
    """A session in one Daly protocol (legacy keeps multi-frame and sign state across frames)."""

    def __init__(self, protocol: DalyProtocol, *, status_registers: int = 62) -> None:
        if protocol is DalyProtocol.UNKNOWN:
            raise ValueError("a Daly session needs a known protocol")
        if status_registers not in daly_modbus.STATUS_REGISTERS:
            raise ValueError(f"status read is 62 or 80 registers, not {status_registers}")
        self.protocol = protocol
        self.status_registers = status_registers
        self.legacy = LegacySession()

    @property
    def name(self) -> str:
        return PROTOCOL_NAMES[self.protocol]

    def assembler(self) -> FrameAssembler:
        if self.protocol is DalyProtocol.LEGACY:
            return DalyLegacyAssembler()
        if self.protocol is DalyProtocol.P81:
            return ModbusAssembler(daly_p81.REPLY_ADDRESS)
        return ModbusAssembler(daly_modbus.ADDRESS)

    def decode(self, frame: bytes) -> Reading:
        if self.protocol is DalyProtocol.LEGACY:
            return self.legacy.decode(frame)
        if self.protocol is DalyProtocol.P81:
            return daly_p81.decode(frame)
        return daly_modbus.decode(frame)

    def reset(self) -> None:
        """Call before each sample: drops partial multi-frame replies and an unpaired 0x90 current or
        0x93 state left over from an incomplete sample (legacy; counts and learned sign stay)."""
        self.legacy.reset()

    def poll_requests(self) -> tuple[bytes, ...]:
        """The reads of one sample, in order. Legacy needs 0x94 (counts) before 0x95/0x96."""
        if self.protocol is DalyProtocol.LEGACY:
            return tuple(daly_legacy.request(c) for c in (
                daly_legacy.CMD_SOC, daly_legacy.CMD_STATUS, daly_legacy.CMD_INFO,
                daly_legacy.CMD_CELLS, daly_legacy.CMD_TEMPS))
        if self.protocol is DalyProtocol.P81:
            return (daly_p81.RT1_REQUEST, daly_p81.RT2_REQUEST)
        return (daly_modbus.status_request(self.status_registers),)

    def device_info_requests(self) -> tuple[bytes, ...]:
        return (daly_modbus.VERSION_REQUEST,) if self.protocol is DalyProtocol.MODBUS else ()

    def replies_expected(self, request: bytes) -> int | None:
        """Reply frames one request yields (legacy 0x95/0x96: None until 0x94 gave the counts)."""
        if self.protocol is DalyProtocol.LEGACY and len(request) == daly_legacy.FRAME_LEN:
            return self.legacy.replies_expected(request[2])
        return 1

    @property
    def switches(self) -> tuple[str, ...]:
        """Switches this protocol can set."""
        return () if self.protocol is DalyProtocol.P81 else ("charge", "discharge")

    def switch_request(self, switch: str, on: bool) -> bytes:
        """The command that sets ``switch``; UnsupportedError if this protocol cannot."""
        if switch not in self.switches:
            raise UnsupportedError(f"{self.name} has no switch {switch!r} that batmon can set")
        if self.protocol is DalyProtocol.LEGACY:
            return daly_legacy.switch_request(switch, on)
        return daly_modbus.switch_request(switch, on)

    def switch_confirmed(self, request: bytes, reply: bytes) -> bool | None:
        """Whether ``reply`` confirms ``request``: True/False for Modbus (write echo); None for legacy,
        which sends no documented confirmation (read 0x93 back instead)."""
        if self.protocol is DalyProtocol.LEGACY:
            return None
        return daly_modbus.is_write_echo(request, reply)


# --- advertisement -------------------------------------------------------------------------------

MATCHERS = (
    AdvertisementMatcher(local_name="DL-*", service_uuid=SERVICE_UUID),
    AdvertisementMatcher(local_name="JHB-*", note="newer Daly firmware name"),
    *(AdvertisementMatcher(manufacturer_id=m) for m in (0x0102, 0x0104, 0x0302, 0x0303, 0x0402)),
)

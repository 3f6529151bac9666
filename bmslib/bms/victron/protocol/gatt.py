"""Victron SmartShunt "third-party GATT" service, sans-IO.

The shunt exposes each value as its own characteristic (read or notify), little-endian, with a
not-available sentinel per value. The 16-bit part of each UUID after ``6597`` is the VE.Direct
register id (0x0FFF SoC, 0xED8D voltage, ...), which pins type, scale and sentinel.

There is no framing: one characteristic value is one complete message, so instead of an assembler
this module offers :func:`decode_characteristic` (uuid, value) -> Reading. A not-available value
decodes to an empty Reading. Drivers should keep the latest Reading *per characteristic* and merge
those, so that a value turning not-available (e.g. time-to-go while charging) clears the field
instead of leaving a stale one.

Wire sign: current and power are positive while charging; the field tables use a negative scale to
give the model's discharge-positive sign. The shunt disconnects after about a minute unless the host
writes a keep-alive (u16le milliseconds) to :data:`KEEPALIVE_UUID`. There are no switches.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

from bmslib.errors import FrameError
from bmslib.model import DeviceInfo, Reading
from bmslib.protocol.base import AdvertisementMatcher
from bmslib.protocol.fields import Field, FieldTable

_UUID_SUFFIX = "-4bda-4c1e-af4b-551c4cf74769"


def victron_uuid(register: int) -> str:
    """The 128-bit UUID of the characteristic for VE register ``register`` (``6597xxxx-...``)."""
    return f"6597{register:04x}{_UUID_SUFFIX}"


SERVICE_UUID = victron_uuid(0x0000)
KEEPALIVE_UUID = victron_uuid(0xFFFF)

#: Keep-alive: write ``KEEPALIVE_MS`` (u16le) every ``KEEPALIVE_PERIOD_S`` seconds. Without it the
#: shunt drops the link after ~60 s. 20000 ms every 10 s is what the add-on we replace did.
KEEPALIVE_MS = 20_000
KEEPALIVE_PERIOD_S = 10.0
#: batmon-ha re-read any value whose notification had not arrived for this long (stale-notify
#: workaround on some BlueZ versions).
REREAD_AFTER_S = 10.0

MANUFACTURER = "Victron Energy"

Target = Literal["reading", "extra", "temperatures"]


@dataclass(frozen=True)
class Characteristic:
    """One readable/notifiable value: a one-field table (offset 0), not-available bytes, destination.

    ``target`` says where the value goes: the :class:`Reading` key named like the field, a key of
    ``Reading["extra"]``, or the single entry of ``Reading["temperatures"]``.
    """

    register: int
    table: FieldTable
    not_available: bytes
    target: Target
    digits: int  # decimals of the wire resolution (after scaling)

    @property
    def uuid(self) -> str:
        return victron_uuid(self.register)

    @property
    def field(self) -> Field:
        return self.table.fields[0]

    @property
    def name(self) -> str:
        return self.field.name


def _le(name: str, fmt: str, scale: float = 1.0, add: float = 0.0) -> FieldTable:
    return FieldTable("<", (Field(name, 0, fmt, scale, add),))


CHARACTERISTICS: tuple[Characteristic, ...] = (
    Characteristic(0x0FFF, _le("soc", "H", 0.01), b"\xff\xff", "reading", 2),
    Characteristic(0xED8D, _le("voltage", "h", 0.01), b"\xff\x7f", "reading", 2),
    Characteristic(0xED8C, _le("current", "i", -0.001), b"\xff\xff\xff\x7f", "reading", 3),
    Characteristic(0xED8E, _le("power", "h", -1.0), b"\xff\x7f", "reading", 0),
    # Consumed Ah is <= 0 on the wire (Victron's sign) and stays so in extra.
    Characteristic(0xEEFF, _le("consumed_ah", "i", 0.1), b"\xff\xff\xff\x7f", "extra", 1),
    Characteristic(0x0FFE, _le("runtime", "H", 60.0), b"\xff\xff", "reading", 0),  # minutes -> s
    Characteristic(0xED7D, _le("starter_voltage", "h", 0.01), b"\xff\x7f", "extra", 2),
    Characteristic(0xEDEC, _le("temperature", "H", 0.01, -273.15), b"\xff\xff", "temperatures", 2),
    Characteristic(0x0382, _le("midpoint_voltage", "H", 0.01), b"\xff\xff", "extra", 2),
    Characteristic(0x0383, _le("midpoint_deviation", "h", 0.1), b"\xff\x7f", "extra", 1),  # %
)
BY_UUID: Mapping[str, Characteristic] = {c.uuid: c for c in CHARACTERISTICS}
BY_NAME: Mapping[str, Characteristic] = {c.name: c for c in CHARACTERISTICS}

SOC_UUID, VOLTAGE_UUID, CURRENT_UUID, POWER_UUID, CONSUMED_AH_UUID, TIME_TO_GO_UUID = (
    c.uuid for c in CHARACTERISTICS[:6])
STARTER_VOLTAGE_UUID, TEMPERATURE_UUID, MIDPOINT_VOLTAGE_UUID, MIDPOINT_DEVIATION_UUID = (
    c.uuid for c in CHARACTERISTICS[6:])

#: What the add-on we replace subscribed to; the other values are read when present.
SUBSCRIBE_UUIDS = (SOC_UUID, VOLTAGE_UUID, CURRENT_UUID, POWER_UUID, CONSUMED_AH_UUID)


def keepalive_request(ms: int = KEEPALIVE_MS) -> bytes:
    """The keep-alive value for :data:`KEEPALIVE_UUID` (u16le milliseconds)."""
    return struct.pack("<H", ms)


def parse_keepalive(value: bytes) -> int | None:
    """Device side: the milliseconds a keep-alive write asks for, or None if malformed."""
    return struct.unpack("<H", value)[0] if len(value) == 2 else None


def characteristic(uuid: str) -> Characteristic:
    """The characteristic for ``uuid`` (any case). Raises :class:`FrameError` for unknown UUIDs."""
    c = BY_UUID.get(uuid.lower())
    if c is None:
        raise FrameError(f"not a SmartShunt value characteristic: {uuid}")
    return c


def decode_characteristic(uuid: str, value: bytes) -> Reading:
    """Decode one characteristic value; a not-available value gives an empty Reading."""
    c = characteristic(uuid)
    if len(value) != c.field.size:
        raise FrameError(f"{c.name}: expected {c.field.size} bytes, got {len(value)}", value)
    if value == c.not_available:
        return {}
    v = round(float(c.table.decode(value)[c.name]), c.digits) + 0.0  # + 0.0: no -0.0
    if c.target == "extra":
        return {"extra": {c.name: v}}
    if c.target == "temperatures":
        return {"temperatures": (v,)}
    return cast(Reading, {c.name: v})  # soc, voltage, current, power, runtime: float fields


class VictronGattCodec:
    """Per-characteristic decoding; no session state (each value stands alone)."""

    uuids = tuple(c.uuid for c in CHARACTERISTICS)

    def decode_characteristic(self, uuid: str, value: bytes) -> Reading:
        return decode_characteristic(uuid, value)

    def device_info(self) -> Reading:
        return {"device_info": DeviceInfo(manufacturer=MANUFACTURER)}


# --- device side (emulator) -------------------------------------------------------------------


def encode_characteristic(uuid: str, value: float | None) -> bytes:
    """The wire bytes of one value in model units and sign; None gives the not-available bytes.

    Raises ValueError if the value does not fit the wire type or would read as not-available.
    """
    c = BY_UUID.get(uuid.lower())
    if c is None:
        raise ValueError(f"not a SmartShunt value characteristic: {uuid}")
    if value is None:
        return c.not_available
    buf = bytearray(c.field.size)
    try:
        c.table.encode({c.name: value}, buf)
    except (struct.error, OverflowError) as e:
        raise ValueError(f"{c.name}={value} does not fit the wire type {c.field.fmt!r}") from e
    if bytes(buf) == c.not_available:
        raise ValueError(f"{c.name}={value} collides with the not-available value")
    return bytes(buf)


def encode_value(name: str, value: float | None) -> bytes:
    """:func:`encode_characteristic` addressed by field name (``"voltage"``, ``"consumed_ah"``...)."""
    return encode_characteristic(BY_NAME[name].uuid, value)


def characteristic_values(reading: Reading) -> dict[str, bytes]:
    """Every characteristic's wire value for a Reading (absent fields -> not-available bytes)."""
    extra = reading.get("extra", {})
    temps = reading.get("temperatures", ())
    out: dict[str, bytes] = {}
    for c in CHARACTERISTICS:
        if c.target == "extra":
            raw = extra.get(c.name)
            v = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
        elif c.target == "temperatures":
            v = temps[0] if temps else None
        else:
            v = cast(Mapping[str, float], reading).get(c.name)
        out[c.uuid] = encode_characteristic(c.uuid, v)
    return out


# --- advertisement -------------------------------------------------------------------------------

#: Victron Energy's Bluetooth company id; every Victron product advertises manufacturer data with it.
COMPANY_ID = 0x02E1

MATCHERS = (
    AdvertisementMatcher(manufacturer_id=COMPANY_ID,
                         note="Victron device; SmartShunt/BMV: type victron (GATT needs the PIN and "
                              "the GATT service enabled, Instant Readout needs the advertisement key)"),
)

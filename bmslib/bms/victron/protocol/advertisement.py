"""Victron "Instant Readout": encrypted manufacturer data (company 0x02E1, ``victron.COMPANY_ID``), sans-IO.

Manufacturer-data value (after the company id)::

    0     0x10 = product advertisement record
    1     (not decoded; observed 0x00/0x02/0x03/0x80)
    2-3   product id u16le (0xA389 = SmartShunt 500A/50mV)
    4     record type (0x02 = battery monitor)
    5-6   nonce / data counter u16le
    7     first byte of the advertisement key (wrong key -> :class:`AdvertisementKeyError`)
    8..   AES-128-CTR ciphertext, at most one block; initial counter block = the nonce as a
          128-bit little-endian integer

The battery-monitor record is bit-packed LSB-first (:data:`BATTERY_MONITOR`). Values equal to a
field's not-available sentinel are left out of the Reading. Wire current is positive while charging;
the model's is positive while discharging. Other record types are not errors: they give a
:class:`Readout` whose ``skipped`` says which record it was.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bmslib.bms.victron.protocol.gatt import MANUFACTURER
from bmslib.errors import FrameError
from bmslib.model import DeviceInfo, Reading, merge_readings
from bmslib.protocol.decoded import Decoded
from bmslib.protocol.fields import bits_to_names, names_to_bits

KEY_LEN = 16
RECORD_PRODUCT_ADVERTISEMENT = 0x10
RECORD_BATTERY_MONITOR = 0x02
HEADER = struct.Struct("<BBHBHB")  # record, (undecoded), product id, record type, nonce, key check
MAX_CIPHERTEXT = 16  # one AES block: the counter never advances

RECORD_TYPES: Mapping[int, str] = {
    0x01: "solar charger", 0x02: "battery monitor", 0x03: "inverter", 0x04: "DC/DC converter",
    0x05: "SmartLithium", 0x06: "inverter RS", 0x07: "GX device", 0x08: "AC charger",
    0x09: "Smart BatteryProtect", 0x0A: "Lynx Smart BMS", 0x0B: "Multi RS", 0x0C: "VE.Bus",
    0x0D: "DC energy meter", 0x0F: "Orion XS",
}
PRODUCTS: Mapping[int, str] = {
    0xA381: "BMV-712 Smart", 0xA382: "BMV-710H Smart", 0xA383: "BMV-712 Smart Rev2",
    0xA389: "SmartShunt 500A/50mV", 0xA38A: "SmartShunt 1000A/50mV", 0xA38B: "SmartShunt 2000A/50mV",
}

ALARM_BITS: Mapping[int, str] = {
    0: "low_voltage", 1: "high_voltage", 2: "low_soc", 3: "low_starter_voltage",
    4: "high_starter_voltage", 5: "low_temperature", 6: "high_temperature", 7: "midpoint_voltage",
    8: "overload", 9: "dc_ripple", 10: "low_ac_output_voltage", 11: "high_ac_output_voltage",
    12: "short_circuit", 13: "bms_lockout",
}

AUX_STARTER, AUX_MIDPOINT, AUX_TEMPERATURE, AUX_NONE = 0, 1, 2, 3


class AdvertisementKeyError(FrameError):
    """The configured advertisement key is not this device's (key check byte differs)."""


@dataclass(frozen=True, slots=True)
class BitField:
    """An LSB-first bit field of a record: ``value = signed_or_unsigned(raw) * scale + add``.

    ``not_available`` lists raw (unsigned) values that mean "no value".
    """

    name: str
    start: int
    bits: int
    signed: bool = False
    scale: float = 1.0
    add: float = 0.0
    not_available: tuple[int, ...] = ()

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1

    def raw(self, word: int) -> int:
        """The field's unsigned bits out of the record read as one little-endian integer."""
        return word >> self.start & self.mask

    def value(self, raw: int) -> float | None:
        if raw in self.not_available:
            return None
        if self.signed and raw >> (self.bits - 1):
            raw -= 1 << self.bits
        return raw * self.scale + self.add

    def to_raw(self, value: float | None) -> int:
        """Inverse of :meth:`value`. Raises ValueError if it does not fit or reads as not-available."""
        if value is None:
            return self.not_available[0]
        n = round((value - self.add) / self.scale)
        lo, hi = (-(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1) if self.signed else (0, self.mask)
        if not lo <= n <= hi:
            raise ValueError(f"{self.name}={value} does not fit {self.bits} bits")
        raw = n & self.mask
        if raw in self.not_available:
            raise ValueError(f"{self.name}={value} collides with the not-available value 0x{raw:X}")
        return raw


# Battery monitor record (type 0x02); Victron's start bits minus the 32 header bits. Wire signs.
TIME_TO_GO = BitField("time_to_go", 0, 16, scale=60.0, not_available=(0xFFFF,))  # minutes -> s
VOLTAGE = BitField("voltage", 16, 16, signed=True, scale=0.01, not_available=(0x7FFF,))
ALARM = BitField("alarm", 32, 16)
AUX_MODE = BitField("aux_mode", 64, 2)
# 0x3FFFFF per Victron's PDF; Victron's own Venus OS reader uses 0x1FFFFF: both mean "no value".
CURRENT = BitField("current", 66, 22, signed=True, scale=-0.001, not_available=(0x3FFFFF, 0x1FFFFF))
CONSUMED_AH = BitField("consumed_ah", 88, 20, scale=-0.1, not_available=(0xFFFFF,))
SOC = BitField("soc", 108, 10, scale=0.1, not_available=(0x3FF,))
AUX: Mapping[int, BitField] = {  # the 16 bits at 48 depend on the aux mode
    AUX_STARTER: BitField("starter_voltage", 48, 16, signed=True, scale=0.01, not_available=(0x7FFF,)),
    AUX_MIDPOINT: BitField("midpoint_voltage", 48, 16, scale=0.01, not_available=(0xFFFF,)),
    AUX_TEMPERATURE: BitField("temperature", 48, 16, scale=0.01, add=-273.15, not_available=(0xFFFF,)),
}
AUX_RAW = BitField("aux", 48, 16)
BATTERY_MONITOR = (TIME_TO_GO, VOLTAGE, ALARM, AUX_RAW, AUX_MODE, CURRENT, CONSUMED_AH, SOC)
BATTERY_MONITOR_LEN = 15  # bytes of plaintext that hold the 118 used bits


@dataclass(frozen=True, slots=True)
class Readout:
    """One decoded advertisement. ``skipped`` is set (and ``reading`` empty) for records we do not read."""

    product_id: int
    record_type: int
    nonce: int
    reading: Reading
    skipped: str | None = None


def parse_key(text: str) -> bytes:
    """The 16-byte key from its 32-hex-digit form (as VictronConnect shows it). Raises ValueError.

    The message never repeats the key (it is a secret).
    """
    s = text.strip()
    if len(s) != 2 * KEY_LEN or any(c not in "0123456789abcdefABCDEF" for c in s):
        raise ValueError(f"advertisement key must be 32 hex digits, got {len(s)} characters")
    return bytes.fromhex(s)


def _aes_ctr(key: bytes, nonce: int, data: bytes) -> bytes:
    if len(key) != KEY_LEN:
        raise ValueError("advertisement key must be 16 bytes")
    # imported here: cryptography adds about 6 MB to the daemon's memory, and only Instant Readout needs it
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415

    ctx = Cipher(algorithms.AES(key), modes.CTR(nonce.to_bytes(16, "little"))).encryptor()
    return ctx.update(data) + ctx.finalize()


def decrypt(key: bytes, nonce: int, ciphertext: bytes) -> bytes:
    """AES-128-CTR with the nonce as the initial counter block (little-endian). Symmetric."""
    return _aes_ctr(key, nonce, ciphertext)


def unpack_battery_monitor(record: bytes) -> dict[str, int]:
    """The raw (unsigned, unscaled) bit fields of a decrypted battery-monitor record."""
    if len(record) < BATTERY_MONITOR_LEN:
        raise FrameError(f"battery monitor record too short: {len(record)} bytes", record)
    word = int.from_bytes(record, "little")
    return {f.name: f.raw(word) for f in BATTERY_MONITOR}


def decode_battery_monitor(record: bytes) -> Reading:
    """Decode a decrypted battery-monitor record into a Reading (model sign, seconds, °C)."""
    raw = unpack_battery_monitor(record)
    reading: Reading = {"alarms": bits_to_names(raw["alarm"], ALARM_BITS)}
    extra: dict[str, float | int | str | bool] = {}
    if (v := VOLTAGE.value(raw["voltage"])) is not None:
        reading["voltage"] = round(v, 2)
    if (v := CURRENT.value(raw["current"])) is not None:
        reading["current"] = round(v, 3) + 0.0
    if (v := SOC.value(raw["soc"])) is not None:
        reading["soc"] = round(v, 1)
    if (v := TIME_TO_GO.value(raw["time_to_go"])) is not None:
        reading["runtime"] = v
    if (v := CONSUMED_AH.value(raw["consumed_ah"])) is not None:
        extra["consumed_ah"] = round(v, 1) + 0.0
    aux = AUX.get(raw["aux_mode"])
    if aux is not None and (v := aux.value(raw["aux"])) is not None:
        if aux.name == "temperature":
            reading["temperatures"] = (round(v, 2),)
        else:
            extra[aux.name] = round(v, 2) + 0.0
    extra["alarm_bitmask"] = raw["alarm"]
    reading["extra"] = extra
    return reading


def decode_advertisement(data: bytes, key: bytes) -> Readout:
    """Decode the company-0x02E1 manufacturer data with the device's advertisement key.

    Raises :class:`AdvertisementKeyError` for a wrong key and :class:`FrameError` for malformed data.
    """
    if len(data) < HEADER.size + 1:
        raise FrameError(f"Victron advertisement too short: {len(data)} bytes", data)
    kind, _flags, product_id, record_type, nonce, key_check = HEADER.unpack_from(data)
    if kind != RECORD_PRODUCT_ADVERTISEMENT:
        return Readout(product_id, record_type, nonce, {}, f"skipped: manufacturer record 0x{kind:02X}")
    if record_type != RECORD_BATTERY_MONITOR:
        name = RECORD_TYPES.get(record_type, "unknown")
        return Readout(product_id, record_type, nonce, {},
                       f"skipped: record type 0x{record_type:02X} ({name})")
    if len(key) != KEY_LEN:
        raise AdvertisementKeyError(f"advertisement key must be {KEY_LEN} bytes, got {len(key)}")
    if key_check != key[0]:
        raise AdvertisementKeyError(
            f"advertisement key does not match this device (it announces a key starting "
            f"0x{key_check:02X}, the configured key starts 0x{key[0]:02X})")
    ciphertext = data[HEADER.size:]
    if len(ciphertext) > MAX_CIPHERTEXT:
        raise FrameError(f"encrypted record longer than one AES block: {len(ciphertext)} bytes", data)
    reading = decode_battery_monitor(decrypt(key, nonce, ciphertext))
    model = PRODUCTS.get(product_id, f"Victron product 0x{product_id:04X}")
    reading["device_info"] = DeviceInfo(manufacturer=MANUFACTURER, model=model)
    return Readout(product_id, record_type, nonce, reading)


class VictronAdvCodec:
    """Decodes one device's advertisements with its key (the key is the only state)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_LEN:
            raise ValueError("advertisement key must be 16 bytes")
        self._key = bytes(key)

    def decode(self, data: bytes) -> Readout:
        return decode_advertisement(data, self._key)


# --- device side (emulator advertiser) ---------------------------------------------------------


def encode_battery_monitor(reading: Reading) -> bytes:
    """A 15-byte battery-monitor record from a Reading (model sign). Absent fields -> not available.

    The aux input comes from ``temperatures[0]``, else ``extra["starter_voltage"]``, else
    ``extra["midpoint_voltage"]``, else none. Raises ValueError for values that do not fit.
    """
    extra = reading.get("extra", {})

    def num(name: str) -> float | None:
        v = extra.get(name)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    temps = reading.get("temperatures", ())
    candidates = ((AUX_TEMPERATURE, temps[0] if temps else None),
                  (AUX_STARTER, num("starter_voltage")), (AUX_MIDPOINT, num("midpoint_voltage")))
    mode, aux_value = next(((m, v) for m, v in candidates if v is not None), (AUX_NONE, None))
    fields = {
        TIME_TO_GO: TIME_TO_GO.to_raw(reading.get("runtime")),
        VOLTAGE: VOLTAGE.to_raw(reading.get("voltage")),
        ALARM: names_to_bits(reading.get("alarms", ()), ALARM_BITS),
        AUX_RAW: AUX[mode].to_raw(aux_value) if mode != AUX_NONE else 0,
        AUX_MODE: mode,
        CURRENT: CURRENT.to_raw(reading.get("current")),
        CONSUMED_AH: CONSUMED_AH.to_raw(num("consumed_ah")),
        SOC: SOC.to_raw(reading.get("soc")),
    }
    word = 0
    for f, raw in fields.items():
        word |= (raw & f.mask) << f.start
    return word.to_bytes(BATTERY_MONITOR_LEN, "little")


def encode_advertisement(key: bytes, nonce: int, record: bytes, *, product_id: int = 0xA389,
                         record_type: int = RECORD_BATTERY_MONITOR, flags: int = 0x02) -> bytes:
    """Manufacturer data (without the company id) carrying ``record`` encrypted with ``key``."""
    if len(record) > MAX_CIPHERTEXT:
        raise ValueError("a record is at most 16 bytes")
    header = HEADER.pack(RECORD_PRODUCT_ADVERTISEMENT, flags, product_id, record_type, nonce & 0xFFFF, key[0])
    return header + _aes_ctr(key, nonce & 0xFFFF, record)


def battery_monitor_advertisement(key: bytes, nonce: int, reading: Reading,
                                  product_id: int = 0xA389) -> bytes:
    """What a battery monitor showing ``reading`` advertises (for the emulator's advertiser)."""
    return encode_advertisement(key, nonce, encode_battery_monitor(reading), product_id=product_id)


def decode_advertisements(inputs: Sequence[bytes], options: Mapping[str, str]) -> Decoded:
    """``decode --type victron --key KEY HEX...``: each HEX is one advertisement's manufacturer data
    for company 0x02E1 without the company id (it starts with ``10``); a leading ``e102`` is dropped."""
    key_text = options.get("key")
    if not key_text:
        raise ValueError("victron decodes Instant Readout advertisements and needs --key (32 hex digits, "
                         "from VictronConnect)")
    key = parse_key(key_text)  # its message never repeats the key
    reading: Reading = {}
    errors: list[str] = []
    decoded = 0
    advertisements: list[dict[str, Any]] = []
    for raw in inputs:
        data = raw[2:] if raw[:3] == b"\xe1\x02\x10" else raw
        try:
            readout = decode_advertisement(data, key)
        except FrameError as exc:
            errors.append(str(exc))
            continue
        advertisements.append({
            "product_id": f"0x{readout.product_id:04X}", "record_type": readout.record_type, "nonce": readout.nonce,
            **({"skipped": readout.skipped} if readout.skipped else {}),
        })
        if readout.skipped is None:
            decoded += 1
            reading = merge_readings(reading, readout.reading)
    return Decoded(reading, frames=decoded, rejected=len(errors), errors=errors,
                   extra={"advertisements": advertisements})

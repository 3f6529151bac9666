"""JBD / Xiaoxiang / Overkill "Smart BMS" protocol (Jiabaida V4), sans-IO.

Frames: request ``DD A5|5A reg len data chk_hi chk_lo 77``; response ``DD reg status len data chk 77``
where ``chk = (0x10000 - sum(bytes 2 .. last data byte)) & 0xFFFF``. Replies arrive in <= 20-byte
notifications. All multi-byte values are big-endian. Wire current is positive while charging; the
table's negative scale converts it to the model's discharge-positive sign.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Mapping, Sequence

from bmslib.errors import FrameError
from bmslib.model import DeviceInfo, Reading
from bmslib.protocol.base import OK, WAIT, AdvertisementMatcher, HeadedAssembler
from bmslib.protocol.crc import sum16_complement
from bmslib.protocol.fields import Field, FieldTable, Number, bits_to_names, decode_array, encode_array

SERVICE_UUID = "0000ff00-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000ff01-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000ff02-0000-1000-8000-00805f9b34fb"

START, END = 0xDD, 0x77
READ, WRITE = 0xA5, 0x5A
REG_BASIC, REG_CELLS, REG_HW, REG_ERROR_COUNTS, REG_MOS = 0x03, 0x04, 0x05, 0xAA, 0xE1
STATUS_OK, STATUS_ERROR = 0x00, 0x80
KNOWN_REGISTERS = frozenset({REG_BASIC, REG_CELLS, REG_HW, REG_ERROR_COUNTS, REG_MOS, 0x0A})

MAX_CELLS = 32
MAX_NTC = 8

# Basic info (register 0x03), payload offsets.
BASIC = FieldTable(">", (
    Field("voltage", 0, "H", 0.01),
    Field("current", 2, "h", -0.01),  # wire: + = charging; model: + = discharging
    Field("charge", 4, "H", 0.01),
    Field("capacity", 6, "H", 0.01),
    Field("cycles", 8, "H"),
    Field("production_date", 10, "H"),
    Field("balance_low", 12, "H"),
    Field("balance_high", 14, "H"),
    Field("protection", 16, "H"),
    Field("sw_version", 18, "B"),
    Field("soc", 19, "B"),
    Field("fet", 20, "B"),
    Field("cell_count", 21, "B"),
    Field("ntc_count", 22, "B"),
))
NTC_OFFSET = 23
NTC_FMT, NTC_SCALE, NTC_ADD = ">H", 0.1, -273.1  # 0.1 K absolute

PROTECTION_BITS: Mapping[int, str] = {
    0: "cell_overvoltage", 1: "cell_undervoltage", 2: "pack_overvoltage", 3: "pack_undervoltage",
    4: "charge_overtemperature", 5: "charge_undertemperature", 6: "discharge_overtemperature",
    7: "discharge_undertemperature", 8: "charge_overcurrent", 9: "discharge_overcurrent",
    10: "short_circuit", 11: "frontend_ic_error", 12: "mos_software_lock", 13: "charge_timeout",
}
# Bit 12 is set while a FET was switched off by command: a state, not a fault.
NOT_ALARMS = frozenset({"mos_software_lock"})

FET_CHARGE, FET_DISCHARGE = 0x01, 0x02


def checksum(body: bytes) -> bytes:
    """Checksum over ``body`` (for a response: status, len, data; for a request: reg, len, data)."""
    return struct.pack(">H", sum16_complement(body))


def request(register: int, data: bytes = b"", *, write: bool = False) -> bytes:
    """Host -> BMS frame: read (A5) or write (5A) ``register``."""
    body = bytes((register, len(data))) + data
    return bytes((START, WRITE if write else READ)) + body + checksum(body) + bytes((END,))


def mos_request(charge_on: bool, discharge_on: bool) -> bytes:
    """Write register 0xE1: the value is a *disable* mask (bit0 charge off, bit1 discharge off)."""
    mask = (0 if charge_on else FET_CHARGE) | (0 if discharge_on else FET_DISCHARGE)
    return request(REG_MOS, bytes((0x00, mask)), write=True)


def response(register: int, payload: bytes, status: int = STATUS_OK) -> bytes:
    """BMS -> host frame (used by the emulator and in tests)."""
    body = bytes((status, len(payload))) + payload
    return bytes((START, register)) + body + checksum(body) + bytes((END,))


def parse_request(frame: bytes) -> tuple[int, int, bytes] | None:
    """Device side: ``(mode, register, data)`` of a well-formed request, else None."""
    if len(frame) < 7 or frame[0] != START or frame[-1] != END or frame[1] not in (READ, WRITE):
        return None
    n = frame[3]
    if len(frame) != n + 7 or frame[-3:-1] != checksum(frame[2:4 + n]):
        return None
    return frame[1], frame[2], bytes(frame[4:4 + n])


class JbdAssembler(HeadedAssembler):
    """Assemble ``DD reg status len ... 77`` frames; resync on the next ``DD`` after junk or a bad frame."""

    heads = (bytes((START,)),)
    max_frame, min_frame = 255 + 7, 7

    def check(self, buf: bytearray, at: int) -> tuple[str, int]:
        if len(buf) < at + 4:
            return WAIT, 0
        if buf[at + 2] not in (STATUS_OK, STATUS_ERROR):
            return f"bad status byte 0x{buf[at + 2]:02x}", 0
        end = at + buf[at + 3] + 7
        if len(buf) < end:
            return WAIT, 0
        if buf[end - 1] != END:
            return "missing end byte 0x77", 0
        if buf[end - 3:end - 1] != checksum(bytes(buf[at + 2:end - 3])):
            return "checksum mismatch", 0
        return OK, end


def frame_register(frame: bytes) -> int:
    return frame[1]


def production_date(raw: int) -> str | None:
    try:
        return datetime.date(2000 + (raw >> 9), (raw >> 5) & 0x0F, raw & 0x1F).isoformat()
    except ValueError:
        return None


def decode_basic(payload: bytes) -> Reading:
    v = BASIC.decode(payload)
    cells, ntc = int(v["cell_count"]), int(v["ntc_count"])
    if cells > MAX_CELLS or ntc > MAX_NTC:
        raise FrameError(f"implausible basic info: {cells} cells, {ntc} NTCs", payload)
    if len(payload) < NTC_OFFSET + 2 * ntc:
        raise FrameError(f"basic info too short for {ntc} NTCs", payload)
    temps = decode_array(payload, NTC_OFFSET, ntc, NTC_FMT, NTC_SCALE, NTC_ADD)
    protection = int(v["protection"])
    fet = int(v["fet"])
    sw = int(v["sw_version"])
    reading: Reading = {
        "voltage": round(float(v["voltage"]), 2),
        "current": round(float(v["current"]), 2),
        "charge": round(float(v["charge"]), 2),
        "capacity": round(float(v["capacity"]), 2),
        "cycles": int(v["cycles"]),
        "soc": float(v["soc"]),
        "temperatures": tuple(round(t, 1) for t in temps),
        "switches": {"charge": bool(fet & FET_CHARGE), "discharge": bool(fet & FET_DISCHARGE)},
        "alarms": tuple(a for a in bits_to_names(protection, PROTECTION_BITS) if a not in NOT_ALARMS),
        "extra": {
            "cell_count": cells,
            "balance_bitmask": int(v["balance_low"]) | int(v["balance_high"]) << 16,
            "protection_bitmask": protection,
        },
        "device_info": DeviceInfo(manufacturer="JBD", sw_version=f"{sw >> 4}.{sw & 0x0F}"),
    }
    date = production_date(int(v["production_date"]))
    if date:
        reading["extra"]["production_date"] = date
    return reading


def decode_cells(payload: bytes) -> Reading:
    if len(payload) % 2 or len(payload) > 2 * MAX_CELLS:
        raise FrameError(f"cell frame with {len(payload)} payload bytes", payload)
    cells = decode_array(payload, 0, len(payload) // 2, ">H", 0.001)
    return {"cell_voltages": tuple(round(c, 3) for c in cells)}


def decode_hw(payload: bytes) -> Reading:
    text = payload.split(b"\x00", 1)[0].decode("ascii", "replace").strip()
    return {"device_info": DeviceInfo(model=text)} if text else {}


def decode(frame: bytes) -> Reading:
    """Decode one assembled response frame."""
    if len(frame) < 7 or frame[0] != START or frame[-1] != END or len(frame) != frame[3] + 7:
        raise FrameError("not a JBD response frame", frame)
    register, status, payload = frame[1], frame[2], frame[4:-3]
    if status != STATUS_OK:
        raise FrameError(f"BMS answered register 0x{register:02x} with error status 0x{status:02x}", frame)
    if register == REG_BASIC:
        return decode_basic(payload)
    if register == REG_CELLS:
        return decode_cells(payload)
    if register == REG_HW:
        return decode_hw(payload)
    return {}


class JbdCodec:
    """JBD has no session state: every frame decodes on its own."""

    def assembler(self) -> JbdAssembler:
        return JbdAssembler()

    def decode(self, frame: bytes) -> Reading:
        return decode(frame)


# --- device side (emulator) -------------------------------------------------------------------


def encode_basic(values: Mapping[str, Number], temperatures: Sequence[float]) -> bytes:
    """Basic-info payload from table values (``current`` in the model's sign) and NTC temperatures."""
    payload = bytearray(NTC_OFFSET)
    BASIC.encode({**values, "ntc_count": len(temperatures)}, payload)
    return bytes(payload) + encode_array(temperatures, NTC_FMT, NTC_SCALE, NTC_ADD)


def encode_cells(cells: Sequence[float]) -> bytes:
    return encode_array(cells, ">H", 0.001)


# --- advertisement -------------------------------------------------------------------------------

MATCHERS = (
    AdvertisementMatcher(service_uuid=SERVICE_UUID, local_name="JBD-*"),
    AdvertisementMatcher(service_uuid=SERVICE_UUID, local_name="DWF*"),
    AdvertisementMatcher(service_uuid=SERVICE_UUID, local_name="LSG-*"),
    AdvertisementMatcher(service_uuid=SERVICE_UUID, local_name="SBL-*"),
    AdvertisementMatcher(service_uuid=SERVICE_UUID, local_name="OGR-*"),
    AdvertisementMatcher(service_uuid=SERVICE_UUID, local_name="TZ-H*"),
    AdvertisementMatcher(service_uuid=SERVICE_UUID, local_name="SP??S*"),
    AdvertisementMatcher(service_uuid=SERVICE_UUID, local_name="DP??S*"),
    AdvertisementMatcher(service_uuid=SERVICE_UUID, local_name="SX1*",
                         note="Supervolt v3 pack: speaks the JBD protocol, use type jbd"),
    AdvertisementMatcher(service_uuid=SERVICE_UUID, local_name="SX60*",
                         note="Supervolt Ultra pack: speaks the JBD protocol, use type jbd"),
    *(AdvertisementMatcher(service_uuid=SERVICE_UUID, oui=oui) for oui in (
        "10:A5:62", "A4:C1:37", "A4:C1:38", "A5:C2:37", "A5:C2:39", "A5:C2:3A", "AA:C2:37", "70:3E:97")),
)

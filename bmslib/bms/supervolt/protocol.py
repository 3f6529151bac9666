"""Supervolt / E&J Technology ASCII protocol, sans-IO.

A frame is ASCII: ``:`` + upper-case hex digits + ``~``. The hex digits encode a binary frame
``address, command, version, length (u16be, in ASCII characters, ':' and '~' included), data...,
checksum``; the checksum is ``(sum of the ASCII bytes between ':' and the two checksum characters)
& 0xFF ^ 0xFF``. A reply carries ``command | 0x80``. Offsets below are binary (ASCII = 1 + 2 x binary).

Two requests per poll: realtime (0x02) and capacity (0x10). The single-frame variant (Chins,
Metrisun) answers the realtime request with a longer frame that also holds the capacities.
Each reply decodes to its own :class:`Reading`; the driver merges them.

Some units (names ``libattU*``) send a wrong checksum. For those only, :class:`SupervoltAssembler`
can accept a frame whose checksum fails if its framing is exact and its content plausible.

Newer Supervolt packs (``SX1*`` v3, ``SX60*`` Ultra) speak the JBD protocol: see
:mod:`bmslib.bms.jbd.protocol.frames`, whose matchers claim those names. The device side (emulator encoders)
is in :mod:`bmslib.bms.supervolt.emulator_frames`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from types import MappingProxyType

from bmslib.errors import FrameError
from bmslib.model import Reading
from bmslib.protocol.base import OK, WAIT, AdvertisementMatcher, HeadedAssembler
from bmslib.protocol.crc import sum8
from bmslib.protocol.fields import Field, FieldTable, bits_to_names, decode_array

# Nordic UART service (older units, GAP name "libatt...")
SERVICE_UUID = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
WRITE_UUID = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
NOTIFY_UUID = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
# Newer ASCII units: FF00 with notify FF01 / write FF02 (one source swaps the two; see doc)
ALT_SERVICE_UUID = "0000ff00-0000-1000-8000-00805f9b34fb"
ALT_NOTIFY_UUID = "0000ff01-0000-1000-8000-00805f9b34fb"
ALT_WRITE_UUID = "0000ff02-0000-1000-8000-00805f9b34fb"

START, END = ord(":"), ord("~")
HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")
MODULE_CHATTER = frozenset(b"AT\r\n")  # the BLE module's "AT\r\n" between frames

CMD_REALTIME, CMD_CAPACITY = 0x02, 0x10
REPLY_BIT = 0x80
REPLY_VERSION = 0x31
REQUEST_VERSIONS: Mapping[int, int] = MappingProxyType({CMD_REALTIME: 0x50, CMD_CAPACITY: 0x31})
LEN_REALTIME, LEN_REALTIME_SINGLE, LEN_CAPACITY = 128, 140, 30  # ASCII characters
REPLY_LENGTHS: Mapping[int, frozenset[int]] = MappingProxyType({
    CMD_REALTIME | REPLY_BIT: frozenset({LEN_REALTIME, LEN_REALTIME_SINGLE}),
    CMD_CAPACITY | REPLY_BIT: frozenset({LEN_CAPACITY}),
})
MAX_FRAME = LEN_REALTIME_SINGLE
HEADER_CHARS = 11  # ':' + address, command, version, length

HEADER = FieldTable(">", (
    Field("address", 0, "B"),
    Field("command", 1, "B"),
    Field("version", 2, "B"),
    Field("length", 3, "H"),
))

# Realtime reply (0x82). Bytes 5-11 are undocumented (a date on some units).
REALTIME = FieldTable(">", (
    Field("charge_current", 44, "H", 0.01),
    Field("discharge_current", 46, "H", 0.01),
    Field("working_state", 52, "H"),
    Field("status_byte_54", 54, "B"),  # "alarm" in one source, "heater" in another
    Field("balance_state", 55, "H"),
    Field("discharge_count", 57, "H"),
    Field("charge_count", 59, "H"),
    Field("soc", 61, "B"),
))
CELL_OFFSET, CELL_SLOTS = 12, 16
TEMP_OFFSET, TEMP_SLOTS, TEMP_ADD = 48, 4, -40.0

# Capacities: at 7 in the capacity reply (0x90), at 62 in the single-frame realtime reply.
CAPACITY = FieldTable(">", (
    Field("charge", 0, "H", 0.1),  # remaining
    Field("full", 2, "H", 0.1),  # "complete": the aged full capacity
    Field("design", 4, "H", 0.1),
))
CAPACITY_BASE, SINGLE_FRAME_CAPACITY_BASE = 7, 62

# Working state (u16 at 52)
STATE_CHARGING, STATE_DISCHARGING = 0x0001, 0x0002
DFET_ON, CFET_ON, DFET_SWITCH_ON, CFET_SWITCH_ON = 0x1000, 0x2000, 0x4000, 0x8000
ALARM_MASK = 0x0FFC
ALARM_BITS: Mapping[int, str] = MappingProxyType({
    2: "overcharge_protection", 3: "overdischarge_protection", 4: "overcharged", 5: "short_circuit",
    6: "discharge_protection_1", 7: "discharge_protection_2", 8: "charge_overtemperature",
    9: "charge_undertemperature", 10: "discharge_overtemperature", 11: "discharge_undertemperature",
})

MAX_CURRENT = 500.0  # [A] larger charge/discharge values are known glitches
CHECKSUM_UNRELIABLE_NAMES = ("libattU*",)
JBD_PROTOCOL_NAMES = ("SX1*", "SX60*")  # Supervolt v3 / Ultra: use type jbd


def checksum(text: bytes) -> int:
    """Checksum of the ASCII characters between ``:`` and the checksum itself."""
    return sum8(text) ^ 0xFF


def checksum_unreliable(name: str | None) -> bool:
    """Whether units advertising ``name`` are known to send wrong checksums."""
    return bool(name) and any(fnmatch.fnmatchcase(name or "", p) for p in CHECKSUM_UNRELIABLE_NAMES)


def speaks_jbd(name: str | None) -> bool:
    """Whether ``name`` is a newer Supervolt pack that speaks the JBD protocol (type ``jbd``)."""
    return bool(name) and any(fnmatch.fnmatchcase(name or "", p) for p in JBD_PROTOCOL_NAMES)


def _is_hex(data: bytes | bytearray) -> bool:
    return all(b in HEX_DIGITS for b in data)


def encode_frame(command: int, data: bytes, *, version: int = REPLY_VERSION, address: int = 0) -> bytes:
    """ASCII frame around ``data`` (binary bytes after the header), with length and checksum."""
    binary = bytearray(5)
    HEADER.encode({"address": address, "command": command, "version": version,
                   "length": 2 * (len(binary) + len(data) + 1) + 2}, binary)
    text = (bytes(binary) + data).hex().upper().encode("ascii")
    return b":" + text + f"{checksum(text):02X}".encode("ascii") + b"~"


def request(command: int) -> bytes:
    """Host -> BMS read request (``CMD_REALTIME`` or ``CMD_CAPACITY``)."""
    return encode_frame(command, b"", version=REQUEST_VERSIONS[command])


REQUEST_REALTIME = request(CMD_REALTIME)
REQUEST_CAPACITY = request(CMD_CAPACITY)


def unpack(frame: bytes) -> bytes:
    """Binary content of an ASCII frame whose framing and length field are exact (checksum not checked)."""
    if len(frame) < 14 or frame[0] != START or frame[-1] != END or len(frame) % 2:
        raise FrameError("not a ':'...'~' frame of even length", frame)
    if not _is_hex(frame[1:-1]):
        raise FrameError("non-hex character in frame", frame)
    binary = bytes.fromhex(frame[1:-1].decode("ascii"))
    if HEADER.decode(binary)["length"] != len(frame):
        raise FrameError(f"length field {HEADER.decode(binary)['length']} != {len(frame)} characters", frame)
    return binary


def checksum_ok(frame: bytes) -> bool:
    return int(frame[-3:-1], 16) == checksum(frame[1:-3])


def frame_command(frame: bytes) -> int:
    """The request command an assembled reply answers (``CMD_REALTIME`` or ``CMD_CAPACITY``)."""
    return int(frame[3:5], 16) & ~REPLY_BIT


def plausibility_problem(frame: bytes) -> str | None:
    """Why a reply cannot be real data (None: plausible). Guards frames accepted without checksum."""
    try:
        binary = unpack(frame)
    except FrameError as e:
        return e.reason
    if len(frame) not in REPLY_LENGTHS.get(binary[1], frozenset()):
        return f"command 0x{binary[1]:02x} with {len(frame)} characters"
    if binary[1] == CMD_CAPACITY | REPLY_BIT or len(frame) == LEN_REALTIME_SINGLE:
        base = CAPACITY_BASE if binary[1] == CMD_CAPACITY | REPLY_BIT else SINGLE_FRAME_CAPACITY_BASE
        cap = CAPACITY.decode(binary, base)
        if cap["design"] <= 0 or max(cap["charge"], cap["full"]) > 2 * cap["design"]:
            return f"implausible capacities {cap}"
    if binary[1] == CMD_REALTIME | REPLY_BIT:
        v = REALTIME.decode(binary)
        cells = decode_array(binary, CELL_OFFSET, CELL_SLOTS, ">H", 0.001)
        temps = decode_array(binary, TEMP_OFFSET, TEMP_SLOTS, ">B", 1, TEMP_ADD)
        if not any(cells) or any(c and not 1.0 <= c <= 5.0 for c in cells):
            return "cell voltages out of range"
        if max(temps) > 120 or v["soc"] > 100:
            return "temperature or SoC out of range"
        if max(v["charge_current"], v["discharge_current"]) > MAX_CURRENT:
            return "current out of range"
    return None


class SupervoltAssembler(HeadedAssembler):
    """Assemble ``:`` ... ``~`` frames by their length field; resync on the next ``:``.

    With ``accept_plausible=True`` (only for names known to send wrong checksums) a frame whose
    checksum fails is still accepted when its framing is exact and :func:`plausibility_problem`
    finds nothing; ``unverified`` counts such frames. Junk made only of the BLE module's
    ``AT\\r\\n`` chatter is removed without counting.
    """

    heads = (bytes((START,)),)
    max_frame, min_frame = MAX_FRAME, LEN_CAPACITY

    def __init__(self, *, accept_plausible: bool = False) -> None:
        super().__init__()
        self.accept_plausible = accept_plausible
        self.unverified = 0

    def check(self, buf: bytearray, at: int) -> tuple[str, int]:
        if _non_hex(buf, at + 1, at + HEADER_CHARS):
            return "non-hex character in frame header", 0
        if len(buf) < at + HEADER_CHARS:
            return WAIT, 0
        length = int(buf[at + 7:at + 11], 16)
        if length not in REPLY_LENGTHS.get(int(buf[at + 3:at + 5], 16), frozenset()):
            return f"unknown reply (command {buf[at + 3:at + 5].decode()}, length {length})", 0
        end = at + length
        if _non_hex(buf, at + HEADER_CHARS, end - 1):
            return "non-hex character in frame", 0
        if len(buf) < end:
            return WAIT, 0
        if buf[end - 1] != END:
            return "no '~' where the length field says", 0
        frame = bytes(buf[at:end])
        if checksum_ok(frame):
            return OK, end
        if not self.accept_plausible:
            return "checksum mismatch", end
        if problem := plausibility_problem(frame):
            return f"checksum mismatch and {problem}", end
        return OK, end

    def _accept(self, frame: bytes) -> bytes:
        if not checksum_ok(frame):
            self.unverified += 1
        return super()._accept(frame)

    def _junk(self, reason: str, raw: bytes) -> None:
        if not all(b in MODULE_CHATTER for b in raw):
            super()._junk("junk outside a frame", raw)


def _non_hex(buf: bytearray, lo: int, hi: int) -> bool:
    """True if a byte in ``buf[lo:hi]`` (as far as it is buffered) is not a hex digit."""
    return not HEX_DIGITS.issuperset(buf[lo:hi])


def decode_capacity(binary: bytes, base: int) -> Reading:
    v = CAPACITY.decode(binary, base)
    full, design = round(float(v["full"]), 1), round(float(v["design"]), 1)
    return {
        "charge": round(float(v["charge"]), 1),
        "capacity": full or design,
        "extra": {"design_capacity": design},
    }


def decode_realtime(binary: bytes) -> Reading:
    v = REALTIME.decode(binary)
    cells = [round(c, 3) for c in decode_array(binary, CELL_OFFSET, CELL_SLOTS, ">H", 0.001)]
    while cells and not cells[-1]:
        cells.pop()  # empty slots
    state = int(v["working_state"])
    reading: Reading = {
        "soc": float(v["soc"]),
        "cycles": int(v["discharge_count"]),
        "temperatures": tuple(decode_array(binary, TEMP_OFFSET, TEMP_SLOTS, ">B", 1, TEMP_ADD)),
        "switches": {"charge": bool(state & CFET_ON), "discharge": bool(state & DFET_ON)},
        "alarms": bits_to_names(state & ALARM_MASK, ALARM_BITS),
        "extra": {
            "cell_count": len(cells),
            "working_state": state,
            "charge_switch": bool(state & CFET_SWITCH_ON),
            "discharge_switch": bool(state & DFET_SWITCH_ON),
            "status_byte_54": int(v["status_byte_54"]),
            "balance_bitmask": int(v["balance_state"]),
            "charge_count": int(v["charge_count"]),
        },
    }
    if cells:
        reading["cell_voltages"] = tuple(cells)
    charge_a, discharge_a = float(v["charge_current"]), float(v["discharge_current"])
    if max(charge_a, discharge_a) <= MAX_CURRENT:
        reading["current"] = round(discharge_a - charge_a, 2)  # model: + = discharging
    else:
        reading["extra"]["current_glitch"] = True
    return reading


def decode(frame: bytes) -> Reading:
    """Decode one assembled reply (framing is checked here too; the checksum is the assembler's job)."""
    binary = unpack(frame)
    command = binary[1]
    if len(frame) not in REPLY_LENGTHS.get(command, frozenset()):
        raise FrameError(f"unknown reply: command 0x{command:02x}, {len(frame)} characters", frame)
    if command == CMD_CAPACITY | REPLY_BIT:
        return decode_capacity(binary, CAPACITY_BASE)
    reading = decode_realtime(binary)
    if len(frame) == LEN_REALTIME_SINGLE:
        capacity = decode_capacity(binary, SINGLE_FRAME_CAPACITY_BASE)
        reading.update({"charge": capacity["charge"], "capacity": capacity["capacity"]})
        reading["extra"].update(capacity["extra"])
    return reading


class SupervoltCodec:
    """Session: whether bad checksums may pass (by device name) and whether the unit is single-frame."""

    def __init__(self, name: str | None = None, *, accept_plausible: bool | None = None) -> None:
        self.accept_plausible = checksum_unreliable(name) if accept_plausible is None else accept_plausible
        self.single_frame = False

    def assembler(self) -> SupervoltAssembler:
        return SupervoltAssembler(accept_plausible=self.accept_plausible)

    def decode(self, frame: bytes) -> Reading:
        reading = decode(frame)
        if len(frame) == LEN_REALTIME_SINGLE:
            self.single_frame = True
        return reading

    def poll_requests(self) -> tuple[bytes, ...]:
        """Requests for one reading: the capacity request is skipped once a single-frame reply was seen."""
        return (REQUEST_REALTIME,) if self.single_frame else (REQUEST_REALTIME, REQUEST_CAPACITY)


# --- advertisement -------------------------------------------------------------------------------

MATCHERS = (
    AdvertisementMatcher(local_name="libatt*", manufacturer_id=0x5348),
    AdvertisementMatcher(local_name="libatt*", service_uuid=SERVICE_UUID),
    AdvertisementMatcher(local_name="SV12V*", manufacturer_id=0x8268),
)

"""SOK / ABC-BMS protocol, sans-IO.

Requests are 6 bytes ``EE cmd 00 00 00 crc8``; every reply is one 20-byte notification
``CC type ... crc8`` (CRC-8/MAXIM over bytes 0..18, little-endian fields). One request is answered
by several replies: C0 -> F1; C1 -> F0, F2; C2 -> F0, F3 and one F4 per four cells; C3 -> F5, F6,
F7, F8, FA (settings, layout unknown); C4 -> F9 (not every BMS answers it).

:class:`SokCodec` collects the replies of the current request into one :class:`Reading`
(``decode`` returns the set's reading so far) and says when the set is complete. Wire current is
positive while charging; the table's negative scale gives the model's discharge-positive sign.
No write commands (FETs, balancer) are documented: the FET states are read-only. The device side
(emulator encoders) is in :mod:`bmslib.bms.sok.emulator_frames`.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from types import MappingProxyType

from bmslib.errors import FrameError
from bmslib.model import DeviceInfo, Reading, merge_readings
from bmslib.protocol.base import OK, WAIT, AdvertisementMatcher, HeadedAssembler
from bmslib.protocol.crc import crc8_maxim
from bmslib.protocol.fields import Field, FieldTable, bits_to_names, decode_array

ADVERTISED_SERVICE_UUID = "0000fff0-0000-1000-8000-00805f9b34fb"  # in advertisements only
SERVICE_UUID = "0000ffe0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000ffe1-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000ffe2-0000-1000-8000-00805f9b34fb"

REQUEST_HEAD, REPLY_HEAD = 0xEE, 0xCC
REQUEST_LEN, FRAME_LEN = 6, 20
CMD_NAME, CMD_INFO, CMD_DETAIL, CMD_SETTINGS, CMD_PROTECTION = 0xC0, 0xC1, 0xC2, 0xC3, 0xC4
F_STATUS, F_NAME, F_FETS, F_DETAIL, F_CELLS, F_PROTECTION = 0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF9
F_SETTINGS = frozenset({0xF5, 0xF6, 0xF7, 0xF8, 0xFA})
REPLIES: Mapping[int, frozenset[int]] = MappingProxyType({
    CMD_NAME: frozenset({F_NAME}),
    CMD_INFO: frozenset({F_STATUS, F_FETS}),
    CMD_DETAIL: frozenset({F_STATUS, F_DETAIL, F_CELLS}),
    CMD_SETTINGS: F_SETTINGS,
    CMD_PROTECTION: frozenset({F_PROTECTION}),
})
POLL_COMMANDS = (CMD_INFO, CMD_DETAIL)  # C4 is optional: not every BMS answers it

STATUS = FieldTable("<", (
    Field("voltage", 2, "u24", 0.001),
    Field("current", 5, "i24", -0.001),  # wire: + = charging; model: + = discharging
    Field("capacity", 8, "u24", 0.001),  # design capacity [Ah]
    Field("charge", 11, "u24", 0.001),  # remaining [Ah]
    Field("cycles", 14, "H"),
    Field("soc", 16, "B"),
))
FETS = FieldTable("<", (
    Field("charge_fet", 2, "B"),
    Field("discharge_fet", 3, "B"),
    Field("temp_count", 4, "B"),
))
TEMP_OFFSET, MAX_TEMPS = 5, 7  # i16 °C, as many as fit before the CRC
DETAIL = FieldTable("<", (
    Field("year", 2, "B"),  # years since 2000
    Field("month", 3, "B"),  # month and day: inferred from one fixture
    Field("day", 4, "B"),
    Field("heater", 8, "B"),
    Field("balancer", 10, "B"),
))
DETAIL_BE = FieldTable(">", (Field("f3_capacity", 5, "u24", 1 / 128),))  # meaning doubtful, see doc
CELLS_PER_FRAME, MAX_CELLS = 4, 32
CELLS = FieldTable("<", tuple(
    f for k in range(CELLS_PER_FRAME)
    for f in (Field(f"index{k}", 2 + 4 * k, "B"), Field(f"cell{k}", 3 + 4 * k, "H", 0.001))
))
PROTECTION_OFFSET, PROTECTION_FLAGS = 2, 16
PROTECTION_NAMES: Mapping[int, str] = MappingProxyType({k: f"protection_{k}" for k in range(16)})
# Cells complete when their sum is within half a (mean) cell of the F0 pack voltage: a missing cell
# reply leaves out at least one whole cell, even when it is the last and holds a single cell.
CELL_TOLERANCE = 0.5


def request(command: int) -> bytes:
    """Host -> BMS request ``EE cmd 00 00 00 crc8``."""
    body = bytes((REQUEST_HEAD, command, 0, 0, 0))
    return body + bytes((crc8_maxim(body),))


def reply(kind: int, body: bytes = b"") -> bytes:
    """BMS -> host frame ``CC kind body... crc8`` (``body`` is bytes 2..18, zero-padded)."""
    if len(body) > FRAME_LEN - 3:
        raise ValueError(f"reply body of {len(body)} bytes")
    frame = bytes((REPLY_HEAD, kind)) + body.ljust(FRAME_LEN - 3, b"\x00")
    return frame + bytes((crc8_maxim(frame),))


def frame_type(frame: bytes) -> int:
    return frame[1]


class SokAssembler(HeadedAssembler):
    """Assemble 20-byte ``CC Fx ... crc8`` frames; resync on the next ``CC`` after junk or a bad CRC."""

    heads = (bytes((REPLY_HEAD,)),)
    max_frame = min_frame = FRAME_LEN

    def check(self, buf: bytearray, at: int) -> tuple[str, int]:
        if len(buf) < at + 2:
            return WAIT, 0
        if buf[at + 1] & 0xF0 != 0xF0:
            return f"bad reply type 0x{buf[at + 1]:02x}", 0
        end = at + FRAME_LEN
        if len(buf) < end:
            return WAIT, 0
        if crc8_maxim(bytes(buf[at:end - 1])) != buf[end - 1]:
            return "CRC mismatch", 0
        return OK, end


def _check(frame: bytes) -> None:
    if len(frame) != FRAME_LEN or frame[0] != REPLY_HEAD:
        raise FrameError("not a 20-byte CC reply", frame)


def decode_status(frame: bytes) -> Reading:
    v = STATUS.decode(frame)
    return {
        "voltage": round(float(v["voltage"]), 3),
        "current": round(float(v["current"]), 3),
        "capacity": round(float(v["capacity"]), 3),
        "charge": round(float(v["charge"]), 3),
        "cycles": int(v["cycles"]),
        "soc": float(v["soc"]),
    }


def decode_fets(frame: bytes) -> Reading:
    v = FETS.decode(frame)
    count = int(v["temp_count"])
    if count > MAX_TEMPS:
        raise FrameError(f"{count} temperature sensors do not fit a reply", frame)
    return {
        "switches": {"charge": bool(v["charge_fet"]), "discharge": bool(v["discharge_fet"])},
        "temperatures": tuple(decode_array(frame, TEMP_OFFSET, count, "<h")),
    }


def decode_detail(frame: bytes) -> Reading:
    v = DETAIL.decode(frame)
    extra: dict[str, float | int | str | bool] = {
        "heater": bool(v["heater"]),
        "balancing": bool(v["balancer"]),
        "f3_capacity": round(float(DETAIL_BE.decode(frame)["f3_capacity"]), 3),
    }
    try:
        date = datetime.date(2000 + int(v["year"]), int(v["month"]), int(v["day"]))
        extra["manufacture_date"] = date.isoformat()
    except ValueError:
        pass
    return {"extra": extra}


def decode_protection(frame: bytes) -> Reading:
    flags = decode_array(frame, PROTECTION_OFFSET, PROTECTION_FLAGS, "<B")
    mask = sum((int(f) & 1) << k for k, f in enumerate(flags))
    return {"alarms": bits_to_names(mask, PROTECTION_NAMES), "extra": {"protection_bitmask": mask}}


def decode_name(frame: bytes) -> Reading:
    text = frame[2:-1].split(b"\x00", 1)[0].decode("ascii", "replace").strip()
    return {"device_info": DeviceInfo(model=text)} if text else {}


def decode_cells(frame: bytes) -> dict[int, float]:
    """Cell index (1-based) -> voltage [V] of one F4 reply; slots with index 0 are empty."""
    _check(frame)
    v = CELLS.decode(frame)
    cells = {int(v[f"index{k}"]): round(float(v[f"cell{k}"]), 3) for k in range(CELLS_PER_FRAME)}
    cells.pop(0, None)
    if any(i > MAX_CELLS for i in cells):
        raise FrameError(f"cell index beyond {MAX_CELLS}", frame)
    return cells


def decode(frame: bytes) -> Reading:
    """Decode one reply on its own. Cell replies (F4) need :class:`SokCodec` and give ``{}`` here."""
    _check(frame)
    kind = frame[1]
    if kind == F_STATUS:
        return decode_status(frame)
    if kind == F_NAME:
        return decode_name(frame)
    if kind == F_FETS:
        return decode_fets(frame)
    if kind == F_DETAIL:
        return decode_detail(frame)
    if kind == F_PROTECTION:
        return decode_protection(frame)
    return {}


class SokCodec:
    """Collects the replies of one request into one reading.

    Call :meth:`request` to start a reply set (it returns the bytes to write), feed each assembled
    frame to :meth:`decode` (or :meth:`offer`), and read :attr:`complete` / :meth:`reading`. Replies
    that do not belong to the current request are ignored and counted. Without a request, frames of
    any type are collected and the set is never complete.

    The number of cell replies (F4) is not announced. The cells are complete when the cell count is
    known (``cell_count``, or learnt from an earlier complete set), when a cell reply has empty
    slots, when the cells repeat, or when their sum is within half a cell of the pack voltage of F0
    (a missing cell reply leaves out at least one whole cell).
    """

    def __init__(self, cell_count: int | None = None) -> None:
        self.cell_count = cell_count
        self.command: int | None = None
        self.ignored = 0  # frames outside the current reply set
        self.rejected = 0  # frames offer() could not decode
        self._missing: set[int] = set()
        self._parts: list[Reading] = []
        self._cells: dict[int, float] = {}
        self._cells_end = False  # a cell reply said the list ends (empty slots, or a repeat)
        self._cells_done = False

    def assembler(self) -> SokAssembler:
        return SokAssembler()

    def request(self, command: int) -> bytes:
        """Start the reply set of ``command``; return the request to write."""
        self.command = command
        self._missing = set(REPLIES.get(command, ()))
        self._parts = []
        self._cells = {}
        self._cells_end = self._cells_done = False
        return request(command)

    @property
    def complete(self) -> bool:
        return self.command is not None and not self._missing

    @property
    def missing(self) -> frozenset[int]:
        """Reply types still expected for the current request."""
        return frozenset(self._missing)

    def decode(self, frame: bytes) -> Reading:
        """Add one reply to the set; return the set's reading so far. Raises FrameError."""
        _check(frame)
        kind = frame[1]
        expected = self.command is None or kind in REPLIES.get(self.command, ())
        if not expected or (kind == F_CELLS and self._cells_done):
            self.ignored += 1
            return self.reading()
        if kind == F_CELLS:
            self._add_cells(decode_cells(frame))
        else:
            self._parts.append(decode(frame))
            self._missing.discard(kind)
        self._check_cells()
        return self.reading()

    def offer(self, frame: bytes) -> bool:
        """:meth:`decode` without raising (for a transport's frame predicate): True once complete."""
        try:
            self.decode(frame)
        except FrameError:
            self.rejected += 1
        return self.complete

    def reading(self) -> Reading:
        out = merge_readings(*self._parts)
        cells = self._contiguous()
        if cells:
            out["cell_voltages"] = tuple(cells)
        return out

    def _contiguous(self) -> list[float]:
        out: list[float] = []
        while len(out) + 1 in self._cells:
            out.append(self._cells[len(out) + 1])
        return out

    def _add_cells(self, cells: dict[int, float]) -> None:
        repeated = bool(self._cells) and all(i in self._cells for i in cells)
        if not repeated:
            self._cells.update(cells)
        if repeated or len(cells) < CELLS_PER_FRAME:
            self._cells_end = True  # the device has no more cells to send

    def _check_cells(self) -> None:
        n = len(self._contiguous())
        if self._cells_done or not n or n != len(self._cells):
            return  # done already, nothing yet, or a gap: wait for the missing reply (or a timeout)
        count = self.cell_count or 0
        voltage = merge_readings(*self._parts).get("voltage") or 0.0
        total = sum(self._cells.values())
        by_voltage = abs(total - voltage) <= CELL_TOLERANCE * total / n
        self._cells_done = (self._cells_end or 0 < count <= n
                            or (voltage > 0 and n % CELLS_PER_FRAME == 0 and by_voltage))
        if self._cells_done:
            self.cell_count = max(self.cell_count or 0, n)
            self._missing.discard(F_CELLS)


# --- advertisement -------------------------------------------------------------------------------

MATCHERS = tuple(
    AdvertisementMatcher(local_name=name, service_uuid=ADVERTISED_SERVICE_UUID)
    for name in ("SOK-*", "ABC-*", "NB-*", "Hoover")
)

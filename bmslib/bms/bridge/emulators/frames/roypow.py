"""RoyPow (aiobmsble plugin ``roypow``) frames: ``EA D1 01 len FF cmd data xor F5``.

``len`` counts the bytes after it (``FF``, ``cmd``, the data, ``xor`` and the tail); ``xor`` is the XOR of
``len`` through the data. The host asks with no data (``EA D1 01 04 FF cmd xor F5``). Values are big-endian.

Replies, by command (data offsets, from the captured replies in tests/bms/bridge/captures/roypow.json):

- ``02`` cells: three bytes holding the cell count (all three are 4 in the 4-cell capture; which one the device
  counts with is not pinned), then the cell voltages [mV].
- ``03`` status: flags (bit 0 set: the current flows out), current [0.01 A], 24 alarm bits, the number of
  temperature probes at 7 and up to four temperatures [degC + 40] at 8, the FET byte at 18 (bit 2 charge,
  bit 1 discharge; bit 0 set in the capture, meaning not known).
- ``04`` pack values, tag-value pairs: SoC (tag 01), cycles (02), full and design capacity and the remaining
  charge [mAh] as high and low 16-bit words (03/04, 05/06, 07/08), remaining time [min] (09, FFFF while not
  discharging); the bytes from tag 0A up to the voltage [0.01 V] at 41 and those after it are sent as captured
  (not pinned).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bmslib.protocol.fields import Field, FieldTable, Number

HEAD = b"\xea\xd1\x01"
TAIL = 0xF5
REQUEST_LEN = 8
AT_STAT = b"AT+STAT\r\n"  # what the BLE module itself sends (the plugin drops it)

CELLS, STATUS, VALUES = 0x02, 0x03, 0x04

STATUS_LEN = 22
STATUS_FLAGS = 0x32  # as captured (charging); bit 0: the current flows out
FLAG_DISCHARGING = 0x01
TEMP_SLOTS = 4
TEMP_OFFSET = 40
FET_CHARGE, FET_DISCHARGE, FET_BIT0 = 0x04, 0x02, 0x01
STATUS_FIELDS = FieldTable(">", (
    Field("current", 1, "H", 0.01), Field("alarms", 3, "u24"), Field("temp_count", 7, "B"), Field("fets", 18, "B"),
))

VALUES_LEN = 53
#: the pack-value reply's data as captured; the fields of VALUES_FIELDS are written over it
VALUES_TEMPLATE = bytes.fromhex(
    "016002000203000104" "9a2805000106" "9e2407000108" "7f7d09ffff0a04d40b00164a700c250317005145"
    "05440d2e0d290d144e000000")
VALUES_FIELDS = FieldTable(">", (
    Field("soc", 1, "B"), Field("cycles", 3, "H"),
    Field("full_hi", 6, "H"), Field("full_lo", 9, "H"), Field("design_hi", 12, "H"), Field("design_lo", 15, "H"),
    Field("charge_hi", 18, "H"), Field("charge_lo", 21, "H"), Field("runtime", 24, "H"),
    Field("voltage", 41, "H", 0.01),
))
NO_RUNTIME = 0xFFFF


def xor(data: bytes) -> int:
    out = 0
    for b in data:
        out ^= b
    return out


def frame(cmd: int, data: bytes) -> bytes:
    body = bytes((len(data) + 4, 0xFF, cmd)) + data
    return HEAD + body + bytes((xor(body), TAIL))


def request(cmd: int) -> bytes:
    return frame(cmd, b"")


def parse_request(buf: bytes) -> int | None:
    """The command of a whole request, or None if ``buf`` is not one."""
    if len(buf) != REQUEST_LEN or not buf.startswith(HEAD) or buf[3] != 4 or buf[4] != 0xFF or buf[-1] != TAIL:
        return None
    return buf[5] if xor(buf[3:6]) == buf[6] else None


def cells_reply(cells: Sequence[float]) -> bytes:
    n = len(cells) & 0xFF
    return frame(CELLS, bytes((n, n, n)) + b"".join(round(v * 1000).to_bytes(2, "big") for v in cells))


def status_reply(current: float, temps: Sequence[float], *, charge_fet: bool, discharge_fet: bool,
                 alarms: int = 0) -> bytes:
    """The status reply: current [A, + = charging], temperatures [degC, whole degrees, up to four]."""
    data = bytearray(STATUS_LEN)
    data[0] = STATUS_FLAGS | (FLAG_DISCHARGING if current < 0 else 0)
    slots = [min(255, max(0, round(t) + TEMP_OFFSET)) for t in temps[:TEMP_SLOTS]]
    STATUS_FIELDS.encode({"current": min(655.35, abs(current)), "alarms": alarms, "temp_count": len(slots),
                          "fets": FET_BIT0 | (FET_CHARGE if charge_fet else 0)
                          | (FET_DISCHARGE if discharge_fet else 0)}, data)
    data[8:8 + len(slots)] = bytes(slots)
    return frame(STATUS, bytes(data))


def values_reply(values: Mapping[str, Number], runtime: float | None) -> bytes:
    """The pack-value reply: ``soc`` [%], ``cycles``, ``full_capacity``, ``design_capacity`` and ``charge``
    [Ah], ``voltage`` [V]; ``runtime`` [min] (None: not discharging)."""
    data = bytearray(VALUES_TEMPLATE)
    words: dict[str, Number] = {"soc": values["soc"], "cycles": values["cycles"], "voltage": values["voltage"]}
    for name, key in (("full", "full_capacity"), ("design", "design_capacity"), ("charge", "charge")):
        mah = max(0, min(0xFFFFFFFF, round(values[key] * 1000)))
        words |= {f"{name}_hi": mah >> 16, f"{name}_lo": mah & 0xFFFF}
    words["runtime"] = NO_RUNTIME if runtime is None else min(NO_RUNTIME - 1, max(0, round(runtime)))
    VALUES_FIELDS.encode(words, data)
    return frame(VALUES, bytes(data))

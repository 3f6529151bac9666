"""Offgridtec Smart Pro (aiobmsble plugin ``ogt``) frames: ASCII register reads, XOR-scrambled with a key.

The key follows from the advertised name ``SmartBat-<type><number>``: the number in hexadecimal (at least four
digits), each digit looked up in a 16-entry table and summed, plus 5 for type A or 8 for type B. Every byte
either way is XORed with it. The host asks ``<header><register:02X><length:02X>`` (header ``+RAA`` for type A,
``+R16`` for type B); the device answers ``+RD,<register:02X><value>\\r\\n``: the value as 16-bit little-endian
hex, and for a 3-byte register a multiplier byte after it (the value is ``int16 * multiplier``). A register the
device does not have gets ``+RD,Err...``; the tail after ``Err`` is not pinned (``\\r\\n`` here).

Registers and scales come from aiobmsble's plugin and its test frames (tests/bms/bridge/captures/ogt.json: made
for that test from the protocol, not captured from a device).
"""

from __future__ import annotations

from collections.abc import Mapping
from string import hexdigits
from typing import Final

#: the key table (digit -> addend)
KEY_TABLE: Final = (2, 5, 4, 3, 1, 4, 1, 6, 8, 3, 7, 2, 5, 8, 9, 3)
HEADERS: Final = {"A": "+RAA", "B": "+R16"}
REQUEST_LEN = 8
KELVIN = 273.15

#: registers by type: name -> (register, length); 3-byte registers are sent with a multiplier
REGISTERS: Final[Mapping[str, Mapping[str, tuple[int, int]]]] = {
    "A": {"soc": (2, 1), "charge": (4, 3), "voltage": (8, 2), "temperature": (12, 2), "current": (16, 3),
          "runtime": (24, 2), "cycles": (44, 2), "design_capacity": (60, 3)},
    "B": {"temperature": (8, 2), "voltage": (9, 2), "current": (10, 3), "soc": (13, 1), "charge": (15, 3),
          "runtime": (18, 2), "cycles": (23, 2), "design_capacity": (24, 3)},
}
#: type B: cell n (from 1) at register 64 - n, up to 16 cells
CELL_FIRST_REGISTER, MAX_CELLS = 63, 16
#: multipliers as the test frames show them: 10 for capacities and type B's current [mA], 0 (read as 1) for
#: type A's current [0.01 A]
MULTIPLIER: Final[Mapping[str, Mapping[str, int]]] = {
    "A": {"charge": 10, "current": 0, "design_capacity": 10},
    "B": {"charge": 10, "current": 10, "design_capacity": 10},
}
NO_RUNTIME = 0xFFFF  # not discharging


def key(name: str) -> int | None:
    """The XOR key of a device called ``name``, or None if the name is not ``SmartBat-<A|B><digits>``."""
    kind, number = name[9:10], name[10:]
    if len(name) <= 10 or kind not in HEADERS or not number.isdigit():
        return None
    return sum(KEY_TABLE[int(c, 16)] for c in f"{int(number):0>4X}") + (5 if kind == "A" else 8)


def scramble(text: str | bytes, k: int) -> bytes:
    raw = text.encode("ascii") if isinstance(text, str) else text
    return bytes(b ^ k for b in raw)


def request(kind: str, register: int, length: int, k: int) -> bytes:
    return scramble(f"{HEADERS[kind]}{register:0>2X}{length:0>2X}", k)


def parse_request(data: bytes, kind: str, k: int) -> tuple[int, int] | None:
    """``(register, length)`` of a scrambled request, or None if it is not one of this type's."""
    if len(data) != REQUEST_LEN:
        return None
    text = scramble(data, k)
    if not text.startswith(HEADERS[kind].encode()) or not all(chr(c) in hexdigits for c in text[4:]):
        return None
    return int(text[4:6], 16), int(text[6:8], 16)


def reply(register: int, raw: int, k: int, multiplier: int | None = None) -> bytes:
    """The scrambled reply carrying ``raw`` (a 16-bit value; with ``multiplier``: signed, and the byte after)."""
    value = (raw & 0xFFFF).to_bytes(2, "little").hex().upper()
    tail = "" if multiplier is None else f"{multiplier & 0xFF:0>2X}"
    return scramble(f"+RD,{register:0>2X}{value}{tail}\r\n", k)


def error_reply(k: int) -> bytes:
    return scramble("+RD,Err\r\n", k)


def raw_values(kind: str, values: Mapping[str, float]) -> dict[int, tuple[int, int | None]]:
    """register -> (raw value, multiplier or None) for ``values``: soc [%], charge and design_capacity [Ah],
    voltage [V], temperature [degC], current [A, + = charging], runtime [min; omitted: not discharging],
    cycles."""
    out: dict[int, tuple[int, int | None]] = {}
    for name, (register, length) in REGISTERS[kind].items():
        v = values.get(name)
        if name == "runtime":
            raw = NO_RUNTIME if v is None else min(NO_RUNTIME - 1, max(0, round(v)))
        elif v is None:
            continue
        elif name == "temperature":
            raw = round((v + KELVIN) * 10)
        elif name in ("charge", "design_capacity"):
            raw = round(v * 1000 / MULTIPLIER[kind][name])
        elif name == "current":
            unit = 1000 / MULTIPLIER[kind][name] if kind == "B" else 100  # type B: mA / multiplier; A: 0.01 A
            raw = round(v * unit)
        elif name == "voltage":
            raw = round(v * 1000)
        else:
            raw = round(v)
        if length == 3:
            raw = max(-0x8000, min(0x7FFF, raw))
        out[register] = (raw, MULTIPLIER[kind][name] if length == 3 else None)
    return out

"""CBT Power (aiobmsble plugin ``cbtpwr``) frames: ``AA 55 cmd len data sum tail``.

``sum`` is the low byte of the sum of ``cmd``, ``len`` and the data. The host's requests carry no data and end
in ``0A 0D``; the device's replies end in ``0D 0A``. Values are little-endian.

Replies, by command (data offsets, from the captured replies in tests/bms/bridge/captures/cbtpwr.json):
``05``-``08`` five cell voltages each [mV] (a cell that does not exist: 0), ``09`` six temperatures [degC,
signed], ``0A`` the SoC [%], ``0B`` voltage [mV] and current [mA, + = charging], ``0C`` the remaining time
[0.01 h] at 10, ``15`` the design capacity [Ah] and cycles, ``21`` 32 alarm bits. Bytes the captures do not pin
are sent as zero; the capture file lists them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bmslib.protocol.crc import sum8
from bmslib.protocol.fields import Field, FieldTable, Number

HEAD = b"\xaa\x55"
TAIL_RX = b"\x0d\x0a"  # the device's replies
TAIL_TX = b"\x0a\x0d"  # the host's requests
REQUEST_LEN = 7

CELLS_FIRST, CELLS_LAST = 0x05, 0x08  # five cells per reply: at most 20
CELLS_PER_FRAME = 5
TEMPS = 0x09
TEMP_SLOTS = 6
SOC = 0x0A
POWER = 0x0B
RUNTIME = 0x0C
CAPACITY = 0x15
ALARMS = 0x21

FIELDS: Mapping[int, tuple[int, FieldTable]] = {  # command -> data length, fields
    SOC: (6, FieldTable("<", (Field("soc", 0, "B"),))),
    POWER: (8, FieldTable("<", (Field("voltage", 0, "I", 0.001), Field("current", 4, "i", 0.001)))),
    RUNTIME: (12, FieldTable("<", (Field("runtime", 10, "H", 0.01),))),
    CAPACITY: (4, FieldTable("<", (Field("design_capacity", 0, "H"), Field("cycles", 2, "H")))),
    ALARMS: (4, FieldTable("<", (Field("alarms", 0, "I"),))),
}


def frame(cmd: int, data: bytes, tail: bytes = TAIL_RX) -> bytes:
    body = bytes((cmd, len(data))) + data
    return HEAD + body + bytes((sum8(body),)) + tail


def request(cmd: int) -> bytes:
    return frame(cmd, b"", TAIL_TX)


def parse_request(buf: bytes) -> int | None:
    """The command of a whole request, or None if ``buf`` is not one."""
    if len(buf) != REQUEST_LEN or not buf.startswith(HEAD) or not buf.endswith(TAIL_TX) or buf[3] != 0:
        return None
    return buf[2] if buf[4] == buf[2] else None


def values_reply(cmd: int, values: Mapping[str, Number]) -> bytes:
    """The reply to one of the commands of :data:`FIELDS`, from its values (SoC [%], voltage [V], current [A],
    runtime [h], design capacity [Ah], cycles, alarm bits)."""
    size, table = FIELDS[cmd]
    data = bytearray(size)
    table.encode(values, data)
    return frame(cmd, bytes(data))


def cells_reply(cmd: int, cells: Sequence[float]) -> bytes:
    """The reply to ``05``-``08``: its five cells of ``cells`` [V] (a cell that does not exist: 0)."""
    first = (cmd - CELLS_FIRST) * CELLS_PER_FRAME
    part = list(cells[first:first + CELLS_PER_FRAME])
    part += [0.0] * (CELLS_PER_FRAME - len(part))
    return frame(cmd, b"".join(round(v * 1000).to_bytes(2, "little") for v in part))


def temps_reply(temps: Sequence[float]) -> bytes:
    """The reply to ``09``: up to six temperatures [degC, whole degrees], the slots after them 0."""
    slots = [round(t) for t in temps[:TEMP_SLOTS]]
    slots += [0] * (TEMP_SLOTS - len(slots))
    return frame(TEMPS, b"".join(t.to_bytes(2, "little", signed=True) for t in slots))

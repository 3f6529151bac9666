"""Frames of the tdt emulator (pure: no asyncio, no bleak), fed plain values; the protocol is described in
:mod:`bmslib.bms.bridge.emulators.tdt`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bmslib.protocol.crc import crc16_modbus
from bmslib.protocol.fields import Field, FieldTable, Number, encode_array

SERVICE_UUID = "0000fff0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000fff1-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000fff2-0000-1000-8000-00805f9b34fb"
CONFIG_UUID = "0000fffa-0000-1000-8000-00805f9b34fb"
UNLOCK = b"HiLink"
NAME_PATTERNS = ("WTDH*", "WT???AZ*")
#: what follows the company id and the address byte in the captured WTDH advertisement (meaning unknown)
ADVERTISED_TAIL = bytes.fromhex("00000000024c000300")
RSP_HEAD, CMD_HEADS, TAIL = 0x7E, (0x7E, 0x1E), 0x0D
CMD_CELLS, CMD_STATUS, CMD_INFO = 0x8C, 0x8D, 0x92
AMBIENT_C = 22.0  # [degC] the battery model's surroundings (its temperatures are this plus load heat)
KELVIN_0 = 273.0  # [K] 0 degC as the BMS counts (raw 2730)
CURRENT_FLAG = 0x4000  # set in every captured current word
STATUS_TAIL = 15  # bytes after the per-sensor status bytes (14 in the 4-cell capture)
SUMMARY = FieldTable(">", (
    Field("voltage", 2, "H", 0.01), Field("charge", 4, "H", 0.1), Field("full_charge", 6, "H", 0.1),
    Field("cycles", 8, "H"), Field("design_capacity", 10, "H", 0.1), Field("soc", 12, "H"),
))

SUMMARY_LEN = 14
STATUS_FIELDS = FieldTable(">", (Field("problem_code", 4, "H"), Field("fets", 6, "B")))
FET_CHARGE, FET_DISCHARGE = 0x02, 0x04
INFO_FIELD_LEN = 20



def _crc_be(body: bytes) -> bytes:
    return crc16_modbus(body).to_bytes(2, "big")



def request(cmd: int, head: int = RSP_HEAD, data: bytes = b"") -> bytes:
    body = bytes((head, 0x00, 0x01, 0x03, 0x00, cmd)) + len(data).to_bytes(2, "big") + data
    return body + _crc_be(body) + bytes((TAIL,))



def parse_request(frame: bytes) -> int | None:
    """The command of a well-formed request, else None."""
    if len(frame) < 11 or frame[0] not in CMD_HEADS or frame[-1] != TAIL:
        return None
    if int.from_bytes(frame[6:8], "big") != len(frame) - 11 or _crc_be(frame[:-3]) != frame[-3:-1]:
        return None
    return frame[5]



def reply(cmd: int, data: bytes, *, version: int = 0x00, addr: int = 0x01) -> bytes:
    body = bytes((RSP_HEAD, version, addr, 0x03, 0x00, cmd)) + len(data).to_bytes(2, "big") + data
    return body + _crc_be(body) + bytes((TAIL,))



def current_word(current: float) -> int:
    """Current [A, + = charging] as sent: sign bit 15 (discharging), flag bit 14, 0.1 A in bits 0..13."""
    magnitude = min(0x3FFF, round(abs(current) * 10))
    return (0x8000 if current < 0 and magnitude else 0) | CURRENT_FLAG | magnitude



def cells_data(cells: Sequence[float], temps: Sequence[float], values: Mapping[str, Number]) -> bytes:
    """0x8C data: cells [V], temperatures [degC] (ambient, MOSFET, cells), then the summary ``values``:
    current [A, + = charging], voltage [V], charge, full_charge and design_capacity [Ah], cycles, soc [%]."""
    summary = bytearray(SUMMARY_LEN)
    SUMMARY.encode(values, summary)
    summary[0:2] = current_word(float(values.get("current", 0.0))).to_bytes(2, "big")
    return (bytes((len(cells),)) + encode_array(cells, ">H", 0.001) + bytes((len(temps),))
            + encode_array(temps, ">H", 0.1, -KELVIN_0) + bytes(summary))



def status_data(cells: int, temps: int, charge_fet: bool, discharge_fet: bool, problem_code: int = 0,
                tail: int = STATUS_TAIL, other_fet_bits: int = 0) -> bytes:
    """0x8D data: all cells and sensors fine, the problem code and the FET states (``other_fet_bits``: bits of
    the FET byte whose meaning is not pinned, e.g. bit 3, set in the 16-cell captures)."""
    rest = bytearray(tail)
    fets = (FET_CHARGE if charge_fet else 0) | (FET_DISCHARGE if discharge_fet else 0) | other_fet_bits
    STATUS_FIELDS.encode({"problem_code": problem_code, "fets": fets}, rest)
    return bytes((cells,)) + bytes(cells) + bytes((temps,)) + bytes(temps) + bytes(rest)



def info_data(sw_version: str, manufacturer: str, serial: str) -> bytes:
    """0x92 data: three NUL-padded ASCII fields."""
    return b"".join(s.encode("ascii", "replace")[:INFO_FIELD_LEN].ljust(INFO_FIELD_LEN, b"\0")
                    for s in (sw_version, manufacturer, serial))

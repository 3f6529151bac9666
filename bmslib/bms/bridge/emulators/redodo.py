"""Redodo / LiTime-like battery emulator (aiobmsble plugin ``redodo``): one status frame on FFE0.

The host writes ``00 00 04 01 13 55 AA sum`` (command 0x13, status) to FFE2; the battery answers on FFE1 with
one 105-byte frame in one notification (the plugin does not reassemble): ``00 00 len 01 93 55 AA 00``, the
little-endian fields below, and a sum-of-bytes checksum. Commands other than 0x13 go unanswered (the captures
show no reply to them). Offsets come from a captured reply (tests/bms/bridge/captures/redodo.json).
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Mapping, Sequence

from bmslib.protocol.crc import sum8
from bmslib.protocol.fields import Field, FieldTable, Number, encode_array
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

SERVICE_UUID = "0000ffe0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000ffe1-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000ffe2-0000-1000-8000-00805f9b34fb"
MANUFACTURER_ID = 0x585A  # followed by the device address, as captured
#: advertised names of real packs (Redodo, LiTime, ECO-WORTHY T-series, Starry Sea ...)
NAME_PATTERNS = ("P-12*", "P-24*", "PQ-12*", "PQ-24*", "R-12*", "R-24*", "RO-12*", "RO-24*", "T-12*", "T-24*",
                 "L-12*", "L-24*", "L-51*", "LT-51*", "S-*", "SS-*")

HEAD = b"\x00\x00"
CMD_STATUS = 0x13
REQUEST_TAIL = b"\x55\xaa"
FRAME_LEN = 105
MAX_CELLS, MAX_TEMPS = 16, 5
CELLS_AT, TEMPS_AT = 16, 52

FIELDS = FieldTable("<", (
    Field("pack_voltage", 8, "I", 0.001), Field("voltage", 12, "H", 0.001), Field("current", 48, "i", 0.001),
    Field("charge", 62, "H", 0.01), Field("capacity", 64, "I", 0.01), Field("heater", 68, "I"),
    Field("problem_code", 76, "Q"), Field("balancing", 84, "I"), Field("soc", 90, "H"), Field("soh", 92, "I"),
    Field("cycles", 96, "I"),
))


def request(cmd: int = CMD_STATUS) -> bytes:
    body = HEAD + bytes((4, 1, cmd)) + REQUEST_TAIL
    return body + bytes((sum8(body),))


def parse_request(frame: bytes) -> int | None:
    """The command of a well-formed request, else None."""
    if (len(frame) != 8 or not frame.startswith(HEAD) or frame[2] != 4 or frame[5:7] != REQUEST_TAIL
            or sum8(frame[:-1]) != frame[-1]):
        return None
    return frame[4]


def status_frame(values: Mapping[str, Number], cells: Sequence[float], temps: Sequence[int]) -> bytes:
    """The status reply: ``values`` (voltages [V], current [A, + = charging], charge and capacity [Ah], soc and
    soh [%], cycles, heater, problem_code, balancing), cells [V] and temperatures [degC, whole degrees]."""
    if len(cells) > MAX_CELLS or len(temps) > MAX_TEMPS:
        raise ValueError(f"at most {MAX_CELLS} cells and {MAX_TEMPS} temperatures")
    frame = bytearray(FRAME_LEN)
    frame[:8] = HEAD + bytes((FRAME_LEN - 4, 1, CMD_STATUS | 0x80)) + REQUEST_TAIL + b"\x00"
    FIELDS.encode(values, frame)
    frame[CELLS_AT:CELLS_AT + 2 * len(cells)] = encode_array(cells, "<H", 0.001)
    frame[TEMPS_AT:TEMPS_AT + 2 * len(temps)] = encode_array(temps, "<h")
    frame[-1] = sum8(bytes(frame[:-1]))
    return bytes(frame)


class RedodoEmulator(Emulator):
    type_name = "redodo"
    mtu = 244  # the whole frame in one notification, as the plugin expects

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None) -> None:
        if not any(fnmatch.fnmatchcase(name, p) for p in NAME_PATTERNS):
            serial = int(address.replace(":", "")[-4:], 16) % 100_000
            name = f"R-12100BNN160-A{serial:05d}"  # the format of the captured names
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (GattService(SERVICE_UUID, (
            GattChar(NOTIFY_UUID, ("notify",)),
            GattChar(WRITE_UUID, ("write-without-response", "write")),
        )),)

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, service_uuids=(SERVICE_UUID,),
                             manufacturer_data={MANUFACTURER_ID: bytes.fromhex(self.address.replace(":", ""))})

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid == WRITE_UUID and parse_request(data) == CMD_STATUS:
            self.notify(self.status())

    def status(self) -> bytes:
        b = self.battery
        b.advance()
        values = {
            "pack_voltage": b.voltage, "voltage": b.voltage, "current": -b.current, "charge": b.charge_ah,
            "capacity": b.capacity_ah, "soc": round(b.soc), "soh": 100, "cycles": b.cycles,
            "balancing": int(b.balance_current > 0),
        }
        return status_frame(values, b.cell_voltages[:MAX_CELLS], [round(t) for t in b.temperatures[:MAX_TEMPS]])


EMULATOR: type[Emulator] = RedodoEmulator

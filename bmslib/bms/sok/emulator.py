"""SOK / ABC-BMS emulator: answers C0..C4, each with its set of 20-byte replies, one notification each.

Options: ``answers_protection`` (False: C4 goes unanswered, as on some firmware) and ``repeat_cells``
(the cell replies of C2 are sent twice, as some units repeat them).
"""

from __future__ import annotations

import fnmatch
import random

from bmslib.bms.sok import protocol as sok
from bmslib.bms.sok.emulator_frames import (
    encode_cells,
    encode_detail,
    encode_fets,
    encode_name,
    encode_protection,
    encode_status,
    parse_request,
)
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

NAMES = tuple(m.local_name for m in sok.MATCHERS if m.local_name)
MAX_RX = 64  # bytes of host writes buffered while looking for a request


class SokEmulator(Emulator):
    type_name = "sok"
    model = "SOK-BMS"
    manufactured = (23, 3, 18)  # year - 2000, month, day

    _rx: bytearray

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None, answers_protection: bool = True,
                 repeat_cells: bool = False) -> None:
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in NAMES):
            name = "SOK-" + name  # advertise a name `scan` recognises
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)
        self.answers_protection = answers_protection
        self.repeat_cells = repeat_cells
        self._rx = bytearray()

    def on_connect(self) -> None:
        self._rx = bytearray()

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (GattService(sok.SERVICE_UUID, (
            GattChar(sok.NOTIFY_UUID, ("read", "notify")),
            GattChar(sok.WRITE_UUID, ("read", "write", "write-without-response")),
        )),)

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, service_uuids=(sok.ADVERTISED_SERVICE_UUID,))

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != sok.WRITE_UUID:
            return
        self._rx += data
        del self._rx[:-MAX_RX]
        while (start := self._rx.find(sok.REQUEST_HEAD)) >= 0 and len(self._rx) - start >= sok.REQUEST_LEN:
            command = parse_request(bytes(self._rx[start:start + sok.REQUEST_LEN]))
            if command is None:
                del self._rx[:start + 1]
                continue
            del self._rx[:start + sok.REQUEST_LEN]
            for frame in self.replies(command):
                self.notify(frame)
        if self._rx.find(sok.REQUEST_HEAD) < 0:
            self._rx.clear()

    def replies(self, command: int) -> list[bytes]:
        """The replies to ``command``, in the order the device sends them."""
        b = self.battery
        b.advance()
        if command == sok.CMD_NAME:
            return [encode_name(self.model)]
        if command == sok.CMD_INFO:
            return [self.status(), encode_fets(b.charge_fet, b.discharge_fet,
                                               [round(t) for t in b.temperatures[:sok.MAX_TEMPS]])]
        if command == sok.CMD_DETAIL:
            cells = encode_cells(b.cell_voltages[:sok.MAX_CELLS])
            return [self.status(), self.detail(), *cells, *(cells if self.repeat_cells else ())]
        if command == sok.CMD_SETTINGS:  # layout unknown: frames of the right types, contents empty
            return [sok.reply(kind) for kind in sorted(sok.F_SETTINGS)]
        if command == sok.CMD_PROTECTION and self.answers_protection:
            return [encode_protection([a for a in b.alarms if a in sok.PROTECTION_NAMES.values()])]
        return []

    def status(self) -> bytes:
        b = self.battery
        return encode_status({"voltage": b.voltage, "current": b.current, "capacity": b.capacity_ah,
                              "charge": b.charge_ah, "cycles": b.cycles, "soc": round(b.soc)})

    def detail(self) -> bytes:
        year, month, day = self.manufactured
        return encode_detail({"year": year, "month": month, "day": day, "heater": 0,
                              "balancer": int(self.battery.balance_current > 0),
                              "f3_capacity": self.battery.capacity_ah})

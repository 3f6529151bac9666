"""Supervolt ASCII emulator: answers the realtime and capacity requests like an E&J Technology BMS.

Options: ``single_frame`` (Chins / Metrisun: the realtime reply carries the capacities and the
capacity request goes unanswered), ``bad_checksum`` (every reply has a wrong checksum, as
``libattU*`` units send), ``layout`` (``"nus"``: Nordic UART as on older units; ``"ff00"``: the
newer FF00 service) and ``chatter`` (the BLE module's ``AT\\r\\n`` before each reply).
"""

from __future__ import annotations

import fnmatch
import random
from typing import Literal

from bmslib.bms.supervolt import protocol as supervolt
from bmslib.bms.supervolt.emulator_frames import (
    encode_capacity,
    encode_realtime,
    parse_request,
    split_current,
    with_checksum,
    working_state,
)
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

MANUFACTURER_IDS = {"libatt*": 0x5348, "SV12V*": 0x8268}  # as in the advertisement matchers
CHATTER = b"AT\r\n"
MAX_RX = 256  # bytes of host writes buffered while looking for a request


class SupervoltEmulator(Emulator):
    type_name = "supervolt"

    _rx: bytearray

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None, single_frame: bool = False,
                 bad_checksum: bool = False, layout: Literal["nus", "ff00"] = "nus", chatter: bool = False) -> None:
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in MANUFACTURER_IDS):
            name = ("libattU-" if bad_checksum else "libatt-") + name  # advertise a name `scan` recognises
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)
        self.single_frame = single_frame
        self.bad_checksum = bad_checksum
        self.layout = layout
        self.chatter = chatter
        self._rx = bytearray()

    def on_connect(self) -> None:
        self._rx = bytearray()

    @property
    def write_uuid(self) -> str:
        return supervolt.WRITE_UUID if self.layout == "nus" else supervolt.ALT_WRITE_UUID

    @property
    def gatt(self) -> tuple[GattService, ...]:
        if self.layout == "nus":
            return (GattService(supervolt.SERVICE_UUID, (
                GattChar(supervolt.WRITE_UUID, ("write", "write-without-response")),
                GattChar(supervolt.NOTIFY_UUID, ("notify",)),
            )),)
        return (GattService(supervolt.ALT_SERVICE_UUID, (
            GattChar(supervolt.ALT_NOTIFY_UUID, ("read", "notify")),
            GattChar(supervolt.ALT_WRITE_UUID, ("write", "write-without-response")),
        )),)

    def advertisement(self) -> Advertisement:
        company = next(cid for pattern, cid in MANUFACTURER_IDS.items() if fnmatch.fnmatchcase(self.name, pattern))
        service = supervolt.SERVICE_UUID if self.layout == "nus" else supervolt.ALT_SERVICE_UUID
        return Advertisement(name=self.name, service_uuids=(service,),
                             manufacturer_data={company: bytes.fromhex(self.address.replace(":", ""))[-4:]})

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != self.write_uuid:
            return
        self._rx += data
        del self._rx[:-MAX_RX]
        while (end := self._rx.find(supervolt.END)) >= 0:
            start = self._rx.rfind(supervolt.START, 0, end)
            frame = bytes(self._rx[start:end + 1]) if start >= 0 else b""
            del self._rx[:end + 1]
            command = parse_request(frame)
            if command is not None:
                self._answer(command)

    def _answer(self, command: int) -> None:
        if command == supervolt.CMD_REALTIME:
            frame = self.realtime_reply()
        elif not self.single_frame:
            frame = self.capacity_reply()
        else:
            return  # single-frame units know only the realtime request
        if self.bad_checksum:
            frame = with_checksum(frame, supervolt.checksum(frame[1:-3]) ^ 0x5A)
        if self.chatter:
            self.notify(CHATTER)
        self.notify(frame)

    def capacities(self) -> dict[str, float]:
        b = self.battery
        return {"charge": b.charge_ah, "full": b.capacity_ah, "design": b.capacity_ah}

    def realtime_reply(self) -> bytes:
        b = self.battery
        b.advance()
        cells = b.cell_voltages[:supervolt.CELL_SLOTS]
        low = min(cells, default=0.0)
        balancing = sum(1 << i for i, v in enumerate(cells) if b.balance_current and v > low + 0.01)
        alarms = [a for a in b.alarms if a in supervolt.ALARM_BITS.values()]
        values = {
            **split_current(b.current), "soc": round(b.soc), "status_byte_54": 0, "balance_state": balancing,
            "working_state": working_state(charge_on=b.charge_fet, discharge_on=b.discharge_fet,
                                           current=b.current, alarms=alarms),
            "discharge_count": b.cycles, "charge_count": b.cycles + 1,
        }
        temps = [*b.temperatures, b.mos_temperature][:supervolt.TEMP_SLOTS]
        temps += [temps[-1]] * (supervolt.TEMP_SLOTS - len(temps))
        return encode_realtime(values, cells, temps, self.capacities() if self.single_frame else None)

    def capacity_reply(self) -> bytes:
        self.battery.advance()
        return encode_capacity(self.capacities())

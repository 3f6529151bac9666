"""Pace (PACEEX) emulator, aiobmsble plugin ``pace``: one pack on its own, on the FFF0 service.

The host writes whole request frames to FFF2; the device answers each on FFF1 with one notification holding the
whole reply (the plugin takes one notification as one frame, so this device's MTU fits its longest reply):
system values (type 0A00), the pack's values (0A01) and cells with temperatures (0A02), serial number (0002) and
versions (0001). It stays silent on a frame with a wrong CRC and on types it does not know. Frames are built
by :mod:`bmslib.bms.bridge.emulators.frames.pace`.

A pack on its own reports a pack count of 0 (the master of a bank reports the number of its packs, and aiobmsble
then reads the cells of its packs only as pack values).
"""

from __future__ import annotations

import fnmatch
import random

from bmslib.bms.bridge.emulators.frames import pace
from bmslib.protocol.fields import Number
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

SERVICE_UUID = "0000fff0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000fff1-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000fff2-0000-1000-8000-00805f9b34fb"
NAME_PATTERN = "PC-????"  # real units: PC-9662
#: manufacturer data as a real unit sends it (company id 0x0001): 10 bytes whose meaning is not known (as
#: captured; bytes 7-8 are "PC"), then the serial number
MANUFACTURER_ID = 0x0001
MANUFACTURER_PREFIX = bytes.fromhex("04b4c2e0010101504300")


class PaceEmulator(Emulator):
    type_name = "pace"
    mtu = 244  # a BLE 4.2 link with data length extension: every reply fits one notification

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None) -> None:
        if not fnmatch.fnmatchcase(name, NAME_PATTERN):
            name = "PC-" + address.replace(":", "")[-4:].upper()  # the name real units advertise
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)
        self.serial = "P" + address.replace(":", "")[-12:].upper()
        self._rx = bytearray()

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (GattService(SERVICE_UUID, (
            GattChar(NOTIFY_UUID, ("read", "notify")),
            GattChar(WRITE_UUID, ("write", "write-without-response")),
        )),)

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, service_uuids=(SERVICE_UUID,),
                             manufacturer_data={MANUFACTURER_ID: MANUFACTURER_PREFIX + self.serial.encode()})

    def on_connect(self) -> None:
        self._rx = bytearray()

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != WRITE_UUID:
            return
        self._rx += data
        while self._rx:
            start = self._rx.find(pace.HEAD)
            if start < 0:
                self._rx.clear()
                return
            del self._rx[:start]
            if len(self._rx) < 8 or len(self._rx) < pace.MIN_LEN + self._rx[7]:
                return
            n = pace.MIN_LEN + self._rx[7]
            parsed = pace.parse(bytes(self._rx[:n]))
            if parsed is None:
                del self._rx[:1]  # not a frame: look for the next head
                continue
            del self._rx[:n]
            self._answer(*parsed)

    def _answer(self, frame_type: bytes, _data: bytes) -> None:
        b = self.battery
        b.advance()
        if frame_type == pace.SYS_INFO:
            reply = pace.sys_data(self.values())
        elif frame_type == pace.PACK_INFO:
            reply = pace.pack_data(self.values())
        elif frame_type == pace.CELL_INFO:
            reply = pace.cell_data(b.voltage, b.cell_voltages, self.temperature_slots())
        elif frame_type == pace.SERIAL:
            reply = pace.serial_data(self.serial)
        elif frame_type == pace.VERSIONS:
            reply = pace.VERSIONS_DATA
        else:
            return
        self.notify(pace.frame(frame_type, reply))

    def temperature_slots(self) -> list[float | None]:
        """The cell reply's temperature slots: the battery's probes (at most four), then its MOSFET."""
        probes: list[float | None] = list(self.battery.temperatures[:pace.CELL_PROBES])
        probes += [None] * (pace.MOSFET_SLOT - len(probes))
        return [*probes, self.battery.mos_temperature]

    def values(self) -> dict[str, Number]:
        b = self.battery
        cells, temps = b.cell_voltages, b.temperatures
        values: dict[str, Number] = {
            "pack_count": 0, "current": -b.current, "voltage": b.voltage, "charge": b.charge_ah,
            "design_capacity": b.capacity_ah, "full_capacity": b.capacity_ah, "soc": round(b.soc), "soh": 100,
            "cycles": b.cycles,
        }
        for what, series in (("cell", cells), ("temp", temps)):
            if series:
                hi, lo = series.index(max(series)), series.index(min(series))
                values |= {f"{what}_max_pack": 1, f"{what}_max_no": hi + 1, f"{what}_max": series[hi],
                           f"{what}_min_pack": 1, f"{what}_min_no": lo + 1, f"{what}_min": series[lo]}
        return values


EMULATOR: type[Emulator] = PaceEmulator

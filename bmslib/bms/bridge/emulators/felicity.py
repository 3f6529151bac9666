"""Felicity Solar emulator, aiobmsble plugin ``felicity``: a LiFePO4 battery whose BLE module speaks JSON.

The host writes ASCII commands (``wifilocalMonitor:get dev real infor``, ``... get dev basice infor``,
``... get Date``) to the write characteristic; the device answers each with one JSON object, split into
notifications of the link's MTU. It stays silent on anything else. Frames are built by
:mod:`bmslib.bms.bridge.emulators.frames.felicity`.
"""

from __future__ import annotations

import datetime
import fnmatch
import random
from typing import Any

from bmslib.bms.bridge.emulators.frames import felicity
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

SERVICE_UUID = "6e6f736a-4643-4d44-8fa9-0fafd005e455"
NOTIFY_UUID = "49535458-8341-43f4-a9d4-ec0e34729bb3"
WRITE_UUID = "49535258-184d-4bd9-bc61-20c647249616"
NAME_PATTERNS = ("F07*", "F10*")  # real units: F100011002424470238, F074204831425240169
#: the device clock's reading when the emulator starts (it runs with the battery's clock from there)
CLOCK_START = datetime.datetime(2024, 6, 1, 12, 0, 0)  # the device's local time, as it reports it (no zone)


class FelicityEmulator(Emulator):
    type_name = "felicity"

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None) -> None:
        if not any(fnmatch.fnmatchcase(name, p) for p in NAME_PATTERNS):
            digits = str(int(address.replace(":", ""), 16))[-15:].rjust(15, "0")
            name = "F100" + digits  # a name as real units advertise: F, then the 18-digit serial number
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)
        self._t0 = self.battery.clock()

    @property
    def serial(self) -> str:
        return self.name[1:]

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (GattService(SERVICE_UUID, (
            GattChar(WRITE_UUID, ("write", "write-without-response")),
            GattChar(NOTIFY_UUID, ("read", "notify")),
        )),)

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name)  # real units advertise their name only

    def date(self) -> str:
        now = CLOCK_START + datetime.timedelta(seconds=max(0.0, self.battery.clock() - self._t0))
        return now.strftime("%Y%m%d%H%M%S")

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != WRITE_UUID:
            return
        cmd = felicity.parse_command(data)
        if cmd == felicity.REAL_INFO:
            self.battery.advance()
            self.notify(felicity.real_info(self.values()))
        elif cmd == felicity.BASIC_INFO:
            self.notify(felicity.basic_info(self.name, self.serial))
        elif cmd == felicity.DATE:
            self.notify(felicity.date_info(self.name, self.date()))

    def values(self) -> dict[str, Any]:
        b = self.battery
        return {
            "wifi_sn": self.name, "dev_sn": self.serial, "date": self.date(), "fault": 0, "warn": 0,
            "voltage": b.voltage, "current": -b.current, "soc": b.soc, "soh": 100, "capacity": b.capacity_ah,
            "cells": b.cell_voltages, "temps": b.temperatures,
        }


EMULATOR: type[Emulator] = FelicityEmulator

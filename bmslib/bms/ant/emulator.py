"""ANT BMS emulator: a 2021 unit (``7E A1``) or a legacy unit (``AA 55 AA FF``), chosen by ``variant``.

Like the real units it serves FFE0 with FFE1 for both directions, advertises an ``ANT-BLE…`` name with
FFE0 and FEE7 and ``88 A0`` manufacturer data, and accepts one client (the simulated radio refuses a
second connection). A 2021 unit answers the status and device-info requests (the device-info reply
with the uncounted bytes after its CRC), obeys a switch command only right after an authentication
frame with its password in its one accepted address byte order (``auth_order``; frames in the other
order are ignored, as is a command without authentication), and also answers the legacy ``DB DB``
request, with a legacy frame whose power field is invalid. A legacy unit answers only ``DB DB``,
takes password, register and apply writes, and never replies to a write. Switches act on the battery
model. ``mtu`` is the notification size: 133 bytes for a 2021 unit (the MTU of 136 real units
negotiate), 20 for a legacy unit.
"""

from __future__ import annotations

import fnmatch
import random
import statistics
from typing import ClassVar

from bmslib.bms.ant.protocol import codec as ant
from bmslib.bms.ant.protocol import codes as ant_codes
from bmslib.bms.ant.protocol import control as ant_control
from bmslib.bms.ant.protocol import data_2021 as ant_2021_data
from bmslib.bms.ant.protocol import frames_2021 as ant_2021
from bmslib.bms.ant.protocol import legacy as ant_legacy
from bmslib.bms.ant.protocol.codec import Variant
from bmslib.bms.ant.protocol.control import AuthOrder, HostRequest
from bmslib.bms.ant.protocol.legacy import LegacyRequest
from bmslib.protocol.fields import Number
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

UNUSED_UUID = "0000ffe2-0000-1000-8000-00805f9b34fb"
IOT_SERVICE_UUID = "0000fee7-0000-1000-8000-00805f9b34fb"
MANUFACTURER_ID = 0x2313  # one of several company ids real units use
AUTH_ACK_VALUE = 5  # what a real unit answers to the auth frame
TYPICAL_NAME = {Variant.V2021: "ANT-BLE16ZMUB", Variant.LEGACY: "ANT-BLE16S"}
DEFAULT_MTU = {Variant.V2021: 133, Variant.LEGACY: 20}
DEFAULT_PASSWORD = {Variant.V2021: ant_control.DEFAULT_PASSWORD, Variant.LEGACY: ant_legacy.DEFAULT_PASSWORD}
FET_MANUALLY_OFF = 15
RUNTIME_AT_START = 30 * 86400  # [s] the unit's operating time when the emulator starts
INVALID_POWER = -1  # what a 2021 unit puts at the legacy frame's power offset
LIFEPO4 = 0xFAF2
STATUS_IDLE = 1

# alarm name -> status code that reports it (the first code with that name)
_CHARGE_ALARMS = {n: c for c, n in sorted(ant_codes.CHARGE_FET.items(), reverse=True)
                  if c not in ant_codes.CHARGE_FET_STATES}
_DISCHARGE_ALARMS = {n: c for c, n in sorted(ant_codes.DISCHARGE_FET.items(), reverse=True)
                     if c not in ant_codes.DISCHARGE_FET_STATES}


def is_ant_name(name: str | None) -> bool:
    """Does ``name`` fit the advertised names the protocol module recognises?"""
    return bool(name) and any(m.local_name and fnmatch.fnmatchcase(name or "", m.local_name) for m in ant.MATCHERS)


class AntEmulator(Emulator):
    type_name = "ant"
    default_variant: ClassVar[Variant] = Variant.V2021
    model = "16ZM"
    sw_version = "16ZMUB00-211026A"

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None,
                 variant: Variant | None = None, password: str | None = None,
                 auth_order: AuthOrder = AuthOrder.DOCUMENTED, mtu: int | None = None) -> None:
        """``name``: a name that is no ANT name (e.g. the demo's) becomes the generation's typical one.
        ``password``: the unit's password (None: the default the driver sends; "" for a legacy unit
        without password). ``auth_order``: the one auth address byte order a 2021 unit accepts."""
        self.variant = variant or self.default_variant
        super().__init__(address=address, name=name if is_ant_name(name) else TYPICAL_NAME[self.variant],
                         battery=battery, faults=faults, rng=rng)
        self.password = DEFAULT_PASSWORD[self.variant] if password is None else password
        self.auth_order = auth_order
        self.mtu = mtu or DEFAULT_MTU[self.variant]
        self.auth_attempts: list[AuthOrder | None] = []  # auth frames received, by address byte order
        self._born = self.battery.clock()
        self._authenticated = False
        self._password_registers: dict[int, int] = {}
        self._pending_switch: tuple[str, bool] | None = None

    def on_connect(self) -> None:
        self._authenticated = False
        self._password_registers.clear()
        self._pending_switch = None

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (GattService(ant.SERVICE_UUID, (
            GattChar(ant.NOTIFY_UUID, ("write-without-response", "write", "notify")),
            GattChar(UNUSED_UUID, ("read",)),
        )),)

    def handle_read(self, char_uuid: str) -> bytes:
        if char_uuid == UNUSED_UUID:
            return b""
        raise KeyError(char_uuid)

    def advertisement(self) -> Advertisement:
        mac = bytes.fromhex(self.address.replace(":", ""))
        return Advertisement(name=self.name, service_uuids=(ant.SERVICE_UUID, IOT_SERVICE_UUID),
                             manufacturer_data={MANUFACTURER_ID: b"\x88\xa0" + mac})

    # --- host writes ---
    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != ant.WRITE_UUID:
            return
        if data.startswith(ant_2021.HEAD):
            request = ant_control.parse_request(data)
            if request is not None and self.variant is Variant.V2021:
                self._on_request(request)
            return
        legacy = ant_legacy.parse_request(data)
        if legacy is not None:
            self._on_legacy_request(legacy)

    def _on_request(self, request: HostRequest) -> None:
        if request.func == ant_2021.FUNC_STATUS:
            self.notify(self.status_frame())
        elif request.func == ant_2021.FUNC_DEVICE_INFO and request.address == ant_2021.DEVICE_INFO_ADDRESS:
            self.notify(ant_2021_data.encode_device_info(self.model, self.sw_version))
        elif request.func == ant_2021.FUNC_AUTH:
            self.auth_attempts.append(request.auth_order)
            self._authenticated = request.auth_order is self.auth_order and request.password == self.password
            if self._authenticated:
                self.notify(ant_control.encode_ack(request, AUTH_ACK_VALUE))
        elif request.func == ant_2021.FUNC_COMMAND:
            if not self._authenticated:
                return  # the unit obeys only right after an authentication frame
            self._authenticated = False
            if request.switch is not None:
                self.battery.set_switch(*request.switch)
            self.notify(ant_control.encode_ack(request, ant_control.COMMAND_ACCEPTED))

    def _on_legacy_request(self, request: LegacyRequest) -> None:
        if request.op == ant_legacy.OP_READ_BLE:
            self.notify(self.legacy_frame())
            return
        if request.op != ant_legacy.OP_WRITE or self.variant is not Variant.LEGACY:
            return
        first_pw = ant_legacy.REG_PASSWORD
        if first_pw <= request.register < first_pw + 4:
            self._password_registers[request.register] = request.value
        elif request.register == ant_legacy.REG_APPLY:
            entered = b"".join(self._password_registers.get(first_pw + i, 0).to_bytes(2, "big") for i in range(4))
            if self._pending_switch is not None and (not self.password or entered == self.password.encode()):
                self.battery.set_switch(*self._pending_switch)
            self._pending_switch = None
            self._password_registers.clear()
        elif request.switch is not None:
            self._pending_switch = request.switch

    # --- frames ---
    def _fet_codes(self) -> tuple[int, int, int]:
        b = self.battery
        charge = ant_codes.FET_ON if b.charge_fet else FET_MANUALLY_OFF
        discharge = ant_codes.FET_ON if b.discharge_fet else FET_MANUALLY_OFF
        for alarm in b.alarms:
            charge = _CHARGE_ALARMS.get(alarm, charge)
            discharge = _DISCHARGE_ALARMS.get(alarm, discharge)
        return charge, discharge, ant_codes.BALANCER_ACTIVE if b.balancer else 0

    def _common(self) -> dict[str, Number]:
        """Values both frame layouts share (wire sign: current positive while discharging)."""
        b = self.battery
        b.advance()
        cells = b.cell_voltages
        high, low = cells.index(max(cells)), cells.index(min(cells))
        charge, discharge, balancer = self._fet_codes()
        total = (b.cycles + 0.25) * b.capacity_ah
        return {
            "voltage": b.voltage, "current": b.current, "soc": round(b.soc),
            "design_capacity": b.capacity_ah, "remaining_capacity": b.charge_ah, "total_cycle_capacity": total,
            "total_runtime": int(b.clock() - self._born) + RUNTIME_AT_START,
            "charge_fet": charge, "discharge_fet": discharge, "balancer": balancer,
            "balancing_bitmask": 1 << high if b.balance_current > 0 else 0,
            "max_cell_voltage": cells[high], "max_cell_index": high + 1,
            "min_cell_voltage": cells[low], "min_cell_index": low + 1,
            "average_cell_voltage": statistics.fmean(cells),
        }

    def status_frame(self) -> bytes:
        """The 2021 status frame (0x11) of the battery as it is now."""
        b = self.battery
        values = self._common()
        wire = round(float(values["current"]) * 10)
        status = ant_codes.STATUS_DISCHARGE if wire > 0 else ant_codes.STATUS_CHARGE if wire < 0 else STATUS_IDLE
        total, runtime = float(values["total_cycle_capacity"]), int(values["total_runtime"])
        values |= {
            "permissions": 5, "battery_status": status, "mos_temperature": round(b.mos_temperature),
            "balancer_temperature": round(b.mos_temperature) - 1, "soh": 100, "power": round(b.power),
            "delta_cell_voltage": float(values["max_cell_voltage"]) - float(values["min_cell_voltage"]),
            "battery_type": LIFEPO4,  # the cycle capacity is the mean of the two totals
            "total_discharged": total + 0.1 * b.capacity_ah, "total_charged": total - 0.1 * b.capacity_ah,
            "total_discharge_time": runtime // 3, "total_charge_time": runtime // 4,
        }
        temperatures = [round(t) for t in b.temperatures[:ant_2021_data.MAX_TEMPERATURES]]
        return ant_2021_data.encode_status(values, b.cell_voltages, temperatures)

    def legacy_frame(self) -> bytes:
        """The legacy status frame (a 2021 unit answering the legacy request reports no valid power)."""
        b = self.battery
        values = self._common()
        values["power"] = round(b.power) if self.variant is Variant.LEGACY else INVALID_POWER
        temperatures = [round(t) for t in b.temperatures[:ant_legacy.TEMPERATURE_SLOTS]]
        return ant_legacy.encode_status(values, b.cell_voltages, temperatures)


class AntLegacyEmulator(AntEmulator):
    """A legacy unit (what a ``sim:`` device of type ``ant_legacy`` gets)."""

    type_name = "ant_legacy"
    default_variant: ClassVar[Variant] = Variant.LEGACY

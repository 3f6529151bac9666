"""Daly emulator: one BMS speaking one of the three Daly protocols, chosen at construction.

``protocol="modbus"`` (D2, the default), ``"legacy"`` (A5) or ``"p81"`` (the read-only 0x81 variant).
Like a real unit it answers only requests addressed in its own protocol, so a host's probes of the
other protocols go unanswered. Answers are built with the protocol modules' device-side encoders:

* D2: status (62 or 80 registers), MOSFET block, version block; other reads get a Modbus exception
  (illegal address). Writes of 0/1 to 0x00A5/0x00A6 switch the battery's FETs and are echoed; any
  other write gets no answer.
* Legacy: 0x90-0x98 reads; the replies of one request go out in one notification (so with a larger
  ``mtu`` several 13-byte frames share a notification, with the default 20 they straddle chunks).
  0xDA/0xD9 switch the FETs and get no reply. Options: ``legacy_inverted_current`` (firmware with
  the other current polarity), ``legacy_stuck_discharge_byte`` (0x93 byte 2 always reads 1, as on
  the firmware batmon-ha captured).
* 0x81: the two reads RT1/RT2; writes get no answer (no writable register is documented).

``gatt_layout="ff00"`` emulates the newer firmware that refuses notifications on FFF1 and speaks on
service FF00 (FF01/FF02) instead.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from bmslib.bms.daly.protocol import codec as daly
from bmslib.bms.daly.protocol import legacy as daly_legacy
from bmslib.bms.daly.protocol import modbus as daly_modbus
from bmslib.bms.daly.protocol import p81 as daly_p81
from bmslib.bms.daly.protocol import rtu as daly_rtu
from bmslib.bms.daly.protocol.codec import DalyProtocol
from bmslib.bms.daly.protocol.rtu import READ, WRITE, ModbusRequest
from bmslib.protocol.fields import Number
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

ILLEGAL_DATA_ADDRESS = 0x02
MANUFACTURER_ID = 0x0302  # one of the ids Daly modules advertise under; data = 0x16, MAC, "DL"
IDLE_CURRENT = 0.1  # [A] below this the emulated BMS reports "idle"
WRITE_PROPS = ("write", "write-without-response")


class DalyEmulator(Emulator):
    type_name = "daly"
    default_protocol = DalyProtocol.MODBUS
    sw_version = "SIM_D2_1.0"
    hw_version = "H2.0_SIM"

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None, protocol: str | None = None,
                 gatt_layout: str = "fff0", mtu: int | None = None, legacy_inverted_current: bool = False,
                 legacy_stuck_discharge_byte: bool = False) -> None:
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)
        chosen = DalyProtocol(protocol) if protocol is not None else self.default_protocol
        if chosen is DalyProtocol.UNKNOWN:
            raise ValueError("protocol: modbus, legacy or p81")
        if gatt_layout not in ("fff0", "ff00"):
            raise ValueError("gatt_layout: fff0 or ff00")
        self.protocol = chosen
        self.gatt_layout = gatt_layout
        if mtu is not None:
            self.mtu = mtu
        self.legacy_inverted_current = legacy_inverted_current
        self.legacy_stuck_discharge_byte = legacy_stuck_discharge_byte
        self.bms_life = 0

    # --- GATT and advertisement ---
    @property
    def write_uuid(self) -> str:
        return daly.WRITE_UUID if self.gatt_layout == "fff0" else daly.ALT_WRITE_UUID

    @property
    def notify_uuid(self) -> str:
        return daly.NOTIFY_UUID if self.gatt_layout == "fff0" else daly.ALT_NOTIFY_UUID

    @property
    def gatt(self) -> tuple[GattService, ...]:
        if self.gatt_layout == "fff0":
            return (GattService(daly.SERVICE_UUID, (GattChar(daly.NOTIFY_UUID, ("read", "notify")),
                                                    GattChar(daly.WRITE_UUID, WRITE_PROPS))),)
        # newer firmware: FFF1 refuses notifications (here: does not offer them), FF00 carries the protocol
        return (GattService(daly.SERVICE_UUID, (GattChar(daly.NOTIFY_UUID, ("read",)),
                                                GattChar(daly.WRITE_UUID, WRITE_PROPS))),
                GattService(daly.ALT_SERVICE_UUID, (GattChar(daly.ALT_NOTIFY_UUID, ("notify",)),
                                                    GattChar(daly.ALT_WRITE_UUID, WRITE_PROPS))))

    def advertisement(self) -> Advertisement:
        mac = bytes.fromhex(self.address.replace(":", ""))
        return Advertisement(name=self.name, service_uuids=(daly.SERVICE_UUID,),
                             manufacturer_data={MANUFACTURER_ID: b"\x16" + mac + b"DL"})

    # --- host writes ---
    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != self.write_uuid:
            return
        if self.protocol is DalyProtocol.LEGACY:
            parsed = daly_legacy.parse_request(data)
            if parsed is not None:
                self.battery.advance()
                self._legacy(*parsed)
            return
        parse = daly_modbus.parse_request if self.protocol is DalyProtocol.MODBUS else daly_p81.parse_request
        request = parse(data)
        if request is None:
            return  # another protocol's request, or garbage: a real unit stays silent
        self.battery.advance()
        if self.protocol is DalyProtocol.MODBUS:
            self._modbus(request)
        else:
            self._p81(request)

    # --- common values ---
    def state(self) -> int:
        """0 idle, 1 charging, 2 discharging (the same codes in all three protocols)."""
        i = self.battery.current
        return 0 if abs(i) < IDLE_CURRENT else (2 if i > 0 else 1)

    def cell_range(self) -> tuple[float, int, float, int]:
        cells = self.battery.cell_voltages
        hi, lo = max(cells), min(cells)
        return hi, cells.index(hi) + 1, lo, cells.index(lo) + 1

    # --- Modbus D2 ---
    def _modbus(self, req: ModbusRequest) -> None:
        address = daly_modbus.ADDRESS
        if req.function == WRITE:
            switch = {r: n for n, r in daly_modbus.SWITCH_REGISTERS.items()}.get(req.register)
            if switch is not None and req.value in (0, 1):
                self.battery.set_switch(switch, bool(req.value))
                self.notify(daly_rtu.write_request(req.register, req.value, address=address))  # the echo
            return
        if req.register == daly_modbus.REG_STATUS and req.value in daly_modbus.STATUS_REGISTERS:
            self.notify(self.d2_status(req.value))
        elif req.register == daly_modbus.REG_MOS_BLOCK and req.value == daly_modbus.MOS_BLOCK_REGISTERS:
            self.notify(daly_modbus.encode_mos_block(self.d2_ext()))
        elif req.register == daly_modbus.REG_VERSION and req.value == daly_modbus.VERSION_REGISTERS:
            self.notify(daly_modbus.encode_version(self.sw_version, self.hw_version))
        else:
            self.notify(daly_rtu.exception_response(READ, ILLEGAL_DATA_ADDRESS, address=address))

    def d2_ext(self) -> dict[str, Number]:
        b = self.battery
        return {"balance_current": b.balance_current, "mos_temperature": b.mos_temperature,
                "board_temperature": b.mos_temperature - 2.0}

    def d2_status(self, registers: int = 62) -> bytes:
        b = self.battery
        cells, temps = b.cell_voltages, b.temperatures
        hi, _, lo, _ = self.cell_range()
        values: dict[str, Number] = {
            "voltage": b.voltage, "current": b.current, "soc": b.soc, "cell_max": hi, "cell_min": lo,
            "temperature_max": max(temps, default=0.0), "temperature_min": min(temps, default=0.0),
            "state": self.state(), "charge": b.charge_ah, "cycles": b.cycles,
            "balancing": int(b.balance_current > 0), "charge_mos": int(b.charge_fet),
            "discharge_mos": int(b.discharge_fet), "cell_average": sum(cells) / len(cells),
            "cell_delta": hi - lo, "power": round(abs(b.power)),
        }
        alarms = [a for a in b.alarms if a in daly_modbus.ALARM_BITS.values()]
        return daly_modbus.encode_status(values, cells, temps, alarms, ext=self.d2_ext(), registers=registers)

    # --- legacy A5 ---
    def _legacy(self, cmd: int, data: bytes) -> None:
        if cmd in daly_legacy.SWITCH_COMMANDS.values():
            if data[0] in (0, 1):
                name = "charge" if cmd == daly_legacy.CMD_CHARGE_MOS else "discharge"
                self.battery.set_switch(name, bool(data[0]))
            return  # no documented reply
        frames = self.legacy_reply(cmd)
        if frames:
            self.notify(b"".join(frames))  # the replies of one request travel together

    def legacy_reply(self, cmd: int) -> list[bytes]:
        """The reply frames to legacy read ``cmd`` ([] if the BMS would not answer)."""
        b = self.battery
        values = self.legacy_values(cmd)
        if values is not None:
            return [daly_legacy.encode(cmd, values)]
        if cmd == daly_legacy.CMD_CELLS:
            return daly_legacy.encode_cells(b.cell_voltages)
        if cmd == daly_legacy.CMD_TEMPS:
            return daly_legacy.encode_temperatures(b.temperatures)
        if cmd in (0x97, 0x98):  # balancing / failure bitmaps: not decoded by batmon, answered as clear
            return [daly_legacy.response(cmd, bytes(daly_legacy.DATA_LEN))]
        return []

    def legacy_values(self, cmd: int) -> Mapping[str, Number] | None:
        b = self.battery
        if cmd == daly_legacy.CMD_SOC:
            current = -b.current if self.legacy_inverted_current else b.current
            return {"voltage": b.voltage, "acquisition_voltage": 0.0, "current": current, "soc": b.soc}
        if cmd == daly_legacy.CMD_CELL_RANGE:
            hi, hi_i, lo, lo_i = self.cell_range()
            return {"cell_max": hi, "cell_max_index": hi_i, "cell_min": lo, "cell_min_index": lo_i}
        if cmd == daly_legacy.CMD_TEMP_RANGE:
            temps = b.temperatures
            if not temps:
                return {"temperature_max": 0.0, "temperature_max_index": 0, "temperature_min": 0.0,
                        "temperature_min_index": 0}
            t_hi, t_lo = max(temps), min(temps)
            return {"temperature_max": t_hi, "temperature_max_index": temps.index(t_hi) + 1,
                    "temperature_min": t_lo, "temperature_min_index": temps.index(t_lo) + 1}
        if cmd == daly_legacy.CMD_STATUS:
            self.bms_life = (self.bms_life + 1) % 256
            discharge = True if self.legacy_stuck_discharge_byte else b.discharge_fet
            return {"state": self.state(), "charge_mos": int(b.charge_fet), "discharge_mos": int(discharge),
                    "bms_life": self.bms_life, "charge": b.charge_ah}
        if cmd == daly_legacy.CMD_INFO:
            return {"cell_count": b.cells, "sensor_count": b.temperature_probes, "charger": int(b.current < 0),
                    "load": int(b.current > 0), "dio": 0, "cycles": b.cycles}
        return None

    def legacy_frame_count(self, cmd: int) -> int:
        """Reply frames to ``cmd`` (for tests): ceil(cells / 3) for 0x95, ceil(sensors / 7) for 0x96."""
        if cmd == daly_legacy.CMD_CELLS:
            return math.ceil(self.battery.cells / daly_legacy.CELLS_PER_FRAME)
        if cmd == daly_legacy.CMD_TEMPS:
            return math.ceil(self.battery.temperature_probes / daly_legacy.TEMPS_PER_FRAME)
        return len(self.legacy_reply(cmd))

    # --- Modbus 0x81 ---
    def _p81(self, req: ModbusRequest) -> None:
        if req.function != READ:
            return  # read-only variant: no documented writable register, no answer
        b = self.battery
        if req.register == daly_p81.REG_RT1 and req.value == daly_p81.RT1_REGISTERS:
            self.notify(daly_p81.encode_rt1({"voltage": b.voltage, "current": b.current, "soc": b.soc},
                                            b.cell_voltages, b.temperatures))
        elif req.register == daly_p81.REG_RT2 and req.value == daly_p81.RT2_REGISTERS:
            self.notify(daly_p81.encode_rt2({
                "state": self.state(), "charge": b.charge_ah, "cycles": b.cycles,
                "balancing": int(b.balance_current > 0), "charge_mos": int(b.charge_fet),
                "discharge_mos": int(b.discharge_fet), "precharge_mos": 0, "heating_mos": 0,
                "mos_temperature": b.mos_temperature, "board_temperature": b.mos_temperature - 2.0}))
        else:
            self.notify(daly_rtu.exception_response(READ, ILLEGAL_DATA_ADDRESS,
                                                    address=daly_p81.REPLY_ADDRESS))


class DalyLegacyEmulator(DalyEmulator):
    """A unit of type ``daly_legacy`` (legacy A5 unless told otherwise)."""

    type_name = "daly_legacy"
    default_protocol = DalyProtocol.LEGACY


class DalyModbusEmulator(DalyEmulator):
    """A unit of type ``daly_modbus`` (D2 unless told otherwise)."""

    type_name = "daly_modbus"

"""JBD emulator: answers 0x03 / 0x04 / 0x05 reads and 0xE1 FET writes like a JBD BMS."""

from __future__ import annotations

from bmslib.protocol import jbd
from bmslib.sim.emulator import Advertisement, Emulator, GattChar, GattService


class JbdEmulator(Emulator):
    type_name = "jbd"
    model = "JBD-SP04S034-SIM"

    _rx: bytearray

    def on_connect(self) -> None:
        self._rx = bytearray()

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (GattService(jbd.SERVICE_UUID, (
            GattChar(jbd.NOTIFY_UUID, ("read", "notify")),
            GattChar(jbd.WRITE_UUID, ("write", "write-without-response")),
        )),)

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, service_uuids=(jbd.SERVICE_UUID,),
                             manufacturer_data={0x1822: bytes.fromhex(self.address.replace(":", ""))[::-1][:4]})

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != jbd.WRITE_UUID:
            return
        self._rx += data
        if len(self._rx) > 512:
            self._rx.clear()
        while self._rx:
            start = self._rx.find(jbd.START)
            if start < 0:
                self._rx.clear()
                return
            del self._rx[:start]
            if len(self._rx) < 4 or len(self._rx) < self._rx[3] + 7:
                return
            n = self._rx[3] + 7
            frame = bytes(self._rx[:n])
            del self._rx[:n]
            parsed = jbd.parse_request(frame)
            if parsed is not None:
                self._answer(*parsed)

    def _answer(self, mode: int, register: int, data: bytes) -> None:
        b = self.battery
        b.advance()
        if mode == jbd.READ and register == jbd.REG_BASIC:
            self.notify(jbd.response(register, self.basic_payload()))
        elif mode == jbd.READ and register == jbd.REG_CELLS:
            self.notify(jbd.response(register, jbd.encode_cells(b.cell_voltages)))
        elif mode == jbd.READ and register == jbd.REG_HW:
            self.notify(jbd.response(register, self.model.encode()))
        elif mode == jbd.WRITE and register == jbd.REG_MOS and len(data) == 2:
            b.set_switch("charge", not data[1] & jbd.FET_CHARGE)
            b.set_switch("discharge", not data[1] & jbd.FET_DISCHARGE)
            self.notify(jbd.response(register, b""))
        else:
            self.notify(jbd.response(register, b"", status=jbd.STATUS_ERROR))

    def basic_payload(self) -> bytes:
        b = self.battery
        fet = (jbd.FET_CHARGE if b.charge_fet else 0) | (jbd.FET_DISCHARGE if b.discharge_fet else 0)
        protection = 1 << 12 if not (b.charge_fet and b.discharge_fet) else 0
        values = {
            "voltage": b.voltage, "current": b.current, "charge": b.charge_ah, "capacity": b.capacity_ah,
            "cycles": b.cycles, "production_date": (24 << 9) | (5 << 5) | 17, "protection": protection,
            "sw_version": 0x80, "soc": round(b.soc), "fet": fet, "cell_count": b.cells,
        }
        return jbd.encode_basic(values, b.temperatures)

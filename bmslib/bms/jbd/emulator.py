"""JBD emulator: answers 0x03 / 0x04 / 0x05 reads and 0xE1 FET writes like a JBD BMS.

With ``password`` set it plays newer firmware with a password: it answers the ``FF AA`` handshake
(:class:`bmslib.bms.jbd.protocol.auth.JbdAuthDevice`, once per connection) and answers no ``DD`` request
before the handshake succeeded. Without one it answers the handshake's first step with "no password".
"""

from __future__ import annotations

import random
from collections.abc import Callable

from bmslib.bms.jbd.protocol import auth as jbd_auth
from bmslib.bms.jbd.protocol import frames as jbd
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService


class JbdEmulator(Emulator):
    type_name = "jbd"
    model = "JBD-SP04S034-SIM"

    _rx: bytearray

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None,
                 password: str | None = None, random_byte: Callable[[], int] | None = None) -> None:
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)
        if password is not None:
            jbd_auth.user_password_bytes(password)  # six ASCII characters, as the BMS app allows
        self.password = password
        self.random_byte = random_byte or (lambda: self.rng.randrange(256))
        self.auth: jbd_auth.JbdAuthDevice | None = None

    @property
    def authenticated(self) -> bool:
        """True once this connection passed the handshake (always, without a password)."""
        return self.password is None or (self.auth is not None and self.auth.authenticated)

    def on_connect(self) -> None:
        self._rx = bytearray()
        self.auth = jbd_auth.JbdAuthDevice(self.address, self.password, random_byte=self.random_byte)

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
        if data[:2] == jbd_auth.HEADER:
            self.handle_auth(data)
            return
        if not self.authenticated:
            return  # locked: no answer to DD requests
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

    def handle_auth(self, request: bytes) -> None:
        """One ``FF AA`` request (a whole frame per write); the reply comes in one notification."""
        reply = self.auth.handle(request) if self.auth is not None else None
        if reply is not None:
            self.notify(reply)

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

"""JK (Jikong) emulator: device info on 0x97, settings and then a cell-info stream on 0x96, switches.

Like a JK BMS it answers 0x97 with the device-info frame followed by the 20-byte ack (in the same
notification stream, sometimes followed by ``AT\\r\\n``), answers 0x96 with one settings frame and
then sends a cell-info frame every ``stream_period`` seconds on its own until the link drops or
:meth:`JkEmulator.stop_stream` is called (a new 0x96 starts it again). 300-byte frames go out in
notifications of ``mtu`` bytes: 128 + 128 + 44 as JK modules do by default.

Options: ``layout`` (the frame layout; the firmware versions in the device info match it unless
``firmware`` = (hardware, software) says otherwise), ``module`` (``"new"``: two FFE1
characteristics, one to write and one that notifies; ``"old"``: one FFE1 that does both),
``stream_period``, ``mtu``, ``answers_device_info`` (False: 0x97 goes unanswered, as when the
reply is lost on the radio), ``at_noise`` (probability of the Bluetooth module's ``AT\\r\\n`` after
an ack or a streamed frame), ``echo`` (the module sends every command back first) and ``passcode``
(written into the device-info frame as a real BMS does).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import ClassVar, Literal

from bmslib.bms.jk.protocol import codec as jk
from bmslib.bms.jk.protocol.codec import FrameLayout
from bmslib.bms.jk.protocol.device_info_decoder import version_major
from bmslib.bms.jk.protocol.framing import (
    ACK,
    AT_NOISE,
    CMD_CELL_INFO,
    CMD_DEVICE_INFO,
    COMMAND_LENGTH,
    HOST_HEADER,
    REG_BALANCE,
    REG_CHARGE,
    REG_DISCHARGE,
    REG_JK04_BALANCE,
)
from bmslib.bms.jk.protocol.jk02 import ERROR_BITS, EXTENDED_PROBES_SW_MAJOR
from bmslib.model import DeviceInfo
from bmslib.protocol.fields import Number, names_to_bits
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

#: (model, hardware, software) of a real device of each layout
FIRMWARE = {
    FrameLayout.JK02_24S: ("JK-B2A24S20P", "10.XG", "10.07"),
    FrameLayout.JK02_32S: ("JK_PB2A16S15P", "14.XA", "14.20"),
    FrameLayout.JK04: ("JK-B2A16S", "3.0", "3.3.0"),
}
SWITCH_REGISTERS = {
    FrameLayout.JK02_24S: {REG_CHARGE: "charge", REG_DISCHARGE: "discharge", REG_BALANCE: "balance"},
    FrameLayout.JK02_32S: {REG_CHARGE: "charge", REG_DISCHARGE: "discharge", REG_BALANCE: "balance"},
    FrameLayout.JK04: {REG_JK04_BALANCE: "balance"},
}
MANUFACTURER_ID = 0x0B65  # data: 88 A0 + the MAC, as in the advertisement matcher
MAX_RX = 64  # bytes of host writes buffered while looking for a command
SOH = 98  # [%] the aged capacity is this share of the user capacity


class JkEmulator(Emulator):
    type_name = "jk"
    default_layout: ClassVar[FrameLayout] = FrameLayout.JK02_32S
    mtu = 128

    _rx: bytearray

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None, layout: FrameLayout | None = None,
                 module: Literal["new", "old"] = "new", firmware: tuple[str, str] | None = None,
                 stream_period: float = 1.0, mtu: int = 128, answers_device_info: bool = True,
                 at_noise: float = 0.3, echo: bool = False, passcode: str = "1234") -> None:
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)
        self.layout = FrameLayout(layout or self.default_layout)
        self.module = module
        self.model, hw, sw = FIRMWARE[self.layout]
        self.hw_version, self.sw_version = firmware or (hw, sw)
        self.stream_period = stream_period
        self.mtu = mtu
        self.answers_device_info = answers_device_info
        self.at_noise = at_noise
        self.echo = echo
        self.passcode = passcode
        self.cell_frames = 0  # cell-info frames sent (for tests)
        self.last_cell_frame: bytes | None = None
        self._counter = 0
        self._t0 = self.battery.clock() - 86_400.0  # the BMS has been up for a day
        self._rx = bytearray()
        self._stream_task: asyncio.Task[None] | None = None

    # --- GATT and advertisement ---
    @property
    def gatt(self) -> tuple[GattService, ...]:
        if self.module == "old":
            chars: tuple[GattChar, ...] = (
                GattChar(jk.WRITE_UUID, ("read", "write", "write-without-response", "notify")),)
        else:  # two FFE1 characteristics: handle 0x03 to write, 0x05 to notify
            chars = (GattChar(jk.WRITE_UUID, ("write", "write-without-response")),
                     GattChar(jk.NOTIFY_UUID, ("notify",)))
        return (GattService(jk.SERVICE_UUID, chars),)

    def advertisement(self) -> Advertisement:
        mac = bytes.fromhex(self.address.replace(":", ""))
        return Advertisement(name=self.name, service_uuids=(jk.SERVICE_UUID,),
                             manufacturer_data={MANUFACTURER_ID: b"\x88\xa0" + mac})

    # --- connection ---
    def on_connect(self) -> None:
        self._rx = bytearray()

    def on_disconnect(self) -> None:
        self.stop_stream()

    async def aclose(self) -> None:
        task, self._stream_task = self._stream_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await super().aclose()

    # --- host commands ---
    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != jk.WRITE_UUID:
            return
        self._rx += data
        del self._rx[:-MAX_RX]
        while (start := self._rx.find(HOST_HEADER)) >= 0 and len(self._rx) - start >= COMMAND_LENGTH:
            raw = bytes(self._rx[start:start + COMMAND_LENGTH])
            command = jk.parse_command(raw)
            if command is None:
                del self._rx[:start + 1]
                continue
            del self._rx[:start + COMMAND_LENGTH]
            self._answer(command, raw)

    def _answer(self, command: jk.Command, raw: bytes) -> None:
        if self.echo:
            self.notify(raw)
        register = command.register
        if register == CMD_DEVICE_INFO and self.answers_device_info:
            self.notify(self.device_info_frame() + ACK + self._noise())
        elif register == CMD_CELL_INFO:
            self.notify(self.settings_frame())
            self.start_stream()
        elif register in SWITCH_REGISTERS[self.layout]:
            self.battery.set_switch(SWITCH_REGISTERS[self.layout][register], bool(command.number))
            self.notify(ACK + self._noise())
        # other registers (settings writes, the logbook, ...) are not emulated: no answer

    def _noise(self) -> bytes:
        return AT_NOISE if self.at_noise and self.rng.random() < self.at_noise else b""

    # --- the cell-info stream ---
    @property
    def streaming(self) -> bool:
        return self._stream_task is not None and not self._stream_task.done()

    def start_stream(self) -> None:
        """(Re)start the cell-info stream: one frame now, then one every ``stream_period``."""
        self.stop_stream()
        self._stream_task = asyncio.get_running_loop().create_task(self._stream(), name=f"sim-jk-{self.name}")

    def stop_stream(self) -> None:
        """The BMS stops streaming (as some do after a while) until the next 0x96."""
        if self._stream_task is not None:
            self._stream_task.cancel()
            self._stream_task = None

    async def _stream(self) -> None:
        while self.link is not None:
            if not self.faults.mute:
                frame = self.cell_info_frame()
                self.cell_frames += 1
                self.last_cell_frame = frame
                self.notify(frame + self._noise())
            await asyncio.sleep(self.stream_period)

    # --- frames from the battery model ---
    def _next_counter(self) -> int:
        self._counter = (self._counter + 1) & 0xFF
        return self._counter

    @property
    def uptime(self) -> int:
        return int(self.battery.clock() - self._t0)

    def device_info_frame(self) -> bytes:
        serial = self.address.replace(":", "")[-10:]
        info = DeviceInfo(model=self.model, hw_version=self.hw_version, sw_version=self.sw_version,
                          serial=serial, name=self.name[:16])
        return jk.encode_device_info(info, uptime=self.uptime, power_on_count=3, manufacturing_date="240517",
                                     passcode=self.passcode, setup_passcode=self.passcode,
                                     counter=self._next_counter())

    def settings_frame(self) -> bytes:
        b = self.battery
        values: dict[str, Number]
        if self.layout is FrameLayout.JK04:
            values = {"cell_count_setting": b.cells, "power_off_voltage": 2.75, "voltage_calibration": 3.033,
                      "balance_start_voltage": 3.35, "balance_trigger_voltage": 0.008, "max_balance_current": 2.0,
                      "balance_enabled": int(b.balancer)}
        else:
            values = {
                "cell_uvp": 2.6, "cell_uvp_recovery": 2.8, "cell_ovp": 3.65, "cell_ovp_recovery": 3.4,
                "balance_trigger_voltage": 0.01, "soc_100_voltage": 3.45, "soc_0_voltage": 2.9,
                "power_off_voltage": 2.5, "max_charge_current": 100.0, "charge_ocp_delay": 30,
                "max_discharge_current": 150.0, "discharge_ocp_delay": 300, "max_balance_current": 2.0,
                "charge_otp": 60.0, "discharge_otp": 65.0, "charge_utp": 0.0, "mos_otp": 100.0,
                "cell_count_setting": b.cells, "charge_enabled": int(b.charge_fet),
                "discharge_enabled": int(b.discharge_fet), "balance_enabled": int(b.balancer),
                "capacity": b.capacity_ah, "scp_delay_us": 1500, "balance_start_voltage": 3.4,
            }
        return jk.encode_settings(self.layout, values, self._next_counter())

    def cell_info_frame(self) -> bytes:
        b = self.battery
        b.advance()
        cells = b.cell_voltages
        resistances = [b.internal_resistance] * b.cells  # [Ohm]
        balancing = int(b.balance_current != 0)
        if self.layout is FrameLayout.JK04:
            values: dict[str, Number] = {"balance_action": balancing, "balance_current": b.balance_current,
                                         "uptime": self.uptime}
            return jk.encode_cell_info(self.layout, values, cells, resistances, self._next_counter())
        values = {
            "current": b.current, "soc": round(b.soc), "charge": b.charge_ah,
            "aged_capacity": b.capacity_ah * SOH / 100, "cycles": b.cycles,
            "cycle_capacity": b.cycles * b.capacity_ah, "soh": SOH, "uptime": self.uptime,
            "charge_fet": int(b.charge_fet), "discharge_fet": int(b.discharge_fet),
            "mos_temperature": b.mos_temperature, "balance_current": b.balance_current,
            "balance_action": balancing, "heating": 0,
            # a real unit fills in its cells' mean and spread (real captures: within 1-2 mV of the cells')
            "cell_average": round(sum(cells) / len(cells), 3), "cell_delta": round(max(cells) - min(cells), 3),
            "errors": names_to_bits([a for a in b.alarms if a in ERROR_BITS.values()], ERROR_BITS) & self.error_mask,
        }
        values.update(zip(self.probe_names, b.temperatures, strict=False))
        return jk.encode_cell_info(self.layout, values, cells, resistances, self._next_counter())

    @property
    def error_mask(self) -> int:
        """The error bits the layout has room for (24S: 16, 32S: 32)."""
        return 0xFFFF if self.layout is FrameLayout.JK02_24S else 0xFFFF_FFFF

    @property
    def probe_names(self) -> tuple[str, ...]:
        """The cell/pack temperature probes this firmware reports, in order."""
        sw = version_major(self.sw_version) or 0
        if self.layout is FrameLayout.JK02_32S and sw >= EXTENDED_PROBES_SW_MAJOR:
            return ("t1", "t2", "t3", "t4")
        return ("t1", "t2")


class Jk24sEmulator(JkEmulator):
    type_name = "jk_24s"
    default_layout = FrameLayout.JK02_24S


class Jk32sEmulator(JkEmulator):
    type_name = "jk_32s"
    default_layout = FrameLayout.JK02_32S


class Jk04Emulator(JkEmulator):
    type_name = "jk04"
    default_layout = FrameLayout.JK04

"""JBD / Xiaoxiang / Overkill driver: poll basic info (0x03) and cells (0x04); FETs via 0xE1."""

from __future__ import annotations

from typing import ClassVar

from bmslib.ble.transport import FrameMatch
from bmslib.drivers.base import BleDriver
from bmslib.errors import UnsupportedError
from bmslib.model import Reading, merge_readings
from bmslib.protocol import jbd


def _reply_to(register: int) -> FrameMatch:
    return lambda frame: jbd.frame_register(frame) == register


class JbdDriver(BleDriver):
    service_uuid = jbd.SERVICE_UUID
    notify_uuid = jbd.NOTIFY_UUID
    write_uuid = jbd.WRITE_UUID
    switches: ClassVar[frozenset[str]] = frozenset({"charge", "discharge"})
    request_timeout: ClassVar[float] = 5.0

    _last_switches: dict[str, bool] | None = None

    def make_codec(self) -> jbd.JbdCodec:
        return jbd.JbdCodec()

    async def on_connected(self) -> None:
        if self.device_info.model is None:
            try:
                await self.query(jbd.request(jbd.REG_HW), _reply_to(jbd.REG_HW))
            except TimeoutError:
                self.log.info("no reply to the hardware-version request; continuing without it")

    async def read_basic(self) -> Reading:
        basic = await self.query(jbd.request(jbd.REG_BASIC), _reply_to(jbd.REG_BASIC))
        self._last_switches = dict(basic.get("switches", {}))
        return basic

    async def read(self) -> Reading:
        basic = await self.read_basic()
        cells = await self.query(jbd.request(jbd.REG_CELLS), _reply_to(jbd.REG_CELLS))
        return merge_readings(basic, cells)

    async def set_switch(self, name: str, on: bool) -> None:
        if name not in self.switches:
            raise UnsupportedError(f"JBD has no switch {name!r}")
        state = self._last_switches
        if state is None:
            await self.read_basic()
            state = self._last_switches or {}
        want = {"charge": state.get("charge", True), "discharge": state.get("discharge", True), name: on}
        await self.query(jbd.mos_request(want["charge"], want["discharge"]), _reply_to(jbd.REG_MOS))

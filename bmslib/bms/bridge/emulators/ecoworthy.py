"""ECO-WORTHY BMS emulator (aiobmsble plugin ``ecoworthy``): a BMS that streams two status frames on FFF1.

The battery sends an A1 frame (state of charge, health, voltage, current, capacity) and an A2 frame (cells and
temperatures) about once a second. It starts when the host writes one of its 18-byte commands (``FF ...`` with a
Modbus CRC, little-endian) to FFF2, and answers each such write with both frames at once; the app sends two of
them after connecting. Values are big-endian, each frame ends with a Modbus CRC (little-endian).

Two framings are captured: protocol 1 starts with the frame type (``A1``/``A2``) and a 13-byte header; protocol
2 starts with the device address, the frame type and a 5-byte header, and sends the current in 0.1 A instead of
0.01 A. The header bytes are sent as captured (their meaning is not pinned). Offsets come from captured frames
(tests/bms/bridge/captures/ecoworthy.json).

Frames are built by :mod:`bmslib.bms.bridge.emulators.frames.ecoworthy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from bmslib.bms.bridge.emulators.frames.ecoworthy import (
    A1,
    A2,
    ADVERTISED_UUIDS,
    CELL_SLOTS,
    HEADERS,
    NAME_PREFIX,
    NOTIFY_UUID,
    SERVICE_UUID,
    TEMP_SLOTS,
    WRITE_UUID,
    a1_data,
    a2_data,
    frame,
    is_command,
)
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService


class EcoworthyEmulator(Emulator):
    type_name = "ecoworthy"
    mtu = 244  # each frame in one notification, as the plugin expects
    stream_interval = 1.0  # [s] between the frames the battery sends on its own

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None, protocol: int = 1) -> None:
        if protocol not in HEADERS:
            raise ValueError(f"protocol must be 1 or 2, not {protocol!r}")
        self.mac = bytes.fromhex(address.replace(":", ""))
        if not name.startswith(("ECO-WORTHY", "DCHOUSE")):
            # as captured: the name ends with the last two address bytes minus one
            name = f"{NAME_PREFIX}{(int.from_bytes(self.mac[4:], 'big') - 1) & 0xFFFF:04X}"
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)
        self.protocol = protocol
        self._stream: asyncio.Task[None] | None = None

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (GattService(SERVICE_UUID, (
            GattChar(NOTIFY_UUID, ("read", "notify")),
            GattChar(WRITE_UUID, ("write-without-response", "write")),
        )),)

    def advertisement(self) -> Advertisement:
        # as captured: company id = the first two address bytes (little-endian), then the other four
        return Advertisement(name=self.name, service_uuids=ADVERTISED_UUIDS,
                             manufacturer_data={int.from_bytes(self.mac[:2], "little"): self.mac[2:]})

    def handle_read(self, char_uuid: str) -> bytes:
        if char_uuid == NOTIFY_UUID:
            return b""
        raise KeyError(char_uuid)

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != WRITE_UUID or not is_command(data):
            return
        self.send_status()
        if self._stream is None and self.link is not None:  # streams only to a connected host
            self._stream = asyncio.get_running_loop().create_task(self._streaming(), name=f"sim-stream-{self.name}")

    def on_disconnect(self) -> None:
        task, self._stream = self._stream, None
        if task is not None:
            task.cancel()

    async def _streaming(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(self.stream_interval)
                self.send_status()

    def frames(self) -> tuple[bytes, bytes]:
        """The A1 and A2 frames of the battery's state now."""
        b = self.battery
        b.advance()
        a1 = a1_data({"soc": round(b.soc), "soh": 100, "voltage": b.voltage, "current": -b.current,
                      "capacity": b.capacity_ah, "problem_code": 0}, self.protocol)
        a2 = a2_data(b.cell_voltages[:CELL_SLOTS], b.temperatures[:TEMP_SLOTS])
        return frame(A1, a1, self.protocol, self.mac), frame(A2, a2, self.protocol, self.mac)

    def send_status(self) -> None:
        for f in self.frames():
            self.notify(f)


EMULATOR: type[Emulator] = EcoworthyEmulator

"""ECO-WORTHY BMS emulator (aiobmsble plugin ``ecoworthy``): a BMS that streams two status frames on FFF1.

The battery sends an A1 frame (state of charge, health, voltage, current, capacity) and an A2 frame (cells and
temperatures) about once a second. It starts when the host writes one of its 18-byte commands (``FF ...`` with a
Modbus CRC, little-endian) to FFF2, and answers each such write with both frames at once; the app sends two of
them after connecting. Values are big-endian, each frame ends with a Modbus CRC (little-endian).

Two framings are captured: protocol 1 starts with the frame type (``A1``/``A2``) and a 13-byte header; protocol
2 starts with the device address, the frame type and a 5-byte header, and sends the current in 0.1 A instead of
0.01 A. The header bytes are sent as captured (their meaning is not pinned). Offsets come from captured frames
(tests/bms/bridge/captures/ecoworthy.json).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping, Sequence

from bmslib.protocol.crc import crc16_modbus
from bmslib.protocol.fields import Field, FieldTable, Number, encode_array
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

SERVICE_UUID = "0000fff0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000fff1-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000fff2-0000-1000-8000-00805f9b34fb"
ADVERTISED_UUIDS = ("00001800-0000-1000-8000-00805f9b34fb", "00001801-0000-1000-8000-00805f9b34fb", SERVICE_UUID)
NAME_PREFIX = "ECO-WORTHY 02_"

A1, A2 = 0xA1, 0xA2
#: the header after the frame type, per protocol, as captured (the last byte is the data length)
HEADERS = {1: bytes.fromhex("00000065000000000018" "0103"), 2: bytes.fromhex("000008" "03")}
CELL_SLOTS, TEMP_SLOTS = 32, 9
NO_CELL, NO_TEMP = 0xFFFF, -1000  # unused slots [mV] / [0.1 degC]
CELL_COUNT_AT, CELLS_AT = 0, 2
TEMP_COUNT_AT, TEMPS_AT = 66, 68
A1_LEN, A2_LEN = 0x44, 0x56

A1_FIELDS = FieldTable(">", (
    Field("soc", 2, "H"), Field("soh", 4, "H"), Field("voltage", 6, "H", 0.01), Field("current", 8, "h", 0.01),
    Field("capacity", 12, "H", 0.01), Field("problem_code", 37, "H"),
))
CURRENT_SCALE = {1: 0.01, 2: 0.1}


def a1_data(values: Mapping[str, Number], protocol: int = 1) -> bytes:
    """A1 data: soc and soh [%], voltage [V], current [A, + = charging], capacity [Ah], problem_code."""
    data = bytearray(A1_LEN)
    A1_FIELDS.encode({k: v for k, v in values.items() if k != "current"}, data)
    if "current" in values:
        data[8:10] = round(values["current"] / CURRENT_SCALE[protocol]).to_bytes(2, "big", signed=True)
    return bytes(data)


def a2_data(cells: Sequence[float], temps: Sequence[float]) -> bytes:
    """A2 data: cell count and voltages [V], temperature count and temperatures [degC]; unused slots marked."""
    if len(cells) > CELL_SLOTS or len(temps) > TEMP_SLOTS:
        raise ValueError(f"at most {CELL_SLOTS} cells and {TEMP_SLOTS} temperatures")
    data = bytearray(A2_LEN)
    data[CELL_COUNT_AT:CELL_COUNT_AT + 2] = len(cells).to_bytes(2, "big")
    data[CELLS_AT:TEMP_COUNT_AT] = encode_array(list(cells) + [NO_CELL / 1000] * (CELL_SLOTS - len(cells)), ">H", 0.001)
    data[TEMP_COUNT_AT:TEMP_COUNT_AT + 2] = len(temps).to_bytes(2, "big")
    data[TEMPS_AT:] = encode_array(list(temps) + [NO_TEMP / 10] * (TEMP_SLOTS - len(temps)), ">h", 0.1)
    return bytes(data)


def frame(kind: int, data: bytes, protocol: int = 1, mac: bytes = b"") -> bytes:
    """A whole A1/A2 frame of ``protocol`` (2: prefixed with the device address ``mac``)."""
    prefix = bytes((kind,)) if protocol == 1 else mac + bytes((kind,))
    body = prefix + HEADERS[protocol] + bytes((len(data),)) + data
    return body + crc16_modbus(body).to_bytes(2, "little")


def is_command(data: bytes) -> bool:
    """A host command the battery accepts (it starts the stream): ``FF``, at least 4 bytes, a valid CRC."""
    return len(data) >= 4 and data[0] == 0xFF and crc16_modbus(data[:-2]) == int.from_bytes(data[-2:], "little")


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

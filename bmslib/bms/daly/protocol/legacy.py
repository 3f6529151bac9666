"""Daly legacy "A5" protocol (older J/T/A/U/W/ND series), sans-IO.

Every frame is 13 bytes: ``A5 addr cmd 08 <8 data bytes> sum8(bytes 0..11)``; the host writes with
address 0x80 (Bluetooth), the BMS answers with address 0x01. One notification may carry several
replies. Reads are 0x90..0x96; cell voltages come as ceil(cells/3) 0x95 replies and temperatures as
ceil(sensors/7) 0x96 replies, each led by a frame index counting from 1, so :class:`LegacySession`
keeps the cell and sensor counts from 0x94 and collects the pieces until all are seen.

Current sign: the sources disagree for this protocol (see doc/bms/daly.md). The 0x90 table assumes
raw > 30000 means discharging; the session then learns the device's polarity from the charge/
discharge state byte of 0x93 whenever the BMS reports charging or discharging at a clear current.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from bmslib.errors import FrameError
from bmslib.model import DeviceInfo, Reading
from bmslib.protocol.base import OK, WAIT, HeadedAssembler
from bmslib.protocol.crc import sum8
from bmslib.protocol.fields import Field, FieldTable, Number, decode_array, encode_array

START, DATA_LEN, FRAME_LEN = 0xA5, 0x08, 13
HOST_BLE, HOST_UART, BMS_ADDRESS = 0x80, 0x40, 0x01
CMD_SOC, CMD_CELL_RANGE, CMD_TEMP_RANGE, CMD_STATUS, CMD_INFO, CMD_CELLS, CMD_TEMPS = range(0x90, 0x97)
CMD_DISCHARGE_MOS, CMD_CHARGE_MOS = 0xD9, 0xDA
SWITCH_COMMANDS: Mapping[str, int] = {"charge": CMD_CHARGE_MOS, "discharge": CMD_DISCHARGE_MOS}
CELLS_PER_FRAME, TEMPS_PER_FRAME = 3, 7
MAX_CELLS, MAX_SENSORS = 48, 16
STATE_NAMES: Mapping[int, str] = {0: "idle", 1: "charging", 2: "discharging"}
STATE_CHARGING, STATE_DISCHARGING = 1, 2

# Payload tables (payload = frame bytes 4..11), big-endian.
TABLES: Mapping[int, FieldTable] = {
    CMD_SOC: FieldTable(">", (
        Field("voltage", 0, "H", 0.1),
        Field("acquisition_voltage", 2, "H", 0.1),
        Field("current", 4, "H", 0.1, -3000.0),  # default polarity: raw > 30000 = discharging (+ in model)
        Field("soc", 6, "H", 0.1),
    )),
    CMD_CELL_RANGE: FieldTable(">", (
        Field("cell_max", 0, "H", 0.001), Field("cell_max_index", 2, "B"),
        Field("cell_min", 3, "H", 0.001), Field("cell_min_index", 5, "B"),
    )),
    CMD_TEMP_RANGE: FieldTable(">", (
        Field("temperature_max", 0, "B", 1.0, -40.0), Field("temperature_max_index", 1, "B"),
        Field("temperature_min", 2, "B", 1.0, -40.0), Field("temperature_min_index", 3, "B"),
    )),
    CMD_STATUS: FieldTable(">", (
        Field("state", 0, "B"), Field("charge_mos", 1, "B"), Field("discharge_mos", 2, "B"),
        Field("bms_life", 3, "B"), Field("charge", 4, "i", 0.001),  # remaining capacity, mAh on the wire
    )),
    CMD_INFO: FieldTable(">", (
        Field("cell_count", 0, "B"), Field("sensor_count", 1, "B"), Field("charger", 2, "B"),
        Field("load", 3, "B"), Field("dio", 4, "B"), Field("cycles", 5, "H"),
    )),
}

# Polarity learning: a vote needs a clear current; a learned polarity changes only after a run of
# contrary votes, so a state byte lagging a current reversal cannot flip it.
ARBITER_MIN_CURRENT = 0.5  # [A]
VOTES_TO_FLIP = 3


def request(cmd: int, data: bytes = b"", *, address: int = HOST_BLE) -> bytes:
    """Host -> BMS frame for ``cmd`` with up to 8 data bytes (zero padded)."""
    if len(data) > DATA_LEN:
        raise ValueError("a Daly A5 frame carries at most 8 data bytes")
    body = bytes((START, address, cmd, DATA_LEN)) + data.ljust(DATA_LEN, b"\0")
    return body + bytes((sum8(body),))


def switch_request(switch: str, on: bool) -> bytes:
    """Charge (0xDA) or discharge (0xD9) MOSFET on/off: data byte 0 = 1 on, 0 off."""
    if switch not in SWITCH_COMMANDS:
        raise ValueError(f"no legacy Daly switch called {switch!r}")
    return request(SWITCH_COMMANDS[switch], bytes((int(on),)))


def valid_frame(frame: bytes, address: int) -> bool:
    return (len(frame) == FRAME_LEN and frame[0] == START and frame[1] == address
            and frame[3] == DATA_LEN and frame[12] == sum8(frame[:12]))


def parse_request(frame: bytes) -> tuple[int, bytes] | None:
    """Device side: ``(cmd, data)`` of a well-formed host frame (address 0x80 or 0x40), else None."""
    if not any(valid_frame(frame, a) for a in (HOST_BLE, HOST_UART)):
        return None
    return frame[2], bytes(frame[4:12])


class DalyLegacyAssembler(HeadedAssembler):
    """Cut the stream into 13-byte replies from the BMS; resync on the next 0xA5 after a bad one."""

    heads = (bytes((START,)),)
    max_frame = min_frame = FRAME_LEN

    def check(self, buf: bytearray, at: int) -> tuple[str, int]:
        if len(buf) >= at + 4 and (buf[at + 1] != BMS_ADDRESS or buf[at + 3] != DATA_LEN):
            return "bad address, length byte or checksum", 0
        end = at + FRAME_LEN
        if len(buf) < end:
            return WAIT, 0
        if not valid_frame(bytes(buf[at:end]), BMS_ADDRESS):
            return "bad address, length byte or checksum", 0
        return OK, end


def frame_parts(frame: bytes) -> tuple[int, bytes]:
    """``(cmd, 8-byte payload)`` of a BMS reply; FrameError if it is not one."""
    if not valid_frame(frame, BMS_ADDRESS):
        raise FrameError("not a Daly A5 reply frame", frame)
    return frame[2], frame[4:12]


def _state_name(state: int) -> str:
    return STATE_NAMES.get(state, f"unknown_{state}")


class LegacySession:
    """Decoder with the state the legacy protocol needs across frames: cell/sensor counts, pieces
    of multi-frame replies, and the learned current polarity (+1: table default, -1: inverted)."""

    def __init__(self) -> None:
        self.cell_count: int | None = None
        self.sensor_count: int | None = None
        self.polarity = 1
        self.polarity_learned = False
        self._contrary_votes = 0
        self._cells: dict[int, tuple[float, ...]] = {}
        self._temps: dict[int, tuple[float, ...]] = {}
        self._pending_current: float | None = None  # 0x90 current (table polarity) awaiting a 0x93 state
        self._pending_state: int | None = None  # 0x93 state awaiting a 0x90 current

    def reset(self) -> None:
        """Forget partial multi-frame replies and unpaired current/state (counts and polarity stay)."""
        self._cells.clear()
        self._temps.clear()
        self._pending_current = self._pending_state = None

    def replies_expected(self, cmd: int) -> int | None:
        """Reply frames one request ``cmd`` yields; None while the count (from 0x94) is unknown."""
        if cmd == CMD_CELLS:
            return None if self.cell_count is None else math.ceil(self.cell_count / CELLS_PER_FRAME)
        if cmd == CMD_TEMPS:
            return None if self.sensor_count is None else math.ceil(self.sensor_count / TEMPS_PER_FRAME)
        return 1

    def decode(self, frame: bytes) -> Reading:
        cmd, payload = frame_parts(frame)
        if cmd == CMD_CELLS:
            cells = self._collect(payload, self._cells, self.cell_count, CELLS_PER_FRAME)
            return {} if cells is None else {"cell_voltages": cells}
        if cmd == CMD_TEMPS:
            temps = self._collect(payload, self._temps, self.sensor_count, TEMPS_PER_FRAME)
            return {} if temps is None else {"temperatures": temps}
        table = TABLES.get(cmd)
        if table is None:
            return {}  # 0x97/0x98 and switch replies are not decoded
        v = table.decode(payload)
        if cmd == CMD_SOC:
            return self._decode_soc(v)
        if cmd == CMD_STATUS:
            return self._decode_status(v)
        if cmd == CMD_INFO:
            return self._decode_info(v)
        # 0x91 / 0x92: the device's own extremes (the sample derives its own from the cells)
        return {"extra": {k: int(x) if table[k].is_int else round(float(x), 3) for k, x in v.items()}}

    def _decode_soc(self, v: Mapping[str, Number]) -> Reading:
        current = float(v["current"])
        if self._pending_state is not None:
            self._arbitrate(current, self._pending_state)
            self._pending_state = None
        else:
            self._pending_current = current
        return {"voltage": round(float(v["voltage"]), 1), "current": round(current * self.polarity, 1),
                "soc": round(float(v["soc"]), 1), "extra": {"current_sign_learned": self.polarity_learned}}

    def _decode_status(self, v: Mapping[str, Number]) -> Reading:
        state = int(v["state"])
        reading: Reading = {
            "charge": round(float(v["charge"]), 3),
            # The discharge byte does not follow the real switch on some firmware: extra only.
            "switches": {"charge": bool(v["charge_mos"])},
            "extra": {"state": _state_name(state), "discharge_mos_reported": bool(v["discharge_mos"]),
                      "bms_life": int(v["bms_life"])},
        }
        if self._pending_current is not None:  # 0x90 came first: settle its sign now
            self._arbitrate(self._pending_current, state)
            reading["current"] = round(self._pending_current * self.polarity, 1)
            reading["extra"]["current_sign_learned"] = self.polarity_learned
            self._pending_current = None
        else:
            self._pending_state = state
        return reading

    def _decode_info(self, v: Mapping[str, Number]) -> Reading:
        cells, sensors = int(v["cell_count"]), int(v["sensor_count"])
        if cells > MAX_CELLS or sensors > MAX_SENSORS:
            raise FrameError(f"implausible counts: {cells} cells, {sensors} temperature sensors")
        if self.cell_count not in (None, cells):  # pieces collected for another count are useless
            self._cells.clear()
        if self.sensor_count not in (None, sensors):
            self._temps.clear()
        self.cell_count, self.sensor_count = cells, sensors
        return {"cycles": int(v["cycles"]), "device_info": DeviceInfo(manufacturer="Daly"), "extra": {
            "cell_count": cells, "temperature_sensor_count": sensors, "charger_present": bool(v["charger"]),
            "load_present": bool(v["load"]), "dio_bits": int(v["dio"])}}

    def _arbitrate(self, current: float, state: int) -> None:
        """One vote from a (current in table polarity, BMS state) pair; see ARBITER_MIN_CURRENT."""
        if state not in (STATE_CHARGING, STATE_DISCHARGING) or abs(current) < ARBITER_MIN_CURRENT:
            return
        model_sign = 1 if state == STATE_DISCHARGING else -1  # what the model wants
        vote = model_sign if current > 0 else -model_sign
        if not self.polarity_learned:
            self.polarity, self.polarity_learned, self._contrary_votes = vote, True, 0
        elif vote == self.polarity:
            self._contrary_votes = 0
        else:
            self._contrary_votes += 1
            if self._contrary_votes >= VOTES_TO_FLIP:
                self.polarity, self._contrary_votes = vote, 0

    def _collect(self, payload: bytes, parts: dict[int, tuple[float, ...]], count: int | None,
                 per_frame: int) -> tuple[float, ...] | None:
        """Store one indexed piece; all values once every piece for ``count`` values is in."""
        cells = per_frame == CELLS_PER_FRAME
        most = (MAX_CELLS if cells else MAX_SENSORS) if count is None else count
        frames = math.ceil(most / per_frame)
        index = payload[0]
        if not 1 <= index <= frames:
            raise FrameError(f"{'cell' if cells else 'temperature'} frame index {index} outside 1..{frames}",
                             payload)
        if cells:
            parts[index] = tuple(round(c, 3) for c in decode_array(payload, 1, per_frame, ">H", 0.001))
        else:
            parts[index] = tuple(decode_array(payload, 1, per_frame, ">B", 1.0, -40.0))
        if count is None or any(i not in parts for i in range(1, frames + 1)):
            return None
        values = tuple(x for i in range(1, frames + 1) for x in parts[i])[:count]
        parts.clear()
        return values


# --- device side (emulator) ----------------------------------------------------------------------


def response(cmd: int, payload: bytes) -> bytes:
    """BMS -> host frame carrying an 8-byte payload."""
    if len(payload) != DATA_LEN:
        raise ValueError("a Daly A5 payload is 8 bytes")
    body = bytes((START, BMS_ADDRESS, cmd, DATA_LEN)) + payload
    return body + bytes((sum8(body),))


def encode(cmd: int, values: Mapping[str, Number]) -> bytes:
    """Reply frame for a table command (0x90..0x94) from its field values (model units and sign,
    current in the table's default polarity)."""
    payload = bytearray(DATA_LEN)
    TABLES[cmd].encode(values, payload)
    return response(cmd, bytes(payload))


def encode_cells(cells: Sequence[float]) -> list[bytes]:
    """The 0x95 replies for ``cells`` [V]: index from 1, three per frame, zero padded."""
    return [response(CMD_CELLS, bytes((i // CELLS_PER_FRAME + 1,))
                     + encode_array(cells[i:i + CELLS_PER_FRAME], ">H", 0.001).ljust(7, b"\0"))
            for i in range(0, len(cells), CELLS_PER_FRAME)]


def encode_temperatures(temperatures: Sequence[float]) -> list[bytes]:
    """The 0x96 replies for ``temperatures`` [°C]: index from 1, seven per frame."""
    return [response(CMD_TEMPS, bytes((i // TEMPS_PER_FRAME + 1,))
                     + encode_array(temperatures[i:i + TEMPS_PER_FRAME], ">B", 1.0, -40.0).ljust(7, b"\0"))
            for i in range(0, len(temperatures), TEMPS_PER_FRAME)]

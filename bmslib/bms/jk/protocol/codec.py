"""JK (Jikong) BMS protocol family (JK02_24S, JK02_32S, JK04), sans-IO: the codec and its parts.

Session: subscribe, send :data:`REQUEST_DEVICE_INFO` (0x97: device-info frame 0x03, often an ack),
then :data:`REQUEST_CELL_INFO` (0x96: one settings frame 0x01, then cell-info frames 0x02 stream
about once a second). Re-send 0x96 to refresh the settings (switch states) after a switch write.

The layout of settings and cell-info frames depends on the firmware; :class:`JkCodec` picks it
from the device-info frame unless one is forced (config types ``jk_24s``, ``jk_32s``, ``jk04``).
Framing is in :mod:`~bmslib.bms.jk.protocol.framing`, the frame layouts in
:mod:`~bmslib.bms.jk.protocol.jk02`, :mod:`~bmslib.bms.jk.protocol.jk04` and
:mod:`~bmslib.bms.jk.protocol.device_info_decoder`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bmslib.bms.jk.protocol import device_info_decoder
from bmslib.bms.jk.protocol import jk02 as jk_jk02
from bmslib.bms.jk.protocol import jk04 as jk_jk04
from bmslib.bms.jk.protocol.device_info_decoder import layout_from_versions, version_major
from bmslib.bms.jk.protocol.framing import (
    ACK,
    FRAME_LENGTH,
    REQUEST_CELL_INFO,
    REQUEST_DEVICE_INFO,
    REQUEST_LOGBOOK,
    TYPE_CELL_INFO,
    TYPE_DEVICE_INFO,
    TYPE_LOGBOOK,
    TYPE_SETTINGS,
    Command,
    FrameLayout,
    JkAssembler,
    check_frame,
    command,
    parse_command,
    redact,
    response_frame,
    switch_command,
)
from bmslib.errors import FrameError
from bmslib.model import Reading, merge_readings
from bmslib.protocol.base import AdvertisementMatcher
from bmslib.protocol.fields import Number

__all__ = [
    "ACK",
    "MATCHERS",
    "NOTIFY_UUID",
    "REQUEST_CELL_INFO",
    "REQUEST_DEVICE_INFO",
    "REQUEST_LOGBOOK",
    "SERVICE_UUID",
    "TYPE_LAYOUTS",
    "WRITE_UUID",
    "Command",
    "FrameLayout",
    "JkAssembler",
    "JkCodec",
    "LogEntry",
    "command",
    "decode_logbook",
    "encode_cell_info",
    "encode_device_info",
    "encode_logbook",
    "encode_settings",
    "parse_command",
    "redact",
    "switch_command",
]

SERVICE_UUID = "0000ffe0-0000-1000-8000-00805f9b34fb"
# One FFE1 characteristic on old modules; on newer ones two (write: handle 0x03, notify: 0x05), so
# pick the FFE1 with the notify property for notifications and the one with write for commands.
NOTIFY_UUID = WRITE_UUID = "0000ffe1-0000-1000-8000-00805f9b34fb"

#: FrameLayout forced by a config type (None: choose from the device-info frame).
TYPE_LAYOUTS: dict[str, FrameLayout | None] = {
    "jk": None, "jk_24s": FrameLayout.JK02_24S, "jk_32s": FrameLayout.JK02_32S, "jk04": FrameLayout.JK04,
}


class JkCodec:
    """A JK session: assembles frames and decodes them with the layout of this device.

    Layout: ``layout`` (forced) wins; otherwise the one the device-info frame implies
    (:func:`~bmslib.bms.jk.protocol.device_info_decoder.layout_from_versions`). ``layout_conflict`` describes a
    forced layout that the device info disagrees with (the driver logs it once).

    Before any device info (and without a forced layout) a cell-info frame is decoded with every
    layout and used only if exactly one passes the plausibility checks (``guessed_layout``); a
    settings frame is held and decoded, merged into the device-info reading, once the layout is
    known (its ``decode`` returns an empty reading meanwhile).

    Capacity: the user capacity from the settings frame is ``capacity``. The aged capacity of the
    cell-info frame is always ``extra["aged_capacity"]``, and is also ``capacity`` until a settings
    frame with a non-zero capacity has been decoded (later cell-info readings then leave
    ``capacity`` out, so merging keeps the user value).
    """

    def __init__(self, layout: FrameLayout | None = None) -> None:
        self.forced_layout = layout
        self.detected_layout: FrameLayout | None = None
        self.guessed_layout: FrameLayout | None = None
        self.layout_conflict: str | None = None
        self.sw_major: int | None = None
        self.has_user_capacity = False
        self._held_settings: bytes | None = None

    @property
    def layout(self) -> FrameLayout | None:
        """The layout frames are decoded with (None: not known yet)."""
        return self.forced_layout or self.detected_layout

    def assembler(self) -> JkAssembler:
        return JkAssembler()

    def switch_command(self, name: str, on: bool) -> bytes:
        """The command for switch ``name`` in this device's layout (JK02 registers if unknown)."""
        return switch_command(name, on, self.layout or self.guessed_layout)

    def decode(self, frame: bytes) -> Reading:
        check_frame(frame)
        kind = frame[4]
        if kind == TYPE_DEVICE_INFO:
            return self._device_info(frame)
        if kind == TYPE_SETTINGS:
            return self._settings(frame)
        if kind == TYPE_CELL_INFO:
            return self._cell_info(frame)
        raise FrameError(f"JK frame type 0x{kind:02x} is not decoded", redact(frame))

    def _device_info(self, frame: bytes) -> Reading:
        reading = device_info_decoder.decode(frame)
        info = reading["device_info"]
        self.sw_major = version_major(info.sw_version)
        self.detected_layout = layout_from_versions(info.hw_version, info.sw_version)
        forced, detected = self.forced_layout, self.detected_layout
        self.layout_conflict = None
        if forced is not None and detected is not None and forced is not detected:
            self.layout_conflict = (f"{forced} is configured, but the device reports hardware "
                                    f"{info.hw_version} / software {info.sw_version}, which means {detected}")
        held, self._held_settings = self._held_settings, None
        if held is not None and self.layout is not None:
            try:
                reading = merge_readings(reading, self._settings(held))
            except FrameError:
                pass  # an implausible settings frame is dropped, as it would have been on arrival
        return reading

    def _settings(self, frame: bytes) -> Reading:
        layout = self.layout
        if layout is None:
            self._held_settings = frame
            return {}
        reading = jk_jk04.decode_settings(frame) if layout is FrameLayout.JK04 else jk_jk02.decode_settings(frame)
        if "capacity" in reading:
            self.has_user_capacity = True
        return reading

    def _cell_info(self, frame: bytes) -> Reading:
        layout = self.layout
        if layout is not None:
            return self._decode_cells(frame, layout)
        fits = []
        for candidate in FrameLayout:
            try:
                fits.append((candidate, self._decode_cells(frame, candidate)))
            except FrameError:
                continue
        if len(fits) != 1:
            raise FrameError(f"cell info before device info fits {len(fits)} layouts", frame)
        self.guessed_layout, reading = fits[0]
        return reading

    def _decode_cells(self, frame: bytes, layout: FrameLayout) -> Reading:
        if layout is FrameLayout.JK04:
            return jk_jk04.decode_cell_info(frame)
        reading = jk_jk02.decode_cell_info(frame, layout, self.sw_major)
        aged = float(reading["extra"]["aged_capacity"])
        if not self.has_user_capacity and aged > 0:
            reading["capacity"] = aged
        return reading


# --- device side (emulator): frames from the same field tables -----------------------------------


def encode_cell_info(layout: FrameLayout, values: Mapping[str, Number], cells: Sequence[float],
                     resistances: Sequence[float] = (), counter: int = 0) -> bytes:
    """A cell-info frame in ``layout`` (value names: the layout's ``CELL_INFO`` table)."""
    if layout is FrameLayout.JK04:
        return jk_jk04.encode_cell_info(values, cells, resistances, counter)
    return jk_jk02.encode_cell_info(layout, values, cells, resistances, counter)


def encode_settings(layout: FrameLayout, values: Mapping[str, Number], counter: int = 0) -> bytes:
    """A settings frame in ``layout`` (value names: the layout's ``SETTINGS`` table)."""
    if layout is FrameLayout.JK04:
        return jk_jk04.encode_settings(values, counter)
    return jk_jk02.encode_settings(values, counter)


encode_device_info = device_info_decoder.encode_info


# --- logbook (request 0xA1 -> frame type 0x05; not part of the default assembler's types) -----

LOG_COUNT_AT, LOG_ENTRIES_AT, LOG_ENTRY = 6, 11, struct.Struct("<IB")
LOG_MAX_ENTRIES = (FRAME_LENGTH - 1 - LOG_ENTRIES_AT) // LOG_ENTRY.size


@dataclass(frozen=True, slots=True)
class LogEntry:
    seconds: int  # device uptime at the event
    code: int  # event code (0x01 boot, 0x02 shutdown, ...)


def decode_logbook(frame: bytes) -> tuple[LogEntry, ...]:
    """The entries of a logbook frame (as many as the frame holds of the count it states)."""
    check_frame(frame)
    if frame[4] != TYPE_LOGBOOK:
        raise FrameError(f"not a logbook frame (type 0x{frame[4]:02x})", redact(frame))
    (count,) = struct.unpack_from("<I", frame, LOG_COUNT_AT)
    return tuple(LogEntry(*LOG_ENTRY.unpack_from(frame, LOG_ENTRIES_AT + LOG_ENTRY.size * k))
                 for k in range(min(count, LOG_MAX_ENTRIES)))


def encode_logbook(entries: tuple[LogEntry, ...], counter: int = 0) -> bytes:
    if len(entries) > LOG_MAX_ENTRIES:
        raise ValueError(f"a logbook frame holds at most {LOG_MAX_ENTRIES} entries")
    buf = bytearray(FRAME_LENGTH)
    struct.pack_into("<I", buf, LOG_COUNT_AT, len(entries))
    for k, e in enumerate(entries):
        LOG_ENTRY.pack_into(buf, LOG_ENTRIES_AT + LOG_ENTRY.size * k, e.seconds, e.code)
    return response_frame(TYPE_LOGBOOK, buf, counter)


# --- advertisement -------------------------------------------------------------------------------

MATCHERS = (
    # company 0x0B65, data 88 A0 + the MAC
    AdvertisementMatcher(service_uuid=SERVICE_UUID, manufacturer_id=0x0B65,
                         manufacturer_data_start=b"\x88\xa0"),
    AdvertisementMatcher(service_uuid=SERVICE_UUID, manufacturer_id=0x4B4A),  # "JK", e.g. JK-BD4A8S-4P
)

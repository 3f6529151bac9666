"""JK (Jikong) driver: the BMS streams cell-info frames on its own; a read takes the newest new one.

Session (:meth:`JkDriver.on_connected`): subscribe, request the device info (0x97; it decides the
layout unless the type forces one), then 0x96: one settings frame, then a cell-info frame about
every second without further requests. Every frame goes through :meth:`JkDriver._take`, which keeps
the newest cell info not yet reported and what the settings and device-info frames said.

:meth:`JkDriver.read` returns that newest unreported cell info, merged with the settings; if there is
none it waits for the next frame, so a value is never reported twice. When no usable cell-info frame
has come for ``request_timeout`` seconds the stream counts as stopped: 0x96 is sent again (once per
read; a second silence fails the read, and the next read restarts it again).

Switches: 0x1D / 0x1E / 0x1F (JK04: 0x6C), then 0x96 again for a fresh settings frame, which holds
the balancer switch; the charge and discharge MOSFET states come with the next cell-info frames.

The device-info frame carries the JK app's passcodes in clear text. Raw notification chunks can hold
a piece of it, so the transport does not log them; with ``debug`` this driver logs whole frames with
the passcode fields overwritten instead.

Not on the shared request/response driver (bmslib.drivers.request_response): the BMS streams frames
on its own instead of answering each request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, ClassVar

from bmslib.ble.backend import BleBackend
from bmslib.ble.transport import FrameMatch
from bmslib.bms.jk.protocol import codec as jk
from bmslib.bms.jk.protocol.codec import FrameLayout, JkCodec
from bmslib.bms.jk.protocol.framing import TYPE_CELL_INFO, TYPE_DEVICE_INFO, TYPE_SETTINGS
from bmslib.drivers.base import BleDriver, DeviceLog
from bmslib.errors import BmsDisconnectedError, BmsTimeoutError, FrameError, UnsupportedError
from bmslib.model import Reading, merge_readings

if TYPE_CHECKING:
    from bmslib.config.settings import DeviceConfig

#: config type that chooses each layout (named in the warning about a forced layout)
LAYOUT_TYPES = {FrameLayout.JK02_24S: "jk_24s", FrameLayout.JK02_32S: "jk_32s", FrameLayout.JK04: "jk04"}


def _of_type(kind: int) -> FrameMatch:
    return lambda frame: frame[4] == kind


class JkDriver(BleDriver):
    service_uuid = jk.SERVICE_UUID
    notify_uuid = jk.NOTIFY_UUID  # the FFE1 with notify (newer modules have a second FFE1 for writing)
    write_uuid = jk.WRITE_UUID
    switches: ClassVar[frozenset[str]] = frozenset({"charge", "discharge", "balance"})
    request_timeout: ClassVar[float] = 5.0

    codec: JkCodec

    def __init__(self, config: DeviceConfig, *, address: str, backend: BleBackend, log: DeviceLog,
                 layout: FrameLayout | None = None) -> None:
        self.forced_layout = layout  # before super().__init__, which makes the codec
        super().__init__(config, address=address, backend=backend, log=log)
        self.debug = config.debug
        self.transport.debug = False  # raw chunks may hold a piece of the passcodes: see _take()
        self.transport.on_frame = self._take
        self._arrived = asyncio.Event()  # a cell-info frame came, or the link dropped
        self.transport.on_disconnect = self._arrived.set
        self._settings: Reading = {}  # what the settings and device-info frames said
        self._fresh: Reading | None = None  # the newest cell info not reported yet
        self._stream_alive_at = time.monotonic()  # last usable cell info, or the last (re)start
        self._rejected = 0  # frames dropped since the last usable cell info
        self._last_rejection = ""
        self._stall_logged = False
        self._conflict_logged = False
        self._layout_logged: FrameLayout | None = None

    def make_codec(self) -> JkCodec:
        return JkCodec(self.forced_layout)

    @property
    def offered_switches(self) -> frozenset[str]:
        """JK04 active balancers switch only the balancer."""
        return frozenset({"balance"}) if self.codec.layout is FrameLayout.JK04 else self.switches

    # --- session ---
    async def on_connected(self) -> None:
        self._fresh = None
        try:
            await self._request(jk.REQUEST_DEVICE_INFO, _of_type(TYPE_DEVICE_INFO))
        except BmsTimeoutError:
            self.log.info("no device info within %g s; until it comes, each frame is decoded with the one "
                          "layout it fits", self.request_timeout)
        try:
            await self._start_stream(wait_for=_of_type(TYPE_SETTINGS))
        except BmsTimeoutError:
            self.log.info("no settings frame within %g s after 0x96; capacity and balancer state come with "
                          "the next one", self.request_timeout)

    async def _start_stream(self, wait_for: FrameMatch | None = None) -> None:
        """Send 0x96 (settings frame, then the cell-info stream); optionally wait for a frame."""
        self._stream_alive_at = time.monotonic()
        if wait_for is None:
            await self.send(jk.REQUEST_CELL_INFO)
        else:
            await self._request(jk.REQUEST_CELL_INFO, wait_for)

    async def _request(self, data: bytes, match: FrameMatch) -> None:
        """Send ``data`` and wait for a frame satisfying ``match``; that frame is taken like any other."""

        def take_match(frame: bytes) -> bool:
            # Taken here, as it arrives: the codec must see frames in order (a settings frame decides
            # whether the cell-info frames right behind it still stand in for the capacity).
            if not match(frame):
                return False
            self._take(frame)
            return True

        self._log_tx(data)
        await self.transport.request(self.write_uuid, data, take_match, self.request_timeout,
                                     response=self.write_response)

    async def send(self, data: bytes) -> None:
        self._log_tx(data)
        await super().send(data)

    def _log_tx(self, data: bytes) -> None:
        if self.debug:
            self.log.debug("TX %s", data.hex())  # commands carry no credential

    # --- frames ---
    def _take(self, frame: bytes) -> None:
        """Decode one frame (streamed or requested) and keep what it says."""
        if self.debug:
            self.log.debug("RX %s", jk.redact(frame).hex())
        try:
            reading = self.codec.decode(frame)
        except FrameError as exc:  # its bytes are redacted by the codec where they may hold passcodes
            self._rejected += 1
            self._last_rejection = exc.reason
            self.log.debug("frame dropped: %s", exc)
            return
        kind = frame[4]
        if kind == TYPE_CELL_INFO:
            self._fresh = reading
            self._rejected = 0
            self._stall_logged = False
            self._stream_alive_at = time.monotonic()
            self._arrived.set()
            return
        if kind == TYPE_DEVICE_INFO:
            self.absorb(reading)
            self._log_layout()
        reading.pop("device_info", None)
        reading.pop("uptime", None)  # the cell-info frames carry a newer one
        self._settings = merge_readings(self._settings, reading)

    def _log_layout(self) -> None:
        codec = self.codec
        if codec.layout_conflict and not self._conflict_logged:
            self._conflict_logged = True
            detected = codec.detected_layout
            hint = f"type {LAYOUT_TYPES[detected]} or jk" if detected is not None else "type jk"
            self.log.warning("%s. Keeping the configured layout; if no readings come, use %s.",
                             codec.layout_conflict, hint)
        layout = codec.layout
        if layout is not None and layout is not self._layout_logged:
            self._layout_logged = layout
            info = self.device_info
            origin = ("configured" if codec.forced_layout is not None
                      else f"hardware {info.hw_version} / software {info.sw_version}")
            self.log.info("frame layout %s (%s)", layout, origin)

    # --- reading ---
    async def read(self) -> Reading:
        restarted = False
        while True:
            if self._fresh is not None:
                cells, self._fresh = self._fresh, None
                return merge_readings(self._settings, cells)
            if not self.transport.is_connected:
                raise BmsDisconnectedError(f"{self.address}: not connected")
            quiet = time.monotonic() - self._stream_alive_at
            if quiet >= self.request_timeout:
                if restarted:
                    raise BmsTimeoutError(self._silence())
                log = self.log.debug if self._stall_logged else self.log.info
                log("no cell-info frame for %.1f s: restarting the stream (0x96)", quiet)
                self._stall_logged = True
                await self._start_stream()
                restarted = True
                continue
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.request_timeout - quiet):
                    await self._arrived.wait()

    def _silence(self) -> str:
        msg = f"no usable cell-info frame for {self.request_timeout:g} s, also after re-sending 0x96"
        if self._rejected:
            msg += f" ({self._rejected} frames dropped, last: {self._last_rejection})"
        return msg

    # --- switches ---
    async def set_switch(self, name: str, on: bool) -> None:
        if name not in self.switches:
            raise UnsupportedError(f"JK has no switch {name!r}")
        command = self.codec.switch_command(name, on)  # UnsupportedError for charge/discharge on JK04
        self._forget(name)
        self._fresh = None  # cell info from before the command must not count as its read-back
        await self.send(command)

        def settings_reply(frame: bytes) -> bool:
            if frame[4] != TYPE_SETTINGS:
                return False
            # The device answers in order: cell info that came before this reply may predate the command.
            self._fresh = None
            return True

        try:
            await self._start_stream(wait_for=settings_reply)
        except BmsTimeoutError:
            if name == "balance":
                raise BmsTimeoutError(f"balancer switch sent, but no settings frame (which holds its state) "
                                      f"followed within {self.request_timeout:g} s") from None
            self.log.debug("no settings frame after the %s switch command", name)

    def _forget(self, name: str) -> None:
        """Drop the settings-frame state of switch ``name`` until a new settings frame reports it."""
        switches = dict(self._settings.get("switches", {}))
        switches.pop(name, None)
        extra = dict(self._settings.get("extra", {}))
        extra.pop(f"{name}_enabled", None)  # charge_enabled / discharge_enabled: the app's switches
        self._settings["switches"] = switches
        self._settings["extra"] = extra

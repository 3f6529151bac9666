"""Supervolt / E&J Technology ASCII driver: realtime and capacity requests; FET states read-only.

The shared request/response flow sends the requests declared here (the capacity request only when
the realtime reply lacks the capacities). This module's own part is the connection: the GATT layout
is found on connect (Nordic UART first, then FF00), and its write characteristic is used. Newer Supervolt packs (names
``SX1*``, ``SX60*``) speak the JBD protocol: this driver refuses them before connecting, with one
clear error that names ``type: jbd``.
"""

from __future__ import annotations

from typing import ClassVar

from bmslib.bms.supervolt import protocol as supervolt
from bmslib.drivers.request_response import RequestResponseDriver
from bmslib.errors import BmsConnectError, BmsTimeoutError, CharacteristicNotFoundError, UnsupportedError
from bmslib.model import DeviceInfo, Reading, merge_readings
from bmslib.protocol.requests import Request

LAYOUTS = (  # (notify, write), in the order they are tried
    (supervolt.NOTIFY_UUID, supervolt.WRITE_UUID),
    (supervolt.ALT_NOTIFY_UUID, supervolt.ALT_WRITE_UUID),
)


def _request(name: str, command: int) -> Request:
    return Request(name, supervolt.request(command), lambda f: supervolt.frame_command(f) == command,
                   command=command)


class SupervoltDriver(RequestResponseDriver):
    service_uuid = supervolt.SERVICE_UUID
    notify_uuid = supervolt.NOTIFY_UUID
    write_uuid = supervolt.WRITE_UUID
    switches: ClassVar[frozenset[str]] = frozenset()  # no write command is known: FET states are read-only
    request_timeout: ClassVar[float] = 5.0
    polls = (_request("realtime", supervolt.CMD_REALTIME), _request("capacity", supervolt.CMD_CAPACITY))

    codec: supervolt.SupervoltCodec
    _write = supervolt.WRITE_UUID  # of the layout found on connect
    assembler: supervolt.SupervoltAssembler | None = None  # of the current connection (diagnostics)
    _answered = False  # the device has answered at least once
    _wrong_type_logged = False
    _silence_logged = False

    def make_codec(self) -> supervolt.SupervoltCodec:
        return supervolt.SupervoltCodec()

    async def connect(self) -> None:
        if self.transport.is_connected:
            return
        if self.transport.device is None:
            self.transport.device = await self.transport.resolve()
        name = self.transport.device.name
        self._refuse_jbd_pack(name)
        await self.transport.connect()
        try:
            notify, self._write = self._layout()
            lenient = supervolt.checksum_unreliable(name)
            if lenient and not self.codec.accept_plausible:
                self.log.info("%s units send wrong checksums: such frames are accepted when plausible", name)
            self.codec.accept_plausible = lenient
            self.assembler = assembler = self.codec.assembler()
            await self.transport.subscribe(notify, assembler)
        except BaseException:
            await self.transport.disconnect()
            raise
        if name:
            self.device_info = self.device_info.merged(DeviceInfo(name=name))

    def _refuse_jbd_pack(self, name: str | None) -> None:
        if not supervolt.speaks_jbd(name):
            return
        message = (f"{name} is a newer Supervolt pack (v3 / Ultra) that speaks the JBD protocol: "
                   "set `type: jbd` for this device")
        if not self._wrong_type_logged:
            self.log.error("%s", message)
            self._wrong_type_logged = True
        raise UnsupportedError(message)

    def _layout(self) -> tuple[str, str]:
        for notify, write in LAYOUTS:
            try:
                self.transport.properties(notify, "notify")
                self.transport.properties(write, "write")
            except CharacteristicNotFoundError:
                continue
            return notify, write
        raise BmsConnectError(self.address, "neither the Nordic UART nor the FF00 service of a Supervolt BMS "
                                            "was found; is this the right device type?")

    def wants(self, request: Request) -> bool:
        """Not the capacity request when the realtime reply carried the capacities."""
        return not (request.command == supervolt.CMD_CAPACITY and self.codec.single_frame)

    async def exchange(self, request: Request) -> Reading:
        try:
            frame = await self.transport.request(self._write, request.data, request.reply,
                                                 request.timeout or self.request_timeout, response=self.write_response)
        except BmsTimeoutError:
            if not self._answered and self._write == supervolt.ALT_WRITE_UUID and not self._silence_logged:
                self.log.warning("no reply to the Supervolt ASCII request on service FF00. A pack that "
                                 "speaks the JBD protocol uses this service too: if this is one, use `type: jbd`")
                self._silence_logged = True
            raise
        self._answered = True
        return self.absorb(self.codec.decode(frame))

    async def read(self) -> Reading:
        reading = await super().read()
        if self.assembler is not None and self.assembler.unverified:
            reading = merge_readings(reading, {"extra": {"unverified_frames": self.assembler.unverified}})
        return reading

"""Daly driver: one device type for three wire protocols (Modbus D2, legacy A5, read-only Modbus 0x81).

Type ``daly`` probes at the first connection (:data:`bmslib.bms.daly.protocol.codec.PROBES`, one request per
protocol, D2 first) and keeps the answer for the life of the driver, so a reconnect does not probe
again; ``daly_legacy`` and ``daly_modbus`` force a protocol and never probe. The protocol work
(framing, decoding, the reads of one sample, switch commands) is :class:`~bmslib.bms.daly.protocol.codec.DalyCodec`;
:mod:`bmslib.bms.daly.protocol.auto` adds the assembler and codec that follow the protocol once it is known.

Per connection: subscribe to FFF1 (or FF01 on firmware that refuses FFF1), probe if needed, read
the D2 version block. Per sample: reset the codec, then send the protocol's reads in order; a
legacy 0x95/0x96 request is answered by as many frames as the 0x94 counts say, all registered for
before the request is written.

Not on the shared request/response driver (bmslib.drivers.request_response): the protocol is found
by probing at the first connection, and a legacy request is answered by a number of frames known
only from an earlier reply.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ClassVar

from bmslib.ble.backend import BleBackend
from bmslib.bms.daly.protocol import codec as daly
from bmslib.bms.daly.protocol import legacy as daly_legacy
from bmslib.bms.daly.protocol.auto import DalyAutoCodec, DalyFrames, legacy_piece, reply_to
from bmslib.bms.daly.protocol.codec import DalyCodec, DalyProtocol
from bmslib.bms.daly.protocol.rtu import ERROR_FLAG
from bmslib.config.settings import DeviceConfig
from bmslib.drivers.base import BleDriver, DeviceLog
from bmslib.errors import (
    BmsConnectError,
    BmsDisconnectedError,
    BmsTimeoutError,
    CharacteristicNotFoundError,
    FrameError,
    GattError,
    UnsupportedError,
)
from bmslib.model import DeviceInfo, Reading, merge_readings

#: GATT layouts tried in this order: (notify, write).
GATT_LAYOUTS = ((daly.NOTIFY_UUID, daly.WRITE_UUID), (daly.ALT_NOTIFY_UUID, daly.ALT_WRITE_UUID))
#: the type name that forces each protocol (for messages)
FORCING_TYPE = {p: name for name, p in daly.TYPE_PROTOCOLS.items() if p is not None}


def _any_frame(frame: bytes) -> bool:
    return True  # DalyFrames lets through checked frames of a Daly protocol only


# --- driver --------------------------------------------------------------------------------------


class DalyDriver(BleDriver):
    service_uuid = daly.SERVICE_UUID
    notify_uuid = daly.NOTIFY_UUID
    write_uuid = daly.WRITE_UUID
    switches: ClassVar[frozenset[str]] = frozenset({"charge", "discharge"})
    request_timeout: ClassVar[float] = 5.0
    #: seconds to wait for the answer to each protocol's probe
    probe_timeout: float = 3.0

    codec: DalyAutoCodec

    def __init__(self, config: DeviceConfig, *, address: str, backend: BleBackend, log: DeviceLog,
                 protocol: DalyProtocol | None = None) -> None:
        if protocol is DalyProtocol.UNKNOWN:
            raise ValueError("protocol: a Daly protocol, or None to probe")
        self.forced = protocol
        super().__init__(config, address=address, backend=backend, log=log)
        self._notify, self._write = GATT_LAYOUTS[0]
        self._frames: DalyFrames | None = None
        self._told: set[str] = set()  # things the user has been told once

    def make_codec(self) -> DalyAutoCodec:
        return DalyAutoCodec(self.forced)

    @property
    def protocol(self) -> DalyProtocol | None:
        """The protocol spoken (None until the first probe has answered)."""
        return self.codec.protocol

    @property
    def offered_switches(self) -> frozenset[str]:
        """0x81 units take no switch command; legacy units do not report the discharge FET reliably,
        so its state could never be read back: only the charge switch is offered there."""
        if self.protocol is DalyProtocol.P81:
            return frozenset()
        if self.protocol is DalyProtocol.LEGACY:
            return frozenset({"charge"})
        return self.switches

    def _once(self, key: str, message: str, *args: object, warning: bool = False) -> None:
        if key not in self._told:
            self._told.add(key)
            (self.log.warning if warning else self.log.info)(message, *args)

    # --- connection ---
    async def connect(self) -> None:
        if self.transport.is_connected:
            return
        await self.transport.connect()
        try:
            self._frames = self.codec.assembler()
            await self._subscribe(self._frames)
            await self.on_connected()
        except BaseException:
            await self.transport.disconnect()
            raise

    async def _subscribe(self, frames: DalyFrames) -> None:
        """Notifications on FFF1; on FF01 where the firmware refuses FFF1 (remembered)."""
        layouts = sorted(GATT_LAYOUTS, key=lambda layout: layout != (self._notify, self._write))
        problems: list[str] = []
        for notify, write in layouts:
            try:
                await self.transport.subscribe(notify, frames)
            except (CharacteristicNotFoundError, GattError) as exc:  # missing, or refuses notifications
                problems.append(f"{notify[4:8]}: {exc}")
                continue
            if (notify, write) != GATT_LAYOUTS[0]:
                self._once("gatt", "notifications on FFF1 refused; using service FF00 (FF01/FF02)")
            self._notify, self._write = notify, write
            return
        raise BmsConnectError(self.address, "no Daly notify characteristic: " + "; ".join(problems))

    async def on_connected(self) -> None:
        protocol = self.codec.protocol or await self._detect()
        assert self._frames is not None
        self._frames.use(protocol)
        self.device_info = self.device_info.merged(DeviceInfo(manufacturer="Daly",
                                                              model=daly.PROTOCOL_NAMES[protocol]))
        session = self.codec.session(protocol)
        if "no_version" in self._told:
            return
        for request in session.device_info_requests():  # D2 version block, once per connection
            try:
                await self._ask(session, request)
            except (BmsTimeoutError, FrameError) as exc:  # not asked again: it would delay every connection
                self._once("no_version", "no version information from the BMS (%s); batmon does without it", exc)

    async def _detect(self) -> DalyProtocol:
        """Probe (first connection of type ``daly``) and remember the answer in the codec."""
        found = await self._probe()
        if found is DalyProtocol.UNKNOWN:
            raise BmsConnectError(self.address, "no answer to the probe of any Daly protocol (Modbus D2, "
                                  f"legacy A5, Modbus 0x81) within {self.probe_timeout:g} s each; if the "
                                  "BMS has a WiFi module, switch it off (it disables Bluetooth)")
        self.codec.protocol = found
        self.log.info("the BMS speaks %s; batmon keeps to it from now on", daly.PROTOCOL_NAMES[found])
        if found is DalyProtocol.P81:
            self._once("p81", "%s is read-only in batmon: switch commands will be refused",
                       daly.PROTOCOL_NAMES[found])
        return found

    async def _probe(self, order: tuple[DalyProtocol, ...] = daly.PROBE_ORDER) -> DalyProtocol:
        """Send each protocol's probe in turn; the first checked frame of any Daly protocol decides."""
        frames = self._frames
        assert frames is not None
        frames.use(None)
        for protocol in order:
            try:
                await self.transport.request(self._write, daly.PROBES[protocol], _any_frame, self.probe_timeout,
                                             response=self.write_response)
            except BmsTimeoutError:
                self.log.debug("no answer to the %s probe", daly.PROTOCOL_NAMES[protocol])
                continue
            found = frames.protocol
            assert found is not None
            return found
        return DalyProtocol.UNKNOWN

    def _session(self) -> DalyCodec:
        protocol = self.codec.protocol
        if protocol is None or not self.transport.is_connected:
            raise BmsDisconnectedError(f"{self.address}: not connected")
        return self.codec.session(protocol)

    # --- requests ---
    async def _ask(self, session: DalyCodec, request: bytes) -> list[Reading]:
        """Send ``request`` and decode all its reply frames (legacy 0x95/0x96: as many as counted)."""
        expected = session.replies_expected(request)
        if expected is None:
            raise FrameError(f"cell or sensor count unknown when sending 0x{request[2]:02x} (0x94 not read)")
        if expected == 0:
            return []
        if expected == 1:
            frame = await self.transport.request(self._write, request, reply_to(session.protocol, request),
                                                 self.request_timeout, response=self.write_response)
            return [self.absorb(session.decode(frame))]
        return [self.absorb(session.decode(f)) for f in await self._ask_pieces(request, expected)]

    async def _ask_pieces(self, request: bytes, count: int) -> list[bytes]:
        """The ``count`` indexed frames a legacy 0x95/0x96 request yields (registered before writing:
        one notification may carry several of them)."""
        match = legacy_piece(request[2])
        futures = [self.transport.expect(match) for _ in range(count)]
        frames: list[bytes] = []
        try:
            await self.transport.write(self._write, request, response=self.write_response)
            for future in futures:
                frames.append(await self.transport.wait(future, self.request_timeout))
        except BmsTimeoutError:
            raise BmsTimeoutError(f"0x{request[2]:02x}: {len(frames)} of {count} reply frames within "
                                  f"{self.request_timeout:g} s") from None
        finally:
            for future in futures:
                self.transport.cancel(future)
        return frames

    async def read(self) -> Reading:
        session = self._session()
        session.reset()
        if self._frames is not None:
            self._frames.reset()
        readings: list[Reading] = []
        try:
            for request in session.poll_requests():
                readings += await self._ask(session, request)
        except BmsTimeoutError:
            if not readings and self.forced is not None and self.transport.is_connected:
                await self._diagnose_forced()
            raise
        return merge_readings(*readings)

    async def _diagnose_forced(self) -> None:
        """Once: a forced protocol got no answer at all; tell the user if the device speaks another one
        (only the other protocols are probed, so this stays within the sampler's read timeout)."""
        forced = self.forced
        if forced is None or "diagnosed" in self._told or self._frames is None:
            return
        self._told.add("diagnosed")
        try:
            found = await self._probe(tuple(p for p in daly.PROBE_ORDER if p is not forced))
        finally:
            self._frames.use(forced)
        if found not in (forced, DalyProtocol.UNKNOWN):  # a late answer in the forced protocol: just slow
            self.log.warning("configured as type %s (%s), but the BMS answers in %s: set `type: %s` (or `daly` to "
                             "detect the protocol)", FORCING_TYPE[forced], daly.PROTOCOL_NAMES[forced],
                             daly.PROTOCOL_NAMES[found], FORCING_TYPE.get(found, "daly"))

    # --- switches ---
    async def set_switch(self, name: str, on: bool) -> None:
        session = self._session()
        request = session.switch_request(name, on)  # UnsupportedError: 0x81 variant, or no such switch
        if session.protocol is DalyProtocol.LEGACY:
            await self._set_legacy_switch(session, name, on, request)
            return
        frame = await self.transport.request(self._write, request, reply_to(session.protocol, request),
                                             self.request_timeout, response=self.write_response)
        if frame[1] & ERROR_FLAG:
            raise UnsupportedError(f"the BMS refused the {name} switch write (Modbus exception 0x{frame[2]:02x})")
        if not session.switch_confirmed(request, frame):
            raise FrameError(f"the {name} switch write was answered by {frame.hex()}, not by its echo", frame)

    async def _set_legacy_switch(self, session: DalyCodec, name: str, on: bool, request: bytes) -> None:
        """No documented reply: send, then read 0x93 back (the BMS answers in order, so the command has
        been taken when 0x93 comes). The sampler checks ``switches`` of the next reads; the discharge
        byte of 0x93 is not trusted as a switch state, so it is only compared here."""
        await self.transport.write(self._write, request, response=self.write_response)
        session.reset()
        status = merge_readings(*await self._ask(session, daly_legacy.request(daly_legacy.CMD_STATUS)))
        session.reset()  # the 0x93 state read here must not pair with the next sample's 0x90 current
        if name == "charge":
            if status.get("switches", {}).get("charge") is not on:
                self.log.debug("charge MOSFET not (yet) %s right after the command", "on" if on else "off")
            return
        reported = status.get("extra", {}).get("discharge_mos_reported")
        if reported is not on:
            self._once("discharge_byte", "after switching discharge %s, the BMS still reports its discharge "
                       "MOSFET %s; on some firmware this byte does not follow the switch, so batmon cannot "
                       "confirm discharge switching on this BMS (check the load)",
                       "on" if on else "off", "on" if reported else "off", warning=True)


def forced(protocol: DalyProtocol) -> Callable[..., DalyDriver]:
    """The driver of a type that forces ``protocol`` (``daly_legacy``, ``daly_modbus``)."""
    return functools.partial(DalyDriver, protocol=protocol)

"""ANT BMS driver (types ``ant`` and ``ant_legacy``): both protocol generations on FFE0/FFE1.

Session: the generation comes from the forced variant (``ant_legacy``), else from the advertised name
where it pins one, else from the first reply: the 2021 status request first (2021 units answer the
legacy request too, with a poorer frame), the legacy request only if that stays unanswered. A 2021
answer is kept for the device; a legacy answer found that way only for the connection. A read is one
status request; a 2021 unit is also asked for its device info once per connection. All writes go
without response.

Switches (2021): an authentication frame, then the command; the unit confirms the command. The
sources disagree on the byte order of the auth address, so the documented order is tried first and
the other one if the command is not confirmed; the order that worked is kept for the device and
logged once. Legacy units take password writes, the register write and an apply write, and never
answer: the sampler sees the result in the next status frame. Their balancer cannot be switched.

Not on the shared request/response driver (bmslib.drivers.request_response): the generation is found
from the first reply, and switching takes authentication and a retried byte order.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar

from bmslib.ble.backend import BleBackend
from bmslib.ble.transport import FrameMatch
from bmslib.bms.ant.protocol import codec as ant
from bmslib.bms.ant.protocol import control as ant_control
from bmslib.bms.ant.protocol import frames_2021 as ant_2021
from bmslib.bms.ant.protocol import legacy as ant_legacy
from bmslib.bms.ant.protocol.codec import AntCodec, Variant
from bmslib.bms.ant.protocol.control import AuthOrder
from bmslib.drivers.base import BleDriver, DeviceLog
from bmslib.errors import BmsAuthError, BmsTimeoutError, UnsupportedError
from bmslib.model import DeviceInfo, Reading, merge_readings

if TYPE_CHECKING:
    from bmslib.config.settings import DeviceConfig

LEGACY_SWITCHES = frozenset(ant_legacy.SWITCH_REGISTERS)


def _is_status(frame: bytes) -> bool:
    return frame.startswith(ant_2021.HEAD) and ant_2021.function(frame) == ant_2021.REPLY_STATUS


def _is_device_info(frame: bytes) -> bool:
    return (frame.startswith(ant_2021.HEAD) and ant_2021.function(frame) == ant_2021.REPLY_DEVICE_INFO
            and ant_2021.address(frame) == ant_2021.DEVICE_INFO_ADDRESS)


def _is_legacy_status(frame: bytes) -> bool:
    return frame.startswith(ant_legacy.HEADER)


def _reply_to_command(command: int) -> FrameMatch:
    def match(frame: bytes) -> bool:
        ack = ant_control.parse_ack(frame)
        return ack is not None and ack.func == ant_2021.REPLY_COMMAND and ack.address == command
    return match


def _order_text(order: AuthOrder) -> str:
    return order.value.hex(" ").upper()


class AntDriver(BleDriver):
    service_uuid = ant.SERVICE_UUID
    notify_uuid = ant.NOTIFY_UUID
    write_uuid = ant.WRITE_UUID
    write_response: ClassVar[bool | None] = not ant.WRITE_WITHOUT_RESPONSE
    switches: ClassVar[frozenset[str]] = frozenset(ant_control.SWITCH_COMMANDS)
    request_timeout: ClassVar[float] = 5.0

    codec: AntCodec

    def __init__(self, config: DeviceConfig, *, address: str, backend: BleBackend, log: DeviceLog,
                 variant: Variant | None = None) -> None:
        self.forced_variant = variant
        super().__init__(config, address=address, backend=backend, log=log)
        self.auth_order: AuthOrder | None = None  # the order the unit confirmed (kept for the device)
        self._device_info_due = False
        self._logged: set[str] = set()

    def make_codec(self) -> AntCodec:
        return AntCodec(self.forced_variant)

    @property
    def offered_switches(self) -> frozenset[str]:
        """Legacy units cannot switch the balancer."""
        return LEGACY_SWITCHES if self.variant is Variant.LEGACY else self.switches

    @property
    def variant(self) -> Variant | None:
        """The protocol generation, once known."""
        return self.codec.variant

    def _log_once(self, key: str, level: int, msg: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            self.log.log(level, msg, *args)

    # --- session ---
    async def connect(self) -> None:
        # As BleDriver.connect, but the generation (and so the assembler) is chosen from the advertised
        # name, which is known only once the transport has found the device.
        if self.transport.is_connected:
            return
        await self.transport.connect()
        try:
            self._choose_variant()
            await self.transport.subscribe(self.notify_uuid, self.codec.assembler())
            await self.on_connected()
        except BaseException:
            await self.transport.disconnect()
            raise

    def _choose_variant(self) -> None:
        """At each connect: the forced generation, else the one the name pins, else a 2021 reply seen
        before. A legacy reply after an unanswered 2021 request is not kept across connections: a 2021
        unit whose status reply got lost answers the legacy request too, so the next connection asks again."""
        name = self.transport.device.name if self.transport.device is not None else None
        named = ant.variant_from_name(name)
        shown = (name or "").strip()
        if self.forced_variant is not None:
            if named is not None and named is not self.forced_variant:
                self._log_once("forced", logging.WARNING, "type ant_legacy forces the legacy protocol, but the "
                               "name %r is that of a 2021 unit, which answers it with less (no SoH, MOSFET "
                               "temperature or balance switch); type ant would use the 2021 protocol", shown)
            return
        if named is not None:
            self.codec.variant = named
            self._log_once("variant", logging.INFO, "protocol %s (from the advertised name %r)", named.value, shown)
        elif self.codec.variant is Variant.LEGACY:
            self.codec.variant = None

    async def on_connected(self) -> None:
        self._device_info_due = True
        self.absorb({"device_info": DeviceInfo(manufacturer="ANT")})

    # --- reading ---
    async def read(self) -> Reading:
        if self.codec.variant is None:
            reading = await self._detect()
        elif self.codec.variant is Variant.LEGACY:
            return await self.query(ant_legacy.STATUS_REQUEST, _is_legacy_status)
        else:
            reading = await self.query(ant_2021.STATUS_REQUEST, _is_status)
        if self.codec.variant is Variant.V2021 and self._device_info_due:
            self._device_info_due = False
            try:
                reading = merge_readings(reading, await self.query(ant_2021.DEVICE_INFO_REQUEST, _is_device_info))
            except BmsTimeoutError:
                self.log.info("no reply to the device-info request; continuing without model and firmware")
        return reading

    async def _detect(self) -> Reading:
        """First read of a unit whose name does not tell its generation: 2021 request, then legacy."""
        try:
            reading = await self.query(ant_2021.STATUS_REQUEST, _is_status)
        except BmsTimeoutError:
            self.log.debug("no reply to the 2021 status request; trying the legacy request")
        else:
            self._log_once("variant", logging.INFO, "protocol 2021 (the unit answered the 2021 status request)")
            return reading
        try:
            reading = await self.query(ant_legacy.STATUS_REQUEST, _is_legacy_status)
        except BmsTimeoutError:
            raise BmsTimeoutError("no reply to the status request of either ANT protocol generation") from None
        self._log_once("variant", logging.INFO, "protocol legacy (no reply to the 2021 request, the legacy one "
                       "was answered); type ant_legacy would skip the 2021 request at each connect")
        return reading

    # --- switches ---
    async def set_switch(self, name: str, on: bool) -> None:
        if name not in self.switches:
            raise UnsupportedError(f"ANT BMS has no switch {name!r}")
        if self.codec.variant is None:
            await self._detect()
        if self.codec.variant is Variant.LEGACY:
            await self._switch_legacy(name, on)
        else:
            await self._switch_2021(name, on)

    def _password(self, default: str) -> str:
        return self.config.pin if self.config.pin else default

    async def _switch_2021(self, name: str, on: bool) -> None:
        command = ant_control.switch_command(name, on)
        try:
            password = self._password(ant_control.DEFAULT_PASSWORD)
            ant_control.auth_request(password)
        except (ValueError, UnicodeError):
            self._log_once("password", logging.ERROR,
                           "the pin option is no valid ANT password (1 to 32 ASCII characters)")
            raise BmsAuthError("invalid ANT password in the pin option") from None
        first = self.auth_order or ant_control.AUTH_ORDERS[0]
        orders = (first, *(o for o in ant_control.AUTH_ORDERS if o is not first))
        for order in orders:
            if await self._command(command, password, order):
                if order is not self.auth_order:
                    self._remember(order)
                return
        self._log_once("auth", logging.ERROR, "the BMS confirmed no switch command, with the authentication address in "
                       "either byte order (%s); check the password (option pin; the default is the one the "
                       "ANT app uses)", " / ".join(_order_text(o) for o in orders))
        raise BmsAuthError(f"switch {name} not confirmed after authenticating in both byte orders")

    def _remember(self, order: AuthOrder) -> None:
        if order is AuthOrder.DOCUMENTED:
            self.log.info("the BMS accepts authentication with the documented address bytes %s", _order_text(order))
        else:
            others = " / ".join(_order_text(o) for o in ant_control.AUTH_ORDERS if o is not order)
            self.log.info("the BMS accepts authentication only with the address bytes %s (not %s); "
                          "using that order from now on", _order_text(order), others)
        self.auth_order = order

    async def _command(self, command: int, password: str, order: AuthOrder) -> bool:
        """Authenticate with ``order``, send ``command``; True if the unit confirmed it."""
        transport = self.transport
        auth_ack = transport.expect(lambda f: ant_control.confirms_auth(f, order))
        reply = transport.expect(_reply_to_command(command))
        try:
            await transport.write(self.write_uuid, ant_control.auth_request(password, order),
                                  response=self.write_response, secret=True)
            await transport.write(self.write_uuid, ant_control.command_request(command), response=self.write_response)
            try:
                frame = await transport.wait(reply, self.request_timeout)
            except BmsTimeoutError:
                self.log.debug("command 0x%02X unanswered after auth with %s (auth %s)", command,
                               _order_text(order), "acknowledged" if auth_ack.done() else "not acknowledged")
                return False
            ok = ant_control.confirms_command(frame, command)
            if not ok:
                self.log.debug("command 0x%02X refused after auth with %s: %s", command, _order_text(order),
                               frame.hex())
            return ok
        finally:
            transport.cancel(auth_ack)
            transport.cancel(reply)

    async def _switch_legacy(self, name: str, on: bool) -> None:
        if name not in LEGACY_SWITCHES:
            raise UnsupportedError("a legacy ANT BMS cannot switch its balancer (it only has a one-shot "
                                   "trigger); type ant_legacy does not offer that switch")
        try:
            frames = ant_legacy.switch_sequence(name, on, self._password(ant_legacy.DEFAULT_PASSWORD))
        except (ValueError, UnicodeError):
            self._log_once("password", logging.ERROR,
                           "the pin option is no valid legacy ANT password (8 ASCII characters)")
            raise BmsAuthError("invalid legacy ANT password in the pin option") from None
        n_auth = len(frames) - 2  # password writes, then the register write and the apply write
        for i, frame in enumerate(frames):
            await self.transport.write(self.write_uuid, frame, response=self.write_response, secret=i < n_auth)

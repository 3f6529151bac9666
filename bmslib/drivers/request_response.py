"""The shared request/response driver: a family declares its requests, this module runs them.

Most BMSes answer each request with a reply the family's codec decodes. Such a family declares, on
a subclass of :class:`RequestResponseDriver`:

- ``service_uuid``, ``notify_uuid``, ``write_uuid`` and ``make_codec()`` (as for every :class:`BleDriver`);
- ``polls``: the :class:`~bmslib.protocol.requests.Request`\\ s of one read, in order; their decoded
  replies are merged into the reading;
- ``setup_requests``: requests sent after connecting (device info); no reply is logged, never an error;
- ``switch_request(name, on, switches)``: the request that sets a switch, built from the switch
  states last reported (a read runs first when none was);
- ``session_setup()``: a hook run after subscribing, before the set-up requests (e.g. a password handshake);
- ``exchange(request)``: how one request is sent and its reply decoded, for a device that answers a
  request with several notifications.

An optional request (``Request.optional``, and every set-up request) that goes unanswered is logged
and left out of the reading; ``Request.once`` and ``Request.give_up`` say when it is not sent again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from bmslib.drivers.base import BleDriver
from bmslib.errors import BmsTimeoutError, UnsupportedError
from bmslib.model import Reading, merge_readings
from bmslib.protocol.requests import Request


class RequestResponseDriver(BleDriver):
    """A BLE device read by sending the family's declared requests and decoding the replies."""

    #: the requests of one read, in order
    polls: ClassVar[tuple[Request, ...]] = ()
    #: the requests sent after connecting (see :meth:`on_connected`)
    setup_requests: ClassVar[tuple[Request, ...]] = ()
    #: for messages: "JBD has no switch 'balance'" (default: the class name)
    label: ClassVar[str] = ""

    _switch_states: dict[str, bool] | None = None  # as last reported
    _tried: frozenset[str] = frozenset()  # `once` requests sent
    _ever_answered: frozenset[str] = frozenset()  # `give_up` requests answered at least once
    _given_up: frozenset[str] = frozenset()  # `give_up` requests not sent any more

    def switch_request(self, name: str, on: bool, switches: Mapping[str, bool]) -> Request:
        """The request that switches ``name`` ``on`` or off, given the switch states last reported."""
        raise UnsupportedError(f"{self.label or type(self).__name__} has no switch {name!r}")

    async def session_setup(self) -> None:
        """Hook: run after subscribing and before the set-up requests (authentication)."""

    def setup_hint(self) -> str:
        """Hook: what to add to the default log line of an unanswered optional request."""
        return ""

    def wants(self, request: Request) -> bool:
        """Whether ``request`` is to be sent (not for a ``once`` request sent already or one given up)."""
        return request.name not in (self._tried if request.once else self._given_up)

    async def on_connected(self) -> None:
        """:meth:`session_setup`, then the set-up requests while the device info lacks a model."""
        await self.session_setup()
        if self.device_info.model is not None:
            return
        for request in self.setup_requests:
            if self.wants(request):
                await self.optional(request)

    async def exchange(self, request: Request) -> Reading:
        """Send ``request``, wait for its reply, decode it (raises BmsTimeoutError without reply)."""
        return await self.query(request.data, request.reply, request.timeout)

    async def optional(self, request: Request) -> Reading:
        """:meth:`exchange`, with no reply logged and an empty reading instead of an error."""
        if request.once:
            self._tried |= {request.name}
        try:
            reading = await self.exchange(request)
        except BmsTimeoutError:
            if request.give_up and request.name in self._ever_answered:
                return {}  # it answers sometimes: a missed reply is not news
            if request.give_up:
                self._given_up |= {request.name}
            self.log.info("%s", request.unanswered or
                          f"no reply to the {request.name} request; continuing without it{self.setup_hint()}")
            return {}
        if request.give_up:
            self._ever_answered |= {request.name}
        return reading

    async def poll(self, request: Request) -> Reading:
        """One request of a read; keeps the switch states its reply reports."""
        reading = await (self.optional(request) if request.optional else self.exchange(request))
        switches = reading.get("switches")
        if switches is not None:
            self._switch_states = dict(switches)
        return reading

    async def read(self) -> Reading:
        return merge_readings(*[await self.poll(r) for r in self.polls if self.wants(r)])

    async def set_switch(self, name: str, on: bool) -> None:
        if name not in self.offered_switches:
            raise UnsupportedError(f"{self.label or type(self).__name__} has no switch {name!r}")
        if self._switch_states is None:  # not read yet: the polls up to the one reporting the switches
            for request in self.polls:
                if "switches" in await self.poll(request):
                    break
        request = self.switch_request(name, on, self._switch_states or {})
        await self.exchange(request)

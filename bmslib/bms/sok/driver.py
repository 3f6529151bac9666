"""SOK / ABC-BMS driver: C1 (status, FETs) and C2 (detail, cells) each reading; C0 once; C4 if answered.

The shared request/response flow runs the requests declared here. This module's own part is
:meth:`SokDriver.exchange`: every request is answered by several 20-byte replies. The codec collects
the replies of the current request and says when the set is complete; the driver registers
``codec.offer`` as the frame predicate, so each reply is decoded exactly once. No switches: no write
command is documented.
"""

from __future__ import annotations

from typing import ClassVar

from bmslib.bms.sok import protocol as sok
from bmslib.drivers.request_response import RequestResponseDriver
from bmslib.errors import BmsTimeoutError
from bmslib.model import Reading
from bmslib.protocol.requests import Request


def _request(name: str, command: int, *, optional: bool = False, once: bool = False, give_up: bool = False,
             unanswered: str = "") -> Request:
    """A SOK request; its replies are recognised by the codec (:meth:`SokDriver.exchange`), not by ``reply``."""
    return Request(name, sok.request(command), lambda _frame: False, command=command, optional=optional,
                   once=once, give_up=give_up, unanswered=unanswered)


class SokDriver(RequestResponseDriver):
    service_uuid = sok.SERVICE_UUID
    notify_uuid = sok.NOTIFY_UUID
    write_uuid = sok.WRITE_UUID
    switches: ClassVar[frozenset[str]] = frozenset()  # FET states are read-only
    request_timeout: ClassVar[float] = 5.0
    #: seconds to wait for the optional protection reply (F9)
    protection_timeout: ClassVar[float] = 2.0
    polls = (
        _request("info", sok.CMD_INFO),
        _request("detail", sok.CMD_DETAIL),
        _request("protection", sok.CMD_PROTECTION, optional=True, give_up=True,
                 unanswered="no reply to the protection request (C4): this BMS does not report protection flags; "
                            "not asking again"),
    )
    setup_requests = (
        _request("name", sok.CMD_NAME, once=True,  # the name does not change
                 unanswered="no reply to the name request (C0); continuing without the model name"),
    )

    codec: sok.SokCodec

    def make_codec(self) -> sok.SokCodec:
        return sok.SokCodec()

    async def exchange(self, request: Request) -> Reading:
        timeout = self.protection_timeout if request.command == sok.CMD_PROTECTION else request.timeout
        return await self.collect(request.command, timeout)

    async def collect(self, command: int, timeout: float | None = None) -> Reading:
        """Send ``command`` and return the merged reading of its replies once the set is complete.

        A timeout that leaves only the end of the cell list open gives the gapless cells received,
        unless the cell count is known (then cells are missing, and the timeout is raised).
        """
        data = self.codec.request(command)
        future = self.transport.expect(self.codec.offer)
        try:
            await self.send(data)
            await self.transport.wait(future, timeout or self.request_timeout)
        except BmsTimeoutError:
            reading = self.codec.reading()
            undecided = self.codec.missing == {sok.F_CELLS} and self.codec.cell_count is None
            if not undecided or "cell_voltages" not in reading:
                raise
            self.log.debug("cell list not confirmed complete; using the %d cells received",
                           len(reading["cell_voltages"]))
        finally:
            self.transport.cancel(future)
        return self.absorb(self.codec.reading())

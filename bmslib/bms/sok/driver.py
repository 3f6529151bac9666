"""SOK / ABC-BMS driver: C1 (status, FETs) and C2 (detail, cells) each reading; C0 once; C4 if answered.

Every request is answered by several 20-byte replies. The codec collects the replies of the current
request and says when the set is complete; the driver registers ``codec.offer`` as the frame
predicate, so each reply is decoded exactly once. No switches: no write command is documented.
"""

from __future__ import annotations

from typing import ClassVar

from bmslib.bms.sok import protocol as sok
from bmslib.drivers.base import BleDriver
from bmslib.errors import BmsTimeoutError
from bmslib.model import Reading, merge_readings


class SokDriver(BleDriver):
    service_uuid = sok.SERVICE_UUID
    notify_uuid = sok.NOTIFY_UUID
    write_uuid = sok.WRITE_UUID
    switches: ClassVar[frozenset[str]] = frozenset()  # FET states are read-only
    request_timeout: ClassVar[float] = 5.0
    #: seconds to wait for the optional protection reply (F9)
    protection_timeout: ClassVar[float] = 2.0

    codec: sok.SokCodec
    _name_asked = False
    _protection: bool | None = None  # None: not asked yet; False: the BMS does not answer C4

    def make_codec(self) -> sok.SokCodec:
        return sok.SokCodec()

    async def on_connected(self) -> None:
        if self._name_asked:
            return
        self._name_asked = True  # once per driver: the name does not change
        try:
            await self.collect(sok.CMD_NAME)
        except BmsTimeoutError:
            self.log.info("no reply to the name request (C0); continuing without the model name")

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

    async def read(self) -> Reading:
        parts = [await self.collect(sok.CMD_INFO), await self.collect(sok.CMD_DETAIL)]
        if self._protection is not False:
            try:
                parts.append(await self.collect(sok.CMD_PROTECTION, self.protection_timeout))
                self._protection = True
            except BmsTimeoutError:  # optional reply: never an error
                if self._protection is None:
                    self._protection = False
                    self.log.info("no reply to the protection request (C4): this BMS does not report "
                                  "protection flags; not asking again")
        return merge_readings(*parts)

"""The shared read slot of serial sampling (``concurrent_sampling: false``): one radio read at a time, with a
time limit on holding it.

Devices wait for the slot first come, first served (an :class:`asyncio.Lock` wakes its waiters in the order
they came, and a task that releases it cannot take it again ahead of them). A device holds the slot for at
most ``lease`` seconds per call: when the lease runs out the slot passes to the next device and the call goes
on without it until the device answers or the sampler's read timeout ends it. So a device that does not answer
(or answers slowly) delays the others by at most one lease, and a slow device is still read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class ReadSlot:
    """One read at a time, each holding the slot for at most ``lease`` seconds."""

    def __init__(self, lease: float) -> None:
        self.lease = lease
        self._lock = asyncio.Lock()
        self.overruns = 0  # calls that were still running when their lease ran out (a diagnostic)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Wait for the slot, then hold it for the block or for the lease, whichever ends first."""
        await self._lock.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._lock.release()

        def lease_over() -> None:
            if held:
                self.overruns += 1
            release()

        timer = asyncio.get_running_loop().call_later(self.lease, lease_over)
        try:
            yield
        finally:
            timer.cancel()
            release()


SLOT_LEASE_MAX = 5.0  # [s] a read of a working device takes well under this


def slot_lease(sample_period: float) -> float:
    """[s] how long one read may hold the slot: half a sample period (at most :data:`SLOT_LEASE_MAX`), so that a
    device delayed by one other device's lease still keeps its rate."""
    return min(SLOT_LEASE_MAX, sample_period / 2)

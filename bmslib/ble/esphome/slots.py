"""Connection slots of the proxies, shared by the devices: first come, first served.

An ESPHome proxy connects to a few devices at a time (an ESP32: 3). A device that wants to connect names the
proxies that hear it, best first (:meth:`SlotBroker.acquire`); it gets a slot on the first of them with one free,
or waits in line until one frees up. Waiters are served in the order they came, each on the best proxy with room
among its own, so a device is never passed over by later ones. A device that holds a slot while others wait for
that proxy is told so (:meth:`SlotBroker.wanted`): it lets go of the slot after its read (the sampler asks, through
the driver and the transport), and lines up again behind them: read and release, every device in turn.

Pure asyncio: it knows proxies by name and their capacity through :class:`SlotHolder`, nothing of the libraries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar


class SlotHolder(Protocol):
    """What the broker needs of a proxy: its name, whether it is usable, and how many devices it can hold."""

    @property
    def name(self) -> str: ...

    @property
    def usable(self) -> bool: ...

    @property
    def slot_limit(self) -> int: ...


H = TypeVar("H", bound=SlotHolder)


class NoProxyHearsError(Exception):
    """No usable proxy hears the device (or none of those it may use)."""


@dataclass(eq=False)
class _Waiter[H: SlotHolder]:
    address: str
    candidates: Callable[[], Sequence[H]]  # the proxies that hear the device, best first, right now
    future: asyncio.Future[H] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class SlotBroker[H: SlotHolder]:
    """Our devices' slots on each proxy, and the line of devices waiting for one."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}  # proxy name -> slots our devices hold (or are connecting with)
        self._waiters: list[_Waiter[H]] = []

    def held(self, proxy: str) -> int:
        return self._held.get(proxy, 0)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _room(self, proxy: SlotHolder) -> bool:
        return proxy.usable and self.held(proxy.name) < proxy.slot_limit

    async def acquire(self, address: str, candidates: Callable[[], Sequence[H]]) -> H:
        """A slot on the best of ``candidates()`` with room, waiting in line for one (cancel to give up).

        Raises NoProxyHearsError at once when ``candidates()`` is empty.
        """
        if not candidates():
            raise NoProxyHearsError(address)
        waiter: _Waiter[H] = _Waiter(address, candidates)
        self._waiters.append(waiter)
        self.changed()
        try:
            return await waiter.future
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                self.release(waiter.future.result())  # granted as it was cancelled: give it back
            raise

    def release(self, proxy: H) -> None:
        """A slot on ``proxy`` is free again (the device disconnected or its connect failed)."""
        if self._held.get(proxy.name, 0) > 0:
            self._held[proxy.name] -= 1
        self.changed()

    def wanted(self, proxy: str) -> bool:
        """Another device waits for a slot that ``proxy`` could give it."""
        return any(proxy in (c.name for c in w.candidates()) for w in self._waiters)

    def changed(self) -> None:
        """Serve the line: a slot freed, a proxy came or went, a device was heard by another one."""
        for waiter in list(self._waiters):
            if waiter.future.done():
                self._waiters.remove(waiter)
                continue
            candidates = waiter.candidates()
            if not candidates:
                self._waiters.remove(waiter)
                waiter.future.set_exception(NoProxyHearsError(waiter.address))
                continue
            proxy = next((p for p in candidates if self._room(p)), None)
            if proxy is not None:
                self._held[proxy.name] = self.held(proxy.name) + 1
                self._waiters.remove(waiter)
                waiter.future.set_result(proxy)

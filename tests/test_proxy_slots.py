"""The proxies' connection slots: first come, first served, never more than a proxy holds, a holder is told when
another device waits for its proxy."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from bmslib.ble.esphome.slots import NoProxyHearsError, SlotBroker


@dataclass(eq=False)
class Proxy:
    name: str
    slot_limit: int = 1
    usable: bool = True


async def test_waiters_are_served_in_order_and_each_proxy_holds_its_limit() -> None:
    a, b = Proxy("a"), Proxy("b")
    broker: SlotBroker[Proxy] = SlotBroker()
    assert await broker.acquire("d1", lambda: [a, b]) is a
    assert await broker.acquire("d2", lambda: [a, b]) is b  # a is full: the next best
    third = asyncio.ensure_future(broker.acquire("d3", lambda: [a]))
    fourth = asyncio.ensure_future(broker.acquire("d4", lambda: [a, b]))
    await asyncio.sleep(0)
    assert not third.done() and not fourth.done()
    assert broker.wanted("a") and broker.wanted("b")
    broker.release(b)  # only d4 can use b, though d3 came first
    await asyncio.sleep(0)
    assert fourth.result() is b and not third.done()
    broker.release(a)
    await asyncio.sleep(0)
    assert third.result() is a
    assert broker.held("a") == 1 and broker.held("b") == 1 and not broker.wanted("a")


async def test_the_first_in_line_gets_the_freed_slot_before_the_one_that_freed_it() -> None:
    a = Proxy("a")
    broker: SlotBroker[Proxy] = SlotBroker()
    await broker.acquire("holder", lambda: [a])
    waiter = asyncio.ensure_future(broker.acquire("waiter", lambda: [a]))
    await asyncio.sleep(0)
    broker.release(a)
    again = asyncio.ensure_future(broker.acquire("holder", lambda: [a]))  # the holder lines up again at once
    await asyncio.sleep(0)
    assert waiter.result() is a and not again.done()
    again.cancel()


async def test_nobody_hears_it_and_a_proxy_going_away_fails_the_wait() -> None:
    a = Proxy("a")
    broker: SlotBroker[Proxy] = SlotBroker()
    with pytest.raises(NoProxyHearsError):
        await broker.acquire("d", list)
    await broker.acquire("d1", lambda: [a])
    paths = [a]
    waiter = asyncio.ensure_future(broker.acquire("d2", lambda: paths))
    await asyncio.sleep(0)
    paths.clear()  # the proxy died: nobody hears d2 any more
    broker.changed()
    with pytest.raises(NoProxyHearsError):
        await waiter
    assert broker.waiting == 0


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    a = Proxy("a")
    broker: SlotBroker[Proxy] = SlotBroker()
    await broker.acquire("d1", lambda: [a])
    waiter = asyncio.ensure_future(broker.acquire("d2", lambda: [a]))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    assert broker.waiting == 0 and not broker.wanted("a")
    broker.release(a)
    assert broker.held("a") == 0

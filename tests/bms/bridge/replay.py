"""Replaying captured replies to aiobmsble's real plugins: an emulator of a family (its GATT layout and
advertisement) that answers each request it knows with the captured reply, byte for byte, so the pinned
aiobmsble release shows what it reads from the captures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiobmsble.basebms import BaseBMS

from bmslib.ble.aiobmsble_seam import Route, routed
from bmslib.sim.emulator import Emulator
from bmslib.sim.radio import SimRadio
from tests.bms.bridge.emu_support import discover


def replay_emulator(cls: type[Emulator], replies: Mapping[bytes, bytes | list[bytes]], **kwargs: Any) -> Emulator:
    """An emulator of ``cls`` that answers a write equal to a key of ``replies`` with its captured reply (a list:
    several notifications, sent as they are) and ignores every other write."""

    def handle_write(self: Emulator, char_uuid: str, data: bytes) -> None:
        reply = replies.get(data)
        for chunk in [reply] if isinstance(reply, bytes) else reply or []:
            self.notify(chunk)

    replay_cls = type(f"Replay{cls.__name__}", (cls,), {"handle_write": handle_write})
    return replay_cls(**kwargs)


async def read_replay(plugin_cls: type[BaseBMS], em: Emulator, *, info: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """The plugin's sample (raw: nothing derived) and, with ``info``, its device info, read from ``em``."""
    radio = SimRadio()
    radio.add(em, sim_id="replay")
    dev, _adv = await discover(radio, em)
    with routed(Route(backend=radio.client_backend())):
        plugin = plugin_cls(dev)
        try:
            sample = dict(await plugin.async_update(raw=True))
            device_info = dict(await plugin.device_info()) if info else {}
        finally:
            await plugin.disconnect()
            await radio.aclose()
    return sample, device_info

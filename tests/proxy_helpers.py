"""Building blocks for tests through ESPHome proxies: simulated ESPHome nodes (bmslib/sim/esphome) on loopback,
the daemon's real ProxyManager (aioesphomeapi, bleak-esphome, habluetooth) in front of them, and the registry's
drivers on its backend. Nothing here replaces project or library code."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from bmslib.app import make_emulator
from bmslib.ble.esphome import ProxyManager
from bmslib.config.settings import ProxyConfig
from bmslib.drivers.base import Driver
from bmslib.registry import device_types
from bmslib.sim.emulator import Emulator
from bmslib.sim.esphome.node import EsphomeNode
from bmslib.sim.radio import SimRadio
from tests.sim_helpers import device_config

WAIT = 30.0  # [s] generous: the machine may be loaded


@dataclass
class Proxied:
    radio: SimRadio
    nodes: list[EsphomeNode]
    proxies: ProxyManager


def endpoint(node: EsphomeNode, name: str | None = None, noise_psk: str | None = None) -> ProxyConfig:
    return ProxyConfig(host="127.0.0.1", port=node.port, noise_psk=noise_psk, name=name or node.knobs.name)


@contextlib.asynccontextmanager
async def proxied(radio: SimRadio, names: Sequence[str] = ("shed",), *, connect: bool = True,
                  keys: Sequence[str | None] | None = None, node_keys: Sequence[str | None] | None = None,
                  **knobs: Any) -> AsyncIterator[Proxied]:
    """Nodes named ``names`` on ``radio`` (``knobs`` for each), and a started ProxyManager connected to all."""
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for i, name in enumerate(names):
            key = node_keys[i] if node_keys is not None else None
            node = await stack.enter_async_context(EsphomeNode(radio, name=name, noise_psk=key,
                                                               mac=f"24:0A:C4:00:01:{i * 4:02X}"))
            for knob, value in knobs.items():
                setattr(node.knobs, knob, value)
            nodes.append(node)
        given = keys if keys is not None else [n.knobs.noise_psk for n in nodes]
        proxies = ProxyManager([endpoint(n, noise_psk=k) for n, k in zip(nodes, given, strict=True)])
        await proxies.start()
        try:
            if connect:
                async with asyncio.timeout(WAIT):
                    await proxies.wait_connected()
            yield Proxied(radio, nodes, proxies)
        finally:
            await proxies.stop()


def emulator_for(radio: SimRadio, type_name: str, sim_id: str = "dev1") -> Emulator:
    em = make_emulator(device_types()[type_name], sim_id, random.Random(sim_id))
    radio.add(em, sim_id=sim_id)
    return em


def proxied_driver(type_name: str, proxies: ProxyManager, emulator: Emulator, **cfg: Any) -> Driver:
    """The registry's driver for ``type_name``, reaching ``emulator`` by its MAC through the proxies."""
    dtype = device_types()[type_name]
    assert dtype.emulator is not None
    options = {**dtype.emulator.demo_options, **cfg}
    config = device_config(type_name, address=emulator.address, **options)
    log = logging.LoggerAdapter(logging.getLogger(f"test.proxy.{type_name}"), {})
    return dtype.driver(config, address=emulator.address, backend=proxies.backend, log=log)

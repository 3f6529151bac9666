"""``--demo-proxy``: the demo's simulated devices behind a simulated ESPHome Bluetooth proxy.

The demo's ``sim:`` devices go onto a simulated radio of their own that only a simulated ESPHome node
(:mod:`bmslib.sim.esphome.node`, in the same process, on a free loopback port) bridges. The daemon gets
the options a user with a proxy writes: ``ble_stack: esphome``, one ``bluetooth_proxies`` entry pointing at
the node, and each simulated device by its MAC address. So it reaches them only through ESPHome's native
API, as it would reach batteries behind a real ESP32.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Final

from bmslib.app import make_emulator
from bmslib.config.formats import sim_knobs
from bmslib.family import DeviceType
from bmslib.sim.knobs import bank_name, set_faults
from bmslib.sim.radio import SimRadio

PROXY_NAME: Final = "demo-proxy"
PROXY_HOST: Final = "127.0.0.1"


def simulated(entry: Mapping[str, Any], types: Mapping[str, DeviceType]) -> tuple[str, str] | None:
    """(sim id, knobs) of a demo entry the proxy serves (a ``sim:`` address of a radio type with an emulator)."""
    address, dtype = str(entry.get("address", "")), types.get(str(entry.get("type", "")))
    if not address.startswith("sim:") or dtype is None or dtype.emulator is None or not dtype.radio:
        return None
    sim_id, _, query = address[4:].partition("?")
    return sim_id, query


def demo_radio(devices: Sequence[Mapping[str, Any]], types: Mapping[str, DeviceType]) -> SimRadio:
    """A radio with an emulator for each simulated device of ``devices`` (their knobs applied, banks shared),
    made as the daemon makes them for ``sim:`` addresses."""
    radio = SimRadio()
    for entry in devices:
        found = simulated(entry, types)
        if found is None:
            continue
        sim_id, query = found
        knobs, problems = sim_knobs(query)
        if problems:  # the demo's own list: a mistake in it is a bug
            raise ValueError(f"demo device {entry['address']}: {'; '.join(problems)}")
        bank = bank_name(knobs)
        emulator = make_emulator(types[str(entry["type"])], sim_id, random.Random(sim_id),
                                 bank=radio.bank(bank) if bank is not None else None)
        set_faults(emulator.faults, knobs)
        radio.add(emulator, sim_id=sim_id)
    return radio


def proxied_options(devices: Sequence[Mapping[str, Any]], radio: SimRadio, types: Mapping[str, DeviceType], *,
                    port: int, noise_psk: str | None = None) -> dict[str, Any]:
    """The options that read ``devices`` through the node on ``port``: the simulated devices by the MAC
    addresses of their emulators on ``radio``, ``ble_stack: esphome`` and the node's ``bluetooth_proxies``
    entry. Other devices (the dummy, groups) are kept as they are."""
    out: list[dict[str, Any]] = []
    for entry in devices:
        found = simulated(entry, types)
        emulator = radio.by_sim_id(found[0]) if found is not None else None
        out.append({**entry, "address": emulator.address} if emulator is not None else dict(entry))
    proxy: dict[str, Any] = {"host": PROXY_HOST, "port": port, "name": PROXY_NAME}
    if noise_psk is not None:
        proxy["noise_psk"] = noise_psk
    return {"devices": out, "ble_stack": "esphome", "bluetooth_proxies": [proxy]}

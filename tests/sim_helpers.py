"""Building blocks for tests that run drivers against emulators on the simulated radio.

Nothing here replaces project code: drivers, the transport, bleak and the emulators are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

from bmslib.app import App
from bmslib.ble.backend import BleBackend
from bmslib.bms.jbd.driver import JbdDriver
from bmslib.config import DeviceConfig
from bmslib.drivers.base import Driver
from bmslib.family import DeviceType
from bmslib.registry import device_types
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Emulator, Faults
from bmslib.sim.radio import SimRadio, sim_address


def device_config(type_name: str, address: str = "sim:dev1", alias: str = "dev1", **kw: Any) -> DeviceConfig:
    """A DeviceConfig as the loader would build it (defaults for everything not given)."""
    fields: dict[str, Any] = {
        "address": address, "type": type_name, "alias": alias, "pin": None, "key": None, "adapter": None,
        "debug": True, "current_calibration": 1.0, "algorithm": None, "keep_alive": None, "members": (),
        "index": 0,
    }
    fields.update(kw)
    return DeviceConfig(**fields)


def backend_of(radio: SimRadio) -> BleBackend:
    return BleBackend(radio.client_backend(), radio.scanner_backend(), simulated=True)


def add_emulator(radio: SimRadio, emulator_cls: type[Emulator], sim_id: str = "dev1", *, seed: int = 1,
                 battery: BatteryModel | None = None, faults: Faults | None = None, **kw: Any) -> Emulator:
    """Put an emulator on the radio under ``sim:<sim_id>`` (extra keyword arguments go to its constructor)."""
    rng = random.Random(seed)
    em = emulator_cls(address=sim_address(sim_id), name=kw.pop("name", f"SIM-{sim_id}"),
                      battery=battery or BatteryModel(rng=rng), faults=faults, rng=rng, **kw)
    radio.add(em, sim_id=sim_id)
    return em


def make_driver(type_name: str, radio: SimRadio, emulator: Emulator | None, **cfg: Any) -> Driver:
    """The registry's driver for ``type_name``, talking to ``emulator`` through bleak and the sim radio."""
    dtype = device_types()[type_name]
    config = device_config(type_name, **cfg)
    log = logging.LoggerAdapter(logging.getLogger(f"test.{type_name}"), {})
    address = emulator.address if emulator is not None else config.address
    return dtype.driver(config, address=address, backend=backend_of(radio), log=log)


class FastJbd(JbdDriver):
    """The real JBD driver with a short reply timeout, so a muted device costs tenths of seconds."""

    request_timeout = 0.3


def fast_types() -> dict[str, DeviceType]:
    """The registry's device types, with :class:`FastJbd` for ``jbd``."""
    types = device_types()
    types["jbd"] = dataclasses.replace(types["jbd"], driver=FastJbd)
    return types


@contextlib.asynccontextmanager
async def app_running(app: App, *, stop_timeout: float = 15.0) -> AsyncIterator[asyncio.Task[int]]:
    """The app running in the background for the block (its task is yielded); then stopped, and its end
    awaited for at most ``stop_timeout`` seconds."""
    task = asyncio.create_task(app.run())
    try:
        yield task
    finally:
        app.request_stop()
        await asyncio.wait_for(task, stop_timeout)


def native_types() -> dict[str, DeviceType]:
    """The registry's types batmon reads with its own drivers (not through aiobmsble): what a family's scan test
    checks its own matchers against (which of several matching types a device is: tests/test_detection.py)."""
    return {name: t for name, t in device_types().items() if t.via == "native"}

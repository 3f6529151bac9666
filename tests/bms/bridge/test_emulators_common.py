"""What every emulator of an aiobmsble-only family (bmslib/bms/bridge/emulators/) shares: the module contract
the bridge discovers, an advertisement as the demo builds the device that only its own plugin (and no native
type) claims, and replies that leave through :meth:`Emulator.notify`, where the fault knobs apply."""

from __future__ import annotations

import asyncio
import importlib
import random
from types import ModuleType

import pytest

import bmslib.bms.bridge.emulators as emulators_pkg
from bmslib.bms.bridge.emulators.frames import ecoworthy, redodo, renogy, seplos, tdt
from bmslib.registry import device_types
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Emulator, Faults
from bmslib.sim.radio import sim_address
from tests.bms.bridge.emu_support import matching_plugins

#: a request each device answers, and where the host writes it
REQUESTS: dict[str, tuple[str, bytes]] = {
    "seplos": (seplos.WRITE_UUID, seplos.request(0, seplos.EIA)),
    "renogy": (renogy.WRITE_UUID, renogy.request(renogy.SUMMARY)),
    "redodo": (redodo.WRITE_UUID, redodo.request()),
    "ecoworthy": (ecoworthy.WRITE_UUID, bytes.fromhex("ff0802000b01006401ffffffffffffff002d")),
    "tdt": (tdt.WRITE_UUID, tdt.request(tdt.CMD_CELLS)),
}


def modules() -> list[ModuleType]:
    return [importlib.import_module(f"{emulators_pkg.__name__}.{name}") for name in REQUESTS]


def demo_emulator(cls: type[Emulator], sim_id: str) -> Emulator:
    """As the demo makes it: keyword arguments only, the name ``<TYPE>-<sim id>``."""
    battery = BatteryModel(rng=random.Random(sim_id), clock=lambda: 0.0)
    return cls(address=sim_address(sim_id), name=f"{cls.type_name.upper()}-{sim_id}", battery=battery,
               rng=random.Random(sim_id))


def test_every_module_names_its_emulator_for_its_plugin() -> None:
    found = {m.__name__.rsplit(".", 1)[-1]: m for m in modules()}
    assert set(REQUESTS) <= set(emulators_pkg.discover())
    for name, module in found.items():
        cls = module.EMULATOR
        assert isinstance(cls, type) and issubclass(cls, Emulator)
        assert cls.type_name == name


@pytest.mark.parametrize("module", modules(), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_the_demo_device_is_claimed_by_its_plugin_only_and_by_no_native_type(module: ModuleType) -> None:
    cls: type[Emulator] = module.EMULATOR
    em = demo_emulator(cls, f"{cls.type_name}1")
    assert matching_plugins(em) == {cls.type_name}
    adv = em.advertisement()
    natives = [t.name for t in device_types().values() if t.via == "native"
               if any(m.matches(address=em.address, name=adv.name, service_uuids=adv.service_uuids,
                                manufacturer_data=adv.manufacturer_data) for m in t.matchers)]
    assert natives == []


class RecordingLink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def deliver(self, char_uuid: str, data: bytes) -> None:
        self.chunks.append(data)

    def drop(self) -> None:
        pass


@pytest.mark.parametrize("module", modules(), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
async def test_replies_go_through_notify_where_the_faults_apply(module: ModuleType) -> None:
    cls: type[Emulator] = module.EMULATOR
    uuid, request = REQUESTS[cls.type_name]
    for drop, expect_delivery in ((1.0, False), (0.0, True)):
        em = demo_emulator(cls, f"{cls.type_name}2")
        em.faults = Faults(drop_chunk=drop)
        link = RecordingLink()
        em.attach(link)
        em.receive_write(uuid, request)
        for _ in range(20):
            await asyncio.sleep(0)
        await em.aclose()
        assert bool(link.chunks) is expect_delivery

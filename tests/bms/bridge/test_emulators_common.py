"""What every emulator of an aiobmsble-only family (bmslib/bms/bridge/emulators/) shares: the module contract
the bridge discovers, an advertisement as the demo builds the device that only its own plugin (and no native
type) claims, and replies that leave through :meth:`Emulator.notify`, where the fault knobs apply."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

import bmslib.bms.bridge.emulators as emulators_pkg
from bmslib.bms.bridge.emulators import cbtpwr as cbtpwr_emulator
from bmslib.bms.bridge.emulators import felicity as felicity_emulator
from bmslib.bms.bridge.emulators import ogt as ogt_emulator
from bmslib.bms.bridge.emulators import pace as pace_emulator
from bmslib.bms.bridge.emulators import roypow as roypow_emulator
from bmslib.bms.bridge.emulators.frames import (
    cbtpwr,
    ecoworthy,
    felicity,
    ogt,
    pace,
    redodo,
    renogy,
    roypow,
    seplos,
    tdt,
)
from bmslib.registry import device_types
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Emulator, Faults
from bmslib.sim.radio import sim_address
from tests.bms.bridge.emu_support import matching_plugins

#: a request each device answers (made for the device: some carry its key), and where the host writes it
REQUESTS: dict[str, Callable[[Emulator], tuple[str, bytes]]] = {
    "seplos": lambda _em: (seplos.WRITE_UUID, seplos.request(0, seplos.EIA)),
    "renogy": lambda _em: (renogy.WRITE_UUID, renogy.request(renogy.SUMMARY)),
    "redodo": lambda _em: (redodo.WRITE_UUID, redodo.request()),
    "ecoworthy": lambda _em: (ecoworthy.WRITE_UUID, bytes.fromhex("ff0802000b01006401ffffffffffffff002d")),
    "tdt": lambda _em: (tdt.WRITE_UUID, tdt.request(tdt.CMD_CELLS)),
    "pace": lambda _em: (pace_emulator.WRITE_UUID, pace.frame(pace.SYS_INFO, b"")),
    "cbtpwr": lambda _em: (cbtpwr_emulator.WRITE_UUID, cbtpwr.request(cbtpwr.POWER)),
    "felicity": lambda _em: (felicity_emulator.WRITE_UUID, felicity.command(felicity.REAL_INFO)),
    "ogt": lambda em: (ogt_emulator.WRITE_UUID, ogt.request("B", 9, 2, ogt_key(em))),
    "roypow": lambda _em: (roypow_emulator.CHAR_UUID, roypow.request(roypow.CELLS)),
}
def ogt_key(em: Emulator) -> int:
    assert isinstance(em, ogt_emulator.OgtEmulator)
    return em.key


#: every emulator of the package, as the bridge discovers it
EMULATORS = emulators_pkg.discover()


def demo_emulator(cls: type[Emulator], sim_id: str, name: str | None = None) -> Emulator:
    """As the demo makes it: keyword arguments only, the name ``<TYPE>-<sim id>`` (unless ``name``)."""
    battery = BatteryModel(rng=random.Random(sim_id), clock=lambda: 0.0)
    return cls(address=sim_address(sim_id), name=name or f"{cls.type_name.upper()}-{sim_id}", battery=battery,
               rng=random.Random(sim_id))


def test_every_module_names_its_emulator_for_its_plugin() -> None:
    assert set(REQUESTS) == set(EMULATORS)  # a new emulator gets its request here
    for name, cls in EMULATORS.items():
        assert isinstance(cls, type) and issubclass(cls, Emulator)
        assert cls.type_name == name


@pytest.mark.parametrize("naming", ["demo", "test"])
@pytest.mark.parametrize("plugin", sorted(EMULATORS))
def test_the_demo_device_is_claimed_by_its_plugin_only_and_by_no_native_type(plugin: str, naming: str) -> None:
    # the demo names a device ``<TYPE>-<id>``, the tests ``SIM-<id>``: neither is a real unit's name, and the
    # emulator advertises one that is
    cls = EMULATORS[plugin]
    em = demo_emulator(cls, f"{plugin}1", None if naming == "demo" else f"SIM-{plugin}1")
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


@pytest.mark.parametrize("plugin", sorted(EMULATORS))
async def test_replies_go_through_notify_where_the_faults_apply(plugin: str) -> None:
    cls = EMULATORS[plugin]
    for drop, expect_delivery in ((1.0, False), (0.0, True)):
        em = demo_emulator(cls, f"{plugin}2")
        uuid, request = REQUESTS[plugin](em)
        em.faults = Faults(drop_chunk=drop)
        link = RecordingLink()
        em.attach(link)
        em.receive_write(uuid, request)
        for _ in range(20):
            await asyncio.sleep(0)
        await em.aclose()
        assert bool(link.chunks) is expect_delivery

"""The advertisements of the bridge emulators written from captures (Pace, CBT Power, Felicity, Offgridtec,
RoyPow): each is its plugin's for aiobmsble and no other plugin's, and no native batmon type claims it, for any
address and the names the demo and tests give."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmslib.bms.bridge.emulators.cbtpwr import CbtPowerEmulator
from bmslib.bms.bridge.emulators.felicity import FelicityEmulator
from bmslib.bms.bridge.emulators.ogt import OgtEmulator
from bmslib.bms.bridge.emulators.pace import PaceEmulator
from bmslib.bms.bridge.emulators.roypow import RoyPowEmulator
from bmslib.registry import families
from bmslib.sim.emulator import Emulator
from bmslib.sim.radio import sim_address
from tests.bms.bridge.emu_support import matching_plugins

EMULATORS: dict[str, type[Emulator]] = {
    "pace": PaceEmulator, "cbtpwr": CbtPowerEmulator, "felicity": FelicityEmulator, "ogt": OgtEmulator,
    "roypow": RoyPowEmulator,
}


def native_matches(em: Emulator) -> set[str]:
    """The types of batmon's own families (not the bridge's) whose matchers accept the emulator's advertisement."""
    adv = em.advertisement()
    return {t.name for f in families() if f.name != "bridge" for t in f.types for m in t.matchers
            if m.matches(address=em.address, name=adv.name, service_uuids=adv.service_uuids,
                         manufacturer_data=adv.manufacturer_data)}


@pytest.mark.parametrize("plugin", sorted(EMULATORS))
def test_the_demo_device_is_its_plugins_only(plugin: str) -> None:
    em = EMULATORS[plugin](address=sim_address(f"{plugin}1"), name=f"SIM-{plugin}1")
    assert em.type_name == plugin
    assert matching_plugins(em) == {plugin}
    assert native_matches(em) == set()


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(EMULATORS)), st.text(min_size=1, max_size=12))
def test_any_address_gives_an_advertisement_of_the_plugin(plugin: str, sim_id: str) -> None:
    em = EMULATORS[plugin](address=sim_address(sim_id), name="SIM")
    assert matching_plugins(em) == {plugin}

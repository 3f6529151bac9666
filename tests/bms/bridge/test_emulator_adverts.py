"""The advertisements of the bridge emulators written from captures (Pace, CBT Power, Felicity, Offgridtec,
RoyPow) are their plugin's for aiobmsble and no other plugin's for any address (the demo's and the tests' names:
tests/bms/bridge/test_emulators_common.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bmslib.bms.bridge.emulators.cbtpwr import CbtPowerEmulator
from bmslib.bms.bridge.emulators.felicity import FelicityEmulator
from bmslib.bms.bridge.emulators.ogt import OgtEmulator
from bmslib.bms.bridge.emulators.pace import PaceEmulator
from bmslib.bms.bridge.emulators.roypow import RoyPowEmulator
from bmslib.sim.emulator import Emulator
from bmslib.sim.radio import sim_address
from tests.bms.bridge.emu_support import matching_plugins

EMULATORS: dict[str, type[Emulator]] = {
    "pace": PaceEmulator, "cbtpwr": CbtPowerEmulator, "felicity": FelicityEmulator, "ogt": OgtEmulator,
    "roypow": RoyPowEmulator,
}


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(EMULATORS)), st.text(min_size=1, max_size=12))
def test_any_address_gives_an_advertisement_of_the_plugin(plugin: str, sim_id: str) -> None:
    em = EMULATORS[plugin](address=sim_address(sim_id), name="SIM")
    assert matching_plugins(em) == {plugin}

"""The replies of the captured-family bridge emulators go through the emulator base's sender, so its fault knobs
apply to them: a clean reply arrives byte for byte, a corrupting link changes one byte of each frame."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from bmslib.bms.bridge.emulators import cbtpwr as cbtpwr_emulator
from bmslib.bms.bridge.emulators import felicity as felicity_emulator
from bmslib.bms.bridge.emulators import ogt as ogt_emulator
from bmslib.bms.bridge.emulators import pace as pace_emulator
from bmslib.bms.bridge.emulators import roypow as roypow_emulator
from bmslib.bms.bridge.emulators.frames import cbtpwr, felicity, ogt, pace, roypow
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Emulator, Faults
from bmslib.sim.radio import sim_address


class RecordingLink:
    """The host side of a connection: records what the emulator delivers."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.chunks = 0
        self.grew = asyncio.Event()

    def deliver(self, char_uuid: str, data: bytes) -> None:
        self.received += data
        self.chunks += 1
        self.grew.set()

    def drop(self) -> None:
        pass


def _pace(em: Emulator) -> tuple[str, bytes, bytes]:
    assert isinstance(em, pace_emulator.PaceEmulator)
    return (pace_emulator.WRITE_UUID, pace.frame(pace.SYS_INFO, b""),
            pace.frame(pace.SYS_INFO, pace.sys_data(em.values())))


def _cbtpwr(em: Emulator) -> tuple[str, bytes, bytes]:
    assert isinstance(em, cbtpwr_emulator.CbtPowerEmulator)
    return (cbtpwr_emulator.WRITE_UUID, cbtpwr.request(cbtpwr.POWER), cbtpwr.values_reply(cbtpwr.POWER, em.values()))


def _felicity(em: Emulator) -> tuple[str, bytes, bytes]:
    assert isinstance(em, felicity_emulator.FelicityEmulator)
    return (felicity_emulator.WRITE_UUID, felicity.command(felicity.REAL_INFO), felicity.real_info(em.values()))


def _ogt(em: Emulator) -> tuple[str, bytes, bytes]:
    assert isinstance(em, ogt_emulator.OgtEmulator)
    raw, _multiplier = ogt.raw_values("B", em.values())[9]
    return ogt_emulator.WRITE_UUID, ogt.request("B", 9, 2, em.key), ogt.reply(9, raw, em.key)


def _roypow(em: Emulator) -> tuple[str, bytes, bytes]:
    return (roypow_emulator.CHAR_UUID, roypow.request(roypow.CELLS),
            roypow.AT_STAT + roypow.cells_reply(em.battery.cell_voltages))


CASES: dict[str, tuple[type[Emulator], Callable[[Emulator], tuple[str, bytes, bytes]], int]] = {
    # plugin: emulator, (write characteristic, request, the reply expected), frames in that reply
    "pace": (pace_emulator.PaceEmulator, _pace, 1), "cbtpwr": (cbtpwr_emulator.CbtPowerEmulator, _cbtpwr, 1),
    "felicity": (felicity_emulator.FelicityEmulator, _felicity, 1), "ogt": (ogt_emulator.OgtEmulator, _ogt, 1),
    "roypow": (roypow_emulator.RoyPowEmulator, _roypow, 2),
}


async def _reply(plugin: str, faults: Faults) -> tuple[bytes, bytes, RecordingLink]:
    cls, request_of, _frames = CASES[plugin]
    battery = BatteryModel(load=lambda _t: 4.2, rng=random.Random(5), clock=lambda: 0.0)
    em = cls(address=sim_address(f"faults-{plugin}"), name="SIM", battery=battery, faults=faults,
             rng=random.Random(5))
    link = RecordingLink()
    em.attach(link)
    try:
        char, request, expected = request_of(em)
        em.receive_write(char, request)
        async with asyncio.timeout(30):
            while len(link.received) < len(expected):
                link.grew.clear()
                await link.grew.wait()
    finally:
        await em.aclose()
    return bytes(link.received), expected, link


@pytest.mark.parametrize("plugin", sorted(CASES))
async def test_a_clean_link_delivers_the_reply_in_mtu_chunks(plugin: str) -> None:
    received, expected, link = await _reply(plugin, Faults())
    assert received == expected
    assert link.chunks >= len(expected) // CASES[plugin][0].mtu


@pytest.mark.parametrize("plugin", sorted(CASES))
async def test_a_corrupting_link_changes_one_byte_of_each_frame(plugin: str) -> None:
    received, expected, _link = await _reply(plugin, Faults(corrupt_chunk=1.0, corrupt_to=0x00))
    assert len(received) == len(expected)
    assert sum(a != b for a, b in zip(received, expected, strict=True)) == CASES[plugin][2]

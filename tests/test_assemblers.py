"""The shared frame loop (HeadedAssembler): every framed protocol uses it, none writes its own, and each
recovers from a stale partial frame the same way."""

from __future__ import annotations

import importlib
import pkgutil
import struct
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

import bmslib
from bmslib.bms.ant.protocol import codec as ant
from bmslib.bms.ant.protocol import frames_2021 as ant_2021
from bmslib.bms.ant.protocol import legacy as ant_legacy
from bmslib.bms.daly.protocol import auto as daly_auto
from bmslib.bms.daly.protocol import legacy as daly_legacy
from bmslib.bms.daly.protocol import p81 as daly_p81
from bmslib.bms.daly.protocol import rtu as daly_rtu
from bmslib.bms.jbd.protocol import auth as jbd_auth
from bmslib.bms.jbd.protocol import frames as jbd
from bmslib.bms.jk.protocol import framing as jk_framing
from bmslib.bms.sok import protocol as sok
from bmslib.bms.supervolt import protocol as supervolt
from bmslib.protocol.base import OK, FrameAssembler, HeadedAssembler
from tests.helpers import fuzz_settings, load_vectors

# Assemblers that define their own ``feed`` without framing bytes themselves: they hand chunks to
# HeadedAssemblers (or pass them on whole) and never buffer. A new entry needs a reason here.
COMBINERS: dict[str, str] = {
    "bmslib.bms.ant.protocol.codec.AutoAssembler": "feeds both ANT generations until one completes a frame",
    "bmslib.bms.daly.protocol.auto.DalyFrames": "feeds the three Daly protocols until one completes a frame",
    "bmslib.bms.jbd.driver._WithAuthAssembler": "routes chunks between the DD and FF AA assemblers",
    "bmslib.bms.victron.driver._WholeValues": "no framing: one GATT notification is one value",
}


def _all_assembler_classes() -> list[type[FrameAssembler]]:
    for info in pkgutil.walk_packages(bmslib.__path__, "bmslib."):
        importlib.import_module(info.name)
    found: list[type[FrameAssembler]] = []
    todo: list[type[FrameAssembler]] = [FrameAssembler]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return found


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_no_assembler_but_the_shared_loop_and_the_listed_combiners_defines_feed() -> None:
    overriding = {_name(c) for c in _all_assembler_classes() if "feed" in vars(c)}
    assert overriding - {_name(HeadedAssembler)} == set(COMBINERS), (
        "frame assemblers subclass HeadedAssembler and declare heads, max_frame and check; "
        "a new combining assembler must be listed in COMBINERS with its reason")


@pytest.mark.parametrize("name", sorted(COMBINERS))
def test_combiners_never_buffer_bytes_themselves(name: str) -> None:
    cls = next(c for c in _all_assembler_classes() if _name(c) == name)
    asm = cls()  # type: ignore[abstract]  # the listed combiners are concrete and take no arguments
    for chunk in (b"\xdd\x03\x00", b"\xd2\x03", b"\xa5\x01", b"\x7e\xa1", b"\xff\xaa\x17", b"junk" * 20):
        asm.feed(chunk)
        assert asm._buf == bytearray()


# --- one good frame per protocol, and the stale-frame recovery ---------------------------------------


@dataclass(frozen=True)
class Proto:
    make: Callable[[], HeadedAssembler]
    good: bytes


def _ant_legacy_frame() -> bytes:
    frame = bytearray(ant_legacy.FRAME_LENGTH)
    frame[:4] = ant_legacy.HEADER
    frame[4:40] = bytes(range(36))
    struct.pack_into(">H", frame, ant_legacy.CHECKSUM_OFFSET, ant_legacy.checksum(frame))
    return bytes(frame)


SUPERVOLT_CAP = bytes.fromhex(
    next(c for c in load_vectors("supervolt") if c["kind"].startswith("source test fixture")
         and len(bytes.fromhex(c["frame"])) == supervolt.LEN_CAPACITY)["frame"])

PROTOCOLS: dict[str, Proto] = {
    "ant_2021": Proto(ant_2021.Ant2021Assembler, ant_2021.build_frame(0x11, 0, bytes(range(40)))),
    "ant_legacy": Proto(ant_legacy.AntLegacyAssembler, _ant_legacy_frame()),
    "jbd": Proto(jbd.JbdAssembler, jbd.response(jbd.REG_BASIC, bytes(range(1, 28)))),
    "jbd_ffaa": Proto(jbd_auth.FfAaAssembler, jbd_auth.frame(jbd_auth.CMD_RANDOM, b"\x42")),
    "sok": Proto(sok.SokAssembler, sok.reply(0xF1, bytes(range(1, 18)))),
    "daly_legacy": Proto(daly_legacy.DalyLegacyAssembler,
                         daly_legacy.request(daly_legacy.CMD_SOC, bytes(range(8)), address=daly_legacy.BMS_ADDRESS)),
    "daly_modbus": Proto(lambda: daly_rtu.ModbusAssembler(0xD2),
                         daly_rtu.read_response(bytes(range(40)), address=0xD2)),
    "daly_p81": Proto(lambda: daly_rtu.ModbusAssembler(daly_p81.REPLY_ADDRESS),
                      daly_rtu.read_response(bytes(range(40)), address=daly_p81.REPLY_ADDRESS)),
    "supervolt": Proto(supervolt.SupervoltAssembler, SUPERVOLT_CAP),
    "jk": Proto(jk_framing.JkAssembler, jk_framing.response_frame(jk_framing.TYPE_CELL_INFO, bytes(range(200)))),
}
PROTOCOL_IDS = sorted(PROTOCOLS)
# Checked by an 8-bit sum or CRC alone: a splice passes once in 256 (JK also rejects a second header).
EIGHT_BIT_CHECKS = frozenset({"daly_legacy", "jbd_ffaa", "sok", "supervolt"})


def test_every_headed_assembler_has_a_case_here() -> None:
    covered = {type(p.make()) for p in PROTOCOLS.values()}
    concrete = {c for c in _all_assembler_classes()
                if issubclass(c, HeadedAssembler) and c is not HeadedAssembler and c.__module__.startswith("bmslib.")}
    assert concrete <= covered


@pytest.mark.parametrize("name", PROTOCOL_IDS)
def test_good_frame_alone_and_split_anywhere(name: str) -> None:
    proto = PROTOCOLS[name]
    good = proto.good
    assert len(good) <= proto.make().max_frame
    for cut in range(len(good) + 1):
        asm = proto.make()
        assert asm.feed(good[:cut]) + asm.feed(good[cut:]) == [good]
        assert (asm.frames, asm.dropped, asm.pending) == (1, 0, 0)


@pytest.mark.parametrize("name", PROTOCOL_IDS)
def test_truncated_frame_followed_by_a_complete_one_counts_one_drop(name: str) -> None:
    """The behaviour ANT had alone: a frame that lost its tail (a notification was lost) is dropped as
    soon as a complete frame follows, whether the new frame comes in the same chunk or the next one,
    and counts once."""
    good = PROTOCOLS[name].good
    collisions = 0
    for cut in range(1, len(good)):
        if PROTOCOLS[name].make().check(bytearray(good[:cut] + good), 0)[0] == OK:
            collisions += 1  # the spliced bytes pass the check (SOK's 8-bit CRC, once here): a frame, as far as
            continue  # any assembler can tell, and the one it gives instead of the complete frame
        for chunks in ([good[:cut] + good], [good[:cut], good]):
            asm = PROTOCOLS[name].make()
            assert [f for c in chunks for f in asm.feed(c)] == [good], f"cut at {cut}"
            assert (asm.frames, asm.dropped, asm.pending) == (1, 1, 0), f"cut at {cut}: {list(asm.recent_errors)}"
    assert collisions <= 1


@pytest.mark.parametrize("name", PROTOCOL_IDS)
def test_corrupted_frame_followed_by_a_complete_one_counts_one_drop(name: str) -> None:
    good = PROTOCOLS[name].good
    for at in range(1, len(good)):
        bad = bytearray(good)
        bad[at] ^= 0x01  # one flipped bit anywhere after the head (the checksum or framing must catch it)
        asm = PROTOCOLS[name].make()
        if asm.check(bad, 0)[0] == OK:
            continue  # a byte no check covers (JBD's register byte): another valid frame
        got = asm.feed(bytes(bad)) + asm.feed(good)
        assert got == [good], f"bit flipped at {at}"
        assert (asm.dropped, asm.pending) == (1, 0), f"bit flipped at {at}: {list(asm.recent_errors)}"


@pytest.mark.parametrize("name", PROTOCOL_IDS)
def test_a_frame_that_never_completes_is_bounded_by_max_frame(name: str) -> None:
    proto = PROTOCOLS[name]
    asm = proto.make()
    stream = proto.good[:max(len(h) for h in asm.heads) + 1] + bytes(2 * asm.max_frame)
    for i in range(len(stream)):
        asm.feed(stream[i:i + 1])
        assert asm.pending < asm.max_frame
    assert asm.feed(proto.good) == [proto.good]


@fuzz_settings
@given(st.sampled_from(PROTOCOL_IDS), st.data())
def test_fuzz_any_chunks_never_raise_and_yield_only_checked_frames(name: str, data: st.DataObject) -> None:
    proto = PROTOCOLS[name]
    asm = proto.make()
    pieces = st.one_of(st.binary(max_size=24), st.sampled_from(asm.heads),
                       st.builds(lambda g, a, b: g[min(a, b):max(a, b)], st.just(proto.good),
                                 st.integers(0, len(proto.good)), st.integers(0, len(proto.good))))
    chunks = data.draw(st.lists(pieces, max_size=16))
    for chunk in chunks:
        for frame in asm.feed(chunk):
            assert asm.check(bytearray(frame), 0) == (OK, len(frame))
        assert asm.pending < asm.max_frame
    got = asm.feed(proto.good)  # whatever came before, a complete frame gets through,
    if got[-1:] != [proto.good]:  # unless earlier bytes and its beginning pass an 8-bit check together
        assert got and name in EIGHT_BIT_CHECKS


# --- the combiners keep working over the shared loop -------------------------------------------------


def test_combiners_recover_from_a_stale_frame_like_their_parts() -> None:
    good = PROTOCOLS["ant_2021"].good
    asm = ant.AutoAssembler()
    assert asm.feed(good[:9]) == [] and asm.feed(good) == [good]
    legacy = PROTOCOLS["daly_legacy"].good
    frames = daly_auto.DalyFrames()
    assert frames.feed(legacy[:7]) == [] and frames.feed(legacy) == [legacy]
    assert frames.dropped == 1


def test_chunks_in_every_size_give_the_same_frames() -> None:
    for name in PROTOCOL_IDS:
        good = PROTOCOLS[name].good
        stream = b"\x00junk" + good + good[:len(good) // 2] + good + good
        for size in (1, 2, 3, 7, 20, 244, len(stream)):
            asm = PROTOCOLS[name].make()
            got = [f for i in range(0, len(stream), size) for f in asm.feed(stream[i:i + size])]
            assert got == [good, good, good], f"{name}, chunks of {size}"
            assert asm.pending == 0


def test_heads_of_the_multi_head_assembler_are_all_seen() -> None:
    asm = jk_framing.JkAssembler()
    ack = jk_framing.command(jk_framing.CMD_ACK)
    good = PROTOCOLS["jk"].good
    assert asm.feed(b"AT\r\n" + ack + b"x" + good + b"AT\r") == [good]
    assert (asm.filtered, asm.acks, asm.dropped, asm.pending) == (2, 1, 1, 3)
    assert asm.feed(b"\n") == [] and (asm.filtered, asm.pending) == (3, 0)



class _Overlapping(HeadedAssembler):
    """Three-byte frames after either of two heads that can overlap (``ABC`` holds both)."""

    heads = (b"BC", b"AB")
    max_frame = min_frame = 3

    def check(self, buf: bytearray, at: int) -> tuple[str, int]:
        return (OK, at + 3) if len(buf) >= at + 3 else ("wait", 0)


def test_the_first_head_wins_even_when_a_later_listed_one_overlaps_it() -> None:
    asm = _Overlapping()
    assert asm.feed(b"xABCBCx") == [b"ABC", b"BCx"]
    assert asm.dropped == 1 and asm.pending == 0
    asm._buf[:] = b"xxABC"
    assert (asm._find_head(0), asm._find_head(0, 1), asm._find_head(3)) == (2, -1, 3)  # `last`: latest start

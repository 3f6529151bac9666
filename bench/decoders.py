"""Frames decoded per second per device type, from the real captures in tests/vectors/*.json.

    .venv/bin/python bench/decoders.py [--seconds 2] [--types jbd,jk]

Cases are the captured frames (kinds other than host commands and SYNTHETIC vectors), grouped by
the device they were captured from and replayed in file order through a fresh session of the
type's codec, as a new connection would see them: assembler fed chunk by chunk, then ``decode``.
Two figures per type: chunks -> Reading (assembling, CRC check and decoding) and decode alone
(already assembled frames, a fresh session per capture). Victron has no frames: its Instant Readout
advertisements (AES-CTR decryption and bit fields) and decrypted records are timed instead.

Figures only; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._measure import machine  # noqa: E402
from bmslib.bms.victron.protocol import advertisement as victron_adv  # noqa: E402
from bmslib.errors import FrameError  # noqa: E402
from bmslib.protocol.base import Codec  # noqa: E402
from bmslib.registry import device_types  # noqa: E402
from tests.helpers import VECTORS, chunks_of, load_vectors  # noqa: E402


def is_capture(case: dict[str, Any]) -> bool:
    """A frame from a device (real capture or a source's fixture), not a host command or a made-up vector."""
    kind = str(case.get("kind", ""))
    return not kind.startswith("command") and "SYNTHETIC" not in kind and ("frame" in case or "notifications" in case)


@dataclass
class Session:
    """The chunks of one captured device, in capture order."""

    device: str
    chunks: list[bytes] = field(default_factory=list)


@dataclass
class Result:
    name: str
    captures: int
    frames: int  # decodable frames per replay of all sessions
    rejected: int  # frames that raise FrameError (wrong layout without device info, unsupported frame type)
    chunks_per_s: float  # frames/s, chunks -> Reading
    decode_per_s: float  # frames/s, decode only


def sessions_of(cases: list[dict[str, Any]]) -> list[Session]:
    by_device: dict[str, Session] = {}
    for case in cases:
        if is_capture(case):
            name = str(case.get("device", "?"))
            by_device.setdefault(name, Session(name)).chunks.extend(chunks_of(case))
    return list(by_device.values())


def replay(make_codec: Callable[[], Codec], session: Session) -> tuple[list[bytes], int]:
    """Feed a session once: (decodable frames, frames that raised FrameError)."""
    codec = make_codec()
    asm = codec.assembler()
    good: list[bytes] = []
    bad = 0
    for chunk in session.chunks:
        for frame in asm.feed(chunk):
            try:
                codec.decode(frame)
                good.append(frame)
            except FrameError:
                bad += 1
    return good, bad


def timed(fn: Callable[[], int], seconds: float) -> float:
    """Run ``fn`` (returns frames done) repeatedly for about ``seconds``; frames per second."""
    done = fn()  # warm-up
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        done += fn()
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def bench_codec(name: str, make_codec: Callable[[], Codec], sessions: list[Session], seconds: float) -> Result:
    prepared = []
    rejected = 0
    for s in sessions:
        frames, bad = replay(make_codec, s)
        rejected += bad
        if frames:
            prepared.append((s, frames))

    def full() -> int:
        n = 0
        for s, _ in prepared:
            codec = make_codec()
            asm = codec.assembler()
            for chunk in s.chunks:
                for frame in asm.feed(chunk):
                    try:
                        codec.decode(frame)
                        n += 1
                    except FrameError:
                        pass
        return n

    def decode_only() -> int:
        n = 0
        for _, frames in prepared:
            codec = make_codec()  # a session may hold state (JK layout, a SOK reply set)
            for frame in frames:
                codec.decode(frame)
                n += 1
        return n

    total = sum(len(f) for _, f in prepared)
    return Result(name, len(prepared), total, rejected, timed(full, seconds / 2), timed(decode_only, seconds / 2))


def bench_victron(seconds: float) -> Result:
    adverts: list[tuple[bytes, bytes]] = []
    records: list[bytes] = []
    rejected = 0
    for case in load_vectors("victron"):
        if not is_capture(case):
            continue
        data = bytes.fromhex(case["frame"])
        if "encryption_key" in case:
            key = bytes.fromhex(case["encryption_key"])
            try:
                victron_adv.decode_advertisement(data, key)
                adverts.append((data, key))
            except FrameError:
                rejected += 1  # the capture of a wrong key
        elif "decrypted" in str(case.get("frame_type", "")):
            records.append(data)

    def run() -> int:
        for data, key in adverts:
            victron_adv.decode_advertisement(data, key)
        for record in records:
            victron_adv.decode_battery_monitor(record)
        return len(adverts) + len(records)

    def records_only() -> int:
        for record in records:
            victron_adv.decode_battery_monitor(record)
        return len(records)

    return Result("victron", len(adverts) + len(records), len(adverts) + len(records), rejected,
                  timed(run, seconds / 2), timed(records_only, seconds / 2))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="frames decoded per second per type, from tests/vectors")
    p.add_argument("--seconds", type=float, default=2.0, help="time per type (default 2)")
    p.add_argument("--types", help="comma-separated subset (default: every file in tests/vectors)")
    args = p.parse_args(argv)
    types = device_types()
    families = sorted(path.stem for path in VECTORS.glob("*.json"))
    if args.types:
        wanted = {t.strip() for t in args.types.split(",")}
        families = [f for f in families if f in wanted]
    print(f"machine: {machine()}")
    print(f"{'type':<10} {'captures':>8} {'frames':>6} {'rejected':>8} {'frames/s chunks->Reading':>25} "
          f"{'frames/s decode':>16} {'us/frame':>9}")
    for family in families:
        if family == "victron":
            r = bench_victron(args.seconds)
        else:
            dtype = types.get(family)
            if dtype is None or dtype.codec is None:
                continue
            r = bench_codec(family, dtype.codec, sessions_of(load_vectors(family)), args.seconds)
        print(f"{r.name:<10} {r.captures:>8} {r.frames:>6} {r.rejected:>8} {r.chunks_per_s:>25,.0f} "
              f"{r.decode_per_s:>16,.0f} {1e6 / r.chunks_per_s:>9.1f}")
    print("victron: Instant Readout advertisements (decrypt + decode) and decrypted records; 'decode' = records only")
    return 0


if __name__ == "__main__":
    sys.exit(main())

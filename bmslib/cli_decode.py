"""The ``decode`` subcommand: notification chunks (hex) through a type's assembler and decoder, for bug reports."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from bmslib.errors import FrameError
from bmslib.family import DeviceType
from bmslib.model import Reading, Sample, merge_readings
from bmslib.protocol.decoded import Decoded

# Sample fields reported by `decode` (timestamps are not: they say nothing about the frames).
_SKIP = ("timestamp", "mono")


class NoCompleteFrame(Exception):
    """The chunks hold no complete frame (nothing was decoded or rejected, or a frame is cut off at the end);
    the message says what was received and where the frame stopped."""


def decode_chunks(device_type: DeviceType, chunks: Sequence[bytes],
                  options: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Feed ``chunks`` in order; return the merged sample fields, device info and frame statistics.

    Raises :class:`NoCompleteFrame` when no frame was accepted and either the input ends inside a frame or
    nothing at all was found (a rejected frame is a finding and gives a result with its error).
    """
    if device_type.decoder is not None:
        return result_json(device_type.decoder(chunks, options or {}))
    if device_type.codec is None:
        raise ValueError(f"type {device_type.name!r} has no frame protocol to decode")
    codec = device_type.codec()
    asm = codec.assembler()
    reading: Reading = {}
    errors: list[str] = []
    for chunk in chunks:
        for frame in asm.feed(chunk):
            try:
                reading = merge_readings(reading, codec.decode(frame))
            except FrameError as exc:
                errors.append(str(exc))
    if asm.frames == 0 and (asm.pending > 0 or asm.dropped == 0):
        raise NoCompleteFrame(no_frame_message(device_type.name, b"".join(chunks), asm.pending, asm.dropped))
    return result_json(Decoded(reading, frames=asm.frames, rejected=asm.dropped,
                               errors=[str(e) for e in asm.recent_errors] + errors))


def no_frame_message(type_name: str, data: bytes, pending: int, rejected: int) -> str:
    """One line: how many bytes came, where the unfinished frame at the end starts, what was rejected."""
    head = f"{type_name}: no complete frame in {len(data)} bytes"
    if not data:
        return f"{head}: nothing to decode"
    if not pending:
        return f"{head}: no frame start found"
    start = len(data) - pending
    tail = data[start:]
    shown = tail[:32].hex() + ("..." if len(tail) > 32 else "")
    text = (f"{head}: a frame starting at byte {start} ({shown}) is cut off, the input ends {pending} bytes "
            "into it")
    if rejected:
        text += f"; {rejected} rejected before it"
    return text


def result_json(decoded: Decoded) -> dict[str, Any]:
    """What ``decode`` prints: the sample fields (no timestamps), device info, statistics, errors, extras."""
    reading = decoded.reading
    sample = Sample.build(reading, timestamp=time.time(), mono=0.0).as_dict()
    out = {k: v for k, v in sample.items() if k not in _SKIP}
    info = reading.get("device_info")
    if info is not None:
        out["device_info"] = info.as_dict()
    out["frames"] = decoded.frames
    out["rejected"] = decoded.rejected
    if decoded.errors:
        out["errors"] = decoded.errors
    out.update(decoded.extra)
    return out

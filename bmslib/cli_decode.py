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


def decode_chunks(device_type: DeviceType, chunks: Sequence[bytes],
                  options: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Feed ``chunks`` in order; return the merged sample fields, device info and frame statistics."""
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
    return result_json(Decoded(reading, frames=asm.frames, rejected=asm.dropped,
                               errors=[str(e) for e in asm.recent_errors] + errors))


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

"""Fixed-offset fields described as data.

A :class:`FieldTable` lists the fields of a frame (name, offset, wire type, scale, offset added).
The decoder reads a frame with :meth:`FieldTable.decode`; the simulator writes frames with
:meth:`FieldTable.encode` from the same table, so ``decode(encode(x)) == x`` holds by construction
and real captured frames pin the tables.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bmslib.errors import FrameError

Number = int | float

#: 3-byte integer formats (struct has no code for them); ``i24`` is signed
INT24 = frozenset({"u24", "i24"})


@dataclass(frozen=True, slots=True)
class Field:
    """One fixed-offset value: ``value = raw * scale + add``.

    ``fmt`` is a single :mod:`struct` code (``B b H h I i f``) or ``u24`` / ``i24`` for a 3-byte
    integer; the byte order comes from the table. Integer fields with ``scale == 1`` and ``add == 0``
    decode to ``int``, all others to ``float``.
    """

    name: str
    offset: int
    fmt: str
    scale: float = 1.0
    add: float = 0.0

    @property
    def size(self) -> int:
        return 3 if self.fmt in INT24 else struct.calcsize("<" + self.fmt)

    @property
    def is_int(self) -> bool:
        return self.fmt not in {"f", "d"} and self.scale == 1.0 and self.add == 0.0


@dataclass(frozen=True)
class FieldTable:
    """A set of fields sharing a byte order (``"<"`` little-endian, ``">"`` big-endian)."""

    byteorder: str
    fields: tuple[Field, ...]
    _structs: dict[str, struct.Struct] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for f in self.fields:
            if f.fmt not in INT24:
                self._structs[f.name] = struct.Struct(self.byteorder + f.fmt)

    def _unpack(self, f: Field, data: bytes, pos: int) -> int | float:
        if f.fmt in INT24:
            return int.from_bytes(data[pos:pos + 3], "little" if self.byteorder == "<" else "big",
                                  signed=f.fmt == "i24")
        (raw,) = self._structs[f.name].unpack_from(data, pos)
        return raw  # type: ignore[no-any-return]

    def _pack(self, f: Field, buf: bytearray, pos: int, raw: Number) -> None:
        if f.fmt in INT24:
            buf[pos:pos + 3] = int(raw).to_bytes(3, "little" if self.byteorder == "<" else "big",
                                                 signed=f.fmt == "i24")
        else:
            self._structs[f.name].pack_into(buf, pos, raw)

    @property
    def end(self) -> int:
        """One past the last byte any field reads."""
        return max(f.offset + f.size for f in self.fields)

    def decode(self, data: bytes, base: int = 0) -> dict[str, Number]:
        """Read every field at ``base + offset``. Raises :class:`FrameError` if ``data`` is too short."""
        if len(data) < base + self.end:
            raise FrameError(f"frame too short for its fields: {len(data)} < {base + self.end}", data)
        out: dict[str, Number] = {}
        for f in self.fields:
            raw = self._unpack(f, data, base + f.offset)
            out[f.name] = raw if f.is_int else raw * f.scale + f.add
        return out

    def encode(self, values: Mapping[str, Number], buf: bytearray, base: int = 0) -> None:
        """Write the fields present in ``values`` into ``buf`` (the inverse of :meth:`decode`)."""
        for f in self.fields:
            if f.name not in values:
                continue
            v = values[f.name]
            raw: Number = v if f.fmt in "fd" and f.scale == 1 and f.add == 0 else (v - f.add) / f.scale
            if f.fmt not in "fd":
                raw = round(raw)
            self._pack(f, buf, base + f.offset, raw)

    def __getitem__(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def decode_array(data: bytes, offset: int, count: int, fmt: str, scale: float = 1.0,
                 add: float = 0.0) -> list[float]:
    """``count`` consecutive values of struct type ``fmt`` (byte order included, e.g. ``">H"``)."""
    s = struct.Struct(fmt)
    end = offset + count * s.size
    if count < 0 or len(data) < end:
        raise FrameError(f"frame too short for {count} values at {offset}", data)
    return [raw * scale + add for (raw,) in s.iter_unpack(data[offset:end])]


def encode_array(values: Iterable[float], fmt: str, scale: float = 1.0, add: float = 0.0) -> bytes:
    """Inverse of :func:`decode_array`."""
    s = struct.Struct(fmt)
    floaty = fmt[-1] in "fd"
    out = bytearray()
    for v in values:
        raw = (v - add) / scale
        out += s.pack(raw if floaty else round(raw))
    return bytes(out)


def bits_to_names(mask: int, names: Mapping[int, str]) -> tuple[str, ...]:
    """Names of the set bits of ``mask`` (unknown bits become ``bit<N>``), in bit order."""
    out = []
    bit = 0
    while mask >> bit:
        if mask >> bit & 1:
            out.append(names.get(bit, f"bit{bit}"))
        bit += 1
    return tuple(out)


def names_to_bits(alarms: Iterable[str], names: Mapping[int, str]) -> int:
    """Inverse of :func:`bits_to_names` (used by emulators)."""
    rev = {v: k for k, v in names.items()}
    mask = 0
    for a in alarms:
        bit = rev[a] if a in rev else int(a.removeprefix("bit"))
        mask |= 1 << bit
    return mask

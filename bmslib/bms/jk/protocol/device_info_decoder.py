"""JK device-info frame (type 0x03) and the choice of layout it allows. Sans-IO.

The frame layout is the same in every JK variant. Besides model, versions, serial and name it
carries the app passcodes in clear text (offsets 62, 97, 118): they are never decoded, and the
serial is cut where the passcode field begins on firmware that has one (see :func:`decode`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass

from bmslib.bms.jk.protocol.framing import TYPE_DEVICE_INFO, FrameLayout, redact, response_frame
from bmslib.errors import FrameError
from bmslib.model import DeviceInfo, Reading
from bmslib.protocol.fields import Field, FieldTable, Number

MANUFACTURER = "JK"


@dataclass(frozen=True, slots=True)
class TextField:
    """A NUL-padded ASCII field."""

    name: str
    offset: int
    size: int

    def decode(self, frame: bytes, size: int | None = None) -> str | None:
        raw = frame[self.offset:self.offset + (size or self.size)].split(b"\x00", 1)[0]
        text = "".join(ch for ch in raw.decode("ascii", "replace") if ch.isprintable()).strip()
        return text or None

    def encode(self, text: str, buf: bytearray) -> None:
        raw = text.encode("ascii")[:self.size]
        buf[self.offset:self.offset + self.size] = raw.ljust(self.size, b"\x00")


TEXT = {f.name: f for f in (
    TextField("model", 6, 16),
    TextField("hw_version", 22, 8),
    TextField("sw_version", 30, 8),
    TextField("name", 46, 16),
    TextField("passcode", 62, 16),  # secret: encoded by the emulator, never decoded
    TextField("manufacturing_date", 78, 8),
    TextField("serial", 86, 16),
    TextField("short_passcode", 97, 5),  # secret, older firmware (overlapped by the serial on 19.x)
    TextField("setup_passcode", 118, 16),  # secret
)}
SECRETS = frozenset({"passcode", "short_passcode", "setup_passcode"})
SHORT_SERIAL = 11  # serial bytes before the short passcode field (86..96)
LONG_SERIAL_SW_MAJOR = 19  # firmware from 19.x writes up to 15 serial characters over it

NUMBERS = FieldTable("<", (
    Field("uptime", 38, "I"),
    Field("power_on_count", 42, "I"),
))

_MAJOR = re.compile(r"\s*(\d+)")
_JK04_B5A24S_SW = re.compile(r"8\.0\.\d+M$")


def version_major(version: str | None) -> int | None:
    """The leading number of a version text (``"10.XG"`` -> 10, ``"19A"`` -> 19)."""
    m = _MAJOR.match(version or "")
    return int(m.group(1)) if m else None


def layout_from_versions(hw_version: str | None, sw_version: str | None) -> FrameLayout | None:
    """The layout a device with these versions speaks, or None if they do not tell.

    JK04: hardware major <= 3 (old active balancers), or the JK-B5A24S family (hw 8.x with software
    ``8.0.<n>M``). Otherwise JK02: software major >= 11 -> 32 cell slots, below -> 24.
    """
    hw, sw = version_major(hw_version), version_major(sw_version)
    if hw is not None and hw <= 3:
        return FrameLayout.JK04
    if hw == 8 and _JK04_B5A24S_SW.match((sw_version or "").strip()):
        return FrameLayout.JK04
    if sw is None:
        return None
    return FrameLayout.JK02_32S if sw >= 11 else FrameLayout.JK02_24S


def _iso_date(text: str | None) -> str | None:
    """``YYMMDD`` as an ISO date, other text unchanged."""
    if text and len(text) == 6 and text.isdigit():
        try:
            return datetime.date(2000 + int(text[:2]), int(text[2:4]), int(text[4:])).isoformat()
        except ValueError:
            return text
    return text


def decode(frame: bytes) -> Reading:
    """Decode a device-info frame (checked envelope) into ``device_info``, ``uptime`` and extras."""
    if len(frame) < NUMBERS.end or frame[4] != TYPE_DEVICE_INFO:
        raise FrameError("not a JK device-info frame", redact(frame))
    texts = {name: f.decode(frame) for name, f in TEXT.items() if name not in SECRETS and name != "serial"}
    sw_major = version_major(texts["sw_version"])
    long_serial = sw_major is not None and sw_major >= LONG_SERIAL_SW_MAJOR
    serial = TEXT["serial"].decode(frame, None if long_serial else SHORT_SERIAL)
    numbers = NUMBERS.decode(frame)
    info = DeviceInfo(manufacturer=MANUFACTURER, model=texts["model"], hw_version=texts["hw_version"],
                      sw_version=texts["sw_version"], serial=serial, name=texts["name"])
    reading: Reading = {
        "device_info": info,
        "uptime": float(numbers["uptime"]),
        "extra": {"power_on_count": int(numbers["power_on_count"])},
    }
    date = _iso_date(texts["manufacturing_date"])
    if date:
        reading["extra"]["manufacturing_date"] = date
    return reading


# --- device side (emulator) -------------------------------------------------------------------


def encode(texts: Mapping[str, str], numbers: Mapping[str, Number] | None = None, counter: int = 0) -> bytes:
    """A device-info frame from text fields (names of :data:`TEXT`, passcodes included) and
    numbers (``uptime``, ``power_on_count``)."""
    buf = bytearray(300)
    for name, text in texts.items():
        TEXT[name].encode(text, buf)
    NUMBERS.encode(numbers or {}, buf)
    return response_frame(TYPE_DEVICE_INFO, buf, counter)


def encode_info(info: DeviceInfo, *, uptime: int = 0, power_on_count: int = 0, manufacturing_date: str = "",
                passcode: str = "", setup_passcode: str = "", counter: int = 0) -> bytes:
    """A device-info frame describing ``info`` (the inverse of :func:`decode`)."""
    texts = {k: v for k, v in info.as_dict().items() if k in TEXT}
    if manufacturing_date:
        texts["manufacturing_date"] = manufacturing_date
    if passcode:
        texts["passcode"] = passcode
    if setup_passcode:
        texts["setup_passcode"] = setup_passcode
    return encode(texts, {"uptime": uptime, "power_on_count": power_on_count}, counter)

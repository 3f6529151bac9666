"""What the node reports of a device's advertisement: the raw advertising data (AD structures) as an
ESP32 receives it, and the 48-bit integer address ESPHome uses. Pure code."""

from __future__ import annotations

import uuid

from bmslib.sim.emulator import Advertisement

_SIG_BASE = "-0000-1000-8000-00805f9b34fb"
_FLAGS = b"\x02\x01\x06"  # LE general discoverable, BR/EDR not supported


def mac_to_int(mac: str) -> int:
    """``AA:BB:CC:DD:EE:FF`` as ESPHome's 48-bit address."""
    return int(mac.replace(":", ""), 16)


def int_to_mac(address: int) -> str:
    return ":".join(f"{(address >> s) & 0xFF:02X}" for s in range(40, -8, -8))


def _ad(ad_type: int, data: bytes) -> bytes:
    return bytes((len(data) + 1, ad_type)) + data


def raw_advertisement(adv: Advertisement) -> bytes:
    """The advertising data of ``adv``: flags, service UUIDs (16-bit when on the SIG base), manufacturer
    data, complete local name. A real device splits these between advertisement and scan response; the
    proxy reports both, and so does this (one report holding everything)."""
    out = bytearray(_FLAGS if adv.connectable else b"")
    short: list[bytes] = []
    long: list[bytes] = []
    for u in adv.service_uuids:
        text = str(uuid.UUID(u)) if len(u) > 8 else f"0000{u.lower().removeprefix('0x'):>04}{_SIG_BASE}"
        if text.startswith("0000") and text.endswith(_SIG_BASE):
            short.append(int(text[4:8], 16).to_bytes(2, "little"))
        else:
            long.append(uuid.UUID(text).bytes[::-1])
    if short:
        out += _ad(0x03, b"".join(short))
    for one in long:
        out += _ad(0x07, one)
    for company, data in adv.manufacturer_data.items():
        out += _ad(0xFF, company.to_bytes(2, "little") + bytes(data))
    if adv.name:
        out += _ad(0x09, adv.name.encode()[:29])
    return bytes(out)

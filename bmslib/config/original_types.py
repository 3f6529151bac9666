"""The ``type`` names of the add-on batmon replaces (fl4p/batmon-ha) that are not batmon's own.

Each is either read as one of batmon's types (with one line at start saying so) or refused with one
line naming what to use instead. Pure data and one lookup; the device parser reports the lines.
"""

from __future__ import annotations

from typing import Final

#: the add-on's name -> batmon's type that reads the same BMS
RENAMED: Final = {
    "daly2": "daly_modbus",  # the add-on's Daly Modbus driver
    "sok_legacy": "sok",  # the add-on's own SOK driver (its ``sok`` went to aiobmsble)
}

_WIRED = "a wired (RS485/UART) BMS, which batmon does not read (Bluetooth only); keep it in batmon-ha"
#: the add-on's name -> why batmon refuses it and what to use instead
REFUSED: Final = {
    "jk_uart": _WIRED,
    "daly_uart": _WIRED,
    "pace_uart": _WIRED,
    "basen_uart": _WIRED,
    "noname_modbus": _WIRED,
    "litime": "a BMS batmon does not support; keep it in batmon-ha",
    "basen": "a BMS batmon does not support; keep it in batmon-ha",
    "snoop": "batmon-ha's protocol inspector; use `main.py scan` to see which type batmon would use",
}

#: aiobmsble module names (as the add-on took them) of BMSes batmon has a driver of its own for
AIOBMSBLE_NATIVE: Final = {
    "jikong": "jk", "jbd": "jbd", "daly": "daly", "ant": "ant", "ant_leg": "ant_legacy", "abc": "sok",
    "ej": "supervolt",
}

_AIOBMSBLE_SUFFIXES = ("_aiobmsble", "_ble")
_AIOBMSBLE = "is read through aiobmsble, which batmon does not include yet"


def original_type(name: str) -> tuple[str | None, str]:
    """What to do with the add-on's type ``name`` (lower case): ``(batmon type, "")`` to read it as that
    type, ``(None, why)`` to refuse it, ``(None, "")`` when it is none of the add-on's own names."""
    if name.startswith("snoop:"):  # the add-on's inspector took the families to probe after ':'
        name = "snoop"
    if (renamed := RENAMED.get(name)) is not None:
        return renamed, ""
    if (why := REFUSED.get(name)) is not None:
        return None, f"is {why}"
    for suffix in _AIOBMSBLE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            module = name[:-len(suffix)]
            native = AIOBMSBLE_NATIVE.get(module)
            instead = (f"use type '{native}' (batmon's own driver for it)" if native is not None
                       else "keep this device in batmon-ha (or the BMS_BLE integration) for now")
            return None, f"{_AIOBMSBLE}; {instead}"
    return None, ""

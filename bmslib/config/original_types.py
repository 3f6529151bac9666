"""The ``type`` names of the add-on batmon replaces (fl4p/batmon-ha) that are not batmon's own.

Each is either read as one of batmon's types (with one line at start saying so) or refused with one
line naming what to use instead. The names the add-on handed to aiobmsble are read as the bridge's types
(``bmslib.bms.bridge``). Pure data and one lookup; the device parser reports the lines.
"""

from __future__ import annotations

from collections.abc import Iterable
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

#: aiobmsble plugins the add-on reached by their plain name although batmon has a driver of its own for the BMS
AIOBMSBLE_PLAIN: Final = ("jikong", "abc", "ej", "ant_leg")

_AIOBMSBLE_SUFFIXES = ("_aiobmsble", "_ble")


def bridge_name(plugin: str) -> str:
    """batmon's type for aiobmsble's plugin ``plugin``: ``<plugin>_ble`` where batmon has a driver of its own
    for the BMS, else ``<plugin>``."""
    return f"{plugin}_ble" if plugin in AIOBMSBLE_NATIVE else plugin


def _native_note(plugin: str) -> str:
    return f"batmon's own type {AIOBMSBLE_NATIVE[plugin]!r} reads the same BMS and can switch"


def original_type(name: str) -> tuple[str | None, str]:
    """What to do with the add-on's type ``name`` (lower case): ``(batmon type, note)`` to read it as that
    type (``note``: a remark for the line saying so, or ""), ``(None, why)`` to refuse it, ``(None, "")`` when
    it is none of the add-on's own names.

    The add-on handed every name it had no driver for to aiobmsble (``<plugin>``, ``<plugin>_ble``,
    ``<plugin>_aiobmsble``): those become the bridge's type of the plugin. The caller checks that the type
    exists (a name aiobmsble has no plugin for is then "not a known type").
    """
    if name.startswith("snoop:"):  # the add-on's inspector took the families to probe after ':'
        name = "snoop"
    if (renamed := RENAMED.get(name)) is not None:
        return renamed, ""
    if (why := REFUSED.get(name)) is not None:
        return None, f"is {why}"
    if name in AIOBMSBLE_PLAIN:
        return bridge_name(name), _native_note(name)
    for suffix in _AIOBMSBLE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            plugin = name[:-len(suffix)]
            return bridge_name(plugin), _native_note(plugin) if plugin in AIOBMSBLE_NATIVE else ""
    return None, ""


def dropin_names(plugins: Iterable[str]) -> dict[str, str]:
    """The add-on's names for aiobmsble's ``plugins`` that are not batmon's type names -> batmon's type."""
    names: dict[str, str] = {name: bridge_name(name) for name in AIOBMSBLE_PLAIN}
    for plugin in plugins:
        for suffix in _AIOBMSBLE_SUFFIXES:
            names[plugin + suffix] = bridge_name(plugin)
    for plugin in plugins:
        names.pop(bridge_name(plugin), None)  # `jbd_ble` is batmon's own name of the bridge type
    return names

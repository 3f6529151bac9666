"""The bridge: every aiobmsble plugin as a batmon device type, read-only.

One type per plugin of aiobmsble (``aiobmsble.bms.<name>_bms``), named as the add-on batmon replaces names
them: ``<name>`` (``seplos``, ``renogy``, ``ecoworthy``, ...), and ``<name>_ble`` for the plugins of BMSes
batmon reads with a driver of its own (``jbd_ble``, ``jikong_ble``, ...; those native drivers can switch).
The types come from aiobmsble's catalog (:mod:`bmslib.ble.aiobmsble_plugins`), the emulators of the types
only the bridge reads from :mod:`bmslib.bms.bridge.emulators`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from bmslib.ble.aiobmsble_plugins import Plugin, PluginMatcher, catalog
from bmslib.bms.bridge.driver import BridgeDriver
from bmslib.bms.bridge.emulators import discover
from bmslib.config.original_types import AIOBMSBLE_NATIVE
from bmslib.family import DeviceType, Family, TypeDoc
from bmslib.protocol.base import AdvertisementMatcher

if TYPE_CHECKING:
    from bmslib.sim.emulator import Emulator

VIA = "aiobmsble"
#: the types named first where a list shows only a few (the most requested BMSes batmon has no driver for)
_FIRST = ("seplos", "renogy", "ecoworthy")

#: aiobmsble's sample keys -> the words doc/BMSes.md says they are read as (in this order)
_READS = (
    (("voltage", "cell_voltages"), "voltage"), (("current",), "current"), (("battery_level", "cycle_charge"), "SoC"),
    (("cell_voltages",), "cells"), (("temp_values", "temperature"), "temperatures"),
    (("chrg_mosfet", "dischrg_mosfet"), "FET states"), (("cycle_charge", "battery_level"), "remaining charge"),
    (("design_capacity",), "capacity"), (("cycles",), "cycles"), (("battery_health",), "SoH"),
    (("problem_code",), "problem code"), (("runtime",), "runtime"), (("balancer",), "balancer"),
    (("balance_current",), "balance current"), (("heater",), "heater"),
)


def type_name(plugin: str) -> str:
    """The type name of aiobmsble's plugin ``plugin``: ``<plugin>_ble`` where batmon has a driver of its own."""
    return f"{plugin}_ble" if plugin in AIOBMSBLE_NATIVE else plugin


def reads_text(keys: frozenset[str]) -> str:
    """What a plugin reads, in doc words."""
    words = [word for names, word in _READS if not keys.isdisjoint(names)]
    return ", ".join(words) or "what the plugin reports"


def advertisement_matcher(m: PluginMatcher) -> AdvertisementMatcher:
    return AdvertisementMatcher(local_name=m.local_name or None, service_uuid=m.service_uuid or None,
                                manufacturer_id=m.manufacturer_id, manufacturer_data_start=m.manufacturer_data_start,
                                oui=m.oui or None, service_data_uuid=m.service_data_uuid)


def _device_type(plugin: Plugin, emulators_by_plugin: dict[str, type[Emulator]]) -> DeviceType:
    name = type_name(plugin.name)
    native = AIOBMSBLE_NATIVE.get(plugin.name)
    what = f"{plugin.manufacturer} {plugin.model}".strip()
    devices = f"{what} (aiobmsble's `{plugin.name}` plugin)"
    if native is not None:
        devices += f"; batmon's own `{native}` can also switch"
    emulator = emulators_by_plugin.get(plugin.name)
    return DeviceType(
        name, f"{what}, read through aiobmsble", functools.partial(
            BridgeDriver, plugin=plugin.name, manufacturer=plugin.manufacturer, model=plugin.model),
        frozenset(), emulator=emulator, matchers=tuple(advertisement_matcher(m) for m in plugin.matchers),
        accepts_pin=plugin.accepts_secret, in_demo=emulator is not None, via=VIA,
        doc=TypeDoc(devices, "–", "`pin`: the BMS password" if plugin.accepts_secret else "–",
                    reads=reads_text(plugin.reads)))


def family() -> Family:
    found = discover()
    plugins = catalog()
    # the most requested first (for lists naming a few), the others only the bridge reads, then the `_ble` ones
    ordered = sorted(plugins, key=lambda p: (p.name not in _FIRST, _FIRST.index(p.name) if p.name in _FIRST else 0,
                                             p.name in AIOBMSBLE_NATIVE, p.name))
    return Family("bridge", "aiobmsble", doc_page="aiobmsble",
                  summary="read-only, through aiobmsble",
                  types=tuple(_device_type(p, found) for p in ordered))

"""Device types: found in the BMS families (``bmslib.bms.<family>``), with no list of families to edit.

Every subpackage of :mod:`bmslib.bms` is one family; its ``family()`` gives its
:class:`~bmslib.family.Family`, whose :class:`~bmslib.family.DeviceType`\\ s say everything the daemon
needs about a ``type:`` value. Adding a BMS family is adding its folder (doc/Architecture.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping

import bmslib.bms
from bmslib.config.settings import TypeInfo
from bmslib.family import DeviceType, Family


def families() -> list[Family]:
    """Every family under bmslib.bms, by package name."""
    found: list[Family] = []
    for module in sorted(pkgutil.iter_modules(bmslib.bms.__path__), key=lambda m: m.name):
        if not module.ispkg:
            continue
        package = importlib.import_module(f"{bmslib.bms.__name__}.{module.name}")
        family: Family = package.family()
        if family.name != module.name:
            raise RuntimeError(f"bmslib.bms.{module.name}.family() names itself {family.name!r}")
        found.append(family)
    return found


def device_types() -> dict[str, DeviceType]:
    """All known device types by name (family by family, each family's in its own order)."""
    types: dict[str, DeviceType] = {}
    for family in families():
        for t in family.types:
            if t.name in types:
                raise RuntimeError(f"type {t.name!r} is declared twice (family {family.name})")
            types[t.name] = t
    return types


def type_infos(types: Mapping[str, DeviceType] | None = None) -> dict[str, TypeInfo]:
    """What the config validator needs to know about each type."""
    return {name: t.info() for name, t in (types or device_types()).items()}

"""Emulators of devices only the bridge reads: one module per aiobmsble plugin, ``<plugin>.py``.

Each module speaks the device side of its plugin's protocol (written from real captures, with their provenance)
and ends with ``EMULATOR: type[Emulator] = <its class>``. :func:`discover` finds them (nothing is imported
before it is called); the bridge family attaches each to its type, which is then part of ``--demo``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bmslib.sim.emulator import Emulator


def discover() -> dict[str, type[Emulator]]:
    """Plugin name -> its emulator class, for every module of this package.

    Raises TypeError naming a module without an ``EMULATOR`` class (a module half written must not pass
    unnoticed).
    """
    from bmslib.sim.emulator import Emulator  # noqa: PLC0415 - the simulator, only when emulators are wanted

    found: dict[str, type[Emulator]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.ispkg or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        cls = getattr(module, "EMULATOR", None)
        if not (isinstance(cls, type) and issubclass(cls, Emulator)):
            raise TypeError(f"{module.__name__} has no EMULATOR (an Emulator subclass)")
        found[info.name] = cls
    return found

"""ESPHome Bluetooth proxies (``ble_stack: esphome``): batteries out of the host's range, reached through ESPHome
nodes over their native API, on aioesphomeapi, bleak-esphome and habluetooth. The rest of batmon sees a bleak
backend (:class:`ProxyBackend`) and the project's typed errors only.

:class:`ProxyManager` (``manager.py``) is the entry point; ``link.py`` is one proxy's API connection,
``bluetooth_manager.py`` habluetooth's table (contained: bleak's classes stay bleak's), ``backend.py`` the bleak
client and scanner backends, ``slots.py`` how devices share the proxies' connection slots.
"""

from __future__ import annotations

from bmslib.ble.esphome.manager import ProxyBackend, ProxyManager

__all__ = ["ProxyBackend", "ProxyManager"]

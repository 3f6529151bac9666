"""The knobs of a simulated ESPHome node, changeable at run time (tests and the demo turn them).

The actions that are events rather than settings (drop every API session, reboot) are methods of
:class:`~bmslib.sim.esphome.node.EsphomeNode`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aioesphomeapi import BluetoothProxyFeature as ProxyFeature

#: what ``bluetooth_proxy: active: true`` reports on a current ESP32 build (without scanner state/mode)
ACTIVE_PROXY = (ProxyFeature.PASSIVE_SCAN | ProxyFeature.ACTIVE_CONNECTIONS | ProxyFeature.REMOTE_CACHING
                | ProxyFeature.PAIRING | ProxyFeature.CACHE_CLEARING | ProxyFeature.RAW_ADVERTISEMENTS)


@dataclass
class NodeKnobs:
    """Settings of one node; every change applies from the next message, connect or advertisement round."""

    name: str = "proxy-1"
    mac: str = "24:0A:C4:00:00:01"  # the node's network MAC (its Bluetooth MAC is this + 2, as on an ESP32)
    #: the API encryption key (base64, 32 bytes); None: plaintext API. Applies to sessions opened after it.
    noise_psk: str | None = None
    feature_flags: int = int(ACTIVE_PROXY)
    #: Bluetooth connection slots (an ESP32 build has 3 by default)
    slots: int = 3
    #: the RSSI the node hears a device at, by MAC (upper case); missing: the device's own advertised RSSI
    rssi: dict[str, int] = field(default_factory=dict)
    #: the address type the node reports for a device, by MAC (upper case): 0 public (the default), 1 random
    address_type: dict[str, int] = field(default_factory=dict)
    #: MACs (upper case) the node does not hear: not reported, connects to them fail
    not_heard: set[str] = field(default_factory=set)
    #: accept TCP connections and close them at once (an API that refuses clients)
    refuse_api: bool = False
    #: [s] between advertisement reports
    advert_interval: float = 0.1
    #: [s] a connect to a device the node does not hear takes before it fails (the firmware waits ~20 s)
    connect_fail_after: float = 0.5
    esphome_version: str = "2025.11.0"
    model: str = "esp32dev"

    @property
    def bluetooth_mac(self) -> str:
        value = (int(self.mac.replace(":", ""), 16) + 2) & 0xFFFFFFFFFFFF
        return ":".join(f"{(value >> s) & 0xFF:02X}" for s in range(40, -8, -8))

"""The validated configuration: frozen dataclasses built by :func:`bmslib.config.parse_config`.

Modules that need one of them import it from here, without the parser. ``topic_prefix`` and
``mqtt_node_id`` (MQTT topic naming, :mod:`bmslib.mqtt.topics`) are re-exported here because the
uniqueness check of aliases uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from bmslib.mqtt.topics import mqtt_node_id, topic_prefix
from bmslib.sim.knobs import KnobValues

__all__ = ["mqtt_node_id", "topic_prefix"]  # re-exported (see above); the rest is defined here

#: Group device types (virtual devices built from other devices' samples) and how each combines its
#: members: the one list of group types (config validation, the group driver, the add-on schema tests).
GROUP_MODES: Final[Mapping[str, Literal["parallel", "serial"]]] = MappingProxyType(
    {"group_parallel": "parallel", "group_serial": "serial"})
#: ``type: auto`` (also a device entry without ``type``): the type is detected from the advertisement at run time
#: (bmslib/auto_type.py)
AUTO_TYPE: Final = "auto"
#: Device types that config itself knows: the group types.
GROUP_TYPES: Final = tuple(GROUP_MODES)


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """What config needs to know about a device type (the driver registry provides one per type)."""

    name: str
    switches: frozenset[str]  # switch names the type can set ("charge", "discharge", "balance")
    accepts_pin: bool = False  # pairs with a PIN
    accepts_key: bool = False  # reads encrypted advertisements with a key (Victron Instant Readout)
    #: what is wrong with a PIN for this type (the message never contains the PIN), None when it will do
    pin_problem: Callable[[str], str | None] | None = None


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One validated ``devices`` entry.

    ``address`` is normalised: a MAC in upper case with ':', ``sim:<id>``, a CoreBluetooth UUID in
    upper case, a BLE name as written; for a group, the member list as written, with ``members``
    holding the members' aliases. ``index`` is the entry's position in the file's list. ``sim_knobs``: the
    knobs of a ``sim:<id>?<knobs>`` address (:mod:`bmslib.sim.knobs`), whose ``address`` is ``sim:<id>``.
    """

    address: str
    type: str
    alias: str
    pin: str | None = field(repr=False)
    key: str | None = field(repr=False)
    adapter: str | None
    debug: bool
    current_calibration: float
    algorithm: str | None
    keep_alive: bool | None  # None: the global keep_alive applies
    members: tuple[str, ...]
    index: int
    soc_calibration_days: float | None = None  # None: the algorithm's default (14)
    sim_knobs: KnobValues = ()
    alias_from_address: bool = False  # no alias configured: ``alias`` is the address's default

    @property
    def is_group(self) -> bool:
        return self.type in GROUP_TYPES

    @property
    def is_sim(self) -> bool:
        return self.address.startswith("sim:")

    @property
    def sim_id(self) -> str | None:
        return self.address[4:] if self.is_sim else None


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """One validated ``bluetooth_proxies`` entry: an ESPHome node with ``bluetooth_proxy`` reached over its
    native API. ``name`` is the host unless one is configured; ``noise_psk`` (the API encryption key, base64
    of 32 bytes) is a secret and never in a ``repr``."""

    host: str
    port: int
    noise_psk: str | None = field(repr=False)
    name: str


#: The Bluetooth stacks ``ble_stack`` chooses between: the host's adapters through bleak, or ESPHome proxies.
BleStack = Literal["bleak", "esphome"]


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    tls: bool
    ca_cert: str | None
    discovery_prefix: str


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    url: str  # always set, built from host, port and ssl when only a host was given
    token: str | None = field(repr=False)
    org: str | None
    bucket: str | None
    username: str | None
    password: str | None = field(repr=False)
    database: str | None
    verify_ssl: bool
    api: Literal["v2", "v1"]  # v2: token, org, bucket; v1: database (InfluxDB 1.8 API)


@dataclass(frozen=True, slots=True)
class AppConfig:
    devices: tuple[DeviceConfig, ...]
    mqtt: MqttConfig | None  # None: no broker configured, samples go to the console
    influxdb: InfluxConfig | None
    concurrent_sampling: bool
    keep_alive: bool
    sample_period: float
    publish_period: float
    invert_current: bool
    expire_values_after: float
    watchdog: bool
    bt_power_cycle: bool
    verbose_log: bool
    source: str  # the file (or other origin) the options came from
    warnings: tuple[str, ...]
    ble_stack: BleStack = "bleak"
    bluetooth_proxies: tuple[ProxyConfig, ...] = ()

    def keep_alive_for(self, device: DeviceConfig) -> bool:
        """The device's own keep_alive if it sets one, else the global one."""
        return self.keep_alive if device.keep_alive is None else device.keep_alive


def accept_any_algorithm(text: str) -> str | None:
    """The default ``validate_algorithm`` hook: accepts every algorithm string."""
    return None


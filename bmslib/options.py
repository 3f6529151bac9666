"""Every option batmon accepts, as data: name, kind, default, bounds, environment fallback, one-line doc.

This table is the single source of truth: the loader (:mod:`bmslib.config`) reads every option
through it, a key not in it is unknown, and the add-on schema (``config.yaml``), the translations
and ``doc/Configuration.md`` are checked against it by tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

Kind = Literal["bool", "int", "float", "str", "list"]
Default = bool | int | float | str | tuple[()] | None


@dataclass(frozen=True, slots=True)
class Option:
    """One option: how it is named, typed, defaulted, bounded and documented.

    ``default`` is the value used when the option is absent (``None``: optional without a default);
    ``required`` options have no default. Numbers are checked against ``minimum`` (``> minimum``
    if ``exclusive_minimum``, else ``>=``), ``maximum`` and ``nonzero``. ``env`` names the
    environment variable used when the option is absent or empty. ``ignored`` is set for options of
    the add-on we replace that we accept but do not use: the reason, shown in a warning when the
    value asks for something other than ``default``. ``items`` describes the entries of a list of
    mappings (``devices``, ``bluetooth_proxies``).
    """

    name: str
    kind: Kind
    doc: str
    default: Default = None
    required: bool = False
    secret: bool = False
    minimum: int | float | None = None
    exclusive_minimum: bool = False
    maximum: int | float | None = None
    nonzero: bool = False
    env: str | None = None
    example: str | int | float | None = None
    ignored: str | None = None
    items: tuple[Option, ...] = ()


DEVICE_OPTIONS: Final = (
    Option("address", "str", "MAC address, BLE name or sim:<id>; for a group: its members, comma-separated",
           required=True, example="D6:6C:0A:61:14:30"),
    Option("type", "str", "Device type (BMS protocol); auto: detected from the advertisement; or "
           "group_parallel / group_serial", default="auto", example="jbd"),
    Option("alias", "str", "Name in MQTT topics and Home Assistant; default: derived from the address",
           example="battery1"),
    Option("pin", "str", "Victron: pairing PIN (GATT mode); JBD, ANT: the BMS password", secret=True),
    Option("key", "str", "Victron Instant Readout encryption key (32 hex digits)", secret=True),
    Option("adapter", "str", "Bluetooth adapter to use: hciN, the adapter's MAC address, or a proxy's name",
           example="hci1"),
    Option("debug", "bool", "Debug log for this device", default=False),
    Option("current_calibration", "float", "Factor applied to the current and power (-1 flips the sign)",
           default=1.0, nonzero=True, example=1.02),
    Option("algorithm", "str", "Charge control algorithm, e.g. 'soc 90% 80%'", example="soc 90% 80%"),
    Option("soc_calibration_days", "float",
           "With an algorithm: days between full charges for SoC calibration; default 14, 0: never",
           minimum=0, example=30),
    Option("keep_alive", "bool", "Overrides the global keep_alive for this device"),
    Option("note", "str", "Free text for your own reference; not used"),
)

PROXY_OPTIONS: Final = (
    Option("host", "str", "The ESPHome node's host name or IP address", required=True, example="192.168.1.20"),
    Option("port", "int", "Its native API port", default=6053, minimum=1, maximum=65535, example=6053),
    Option("noise_psk", "str", "Its API encryption key (base64 of 32 bytes); leave out if it has none",
           secret=True),
    Option("name", "str", "Its name in logs, scan and a device's adapter option; default: the host",
           example="shed-proxy"),
)

OPTIONS: Final = (
    Option("devices", "list", "The devices (BMS) and virtual groups to read, one entry each",
           default=(), items=DEVICE_OPTIONS),
    Option("mqtt_broker", "str", "MQTT broker host, or host:port; default: the Home Assistant MQTT service",
           env="MQTT_HOST", example="192.168.1.10:1883"),
    Option("mqtt_port", "int", "MQTT broker port; default: 1883, or 8883 with mqtt_tls",
           minimum=1, maximum=65535, env="MQTT_PORT", example=1884),
    Option("mqtt_user", "str", "MQTT user name; default: that of the Home Assistant MQTT service",
           env="MQTT_USER", example="batmon"),
    Option("mqtt_password", "str", "MQTT password; default: that of the Home Assistant MQTT service",
           secret=True, env="MQTT_PASSWORD"),
    Option("mqtt_tls", "bool", "Connect to the MQTT broker with TLS", default=False),
    Option("mqtt_ca_cert", "str", "CA certificate file (PEM) for mqtt_tls; default: the system's CAs",
           example="/ssl/ca.pem"),
    Option("mqtt_discovery_prefix", "str", "Home Assistant MQTT discovery prefix",
           default="homeassistant", example="ha"),
    Option("concurrent_sampling", "bool", "Sample all devices at the same time, not one after another",
           default=False),
    Option("keep_alive", "bool", "Stay connected between samples (false: connect for every sample)",
           default=True),
    Option("sample_period", "float", "Seconds between two samples of a device",
           default=1.0, minimum=0, exclusive_minimum=True, example=5.0),
    Option("publish_period", "float", "Seconds between MQTT publishes of a device; samples between are averaged",
           default=1.0, minimum=0, exclusive_minimum=True, example=10.0),
    Option("invert_current", "bool",
           "Publish current and power positive while charging (false: positive while discharging)",
           default=True),
    Option("expire_values_after", "float",
           "Seconds until Home Assistant shows a value as unavailable; 0: never",
           default=20.0, minimum=0, example=60.0),
    Option("watchdog", "bool",
           "Exit (to be restarted) when no device produced a sample for 5 min (or 10 sample periods)",
           default=True),
    Option("bt_power_cycle", "bool", "Switch the Bluetooth adapter off and on at start", default=False),
    Option("verbose_log", "bool", "Debug log for everything", default=False),
    Option("influxdb_url", "str", "InfluxDB URL; enables InfluxDB", example="http://192.168.1.10:8086"),
    Option("influxdb_host", "str", "InfluxDB host, instead of influxdb_url; enables InfluxDB",
           example="192.168.1.10"),
    Option("influxdb_port", "int", "InfluxDB port, with influxdb_host",
           default=8086, minimum=1, maximum=65535, example=8087),
    Option("influxdb_token", "str", "InfluxDB 2 API token", secret=True),
    Option("influxdb_org", "str", "InfluxDB 2 organisation", example="home"),
    Option("influxdb_bucket", "str", "InfluxDB 2 bucket", example="batmon"),
    Option("influxdb_username", "str", "InfluxDB 1.8 user name", example="batmon"),
    Option("influxdb_password", "str", "InfluxDB 1.8 password", secret=True),
    Option("influxdb_database", "str", "InfluxDB 1.8 database", example="batmon"),
    Option("influxdb_ssl", "bool", "Use https, with influxdb_host", default=False),
    Option("influxdb_verify_ssl", "bool", "Verify the InfluxDB server's certificate", default=True),
    Option("telemetry", "bool", "Not used: batmon never uploads anything", default=False,
           ignored="batmon never uploads anything"),
    Option("ble_stack", "str", "bleak: the host's Bluetooth adapters; esphome: the bluetooth_proxies only",
           default="bleak", example="esphome"),
    Option("bluetooth_proxies", "list", "ESPHome Bluetooth proxies (with ble_stack: esphome), one entry each",
           default=(), items=PROXY_OPTIONS),
    Option("install_newer_bleak", "bool", "Not used: the bleak version is fixed in the image", default=False,
           ignored="the bleak version is fixed in the image"),
)

#: Default of every top-level option that has one (options kept only for compatibility excluded).
OPTION_DEFAULTS: Final[Mapping[str, Default]] = MappingProxyType(
    {o.name: o.default for o in OPTIONS if o.default is not None and o.ignored is None})
#: Default of every option of a bluetooth_proxies entry that has one.
PROXY_OPTION_DEFAULTS: Final[Mapping[str, Default]] = MappingProxyType(
    {o.name: o.default for o in PROXY_OPTIONS if o.default is not None})
#: Default of every per-device option that has one.
DEVICE_OPTION_DEFAULTS: Final[Mapping[str, Default]] = MappingProxyType(
    {o.name: o.default for o in DEVICE_OPTIONS if o.default is not None and o.ignored is None})

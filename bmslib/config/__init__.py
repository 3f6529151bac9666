"""Configuration: find the options file, validate it, and turn it into frozen dataclasses.

The option tables :data:`OPTIONS` (top level) and :data:`DEVICE_OPTIONS` (one ``devices`` entry), in
:mod:`bmslib.options`, are the single source of truth: the parser reads every option through them (names,
kinds, defaults, bounds, environment fallbacks), a key not in them is unknown, and the add-on schema and
the configuration docs are checked against them.

Validation collects every problem first and then raises one :class:`~bmslib.errors.ConfigError`
with one line per problem, ``<path>: <problem>`` (``devices[1].type: 'jkk' is not a known type
(...)``). Non-fatal remarks (unknown keys, options kept only for compatibility, skipped entries) go
to :attr:`AppConfig.warnings`; the caller logs them. Secret values (PINs, keys, passwords, tokens)
never appear in a message, a warning or a ``repr``.

Value types are strict: a bool option takes ``true``/``false`` (YAML's native bools), not the string
``"yes"``; a number option takes a number, not a quoted one; an integer option rejects ``1.5``; a
string option rejects an unquoted number (``pin: 1234``) rather than guess how YAML mangled it
(``0123`` is octal there). An empty string counts as absent, so the environment fallbacks and the
defaults apply.

The package, one module per job: :mod:`~bmslib.config.settings` (the frozen dataclasses),
:mod:`~bmslib.config.files` (finding and reading the file), :mod:`~bmslib.config.option_reader` (reading
options through a table), :mod:`~bmslib.config.formats` (addresses, host:port, topic levels),
:mod:`~bmslib.config.devices` (the ``devices`` list) and :mod:`~bmslib.config.parse` (the top level,
MQTT, InfluxDB). The names below are its public interface.
"""

from __future__ import annotations

from bmslib.config.files import DEFAULT_SEARCH, load_config, read_options_file
from bmslib.config.parse import parse_config
from bmslib.config.settings import (
    GROUP_MODES,
    GROUP_TYPES,
    AppConfig,
    DeviceConfig,
    InfluxConfig,
    MqttConfig,
    TypeInfo,
    accept_any_algorithm,
    mqtt_node_id,
    topic_prefix,
)
from bmslib.errors import ConfigError
from bmslib.options import DEVICE_OPTION_DEFAULTS, DEVICE_OPTIONS, OPTION_DEFAULTS, OPTIONS, Option

__all__ = [
    "DEFAULT_SEARCH",
    "DEVICE_OPTIONS",
    "DEVICE_OPTION_DEFAULTS",
    "GROUP_MODES",
    "GROUP_TYPES",
    "OPTIONS",
    "OPTION_DEFAULTS",
    "AppConfig",
    "ConfigError",
    "DeviceConfig",
    "InfluxConfig",
    "MqttConfig",
    "Option",
    "TypeInfo",
    "accept_any_algorithm",
    "load_config",
    "mqtt_node_id",
    "parse_config",
    "read_options_file",
    "topic_prefix",
]

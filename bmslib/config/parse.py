"""Loaded options -> a validated :class:`~bmslib.config.settings.AppConfig`: the top level, MQTT and InfluxDB.

The devices are validated by :mod:`bmslib.config.devices`; every option is read through
:mod:`bmslib.config.option_reader`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from bmslib.config.devices import DeviceParser
from bmslib.config.formats import PORT, split_host_port, topic_level_problem, url_host
from bmslib.config.option_reader import Report, Section, show, type_word
from bmslib.config.proxies import parse_ble_stack, parse_proxies
from bmslib.config.settings import AppConfig, InfluxConfig, MqttConfig, TypeInfo, accept_any_algorithm
from bmslib.errors import ConfigError
from bmslib.options import OPTIONS


def parse_config(
    data: object,
    *,
    source: str,
    env: Mapping[str, str],
    types: Mapping[str, TypeInfo],
    validate_algorithm: Callable[[str], str | None] = accept_any_algorithm,
) -> AppConfig:
    """Validate loaded options (a mapping, as from :func:`read_options_file`) into an :class:`AppConfig`.

    ``env`` supplies the MQTT fallbacks (``MQTT_HOST``, ``MQTT_PORT``, ``MQTT_USER``,
    ``MQTT_PASSWORD``); ``types`` every known device type; ``validate_algorithm`` returns a problem
    text for an algorithm string, or None. Raises :class:`ConfigError` listing every problem.
    """
    if not isinstance(data, Mapping):
        what = "an empty file" if data is None else type_word(data)
        raise ConfigError([f"{source}: expected a mapping of options at the top level, got {what}"])
    report = Report()
    top = Section(data, OPTIONS, "", report)
    top.check_unknown_keys()
    stack = parse_ble_stack(top)
    proxies = parse_proxies(top, report, stack)
    devices = DeviceParser(top, types, validate_algorithm, report, stack=stack,
                           proxy_names=tuple(p.name for p in proxies)).parse()
    mqtt = _parse_mqtt(top, env)
    config = AppConfig(  # arguments in the table's order, so that problems come in that order too
        devices=devices,
        mqtt=mqtt,
        concurrent_sampling=top.flag("concurrent_sampling"),
        keep_alive=top.flag("keep_alive"),
        sample_period=top.number("sample_period"),
        publish_period=top.number("publish_period"),
        invert_current=top.flag("invert_current"),
        expire_values_after=top.number("expire_values_after"),
        watchdog=top.flag("watchdog"),
        bt_power_cycle=top.flag("bt_power_cycle"),
        verbose_log=top.flag("verbose_log"),
        influxdb=_parse_influxdb(top),
        source=source,
        warnings=(),
        ble_stack=stack,
        bluetooth_proxies=proxies,
    )
    top.check_ignored()
    if report.problems:
        raise ConfigError(report.problems, warnings=report.warnings)
    return replace(config, warnings=tuple(report.warnings))


def _parse_mqtt(top: Section, env: Mapping[str, str]) -> MqttConfig | None:
    broker = top.opt_text("mqtt_broker")
    port = top.opt_integer("mqtt_port")
    # The Supervisor's broker credentials (MQTT_USER, MQTT_PASSWORD, MQTT_PORT) belong to the Supervisor's
    # broker: they apply only when the broker itself comes from MQTT_HOST, never to a user's own broker.
    from_env = broker is None and top.env_value("mqtt_broker", env) is not None
    user = top.opt_text("mqtt_user") or (top.env_value("mqtt_user", env) if from_env else None)
    password = top.opt_text("mqtt_password") or (top.env_value("mqtt_password", env) if from_env else None)
    tls = top.flag("mqtt_tls")
    ca_cert = top.opt_text("mqtt_ca_cert")
    prefix = top.text("mqtt_discovery_prefix")
    if (problem := topic_level_problem(prefix)) is not None:
        top.problem("mqtt_discovery_prefix", f"{show(prefix)} {problem}")
    if ca_cert is not None:
        if not _readable_file(ca_cert):
            top.problem("mqtt_ca_cert", f"file {show(ca_cert)} does not exist")
        elif not tls:
            top.warn("mqtt_ca_cert", "not used, because mqtt_tls is false")

    host: str | None = None
    host_port: int | None = None
    if broker is not None:
        host, host_port, problem = split_host_port(broker)
        if problem is not None:
            top.problem("mqtt_broker", problem)
    elif (env_host := top.env_value("mqtt_broker", env)) is not None:
        host, host_port, problem = split_host_port(env_host)
        if problem is not None:
            top.problem("mqtt_broker", f"from the environment ({top.option('mqtt_broker').env}): {problem}")
    configured = any(top.is_set(o.name) for o in OPTIONS if o.name.startswith("mqtt_"))
    if not host and not configured:
        return None
    if port is None:
        port = host_port or (_env_port(top, env) if from_env else None) or (8883 if tls else 1883)
    return MqttConfig(host=host or "127.0.0.1", port=port, user=user, password=password, tls=tls,
                      ca_cert=ca_cert, discovery_prefix=prefix)


def _readable_file(name: str) -> bool:
    try:
        return Path(name).is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte
        return False


def _env_port(top: Section, env: Mapping[str, str]) -> int | None:
    text = top.env_value("mqtt_port", env)
    if text is None:
        return None
    if PORT.fullmatch(text) and 1 <= int(text) <= 65535:
        return int(text)
    top.problem("mqtt_port", f"from the environment ({top.option('mqtt_port').env}): "
                             f"expected an integer 1..65535, got {show(text)}")
    return None


def _parse_influxdb(top: Section) -> InfluxConfig | None:
    url = top.opt_text("influxdb_url")
    host = top.opt_text("influxdb_host")
    port = top.integer("influxdb_port")
    ssl = top.flag("influxdb_ssl")
    verify_ssl = top.flag("influxdb_verify_ssl")
    v2 = {n: top.opt_text(n) for n in ("influxdb_token", "influxdb_org", "influxdb_bucket")}
    v1 = {n: top.opt_text(n) for n in ("influxdb_database", "influxdb_username", "influxdb_password")}
    if url is None and host is None:
        stray = [o.name for o in OPTIONS if o.name.startswith("influxdb_") and top.is_set(o.name)]
        if stray:
            ignoring = ", ".join(stray)
            top.warn("influxdb_url", f"not set (nor influxdb_host), so InfluxDB is off; ignoring {ignoring}")
        return None

    enabler = "influxdb_url" if url is not None else "influxdb_host"
    if url is not None:
        if host is not None:
            top.problem("influxdb_host", "set either influxdb_url or influxdb_host, not both")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            top.problem("influxdb_url", f"{show(url)} is not an http:// or https:// URL")
        for name in ("influxdb_port", "influxdb_ssl"):
            if top.is_set(name):
                top.warn(name, "ignored, because influxdb_url is set")
    elif host is not None:
        host_only, host_port, problem = split_host_port(host)
        if problem is not None:
            top.problem("influxdb_host", problem)
        if host_port is not None and not top.is_set("influxdb_port"):
            port = host_port
        url = f"{'https' if ssl else 'http'}://{url_host(host_only)}:{port}"

    api: Literal["v2", "v1"] = "v2"
    if v1["influxdb_database"] is not None and any(v2.values()):
        top.problem("influxdb_database", "set either influxdb_database (InfluxDB 1.8) or influxdb_token, "
                                         "influxdb_org and influxdb_bucket (InfluxDB 2), not both")
    elif any(v2.values()):
        for name, value in v2.items():
            if value is None:
                top.problem(name, "is required for InfluxDB 2 "
                                  "(influxdb_token, influxdb_org and influxdb_bucket)")
        for name in ("influxdb_username", "influxdb_password"):
            if v1[name] is not None:
                top.warn(name, "ignored: used only with influxdb_database (InfluxDB 1.8)")
    elif v1["influxdb_database"] is not None:
        api = "v1"
    else:
        top.problem(enabler, "InfluxDB needs influxdb_token, influxdb_org and influxdb_bucket (InfluxDB 2) "
                             "or influxdb_database (InfluxDB 1.8)")
    return InfluxConfig(
        url=url or "", token=v2["influxdb_token"], org=v2["influxdb_org"], bucket=v2["influxdb_bucket"],
        username=v1["influxdb_username"], password=v1["influxdb_password"], database=v1["influxdb_database"],
        verify_ssl=verify_ssl, api=api,
    )

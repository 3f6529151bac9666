"""Devices without ``alias``: named after their advertised Bluetooth name, as the add-on batmon replaces did.

That add-on keyed a device without alias (topics, unique ids, meter totals) by the name it advertised in
the scan at start. batmon does the same: the names seen are remembered in the state directory
(``NAMES_FILE``), so a device keeps its name when it is out of range at a later start; a device never
seen keeps the default alias from its address until it is. Pure functions; the caller scans and keeps
the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from bmslib.config.formats import topic_level_problem
from bmslib.config.option_reader import show
from bmslib.config.settings import AppConfig, mqtt_node_id, topic_prefix

#: the file in the state directory that remembers advertised names: ``{"<MAC>": "<name>", ...}``
NAMES_FILE = "advertised_names.json"


def unnamed(config: AppConfig) -> list[str]:
    """Addresses of the devices that take their alias from an advertised name (no alias configured)."""
    return [d.address for d in config.devices if d.alias_from_address and not d.is_sim]


def with_advertised_names(config: AppConfig, names: Mapping[str, str]) -> tuple[AppConfig, list[str]]:
    """``config`` with each device without alias named after ``names[address]`` (address in upper case),
    and one log line per such device saying which name it has and why.

    A name that cannot be an alias (see the alias option), or that gives another device's topics, is not
    used: the device keeps its default alias, and the line says so."""
    names = {address.upper(): name.strip() for address, name in names.items()}
    lines: list[str] = []
    renamed: dict[str, str] = {}  # default alias -> advertised name
    taken = {d.alias.casefold() for d in config.devices} | {topic_prefix(d.alias) for d in config.devices} \
        | {mqtt_node_id(topic_prefix(d.alias)) for d in config.devices}
    devices = []
    for d in config.devices:
        if not d.alias_from_address or d.is_sim:
            devices.append(d)
            continue
        where = f"devices[{d.index}]"
        name = names.get(d.address.upper())
        if not name:
            lines.append(f"{where}: no alias, and {d.address} has not been seen advertising a name yet: its topics "
                         f"and meters are {show(d.alias)} for now (batmon-ha used the advertised name); set alias "
                         "to fix the name")
        elif (problem := topic_level_problem(name)) is not None:
            lines.append(f"{where}: no alias, and the advertised name {show(name)} {problem}: using {show(d.alias)}; "
                         "set alias")
        elif {name.casefold(), topic_prefix(name), mqtt_node_id(topic_prefix(name))} & taken:
            lines.append(f"{where}: no alias, and the advertised name {show(name)} gives the topics of another "
                         f"device: using {show(d.alias)}; set alias")
        else:
            taken |= {name.casefold(), topic_prefix(name), mqtt_node_id(topic_prefix(name))}
            renamed[d.alias] = name
            lines.append(f"{where}: no alias: named {show(name)} after its advertised name, as batmon-ha did")
            devices.append(dataclasses.replace(d, alias=name))
            continue
        devices.append(d)
    if renamed:
        devices = [dataclasses.replace(d, members=tuple(renamed.get(m, m) for m in d.members)) if d.members else d
                   for d in devices]
    return dataclasses.replace(config, devices=tuple(devices)), lines

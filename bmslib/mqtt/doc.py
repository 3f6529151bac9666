"""The entity table of doc/MQTT.md, generated from the entity table itself (tests/test_mqtt_doc.py
checks that the page holds what this builds)."""

from __future__ import annotations

from bmslib.entities import (
    DIAGNOSTICS,
    METER_NAMES,
    SAMPLE_ENTITIES,
    EntityDescription,
    cell_entities,
    meter_entities,
    switch_entities,
    temperature_entities,
)
from bmslib.mqtt.topics import DeviceTopics


def _doc_rows() -> list[tuple[EntityDescription, dict[str, str], str]]:
    """(description, textual substitutions, when published) for every kind of entity, in doc order."""
    rows: list[tuple[EntityDescription, dict[str, str], str]] = []
    for d in SAMPLE_ENTITIES:
        rows.append((d, {}, "when the device reports it"))
    cell = cell_entities(1)[0]
    rows.append((cell, {"cell_voltages/1": "cell_voltages/<i>", "cell_voltages_1": "cell_voltages_<i>",
                        "Cell Volt 1": "Cell Volt <i>"}, "per cell, i = 1..n; the name pads i to the digits of n"))
    for d in cell_entities(2)[2:]:
        rows.append((d, {}, "more than one cell"))
    rows.append((temperature_entities(1)[0], {"/1": "/<i>", "_1": "_<i>", "Temperatures 1": "Temperatures <i>"},
                 "per temperature probe, i = 1..n"))
    sw = {"charge": "<name>"}
    for d in switch_entities(["charge"], {"charge"}):
        rows.append((d, sw, "per switch batmon can set (charge, discharge, balance)" if d.component == "switch"
                     else "per switch reported; disabled by default where a switch entity exists"))
    when = {"diag/rssi": "when the RSSI is known", "diag/algorithm": "with an algorithm configured"}
    for d in DIAGNOSTICS:
        rows.append((d, {}, when.get(d.key, "always")))
    for d in meter_entities(METER_NAMES):
        rows.append((d, {}, "once the meters have a value"))
    return rows


def entity_table_markdown(alias: str = "battery1", discovery_prefix: str = "homeassistant") -> str:
    """The Markdown table of every entity batmon can publish for a device ``alias``."""
    topics = DeviceTopics.for_alias(alias, discovery_prefix)
    columns = ("state topic", "discovery topic", "unique_id", "name", "component", "unit", "device_class",
               "state_class", "precision", "category", "published")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for d, subst, when in _doc_rows():
        names = [topics.state(d), topics.discovery(d), topics.unique_id(d), d.name]
        for old, new in subst.items():
            names = [n.replace(old, new) for n in names]
        cells = [f"`{n}`" for n in names[:3]] + [names[3], d.component, d.unit or "", d.device_class or "",
                                                d.state_class or "", "" if d.precision is None else str(d.precision),
                                                d.entity_category or "", when]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

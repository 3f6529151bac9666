"""doc/MQTT.md is a golden file: its entity table is what the code publishes, its numbers are the code's."""

from __future__ import annotations

import os
from pathlib import Path

import mqtt_util
from bmslib import publishing
from bmslib.entities import METER_NAMES, SAMPLE_ENTITIES
from bmslib.mqtt import record
from bmslib.mqtt.doc import entity_table_markdown

DOC = Path(__file__).resolve().parents[1] / "doc" / "MQTT.md"
BEGIN, END = "<!-- entity table", "<!-- end of entity table -->"


def split_doc() -> tuple[str, str, str]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("-->\n", text.index(BEGIN)) + 4
    end = text.index(END)
    return text[:start], text[start:end], text[end:]


def test_entity_table_is_what_the_code_publishes() -> None:
    head, table, tail = split_doc()
    generated = entity_table_markdown()
    if os.environ.get("BATMON_UPDATE_GOLDEN") == "1":
        DOC.write_text(head + generated + tail, encoding="utf-8")
        table = generated
    assert table == generated, "doc/MQTT.md is out of date: run the tests with BATMON_UPDATE_GOLDEN=1"


def test_table_lists_every_entity_kind() -> None:
    _, table, _ = split_doc()
    for d in SAMPLE_ENTITIES:
        assert f"`battery1/{d.key}`" in table
    for name in METER_NAMES:
        assert f"`battery1/meter/{name}`" in table
    assert "`homeassistant/switch/battery1/<name>/config`" in table


def test_numbers_in_the_prose_are_the_codes() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"At most {mqtt_util.COMMANDS_PER_WINDOW} commands per {mqtt_util.COMMAND_WINDOW:g} s per device" in text
    assert f"after its first {mqtt_util.PRUNE_AFTER} publishes" in text
    assert f"for {publishing.SWITCH_ECHO:g} s after a command" in text
    assert f"min(expire_values_after / 2, {publishing.HEARTBEAT_MAX:g})" in text
    assert f"and {mqtt_util.BIRTH_DELAY:g} s after Home Assistant" in text
    assert f"`{record.RECORD_FILE}`" in text
    assert f"all its states follow at\n  once and again {publishing.SETTLE:g} s later" in text

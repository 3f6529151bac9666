"""aiobmsble's plugin catalog and the bridge family's types built from it.

The advertisements used here are aiobmsble's own test captures (package data of aiobmsble 0.31.0,
``aiobmsble/test_data/*_bms.json``, Apache-2.0, each entry with its source in ``_comments``); they check that
batmon's matchers, converted from the plugins' patterns, decide as aiobmsble's own matching does.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from aiobmsble import utils as aiobmsble_utils
from aiobmsble.test_data import bms_advertisements

from bmslib.ble.aiobmsble_plugins import catalog, plugin_class
from bmslib.bms import bridge
from bmslib.bms.bridge import advertisement_matcher, type_name
from bmslib.config.original_types import AIOBMSBLE_NATIVE
from bmslib.registry import device_types, families


def test_the_catalog_finds_every_plugin_but_the_dummy() -> None:
    plugins = {p.name: p for p in catalog()}
    assert len(plugins) >= 45
    assert "dummy" not in plugins
    for name in ("seplos", "seplos_v2", "renogy", "renogy_pro", "ecoworthy", "redodo", "tdt", "pace", "cbtpwr",
                 "jbd", "jikong", "daly", "ant", "ant_leg", "abc", "ej"):
        assert name in plugins, name
    assert plugins["seplos"].manufacturer == "Seplos" and plugins["seplos"].model == "smart BMS V3"
    assert {"voltage", "current", "cell_voltages"} <= plugins["jbd"].reads
    assert plugins["jbd"].accepts_secret and not plugins["seplos"].accepts_secret
    assert catalog() is catalog()  # cached per process


def test_matchers_are_plain_values() -> None:
    for plugin in catalog():
        assert plugin.matchers, plugin.name
        for m in plugin.matchers:
            assert isinstance(m.manufacturer_data_start, bytes)
            assert m.service_uuid is None or m.service_uuid == m.service_uuid.lower()
    (epoch,) = next(p for p in catalog() if p.name == "epoch_pro").matchers
    assert epoch.service_data_uuid == "00003333-0000-1000-8000-00805f9b34fb"
    dometic = next(p for p in catalog() if p.name == "dometic").matchers[0]
    assert (dometic.manufacturer_id, dometic.manufacturer_data_start) == (2117, bytes([20, 133]))


def test_nothing_is_imported_before_the_catalog_is_asked_for() -> None:
    code = ("import sys, bmslib.ble.aiobmsble_plugins, bmslib.bms.bridge; "
            "print(sorted(m for m in sys.modules if m.startswith('aiobmsble.bms.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_plugin_class_refuses_what_is_no_plugin() -> None:
    for name in ("dummy", "nonesuch", "../etc", "basebms"):
        with pytest.raises(ValueError, match="no aiobmsble plugin"):
            plugin_class(name)


def test_one_type_per_plugin_named_as_the_original_add_on_names_them() -> None:
    types = device_types()
    bridged = {n: t for n, t in types.items() if t.via == "aiobmsble"}
    assert len(bridged) == len(catalog())
    for plugin in catalog():
        name = f"{plugin.name}_ble" if plugin.name in AIOBMSBLE_NATIVE else plugin.name
        assert type_name(plugin.name) == name and name in bridged
        t = bridged[name]
        assert t.switches == frozenset() and t.doc is not None and t.doc.switches == "–"
        assert t.doc.reads and t.accepts_pin == plugin.accepts_secret
    assert {"jbd_ble", "jikong_ble", "daly_ble", "ant_ble", "ant_leg_ble", "abc_ble", "ej_ble"} <= set(bridged)
    assert {"seplos", "renogy", "ecoworthy"} <= set(bridged)
    assert types["jbd"].via == "native" and types["jk"].via == "native"
    (fam,) = [f for f in families() if f.name == "bridge"]
    assert fam.display_name == "aiobmsble" and fam.doc_page == "aiobmsble" and fam.types[0].name == "seplos"
    assert [t.name for t in bridge.family().types] == [t.name for t in fam.types]


def test_converted_matchers_decide_as_aiobmsble_does_on_its_captured_advertisements() -> None:
    checked = 0
    for plugin in catalog():
        cls = plugin_class(plugin.name)
        for adv, mac, _kind, _comments in bms_advertisements():
            for pattern, ours in zip(cls.matcher_dict_list(), plugin.matchers, strict=True):
                theirs = aiobmsble_utils._advertisement_matches(pattern, adv, mac)
                mine = advertisement_matcher(ours).matches(
                    address=mac, name=adv.local_name, service_uuids=adv.service_uuids,
                    manufacturer_data=adv.manufacturer_data, service_data_uuids=list(adv.service_data))
                assert mine == theirs, (plugin.name, pattern, adv)
                checked += 1
    assert checked > 1000


def test_each_captured_advertisement_matches_its_own_type() -> None:
    types = device_types()
    for adv, mac, kind, comments in bms_advertisements():
        t = types[type_name(kind.removesuffix("_bms"))]
        assert any(m.matches(address=mac, name=adv.local_name, service_uuids=adv.service_uuids,
                             manufacturer_data=adv.manufacturer_data, service_data_uuids=list(adv.service_data))
                   for m in t.matchers), (kind, comments)

"""Shared parts of the tests of the emulators for aiobmsble-only families (bmslib/bms/bridge/emulators/).

Captures (``captures/<plugin>.json``) hold real reply frames with their provenance, the values our encoders
are fed to rebuild them and the byte ranges of fields the emulator does not model. :func:`read_with_plugin`
runs aiobmsble's own plugin against an emulator on the simulated radio, through the seam of the BLE layer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiobmsble.basebms import BaseBMS
from aiobmsble.utils import bms_supported, load_bms_plugins
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from bmslib.ble.aiobmsble_seam import Route, routed
from bmslib.sim.emulator import Emulator
from bmslib.sim.radio import SimRadio

CAPTURES = Path(__file__).parent / "captures"


def load_capture(plugin: str) -> dict[str, Any]:
    return json.loads((CAPTURES / f"{plugin}.json").read_text())  # type: ignore[no-any-return]


def frame_of(capture: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in capture["frames"] if f["name"] == name)


def with_unmodeled(encoded: bytes, captured: bytes, unmodeled: list[list[Any]], base: int = 0) -> bytes:
    """``encoded`` with the byte ranges of fields the emulator does not model (offsets from ``base``) taken
    from ``captured``: what is left to compare is what the encoder wrote."""
    assert len(encoded) == len(captured), (encoded.hex(), captured.hex())
    out = bytearray(encoded)
    for start, end, _why in unmodeled:
        out[base + start:base + end] = captured[base + start:base + end]
    return bytes(out)


async def discover(radio: SimRadio, em: Emulator) -> tuple[BLEDevice, AdvertisementData]:
    """The emulator as bleak's scanner reports it over the simulated radio."""
    async with BleakScanner(backend=radio.scanner_backend()) as scanner:
        async for dev, adv in scanner.advertisement_data():
            if dev.address == em.address:
                return dev, adv
    raise AssertionError("unreachable: the scanner stops only when asked")


async def read_with_plugin(plugin_cls: type[BaseBMS], em: Emulator, updates: int = 1) -> dict[str, Any]:
    """aiobmsble's plugin ``plugin_cls`` reads ``em`` (alone on a fresh radio) ``updates`` times; the last sample."""
    radio = SimRadio()
    radio.add(em, sim_id="dut")
    dev, _adv = await discover(radio, em)
    sample: dict[str, Any] = {}
    with routed(Route(backend=radio.client_backend())):
        plugin = plugin_cls(dev)
        try:
            for _ in range(updates):
                sample = dict(await plugin.async_update())
        finally:
            await plugin.disconnect()
            await radio.aclose()
    return sample


def advertisement_data(em: Emulator) -> AdvertisementData:
    adv = em.advertisement()
    return AdvertisementData(local_name=adv.name, manufacturer_data=dict(adv.manufacturer_data), service_data={},
                             service_uuids=list(adv.service_uuids), tx_power=None, rssi=adv.rssi, platform_data=())


def matching_plugins(em: Emulator) -> set[str]:
    """The aiobmsble plugins (module names without ``_bms``) whose matchers accept the emulator's advertisement."""
    data = advertisement_data(em)
    return {m.__name__.rsplit(".", 1)[-1].removesuffix("_bms") for m in load_bms_plugins()
            if bms_supported(m.BMS, data, em.address)}


def captured_advertisement(adv: dict[str, Any]) -> AdvertisementData:
    md = {int(k): bytes.fromhex(v) for k, v in adv.get("manufacturer_data", {}).items()}
    return AdvertisementData(local_name=adv.get("local_name"), manufacturer_data=md, service_data={},
                             service_uuids=list(adv.get("service_uuids", [])), tx_power=None, rssi=-60,
                             platform_data=())


def temps_of(sample: dict[str, Any]) -> list[float]:
    return [float(t.value) if hasattr(t, "value") else float(t) for t in sample.get("temp_values", [])]

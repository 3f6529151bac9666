"""Type detection from advertisements (bmslib/detection.py) against real captured advertisements.

The captures are aiobmsble's own, read from the installed package (``aiobmsble/test_data/*_bms.json`` and
``ignore.json``; aiobmsble, https://github.com/patman15/aiobmsble, Apache-2.0, copyright its authors; each entry
names its source, mostly user logs in the BMS_BLE-HA and aiobmsble trackers). Nothing is copied into this
repository: the files are parsed here as plain JSON (no aiobmsble code runs).

Each ``<plugin>_bms.json`` holds advertisements of that aiobmsble plugin's BMS. batmon calls that type
``<plugin>`` (through the bridge), or, for a family batmon reads natively, its native type
(``jikong`` -> ``jk``, bmslib/config/original_types.py's AIOBMSBLE_NATIVE).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from bmslib.ble.scan import classify, scan
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.config.original_types import AIOBMSBLE_NATIVE
from bmslib.detection import BRIDGE_SUFFIX, Detection, Detector
from bmslib.family import DeviceType, Family
from bmslib.protocol.base import AdvertisementMatcher
from bmslib.registry import device_types, families
from bmslib.sim.emulator import Advertisement as SimAdvertisement
from bmslib.sim.radio import SimRadio
from tests.sim_helpers import add_emulator, backend_of, make_driver

ROOT = Path(__file__).resolve().parent.parent

#: captures detected otherwise for a reason: (file, local name) -> why. Each is still checked: the expected type
#: must be among the candidates once its type is registered (ambiguous, not silently wrong).
EXCEPTIONS = {
    ("daren_bms.json", "DWF3C8A1F7C1235"): "batmon's JBD matcher takes names DWF* (JBD-made packs) with the "
    "JBD service; this Daren BMS advertises such a name and the same service, so the advertisement alone cannot "
    "tell them apart: ambiguous once the bridge's daren type is there, JBD before",
}


@dataclass(frozen=True)
class Capture:
    file: str
    expected: str | None  # batmon's type of the capture's plugin; None: ignore.json (no BMS)
    advertisement: dict[str, Any]
    source: str

    @property
    def address(self) -> str:
        return str((self.advertisement.get("platform_data") or [""])[0])

    def detect(self, detector: Detector) -> Detection:
        adv = self.advertisement
        uuids = adv.get("service_uuids") or []
        return detector.detect(
            address=self.address, name=adv.get("local_name"),
            service_uuids=[uuids] if isinstance(uuids, str) else list(uuids),
            manufacturer_data={int(k): bytes.fromhex(v) for k, v in (adv.get("manufacturer_data") or {}).items()},
            service_data={k: bytes.fromhex(v) for k, v in (adv.get("service_data") or {}).items()})


def captures() -> list[Capture]:
    found: list[Capture] = []
    for res in sorted(resources.files("aiobmsble.test_data").iterdir(), key=lambda r: r.name):
        if not res.name.endswith(".json"):
            continue
        plugin = res.name.removesuffix(".json").removesuffix("_bms")
        expected = None if res.name == "ignore.json" else AIOBMSBLE_NATIVE.get(plugin, plugin)
        for entry in json.loads(res.read_text(encoding="utf-8")):
            found.append(Capture(res.name, expected, entry["advertisement"], "; ".join(entry["_comments"])))
    return found


def registered(detector: Detector, capture: Capture) -> bool:
    """Whether batmon has the aiobmsble matchers of the capture's plugin (the bridge type is registered)."""
    plugin = capture.file.removesuffix("_bms.json")
    bridge_type = f"{plugin}{BRIDGE_SUFFIX}" if plugin in AIOBMSBLE_NATIVE else plugin
    return detector.types.get(bridge_type) is not None and detector.types[bridge_type].via != "native"


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(families())


def test_the_captures_are_there() -> None:
    caps = captures()
    assert len(caps) >= 150 and len({c.file for c in caps}) >= 50  # aiobmsble 0.31.0: 192 in 55 files


def test_no_capture_is_detected_as_another_bms(detector: Detector) -> None:
    """Precision: whatever matches a capture names its own BMS (or, for the listed exceptions, says it is
    ambiguous); an advertisement of no BMS (ignore.json) is detected as nothing."""
    wrong = []
    for cap in captures():
        found = cap.detect(detector)
        if cap.expected is None:
            if found.matched:
                wrong.append(f"{cap.file} {cap.advertisement.get('local_name')!r}: {found.label()} ({cap.source})")
            continue
        if not found.matched or detector.agrees(found.type, cap.expected):
            continue
        if (cap.file, cap.advertisement.get("local_name")) in EXCEPTIONS:
            if cap.expected in detector.types:
                assert found.ambiguous and cap.expected in found.candidates, (cap, found)
            continue
        wrong.append(f"{cap.file} {cap.advertisement.get('local_name')!r}: {found.label()}, expected "
                     f"{cap.expected} ({cap.source})")
    assert not wrong, "\n".join(wrong)


def test_each_capture_detects_its_own_bms(detector: Detector) -> None:
    """Recall, per family: every capture of a plugin whose matchers batmon has is detected as its type; the
    detection rate of every family is printed (families whose aiobmsble matchers are not registered are
    counted with batmon's native matchers alone, and not asserted)."""
    seen: Counter[str] = Counter()
    hit: Counter[str] = Counter()
    missed = []
    for cap in captures():
        if cap.expected is None:
            continue
        found = cap.detect(detector)
        ok = detector.agrees(found.type, cap.expected)
        seen[cap.file] += 1
        hit[cap.file] += ok
        if ok or not registered(detector, cap):
            continue
        if (cap.file, cap.advertisement.get("local_name")) in EXCEPTIONS:
            assert found.ambiguous and cap.expected in found.candidates, (cap, found)
            continue
        missed.append(f"{cap.file} {cap.advertisement.get('local_name')!r} {cap.address}: {found.label()}, "
                      f"expected {cap.expected} ({cap.source})")
    print("\ndetection rate per aiobmsble capture file (asserted where the plugin's matchers are registered):")
    for file in sorted(seen):
        mark = "" if registered(detector, Capture(file, None, {}, "")) else "  (native matchers only)"
        print(f"  {file:<24} {hit[file]:>3}/{seen[file]:<3}{mark}")
    total = sum(seen.values())
    print(f"  all: {sum(hit.values())}/{total} = {sum(hit.values()) / total:.0%}")
    assert not missed, "\n".join(missed)


NATIVE_CAPTURES = {"jikong_bms.json": "jk", "daly_bms.json": "daly", "ant_bms.json": "ant", "abc_bms.json": "sok"}


@pytest.mark.parametrize(("file", "expected"), sorted(NATIVE_CAPTURES.items()))
def test_native_matchers_detect_their_family_captures(detector: Detector, file: str, expected: str) -> None:
    """batmon's own matchers, alone, recognise every capture of the families they were written for (JBD's
    and E&J/Supervolt's captures need aiobmsble's wider name lists: counted above)."""
    for cap in (c for c in captures() if c.file == file):
        assert detector.detect(address=cap.address, name=cap.advertisement.get("local_name"),
                               service_uuids=_uuids(cap), manufacturer_data=_mfr(cap)).type == expected, cap


def _uuids(cap: Capture) -> list[str]:
    uuids = cap.advertisement.get("service_uuids") or []
    return [uuids] if isinstance(uuids, str) else list(uuids)


def _mfr(cap: Capture) -> dict[int, bytes]:
    return {int(k): bytes.fromhex(v) for k, v in (cap.advertisement.get("manufacturer_data") or {}).items()}


# --- the rules, on a small registry of their own ---------------------------------------------------------

def _type(name: str, via: str = "native", **matcher: Any) -> DeviceType:
    return DeviceType(name, name, lambda *a, **k: None, frozenset(), matchers=(AdvertisementMatcher(**matcher),),
                      via=via)


FAMILIES = (
    Family("jbd", "JBD", (_type("jbd", local_name="JBD-*"), _type("jbd_forced", local_name="JBD-*"))),
    Family("bridge", "aiobmsble", (
        _type("jbd_ble", "aiobmsble", local_name="*BL*"),
        _type("seplos", "aiobmsble", local_name="SP*"),
        _type("renogy", "aiobmsble", service_data_uuid="0000fff0-0000-1000-8000-00805f9b34fb"),
        _type("newbms", "aiobmsble", local_name="NEW*", service_data_uuid=""),
    )),
)


def test_a_native_type_wins_over_aiobmsbles_plugin_of_its_family() -> None:
    d = Detector(FAMILIES)
    assert d.detect(address="", name="JBD-BLE1").type == "jbd"  # both matched: native
    assert d.detect(address="", name="12100BL").type == "jbd"  # aiobmsble's matchers only: still the native
    assert d.detect(address="", name="JBD-1").matched == ("jbd", "jbd_forced")  # the family's first type stands


def test_several_families_are_ambiguous_and_named() -> None:
    found = Detector(FAMILIES).detect(address="", name="SPBL")  # seplos's and jbd_ble's names
    assert found.type is None and found.ambiguous
    assert found.candidates == ("jbd", "seplos") and found.label() == "ambiguous: jbd|seplos"


def test_service_data_and_nothing() -> None:
    d = Detector(FAMILIES)
    assert d.detect(address="", name="x", service_data={"0000FFF0-0000-1000-8000-00805F9B34FB": b"\x01"}).type \
        == "renogy"
    assert d.detect(address="", name="NEW1").type == "newbms"  # "": no service data at all
    assert d.detect(address="", name="NEW1", service_data={"0000fff0-0000-1000-8000-00805f9b34fb": b""}).matched \
        == ("renogy",)  # newbms wants none
    nothing = d.detect(address="", name="other")
    assert (nothing.type, nothing.candidates, nothing.label()) == (None, (), "-")


# --- the Done-when of issue 15: `scan --demo --json` -----------------------------------------------------

def test_scan_demo_json_detects_the_demo_devices_as_the_types_they_simulate(detector: Detector) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "scan", "--demo", "--json", "--timeout", "3"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines and all({"address", "name", "rssi", "type", "simulated_as"} <= set(line) for line in lines)
    mismatches = [line for line in lines if not detector.agrees(line["type"], line["simulated_as"])]
    rate = 1 - len(mismatches) / len(lines)
    print(f"\nscan --demo --json: {len(lines) - len(mismatches)}/{len(lines)} simulated devices detected as the "
          f"type they simulate ({rate:.0%})")
    for line in mismatches:
        print(f"  {line['name']!r} simulates {line['simulated_as']}: detected {line['type']} "
              f"{line.get('candidates', '')}")
    simulated = {t.name for t in detector.types.values() if t.emulator is not None and t.in_demo}
    assert simulated <= {line["simulated_as"] for line in lines}  # every demo type was heard
    assert rate >= 0.9


def test_victron_advertisement_captures_are_detected_as_victron(detector: Detector) -> None:
    """The native advertisement captures in the project's own vectors (tests/vectors/*.json, provenance in each
    entry): Victron's Instant Readout manufacturer data (company 0x02E1)."""
    checked = 0
    for path in sorted((ROOT / "tests" / "vectors").glob("*.json")):
        for entry in json.loads(path.read_text()):
            if not str(entry.get("frame_type", "")).startswith("manufacturer data"):
                continue
            found = detector.detect(address="", name=None, manufacturer_data={0x02E1: bytes.fromhex(entry["frame"])})
            assert found.type == path.stem, (entry["source"], found)
            checked += 1
    assert checked >= 2


class _ServiceDataJbd(JbdEmulator):
    """A JBD emulator that also advertises service data (as some aiobmsble-only BMSes do)."""

    def advertisement(self) -> SimAdvertisement:
        return dataclasses.replace(super().advertisement(), name="TB-1",
                                   service_data={"00003333-0000-1000-8000-00805f9b34fb": b"\x01"})


async def test_a_scan_hands_service_data_to_the_matchers() -> None:
    """Simulated advertisements carry service data like real ones, and scan's results keep it: a matcher that
    needs service data (Epoch Pro's, through the bridge) sees it."""
    radio = SimRadio()
    em = add_emulator(radio, _ServiceDataJbd, "sd1")
    try:
        results = await scan(backend_of(radio), device_types(), timeout=1.5)
    finally:
        await radio.aclose()
    (result,) = [r for r in results if r.address == em.address]
    assert result.service_data == {"00003333-0000-1000-8000-00805f9b34fb": b"\x01"}
    matcher = AdvertisementMatcher(service_data_uuid="00003333-0000-1000-8000-00805f9b34fb")
    types = {"sd": DeviceType("sd", "sd", make_driver, frozenset(), matchers=(matcher,))}
    assert classify(result.address, result.name, result.service_uuids, result.manufacturer_data, types,
                    result.service_data) == (("sd",), ())

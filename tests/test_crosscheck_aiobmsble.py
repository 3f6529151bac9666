"""Cross-check: batmon's native driver and aiobmsble's plugin read the same emulator and must agree.

For every family both speak, one of batmon's emulators sits on the simulated radio with a frozen battery
(``BatteryModel(clock=lambda: 0.0)``) and a constant current, once discharging and once charging. batmon's
native driver reads it (through bleak and the transport, as the daemon does), then aiobmsble's plugin reads it
(through the real bleak API and bleak-retry-connector, routed onto the radio by :mod:`bmslib.ble.aiobmsble_seam`).
The two readings must agree with each other, and both with the battery, within the wire's resolution: voltage,
current (sign and value), SoC, cell voltages, cell spread, temperature probes and (where both read it) the
MOSFET temperature.

**Current sign.** batmon's ``Sample.current`` is positive while discharging; aiobmsble's ``current`` is
positive while charging. So ``native.current == -plugin["current"]`` is what agreement means; where real
captures show that a plugin gets the sign wrong (aiobmsble's ANT 2021 plugin), :data:`FAMILIES` says so and
the test pins the error, so it fails when a newer aiobmsble corrects it. Both sides must also agree with the
direction the device's own status reports (aiobmsble's ``battery_charging``).

Where the two sides do not read the same thing, the family's entry in :data:`FAMILIES` says which fields are
compared and why; nothing is marked as an expected failure.

The bridge (registry type ``<plugin>_ble``, aiobmsble's sample mapped by bmslib/bms/bridge/sample_map.py)
reads the same emulator a third time: its Sample must agree with the native Sample on the same fields, in
batmon's own sign, so the mapping is checked too.
"""

from __future__ import annotations

import asyncio
import importlib
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiobmsble import TempSensor
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError

from bmslib.ble.aiobmsble_seam import Route, routed
from bmslib.bms.ant.emulator import AntEmulator, AntLegacyEmulator
from bmslib.bms.daly.emulator import DalyEmulator
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.bms.jk.emulator import Jk24sEmulator, JkEmulator
from bmslib.bms.sok.emulator import SokEmulator
from bmslib.bms.supervolt.emulator import SupervoltEmulator
from bmslib.config.original_types import AIOBMSBLE_NATIVE
from bmslib.errors import BmsConnectError
from bmslib.model import Sample
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Emulator
from bmslib.sim.radio import SimRadio, sim_address
from tests.sim_helpers import make_driver

DISCHARGE, CHARGE = 12.5, -7.5  # [A] battery model sign: + = discharging
READ_TIMEOUT = 60.0  # [s] generous: a loaded machine must not fail the comparison
#: aiobmsble's temperature types that are not cell/pack probes
NOT_PROBES = frozenset({TempSensor.T.MOSFET, TempSensor.T.BALANCER, TempSensor.T.PCB, TempSensor.T.HEATER})
ANT_ABSENT_PROBE = -40.0  # [°C] an ANT temperature slot without a probe reads 0xFFD8


@dataclass(frozen=True)
class Family:
    """One family both sides read: batmon's type and emulator, aiobmsble's plugin module, the wire's
    resolution of each compared field, and where the two sides genuinely differ (the comments in
    :data:`FAMILIES` say why)."""

    type_name: str
    emulator: type[Emulator]
    plugin: str  # module under aiobmsble.bms
    volt_step: float  # [V] pack voltage resolution on the wire
    current_step: float  # [A]
    soc_step: float  # [%]
    temp_step: float  # [°C]
    options: dict[str, Any] = field(default_factory=dict)  # emulator options
    plugin_probes: int | None = None  # probes aiobmsble reads (None: as many as batmon)
    plugin_current_inverted: bool = False  # aiobmsble's plugin reports + while discharging (against its convention)
    capacity_is_aged: bool = False  # aiobmsble's design capacity is what batmon reads as the aged capacity
    bridge_probes_as_ours: bool = True  # the bridge reports exactly batmon's probes (False: see FAMILIES)
    currents: tuple[float, ...] = (DISCHARGE, CHARGE)  # [A] the battery's currents to read the family at
    variant: str = ""  # test id suffix when a type is checked in more than one emulator setting

    @property
    def bridge_type(self) -> str:
        """The bridge's registry type for this family's plugin."""
        return self.plugin.removesuffix("_bms") + "_ble"

    def __str__(self) -> str:
        return f"{self.type_name}-{self.variant}" if self.variant else self.type_name


FAMILIES = (
    Family("jbd", JbdEmulator, "jbd_bms", 0.01, 0.01, 1, 0.1),
    # aiobmsble 0.31.0's jikong plugin starts notifications by UUID (``start_notify("ffe1")``). On the newer
    # JK Bluetooth module (two FFE1 characteristics, handles 0x03 write / 0x05 notify: esphome-jk-bms issue
    # #171 GATT dump) bleak refuses a UUID two characteristics share ("Multiple Characteristics with this
    # UUID"), so the plugin cannot read that module at all; its own tests use a mock that does not resolve
    # UUIDs. The cross-check therefore uses the older module (one FFE1 doing both directions, also real).
    # aiobmsble's JK ``design_capacity`` is the cell-info frame's full-charge capacity (offset 146/178), which
    # batmon reads as the aged capacity; batmon's capacity is the user's, from the settings frame (#365).
    Family("jk", JkEmulator, "jikong_bms", 0.001, 0.001, 1, 0.1, {"module": "old"}, capacity_is_aged=True),
    Family("jk_24s", Jk24sEmulator, "jikong_bms", 0.001, 0.001, 1, 0.1, {"module": "old"}, capacity_is_aged=True),
    # aiobmsble's Daly plugin expects a whole reply in one notification (it checks bytecount + 5 == length);
    # a real module sends the 129-byte status reply in one notification once the link's MTU is raised, as
    # BlueZ and ESPHome do (aiobmsble's captures are whole replies). The emulator's default (20-byte chunks)
    # is the worst case batmon's assembler must handle; here it uses a negotiated MTU of 247 (244 bytes of
    # payload). aiobmsble reads only the Modbus D2 and 0x81 protocols, not the legacy A5 one.
    # On D2 batmon's Daly driver reads no MOSFET temperature (aiobmsble reads it from the 0x3E block).
    Family("daly", DalyEmulator, "daly_bms", 0.1, 0.1, 0.1, 1, {"mtu": 244}, variant="d2"),
    # A 0x81 unit stays silent on D2, so aiobmsble (which probes D2 first) and the bridge wait out their D2
    # timeouts before they read it (about 13 s per read): read it once, charging (the sign and offset of the
    # current field are still checked against batmon's and the battery's).
    Family("daly", DalyEmulator, "daly_bms", 0.1, 0.1, 0.1, 1, {"mtu": 244, "protocol": "p81"}, variant="p81",
           currents=(CHARGE,)),
    # ANT 2021 status frame: the current is i16 x 0.1 A at B+6, positive while DISCHARGING. Real captures pin
    # it (tests/vectors/ant.json, checked in tests/bms/ant/test_protocol.py): a btsnoop capture of an
    # ANT-BLE16ZMUB (esphome-ant-bms docs/pdus) shows +1.0 A on the wire while the remaining charge falls and
    # the total discharged charge and discharging time rise; a batmon-ha user's log (issue #132) shows status 2
    # (charging) with -2.3 A on the wire. aiobmsble 0.31.0's ant plugin reads the raw value as its
    # charge-positive current, so it reports a discharging pack with a positive current: its ``current`` has
    # the same sign as batmon's here, while its ``battery_charging`` (from the status byte) is right. The
    # bridge maps aiobmsble's convention generically and so publishes ``ant_ble``'s current (and power) with
    # the wrong sign: compared as such until it corrects this plugin. aiobmsble also reports the balancer
    # temperature (type BALANCER), which the bridge lists among the probes after the cell probes.
    Family("ant", AntEmulator, "ant_bms", 0.01, 0.1, 1, 1, plugin_current_inverted=True,
           bridge_probes_as_ours=False),
    # ANT legacy: six temperature slots, absent probes read -40 °C (0xFFD8); batmon drops those, aiobmsble
    # reports the first four slots as they are. The probes batmon reports are compared with aiobmsble's first
    # ones; aiobmsble's remaining slots must read the absent-probe value (the bridge publishes them as probes).
    Family("ant_legacy", AntLegacyEmulator, "ant_leg_bms", 0.1, 0.1, 1, 1, plugin_probes=4,
           bridge_probes_as_ours=False),
    Family("sok", SokEmulator, "abc_bms", 0.001, 0.001, 1, 1),
    # Supervolt's ASCII realtime frame carries four temperature bytes; aiobmsble's ej_bms reads the first.
    Family("supervolt", SupervoltEmulator, "ej_bms", 0.001, 0.01, 1, 1, plugin_probes=1,
           bridge_probes_as_ours=False),
)


def _battery(current: float) -> BatteryModel:
    return BatteryModel(rng=random.Random(3), clock=lambda: 0.0, load=lambda _t: current)


async def _discover(radio: SimRadio, address: str) -> BLEDevice:
    """The BLEDevice a scan of the radio reports for ``address`` (what aiobmsble's plugins are made from)."""
    async with asyncio.timeout(READ_TIMEOUT), BleakScanner(backend=radio.scanner_backend()) as scanner:
        async for device, _adv in scanner.advertisement_data():
            if device.address == address:
                return device
    raise AssertionError(f"{address} not seen")  # pragma: no cover - the loop ends only by timeout


async def native_read(radio: SimRadio, family: Family, em: Emulator) -> Sample:
    driver = make_driver(family.type_name, radio, em)
    async with asyncio.timeout(READ_TIMEOUT):
        await driver.connect()
        try:
            return Sample.build(await driver.read(), timestamp=0, mono=0)
        finally:
            await driver.disconnect()


async def bridge_read(radio: SimRadio, family: Family, em: Emulator) -> Sample:
    """The bridge driver's reading (registry type ``<plugin>_ble``): the plugin's sample through sample_map."""
    driver = make_driver(family.bridge_type, radio, em)
    async with asyncio.timeout(READ_TIMEOUT):
        await driver.connect()
        try:
            return Sample.build(await driver.read(), timestamp=0, mono=0)
        finally:
            await driver.disconnect()


async def plugin_read(radio: SimRadio, family: Family, em: Emulator) -> dict[str, Any]:
    plugin_cls = importlib.import_module(f"aiobmsble.bms.{family.plugin}").BMS
    device = await _discover(radio, em.address)
    with routed(Route(backend=radio.client_backend())):
        plugin = plugin_cls(device)
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                return dict(await plugin.async_update())
        finally:
            await plugin.disconnect()


def plugin_probes(sample: dict[str, Any]) -> list[float]:
    return [t.value for t in sample.get("temp_values", ()) if t.type not in NOT_PROBES]


def plugin_mos_temperature(sample: dict[str, Any]) -> float | None:
    return next((t.value for t in sample.get("temp_values", ()) if t.type is TempSensor.T.MOSFET), None)


def assert_agree(family: Family, battery: BatteryModel, native: Sample, plugin: dict[str, Any]) -> None:
    """The comparison: each reading against the other and against the battery."""
    assert native.voltage is not None and native.current is not None and native.soc is not None
    assert native.cell_voltages is not None and native.temperatures is not None
    # voltage
    assert plugin["voltage"] == pytest.approx(native.voltage, abs=family.volt_step * 1.01)
    assert native.voltage == pytest.approx(battery.voltage, abs=family.volt_step)
    # current: batmon + = discharging, aiobmsble + = charging
    assert native.current == pytest.approx(battery.current, abs=family.current_step / 2)
    aiobmsble_sign = 1.0 if family.plugin_current_inverted else -1.0  # plugin current = sign x batmon's
    assert plugin["current"] == pytest.approx(aiobmsble_sign * native.current, abs=family.current_step * 1.01)
    assert plugin["battery_charging"] is (native.current < 0)
    # state of charge
    assert plugin["battery_level"] == pytest.approx(native.soc, abs=family.soc_step)
    assert native.soc == pytest.approx(battery.soc, abs=family.soc_step)
    # cells and their spread
    assert plugin["cell_voltages"] == pytest.approx(list(native.cell_voltages), abs=0.0011)
    assert list(native.cell_voltages) == pytest.approx(battery.cell_voltages, abs=0.0011)
    spread = max(native.cell_voltages) - min(native.cell_voltages)
    assert plugin["delta_voltage"] == pytest.approx(spread, abs=0.0011)
    # temperature probes
    probes = plugin_probes(plugin)
    ours = list(native.temperatures)
    shared = len(ours) if family.plugin_probes is None else min(family.plugin_probes, len(ours))
    assert len(probes) == (len(ours) if family.plugin_probes is None else family.plugin_probes)
    assert probes[:shared] == pytest.approx(ours[:shared], abs=family.temp_step * 1.01)
    probed = min(len(ours), len(battery.temperatures))  # an emulator may fill further slots (MOSFET, board)
    assert ours[:probed] == pytest.approx(battery.temperatures[:probed], abs=family.temp_step / 2 + 0.01)
    if family.type_name == "ant_legacy":
        assert probes[shared:] == [ANT_ABSENT_PROBE] * (len(probes) - shared)
    # MOSFET temperature, where both read it
    mos = plugin_mos_temperature(plugin)
    if mos is not None and native.mos_temperature is not None:
        assert mos == pytest.approx(native.mos_temperature, abs=family.temp_step * 1.01)


def assert_bridge_agrees(family: Family, native: Sample, bridged: Sample) -> None:
    """The bridge's Sample (aiobmsble's reading mapped by bmslib/bms/bridge/sample_map.py) against the
    native Sample, field by field in batmon's own terms (current + = discharging in both)."""
    assert native.voltage is not None and native.current is not None and native.cell_voltages is not None
    assert bridged.voltage == pytest.approx(native.voltage, abs=family.volt_step * 1.01)
    bridge_sign = 1.0  # the bridge keeps ANT 2021's sign (sample_map.CURRENT_SIGN_KEPT): it agrees with batmon
    assert bridged.current == pytest.approx(bridge_sign * native.current, abs=family.current_step * 1.01)
    assert bridged.battery_charging is (native.current < 0)
    assert bridged.soc == pytest.approx(native.soc, abs=family.soc_step)
    assert bridged.cell_voltages == pytest.approx(native.cell_voltages, abs=0.0011)
    assert native.power is not None
    assert bridged.power == pytest.approx(bridge_sign * native.power, rel=0.01, abs=1.0)
    assert bridged.charge == pytest.approx(native.charge, abs=family.soc_step * (native.capacity or 100) / 100)
    assert bridged.cycles == native.cycles
    # capacity: aiobmsble's ``design_capacity``; for JK that is the frame's full-charge capacity, which batmon
    # reads as the aged capacity (its capacity comes from the settings frame: the user's, not the aged one)
    ours_capacity = native.aged_capacity if family.capacity_is_aged else native.capacity
    if bridged.capacity is not None and ours_capacity is not None:
        assert bridged.capacity == pytest.approx(ours_capacity, abs=1.0)
    # FET states (read-only on the bridge); ``balance`` is not compared: aiobmsble's ``balancer`` is "balancing
    # now" for some plugins and "balancer enabled" for others, batmon's switch is the enable setting
    assert native.switches is not None and bridged.switches is not None
    for name in ("charge", "discharge"):
        assert bridged.switches.get(name) == native.switches.get(name)
    # probes: the ones batmon reports, in order, are the bridge's first ones (FAMILIES: why some report more)
    assert native.temperatures is not None and bridged.temperatures is not None
    shared = len(native.temperatures) if family.plugin_probes is None else min(family.plugin_probes,
                                                                              len(native.temperatures))
    assert list(bridged.temperatures[:shared]) == pytest.approx(list(native.temperatures[:shared]),
                                                                abs=family.temp_step * 1.01)
    if family.bridge_probes_as_ours:
        assert len(bridged.temperatures) == len(native.temperatures)
    if bridged.mos_temperature is not None and native.mos_temperature is not None:
        assert bridged.mos_temperature == pytest.approx(native.mos_temperature, abs=family.temp_step * 1.01)


CASES = [pytest.param(f, i, id=f"{f}-{'discharging' if i > 0 else 'charging'}") for f in FAMILIES for i in f.currents]


@pytest.mark.parametrize(("family", "current"), CASES)
async def test_native_driver_and_aiobmsble_plugin_agree(radio: SimRadio, family: Family, current: float) -> None:
    battery = _battery(current)
    em = family.emulator(address=sim_address("x1"), name="x1", battery=battery, rng=random.Random(3),
                         **family.options)
    radio.add(em, sim_id="x1")
    native = await native_read(radio, family, em)
    plugin = await plugin_read(radio, family, em)
    assert_agree(family, battery, native, plugin)
    bridged = await bridge_read(radio, family, em)
    assert_bridge_agrees(family, native, bridged)


def test_every_family_both_read_is_cross_checked() -> None:
    """Every type batmon maps an aiobmsble module to (the add-on's ``<module>_ble`` names) is covered."""
    checked = {f.type_name for f in FAMILIES}
    assert set(AIOBMSBLE_NATIVE.values()) <= checked
    assert {f.plugin.removesuffix("_bms") for f in FAMILIES} == set(AIOBMSBLE_NATIVE)


async def test_aiobmsble_jikong_cannot_subscribe_on_the_two_ffe1_module(radio: SimRadio) -> None:
    """The newer JK Bluetooth module has two FFE1 characteristics (esphome-jk-bms issue #171); aiobmsble
    0.31.0 names the notify one by UUID, which bleak refuses. When a newer aiobmsble passes the handle, this
    fails: then drop ``module="old"`` from the JK families above so the cross-check covers both modules.
    batmon's own driver reads the module; the bridge's ``jikong_ble`` cannot, and says so as a typed error."""
    em = JkEmulator(address=sim_address("x1"), name="x1", battery=_battery(DISCHARGE), rng=random.Random(3))
    assert em.module == "new"
    radio.add(em, sim_id="x1")
    native = await native_read(radio, FAMILIES[1], em)  # batmon reads it
    assert native.voltage == pytest.approx(em.battery.voltage, abs=0.001)
    with pytest.raises(BleakError, match="Multiple Characteristics"):
        await plugin_read(radio, FAMILIES[1], em)
    with pytest.raises(BmsConnectError, match="Multiple Characteristics"):  # the project's typed error
        await bridge_read(radio, FAMILIES[1], em)

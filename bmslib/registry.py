"""Device types: the one place that maps a ``type`` name to its driver, protocol, emulator and matchers.

Adding a BMS type means adding one :class:`DeviceType` to :func:`device_types`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bmslib.config.settings import TypeInfo
from bmslib.drivers.ant import LEGACY_SWITCHES, AntDriver
from bmslib.drivers.base import Driver
from bmslib.drivers.daly import DalyDriver, forced
from bmslib.drivers.dummy import DummyDriver
from bmslib.drivers.jbd import JbdDriver
from bmslib.drivers.jk import JkDriver
from bmslib.drivers.sok import SokDriver
from bmslib.drivers.supervolt import SupervoltDriver
from bmslib.drivers.victron import decode_advertisements
from bmslib.drivers.victron import make_driver as make_victron_driver
from bmslib.protocol import ant, daly, jbd, jbd_auth, jk, sok, supervolt
from bmslib.protocol.ant import AntCodec, Variant
from bmslib.protocol.base import AdvertisementMatcher, Codec
from bmslib.protocol.daly import DalyProtocol
from bmslib.protocol.daly_auto import DalyAutoCodec
from bmslib.protocol.victron import MATCHERS as VICTRON_MATCHERS
from bmslib.sim.ant import AntEmulator, AntLegacyEmulator
from bmslib.sim.daly import DalyEmulator, DalyLegacyEmulator, DalyModbusEmulator
from bmslib.sim.emulator import Emulator
from bmslib.sim.jbd import JbdEmulator
from bmslib.sim.jk import Jk04Emulator, Jk24sEmulator, Jk32sEmulator, JkEmulator
from bmslib.sim.sok import SokEmulator
from bmslib.sim.supervolt import SupervoltEmulator
from bmslib.sim.victron import VictronEmulator


@dataclass(frozen=True)
class DeviceType:
    """Everything the daemon needs to know about one ``type:`` value."""

    name: str
    description: str
    driver: Callable[..., Driver]  # called with (config, address=, backend=, log=)
    switches: frozenset[str]
    codec: Callable[[], Codec] | None = None  # for `decode`; None: not a frame protocol
    emulator: type[Emulator] | None = None  # device side in the simulator
    matchers: tuple[AdvertisementMatcher, ...] = ()
    accepts_pin: bool = False
    accepts_key: bool = False
    pin_problem: Callable[[str], str | None] | None = None  # see TypeInfo
    in_demo: bool = True  # one simulated device of this type in --demo
    radio: bool = True  # False: no Bluetooth at all (dummy)
    #: `decode` for types whose input is not notification chunks (e.g. advertisements):
    #: (hex inputs as bytes, options such as {"key": ...}) -> the JSON-ready result
    decoder: Callable[[Sequence[bytes], Mapping[str, str]], dict[str, Any]] | None = None

    def info(self) -> TypeInfo:
        return TypeInfo(name=self.name, switches=self.switches, accepts_pin=self.accepts_pin,
                        accepts_key=self.accepts_key, pin_problem=self.pin_problem)


def device_types() -> dict[str, DeviceType]:
    """All known device types by name."""
    types = (
        DeviceType("jbd", "JBD / Xiaoxiang / Overkill Smart BMS", JbdDriver, JbdDriver.switches,
                   codec=jbd.JbdCodec, emulator=JbdEmulator, matchers=jbd.MATCHERS, accepts_pin=True,
                   pin_problem=jbd_auth.password_problem),
        DeviceType("supervolt", "Supervolt (ASCII protocol: libatt…, SV12V… packs) and other E&J Technology BMS",
                   SupervoltDriver, SupervoltDriver.switches, codec=supervolt.SupervoltCodec,
                   emulator=SupervoltEmulator, matchers=supervolt.MATCHERS),
        DeviceType("sok", "SOK and other ABC-BMS batteries", SokDriver, SokDriver.switches, codec=sok.SokCodec,
                   emulator=SokEmulator, matchers=sok.MATCHERS),
        DeviceType("daly", "Daly BMS; protocol found at connect (Modbus D2, legacy A5, or 0x81 read-only)",
                   DalyDriver, DalyDriver.switches, codec=DalyAutoCodec, emulator=DalyEmulator,
                   matchers=daly.MATCHERS),
        DeviceType("daly_legacy", "Daly BMS, legacy A5 protocol (older J/T/A/U/W/ND series)",
                   forced(DalyProtocol.LEGACY), DalyDriver.switches,
                   codec=functools.partial(DalyAutoCodec, DalyProtocol.LEGACY), emulator=DalyLegacyEmulator,
                   in_demo=False),
        DeviceType("daly_modbus", "Daly BMS, Modbus D2 protocol (H/K/M/S series)",
                   forced(DalyProtocol.MODBUS), DalyDriver.switches,
                   codec=functools.partial(DalyAutoCodec, DalyProtocol.MODBUS), emulator=DalyModbusEmulator,
                   in_demo=False),
        DeviceType("ant", "ANT BMS, 2021 and legacy protocol (generation from the name or the first reply)",
                   AntDriver, AntDriver.switches, codec=AntCodec, emulator=AntEmulator, matchers=ant.MATCHERS,
                   accepts_pin=True),
        DeviceType("ant_legacy", "ANT BMS, legacy protocol only (AA 55 AA FF; 2019/2020 units)",
                   functools.partial(AntDriver, variant=Variant.LEGACY), LEGACY_SWITCHES,
                   codec=functools.partial(AntCodec, Variant.LEGACY), emulator=AntLegacyEmulator,
                   accepts_pin=True, in_demo=False),
        DeviceType("victron", "Victron SmartShunt / BMV Smart: Instant Readout (advertisements) with `key:`, "
                   "else the GATT service (paired with `pin:`)", make_victron_driver, frozenset(),
                   emulator=VictronEmulator, matchers=VICTRON_MATCHERS, accepts_pin=True, accepts_key=True,
                   decoder=decode_advertisements),
        DeviceType("jk", "JK (Jikong) BMS and active balancers; frame layout from the device info", JkDriver,
                   JkDriver.switches, codec=jk.JkCodec, emulator=JkEmulator, matchers=jk.MATCHERS),
        DeviceType("jk_24s", "JK BMS, JK02_24S frame layout (firmware up to 10.x)",
                   functools.partial(JkDriver, layout=jk.Layout.JK02_24S), JkDriver.switches,
                   codec=functools.partial(jk.JkCodec, jk.Layout.JK02_24S), emulator=Jk24sEmulator, in_demo=False),
        DeviceType("jk_32s", "JK BMS, JK02_32S frame layout (firmware 11.x and later, JK-PB)",
                   functools.partial(JkDriver, layout=jk.Layout.JK02_32S), JkDriver.switches,
                   codec=functools.partial(jk.JkCodec, jk.Layout.JK02_32S), emulator=Jk32sEmulator, in_demo=False),
        DeviceType("jk04", "JK active balancer, JK04 frame layout (JK-B2A16S hw 3.x, JK-B5A24S)",
                   functools.partial(JkDriver, layout=jk.Layout.JK04), frozenset({"balance"}),
                   codec=functools.partial(jk.JkCodec, jk.Layout.JK04), emulator=Jk04Emulator, in_demo=False),
        DeviceType("dummy", "a simulated battery without any radio", DummyDriver, DummyDriver.switches,
                   radio=False),
    )
    return {t.name: t for t in types}


def type_infos(types: Mapping[str, DeviceType] | None = None) -> dict[str, TypeInfo]:
    """What the config validator needs to know about each type."""
    return {name: t.info() for name, t in (types or device_types()).items()}

"""The bridge's driver: one aiobmsble plugin read through batmon's BLE paths, read-only.

Not a :class:`~bmslib.drivers.base.BleDriver`: aiobmsble's plugin speaks the protocol and owns its bleak
client, so this driver holds a :class:`~bmslib.ble.aiobmsble_plugins.PluginRunner` instead of a transport and
a codec, and maps each sample once (:mod:`bmslib.bms.bridge.sample_map`). It offers no switches (aiobmsble
has no switch commands); the FET states a plugin reports are published as read-only binary sensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from bmslib.ble.aiobmsble_plugins import PluginRunner
from bmslib.ble.backend import BleBackend
from bmslib.bms.bridge import sample_map
from bmslib.drivers.base import DeviceLog, Driver
from bmslib.model import DeviceInfo, Reading

if TYPE_CHECKING:
    from bmslib.config.settings import DeviceConfig


class BridgeDriver(Driver):
    """A device read by aiobmsble's plugin ``plugin``."""

    switches: ClassVar[frozenset[str]] = frozenset()
    #: a plugin's update may take several requests, each retried by aiobmsble (5 s, twice per write mode)
    request_timeout: ClassVar[float] = 10.0

    def __init__(self, config: DeviceConfig, *, address: str, backend: BleBackend, log: DeviceLog,
                 plugin: str, manufacturer: str = "", model: str = "") -> None:
        super().__init__(config, address=address, backend=backend, log=log)
        # keep_alive=True: the sampler disconnects between reads when the device's keep_alive is off
        self.runner = PluginRunner(address, backend=backend, plugin=plugin, adapter=config.adapter,
                                   keep_alive=True, secret=config.pin, log=log)
        self.plugin = plugin
        self.device_info = DeviceInfo(manufacturer=manufacturer or None, model=model or None)

    @property
    def read_timeout(self) -> float:
        return 3 * self.request_timeout

    @property
    def is_connected(self) -> bool:
        return self.runner.is_connected

    @property
    def rssi(self) -> int | None:
        return self.runner.rssi

    @property
    def slot_wanted(self) -> bool:
        return self.runner.slot_wanted

    async def prepare(self) -> None:
        await self.runner.locate()

    async def connect(self) -> None:
        await self.runner.connect()

    async def disconnect(self) -> None:
        await self.runner.disconnect()

    async def read(self) -> Reading:
        return sample_map.reading(await self.runner.update(), self.plugin)

"""One Bluetooth connection of the node (one slot): its link to an emulator.

It is the host side the emulator sees (:class:`~bmslib.sim.emulator.Link`, like the simulated bleak client):
the emulator's notifications go out as GATT notify data, on the handles the client enabled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from bmslib.sim.emulator import Emulator
from bmslib.sim.esphome.gatt import GattTable, gatt_table

#: ESP-IDF's reasons a connection ends or fails, as ESPHome reports them
ERROR_TERMINATED_BY_PEER: Final = 0x13
ERROR_FAIL_ESTABLISH: Final = 0x3E


class BleConnection:
    """A slot in use: connecting, then connected to one emulator."""

    def __init__(self, address: int, mac: str, *, with_cache: bool,
                 on_notify: Callable[[BleConnection, int, bytes], None],
                 on_drop: Callable[[BleConnection], None]) -> None:
        self.address = address
        self.mac = mac
        #: the client said it has the services cached (it asks for them anyway if it wants them)
        self.with_cache = with_cache
        self.paired = False
        self.emulator: Emulator | None = None
        self.table: GattTable | None = None
        self.notify_handles: set[int] = set()  # value handles the client registered for
        self.cccd: dict[int, bytes] = {}  # CCCD handle -> value written
        self._on_notify = on_notify
        self._on_drop = on_drop

    @property
    def connected(self) -> bool:
        return self.emulator is not None

    @property
    def mtu(self) -> int:
        return (self.emulator.mtu if self.emulator is not None else 20) + 3

    def attached(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.table = gatt_table(emulator.gatt)

    def notifying(self, handle: int) -> bool:
        """Whether a notification on ``handle`` reaches the client: registered for, and its CCCD enabled (a
        version 3 connection leaves that write to the client)."""
        if handle not in self.notify_handles or self.table is None:
            return False
        char = self.table.by_handle.get(handle)
        return char is not None and char.cccd is not None and self.cccd.get(char.cccd, b"\x00")[:1] != b"\x00"

    # --- Link (called by the emulator) ---
    def deliver(self, char_uuid: str, data: bytes) -> None:
        if self.table is None:
            return
        # of the characteristics with this UUID, the one the client listens to
        handle = next((h for h in self.table.value_handles(char_uuid) if self.notifying(h)), None)
        if handle is not None:
            self._on_notify(self, handle, data)

    def drop(self) -> None:
        """The device ended the link."""
        if self.emulator is None:
            return
        self.emulator = None
        self._on_drop(self)

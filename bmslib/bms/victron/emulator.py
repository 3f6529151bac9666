"""Victron SmartShunt emulator: the third-party GATT service and the Instant Readout advertisement.

GATT: one readable, notifying characteristic per value (encoded with the protocol module's field
tables), notifications when a value changes, the keep-alive characteristic (the link is dropped when
the last keep-alive, or the connect, is older than the time it asked for), and optional pairing with
a PIN: with ``pin`` set, values cannot be read, notified or written before the host bonded with the
right PIN (a wrong PIN fails like BlueZ's ``AuthenticationFailed``). A bond is kept across
connections, as the host's bond store would, so "paired once with bluetoothctl" can be emulated by
setting ``bonded``.

Instant Readout: every :meth:`VictronEmulator.advertisement` is a fresh battery-monitor record of the
battery's current state, encrypted with ``key`` under the next nonce.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from typing import ClassVar

from bleak.exc import BleakError

from bmslib.bms.victron.protocol import advertisement as victron_adv
from bmslib.bms.victron.protocol import gatt as victron
from bmslib.model import Reading
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Advertisement, Emulator, Faults, GattChar, GattService

_LOG = logging.getLogger(__name__)

#: The demo's (and the default emulator's) advertisement key. A published test key, not a secret.
DEMO_KEY_HEX = "0123456789abcdeffedcba9876543210"
DEMO_KEY = bytes.fromhex(DEMO_KEY_HEX)

_MAX_MINUTES = 0xFFFE  # time-to-go: 0xFFFF means "not available"
_MAX_WATTS = 0x7FFE  # power i16: 0x7FFF (and its negation in model sign) would be "not available"


class VictronEmulator(Emulator):
    type_name = "victron"
    demo_options: ClassVar[Mapping[str, str]] = {"key": DEMO_KEY_HEX}

    def __init__(self, *, address: str, name: str, battery: BatteryModel | None = None,
                 faults: Faults | None = None, rng: random.Random | None = None,
                 pin: str | None = None, key: bytes | str = DEMO_KEY, product_id: int = 0xA389,
                 gatt_enabled: bool = True, record_type: int = victron_adv.RECORD_BATTERY_MONITOR,
                 notify_interval: float | None = 1.0, link_timeout: float = 60.0) -> None:
        super().__init__(address=address, name=name, battery=battery, faults=faults, rng=rng)
        self.pin = pin
        self.key = victron_adv.parse_key(key) if isinstance(key, str) else bytes(key)
        if len(self.key) != victron_adv.KEY_LEN:
            raise ValueError("the advertisement key must be 16 bytes")
        self.product_id = product_id
        self.gatt_enabled = gatt_enabled
        self.record_type = record_type
        self.notify_interval = notify_interval
        self.link_timeout = link_timeout
        self.bonded = False
        self.pair_attempts = 0
        self.keepalives = 0
        self.keepalive_ms: int | None = None
        self.nonce = self.rng.randrange(0x10000)
        self._sent: dict[str, bytes] = {}
        self._expiry: asyncio.TimerHandle | None = None
        self._notifier: asyncio.Task[None] | None = None

    # --- battery -> values ---
    def reading(self) -> Reading:
        """What the shunt shows now, in model units and sign (current + = discharging)."""
        b = self.battery
        b.advance()
        current = round(b.current, 3) + 0.0
        if current == 0.001:  # would encode as the advertisement's "not available" current (0x3FFFFF)
            current = 0.0
        reading: Reading = {
            "voltage": round(b.voltage, 2),
            "current": current,
            "power": float(max(-_MAX_WATTS, min(_MAX_WATTS, round(b.voltage * current)))),
            "soc": round(b.soc, 2),
            "alarms": tuple(a for a in b.alarms if a in victron_adv.ALARM_BITS.values()),
            "extra": {"consumed_ah": round(min(0.0, b.charge_ah - b.capacity_ah), 1)},
        }
        if current > 0:  # time-to-go is shown while discharging only
            reading["runtime"] = 60.0 * min(_MAX_MINUTES, round(b.charge_ah / current * 60))
        if b.temperatures:  # aux input set to "battery temperature"
            reading["temperatures"] = (b.temperatures[0],)
        return reading

    # --- GATT ---
    @property
    def gatt(self) -> tuple[GattService, ...]:
        if not self.gatt_enabled:
            return ()
        chars = tuple(GattChar(c.uuid, ("read", "notify")) for c in victron.CHARACTERISTICS)
        return (GattService(victron.SERVICE_UUID, (*chars, GattChar(victron.KEEPALIVE_UUID, ("read", "write")))),)

    @property
    def authorised(self) -> bool:
        return self.pin is None or self.bonded

    def pair(self, *args: object, pin: str | None = None, **kwargs: object) -> None:
        """Called by the simulated client's ``pair()``: bond if the PIN is right (or none is needed)."""
        self.pair_attempts += 1
        if self.link is None:
            raise BleakError("Not connected")
        if self.authorised:
            self.bonded = True  # BlueZ does not pair again with a bonded device
            return
        if pin != self.pin:
            raise BleakError("[org.bluez.Error.AuthenticationFailed] Authentication Failed")
        self.bonded = True

    def _refuse_unbonded(self) -> None:
        if not self.authorised:
            raise BleakError("[org.bluez.Error.NotPermitted] Insufficient authentication")

    def handle_read(self, char_uuid: str) -> bytes:
        self._refuse_unbonded()
        if char_uuid == victron.KEEPALIVE_UUID:
            return victron.keepalive_request(self.keepalive_ms or 0)
        if char_uuid not in victron.BY_UUID:
            raise KeyError(char_uuid)
        return victron.characteristic_values(self.reading())[char_uuid]

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        if char_uuid != victron.KEEPALIVE_UUID:
            return
        self._refuse_unbonded()
        ms = victron.parse_keepalive(data)
        if ms is None:
            return
        self.keepalives += 1
        self.keepalive_ms = ms
        self._expire_in(ms / 1000.0)

    def on_connect(self) -> None:
        self._sent = {}
        self._expire_in(self.link_timeout)
        if self.notify_interval is not None:
            self._notifier = asyncio.get_running_loop().create_task(self._notify_changes(self.notify_interval),
                                                                    name=f"sim-victron-notify-{self.name}")

    def on_disconnect(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._notifier is not None:
            self._notifier.cancel()
            self._notifier = None

    def _expire_in(self, seconds: float) -> None:
        """The shunt drops a link that got no keep-alive for the time the last one asked for."""
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _expired(self) -> None:
        self._expiry = None
        if self.link is not None:
            _LOG.debug("%s: no keep-alive in time; dropping the link", self.name)
            self.drop_link()

    async def _notify_changes(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if not self.authorised or self.faults.mute:
                continue
            for uuid, value in victron.characteristic_values(self.reading()).items():
                if self._sent.get(uuid) != value:
                    self._sent[uuid] = value
                    self.notify(value, uuid)

    async def aclose(self) -> None:
        task = self._notifier
        await super().aclose()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- Instant Readout ---
    def advertisement(self) -> Advertisement:
        self.nonce = (self.nonce + 1) & 0xFFFF
        if self.record_type == victron_adv.RECORD_BATTERY_MONITOR:
            try:
                data = victron_adv.battery_monitor_advertisement(self.key, self.nonce, self.reading(),
                                                                 product_id=self.product_id)
            except ValueError:  # a value out of the record's range: advertise nothing this time
                _LOG.debug("%s: battery state does not fit an advertisement", self.name, exc_info=True)
                return Advertisement(name=self.name)
        else:  # another product's record (for tests of the skipping)
            data = victron_adv.encode_advertisement(self.key, self.nonce, bytes(16), product_id=self.product_id,
                                                    record_type=self.record_type)
        return Advertisement(name=self.name, manufacturer_data={victron.COMPANY_ID: data})

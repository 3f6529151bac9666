"""The BLE layer turns every bleak, bleak-retry-connector, D-Bus and OS error into the project's typed errors.

Through bleak's real BleakClient/BleakScanner and bleak-retry-connector over the simulated radio: first the
faults the emulators produce themselves (missing, busy, mute, dropped link, refused pairing), then each error
type the Bluetooth stack may raise, injected by a simulated client or scanner that raises it.
"""

from __future__ import annotations

import errno
import logging
import random
from typing import Any

import pytest
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakCharacteristicNotFoundError,
    BleakDBusError,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)
from bleak_retry_connector import BleakNotFoundError, BleakOutOfConnectionSlotsError
from dbus_fast.errors import DBusError

from bmslib.ble.backend import BleBackend
from bmslib.ble.radio_errors import connect_error, gatt_error, unavailable_reason
from bmslib.ble.scan import scan
from bmslib.ble.transport import BleTransport
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.bms.jbd.protocol import frames as jbd
from bmslib.bms.victron.emulator import VictronEmulator
from bmslib.bms.victron.protocol import gatt as victron
from bmslib.errors import (
    BluetoothUnavailableError,
    BmsAuthError,
    BmsConnectError,
    BmsDisconnectedError,
    BmsError,
    BmsTimeoutError,
    CharacteristicNotFoundError,
    DeviceNotFoundError,
    GattAuthError,
    GattError,
)
from bmslib.registry import device_types
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Faults
from bmslib.sim.radio import SimRadio, sim_address

LOG = logging.LoggerAdapter(logging.getLogger("test.ble_errors"), {})
UNKNOWN_UUID = "0000abcd-0000-1000-8000-00805f9b34fb"


def add_jbd(radio: SimRadio, sim_id: str = "e1", **faults: Any) -> JbdEmulator:
    em = JbdEmulator(address=sim_address(sim_id), name=f"JBD-{sim_id}", battery=BatteryModel(rng=random.Random(1)),
                     faults=Faults(**faults), rng=random.Random(2))
    radio.add(em, sim_id=sim_id)
    return em


def raising(base: type, method: str, exc: BaseException) -> type:
    """A subclass of the simulated client or scanner backend ``base`` whose ``method`` raises ``exc``."""

    async def fail(self: object, *args: object, **kwargs: object) -> None:
        raise exc

    return type(f"Raising{method}", (base,), {method: fail})


def transport(backend: BleBackend, address: str) -> BleTransport:
    return BleTransport(address, backend=backend, log=LOG, scan_timeout=1.0, connect_timeout=2.0, connect_attempts=1)


def sim_backend(radio: SimRadio, *, client: type | None = None, scanner: type | None = None) -> BleBackend:
    return BleBackend(client or radio.client_backend(), scanner or radio.scanner_backend(), simulated=True)


# --- faults of the emulators themselves ---------------------------------------------------------


async def test_a_device_held_by_another_client_is_a_connect_error(radio: SimRadio) -> None:
    em = add_jbd(radio)
    first = transport(sim_backend(radio), em.address)
    await first.connect()
    second = transport(sim_backend(radio), em.address)
    with pytest.raises(BmsConnectError, match="one connection") as info:
        await second.connect()
    assert type(info.value) is BmsConnectError and isinstance(info.value.__cause__, BleakError)
    await first.disconnect()


async def test_gatt_faults_of_the_emulator(radio: SimRadio) -> None:
    em = add_jbd(radio)
    t = transport(sim_backend(radio), em.address)
    await t.connect()
    with pytest.raises(CharacteristicNotFoundError) as missing:  # not on this device
        await t.subscribe(UNKNOWN_UUID, jbd.JbdAssembler())
    assert missing.value.uuid == UNKNOWN_UUID and isinstance(missing.value, BmsConnectError)
    with pytest.raises(CharacteristicNotFoundError):
        t.properties(UNKNOWN_UUID)
    assert t.properties(jbd.WRITE_UUID, "write") >= {"write-without-response"}
    with pytest.raises(GattError, match=f"subscribe {jbd.WRITE_UUID} failed: .*does not notify") as refused:
        await t.subscribe(jbd.WRITE_UUID, jbd.JbdAssembler())  # the write characteristic does not notify
    assert not isinstance(refused.value, BmsAuthError) and isinstance(refused.value.__cause__, BleakError)
    with pytest.raises(GattError, match="not readable"):
        await t.read(jbd.WRITE_UUID)
    em.drop_link()
    with pytest.raises(BmsDisconnectedError):
        await t.read(jbd.NOTIFY_UUID)
    with pytest.raises(BmsDisconnectedError):
        t.properties(jbd.WRITE_UUID)


async def test_refused_pairing_and_unpaired_reads_are_auth_errors(radio: SimRadio) -> None:
    em = VictronEmulator(address=sim_address("v1"), name="SmartShunt", battery=BatteryModel(rng=random.Random(1)),
                         rng=random.Random(2), pin="123456")
    radio.add(em, sim_id="v1")
    t = transport(sim_backend(radio), em.address)
    await t.connect()
    with pytest.raises(GattAuthError, match=r"^read .* failed: .*Insufficient authentication") as unpaired:
        await t.read(victron.SOC_UUID)
    assert isinstance(unpaired.value, BmsAuthError) and isinstance(unpaired.value, PermissionError)
    with pytest.raises(GattAuthError, match=r"^pair failed: .*AuthenticationFailed") as wrong_pin:
        await t.bond(pin="654321")
    assert "654321" not in str(wrong_pin.value)
    assert await t.bond(pin="123456") is True
    assert await t.read(victron.SOC_UUID)
    await t.disconnect()


async def test_bond_on_a_platform_that_pairs_by_itself_returns_false(radio: SimRadio) -> None:
    em = add_jbd(radio)
    backend = sim_backend(radio, client=raising(radio.client_backend(), "pair", NotImplementedError()))
    t = transport(backend, em.address)
    await t.connect()
    assert await t.bond() is False
    await t.disconnect()


# --- each error of the stack, injected ------------------------------------------------------------

CONNECT_ERRORS = [
    # bleak-retry-connector judges a connect that times out as a device out of reach (BleakNotFoundError)
    (TimeoutError(), DeviceNotFoundError),
    (BleakError("le-connection-abort-by-local"), BmsConnectError),
    (BleakOutOfConnectionSlotsError("out of connection slots"), BmsConnectError),
    (BleakDBusError("org.bluez.Error.NotReady", ["Resource Not Ready"]), BluetoothUnavailableError),
    (BleakDBusError("org.bluez.Error.Failed", ["Software caused connection abort"]), BmsConnectError),
    (DBusError("org.freedesktop.DBus.Error.AccessDenied", "Rejected send message"), BluetoothUnavailableError),
    (DBusError("org.freedesktop.DBus.Error.NoReply", "Did not receive a reply"), BmsConnectError),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/run/dbus/system_bus_socket"),
     BluetoothUnavailableError),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), BluetoothUnavailableError),
    (OSError(errno.EIO, "Input/output error"), BmsConnectError),
    (EOFError(), BmsConnectError),
    (BleakBluetoothNotAvailableError("off", BleakBluetoothNotAvailableReason.POWERED_OFF), BluetoothUnavailableError),
]


@pytest.mark.parametrize(("raised", "expected"), CONNECT_ERRORS, ids=lambda v: type(v).__name__)
async def test_connect_errors(radio: SimRadio, raised: BaseException, expected: type[BmsError]) -> None:
    em = add_jbd(radio)
    t = transport(sim_backend(radio, client=raising(radio.client_backend(), "connect", raised)), em.address)
    with pytest.raises(BmsError) as info:
        await t.connect()
    assert type(info.value) is expected
    assert not t.is_connected
    if expected is DeviceNotFoundError:
        assert t.device is None  # looked for again before the next connect


GATT_ERRORS = [
    (BleakError("Operation failed"), GattError),
    (BleakDBusError("org.bluez.Error.Failed", ["Operation failed with ATT error: 0x0e"]), GattError),
    (BleakDBusError("org.bluez.Error.NotPermitted", ["Read not permitted"]), GattAuthError),
    (BleakDBusError("org.bluez.Error.Failed", ["Insufficient Encryption"]), GattAuthError),
    (BleakGATTProtocolError(BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION), GattAuthError),
    (BleakGATTProtocolError(BleakGATTProtocolErrorCode.UNLIKELY_ERROR), GattError),
    (BleakDBusError("org.bluez.Error.Failed", ["Insufficient Resources"]), GattError),
    (BleakCharacteristicNotFoundError(jbd.NOTIFY_UUID), CharacteristicNotFoundError),
    (BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", ["bluez"]), BluetoothUnavailableError),
    (DBusError("org.freedesktop.DBus.Error.NoReply", "Did not receive a reply"), GattError),
    (OSError(errno.EIO, "Input/output error"), GattError),
    (EOFError(), GattError),
    (TimeoutError(), BmsTimeoutError),
]


@pytest.mark.parametrize(("raised", "expected"), GATT_ERRORS, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("operation", ["read", "write", "subscribe"])
async def test_gatt_errors_on_a_live_link(radio: SimRadio, raised: BaseException, expected: type[BmsError],
                                          operation: str) -> None:
    em = add_jbd(radio)
    method = {"read": "read_gatt_char", "write": "write_gatt_char", "subscribe": "start_notify"}[operation]
    t = transport(sim_backend(radio, client=raising(radio.client_backend(), method, raised)), em.address)
    await t.connect()
    calls = {"read": lambda: t.read(jbd.NOTIFY_UUID), "write": lambda: t.write(jbd.WRITE_UUID, b"\x01"),
             "subscribe": lambda: t.subscribe(jbd.NOTIFY_UUID, jbd.JbdAssembler())}
    with pytest.raises(BmsError) as info:
        await calls[operation]()
    assert type(info.value) is expected
    assert info.value.__cause__ is raised
    assert t.is_connected  # the link stayed up
    await t.disconnect()


@pytest.mark.parametrize("raised", [BleakError("Not connected"), EOFError(), TimeoutError(),
                                    DBusError("org.bluez.Error.Failed", "Not connected")],
                         ids=lambda v: type(v).__name__)
async def test_any_gatt_error_that_leaves_the_link_down_is_a_disconnect(radio: SimRadio,
                                                                        raised: BaseException) -> None:
    em = add_jbd(radio)

    async def drop_then_fail(self: Any, *args: object, **kwargs: object) -> None:
        em.drop_link()
        raise raised

    client = type("Dropping", (radio.client_backend(),), {"read_gatt_char": drop_then_fail})
    t = transport(sim_backend(radio, client=client), em.address)
    await t.connect()
    with pytest.raises(BmsDisconnectedError):
        await t.read(jbd.NOTIFY_UUID)


SCAN_ERRORS = [
    (DBusError("org.freedesktop.DBus.Error.ServiceUnknown", "The name org.bluez was not provided"),
     BluetoothUnavailableError),
    (BleakDBusError("org.bluez.Error.NotReady", ["Resource Not Ready"]), BluetoothUnavailableError),
    (BleakError("No Bluetooth adapters found."), BluetoothUnavailableError),
    (BleakDBusError("org.bluez.Error.InProgress", ["Operation already in progress"]), BmsConnectError),
    (OSError(errno.EIO, "Input/output error"), BmsConnectError),
    (EOFError(), BmsConnectError),
]


@pytest.mark.parametrize(("raised", "expected"), SCAN_ERRORS, ids=lambda v: type(v).__name__)
async def test_scan_errors(radio: SimRadio, raised: BaseException, expected: type[BmsError]) -> None:
    em = add_jbd(radio)
    backend = sim_backend(radio, scanner=raising(radio.scanner_backend(), "start", raised))
    with pytest.raises(BmsError) as resolving:  # the transport looking for its device
        await transport(backend, em.address).connect()
    with pytest.raises(BmsError) as listening:  # an advertisement listener
        await backend.adverts.listener(em.address).start()
    with pytest.raises(BmsError) as scanning:  # `scan`
        await scan(backend, device_types(), timeout=0.2)
    for info in (resolving, listening, scanning):
        assert type(info.value) is expected
        assert info.value.__cause__ is raised
    if expected is BmsConnectError:
        assert "scan failed" in str(resolving.value) and "scan failed" in str(listening.value)
    assert backend.adverts.scanners_running == 0


# --- the translation functions ---------------------------------------------------------------------


def test_device_not_found_errors_of_bleak_and_bleak_retry_connector() -> None:
    # over the radio, bleak-retry-connector retries a missing device for about 36 s before it gives up
    # (test_transport covers a missing device through the scan): here the translation alone
    for exc in (BleakDeviceNotFoundError("5E:00:00:00:00:01", "Device was not found."),
                BleakNotFoundError("5E:00:00:00:00:01 - Failed to connect after 9 attempt(s)")):
        error = connect_error(exc, "5E:00:00:00:00:01")
        assert type(error) is DeviceNotFoundError and "5E:00:00:00:00:01" in str(error)


def test_a_project_error_passes_through_unchanged() -> None:
    exc = BmsTimeoutError("no valid reply within 1 s")
    assert connect_error(exc, "AA:BB:CC:DD:EE:FF") is exc
    assert gatt_error(exc, "AA:BB:CC:DD:EE:FF", "read x", link_up=True) is exc


def test_unavailable_reasons_say_what_is_missing() -> None:
    cases = {
        BleakBluetoothNotAvailableError("x", BleakBluetoothNotAvailableReason.NO_BLUETOOTH): "no Bluetooth adapter",
        BleakBluetoothNotAvailableError("x", BleakBluetoothNotAvailableReason.POWERED_OFF): "powered off",
        DBusError("org.freedesktop.DBus.Error.ServiceUnknown", "no bluez"): "BlueZ (bluetoothd) is not running",
        BleakError("adapter 'hci7' not found"): "the Bluetooth adapter was not found",
        FileNotFoundError(errno.ENOENT, "x"): "D-Bus system bus is not reachable",
    }
    for exc, fragment in cases.items():
        reason = unavailable_reason(exc)
        assert reason is not None and fragment in reason, (exc, reason)
    assert unavailable_reason(BleakError("Operation failed")) is None
    assert unavailable_reason(TimeoutError()) is None

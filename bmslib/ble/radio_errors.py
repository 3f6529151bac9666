"""What the Bluetooth stack's errors mean, as the project's typed errors (:mod:`bmslib.errors`).

bleak, bleak-retry-connector, D-Bus (dbus_fast, under bleak's BlueZ backend) and the OS raise their own
exception types. The BLE layer catches :data:`RADIO_ERRORS` around every call into them and raises what
:func:`connect_error` or :func:`gatt_error` make of it, so nothing above the BLE layer sees a bleak type:

===========================================================  =========================================
raised by the stack                                           becomes
===========================================================  =========================================
any error whose text says there is no adapter, no BlueZ, no   :class:`BluetoothUnavailableError`
D-Bus (:func:`unavailable_reason`); bleak's
``BleakBluetoothNotAvailableError``
``BleakDeviceNotFoundError``, ``BleakNotFoundError``           :class:`DeviceNotFoundError`
(connect)
any other error while scanning or connecting (``BleakError``,  :class:`BmsConnectError`
``TimeoutError``, ``OSError``, ``EOFError``, D-Bus errors)
any error of a GATT operation after which the link is down     :class:`BmsDisconnectedError`
``BleakCharacteristicNotFoundError``                           :class:`CharacteristicNotFoundError`
``TimeoutError`` of a GATT operation                           :class:`BmsTimeoutError`
a GATT operation refused for want of pairing or encryption     :class:`GattAuthError`
(:func:`is_auth_refusal`)
any other error of a GATT operation                            :class:`GattError`
===========================================================  =========================================
"""

from __future__ import annotations

from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakCharacteristicNotFoundError,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)
from bleak_retry_connector import BleakNotFoundError

from bmslib.errors import (
    BluetoothUnavailableError,
    BmsConnectError,
    BmsDisconnectedError,
    BmsError,
    BmsTimeoutError,
    CharacteristicNotFoundError,
    DeviceNotFoundError,
    GattAuthError,
    GattError,
)

try:
    from dbus_fast.errors import DBusError, DBusFastError

    _DBUS_ERRORS: tuple[type[Exception], ...] = (DBusFastError,)
    _DBUS_NAMED: tuple[type[DBusError], ...] = (DBusError,)  # errors carrying a D-Bus error name
except ImportError:  # not Linux: bleak talks to no D-Bus there
    _DBUS_ERRORS = ()
    _DBUS_NAMED = ()

#: Everything the Bluetooth stack raises for a failure of the radio, the adapter, BlueZ or D-Bus (bleak's and
#: bleak-retry-connector's errors are BleakError; TimeoutError covers bleak's own timeouts; dbus_fast's errors
#: escape bleak where it talks to D-Bus directly).
RADIO_ERRORS: tuple[type[Exception], ...] = (BleakError, *_DBUS_ERRORS, OSError, EOFError, TimeoutError)

# Fragments of errors that mean "there is no Bluetooth stack to talk to", with what to tell the user.
_UNAVAILABLE_HINTS = (
    ("no bluetooth adapters found", "no Bluetooth adapter found"),
    ("org.freedesktop.dbus.error.serviceunknown", "BlueZ (bluetoothd) is not running"),
    ("org.freedesktop.dbus.error.accessdenied", "access to BlueZ over D-Bus was denied"),
    ("org.bluez.error.notready", "the Bluetooth adapter is not ready (powered off?)"),
    ("bluetooth device is turned off", "the Bluetooth adapter is powered off"),
    ("system_bus_socket", "the D-Bus system bus is not reachable"),
)
_NOT_AVAILABLE = {
    BleakBluetoothNotAvailableReason.NO_BLUETOOTH: "no Bluetooth adapter found",
    BleakBluetoothNotAvailableReason.NO_BLE_CENTRAL_ROLE: "the Bluetooth adapter cannot connect to BLE devices",
    BleakBluetoothNotAvailableReason.POWERED_OFF: "the Bluetooth adapter is powered off",
}
# Fragments of BlueZ / bleak errors that mean "not paired" or "pairing refused" (BlueZ reports a read or write
# refused for want of a bond as org.bluez.Error.NotPermitted or ...Failed with "Insufficient authentication").
_AUTH_HINTS = ("authentication", "not permitted", "notpermitted", "insufficient authorization", "encryption",
               "not authorized", "notauthorized", "authfailed")
_AUTH_CODES = frozenset({
    BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION, BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHORIZATION,
    BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION, BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION_KEY_SIZE,
})


def _text(exc: BaseException) -> str:
    name = f" [{exc.type}]" if isinstance(exc, _DBUS_NAMED) else ""  # dbus_fast keeps the error name apart
    return f"{type(exc).__name__}{name}: {exc}".lower()


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it was raised from (bleak-retry-connector wraps bleak's, bleak wraps D-Bus's)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return chain


def unavailable_reason(exc: BaseException) -> str | None:
    """What to tell the user if ``exc`` (or an error it was raised from) says the Bluetooth stack (adapter,
    BlueZ, D-Bus) is missing, else None."""
    for error in _causes(exc):
        if (reason := _unavailable(error)) is not None:
            return reason
    return None


def _unavailable(exc: BaseException) -> str | None:
    if isinstance(exc, BluetoothUnavailableError):
        return str(exc)
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return _NOT_AVAILABLE.get(exc.reason, f"Bluetooth is not available ({exc.args[0]})")
    text = _text(exc)
    for hint, reason in _UNAVAILABLE_HINTS:
        if hint in text:
            return reason
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return "the D-Bus system bus is not reachable (no /run/dbus/system_bus_socket)"
    if "adapter" in text and ("not found" in text or "does not exist" in text):
        return f"the Bluetooth adapter was not found ({exc})"
    return None


def is_auth_refusal(exc: BaseException) -> bool:
    """True if ``exc`` says the device refused an operation for want of pairing, authentication or encryption."""
    if isinstance(exc, BleakGATTProtocolError):
        return exc.code in _AUTH_CODES
    text = " ".join(_text(e) for e in _causes(exc))
    return any(h in text for h in _AUTH_HINTS)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def connect_error(exc: BaseException, address: str, *, doing: str = "") -> BmsError:
    """The project error for ``exc``, raised while scanning for or connecting to ``address``.

    ``doing`` prefixes the reason (e.g. ``"scan failed: "``). A TimeoutError becomes a BmsConnectError
    with the stack's text; callers with a better message (the timeout in seconds) raise their own.
    """
    if isinstance(exc, BmsError):
        return exc
    if (reason := unavailable_reason(exc)) is not None:
        return BluetoothUnavailableError(reason)
    if isinstance(exc, BleakDeviceNotFoundError | BleakNotFoundError):
        return DeviceNotFoundError(address, f"{doing}{_reason(exc)}")
    return BmsConnectError(address, f"{doing}{_reason(exc)}")


def gatt_error(exc: BaseException, address: str, action: str, *, link_up: bool) -> BmsError:
    """The project error for ``exc``, raised by the GATT operation ``action`` (e.g. ``"read <uuid>"``)
    on the link to ``address``; ``link_up`` says whether the link was still up after the failure."""
    if isinstance(exc, BmsError):
        return exc
    if not link_up:
        return BmsDisconnectedError(f"{address}: {action}: {_reason(exc)}")
    if isinstance(exc, BleakCharacteristicNotFoundError):
        return CharacteristicNotFoundError(address, str(exc.char_specifier))
    if (reason := unavailable_reason(exc)) is not None:
        return BluetoothUnavailableError(reason)
    if isinstance(exc, TimeoutError):
        return BmsTimeoutError(f"{action}: no answer from the Bluetooth stack ({_reason(exc)})")
    if is_auth_refusal(exc):
        return GattAuthError(action, _reason(exc))
    return GattError(action, _reason(exc))

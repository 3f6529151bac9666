"""The project's exception types. Decoders raise only :class:`FrameError`; transport and config
errors have their own types. Multiple inheritance keeps ``except TimeoutError`` and
``except PermissionError`` working for callers that think in built-ins."""

from __future__ import annotations

from collections.abc import Sequence


class BmsError(Exception):
    """Base of every error this project raises on purpose."""


class FrameError(BmsError):
    """A frame (or a chunk stream) from the radio is malformed: wrong header, length, CRC, content.

    ``raw`` holds the offending bytes for debug logs and bug reports.
    """

    def __init__(self, reason: str, raw: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = bytes(raw)

    def __str__(self) -> str:
        if self.raw:
            more = "..." if len(self.raw) > 64 else ""
            return f"{self.reason} ({len(self.raw)} bytes: {self.raw[:64].hex()}{more})"
        return self.reason


class BmsConnectError(BmsError):
    """Connecting to a device failed (after retries)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address}: {reason}")
        self.address = address
        self.reason = reason


class DeviceNotFoundError(BmsConnectError):
    """The device was not seen by the scanner (out of range, powered off, connected elsewhere)."""


class CharacteristicNotFoundError(BmsConnectError):
    """The connected device has no characteristic ``uuid`` (another device type, another firmware, or a
    GATT service switched off); drivers that know alternatives try them."""

    def __init__(self, address: str, uuid: str) -> None:
        super().__init__(address, f"characteristic {uuid} not found; is this the right device type?")
        self.uuid = uuid


class BmsTimeoutError(BmsError, TimeoutError):
    """A request got no (valid) reply within its timeout."""


class BmsDisconnectedError(BmsError, ConnectionError):
    """The link dropped while a request was pending or a write was attempted."""


class BmsAuthError(BmsError, PermissionError):
    """The device refused our credentials (PIN, password, key)."""


class GattError(BmsError):
    """A GATT operation (read, write, subscribe, pair) failed while the link stayed up: the device or the
    host's Bluetooth stack refused it. ``action`` says what was tried, ``reason`` what the stack said."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"{action} failed: {reason}")
        self.action = action
        self.reason = reason


class GattAuthError(GattError, BmsAuthError):
    """A GATT operation was refused for want of pairing or encryption (the link is not bonded, or the bond
    or PIN is wrong)."""


class BluetoothUnavailableError(BmsError):
    """No Bluetooth stack to talk to (no adapter, no D-Bus, BlueZ not running)."""


class UnsupportedError(BmsError):
    """The device or its protocol variant cannot do what was asked (e.g. a switch it lacks)."""


class UnavailableError(BmsError):
    """The device has nothing current to report (a group whose member stopped sampling): the sampler hands
    it to the App, which reports the device unavailable at once rather than after ``expire_values_after``."""


class ConfigError(BmsError):
    """Invalid configuration. ``problems`` holds one line per problem, each naming the option path.

    ``warnings`` holds the non-fatal remarks found on the way; they often explain a problem (a
    misspelt key next to a missing required one), so show them with it.
    """

    def __init__(self, problems: list[str], warnings: Sequence[str] = ()) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.warnings = tuple(warnings)

"""Status codes shared by both ANT BMS protocol generations (2021 ``7E A1`` and legacy ``AA 55 AA FF``).

Each frame carries a charge-MOSFET, a discharge-MOSFET and a balancer status byte. Code 1 means the
FET is on; the other codes say why it is off. The codes that name a protection become alarm names;
the ones that only describe a state (off, battery full, waiting, switched off by hand) do not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bmslib.model import Reading

FET_ON = 1
BALANCER_ACTIVE = 4  # "automatic equalization": the state the balance switch reports as on
ABSENT_PROBE = -40  # a temperature slot without a probe reads 0xFFD8 (-40 °C)

BATTERY_STATUS: Mapping[int, str] = {
    0: "unknown", 1: "idle", 2: "charge", 3: "discharge", 4: "standby", 5: "error",
}
STATUS_CHARGE, STATUS_DISCHARGE, STATUS_ERROR = 2, 3, 5

CHARGE_FET: Mapping[int, str] = {
    0: "off", 1: "on", 2: "cell_overvoltage", 3: "charge_overcurrent", 4: "battery_full",
    5: "pack_overvoltage", 6: "charge_overtemperature", 7: "mos_overtemperature", 8: "current_abnormal",
    9: "balance_wire_disconnected", 10: "board_overtemperature", 11: "reserved", 12: "charge_mos_open_failed",
    13: "discharge_mos_fault", 14: "waiting", 15: "manually_off", 16: "cell_overvoltage_level2",
    17: "charge_undertemperature", 18: "cell_voltage_difference", 19: "reserved", 20: "self_test_error",
}
DISCHARGE_FET: Mapping[int, str] = {
    0: "off", 1: "on", 2: "cell_undervoltage", 3: "discharge_overcurrent", 4: "discharge_overcurrent_level2",
    5: "pack_undervoltage", 6: "discharge_overtemperature", 7: "mos_overtemperature", 8: "current_abnormal",
    9: "balance_wire_disconnected", 10: "board_overtemperature", 11: "charge_mos_on", 12: "short_circuit",
    13: "discharge_mos_fault", 14: "discharge_mos_open_failed", 15: "manually_off",
    16: "cell_undervoltage_level2", 17: "discharge_undertemperature", 18: "cell_voltage_difference",
    19: "self_test_error",
}
BALANCER: Mapping[int, str] = {
    0: "off", 1: "exceeds_limit", 2: "charge_difference", 3: "balancer_overtemperature", 4: "automatic",
    10: "board_overtemperature",
}
BATTERY_TYPE: Mapping[int, str] = {0xFAF1: "ternary", 0xFAF2: "lifepo4", 0xFAF3: "lto", 0xFAF4: "custom"}

# Codes that describe a state rather than a protection.
CHARGE_FET_STATES = frozenset({0, 1, 4, 11, 14, 15, 19})
DISCHARGE_FET_STATES = frozenset({0, 1, 11, 15})
BALANCER_STATES = frozenset({0, 1, 2, 4})


def code_name(code: int, names: Mapping[int, str], prefix: str) -> str:
    """The name of ``code`` in ``names``; unknown codes become ``<prefix>_<code>``."""
    return names.get(code, f"{prefix}_{code}")


def fet_alarms(charge: int, discharge: int, balancer: int,
               battery_status: int | None = None) -> tuple[str, ...]:
    """Alarm names from the three status bytes (and the 2021 battery status), without duplicates."""
    found: list[str] = []
    if charge not in CHARGE_FET_STATES:
        found.append(code_name(charge, CHARGE_FET, "charge_fet_code"))
    if discharge not in DISCHARGE_FET_STATES:
        found.append(code_name(discharge, DISCHARGE_FET, "discharge_fet_code"))
    if balancer not in BALANCER_STATES:
        found.append(code_name(balancer, BALANCER, "balancer_code"))
    if battery_status == STATUS_ERROR:
        found.append("bms_error")
    return tuple(dict.fromkeys(found))


def fet_reading(charge: int, discharge: int, balancer: int) -> Reading:
    """Switch states and status names of the three status bytes."""
    return {
        "switches": {"charge": charge == FET_ON, "discharge": discharge == FET_ON,
                     "balance": balancer == BALANCER_ACTIVE},
        "extra": {
            "charge_fet_status": code_name(charge, CHARGE_FET, "code"),
            "discharge_fet_status": code_name(discharge, DISCHARGE_FET, "code"),
            "balancer_status": code_name(balancer, BALANCER, "code"),
        },
    }


def present_temperatures(values: Iterable[float]) -> tuple[float, ...]:
    """Probe temperatures without the slots that report the no-probe value."""
    return tuple(float(t) for t in values if t != ABSENT_PROBE)


def cycles(total_cycle_capacity: float, design_capacity: float) -> int | None:
    """Full cycles from the cumulative cycle capacity (Ah), as the ANT app counts them."""
    return int(total_cycle_capacity // design_capacity) if design_capacity > 0 else None

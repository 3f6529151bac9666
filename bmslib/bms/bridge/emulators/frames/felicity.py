"""Felicity Solar (aiobmsble plugin ``felicity``) frames: ASCII commands in, one JSON object out.

The host writes ``wifilocalMonitor:<command>``; the device answers with a compact JSON object (no spaces, keys in
a fixed order) split over notifications, ``{`` first and ``}`` last. ``CommVer`` is 1. The real-time reply
carries the pack as lists of rows (row 0: this pack; 65535 or 32767 mark a value that does not exist):
``BattList`` voltage [mV] and current [0.1 A, + = charging], ``BatsocList`` SoC [0.01 %], SoH [0.1 %] and
capacity [mAh], ``BatcelList`` cell voltages [mV], ``BtemList`` eight temperature slots [0.1 degC],
``BMaxMin`` the highest and lowest cell [mV] and their indexes. ``Batt`` repeats voltage (to 0.1 V) and
current (the voltage rounded to 0.1 V here; how the device rounds is not pinned).

Key order, the fixed values and the layout come from captured replies (tests/bms/bridge/captures/felicity.json).
Values the captures do not pin are sent as captured: the status words ``Estate``/``Bstate`` (960), the limits
``LVolCur``/``BLVolCu``, ``EMSpara``/``BMSpara``, and the second rows of ``BTemp`` and ``Templist``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PREFIX = b"wifilocalMonitor:"
REAL_INFO = b"get dev real infor"
BASIC_INFO = b"get dev basice infor"
DATE = b"get Date"
COMMANDS = (REAL_INFO, BASIC_INFO, DATE)
COMM_VERSION = 1

NONE16 = 65535  # a value that does not exist (a second pack's row)
NO_TEMP = 32767  # an empty temperature slot
TEMP_SLOTS = 8
STATUS_NORMAL = 960  # Estate and Bstate as captured (bits not pinned)
LIMITS = [[576, 480], [1500, 1500]]  # LVolCur / BLVolCu as captured: probably 57.6/48.0 V, 150.0 A
PARAMS = [[1, 2]]  # EMSpara / BMSpara as captured

#: the basic-info reply's fixed fields as captured (firmware 2.06, type 112/7300)
BASIC_FIXED: Mapping[str, Any] = {
    "version": "2.06", "COM": 3, "iotType": 3, "modID": 1, "Type": 112, "SubType": 7300, "DSwVer": 65535,
    "M1SwVer": 519, "M2SwVer": 16, "DHwVer": 0, "CtHwVer": 0, "PwHwVer": 65535,
}


def command(name: bytes) -> bytes:
    return PREFIX + name


def parse_command(data: bytes) -> bytes | None:
    """The command a host write carries (one of :data:`COMMANDS`), or None."""
    name = data.removeprefix(PREFIX).rstrip(b"\r\n\x00")
    return name if data.startswith(PREFIX) and name in COMMANDS else None


def dumps(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


def _temp(celsius: float) -> int:
    return round(celsius * 10)


def real_info(values: Mapping[str, Any]) -> bytes:
    """The real-time reply. ``values``: ``wifi_sn``, ``dev_sn``, ``date`` (``YYYYmmddHHMMSS``), ``fault``,
    ``warn``, ``voltage`` [V], ``current`` [A, + = charging], ``soc`` [%], ``soh`` [%], ``capacity`` [Ah],
    ``cells`` [V], ``temps`` [degC, up to eight]."""
    cells_mv = [round(v * 1000) for v in values["cells"]]
    temps = [_temp(t) for t in values["temps"][:TEMP_SLOTS]]
    t_max, t_min = (max(temps), min(temps)) if temps else (NO_TEMP, NO_TEMP)
    hi = cells_mv.index(max(cells_mv)) if cells_mv else 0
    lo = cells_mv.index(min(cells_mv)) if cells_mv else 0
    mv, deci_a = round(values["voltage"] * 1000), round(values["current"] * 10)
    soc_row = [round(values["soc"] * 100), round(values["soh"] * 10), round(values["capacity"] * 1000)]
    return dumps({
        "CommVer": COMM_VERSION, "wifiSN": values["wifi_sn"], "modID": 1, "date": values["date"],
        "DevSN": values["dev_sn"], "Type": BASIC_FIXED["Type"], "SubType": BASIC_FIXED["SubType"],
        "Estate": STATUS_NORMAL, "Bfault": values["fault"], "Bwarn": values["warn"], "Bstate": STATUS_NORMAL,
        "BBfault": values["fault"], "BBwarn": values["warn"],
        "BTemp": [[t_max, t_min], [256, 256]],
        "Batt": [[round(mv, -2)], [deci_a], [None]],
        "Batsoc": [soc_row],
        "Templist": [[t_max, t_min], [0, 0], [NONE16, NONE16], [NONE16, NONE16]],
        "BattList": [[mv, NONE16], [deci_a, -1]],
        "BatsocList": [soc_row],
        "BatcelList": [cells_mv, [NONE16] * len(cells_mv)],
        "EMSpara": PARAMS,
        "BMaxMin": [[max(cells_mv, default=0), min(cells_mv, default=0)], [hi, lo]],
        "LVolCur": LIMITS, "BMSpara": PARAMS, "BLVolCu": LIMITS,
        "BtemList": [temps + [NO_TEMP] * (TEMP_SLOTS - len(temps))],
    })


def basic_info(wifi_sn: str, dev_sn: str) -> bytes:
    f = BASIC_FIXED
    return dumps({"CommVer": COMM_VERSION, "version": f["version"], "wifiSN": wifi_sn, "COM": f["COM"],
                  "iotType": f["iotType"], "modID": f["modID"], "DevSN": dev_sn, "Type": f["Type"],
                  "SubType": f["SubType"], "DSwVer": f["DSwVer"], "M1SwVer": f["M1SwVer"], "M2SwVer": f["M2SwVer"],
                  "DHwVer": f["DHwVer"], "CtHwVer": f["CtHwVer"], "PwHwVer": f["PwHwVer"]})


def date_info(wifi_sn: str, date: str, tz_minutes: int = 480) -> bytes:
    return dumps({"CommVer": COMM_VERSION, "wifiSN": wifi_sn, "iotType": BASIC_FIXED["iotType"], "dateTime": date,
                  "timeZMin": tz_minutes})


"""The ``devices`` list: each entry validated on its own, then aliases, addresses and groups across entries.

Types, addresses (MAC, ``sim:<id>``, CoreBluetooth UUID, BLE name), adapters, PINs and keys are checked
per entry; then aliases, MQTT topics and addresses must be unique, group members are resolved (a member
is a configured device, in one group only, not a group), and an algorithm needs a charge switch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bmslib.config.formats import (
    ADAPTER,
    HEX_KEY,
    MAC,
    SIM_ID,
    UUID,
    looks_like_mac,
    normal_mac,
    sim_knobs,
    topic_level_problem,
)
from bmslib.config.option_reader import Report, Section, show
from bmslib.config.original_types import original_type
from bmslib.config.settings import (
    AUTO_TYPE,
    GROUP_TYPES,
    BleStack,
    DeviceConfig,
    TypeInfo,
    mqtt_node_id,
    topic_prefix,
)
from bmslib.options import DEVICE_OPTIONS
from bmslib.sim.knobs import KnobValues


@dataclass
class _Draft:
    """A device entry between the per-entry checks and the cross-entry checks."""

    index: int
    section: Section
    address: str
    type: str | None  # None: missing or unknown (already reported)
    alias: str | None  # None: invalid or missing (already reported)
    pin: str | None
    key: str | None
    adapter: str | None
    debug: bool
    current_calibration: float
    algorithm: str | None
    keep_alive: bool | None
    member_refs: tuple[str, ...] = ()
    members: tuple[int, ...] = ()  # indices of the resolved members
    soc_calibration_days: float | None = None
    sim_knobs: KnobValues = ()
    alias_from_address: bool = False

    @property
    def is_group(self) -> bool:
        return self.type in GROUP_TYPES


class DeviceParser:
    def __init__(self, top: Section, types: Mapping[str, TypeInfo],
                 validate_algorithm: Callable[[str], str | None], report: Report, *, stack: BleStack = "bleak",
                 proxy_names: Sequence[str] = ()) -> None:
        self._top = top
        self._stack = stack
        self._proxies = {name.casefold(): name for name in proxy_names}
        self._types = types
        self._validate_algorithm = validate_algorithm
        self._report = report
        self._known = {name.casefold(): name for name in (*types, *GROUP_TYPES, AUTO_TYPE)}
        self._skipped: dict[str, int] = {}  # casefolded alias of a skipped entry -> its index

    def parse(self) -> tuple[DeviceConfig, ...]:
        drafts = [d for i, entry in enumerate(self._top.items("devices")) if (d := self._entry(i, entry))]
        self._check_unique(drafts)
        self._resolve_groups(drafts)
        for draft in drafts:
            self._check_algorithm(draft, drafts)
        by_index = {d.index: d for d in drafts}
        return tuple(
            DeviceConfig(
                address=d.address, type=d.type or "", alias=d.alias or "", pin=d.pin, key=d.key,
                adapter=d.adapter, debug=d.debug, current_calibration=d.current_calibration,
                algorithm=d.algorithm, keep_alive=d.keep_alive,
                members=tuple(by_index[m].alias or "" for m in d.members), index=d.index,
                soc_calibration_days=d.soc_calibration_days, sim_knobs=d.sim_knobs,
                alias_from_address=d.alias_from_address,
            )
            for d in drafts
        )

    # One entry ---------------------------------------------------------------------------------------

    def _entry(self, index: int, entry: object) -> _Draft | None:
        path = f"devices[{index}]"
        if not isinstance(entry, Mapping):
            what = show(entry)
            self._report.problems.append(f"{path}: expected a mapping with address and type, got {what}")
            return None
        sec = Section(entry, DEVICE_OPTIONS, f"{path}.", self._report)
        raw_address = entry.get("address")
        if "address" in entry and (raw_address is None or isinstance(raw_address, str)):
            stripped = (raw_address or "").strip()
            if not stripped or stripped.startswith("#"):
                why = f"the address {show(stripped)} starts with '#'" if stripped else "the address is empty"
                self._report.warnings.append(f"{path}: skipped, {why}")
                if isinstance(alias := entry.get("alias"), str) and alias.strip():
                    self._skipped[alias.strip().casefold()] = index
                return None
        sec.check_unknown_keys()
        type_name = self._type(sec)
        address_text = sec.opt_text("address")
        address, knobs = self._address(sec, address_text, type_name) if address_text is not None else (None, ())
        draft = _Draft(
            index=index, section=sec, address=address or "", type=type_name, alias=None,
            pin=sec.opt_text("pin"), key=sec.opt_text("key"),
            adapter=self._adapter(sec, simulated=address is not None and address.startswith("sim:")),
            debug=sec.flag("debug"), current_calibration=sec.number("current_calibration"),
            algorithm=sec.opt_text("algorithm"), keep_alive=sec.opt_flag("keep_alive"),
            soc_calibration_days=sec.opt_number("soc_calibration_days"), sim_knobs=knobs,
        )
        sec.raw("note")  # free text: accepted as anything, never used
        if draft.is_group and address_text is not None:
            draft.member_refs = tuple(r.strip() for r in address_text.split(",") if r.strip())
            if not draft.member_refs:
                sec.problem("address", "a group needs at least one member")
        draft.alias = self._alias(sec, draft, address)
        self._check_secrets(sec, draft)
        if draft.is_group and draft.adapter is not None:
            sec.warn("adapter", "ignored: a group has no Bluetooth connection of its own")
            draft.adapter = None
        return draft

    def _type(self, sec: Section) -> str | None:
        text = sec.opt_text("type")
        if text is None:
            raw = sec.raw("type")  # left out or empty: detected; present but not text: reported
            return AUTO_TYPE if raw is None or (isinstance(raw, str) and not raw.strip()) else None
        name = self._known.get(text.casefold())
        if name is not None:
            return name
        renamed, why = original_type(text.casefold())
        if renamed is not None and renamed in self._types:
            note = f" ({why})" if why else ""
            sec.warn("type", f"{show(text)} is batmon-ha's name; read as {show(renamed)}{note}")
            return renamed
        if renamed is not None:
            why = ""
        if why:
            sec.problem("type", f"{show(text)} {why}")
            return None
        known = ", ".join(sorted(set(self._types) | set(GROUP_TYPES) | {AUTO_TYPE}))
        sec.problem("type", f"{show(text)} is not a known type ({known})")
        return None

    def _address(self, sec: Section, text: str, type_name: str | None) -> tuple[str | None, KnobValues]:
        """The normalised address (None when invalid: reported) and, for ``sim:<id>?<knobs>``, the knobs."""
        if type_name in GROUP_TYPES:
            return text, ()
        if text[:4].lower() == "sim:":
            sim_id, _, query = text[4:].partition("?")
            if not SIM_ID.fullmatch(sim_id):
                sec.problem("address", f"{show(text)} is not a valid simulator address "
                                       "(sim:<id>, the id of letters, digits, '_' and '-')")
                return None, ()
            knobs, problems = sim_knobs(query)
            for problem in problems:
                sec.problem("address", f"{show(text)}: {problem}")
            return "sim:" + sim_id, knobs
        return self._radio_address(sec, text, type_name), ()

    def _radio_address(self, sec: Section, text: str, type_name: str | None) -> str | None:
        if type_name == "dummy":
            return text
        if (mac := normal_mac(text)) is not None:
            return mac
        if UUID.fullmatch(text):
            return text.upper()
        if looks_like_mac(text):
            sec.problem("address", f"{show(text)} is not a valid MAC address")
            return None
        return text  # a BLE advertised name, resolved at start

    def _adapter(self, sec: Section, *, simulated: bool) -> str | None:
        """hciN or an adapter's MAC (ble_stack bleak), or a proxy's name (ble_stack esphome: the device is reached
        through that proxy only)."""
        text = sec.opt_text("adapter")
        if text is None:
            return None
        proxies = ", ".join(self._proxies.values()) or "none configured"
        if self._stack == "esphome" and not simulated:
            if (name := self._proxies.get(text.casefold())) is not None:
                return name
            sec.problem("adapter", f"{show(text)} is not one of the bluetooth_proxies ({proxies}); with ble_stack: "
                                   "esphome a device is reached through the proxies only")
            return None
        if ADAPTER.fullmatch(text):
            return text
        if (mac := normal_mac(text)) is not None:
            return mac
        if text.casefold() in self._proxies:
            sec.problem("adapter", f"{show(text)} names a proxy, but ble_stack is bleak (set ble_stack: esphome)")
            return None
        sec.problem("adapter",
                    f"{show(text)} is not a Bluetooth adapter (hci0, hci1, ... or its MAC address)")
        return None

    def _alias(self, sec: Section, draft: _Draft, address: str | None) -> str | None:
        raw = sec.raw("alias")
        if isinstance(raw, str) and not raw.strip():
            sec.problem("alias", "must not be empty (leave it out to use the default)")
            return None
        alias = sec.opt_text("alias")
        if alias is not None:
            if (problem := topic_level_problem(alias)) is not None:
                sec.problem("alias", f"{show(alias)} {problem}")
                return None
            return alias
        if raw is not None:  # present but of the wrong type: reported
            return None
        if draft.is_group:
            sec.problem("alias", "is required for a group")
            return None
        if address is None:
            return None
        if address.startswith("sim:"):
            alias = address[4:]
        elif MAC.fullmatch(address) or UUID.fullmatch(address):
            alias = re.sub("[:-]", "", address).lower()
            draft.alias_from_address = True  # named after its advertised name at start, when seen
        else:
            alias = address
        if (problem := topic_level_problem(alias)) is not None:
            sec.problem("alias", f"the default {show(alias)} (from the address) {problem}; set an alias")
            return None
        return alias

    def _check_secrets(self, sec: Section, draft: _Draft) -> None:
        info = self._types.get(draft.type) if draft.type is not None else None
        accepts_pin = info is not None and info.accepts_pin
        accepts_key = info is not None and info.accepts_key
        known_type = draft.type not in (None, AUTO_TYPE)  # auto: checked once the type is detected
        if draft.pin is not None and known_type and not accepts_pin:
            sec.warn("pin", f"type {show(draft.type)} does not use a PIN; ignored")
            draft.pin = None
        if (draft.pin is not None and info is not None and info.pin_problem is not None
                and (problem := info.pin_problem(draft.pin)) is not None):
            sec.problem("pin", problem)
        if draft.key is not None:
            if known_type and not accepts_key:
                sec.problem("key", f"type {show(draft.type)} does not use a key "
                                   "(only Victron Instant Readout does)")
            elif not HEX_KEY.fullmatch(draft.key.strip()):
                sec.problem("key", "must be 32 hex digits")
            draft.key = draft.key.strip().lower()

    # Across entries ----------------------------------------------------------------------------------

    def _check_unique(self, drafts: list[_Draft]) -> None:
        aliases: dict[str, int] = {}
        topics: dict[str, int] = {}
        addresses: dict[str, int] = {}
        for d in drafts:
            if d.alias is not None:
                first = aliases.setdefault(d.alias.casefold(), d.index)
                if first != d.index:
                    d.section.problem("alias", f"{show(d.alias)} is already used by devices[{first}]")
                    continue
                prefix = topic_prefix(d.alias)
                for key in {prefix.casefold(), mqtt_node_id(prefix).casefold()}:
                    first = topics.setdefault(key, d.index)
                    if first != d.index:
                        d.section.problem("alias", f"{show(d.alias)} gives the same MQTT topics ({key}) as the "
                                                   f"alias of devices[{first}]; choose another alias")
                        break
            if d.address and not d.is_group and d.type not in (None, "dummy"):
                first = addresses.setdefault(d.address.casefold(), d.index)
                if first != d.index:
                    d.section.problem("address", f"{show(d.address)} is already used by devices[{first}]")

    def _resolve_groups(self, drafts: list[_Draft]) -> None:
        by_alias = {d.alias.casefold(): d for d in reversed(drafts) if d.alias is not None}
        by_address = {d.address.casefold(): d for d in reversed(drafts) if not d.is_group and d.address}
        devices = sorted(d.alias for d in drafts if d.alias is not None and not d.is_group)
        listing = f"({', '.join(devices)})" if devices else "(there are none)"
        group_of: dict[int, _Draft] = {}  # member index -> its group
        for group in drafts:
            if not group.is_group:
                continue
            members: list[int] = []
            for ref in group.member_refs:
                key = (normal_mac(ref) or ref).casefold()
                target = by_alias.get(key) or by_address.get(key)
                problem = None
                if target is None:
                    skipped = self._skipped.get(ref.casefold())
                    problem = (f"group member {show(ref)} is not a configured device {listing}"
                               if skipped is None
                               else f"group member {show(ref)} is skipped (devices[{skipped}])")
                elif target is group:
                    problem = f"group {show(group.alias or ref)} cannot contain itself"
                elif target.is_group:
                    problem = f"group member {show(ref)} is a group; groups cannot contain groups"
                elif target.index in members:
                    problem = f"group member {show(ref)} is listed twice"
                elif (other := group_of.get(target.index)) is not None:
                    problem = (f"group member {show(ref)} is already in group {show(other.alias)} "
                               f"(devices[{other.index}])")
                if problem is not None:
                    group.section.problem("address", problem)
                    continue
                assert target is not None
                members.append(target.index)
                group_of[target.index] = group
            group.members = tuple(members)

    def _check_algorithm(self, draft: _Draft, drafts: list[_Draft]) -> None:
        if draft.algorithm is None and draft.soc_calibration_days is not None:
            draft.section.warn("soc_calibration_days", "not used without an algorithm")
        if draft.algorithm is None or draft.type is None:
            return
        sec = draft.section
        if draft.is_group:
            by_index = {d.index: d for d in drafts}
            lacking = [by_index[m] for m in draft.members if "charge" not in self._switches(by_index[m].type)]
            if lacking:
                names = ", ".join(d.alias or "" for d in lacking)
                sec.problem("algorithm", f"needs a device with a charge switch; group {show(draft.alias)} "
                                         f"has members without one ({names})")
                return
            if not draft.members:
                return
        elif draft.type == AUTO_TYPE:
            sec.problem("algorithm", "needs a device with a charge switch, known only once the type is detected; "
                                     "set `type:` for a device with an algorithm")
            return
        elif "charge" not in self._switches(draft.type):
            sec.problem("algorithm",
                        f"needs a device with a charge switch; type {show(draft.type)} has none")
            return
        if (problem := self._validate_algorithm(draft.algorithm)) is not None:
            sec.problem("algorithm", problem)

    def _switches(self, type_name: str | None) -> frozenset[str]:
        info = self._types.get(type_name) if type_name is not None else None
        return info.switches if info is not None else frozenset()


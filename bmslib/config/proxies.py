"""``ble_stack`` and the ``bluetooth_proxies`` list: which Bluetooth stack reads the devices, and the ESPHome
nodes (``bluetooth_proxy``) reached over their native API when it is ``esphome``.

The original add-on's other stacks (``bumble``, ``bluek``) are read as ``bleak`` with one warning. A proxy entry
needs a ``host`` (a host name or an IP address); ``port`` defaults to 6053, ``name`` to the host; ``noise_psk``
(the node's API encryption key) must be base64 of 32 bytes, and a message about it never shows it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from typing import Final

from bmslib.config.formats import ADAPTER, MAC
from bmslib.config.option_reader import Report, Section, show
from bmslib.config.settings import BleStack, ProxyConfig
from bmslib.options import PROXY_OPTIONS

#: the original add-on's stacks batmon reads as bleak (its PYTHONPATH shadows of bleak)
READ_AS_BLEAK: Final = ("bumble", "bluek")
STACKS: Final[tuple[BleStack, ...]] = ("bleak", "esphome")
NOISE_PSK_BYTES = 32
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def parse_ble_stack(top: Section) -> BleStack:
    """``ble_stack``: bleak or esphome; bumble and bluek are read as bleak (a warning says so)."""
    text = top.text("ble_stack")
    word = text.strip().casefold()
    if word == "esphome":
        return "esphome"
    if word == "bleak":
        return "bleak"
    if word in READ_AS_BLEAK:
        top.warn("ble_stack", f"{show(text)} is not available in batmon; read as 'bleak' (the host's adapters)")
        return "bleak"
    top.problem("ble_stack", f"{show(text)} is not a Bluetooth stack (bleak, esphome)")
    return "bleak"


def host_problem(host: str) -> str | None:
    """Why ``host`` is not a host name or an IP address, or None."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    if len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit():
        return None
    if ":" in host and host.count(":") == 1:
        return f"{show(host)} is not a host name or IP address (the port goes into port)"
    return f"{show(host)} is not a host name or IP address"


def noise_psk_problem(psk: str) -> str | None:
    """Why ``psk`` is not an ESPHome API encryption key (base64 of 32 bytes), or None. Never shows the key."""
    try:
        raw = base64.b64decode(psk.strip(), validate=True)
    except (binascii.Error, ValueError):
        return ("is not an ESPHome API encryption key (base64 of 32 bytes, as in the node's "
                "api: encryption: key:)")
    if len(raw) != NOISE_PSK_BYTES:
        return (f"is not an ESPHome API encryption key: it decodes to {len(raw)} bytes, not {NOISE_PSK_BYTES} "
                "(copy the node's api: encryption: key:)")
    return None


def parse_proxies(top: Section, report: Report, stack: BleStack) -> tuple[ProxyConfig, ...]:
    """The ``bluetooth_proxies`` entries, validated; names and host:port pairs are unique."""
    proxies: list[ProxyConfig] = []
    names: dict[str, int] = {}
    endpoints: dict[tuple[str, int], int] = {}
    for index, entry in enumerate(top.items("bluetooth_proxies")):
        path = f"bluetooth_proxies[{index}]"
        if not isinstance(entry, Mapping):
            report.problems.append(f"{path}: expected a mapping with host (and port, noise_psk, name), "
                                   f"got {show(entry)}")
            continue
        sec = Section(entry, PROXY_OPTIONS, f"{path}.", report)
        sec.check_unknown_keys()
        host = sec.opt_text("host")
        port = sec.integer("port")
        psk = sec.opt_text("noise_psk")
        name = sec.opt_text("name")
        ok = host is not None
        if host is not None and (problem := host_problem(host)) is not None:
            sec.problem("host", problem)
            ok = False
        if psk is not None and (problem := noise_psk_problem(psk)) is not None:
            sec.problem("noise_psk", problem)
            ok = False
        if name is not None and (ADAPTER.fullmatch(name) or MAC.fullmatch(name)):
            sec.problem("name", f"{show(name)} looks like a local adapter (hciN or a MAC address); "
                                "choose another name")
            ok = False
        if not ok or host is None:
            continue
        proxy = ProxyConfig(host=host, port=port, noise_psk=psk.strip() if psk else None, name=name or host)
        first = names.setdefault(proxy.name.casefold(), index)
        if first != index:
            sec.problem("name" if name else "host", f"{show(proxy.name)} is already the name of "
                                                    f"bluetooth_proxies[{first}]")
            continue
        first = endpoints.setdefault((host.casefold(), port), index)
        if first != index:
            sec.problem("host", f"{host}:{port} is already bluetooth_proxies[{first}]")
            continue
        proxies.append(proxy)
    if stack == "esphome" and not proxies and not top.items("bluetooth_proxies"):
        top.problem("bluetooth_proxies", "ble_stack is esphome: add at least one proxy (host, and noise_psk "
                                         "when its API is encrypted)")
    elif stack == "bleak" and proxies:
        top.warn("bluetooth_proxies", "not used, because ble_stack is bleak (set ble_stack: esphome)")
    return tuple(proxies)

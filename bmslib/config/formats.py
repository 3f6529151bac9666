"""Text formats in options: MAC and CoreBluetooth addresses, simulator knobs, adapters, keys, host:port, MQTT
topic levels."""

from __future__ import annotations

import math
import re

from bmslib.config.option_reader import show
from bmslib.sim.knobs import KNOBS, Knob, KnobValue, KnobValues, knob

MAC = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")
MAC_ATTEMPT = re.compile(r"[0-9A-Za-z]{1,3}(?:[:-][0-9A-Za-z]{1,3}){2,}")
UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
SIM_ID = re.compile(r"[A-Za-z0-9_-]+")
ADAPTER = re.compile(r"hci[0-9]+")
HEX_KEY = re.compile(r"[0-9A-Fa-f]{32}")
PORT = re.compile(r"[0-9]{1,5}")


def normal_mac(text: str) -> str | None:
    return text.upper().replace("-", ":") if MAC.fullmatch(text) else None


def looks_like_mac(text: str) -> bool:
    """A failed attempt at a MAC (wrong group count or digits), not a BLE name that has a dash."""
    return bool(MAC_ATTEMPT.fullmatch(text)) and (":" in text or text.count("-") >= 4)


def sim_knobs(query: str) -> tuple[KnobValues, list[str]]:
    """The knobs of a ``sim:<id>?<query>`` address (``name=value`` joined by '&'), checked against the
    simulator's knob table: (the valid ones in order, one problem per bad one)."""
    values: list[tuple[str, KnobValue]] = []
    problems: list[str] = []
    for word in query.split("&"):
        if not word:
            continue
        name, sep, text = word.partition("=")
        k = knob(name)
        if k is None:
            problems.append(f"{show(name)} is not a simulator knob ({', '.join(k.name for k in KNOBS)})")
        elif any(n == name for n, _ in values):
            problems.append(f"{name} is given twice")
        elif not sep:
            problems.append(f"{name} needs a value ({name}=...)")
        else:
            value, problem = _knob_value(k, text)
            if problem is not None:
                problems.append(f"{name}={text}: {problem}")
            elif value is not None:
                values.append((name, value))
    return tuple(values), problems


def _knob_value(k: Knob, text: str) -> tuple[KnobValue | None, str | None]:
    if k.kind == "bool":
        flags = {"1": True, "true": True, "0": False, "false": False}
        return (flags[text], None) if text in flags else (None, "must be 0 or 1 (or false or true)")
    if k.kind == "name":
        return (text, None) if SIM_ID.fullmatch(text) else (None, "must be letters, digits, '_' and '-'")
    value: int | float
    try:
        value = int(text) if k.kind == "int" else float(text)
    except ValueError:
        return None, "must be an integer" if k.kind == "int" else "must be a number"
    lo, hi = k.minimum, k.maximum
    if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        return None, f"must be {_bound(lo)}..{_bound(hi)}"
    return value, None


def _bound(x: float | None) -> str:
    return "" if x is None else str(int(x)) if float(x).is_integer() else f"{x:g}"


def topic_level_problem(text: str) -> str | None:
    """Why ``text`` cannot be (part of) an MQTT topic, or None."""
    if not text:
        return "must not be empty"
    if "#" in text or "+" in text:
        return "must not contain '#' or '+'"
    if text.startswith("/") or text.endswith("/"):
        return "must not start or end with '/'"
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "must not contain control characters"
    return None


def split_host_port(text: str) -> tuple[str, int | None, str | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port, problem)."""
    if "://" in text:
        return "", None, f"{show(text)} is a URL; give a host name or address, optionally with :port"
    port_text: str | None = None
    if text.startswith("["):
        m = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", text)
        if m is None:
            return "", None, f"{show(text)} is not a valid address; write IPv6 as [addr] or [addr]:port"
        host, port_text = m[1], m[2]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text  # a name, an IPv4 address, or an IPv6 address without a port
    if not host:
        return "", None, f"{show(text)} has no host"
    if any(c.isspace() or c in "/[]" for c in host):
        return "", None, f"{show(text)} is not a host name or address"
    if port_text is None:
        return host, None, None
    if not PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        return "", None, f"{show(text)} has an invalid port (1..65535)"
    return host, int(port_text), None


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


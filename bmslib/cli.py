"""Command line: run the daemon, ``scan`` for devices, ``decode`` captured chunks, list the ``types``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bmslib import __version__
from bmslib.algorithm import validate_algorithm
from bmslib.config import DEFAULT_SEARCH, AppConfig, load_config, parse_config, read_options_file
from bmslib.config.settings import GROUP_MODES
from bmslib.errors import BluetoothUnavailableError, BmsConnectError, BmsError, ConfigError
from bmslib.family import DeviceType, Family
from bmslib.registry import device_types, type_infos

if TYPE_CHECKING:
    from bmslib.ble.backend import BleBackend
    from bmslib.sim.faults import FaultPlan
    from bmslib.sinks.base import SinkFactory

EXIT_CONFIG = 2
EXIT_NO_FRAME = 1  # `decode`: the input holds no complete frame
DEMO_STATE_DIR = "demo-state"  # --demo without --state-dir keeps its state here
SHUTDOWN_GRACE = 5.0  # [s] SIGTERM to exit

_LOG = logging.getLogger("batmon")


#: The demo's battery bank: two simulated JBD packs in parallel, coupled on one bus (``bank=demo``: one
#: voltage, the bank's load split between them; see bmslib/sim/bank.py). The sim ids seed the batteries,
#: 200 Ah at about 41 % and 100 Ah at about 88 %, which equalise when connected: both start near 57 %. An
#: algorithm switches the packs' charge FETs off at once (57 % >= 55 %) and on again at 50 %.
DEMO_BANK: tuple[dict[str, Any], ...] = (
    {"address": "sim:bank1?bank=demo", "type": "jbd", "alias": "demo_bank_a"},
    {"address": "sim:bank2?bank=demo", "type": "jbd", "alias": "demo_bank_b"},
    {"address": "demo_bank_a, demo_bank_b", "type": "group_parallel", "alias": "demo_bank",
     "algorithm": "soc 55% 50%"},
)


def demo_devices(types: Mapping[str, DeviceType]) -> list[dict[str, Any]]:
    """One simulated device per type that has an emulator, plus a dummy, and a battery bank (a group)."""
    devices = [{"address": f"sim:{name}1", "type": name, "alias": f"demo_{name}", **t.emulator.demo_options}
               for name, t in sorted(types.items()) if t.emulator is not None and t.in_demo]
    devices.append({"address": "demo battery", "type": "dummy", "alias": "demo_dummy"})
    if "jbd" in types:
        devices += [dict(d) for d in DEMO_BANK]
    return devices


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py", description="batmon: BLE BMS to Home Assistant (MQTT), "
                                "InfluxDB and energy meters.")
    p.add_argument("--version", action="version", version=f"batmon {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the daemon (the default)")
    for parser in (p, run):
        parser.add_argument("--config", metavar="PATH", help="options file (YAML or JSON); default: "
                            "/data/options.json, ./options.yaml, ./options.json")
        parser.add_argument("--demo", action="store_true", help="simulated devices instead of the configured "
                            "ones (one per type, plus a dummy), sampling every second")
        parser.add_argument("--demo-proxy", action="store_true", help="with --demo: read the simulated devices "
                            "through a simulated ESPHome Bluetooth proxy on a loopback port (ble_stack: esphome)")
        parser.add_argument("--state-dir", metavar="DIR", help="where meter and algorithm state is kept "
                            "(default: /data in the add-on, ./demo-state with --demo, else the current "
                            "directory)")
        parser.add_argument("--save-interval", metavar="S", type=float, default=30.0,
                            help="seconds between two saves of the energy meters (default 30)")

    scan = sub.add_parser("scan", help="list BLE devices and the device type detected from each advertisement",
                          description="List the BLE devices heard and the device type detected from each one's "
                          "advertisement (what `type: auto` would use): a type, 'ambiguous: a|b' when it fits "
                          "BMSes of several families (then set `type:` yourself), or '-'.")
    scan.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds to scan (default 10)")
    scan.add_argument("--adapter", metavar="hciN", help="Bluetooth adapter to scan with")
    scan.add_argument("--demo", action="store_true", help="scan the demo's simulated devices (those of "
                      "`main.py --demo`)")
    scan.add_argument("--json", action="store_true", help="one JSON object per line and device: address, name, "
                      "rssi, type (null when none), candidates (when ambiguous), simulated_as (the type a "
                      "simulated device emulates), via (the ESPHome proxy that heard it)")
    scan.add_argument("--config", metavar="PATH", help="options file: with ble_stack: esphome, scan through its "
                      "bluetooth_proxies (each line names the proxy that hears the device)")

    sub.add_parser("types", help="print every device type as JSON: family, via (native or aiobmsble), what it "
                   "reads, switches, PIN/key")

    dec = sub.add_parser("decode", help="decode notification chunks (hex) of a device type; prints JSON")
    dec.add_argument("--type", required=True, dest="type_name", help="device type, e.g. jbd")
    dec.add_argument("--key", help="Victron Instant Readout key (32 hex digits); with --type victron each HEX is "
                     "one advertisement: the manufacturer data of company 0x02E1 without the company id "
                     "(it starts with 10)")
    dec.add_argument("hex", nargs="+", help="notification chunks in arrival order, as hex (victron: one "
                     "advertisement each, see --key)")
    return p


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr, force=True)
    for noisy in ("bleak", "bleak_retry_connector", "asyncio", "bleak_esphome", "habluetooth"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
    # aioesphomeapi logs every reconnect attempt and its outcome: batmon says it once per proxy (batmon.proxy)
    logging.getLogger("aioesphomeapi").setLevel(logging.INFO if verbose else logging.ERROR)


def main(argv: Sequence[str] | None = None, *, sink_factories: Sequence[SinkFactory]) -> int:
    """Run the command ``argv`` asks for; ``run`` hands the App ``sink_factories`` (main.py's: the MQTT
    sink lives above bmslib)."""
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    setup_logging(args.verbose)
    if command == "decode":
        return cmd_decode(args.type_name, args.hex, key=args.key)
    if command == "scan":
        return asyncio.run(cmd_scan(timeout=args.timeout, adapter=args.adapter, demo=args.demo, as_json=args.json,
                                    config_path=args.config))
    if command == "types":
        return cmd_types()
    return cmd_run(config_path=args.config, demo=args.demo or args.demo_proxy, demo_proxy=args.demo_proxy,
                   state_dir=args.state_dir, verbose=args.verbose, save_interval=args.save_interval,
                   sink_factories=sink_factories)


# --- decode -----------------------------------------------------------------------------------------

def cmd_decode(type_name: str, hex_chunks: Sequence[str], *, key: str | None = None) -> int:
    from bmslib.cli_decode import NoCompleteFrame, decode_chunks  # noqa: PLC0415  (keeps `main.py --help` fast)

    types = device_types()
    if type_name not in types:
        print(f"--type: {type_name!r} is not a known type ({', '.join(sorted(types))})", file=sys.stderr)
        return EXIT_CONFIG
    try:
        chunks = [bytes.fromhex(h.replace(":", "").replace(" ", "")) for h in hex_chunks]
    except ValueError as exc:
        print(f"hex: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        result = decode_chunks(types[type_name], chunks, {"key": key} if key else {})
    except NoCompleteFrame as exc:
        print(exc, file=sys.stderr)
        return EXIT_NO_FRAME
    except ValueError as exc:
        print(f"--type: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


# --- scan -------------------------------------------------------------------------------------------

async def cmd_scan(*, timeout: float, adapter: str | None, demo: bool, as_json: bool = False,
                   config_path: str | None = None) -> int:
    """List the devices heard, each with the type detected from its advertisement (:mod:`bmslib.detection`);
    ``demo``: the demo's simulated devices (as ``main.py --demo`` builds them), each with the type it emulates;
    ``config_path``: with its ``ble_stack: esphome``, through its ESPHome proxies."""
    from bmslib.app import simulated_radio  # noqa: PLC0415  (keeps `main.py --help` fast)
    from bmslib.ble.backend import BleBackend  # noqa: PLC0415
    from bmslib.ble.scan import scan  # noqa: PLC0415
    from bmslib.detection import Detector  # noqa: PLC0415
    from bmslib.registry import families  # noqa: PLC0415

    detector = Detector(families())
    types = detector.types
    backend = BleBackend()
    radio = None
    simulated: dict[str, str] = {}  # emulator MAC -> the type it emulates
    proxies = None
    if config_path is not None and not demo:
        try:
            user_config = load_config(config_path, env=dict(os.environ), types=type_infos(types))
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return EXIT_CONFIG
        if user_config.ble_stack == "esphome":
            from bmslib.ble.esphome import ProxyManager  # noqa: PLC0415

            proxies = ProxyManager(user_config.bluetooth_proxies)
            backend = proxies.backend
            await proxies.start()
    if demo:
        config = parse_config({"devices": demo_devices(types)}, source="built-in demo", env={},
                              types=type_infos(types), validate_algorithm=validate_algorithm)
        radio = simulated_radio(config.devices, types)
        simulated = {em.address.upper(): em.type_name for em in radio.emulators}
        backend = BleBackend(radio.client_backend(), radio.scanner_backend(), simulated=True)
    try:
        results = await scan(backend, types, timeout=timeout, adapter=adapter)
    except BmsError as exc:  # the BLE layer's errors (no adapter, BlueZ, D-Bus; the scan refused): one clear line
        reason = exc.reason if isinstance(exc, BmsConnectError) else str(exc)
        print(f"scan failed: {reason}. Check the adapter, that BlueZ runs and that D-Bus is reachable.",
              file=sys.stderr)
        return 1
    finally:
        if radio is not None:
            await radio.aclose()
        if proxies is not None:
            await proxies.stop()
    if as_json:
        for r in results:
            found = detector.resolve(r.types, r.notes)
            line: dict[str, Any] = {"address": r.address, "name": r.name, "rssi": r.rssi, "type": found.type}
            if found.ambiguous:
                line["candidates"] = list(found.candidates)
            if r.address.upper() in simulated:
                line["simulated_as"] = simulated[r.address.upper()]
            if r.via is not None:
                line["via"] = r.via
            print(json.dumps(line, ensure_ascii=False), flush=True)
        return 0
    print(f"{'address':<17}  {'rssi':>8}  {'name':<24}  {'via':<16}  type" if proxies is not None else
          f"{'address':<17}  {'rssi':>8}  {'name':<24}  type")
    for r in results:
        found = detector.resolve(r.types, r.notes)
        rssi = f"{r.rssi:>4d} dBm" if r.rssi is not None else "   ? dBm"
        note = f"  ({'; '.join(found.notes)})" if found.notes else ""
        via = f"{(r.via or '-'):<16}  " if proxies is not None else ""
        print(f"{r.address}  {rssi}  {(r.name or '?'):<24}  {via}{found.label()}{note}")
    if not results:
        print(f"(nothing seen within {timeout:g} s)")
    elif any(detector.resolve(r.types).ambiguous for r in results):
        print("ambiguous: the advertisement fits BMSes of several families; set `type:` to the one it is")
    return 0


# --- types ------------------------------------------------------------------------------------------

def type_list(fams: Sequence[Family]) -> list[dict[str, Any]]:
    """``main.py types``: every type a device entry may set, with its family, how it is read (``via``), what it
    reads and switches, and which secrets it takes; then the group types."""
    listed: list[dict[str, Any]] = [
        {"name": t.name, "family": f.name, "via": t.via, "description": t.description,
         "devices": t.doc.devices if t.doc is not None else t.description,
         # what is read: listed for the bridge's types; a native family's page says it value by value
         "reads": [r.strip() for r in t.doc.reads.split(",")] if t.doc is not None and t.doc.reads else None,
         "doc": f"doc/bms/{f.doc_page}.md" if f.doc_page else None, "switches": sorted(t.switches),
         "accepts_pin": t.accepts_pin, "accepts_key": t.accepts_key, "simulated": t.emulator is not None}
        for f in fams for t in f.types]
    listed += [{"name": name, "family": "group", "via": "native", "description": f"{mode} group of configured devices",
                "devices": "configured devices, combined", "reads": None, "doc": "doc/Groups.md",
                "switches": ["charge", "discharge"], "accepts_pin": False, "accepts_key": False, "simulated": False}
               for name, mode in GROUP_MODES.items()]
    return listed


def cmd_types() -> int:
    from bmslib.registry import families  # noqa: PLC0415

    print(json.dumps(type_list(families()), indent=2, ensure_ascii=False))
    return 0


# --- run --------------------------------------------------------------------------------------------

def load_app_config(config_path: str | None, *, demo: bool, demo_options: Mapping[str, Any] | None = None) -> AppConfig:
    """Load and validate options; with ``demo`` the device list is replaced by simulated devices, or by
    ``demo_options`` (the demo's devices and the options that reach them, for ``--demo-proxy``)."""
    types = device_types()
    infos = type_infos(types)
    env = dict(os.environ)
    if not demo:
        return load_config(config_path, env=env, types=infos, validate_algorithm=validate_algorithm)
    # --demo: the other options of a config file that exists still apply
    path = Path(config_path) if config_path else next((p for p in DEFAULT_SEARCH if p.is_file()), None)
    data: object = read_options_file(path) if path is not None else {}
    if not isinstance(data, dict):
        data = {}
    demo_data = demo_options if demo_options is not None else {"devices": demo_devices(types)}
    data = {**data, **demo_data, "sample_period": 1.0, "publish_period": 1.0}
    source = f"{path} with --demo devices" if path is not None else "built-in demo"
    return parse_config(data, source=source, env=env, types=infos, validate_algorithm=validate_algorithm)


def default_state_dir(config_source: str) -> Path:
    return Path("/data") if config_source.startswith("/data/") else Path(".")


def cmd_run(*, config_path: str | None, demo: bool, state_dir: str | None, verbose: bool,
            save_interval: float = 30.0, sink_factories: Sequence[SinkFactory] = (), demo_proxy: bool = False) -> int:
    try:
        config = load_app_config(config_path, demo=demo)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        for line in exc.warnings:  # often the reason for a problem (a misspelt key)
            print(f"warning: {line}", file=sys.stderr)
        return EXIT_CONFIG
    for warning in config.warnings:
        _LOG.warning("config: %s", warning)
    if config.verbose_log and not verbose:
        setup_logging(True)
    if state_dir:
        directory = Path(state_dir)
    elif demo:  # the demo's meters must not mix with a real meter file in the same directory
        directory = Path(DEMO_STATE_DIR)
    else:
        directory = default_state_dir(config.source)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"--state-dir: cannot create {str(directory)!r}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    from bmslib.sim.faults import from_environment  # noqa: PLC0415  (soak tests: faults on simulated devices)

    try:
        faults = from_environment(os.environ)
        problem = faults.problem(d.sim_id for d in config.devices if d.sim_id) if faults else None
    except ValueError as exc:
        problem = str(exc)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_CONFIG
    try:
        if demo_proxy:
            return asyncio.run(_run_behind_demo_proxy(config_path, directory, save_interval=max(0.1, save_interval),
                                                      sink_factories=sink_factories))
        return asyncio.run(_run(config, directory, save_interval=max(0.1, save_interval), faults=faults,
                                sink_factories=sink_factories))
    except BluetoothUnavailableError as exc:
        print(f"Bluetooth is not available: {exc}", file=sys.stderr)
        return 1


#: [s] the scan at start for the advertised names of devices without alias (batmon-ha scanned 5 s)
NAME_SCAN_TIMEOUT = 5.0


async def name_unnamed_devices(config: AppConfig, state_dir: Path, *, backend: BleBackend | None = None,
                               timeout: float = NAME_SCAN_TIMEOUT) -> AppConfig:
    """Devices without ``alias`` named after their advertised names (:mod:`bmslib.config.advertised_names`):
    the names remembered in ``state_dir``, and a scan for the ones not remembered yet."""
    from bmslib.ble.backend import BleBackend  # noqa: PLC0415
    from bmslib.ble.scan import scan  # noqa: PLC0415
    from bmslib.config.advertised_names import NAMES_FILE, unnamed, with_advertised_names  # noqa: PLC0415
    from bmslib.state_store import StateFile  # noqa: PLC0415

    wanted = unnamed(config)
    if not wanted:
        return config
    store = StateFile(state_dir / NAMES_FILE, log=_LOG)
    names = {k: v for k, v in (store.load() or {}).items() if isinstance(v, str) and v.strip()}
    if missing := [a for a in wanted if a.upper() not in names]:
        try:
            seen = await scan(backend or BleBackend(), {}, timeout=timeout)
        except BmsError as exc:
            _LOG.warning("scan for the advertised names of %s failed: %s", ", ".join(missing), exc)
            seen = []
        found = {r.address.upper(): r.name.strip() for r in seen
                 if r.address.upper() in {a.upper() for a in missing} and r.name and r.name.strip()}
        if found:
            names.update(found)
            store.save(names)
    config, lines = with_advertised_names(config, names)
    for line in lines:
        (_LOG.info if ": named " in line else _LOG.warning)("config: %s", line)
    return config


def freeze_startup_objects() -> None:
    """Keep what exists once the app is built (modules, tables, devices: it lives as long as the process)
    out of the garbage collector's full passes, which would otherwise walk all of it and hold the event
    loop for tens of milliseconds at a time (seen as MQTT latency)."""
    gc.collect()
    gc.freeze()


async def _run(config: AppConfig, state_dir: Path, *, save_interval: float = 30.0,
               faults: FaultPlan | None = None, sink_factories: Sequence[SinkFactory] = ()) -> int:
    from bmslib.app import App  # noqa: PLC0415

    proxies = None
    if config.ble_stack == "esphome":
        from bmslib.ble.esphome import ProxyManager  # noqa: PLC0415  (its libraries only when asked for)

        proxies = ProxyManager(config.bluetooth_proxies)
        await proxies.start()  # the scan for advertised names below goes through them too
    config = await name_unnamed_devices(config, state_dir, backend=proxies.backend if proxies is not None else None)
    app = App(config, state_dir=state_dir, save_interval=save_interval, sink_factories=sink_factories,
              proxies=proxies)
    freeze_startup_objects()
    loop = asyncio.get_running_loop()
    fault_task = None
    if faults is not None and app.radio is not None:
        sim_ids = [d.sim_id for d in config.devices if d.sim_id]
        fault_task = loop.create_task(faults.run(app.radio, sim_ids, app.stop_event), name="sim-faults")

    def on_signal(signame: str) -> None:
        _LOG.info("%s received: shutting down", signame)
        app.request_stop()
        loop.call_later(SHUTDOWN_GRACE, _force_exit)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    _LOG.info("batmon %s starting with %s", __version__, config.source)
    try:
        return await app.run()
    finally:
        if fault_task is not None:
            fault_task.cancel()
            await asyncio.gather(fault_task, return_exceptions=True)


async def _run_behind_demo_proxy(config_path: str | None, state_dir: Path, *, save_interval: float,
                                 sink_factories: Sequence[SinkFactory]) -> int:
    """``--demo-proxy``: the demo's simulated devices on a radio that only a simulated ESPHome node on a free
    loopback port bridges; the daemon reads them through it (:mod:`bmslib.demo_proxy`)."""
    from bmslib.demo_proxy import PROXY_HOST, PROXY_NAME, demo_radio, proxied_options  # noqa: PLC0415
    from bmslib.sim.esphome.node import EsphomeNode  # noqa: PLC0415

    types = device_types()
    devices = demo_devices(types)
    radio = demo_radio(devices, types)
    try:
        async with EsphomeNode(radio, host=PROXY_HOST, name=PROXY_NAME) as node:
            # a slot for each device, so that the demo reads every device every second (an ESP32 has 3)
            node.knobs.slots = max(node.knobs.slots, len(radio.emulators))
            options = proxied_options(devices, radio, types, port=node.port)
            try:
                config = load_app_config(config_path, demo=True, demo_options=options)
            except ConfigError as exc:  # the same options passed before the node started: not expected
                for line in exc.problems:
                    print(line, file=sys.stderr)
                return EXIT_CONFIG
            print(f"demo: the {len(radio.emulators)} simulated devices are read through a simulated ESPHome "
                  f"Bluetooth proxy ({PROXY_NAME} on {PROXY_HOST}:{node.port}, {node.knobs.slots} connection "
                  "slots), with ble_stack: esphome", flush=True)
            return await _run(config, state_dir, save_interval=save_interval, sink_factories=sink_factories)
    finally:
        await radio.aclose()


def _force_exit() -> None:
    _LOG.error("shutdown took longer than %.0f s; exiting", SHUTDOWN_GRACE)
    os._exit(0)

"""The simulated ESPHome Bluetooth proxy, through the real aioesphomeapi client (and bleak-esphome's client).

Everything here is the real client library speaking the native API over TCP on loopback to the node, which
bridges to emulators on the simulated radio.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aioesphomeapi import APIClient, APIConnectionError, BluetoothProxyFeature
from aioesphomeapi.core import (
    BluetoothGATTAPIError,
    EncryptionPlaintextAPIError,
    InvalidEncryptionKeyAPIError,
    RequiresEncryptionAPIError,
)
from bleak import BleakClient
from bleak.backends.device import BLEDevice
from bleak_esphome.backend.client import ESPHomeClient, ESPHomeClientData
from bleak_esphome.backend.device import ESPHomeBluetoothDevice
from bleak_esphome.backend.scanner import ESPHomeScanner
from habluetooth import BluetoothManager, HaBluetoothConnector
from habluetooth.central_manager import CentralBluetoothManager

from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.bms.jbd.protocol import frames as jbd
from bmslib.bms.jk.emulator import JkEmulator
from bmslib.bms.jk.protocol import codec as jk
from bmslib.bms.jk.protocol.framing import CMD_DEVICE_INFO, FRAME_HEADER, FRAME_LENGTH, command
from bmslib.sim.battery import BatteryModel
from bmslib.sim.esphome.adverts import mac_to_int
from bmslib.sim.esphome.node import EsphomeNode
from bmslib.sim.radio import SimRadio, sim_address

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode()
WAIT = 20.0  # [s] generous: the machine may be loaded


def jbd_on(radio: SimRadio, sim_id: str = "a") -> JbdEmulator:
    rng = random.Random(sim_id)
    em = JbdEmulator(address=sim_address(sim_id), name=f"JBD-{sim_id}",
                     battery=BatteryModel(rng=rng, clock=lambda: 0.0), rng=rng)
    radio.add(em)
    return em


@contextlib.asynccontextmanager
async def api(node: EsphomeNode, *, noise_psk: str | None = None, on_stop: Callable[[bool], Any] | None = None,
              subscribe: bool = True) -> AsyncIterator[APIClient]:
    """A connected aioesphomeapi client; ``subscribe``: it holds the proxy (subscribed to advertisements, as
    bleak-esphome does before anything else: the node answers Bluetooth requests only to its subscriber)."""
    client = APIClient("127.0.0.1", node.port, None, noise_psk=noise_psk, keepalive=60)

    async def stopped(expected: bool) -> None:
        if on_stop is not None:
            on_stop(expected)

    await asyncio.wait_for(client.connect(on_stop=stopped, login=True), WAIT)
    if subscribe:
        client.subscribe_bluetooth_le_raw_advertisements(lambda msg: None)
        await until(lambda: node.proxy.subscriber is not None)
    try:
        yield client
    finally:
        await client.disconnect(force=True)


async def until(pred: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not pred():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("psk", [None, KEY], ids=["plaintext", "noise"])
async def test_hello_and_device_info(radio: SimRadio, psk: str | None) -> None:
    async with EsphomeNode(radio, noise_psk=psk, name="shed-proxy", mac="24:0A:C4:12:34:56") as node, \
            api(node, noise_psk=psk) as client:
        info = await client.device_info()
        assert info.name == "shed-proxy"
        assert info.mac_address == "24:0A:C4:12:34:56"
        assert info.bluetooth_mac_address == "24:0A:C4:12:34:58"
        flags = BluetoothProxyFeature(info.bluetooth_proxy_feature_flags)
        assert BluetoothProxyFeature.ACTIVE_CONNECTIONS in flags
        assert BluetoothProxyFeature.REMOTE_CACHING in flags
        assert BluetoothProxyFeature.RAW_ADVERTISEMENTS in flags
        assert info.api_encryption_supported is (psk is not None)
        entities, services = await client.list_entities_services()
        assert (entities, services) == ([], [])
        assert len(node.sessions) == 1


async def test_feature_flags_knob(radio: SimRadio) -> None:
    async with EsphomeNode(radio) as node:
        node.knobs.feature_flags = int(BluetoothProxyFeature.PASSIVE_SCAN)
        async with api(node) as client:
            info = await client.device_info()
        assert BluetoothProxyFeature(info.bluetooth_proxy_feature_flags) == BluetoothProxyFeature.PASSIVE_SCAN


async def test_wrong_key_fails_as_invalid_encryption_key(radio: SimRadio) -> None:
    async with EsphomeNode(radio, noise_psk=KEY) as node:
        with pytest.raises(InvalidEncryptionKeyAPIError):
            async with api(node, noise_psk=OTHER_KEY):
                pass
        assert not node.sessions


async def test_plaintext_client_on_encrypted_node(radio: SimRadio) -> None:
    async with EsphomeNode(radio, noise_psk=KEY) as node:
        with pytest.raises(RequiresEncryptionAPIError):
            async with api(node):
                pass


async def test_encrypted_client_on_plaintext_node(radio: SimRadio) -> None:
    async with EsphomeNode(radio) as node:
        with pytest.raises(EncryptionPlaintextAPIError):
            async with api(node, noise_psk=KEY):
                pass


async def test_advertisements_with_rssi_knob_and_not_heard(radio: SimRadio) -> None:
    near, far = jbd_on(radio, "near"), jbd_on(radio, "far")
    async with EsphomeNode(radio) as node, api(node) as client:
        node.knobs.rssi[near.address] = -42
        node.knobs.not_heard.add(far.address)
        seen: dict[int, tuple[int, bytes]] = {}

        def on_adverts(msg: Any) -> None:
            for adv in msg.advertisements:
                seen[adv.address] = (adv.rssi, bytes(adv.data))

        unsub = client.subscribe_bluetooth_le_raw_advertisements(on_adverts)
        await until(lambda: mac_to_int(near.address) in seen)
        unsub()
        rssi, data = seen[mac_to_int(near.address)]
        assert rssi == -42
        assert b"JBD-near" in data
        assert bytes.fromhex("0300ff") in data  # 16-bit service UUID list: 0xFF00
        assert mac_to_int(far.address) not in seen


async def _connect(client: APIClient, address: int, states: list[tuple[bool, int, int]]) -> None:
    info = await client.device_info()
    await client.bluetooth_device_connect(address, lambda c, m, e: states.append((c, m, e)),
                                          feature_flags=info.bluetooth_proxy_feature_flags, address_type=0,
                                          timeout=WAIT)


@pytest.mark.parametrize("psk", [None, KEY], ids=["plaintext", "noise"])
async def test_connect_services_write_notify_jbd(radio: SimRadio, psk: str | None) -> None:
    em = jbd_on(radio)
    address = mac_to_int(em.address)
    async with EsphomeNode(radio, noise_psk=psk) as node, api(node, noise_psk=psk) as client:
        states: list[tuple[bool, int, int]] = []
        await _connect(client, address, states)
        assert states == [(True, em.mtu + 3, 0)]
        assert em.link is not None

        services = await client.bluetooth_gatt_get_services(address)
        [svc] = services.services
        assert svc.uuid == jbd.SERVICE_UUID
        chars = {c.uuid: c for c in svc.characteristics}
        notify, write = chars[jbd.NOTIFY_UUID], chars[jbd.WRITE_UUID]
        assert notify.properties == 0x12  # read | notify
        assert write.properties == 0x0C  # write without response | write
        assert [d.uuid for d in notify.descriptors] == ["00002902-0000-1000-8000-00805f9b34fb"]

        received = bytearray()
        await client.bluetooth_gatt_start_notify(address, notify.handle, lambda h, d: received.extend(d))
        await client.bluetooth_gatt_write_descriptor(address, notify.descriptors[0].handle, b"\x01\x00")
        await client.bluetooth_gatt_write(address, write.handle, jbd.request(jbd.REG_BASIC), True)
        await until(lambda: len(received) >= 4 and len(received) >= received[3] + 7)

        frame = bytes(received)
        assert frame[:3] == bytes((0xDD, jbd.REG_BASIC, 0x00))
        n = frame[3]
        assert frame[4 + n:6 + n] == jbd.checksum(frame[2:4 + n])
        reading = jbd.decode_basic(frame[4:4 + n])
        assert reading["voltage"] == pytest.approx(em.battery.voltage, abs=0.01)
        assert em.writes[-1] == (jbd.WRITE_UUID, jbd.request(jbd.REG_BASIC))

        # a write without response reaches the device as well
        received.clear()
        await client.bluetooth_gatt_write(address, write.handle, jbd.request(jbd.REG_CELLS), False)
        await until(lambda: len(received) >= 4 and received[1] == jbd.REG_CELLS)

        await client.bluetooth_device_disconnect(address)
        assert em.link is None
        assert not node.connections
        assert states[1:] == [(False, 0, 0x16)] * 2  # terminated by the local host, as the firmware says it


async def test_notifications_need_the_cccd_on_v3(radio: SimRadio) -> None:
    em = jbd_on(radio)
    address = mac_to_int(em.address)
    async with EsphomeNode(radio) as node, api(node) as client:
        await _connect(client, address, [])
        [svc] = (await client.bluetooth_gatt_get_services(address)).services
        chars = {c.uuid: c for c in svc.characteristics}
        received = bytearray()
        await client.bluetooth_gatt_start_notify(address, chars[jbd.NOTIFY_UUID].handle,
                                                 lambda h, d: received.extend(d))
        await client.bluetooth_gatt_write(address, chars[jbd.WRITE_UUID].handle, jbd.request(jbd.REG_BASIC), True)
        await until(lambda: len(em.writes) == 1)
        for _ in range(20):  # the reply would be out by now
            await asyncio.sleep(0.01)
        assert received == b""
        assert node.connections


async def test_gatt_errors(radio: SimRadio) -> None:
    em = jbd_on(radio)
    address = mac_to_int(em.address)
    async with EsphomeNode(radio) as node, api(node) as client:
        with pytest.raises(BluetoothGATTAPIError):  # not connected
            await client.bluetooth_gatt_read(address, 3, timeout=WAIT)
        await _connect(client, address, [])
        with pytest.raises(BluetoothGATTAPIError):  # no such handle
            await client.bluetooth_gatt_read(address, 99, timeout=WAIT)
        with pytest.raises(BluetoothGATTAPIError):  # the write characteristic is not readable
            await client.bluetooth_gatt_read(address, 6, timeout=WAIT)
        assert node.connections


async def test_slots_exhausted(radio: SimRadio) -> None:
    ems = [jbd_on(radio, f"d{i}") for i in range(3)]
    async with EsphomeNode(radio) as node, api(node) as client:
        node.knobs.slots = 2
        free: list[tuple[int, int, list[int]]] = []
        client.subscribe_bluetooth_connections_free(lambda f, lim, alloc: free.append((f, lim, list(alloc))))
        await until(lambda: bool(free))
        assert free[-1] == (2, 2, [])
        for em in ems[:2]:
            states: list[tuple[bool, int, int]] = []
            await _connect(client, mac_to_int(em.address), states)
            assert states[0][0] is True
        await until(lambda: free[-1][0] == 0)
        assert sorted(free[-1][2]) == sorted(mac_to_int(em.address) for em in ems[:2])
        states = []
        await _connect(client, mac_to_int(ems[2].address), states)
        assert states == [(False, 0, 0)]  # as the firmware answers when no slot is free
        assert ems[2].link is None
        await client.bluetooth_device_disconnect(mac_to_int(ems[0].address))
        await until(lambda: free[-1][0] == 1)
        states = []
        await _connect(client, mac_to_int(ems[2].address), states)
        assert states[0][0] is True


async def test_connect_to_a_device_not_heard_fails(radio: SimRadio) -> None:
    em = jbd_on(radio)
    async with EsphomeNode(radio) as node, api(node) as client:
        node.knobs.not_heard.add(em.address)
        states: list[tuple[bool, int, int]] = []
        await _connect(client, mac_to_int(em.address), states)
        assert states == [(False, 0, 0x3E)]
        assert not node.connections
        assert em.link is None


async def test_device_drop_reaches_the_client(radio: SimRadio) -> None:
    em = jbd_on(radio)
    address = mac_to_int(em.address)
    async with EsphomeNode(radio) as node, api(node) as client:
        states: list[tuple[bool, int, int]] = []
        await _connect(client, address, states)
        em.drop_link()
        await until(lambda: len(states) == 3)
        assert states[1:] == [(False, 0, 0x13)] * 2  # the firmware reports the disconnect, then the close
        assert not node.connections


async def test_refuse_api(radio: SimRadio) -> None:
    async with EsphomeNode(radio) as node:
        node.knobs.refuse_api = True
        with pytest.raises(APIConnectionError):
            async with api(node):
                pass
        node.knobs.refuse_api = False
        async with api(node) as client:
            assert (await client.device_info()).name == "proxy-1"


async def test_drop_sessions(radio: SimRadio) -> None:
    em = jbd_on(radio)
    async with EsphomeNode(radio) as node:
        stops: list[bool] = []
        async with api(node, on_stop=stops.append) as client:
            await _connect(client, mac_to_int(em.address), [])
            node.drop_sessions()
            await until(lambda: bool(stops))
        assert stops == [False]  # not a disconnect the client expected
        assert em.link is None
        assert not node.connections


async def test_reboot_closes_the_port_then_reopens(radio: SimRadio) -> None:
    em = jbd_on(radio)
    async with EsphomeNode(radio) as node:
        port = node.port
        stops: list[bool] = []
        async with api(node, on_stop=stops.append) as client:
            await _connect(client, mac_to_int(em.address), [])
            reboot = asyncio.create_task(node.reboot(2.0))
            await until(lambda: bool(stops) and not node.listening)
            assert em.link is None
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", port)
            await asyncio.wait_for(reboot, WAIT)
        assert node.listening and node.port == port and node.boots == 2
        async with api(node) as client:
            assert (await client.device_info()).name == "proxy-1"


async def test_pair_unpair_clear_cache(radio: SimRadio) -> None:
    em = jbd_on(radio)
    address = mac_to_int(em.address)
    async with EsphomeNode(radio) as node, api(node) as client:
        await _connect(client, address, [])
        assert (await client.bluetooth_device_pair(address, timeout=WAIT)).paired
        assert (await client.bluetooth_device_pair(address, timeout=WAIT)).paired  # already paired
        assert (await client.bluetooth_device_unpair(address, timeout=WAIT)).success
        assert (await client.bluetooth_device_clear_cache(address, timeout=WAIT)).success
        assert node.connections


class _Manager(BluetoothManager):
    """habluetooth's manager, never set up (bleak is not patched): the ESPHome scanner needs one to exist."""

    def _discover_service_info(self, service_info: Any) -> None:
        pass


@pytest.fixture
def ha_manager() -> Any:
    """A habluetooth manager for the duration of a test (the library keeps it in a class attribute)."""
    before = CentralBluetoothManager.manager
    CentralBluetoothManager.manager = manager = _Manager()
    yield manager
    CentralBluetoothManager.manager = before


async def test_bleak_esphome_scanner_and_client_read_a_jbd(radio: SimRadio, ha_manager: Any) -> None:
    em = jbd_on(radio)
    async with EsphomeNode(radio) as node, api(node, subscribe=False) as cli:
        node.knobs.rssi[em.address] = -71
        info = await cli.device_info()
        assert cli.api_version is not None
        source = info.bluetooth_mac_address
        device = ESPHomeBluetoothDevice(info.name, source, available=True)
        cli.subscribe_bluetooth_connections_free(device.async_update_ble_connection_limits)
        data = ESPHomeClientData(bluetooth_device=device, client=cli, device_info=info, api_version=cli.api_version,
                                 title=info.name, scanner=None)
        connector = HaBluetoothConnector(client=ESPHomeClient, source=source, can_connect=lambda: True)
        scanner = data.scanner = ESPHomeScanner(source, info.name, connector, True)
        unsetup = scanner.async_setup()
        cli.subscribe_bluetooth_le_raw_advertisements(scanner.async_on_raw_advertisements)
        await until(lambda: em.address in scanner.discovered_devices_and_advertisement_data)
        unsetup()
        _, adv = scanner.discovered_devices_and_advertisement_data[em.address]
        assert (adv.local_name, adv.rssi, adv.service_uuids) == (em.name, -71, [jbd.SERVICE_UUID])
        assert adv.manufacturer_data == dict(em.advertisement().manufacturer_data)

        class Backend(ESPHomeClient):  # bleak's client backend, bound to this proxy's client data
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, client_data=data, **kwargs)

        received = bytearray()
        target = BLEDevice(em.address, em.name, {"source": source, "address_type": 0})
        async with BleakClient(target, backend=Backend, timeout=WAIT) as client:
            await client.start_notify(jbd.NOTIFY_UUID, lambda _, d: received.extend(d))
            await client.write_gatt_char(jbd.WRITE_UUID, jbd.request(jbd.REG_BASIC), response=True)
            await until(lambda: len(received) >= 4 and len(received) >= received[3] + 7)
            assert node.connections
        assert received[:3] == bytes((0xDD, jbd.REG_BASIC, 0x00))
        assert jbd.decode_basic(bytes(received[4:4 + received[3]]))["voltage"] == pytest.approx(
            em.battery.voltage, abs=0.01)
        await until(lambda: not node.connections and em.link is None)


async def test_graceful_reboot_tells_the_client(radio: SimRadio) -> None:
    async with EsphomeNode(radio) as node:
        stops: list[bool] = []
        async with api(node, on_stop=stops.append):
            await asyncio.wait_for(node.reboot(0.1, graceful=True), WAIT)
            await until(lambda: bool(stops))
        assert stops == [True]  # the client knew the node was going away
        assert node.boots == 2


async def test_address_type_knob(radio: SimRadio) -> None:
    em = jbd_on(radio)
    async with EsphomeNode(radio) as node, api(node) as client:
        node.knobs.address_type[em.address] = 1
        types: list[int] = []
        unsub = client.subscribe_bluetooth_le_raw_advertisements(
            lambda msg: types.extend(a.address_type for a in msg.advertisements))
        await until(lambda: bool(types))
        unsub()
        assert set(types) == {1}


async def test_one_subscriber_holds_the_proxy(radio: SimRadio) -> None:
    em = jbd_on(radio)
    address = mac_to_int(em.address)
    async with EsphomeNode(radio) as node, api(node) as first, api(node, subscribe=False) as second:
        seen: list[Any] = []
        second.subscribe_bluetooth_le_raw_advertisements(seen.append)  # ignored, as by the firmware
        first_states: list[tuple[bool, int, int]] = []
        await _connect(first, address, first_states)
        for _ in range(20):
            await asyncio.sleep(0.02)
        assert seen == []
        # the second client's connect request is served, but the answer goes to the subscriber
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(second.bluetooth_device_disconnect(address), 0.5)
        await until(lambda: first_states[-1][0] is False)
        assert em.link is None


async def test_unsubscribing_drops_the_links(radio: SimRadio) -> None:
    em = jbd_on(radio)
    async with EsphomeNode(radio) as node, api(node, subscribe=False) as client:
        unsub = client.subscribe_bluetooth_le_raw_advertisements(lambda msg: None)
        await until(lambda: node.proxy.subscriber is not None)
        await _connect(client, mac_to_int(em.address), [])
        assert em.link is not None
        unsub()
        await until(lambda: em.link is None and not node.connections)


async def test_scanner_state_and_mode(radio: SimRadio) -> None:
    from aioesphomeapi.model import BluetoothScannerMode  # noqa: PLC0415

    async with EsphomeNode(radio) as node:
        node.knobs.feature_flags |= BluetoothProxyFeature.FEATURE_STATE_AND_MODE
        async with api(node, subscribe=False) as client:
            states: list[Any] = []
            client.subscribe_bluetooth_scanner_state(states.append)
            client.subscribe_bluetooth_le_raw_advertisements(lambda msg: None)
            await until(lambda: bool(states))
            assert states[-1].mode == BluetoothScannerMode.ACTIVE
            client.bluetooth_scanner_set_mode(BluetoothScannerMode.PASSIVE)
            await until(lambda: states[-1].mode == BluetoothScannerMode.PASSIVE)


async def test_jk_two_characteristics_with_one_uuid(radio: SimRadio) -> None:
    """JK lists FFE1 twice (one to write, one to notify): notifications go out on the one the client enabled."""
    rng = random.Random("jk")
    em = JkEmulator(address=sim_address("jk"), name="JK-jk", battery=BatteryModel(rng=rng, clock=lambda: 0.0),
                    rng=rng)
    radio.add(em)
    address = mac_to_int(em.address)
    async with EsphomeNode(radio) as node, api(node) as client:
        await _connect(client, address, [])
        [svc] = (await client.bluetooth_gatt_get_services(address)).services
        write, notify = svc.characteristics
        assert write.uuid == notify.uuid == jk.NOTIFY_UUID
        assert (write.descriptors, len(notify.descriptors)) == ([], 1)
        received = bytearray()
        await client.bluetooth_gatt_start_notify(address, notify.handle, lambda h, d: received.extend(d))
        await client.bluetooth_gatt_write_descriptor(address, notify.descriptors[0].handle, b"\x01\x00")
        await client.bluetooth_gatt_write(address, write.handle, command(CMD_DEVICE_INFO), True)
        await until(lambda: len(received) >= FRAME_LENGTH)
        assert received.startswith(FRAME_HEADER)
        assert node.connections


async def test_a_stale_subscriber_holds_the_proxy_until_reaped(radio: SimRadio) -> None:
    em = jbd_on(radio)
    async with EsphomeNode(radio) as node:
        async with api(node) as client:
            await _connect(client, mac_to_int(em.address), [])
            node.drop_sessions(stale_for=5.0)  # the client comes back well within it, even on a loaded machine
            assert em.link is not None  # the stale subscriber's link stays up
        async with api(node, subscribe=False) as again:
            seen: list[Any] = []
            again.subscribe_bluetooth_le_raw_advertisements(seen.append)  # ignored: the stale one holds the proxy
            await until(lambda: em.link is None)  # reaped: its links go
            assert seen == []
            again.subscribe_bluetooth_le_raw_advertisements(seen.append)  # as bleak-esphome's watchdog retries
            await until(lambda: bool(seen))

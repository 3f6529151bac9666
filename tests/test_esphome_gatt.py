"""The simulated ESPHome node's GATT table and advertising data (pure parts), and a device with 128-bit UUIDs
and an indicating characteristic through the real aioesphomeapi client."""

from __future__ import annotations

import asyncio

from aioesphomeapi import APIClient
from bluetooth_data_tools import parse_advertisement_data_bytes
from hypothesis import given
from hypothesis import strategies as st

from bmslib.sim.emulator import Advertisement, Emulator, GattChar, GattService
from bmslib.sim.esphome.adverts import int_to_mac, mac_to_int, raw_advertisement
from bmslib.sim.esphome.gatt import CCCD_UUID, gatt_table, split_uuid
from bmslib.sim.esphome.node import EsphomeNode
from bmslib.sim.radio import SimRadio, sim_address

SVC = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"


class EchoEmulator(Emulator):
    """A device with 128-bit UUIDs that indicates what it was written (upper-cased)."""

    type_name = "echo"

    @property
    def gatt(self) -> tuple[GattService, ...]:
        return (GattService(SVC, (GattChar(TX, ("indicate",)), GattChar(RX, ("write-without-response",)))),)

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, service_uuids=(SVC,), manufacturer_data={0x02E5: b"\x01\x02"})

    def handle_write(self, char_uuid: str, data: bytes) -> None:
        self.notify(data.upper(), TX)


def test_gatt_table_layout() -> None:
    table = gatt_table(EchoEmulator(address=sim_address("e"), name="e").gatt)
    [svc] = table.services
    assert svc.handle == 1
    tx, rx = svc.characteristics
    assert (tx.handle, tx.properties, tx.cccd) == (3, 0x20, 4)  # declaration 2, value 3, CCCD 4
    assert (rx.handle, rx.properties, rx.cccd) == (6, 0x04, None)
    assert table.value_handles(TX) == (3,) and table.value_handles("nope") == ()
    assert table.by_cccd[4] is tx
    assert split_uuid(CCCD_UUID) == (0x0000290200001000, 0x800000805F9B34FB)


@given(st.integers(0, 2**48 - 1))
def test_mac_round_trip(address: int) -> None:
    assert mac_to_int(int_to_mac(address)) == address


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", max_size=20) | st.none(),
       st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=8), max_size=2),
       st.lists(st.sampled_from(["0000ff00-0000-1000-8000-00805f9b34fb", SVC, "fff0"]), max_size=2, unique=True))
def test_raw_advertisement_parses_back(name: str | None, mfr: dict[int, bytes], uuids: list[str]) -> None:
    adv = Advertisement(name=name, service_uuids=tuple(uuids), manufacturer_data=mfr)
    local_name, service_uuids, _, manufacturer_data, _ = parse_advertisement_data_bytes(raw_advertisement(adv))
    assert local_name == (name or None)
    assert manufacturer_data == mfr
    full = {u if len(u) > 8 else f"0000{u}-0000-1000-8000-00805f9b34fb" for u in uuids}
    assert set(service_uuids) == full


async def test_128_bit_uuids_and_indications(radio: SimRadio) -> None:
    em = EchoEmulator(address=sim_address("echo"), name="echo")
    radio.add(em)
    address = mac_to_int(em.address)
    async with EsphomeNode(radio) as node:
        client = APIClient("127.0.0.1", node.port, None)
        await asyncio.wait_for(client.connect(login=True), 20)
        try:
            info = await client.device_info()
            client.subscribe_bluetooth_le_raw_advertisements(lambda msg: None)  # to hold the proxy
            await client.bluetooth_device_connect(address, lambda *a: None, timeout=20, address_type=0,
                                                  feature_flags=info.bluetooth_proxy_feature_flags)
            [svc] = (await client.bluetooth_gatt_get_services(address)).services
            assert svc.uuid == SVC
            tx, rx = svc.characteristics
            assert (tx.uuid, rx.uuid) == (TX, RX)
            got: list[bytes] = []
            await client.bluetooth_gatt_start_notify(address, tx.handle, lambda h, d: got.append(bytes(d)))
            await client.bluetooth_gatt_write_descriptor(address, tx.descriptors[0].handle, b"\x02\x00")
            assert await client.bluetooth_gatt_read_descriptor(address, tx.descriptors[0].handle) == b"\x02\x00"
            await client.bluetooth_gatt_write(address, rx.handle, b"hello", False)
            async with asyncio.timeout(20):
                while not got:
                    await asyncio.sleep(0.02)
            assert got == [b"HELLO"]
        finally:
            await client.disconnect(force=True)

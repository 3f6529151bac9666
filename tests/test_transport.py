"""The BLE transport over the simulated radio: bleak's real client/scanner API against an emulator."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import pytest

from bmslib.ble.backend import BleBackend
from bmslib.ble.transport import BleTransport
from bmslib.bms.jbd.emulator import JbdEmulator
from bmslib.bms.jbd.protocol import frames as jbd
from bmslib.errors import BmsDisconnectedError, BmsTimeoutError, DeviceNotFoundError
from bmslib.sim.battery import BatteryModel
from bmslib.sim.emulator import Faults
from bmslib.sim.radio import SimRadio, sim_address

LOG = logging.LoggerAdapter(logging.getLogger("test.transport"), {})



def add_jbd(radio: SimRadio, sim_id: str = "t1", **faults: object) -> JbdEmulator:
    em = JbdEmulator(address=sim_address(sim_id), name=f"JBD-{sim_id}",
                     battery=BatteryModel(rng=random.Random(1)), faults=Faults(**faults), rng=random.Random(2))
    radio.add(em, sim_id=sim_id)
    return em


def transport(radio: SimRadio, address: str, **kw: object) -> BleTransport:
    backend = BleBackend(radio.client_backend(), radio.scanner_backend(), simulated=True)
    return BleTransport(address, backend=backend, log=LOG, scan_timeout=1.0, connect_timeout=2.0,
                        connect_attempts=1, **kw)  # type: ignore[arg-type]


def is_reply(register: int):
    return lambda f: f[1] == register


async def open_jbd(radio: SimRadio, em: JbdEmulator, **kw: object) -> BleTransport:
    t = transport(radio, em.address, **kw)
    await t.connect()
    await t.subscribe(jbd.NOTIFY_UUID, jbd.JbdAssembler())
    return t


async def test_request_reply_over_chunked_notifications(radio: SimRadio) -> None:
    em = add_jbd(radio)
    t = await open_jbd(radio, em)
    frame = await t.request(jbd.WRITE_UUID, jbd.request(jbd.REG_BASIC), is_reply(jbd.REG_BASIC), 2.0)
    reading = jbd.decode(frame)
    assert reading["voltage"] == pytest.approx(em.battery.voltage, abs=0.011)
    assert t.chunks_received >= 2  # the reply was split into 20-byte chunks
    await t.disconnect()
    await t.disconnect()  # idempotent
    assert not t.is_connected and em.link is None


async def test_junk_and_corruption_are_survived(radio: SimRadio) -> None:
    em = add_jbd(radio, junk=1.0)
    t = await open_jbd(radio, em)
    for _ in range(5):
        frame = await t.request(jbd.WRITE_UUID, jbd.request(jbd.REG_CELLS), is_reply(jbd.REG_CELLS), 2.0)
        assert len(jbd.decode(frame)["cell_voltages"]) == em.battery.cells
    em.faults.junk = 0.0
    em.faults.corrupt_chunk = 1.0  # every chunk has a flipped bit: no reply may pass the checksum
    with pytest.raises(BmsTimeoutError):
        await t.request(jbd.WRITE_UUID, jbd.request(jbd.REG_CELLS), is_reply(jbd.REG_CELLS), 0.5)
    em.faults.corrupt_chunk = 0.0
    frame = await t.request(jbd.WRITE_UUID, jbd.request(jbd.REG_CELLS), is_reply(jbd.REG_CELLS), 2.0)
    assert jbd.decode(frame)["cell_voltages"]
    await t.disconnect()


async def test_mute_device_times_out(radio: SimRadio) -> None:
    em = add_jbd(radio, mute=True)
    t = await open_jbd(radio, em)
    start = time.monotonic()
    with pytest.raises(BmsTimeoutError):
        await t.request(jbd.WRITE_UUID, jbd.request(jbd.REG_BASIC), is_reply(jbd.REG_BASIC), 0.3)
    assert time.monotonic() - start == pytest.approx(0.3, abs=0.2)
    await t.disconnect()


async def test_disconnect_mid_frame_fails_pending_request_at_once_and_reconnects(radio: SimRadio) -> None:
    em = add_jbd(radio, disconnect_after=2, disconnect_mid_frame=True)
    drops: list[bool] = []
    t = await open_jbd(radio, em)
    t.on_disconnect = lambda: drops.append(True)
    await t.request(jbd.WRITE_UUID, jbd.request(jbd.REG_CELLS), is_reply(jbd.REG_CELLS), 2.0)
    start = time.monotonic()
    with pytest.raises(BmsDisconnectedError):
        await t.request(jbd.WRITE_UUID, jbd.request(jbd.REG_BASIC), is_reply(jbd.REG_BASIC), 10.0)
    assert time.monotonic() - start < 1.0  # failed at once, not after the 10 s timeout
    assert drops == [True] and not t.is_connected
    # reconnect: the half frame left in the assembler must not spoil the next reply
    await t.connect()
    await t.subscribe(jbd.NOTIFY_UUID, jbd.JbdAssembler())
    frame = await t.request(jbd.WRITE_UUID, jbd.request(jbd.REG_BASIC), is_reply(jbd.REG_BASIC), 2.0)
    assert jbd.decode(frame)["voltage"] > 0
    assert em.connections == 2
    await t.disconnect()


async def test_write_on_dropped_link_raises_disconnected(radio: SimRadio) -> None:
    em = add_jbd(radio)
    t = await open_jbd(radio, em)
    em.drop_link()
    await asyncio.sleep(0.01)
    with pytest.raises(BmsDisconnectedError):
        await t.write(jbd.WRITE_UUID, jbd.request(jbd.REG_BASIC))


async def test_a_device_that_dropped_the_link_and_vanished_is_reported_missing_after_one_scan(
        radio: SimRadio) -> None:
    # bleak-retry-connector retries a device it cannot find nine times, 4 s apart: with the address of the
    # dropped link still cached, one reconnect would hold the app's connect lock (which every other device's
    # reconnect waits for) for about 36 s. After the device dropped the link, it is looked for again.
    em = add_jbd(radio)
    t = await open_jbd(radio, em)
    em.faults.hidden = True
    em.drop_link()
    await asyncio.sleep(0.01)
    assert not t.is_connected
    start = time.monotonic()
    with pytest.raises(DeviceNotFoundError):
        await t.connect()
    assert time.monotonic() - start < t.scan_timeout + 1.0
    em.faults.hidden = False
    await t.connect()
    assert t.is_connected and em.connections == 2
    await t.disconnect()


async def test_not_found_lists_what_was_seen(radio: SimRadio) -> None:
    add_jbd(radio, "seen")
    hidden = add_jbd(radio, "gone", hidden=True)
    t = transport(radio, hidden.address)
    with pytest.raises(DeviceNotFoundError) as info:
        await t.connect()
    assert "JBD-seen" in str(info.value) and hidden.address in str(info.value)


async def test_resolve_by_advertised_name(radio: SimRadio) -> None:
    em = add_jbd(radio, "named")
    t = transport(radio, "JBD-named")
    await t.connect()
    assert t.device is not None and t.device.address == em.address
    assert t.rssi == em.advertisement().rssi
    await t.disconnect()


async def test_device_accepts_one_client(radio: SimRadio) -> None:
    em = add_jbd(radio)
    first = await open_jbd(radio, em)
    second = transport(radio, em.address)
    with pytest.raises(Exception, match=r"one connection"):
        await second.connect()
    await first.disconnect()
    await second.connect()
    assert second.is_connected
    await second.disconnect()


async def test_write_mode_follows_characteristic_properties(radio: SimRadio) -> None:
    em = add_jbd(radio)
    t = await open_jbd(radio, em)
    char = t.characteristic(jbd.WRITE_UUID, "write")
    assert "write-without-response" in char.properties
    await t.write(jbd.WRITE_UUID, jbd.request(jbd.REG_HW))  # default: without response
    await t.write(jbd.WRITE_UUID, jbd.request(jbd.REG_HW), response=True)
    await asyncio.sleep(0.01)
    assert [w for _, w in em.writes].count(jbd.request(jbd.REG_HW)) == 2
    await t.disconnect()

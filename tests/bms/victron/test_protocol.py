"""Victron SmartShunt: GATT characteristic values and Instant Readout advertisements."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bmslib.bms.victron.protocol import advertisement as victron_adv
from bmslib.bms.victron.protocol import gatt as victron
from bmslib.errors import FrameError
from bmslib.model import Reading, Sample, merge_readings
from tests.helpers import case_id, fuzz_settings, load_vectors

VECTORS = load_vectors("victron")
GATT_VALUES = [c for c in VECTORS if c["protocol"] == "Victron GATT" and c["kind"] != "command (host->device)"]
GATT_COMMANDS = [c for c in VECTORS if c["protocol"] == "Victron GATT" and c["kind"] == "command (host->device)"]
ADVERTISEMENTS = [c for c in VECTORS if "encryption_key" in c]
PLAINTEXT_RECORDS = [c for c in VECTORS if c["frame_type"].startswith("decrypted battery-monitor record")]

KEY = bytes.fromhex("aff4d0995b7d1e176c0c33ecb9e70dcd")
REAL_ADV = bytes.fromhex("100289a302b040af925d09a4d89aa0128bdef48c6298a9")


def test_every_vector_case_is_used() -> None:
    used = GATT_VALUES + GATT_COMMANDS + ADVERTISEMENTS + PLAINTEXT_RECORDS
    assert sorted(map(id, used)) == sorted(map(id, VECTORS))


# --- GATT -----------------------------------------------------------------------------------------


def uuid_of(case: dict) -> str:
    m = re.search(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", case["frame_type"])
    assert m, case["frame_type"]
    return m.group(0)


@pytest.mark.parametrize("case", GATT_VALUES, ids=case_id)
def test_gatt_values_decode_to_expected(case: dict) -> None:
    uuid = uuid_of(case)
    r = victron.decode_characteristic(uuid, bytes.fromhex(case["frame"]))
    expected = case["expected"]["value_victron_sign"]
    if expected is None:
        assert r == {}
        return
    name = victron.characteristic(uuid).name
    if name in ("current", "power"):  # Victron sign is charge-positive, ours discharge-positive
        assert r == {name: pytest.approx(-expected)}
    elif name == "consumed_ah":
        assert r == {"extra": {"consumed_ah": pytest.approx(expected)}}
    else:
        assert r == {name: pytest.approx(expected)}


@pytest.mark.parametrize("case", GATT_COMMANDS, ids=case_id)
def test_keepalive_matches_captured_write(case: dict) -> None:
    assert uuid_of(case) == victron.KEEPALIVE_UUID
    frame = bytes.fromhex(case["frame"])
    assert victron.keepalive_request() == frame
    assert victron.parse_keepalive(frame) == victron.KEEPALIVE_MS == 20000
    assert victron.KEEPALIVE_PERIOD_S == 10.0


def test_uuids_and_remaining_characteristics() -> None:
    assert victron.SERVICE_UUID == "65970000-4bda-4c1e-af4b-551c4cf74769"
    assert victron.decode_characteristic(victron.TIME_TO_GO_UUID, bytes.fromhex("5a00")) == {"runtime": 5400.0}
    assert victron.decode_characteristic(victron.TIME_TO_GO_UUID, b"\xff\xff") == {}
    assert victron.decode_characteristic(victron.TEMPERATURE_UUID, (29815).to_bytes(2, "little")) == {
        "temperatures": (25.0,)}
    assert victron.decode_characteristic(victron.STARTER_VOLTAGE_UUID, bytes.fromhex("feff")) == {
        "extra": {"starter_voltage": -0.02}}
    assert victron.decode_characteristic(victron.MIDPOINT_DEVIATION_UUID, bytes.fromhex("f6ff")) == {
        "extra": {"midpoint_deviation": -1.0}}
    assert victron.decode_characteristic(victron.MIDPOINT_VOLTAGE_UUID, bytes.fromhex("6405")) == {
        "extra": {"midpoint_voltage": 13.8}}
    # UUIDs are matched case-insensitively (some stacks report them upper-case)
    assert victron.decode_characteristic(victron.VOLTAGE_UUID.upper(), bytes.fromhex("d204")) == {"voltage": 12.34}


def test_gatt_readings_merge_into_a_sample() -> None:
    parts = [victron.decode_characteristic(u, bytes.fromhex(h)) for u, h in (
        (victron.VOLTAGE_UUID, "d204"), (victron.CURRENT_UUID, "78ecffff"), (victron.SOC_UUID, "4e25"),
        (victron.CONSUMED_AH_UUID, "3efeffff"))]
    s = Sample.build(merge_readings(*parts), timestamp=0.0, mono=0.0)
    assert s.current == 5.0 and s.power == pytest.approx(61.7) and s.soc == 95.5
    assert s.extra == {"consumed_ah": -45.0}


BAD_VALUES = {
    "unknown_uuid": ("00002a19-0000-1000-8000-00805f9b34fb", b"\x10"),
    "keepalive_is_not_a_value": (victron.KEEPALIVE_UUID, b"\x20\x4e"),
    "too_short": (victron.CURRENT_UUID, b"\xc4\x09"),
    "too_long": (victron.VOLTAGE_UUID, b"\xd2\x04\x00"),
    "empty": (victron.SOC_UUID, b""),
}


@pytest.mark.parametrize(("uuid", "value"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_malformed_gatt_values_raise_frame_error(uuid: str, value: bytes) -> None:
    with pytest.raises(FrameError):
        victron.decode_characteristic(uuid, value)


@fuzz_settings
@given(st.sampled_from([*victron.BY_UUID, "6597ffff-4bda-4c1e-af4b-551c4cf74769", "junk"]), st.binary(max_size=8))
def test_fuzz_gatt_decoder_raises_only_frame_error(uuid: str, value: bytes) -> None:
    try:
        victron.VictronGattCodec().decode_characteristic(uuid, value)
    except FrameError:
        pass


@fuzz_settings
@given(st.sampled_from(victron.CHARACTERISTICS), st.data())
def test_gatt_encode_decode_round_trip(c: victron.Characteristic, data: st.DataObject) -> None:
    bits = 8 * c.field.size
    signed = c.field.fmt.islower()
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    raw = data.draw(st.integers(lo, hi))
    wire = raw.to_bytes(c.field.size, "little", signed=signed)
    assume(wire != c.not_available)
    r = victron.decode_characteristic(c.uuid, wire)
    value = r.get("extra", {}).get(c.name) if c.target == "extra" else (
        r["temperatures"][0] if c.target == "temperatures" else r[c.name])  # type: ignore[literal-required]
    assert victron.encode_characteristic(c.uuid, value) == wire
    assert victron.encode_value(c.name, value) == wire
    assert victron.characteristic_values(r)[c.uuid] == wire


def test_gatt_encoder_rejects_unencodable_values() -> None:
    assert victron.encode_characteristic(victron.SOC_UUID, None) == b"\xff\xff"
    with pytest.raises(ValueError, match="does not fit"):
        victron.encode_value("voltage", 400.0)
    with pytest.raises(ValueError, match="not-available"):
        victron.encode_value("voltage", 327.67)
    with pytest.raises(ValueError, match="not a SmartShunt"):
        victron.encode_characteristic(victron.KEEPALIVE_UUID, 1.0)


def test_matcher_takes_victron_company_id() -> None:
    (m,) = victron.MATCHERS
    seen = {"address": "F3:E5:DF:E5:A3:25", "name": "SmartShunt HQ2236ABCDE", "service_uuids": []}
    assert m.matches(manufacturer_data={0x02E1: REAL_ADV}, **seen)
    assert not m.matches(manufacturer_data={0x004C: REAL_ADV}, **seen)


# --- Instant Readout --------------------------------------------------------------------------


def check_battery_monitor(reading: Reading, raw: dict[str, int], exp: dict) -> None:
    """Compare a decoded record with victron-ble's expected values (charge-positive current)."""
    extra = reading["extra"]
    if "remaining_mins" in exp:
        assert reading.get("runtime") == (None if exp["remaining_mins"] is None else exp["remaining_mins"] * 60)
    if "voltage" in exp:
        assert reading["voltage"] == pytest.approx(exp["voltage"])
    if "alarm" in exp:
        assert extra["alarm_bitmask"] == exp["alarm"]
        assert reading["alarms"] == ()
    if "aux_mode" in exp:
        assert raw["aux_mode"] == exp["aux_mode"]
    if "current" in exp:
        assert reading["current"] == pytest.approx(-exp["current"])
    if "consumed_ah" in exp:
        assert extra["consumed_ah"] == pytest.approx(exp["consumed_ah"])
    if "soc" in exp:
        assert reading["soc"] == pytest.approx(exp["soc"])
    if "midpoint_voltage" in exp:
        assert extra["midpoint_voltage"] == pytest.approx(exp["midpoint_voltage"])
    if "starter_voltage" in exp:
        assert extra["starter_voltage"] == pytest.approx(exp["starter_voltage"])
    if "temperature_k" in exp:
        # victron-ble reports 0xFFFF as 655.35 K; Victron's spec ends the range at 655.34 K, so we
        # take 0xFFFF as "not available" and leave the temperature out (doc/bms/victron.md).
        field = victron_adv.AUX[victron_adv.AUX_TEMPERATURE]
        assert raw["aux"] * field.scale == pytest.approx(exp["temperature_k"])
        assert raw["aux"] * field.scale + field.add == pytest.approx(exp["temperature_c"], abs=0.005)
        assert field.value(raw["aux"]) is None
        assert "temperatures" not in reading
    if exp.get("aux_mode") == victron_adv.AUX_NONE:
        assert "temperatures" not in reading
        assert not {"starter_voltage", "midpoint_voltage"} & extra.keys()


@pytest.mark.parametrize("case", PLAINTEXT_RECORDS, ids=case_id)
def test_plaintext_records_decode_to_expected(case: dict) -> None:
    record = bytes.fromhex(case["frame"])
    check_battery_monitor(victron_adv.decode_battery_monitor(record), victron_adv.unpack_battery_monitor(record),
                          case["expected"])


@pytest.mark.parametrize("case", ADVERTISEMENTS, ids=case_id)
def test_advertisements(case: dict) -> None:
    data = bytes.fromhex(case["frame"])
    key = victron_adv.parse_key(case["encryption_key"])
    exp = case["expected"]
    if "error" in exp:
        with pytest.raises(victron_adv.AdvertisementKeyError, match=r"0xAF.*0xFF"):
            victron_adv.decode_advertisement(data, key)
        return
    out = victron_adv.VictronAdvCodec(key).decode(data)
    assert data[:2].hex() == exp["record_prefix"]
    assert (out.product_id, out.record_type, out.nonce) == (exp["model_id"], exp["record_type"], exp["nonce"])
    assert data[7] == exp["key_check_byte"] == key[0]
    plain = victron_adv.decrypt(key, out.nonce, data[victron_adv.HEADER.size:])
    assert plain.hex() == exp["decrypted"]
    assert out.skipped is None
    check_battery_monitor(out.reading, victron_adv.unpack_battery_monitor(plain), exp)
    assert out.reading["device_info"].model == "SmartShunt 500A/50mV"


def test_key_error_is_a_frame_error() -> None:
    with pytest.raises(FrameError):
        victron_adv.decode_advertisement(REAL_ADV, bytes(16))


def test_other_record_types_are_skipped_not_errors() -> None:
    solar = REAL_ADV[:4] + b"\x01" + REAL_ADV[5:]
    out = victron_adv.decode_advertisement(solar, bytes(16))  # the key is not even looked at
    assert out.skipped == "skipped: record type 0x01 (solar charger)" and out.reading == {}
    other = b"\x11" + REAL_ADV[1:]
    assert victron_adv.decode_advertisement(other, KEY).skipped == "skipped: manufacturer record 0x11"


BAD_ADVERTISEMENTS = {
    "empty": b"",
    "header_only": REAL_ADV[:8],
    "short_record": REAL_ADV[:-2],
    "longer_than_one_block": REAL_ADV + b"\x00\x00",
}


@pytest.mark.parametrize("data", BAD_ADVERTISEMENTS.values(), ids=BAD_ADVERTISEMENTS.keys())
def test_malformed_advertisements_raise_frame_error(data: bytes) -> None:
    with pytest.raises(FrameError) as info:
        victron_adv.decode_advertisement(data, KEY)
    assert not isinstance(info.value, victron_adv.AdvertisementKeyError)


@pytest.mark.parametrize("text", ["", "aff4", "aff4d0995b7d1e176c0c33ecb9e70dcdff", "zzf4d0995b7d1e176c0c33ecb9e70dcd"])
def test_parse_key_rejects_bad_keys_without_echoing_them(text: str) -> None:
    with pytest.raises(ValueError, match="32 hex digits") as info:
        victron_adv.parse_key(text)
    assert not text or text not in str(info.value)


def test_parse_key_accepts_upper_case_and_surrounding_space() -> None:
    assert victron_adv.parse_key("  AFF4D0995B7D1E176C0C33ECB9E70DCD\n") == KEY


@fuzz_settings
@given(st.binary(max_size=40), st.binary(min_size=16, max_size=16))
def test_fuzz_advertisement_decoder_raises_only_frame_error(data: bytes, key: bytes) -> None:
    try:
        victron_adv.decode_advertisement(data, key)
    except FrameError:
        pass


@fuzz_settings
@given(st.binary(min_size=0, max_size=20), st.integers(0, 0xFFFF))
def test_fuzz_records_with_a_valid_header(ciphertext: bytes, nonce: int) -> None:
    data = victron_adv.HEADER.pack(0x10, 0x02, 0xA389, 0x02, nonce, KEY[0]) + ciphertext
    try:
        out = victron_adv.decode_advertisement(data, KEY)
    except FrameError:
        assert not 15 <= len(ciphertext) <= 16
    else:
        assert out.skipped is None and "alarms" in out.reading


def grid(lo: int, hi: int, scale: float, exclude: tuple[int, ...] = ()) -> st.SearchStrategy[float]:
    return st.integers(lo, hi).filter(lambda n: n not in exclude).map(lambda n: round(n * scale, 3) + 0.0)


@st.composite
def battery_monitor_readings(draw: st.DrawFn) -> Reading:
    chosen = draw(st.sets(st.sampled_from(sorted(victron_adv.ALARM_BITS))))
    r: Reading = {"alarms": tuple(victron_adv.ALARM_BITS[b] for b in sorted(chosen))}
    extra: dict[str, float | int | str | bool] = {}
    if draw(st.booleans()):
        r["voltage"] = draw(grid(-32768, 32766, 0.01))
    if draw(st.booleans()):  # model sign: raw n (charge-positive) -> -n mA
        r["current"] = draw(grid(-(1 << 21), (1 << 21) - 2, -0.001, exclude=(-1,)))
    if draw(st.booleans()):
        r["soc"] = draw(grid(0, 1022, 0.1))
    if draw(st.booleans()):
        r["runtime"] = float(draw(st.integers(0, 0xFFFE)) * 60)
    if draw(st.booleans()):
        extra["consumed_ah"] = draw(grid(0, 0xFFFFE, -0.1))
    aux = draw(st.integers(0, 3))
    if aux == victron_adv.AUX_TEMPERATURE:
        r["temperatures"] = (round(draw(st.integers(0, 0xFFFE)) * 0.01 - 273.15, 2),)
    elif aux == victron_adv.AUX_STARTER:
        extra["starter_voltage"] = draw(grid(-32768, 32766, 0.01))
    elif aux == victron_adv.AUX_MIDPOINT:
        extra["midpoint_voltage"] = draw(grid(0, 0xFFFE, 0.01))
    extra["alarm_bitmask"] = sum(1 << b for b, n in victron_adv.ALARM_BITS.items() if n in r["alarms"])
    r["extra"] = extra
    return r


@fuzz_settings
@given(battery_monitor_readings(), st.integers(0, 0xFFFF), st.binary(min_size=16, max_size=16))
def test_battery_monitor_encode_decode_round_trip(reading: Reading, nonce: int, key: bytes) -> None:
    assert victron_adv.decode_battery_monitor(victron_adv.encode_battery_monitor(reading)) == reading
    adv = victron_adv.battery_monitor_advertisement(key, nonce, reading, product_id=0xA38A)
    out = victron_adv.decode_advertisement(adv, key)
    assert out.nonce == nonce and out.product_id == 0xA38A and out.skipped is None
    assert out.reading["device_info"].model == "SmartShunt 1000A/50mV"
    assert {k: v for k, v in out.reading.items() if k != "device_info"} == reading


def test_encoder_reproduces_the_real_advertisement() -> None:
    reading = victron_adv.decode_advertisement(REAL_ADV, KEY).reading
    record = victron_adv.encode_battery_monitor(reading)
    # the record's unused top bits (118..119) are set on the real device; we send them as zero
    assert victron_adv.encode_advertisement(KEY, 0x40B0, record)[:-1] == REAL_ADV[:-1]


def test_encoder_rejects_values_that_read_as_not_available() -> None:
    with pytest.raises(ValueError, match="not-available"):
        victron_adv.encode_battery_monitor({"current": 0.001})  # raw -1 = 0x3FFFFF
    with pytest.raises(ValueError, match="does not fit"):
        victron_adv.encode_battery_monitor({"soc": 200.0})

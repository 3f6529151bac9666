"""new_sample_entities (what the MQTT sink runs at every publish) is sample_entities filtered by the known
keys, and EntityDescription.rounded's float fast path rounds as before."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given
from hypothesis import strategies as st

from bmslib.device import DeviceStatus
from bmslib.entities import EntityDescription, list_layout, new_sample_entities, sample_entities
from bmslib.model import SWITCH_NAMES, OutputSign, Sample
from tests.helpers import fuzz_settings

finite = st.floats(-1e6, 1e6, allow_nan=False)
maybe = st.one_of(st.none(), finite, st.just(math.nan))


@st.composite
def samples(draw: st.DrawFn) -> Sample:
    reading = {name: v for name in ("voltage", "current", "soc", "charge", "capacity", "soh", "runtime", "uptime",
                                    "mos_temperature", "balance_current")
               if (v := draw(maybe)) is not None}
    if draw(st.booleans()):
        reading["cycles"] = draw(st.integers(0, 70000))
    if draw(st.booleans()):
        reading["cell_voltages"] = tuple(draw(st.lists(st.floats(2.5, 3.7), max_size=24)))
    if draw(st.booleans()):
        reading["temperatures"] = tuple(draw(st.lists(st.floats(-20, 60), max_size=6)))
    if draw(st.booleans()):
        reading["switches"] = draw(st.dictionaries(st.sampled_from(SWITCH_NAMES), st.booleans()))
    if draw(st.booleans()):
        reading["alarms"] = tuple(draw(st.lists(st.sampled_from(("cell_overvoltage", "short_circuit")))))
    return Sample.build(reading, timestamp=0.0, mono=0.0)  # type: ignore[arg-type]


@fuzz_settings
@given(sample=samples(), settable=st.frozensets(st.sampled_from(SWITCH_NAMES)), data=st.data(),
       extra_cells=st.integers(0, 30), invert=st.booleans())
def test_new_entities_are_the_unknown_sample_entities_in_order(sample: Sample, settable: frozenset[str],
                                                               data: st.DataObject, extra_cells: int,
                                                               invert: bool) -> None:
    status = DeviceStatus(alias="d", type="dummy", address="x", switches=settable)
    sign = OutputSign(invert)
    full = sample_entities(sample, status, sign)
    keys = [(d.component, d.key) for d in full]
    # known: any subset of this sample's entities, plus keys of entities it does not have
    known = {k for k in keys if data.draw(st.booleans())}
    known |= {("sensor", f"cell_voltages/{i}") for i in range(1, extra_cells)}
    new = new_sample_entities(sample, status, sign, known)

    def norm(d: EntityDescription) -> tuple[EntityDescription, object]:  # value functions are fresh closures
        return dataclasses.replace(d, value=None), d.state(sample, status, sign)

    assert [norm(d) for d in new] == [norm(d) for d in full if (d.component, d.key) not in known]
    assert new_sample_entities(sample, status, sign, set(keys)) == []


@fuzz_settings
@given(first=samples(), second=samples(), settable=st.frozensets(st.sampled_from(SWITCH_NAMES)), data=st.data())
def test_lists_can_be_skipped_for_a_layout_looked_at_before(first: Sample, second: Sample, settable: frozenset[str],
                                                            data: st.DataObject) -> None:
    """What the MQTT sink relies on: once the entities of a sample were all looked for (and are known), a
    sample of the same list layout has no new per-cell, per-probe or switch entity, whatever its values."""
    status = DeviceStatus(alias="d", type="dummy", address="x", switches=settable)
    sign = OutputSign(False)
    # the second sample with the first one's cell and probe counts and switch names, other values its own
    n_cells, n_temps = len(first.cell_voltages or ()), len(first.temperatures or ())
    second = dataclasses.replace(
        second,
        cell_voltages=None if first.cell_voltages is None else tuple(3.0 + i / 100 for i in range(n_cells)),
        temperatures=None if first.temperatures is None else tuple(20.0 + i for i in range(n_temps)),
        switches=None if first.switches is None else {k: data.draw(st.booleans()) for k in first.switches})
    assert list_layout(first, status) == list_layout(second, status)
    known = {(d.component, d.key) for d in new_sample_entities(first, status, sign, set())}
    known -= {k for k in set(known) if data.draw(st.booleans()) and not _is_list_entity(k)}
    assert new_sample_entities(second, status, sign, known, lists=False) == \
        new_sample_entities(second, status, sign, known)


def _is_list_entity(ident: tuple[str, str]) -> bool:
    return ident[1].startswith(("cell_voltages/", "temperatures/", "switch/"))


def test_a_new_cell_and_a_new_switch_are_found() -> None:
    status = DeviceStatus(alias="d", type="dummy", address="x", switches=frozenset({"charge"}))
    sign = OutputSign(True)
    before = Sample.build({"voltage": 13.2, "cell_voltages": (3.3, 3.3, 3.3), "switches": {"charge": True}},
                          timestamp=0.0, mono=0.0)
    known = {(d.component, d.key) for d in sample_entities(before, status, sign)}
    after = Sample.build({"voltage": 13.2, "cell_voltages": (3.3, 3.3, 3.3, 3.3),
                          "switches": {"charge": True, "discharge": False}}, timestamp=0.0, mono=0.0)
    new = [(d.component, d.key) for d in new_sample_entities(after, status, sign, known)]
    assert new == [("sensor", "cell_voltages/4"), ("binary_sensor", "switch/discharge")]
    status.switches = frozenset({"charge", "discharge"})
    new = [(d.component, d.key) for d in new_sample_entities(after, status, sign, known)]
    assert new == [("sensor", "cell_voltages/4"), ("switch", "switch/discharge"), ("binary_sensor", "switch/discharge")]


def reference_rounded(desc: EntityDescription, value: object) -> object:
    """The rounding rule as written before the float fast path."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if desc.decimals is None:
        return value
    if desc.decimals == 0:
        return round(value)  # type: ignore[call-overload]
    return round(float(value), desc.decimals) + 0.0  # type: ignore[arg-type]


@fuzz_settings
@given(value=st.one_of(st.floats(), st.integers(-10**6, 10**6), st.booleans(), st.text(max_size=3), st.none()),
       decimals=st.one_of(st.none(), st.integers(0, 4)))
def test_rounded_matches_the_rule(value: object, decimals: int | None) -> None:
    desc = EntityDescription(key="k", name="n", field="f", decimals=decimals)
    got, want = desc.rounded(value), reference_rounded(desc, value)  # type: ignore[arg-type]
    assert type(got) is type(want)
    assert got == want or (got != got and want != want)  # NaN stays NaN


"""The publishing decisions: which samples are published (PublishSchedule, DevicePublisher), averaging,
the switch echo, when meters are due and when an unchanged state is sent again (StateResend)."""

from __future__ import annotations

import itertools
import random

import pytest

from bmslib.model import Sample
from bmslib.publishing import (
    HEARTBEAT_BURST_MIN,
    HEARTBEAT_MAX,
    QUIET,
    SETTLE,
    Averager,
    DevicePublisher,
    PublishSchedule,
    StateResend,
)


def sample(power: float = 100.0) -> Sample:
    return Sample.build({"voltage": 50.0, "current": power / 50.0}, timestamp=0.0, mono=0.0)


def published_times(period: float, arrivals: list[float], power: float = 100.0) -> list[float]:
    schedule = PublishSchedule(period)
    out = []
    for t in arrivals:
        s = sample(power)
        if schedule.due(s, t):
            schedule.published(s, t, s.power)
            out.append(t)
    return out


def jittered(interval: float, n: int, jitter: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [i * interval + rng.uniform(-jitter, jitter) for i in range(n)]


def test_equal_periods_publish_every_sample_despite_jitter() -> None:
    arrivals = jittered(1.0, 200, 0.02)
    assert published_times(1.0, arrivals) == arrivals


def test_a_sample_slightly_early_is_on_time() -> None:
    assert published_times(1.0, [0.0, 0.998, 1.997, 2.999]) == [0.0, 0.998, 1.997, 2.999]


@pytest.mark.parametrize(("period", "interval", "every"), [(10.0, 1.0, 10), (0.5, 0.1, 5), (2.0, 1.0, 2)])
def test_longer_publish_period_publishes_every_nth_sample(period: float, interval: float, every: int) -> None:
    arrivals = jittered(interval, 40 * every, interval * 0.02)
    times = published_times(period, arrivals)
    assert times == arrivals[::every]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= period - interval / 2  # never more than half a sample interval early


def test_samples_slower_than_the_period_are_all_published() -> None:
    arrivals = [0.0, 5.0, 10.0, 15.0]
    assert published_times(1.0, arrivals) == arrivals


def test_the_slack_follows_the_latest_interval() -> None:
    # after a long gap, samples close together are not early enough; 39.9 is nearer the end of the
    # period (40.0) than the next sample would be (about 44.8), so it is published
    times = published_times(10.0, [0.0, 30.0, 30.1, 30.2, 35.0, 39.9, 40.05, 49.0])
    assert times == [0.0, 30.0, 39.9, 49.0]


def test_power_jump_publishes_at_once() -> None:
    schedule = PublishSchedule(30.0)
    s = sample(100.0)
    assert schedule.due(s, 0.0)
    schedule.published(s, 0.0, s.power)
    assert not schedule.due(sample(105.0), 1.0)
    assert schedule.due(sample(500.0), 2.0)


# --- Averager ---------------------------------------------------------------------------------------

def test_a_window_of_one_sample_publishes_that_sample() -> None:
    avg = Averager()
    s = Sample.build({"voltage": 52.1, "current": -3.25, "soc": 40.0}, timestamp=1.0, mono=1.0)
    avg.add(s)
    assert avg.pop() == s
    assert avg.pop() is None  # the window was reset


def test_a_value_missing_from_the_last_sample_is_the_mean_of_the_others() -> None:
    avg = Averager()
    avg.add(Sample.build({"voltage": 50.0, "current": 2.0}, timestamp=1.0, mono=1.0))
    avg.add(Sample.build({"voltage": 52.0, "current": 4.0}, timestamp=2.0, mono=2.0))
    avg.add(Sample.build({"current": 6.0, "soc": 41.0}, timestamp=3.0, mono=3.0))
    out = avg.pop()
    assert out is not None
    assert out.voltage == pytest.approx(51.0)
    assert out.current == pytest.approx(4.0)
    assert out.soc == 41.0  # the latest value


# --- DevicePublisher --------------------------------------------------------------------------------

def test_the_publisher_publishes_the_window_mean_on_schedule() -> None:
    pub = DevicePublisher(2.0)
    first = pub.decide(sample(100.0), 0.0)
    assert first.published is not None and first.published.power == pytest.approx(100.0)
    assert pub.decide(sample(110.0), 1.0) is QUIET  # not due, no jump: the sinks take it as it is
    second = pub.decide(sample(120.0), 2.0)
    assert second.published is not None
    assert second.published.power == pytest.approx(115.0)  # the mean of the window since the last publish
    assert not second.echo_switches


def test_a_power_jump_publishes_at_once_through_the_publisher() -> None:
    pub = DevicePublisher(30.0)
    assert pub.decide(sample(100.0), 0.0).published is not None
    assert pub.decide(sample(105.0), 1.0).published is None
    assert pub.decide(sample(500.0), 2.0).published is not None


def test_after_a_switch_command_the_next_sample_is_published_and_only_mqtt_commands_echo() -> None:
    pub = DevicePublisher(30.0, switch_echo=8.0)
    pub.decide(sample(), 0.0)
    pub.switch_commanded(1.0, echo=False)  # an algorithm or a group: published, not echoed
    decision = pub.decide(sample(), 1.5)
    assert decision.published is not None and not decision.echo_switches
    assert pub.decide(sample(), 2.0) is QUIET
    pub.switch_commanded(3.0, echo=True)  # from Home Assistant
    decision = pub.decide(sample(), 3.5)
    assert decision.published is not None and decision.echo_switches
    during = pub.decide(sample(), 10.9)
    assert during.published is None and during.echo_switches  # echoed with every sample until 3 + 8 s
    assert pub.decide(sample(), 11.0) is QUIET


def test_meters_are_due_a_period_after_they_were_sent() -> None:
    pub = DevicePublisher(1.0, meter_period=30.0)
    assert pub.meters_due(5.0)  # never sent: due with the first sample
    assert not pub.meters_due(6.0)
    assert not pub.meters_due(34.9)
    assert pub.meters_due(35.0)
    pub.meters_sent(40.0)  # at start or shutdown, outside a sample
    assert not pub.meters_due(69.9)
    assert pub.meters_due(70.0)


# --- StateResend ------------------------------------------------------------------------------------

def test_the_heartbeat_keeps_states_alive_within_expire_values_after() -> None:
    assert StateResend.for_expiry(20.0).heartbeat == 10.0
    assert StateResend.for_expiry(600.0).heartbeat == HEARTBEAT_MAX
    assert StateResend.for_expiry(0.0).heartbeat == HEARTBEAT_MAX  # values never expire
    assert StateResend.for_expiry(20.0).settle == SETTLE
    assert StateResend.for_expiry(20.0, settle=0.3).settle == 0.3


def test_the_heartbeat_spreads_its_resends_over_ticks() -> None:
    resend = StateResend(heartbeat=60.0)
    assert resend.tick == 1.0
    assert StateResend(heartbeat=0.1).tick == 0.05
    assert resend.budget(10) == HEARTBEAT_BURST_MIN  # few states: the floor
    states = 100_000
    # enough per tick that all states go out within 2/3 of a heartbeat (1.5 times the states per heartbeat)
    assert resend.budget(states) * resend.heartbeat / resend.tick >= 1.5 * states

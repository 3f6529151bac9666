"""PublishSchedule: which samples are published (averaging itself is tested in test_app.py)."""

from __future__ import annotations

import itertools
import random

import pytest

from bmslib.model import Sample
from bmslib.publishing import Averager, PublishSchedule


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

import pytest

from vfbench.measure.timing import quantile, summarize, time_steps


class FakeClock:
    """A step that 'takes' scripted durations on a fake clock."""

    def __init__(self, durations):
        self.t = 0.0
        self.durations = list(durations)
        self.calls = 0

    def clock(self):
        return self.t

    def step(self):
        self.t += self.durations[self.calls % len(self.durations)]
        self.calls += 1


def test_warmup_is_not_timed_and_stats_are_right():
    fake = FakeClock([9.0, 0.010, 0.020, 0.030])
    stats = time_steps(fake.step, warmup=1, min_repeats=3, min_seconds=0.0, max_repeats=3, max_seconds=10, clock=fake.clock)
    assert stats.step_repeats == 3
    assert stats.step_ms_median == pytest.approx(20.0)
    assert stats.step_ms_p10 == pytest.approx(12.0) and stats.step_ms_p90 == pytest.approx(28.0)
    assert stats.step_ms_cv == pytest.approx(0.5)


def test_repeats_until_both_count_and_duration():
    fake = FakeClock([0.125])
    stats = time_steps(fake.step, warmup=0, min_repeats=3, min_seconds=1.0, max_repeats=100, max_seconds=100, clock=fake.clock)
    assert stats.step_repeats == 8  # duration, not count, was the binding minimum
    fake = FakeClock([1.0])
    stats = time_steps(fake.step, warmup=0, min_repeats=5, min_seconds=0.5, max_repeats=100, max_seconds=100, clock=fake.clock)
    assert stats.step_repeats == 5


def test_caps_stop_a_slow_step():
    fake = FakeClock([30.0])
    stats = time_steps(fake.step, warmup=0, min_repeats=10, min_seconds=1.0, max_repeats=100, max_seconds=60, clock=fake.clock)
    assert stats.step_repeats == 2


def test_quantiles():
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert summarize([5.0]).step_ms_cv == 0.0

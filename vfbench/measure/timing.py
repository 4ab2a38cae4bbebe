"""Step time: warm-up, then repeats until both a minimum count and a minimum duration are met.

On CUDA one event pair per step and a single synchronisation at the end (no per-step sync stalls the
queue); on CPU `time.perf_counter`. Reported: median, p10, p90, coefficient of variation, count, and
the share of the machine's CPU other processes used while the steps were timed (measure/contention.py):
a loaded machine slows every step alike, which the spread does not show.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from vfbench.measure.contention import Sample, others_frac, take_sample


@dataclass(frozen=True)
class TimingStats:
    step_ms_median: float
    step_ms_p10: float
    step_ms_p90: float
    step_ms_cv: float  # stdev / mean
    step_repeats: int
    cpu_others_frac: Optional[float] = None  # other processes' share of the machine's CPU during the timed steps

    def to_dict(self) -> dict:
        d = {k: round(v, 4) if isinstance(v, float) else v for k, v in self.__dict__.items()}
        d["cpu_others_frac"] = None if self.cpu_others_frac is None else round(self.cpu_others_frac, 3)
        return d


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted values."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(times_ms: list[float]) -> TimingStats:
    if not times_ms:
        raise ValueError("no timed steps")
    s = sorted(times_ms)
    mean = statistics.fmean(s)
    cv = statistics.stdev(s) / mean if len(s) > 1 and mean > 0 else 0.0
    return TimingStats(statistics.median(s), quantile(s, 0.1), quantile(s, 0.9), cv, len(s))


def time_steps(
    step: Callable[[], object],
    *,
    warmup: int,
    min_repeats: int,
    min_seconds: float,
    max_repeats: int,
    max_seconds: float,
    cuda_device: torch.device | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sampler: Callable[[], Optional[Sample]] = take_sample,
) -> TimingStats:
    """Time `step` after `warmup` untimed calls. Stops once both minimums are met, or at either cap.
    `sampler` reads the machine's CPU use at the start and end of the timed steps (cpu_others_frac)."""
    for _ in range(warmup):
        step()
    if cuda_device is not None:
        torch.cuda.synchronize(cuda_device)
        events = []
        before = sampler()
        start = clock()
        while True:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            step()
            end.record()
            events.append((begin, end))
            if _done(len(events), clock() - start, min_repeats, min_seconds, max_repeats, max_seconds):
                break
        torch.cuda.synchronize(cuda_device)
        others = others_frac(before, sampler())
        return dataclasses.replace(summarize([b.elapsed_time(e) for b, e in events]), cpu_others_frac=others)
    times = []
    before = sampler()
    start = clock()
    while True:
        t0 = clock()
        step()
        times.append((clock() - t0) * 1e3)
        if _done(len(times), clock() - start, min_repeats, min_seconds, max_repeats, max_seconds):
            break
    others = others_frac(before, sampler())
    return dataclasses.replace(summarize(times), cpu_others_frac=others)


def first_step_s(step: Callable[[], object], cuda_device: torch.device | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds of one synchronised step: the first, which creates the optimizer state and, under
    torch.compile, traces and generates code (`compile_s`; it depends on inductor's on-disk cache)."""
    t0 = clock()
    step()
    if cuda_device is not None:
        torch.cuda.synchronize(cuda_device)
    return clock() - t0


def _done(n: int, elapsed: float, min_n: int, min_s: float, max_n: int, max_s: float) -> bool:
    return (n >= min_n and elapsed >= min_s) or n >= max_n or (elapsed >= max_s and n >= 1)

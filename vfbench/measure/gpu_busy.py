"""Was a CUDA step launch-bound? The share of the device timeline that kernels kept busy (`gpu_busy_frac`).

A step whose kernels are short waits on the host between launches (Python, the dispatcher, the caching
allocator): the GPU idles, the step time follows the host, and every method's time looks alike. After
the timed steps, a few more steps run under torch.profiler (CUPTI activity tracing). The union of their
device activity intervals (kernels, memcpy, memset; overlapping streams counted once) divided by the
window from the first activity's start to the last one's end is `gpu_busy_frac`; below
LAUNCH_BOUND_BELOW the record says `launch_bound` and the report warns that its step time measures the
host, not the method. The profiled steps are never timed steps (the profiler slows the host).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch

LAUNCH_BOUND_BELOW = 0.8  # a GPU idle more than 20% of the step between kernels is waiting on the host
PROFILED_STEPS = 3


@dataclass(frozen=True)
class BusyShare:
    gpu_busy_frac: float  # union of device activity / first-start-to-last-end window
    gpu_window_ms: float  # that window, over all profiled steps
    gpu_kernels: int  # device activities seen
    profiled_steps: int

    @property
    def launch_bound(self) -> bool:
        return self.gpu_busy_frac < LAUNCH_BOUND_BELOW

    def to_dict(self) -> dict:
        return {
            "gpu_busy_frac": round(self.gpu_busy_frac, 4),
            "launch_bound": self.launch_bound,
            "gpu_window_ms": round(self.gpu_window_ms, 3),
            "gpu_profiled_steps": self.profiled_steps,
        }


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by [start, end) intervals, overlaps counted once (kernels on several streams)."""
    total = 0.0
    cur_start = cur_end = None
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def busy_share(intervals: list[tuple[float, float]], steps: int, us_per_ms: float = 1e3) -> BusyShare | None:
    """BusyShare of device activity intervals in microseconds; None when there were none."""
    spans = [(s, e) for s, e in intervals if e > s]
    if not spans:
        return None
    window = max(e for _, e in spans) - min(s for s, _ in spans)
    return BusyShare(union_length(spans) / window, window / us_per_ms, len(spans), steps)


def device_intervals(events) -> list[tuple[float, float]]:
    """(start, end) in microseconds of the profiler's device-side events (kernels, memcpy, memset)."""
    cuda = torch.autograd.DeviceType.CUDA
    return [(e.time_range.start, e.time_range.end) for e in events if e.device_type == cuda]


def profile_busy(step: Callable[[], object], device: torch.device, steps: int = PROFILED_STEPS) -> BusyShare | None:
    """Run `steps` more steps under torch.profiler and measure the device's busy share over them. CUDA
    activity only (no host-side op recording, which would itself slow the launches); with host recording
    where a profiler build returns no device events without it."""
    from torch.profiler import ProfilerActivity, profile

    for activities in ([ProfilerActivity.CUDA], [ProfilerActivity.CPU, ProfilerActivity.CUDA]):
        torch.cuda.synchronize(device)
        with profile(activities=activities) as prof:
            for _ in range(steps):
                step()
            torch.cuda.synchronize(device)
        share = busy_share(device_intervals(prof.events()), steps)
        if share is not None:
            return share
    return None


def busy_keys(step: Callable[[], object], device: torch.device) -> dict:
    """The record's keys: gpu_busy_frac and launch_bound, or gpu_busy_error saying why they are missing
    (a profiler failure must not lose the cell's measurement)."""
    try:
        share = profile_busy(step, device)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        return {"gpu_busy_error": f"{type(exc).__name__}: {first[:200]}"}
    return share.to_dict() if share else {"gpu_busy_error": "the profiler saw no device activity"}

"""How busy the machine was with OTHER processes while a cell's steps were timed (`cpu_others_frac`).

A loaded machine inflates CPU step times without widening their spread (every step slows alike; OpenMP
spin-waits under contention turned 8 ms steps into 1.3 s), so step_ms_cv cannot reveal it. This module
takes two samples around the timed steps and returns

    others_frac = max(0, machine_busy_cpu_s - own_cpu_s) / (online_cpus * wall_s)     (clipped to [0, 1])

- machine_busy_cpu_s: aggregate `cpu` line of /proc/stat, user+nice+system+irq+softirq+steal jiffies
  (guest time is already inside user/nice) / SC_CLK_TCK;
- own_cpu_s: this process's user+system time, all its threads (os.times); children are not counted, since
  the timed steps run in the cell process itself;
- online_cpus: the cpuN lines of the same /proc/stat read.

0 is a quiet machine; 0.5 on a 2-core machine is one other process spinning a whole core.
Limits: Linux only (None where /proc/stat cannot be read); jiffy resolution (10 ms per CPU at 100 Hz), so
short windows are coarse; steal time (the hypervisor running other guests) counts as others; /proc/stat is
usually the whole host's, so in a container the neighbours count as others (under LXCFS it is the
container's own view); SMT siblings count as separate CPUs; a cgroup CPU quota that throttles this process
is not seen. It says the cores were shared, not by how much the step time grew.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Optional

# Above this share of the machine used by other processes the step times of a cell may be inflated:
# `vfbench run` warns at the end and the report carries a note (commands/run_cmd.py, report/build.py).
OTHERS_WARN_FRAC = 0.25

BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system [idle iowait] irq softirq steal, on the `cpu` line


@dataclass(frozen=True)
class Sample:
    busy_s: float  # CPU seconds all CPUs spent busy since boot
    ncpu: int  # online CPUs
    own_s: float  # this process's CPU seconds (user + system, all threads)
    wall_s: float  # a monotonic clock


def read_proc_stat(path: str = "/proc/stat") -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def parse_proc_stat(text: str, clk_tck: int) -> Optional[tuple[float, int]]:
    """(busy CPU seconds, online CPU count) from /proc/stat text; None when it has no `cpu` line."""
    busy, ncpu = None, 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "cpu":
            values = [int(v) for v in parts[1:]]
            busy = sum(values[i] for i in BUSY_FIELDS if i < len(values)) / clk_tck
        elif parts[0].startswith("cpu") and parts[0][3:].isdigit():
            ncpu += 1
    if busy is None:
        return None
    return busy, ncpu or (os.sysconf("SC_NPROCESSORS_ONLN") or 1)


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def take_sample(
    read: Callable[[], Optional[str]] = read_proc_stat,
    own: Callable[[], float] = own_cpu_s,
    clock: Callable[[], float] = time.monotonic,
) -> Optional[Sample]:
    """One reading (None where /proc/stat is unreadable). `read`, `own` and `clock` are injectable for tests."""
    text = read()
    parsed = parse_proc_stat(text, os.sysconf("SC_CLK_TCK")) if text else None
    if parsed is None:
        return None
    return Sample(parsed[0], parsed[1], own(), clock())


def others_frac(start: Optional[Sample], end: Optional[Sample]) -> Optional[float]:
    """Share of the machine's CPU capacity that other processes used between two samples, in [0, 1]."""
    if start is None or end is None:
        return None
    capacity = end.ncpu * (end.wall_s - start.wall_s)
    if capacity <= 0:
        return None
    others = (end.busy_s - start.busy_s) - (end.own_s - start.own_s)
    return min(1.0, max(0.0, others) / capacity)

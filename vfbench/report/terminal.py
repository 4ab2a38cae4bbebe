"""The table printed at the end of `vfbench run`: methods x frames, peak memory and step time; and the
busy-machine warning that `vfbench run` prints and the report repeats."""

from __future__ import annotations

from typing import Iterable, Optional

from tabulate import tabulate

from vfbench.measure.contention import OTHERS_WARN_FRAC
from vfbench.measure.gpu_busy import LAUNCH_BOUND_BELOW
from vfbench.record import Record

SHORT = {"oom": "OOM", "skipped": "skipped", "timeout": "timeout", "error": "error"}


def format_mib(mib: float | None) -> str:
    if mib is None:
        return "-"
    return f"{mib / 1024:.2f} GiB" if mib >= 1024 else f"{mib:.1f} MiB"


def format_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1e3:.2f} s" if ms >= 1e4 else f"{ms:.1f} ms"


def cell_text(r: Record) -> str:
    if r.status != "ok":
        return SHORT.get(r.status, r.status)
    return f"{format_mib(r.peak_allocated_mib)} / {format_ms(r.step_ms_median)}"


def sweep_table(records: list[Record], fmt: str = "simple") -> str:
    """Rows are methods (in order of appearance), columns are frame counts; 'peak memory / median step'."""
    methods = list(dict.fromkeys(r.method for r in records))
    frames = sorted({r.frames for r in records})
    by = {(r.method, r.frames): r for r in records}
    rows = [[m] + [cell_text(by[(m, t)]) if (m, t) in by else "" for t in frames] for m in methods]
    return tabulate(rows, headers=["method \\ frames"] + [str(t) for t in frames], tablefmt=fmt)


def contention_note(records: Iterable[Record], threshold: float = OTHERS_WARN_FRAC) -> Optional[str]:
    """One sentence when ok cells were timed while other processes used more than `threshold` of the
    machine's CPU (cpu_others_frac, measure/contention.py); None when none were, or nothing was recorded."""
    timed = [r for r in records if r.status == "ok" and r.cpu_others_frac is not None]
    busy = [r for r in timed if r.cpu_others_frac > threshold]
    if not busy:
        return None
    worst = max(busy, key=lambda r: r.cpu_others_frac)
    return (
        f"{len(busy)} of {len(timed)} timed cells ran while other processes used more than {threshold:.0%} of the "
        f"machine's CPU (cpu_others_frac; worst {worst.cpu_others_frac:.0%}, {worst.method} at {worst.frames} frames): "
        "their step times may be inflated; re-run on a quiet machine."
    )


def launch_bound_note(records: Iterable[Record]) -> Optional[str]:
    """One sentence when CUDA cells were launch-bound (`launch_bound`, measure/gpu_busy.py): their GPU idled
    between kernels, so their step time is the host's and methods' times look alike. None otherwise."""
    profiled = [r for r in records if r.status == "ok" and r.extra.get("gpu_busy_frac") is not None]
    idle = [r for r in profiled if r.extra.get("launch_bound")]
    if not idle:
        return None
    worst = min(idle, key=lambda r: r.extra["gpu_busy_frac"])
    return (
        f"{len(idle)} of {len(profiled)} CUDA cells were launch-bound: kernels kept the GPU busy less than "
        f"{LAUNCH_BOUND_BELOW:.0%} of the step (gpu_busy_frac; worst {worst.extra['gpu_busy_frac']:.0%}, {worst.method} at "
        f"{worst.frames} frames): their step times measure the host's launch overhead, not the method; "
        "compare them with a larger batch or compile."
    )

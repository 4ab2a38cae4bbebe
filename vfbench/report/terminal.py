"""The table printed at the end of `vfbench run`: methods x frames, peak memory and step time."""

from __future__ import annotations

from tabulate import tabulate

from vfbench.runner.record import Record

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

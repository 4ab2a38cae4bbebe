"""The attention-kernel × compile table: per method and attention kernel, eager vs each compile mode at each
frame count (median step time, MFU, the GPU's busy share with launch-bound cells marked), and what it
decides, read off the records.

Methods are split into what they do to the model (a recipe or attention method), the attention kernel
(`attn_kernel(kind=...)`, default sdpa) and the compile mode (eager when absent); other runtime methods stay
in the method's name. The report adds this section to runs that used either; `benchmarks/kernel_table.py`
prints it for several runs merged (benchmarks/gpu_check.sh).
"""

from __future__ import annotations

from typing import Iterable

from vfbench.errors import UserError
from vfbench.measure.gpu_busy import LAUNCH_BOUND_BELOW
from vfbench.record import Record
from vfbench.registry import compose
from vfbench.report.document import Cell, Table, status_tone
from vfbench.report.terminal import format_ms
from vfbench.spec import split_top_level

EAGER, DEFAULT_KERNEL = "eager", "sdpa"


def split_method(label: str) -> tuple[str, str, str]:
    """'longvivit+attn_kernel(kind=cudnn)+compile(backend=inductor,mode=default)' -> ('longvivit', 'cudnn', 'default')."""
    try:
        comp = compose(label)
    except UserError:  # a method this install does not have (another machine's plugin): as it is written
        return label, DEFAULT_KERNEL, EAGER
    kernel = next((m.p["kind"] for m in comp.methods if m.name == "attn_kernel"), DEFAULT_KERNEL)
    mode = next((m.p["mode"] for m in comp.methods if m.name == "compile"), EAGER)
    rest = [t for t in split_top_level(label, "+") if not t.strip().startswith(("attn_kernel", "compile"))]
    return "+".join(rest) or "joint", kernel, mode


def uses_kernels(cells: dict) -> bool:
    """Whether any cell (of `by_cell`) pinned an attention kernel or compiled its step."""
    return any((k[4], k[6]) != (DEFAULT_KERNEL, EAGER) for k in cells)


def cell_text(r: Record) -> str:
    if r.status != "ok":
        return r.status
    mfu = "-" if r.mfu is None else f"{r.mfu:.2f}"
    busy = r.extra.get("gpu_busy_frac")
    flag = "" if busy is None else f", busy {busy:.0%}{' (launch-bound)' if r.extra.get('launch_bound') else ''}"
    return f"{format_ms(r.step_ms_median)}, MFU {mfu}{flag}"


def by_cell(records: Iterable[Record]) -> dict:
    """(model, batch, dtype, method, kernel, frames, mode) -> record; a later record of the same cell wins. The
    table, its summary and `uses_kernels` read this, so each label is split once."""
    cells = {}
    for r in records:
        method, kernel, mode = split_method(r.method)
        cells[(r.model, r.batch, r.dtype, method, kernel, r.frames, mode)] = r
    return cells


def kernel_table(cells: dict) -> Table:
    frames = sorted({k[5] for k in cells})
    modes = sorted({k[6] for k in cells}, key=lambda m: (m != EAGER, m))
    headers = ("model, batch, dtype", "method", "kernel") + tuple(f"{t} frames, {m}" for t in frames for m in modes)
    rows = []
    for model, batch, dtype, method, kernel in sorted({k[:5] for k in cells}):
        row = [Cell(f"{model}, {batch}, {dtype}"), Cell(method), Cell(kernel)]
        for t in frames:
            for m in modes:
                r = cells.get((model, batch, dtype, method, kernel, t, m))
                tone = "" if r is None else "bad" if r.extra.get("launch_bound") else status_tone(r.status)
                row.append(Cell(cell_text(r) if r else "", tone))
        rows.append(tuple(row))
    return Table("Attention kernel × compile mode", headers, tuple(rows),
                 "median step time, MFU and the GPU's busy share per cell; launch-bound: kernels kept the GPU busy less "
                 f"than {LAUNCH_BOUND_BELOW:.0%} of the step, so its time is the host's launch overhead")


def summary(cells: dict) -> list[str]:
    """What the table decides, per model, batch and dtype: the highest MFU at each frame count (with its kernel
    and compile mode), how many cells at the fewest frames were launch-bound eager and compiled, the longest
    compilation, and why each cell that did not run did not (one line per reason)."""
    groups = sorted({k[:3] for k in cells})
    out = []
    for group in groups:
        title = f"{', '.join(map(str, group))}: " if len(groups) > 1 else ""
        out += [title + line for line in _summary([(k, r) for k, r in cells.items() if k[:3] == group])]
    return out


def _summary(items: list[tuple[tuple, Record]]) -> list[str]:
    """items: (by_cell key, record) of one model, batch and dtype."""
    ok = [(k, r) for k, r in items if r.status == "ok"]
    out = []
    for t in sorted({r.frames for _, r in ok}):
        at = [(k, r) for k, r in ok if r.frames == t and r.mfu is not None]
        if at:
            (_, _, _, method, kernel, _, mode), best = max(at, key=lambda kr: kr[1].mfu)
            out.append(f"Highest MFU at {t} frames: {best.mfu:.2f} ({method}, kernel {kernel}, {mode}; {format_ms(best.step_ms_median)}).")
    profiled = [(k, r) for k, r in ok if r.extra.get("gpu_busy_frac") is not None]
    if profiled:
        fewest = min(r.frames for _, r in profiled)
        for mode in sorted({k[6] for k, _ in profiled}, key=lambda m: (m != EAGER, m)):
            at = [r for k, r in profiled if r.frames == fewest and k[6] == mode]
            if at:
                bound = [r for r in at if r.extra.get("launch_bound")]
                busy = sorted(r.extra["gpu_busy_frac"] for r in at)
                out.append(f"Launch-bound at {fewest} frames, {mode}: {len(bound)} of {len(at)} cells "
                           f"(GPU busy {busy[0]:.0%} to {busy[-1]:.0%} of the step).")
    compiled = [r for _, r in ok if r.extra.get("compile_s") is not None]
    if compiled:
        worst = max(compiled, key=lambda r: r.extra["compile_s"])
        out.append(f"Compilation (first step, not timed): up to {worst.extra['compile_s']:.0f} s ({worst.method} at {worst.frames} frames).")
    reasons: dict = {}
    for _, r in items:
        if r.status != "ok":
            reasons.setdefault((r.status, r.reason or "no reason recorded"), {}).setdefault(r.method, []).append(r.frames)
    for (status, reason), where in sorted(reasons.items()):
        cells = "; ".join(f"{m} at {', '.join(map(str, sorted(t)))} frames" for m, t in where.items())
        out.append(f"{status.capitalize()}: {cells}: {reason}")
    return out

"""The kernel x compile table from run folders: per method and attention kernel, eager vs compiled, at
each frame count, the median step time, MFU and the GPU's busy share (launch-bound cells marked).

    python benchmarks/kernel_table.py RUN [RUN ...] [--out table.md]

RUN is a run folder (records.jsonl) or a pytest-benchmark JSON, as `vfbench report` reads them; several
runs are merged (a later record of the same cell wins). Methods are split into what they do to the model
(a recipe or attention method), the attention kernel (`attn_kernel(kind=...)`, default sdpa) and the
compile mode (eager when absent); other runtime methods stay in the method's name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vfbench.registry import compose
from vfbench.report.load import load_run
from vfbench.report.terminal import format_ms
from vfbench.spec import split_top_level


def split_method(label: str) -> tuple[str, str, str]:
    """'longvivit+attn_kernel(kind=cudnn)+compile(backend=inductor,mode=default)' -> ('longvivit', 'cudnn', 'default')."""
    comp = compose(label)
    kernel = next((m.p["kind"] for m in comp.methods if m.name == "attn_kernel"), "sdpa")
    mode = next((m.p["mode"] for m in comp.methods if m.name == "compile"), "eager")
    rest = [t for t in split_top_level(label, "+") if not t.strip().startswith(("attn_kernel", "compile"))]
    return "+".join(rest) or "joint", kernel, mode


def cell_text(r) -> str:
    if r.status != "ok":
        return r.status
    mfu = "-" if r.mfu is None else f"{r.mfu:.2f}"
    busy = r.extra.get("gpu_busy_frac")
    flag = "" if busy is None else f", busy {busy:.0%}{' (launch-bound)' if r.extra.get('launch_bound') else ''}"
    return f"{format_ms(r.step_ms_median)}, MFU {mfu}{flag}"


def summary(records) -> list[str]:
    """What the table decides, read off its records: the best MFU at each frame count (which kernel and
    compile mode reach it), whether the cells at the fewest frames are launch-bound eager and compiled,
    the worst compilation time, and why each cell that did not run did not (one line per reason)."""
    records = list(records)
    ok = [r for r in records if r.status == "ok"]
    out = []
    for t in sorted({r.frames for r in ok}):
        at = [r for r in ok if r.frames == t and r.mfu is not None]
        if at:
            best = max(at, key=lambda r: r.mfu)
            method, kernel, mode = split_method(best.method)
            out.append(f"- Highest MFU at {t} frames: {best.mfu:.2f} ({method}, kernel {kernel}, {mode}; {format_ms(best.step_ms_median)}).")
    profiled = [r for r in ok if r.extra.get("gpu_busy_frac") is not None]
    if profiled:
        fewest = min(r.frames for r in profiled)
        for mode in sorted({split_method(r.method)[2] for r in profiled}, key=lambda m: (m != "eager", m)):
            cells = [r for r in profiled if r.frames == fewest and split_method(r.method)[2] == mode]
            if cells:
                bound = [r for r in cells if r.extra.get("launch_bound")]
                busy = sorted(r.extra["gpu_busy_frac"] for r in cells)
                out.append(f"- Launch-bound at {fewest} frames, {mode}: {len(bound)} of {len(cells)} cells "
                           f"(GPU busy {busy[0]:.0%} to {busy[-1]:.0%} of the step).")
    compiled = [r for r in ok if r.extra.get("compile_s") is not None]
    if compiled:
        worst = max(compiled, key=lambda r: r.extra["compile_s"])
        out.append(f"- Compilation (first step, not timed): up to {worst.extra['compile_s']:.0f} s ({worst.method} at {worst.frames} frames).")
    reasons = {}
    for r in records:
        if r.status != "ok":
            where = reasons.setdefault((r.status, r.reason or "no reason recorded"), {})
            where.setdefault(r.method, []).append(r.frames)
    for (status, reason), where in sorted(reasons.items()):
        cells = "; ".join(f"{m} at {', '.join(map(str, sorted(t)))} frames" for m, t in where.items())
        out.append(f"- {status}, {cells}: {reason}")
    return out


def kernel_table(records) -> str:
    cells = {}
    for r in records:
        method, kernel, mode = split_method(r.method)
        cells[(r.model, r.batch, r.dtype, method, kernel, r.frames, mode)] = r
    frames = sorted({k[5] for k in cells})
    modes = sorted({k[6] for k in cells}, key=lambda m: (m != "eager", m))
    rows = sorted({k[:5] for k in cells})
    head = ["model, batch, dtype", "method", "kernel"] + [f"{t} frames, {m}" for t in frames for m in modes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, batch, dtype, method, kernel in rows:
        out = [f"{model}, {batch}, {dtype}", method, kernel]
        for t in frames:
            for m in modes:
                r = cells.get((model, batch, dtype, method, kernel, t, m))
                out.append(cell_text(r) if r else "")
        lines.append("| " + " | ".join(out) + " |")
    for group in sorted({k[:3] for k in cells}):
        title = [f"{', '.join(map(str, group))}:"] if len({k[:3] for k in cells}) > 1 else []
        lines += ["", *title, *summary(r for k, r in cells.items() if k[:3] == group)]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run folders or pytest-benchmark JSON files")
    ap.add_argument("--out", help="write the table here as well as to stdout")
    args = ap.parse_args(argv)
    present = [p for p in args.runs if Path(p).exists()]
    for missing in sorted(set(args.runs) - set(present)):  # a step the device call's limit cut before it began
        print(f"kernel_table: {missing} does not exist; the table is without it", file=sys.stderr)
    records = [r for path in present for r in load_run(path).records]
    if not records:
        print(f"kernel_table: no records in {', '.join(args.runs)}", file=sys.stderr)
        return 2
    text = f"Command: python benchmarks/kernel_table.py {' '.join(present)}\n\n" + kernel_table(records) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

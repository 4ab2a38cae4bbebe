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
    best = max((r for r in records if r.status == "ok" and r.mfu is not None), key=lambda r: r.mfu, default=None)
    if best is not None:
        lines += ["", f"Highest MFU: {best.mfu:.2f}, {best.method} at {best.frames} frames ({format_ms(best.step_ms_median)})."]
    compile_s = [r for r in records if r.extra.get("compile_s") is not None]
    if compile_s:
        worst = max(compile_s, key=lambda r: r.extra["compile_s"])
        lines.append(f"Compilation (first step, not timed): up to {worst.extra['compile_s']:.0f} s ({worst.method} at {worst.frames} frames).")
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

"""Estimated vs measured peak memory per (method, frames): the accuracy check of `vfbench estimate`.

For each cell it traces the step under FakeTensorMode (vfbench.estimate.peak, the number `vfbench
estimate` prints) and then runs the same step for real, measuring what `vfbench run` measures:

- cpu:  the tracked live-tensor peak of a steady step (measure.memory.track_step_memory); target 5%.
- cuda: torch.cuda.max_memory_allocated around a steady step (measure.memory.cuda_peak); target 10%.

It writes <out>/estimate_vs_measured.md (the exact command on top) and .csv, rewriting both after every
cell so an interrupted run keeps what it measured. Run from the repository root, no install needed:

    PYTHONPATH=. python benchmarks/estimate_vs_measured.py --device cpu --model small --frames 16..64
    PYTHONPATH=. python benchmarks/estimate_vs_measured.py --device cuda --model vit-b --frames 16..128 \\
        --methods shortvivit,effshortvivit,longvivit,imagevit

Cells are measured in this process, one after another; between cells everything is freed, and on CUDA the
allocated bytes left before each build are recorded (`baseline_mib`: the persistent cuBLAS workspaces).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import functools
import gc
import shlex
import sys
import time
from pathlib import Path

import torch

from vfbench.estimate.peak import FakeStep, estimate_problems
from vfbench.measure.memory import MIB, cuda_peak, track_step_memory
from vfbench.registry import expand_methods
from vfbench.spec import CellSpec, parse_frames
from vfbench.step import build_setup, train_step

DEFAULTS = {"cpu": ("fp32", 2, 0.05), "cuda": ("bf16", 4, 0.10)}  # dtype, batch (as `vfbench run`), tolerance
COLUMNS = (
    "method", "frames", "tokens", "status", "measured_mib", "estimated_mib", "error", "analytic_mib", "analytic_error",
    "within_tolerance", "estimate_phase", "reserved_mib", "baseline_mib", "estimate_s", "measure_s", "reason",
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--model", default=None, help="preset (default: small on cpu, vit-b on cuda)")
    p.add_argument("--frames", default="16..64")
    p.add_argument("--methods", default="all")
    p.add_argument("--batch", type=int, default=None, help="default: 2 on cpu, 4 on cuda (as vfbench run)")
    p.add_argument("--dtype", default=None, help="default: fp32 on cpu, bf16 on cuda (as vfbench run)")
    p.add_argument("--warmup", type=int, default=2, help="steps before the measured one (optimizer state, caches)")
    p.add_argument("--tolerance", type=float, default=None, help="relative error target (default: 0.05 cpu, 0.10 cuda)")
    p.add_argument("--out", default=None, help="folder (default: results/estimate-vs-measured-<device>)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a measured cell is outside the tolerance")
    return p.parse_args(argv)


def measure(cell: CellSpec, warmup: int) -> dict:
    """The peak `vfbench run` records for this cell, in this process."""
    on_cuda = cell.device == "cuda"
    if on_cuda:
        gc.collect()
        torch.cuda.empty_cache()
    baseline = torch.cuda.memory_allocated() / MIB if on_cuda else 0.0
    t0 = time.perf_counter()
    setup = None
    try:
        setup = build_setup(cell)
        for _ in range(warmup):
            train_step(setup)
        if on_cuda:
            cp = cuda_peak(functools.partial(train_step, setup), setup.device)  # bound now: `finally` deletes the name
            out = {"status": "ok", "measured_mib": cp.peak_allocated_mib, "reserved_mib": cp.peak_reserved_mib}
        else:
            out = {"status": "ok", "measured_mib": track_step_memory(setup).peak_allocated_mib}
    except torch.OutOfMemoryError as exc:
        out = {"status": "oom", "reason": str(exc).splitlines()[0][:120]}
    finally:
        del setup
        gc.collect()
        if on_cuda:
            torch.cuda.empty_cache()
    return {**out, "baseline_mib": baseline, "measure_s": time.perf_counter() - t0}


def write(rows: list[dict], out: Path, header: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "estimate_vs_measured.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k)) for k in COLUMNS})
    cols = [c for c in COLUMNS if c not in ("baseline_mib", "estimate_s", "measure_s")]
    if not any(r.get("reserved_mib") is not None for r in rows):
        cols.remove("reserved_mib")
    table = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        table.append("| " + " | ".join(_fmt(r.get(k), pct=k.endswith("error")) for k in cols) + " |")
    (out / "estimate_vs_measured.md").write_text("\n".join(header + [""] + table) + "\n")


def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:+.2%}" if pct else f"{v:.2f}"
    return str(v)


def summary(rows: list[dict], tol: float) -> list[str]:
    ok = [r for r in rows if r.get("error") is not None]
    if not ok:
        return ["No cell was measured."]
    worst = max(ok, key=lambda r: abs(r["error"]))
    worst_a = max(ok, key=lambda r: abs(r["analytic_error"]))
    inside = sum(abs(r["error"]) <= tol for r in ok)
    return [
        f"**{inside} of {len(ok)} measured cells within {tol:.0%}**; largest error {worst['error']:+.3%} "
        f"({worst['method']}, {worst['frames']} frames; {worst['estimated_mib'] - worst['measured_mib']:+.4f} MiB); "
        f"mean |error| {sum(abs(r['error']) for r in ok) / len(ok):.3%}.",
        f"vfbench's analytic model vs measured: largest error {worst_a['analytic_error']:+.2%} "
        f"({worst_a['method']}, {worst_a['frames']} frames).",
        f"Not measured: {len(rows) - len(ok)} cells (skipped: the method cannot run that cell; oom: it did not fit).",
    ]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("estimate_vs_measured: --device cuda needs a visible CUDA device", file=sys.stderr)
        return 2
    dtype, batch, tol = DEFAULTS[args.device]
    model = args.model or ("vit-b" if args.device == "cuda" else "small")
    dtype, batch, tol = args.dtype or dtype, args.batch or batch, args.tolerance or tol
    out = Path(args.out or f"results/estimate-vs-measured-{args.device}")
    command = "PYTHONPATH=. python " + shlex.join(["benchmarks/estimate_vs_measured.py"] + sys.argv[1:] if argv is None else argv)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    header = [
        f"# Estimated vs measured peak memory ({args.device})", "", "Generated by:", "", "```bash", command, "```", "",
        f"{model}, batch {batch}, {dtype}, {device_name}; torch {torch.__version__}; "
        f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}.",
        "measured: " + ("`max_memory_allocated` of a steady step (after reset_peak_memory_stats)" if args.device == "cuda"
                        else "the tracked live-tensor peak of a steady step (what `vfbench run` records on CPU)")
        + "; estimated: the FakeTensorMode trace (`vfbench estimate`); analytic: vfbench's analytic model "
        "(measure/analytic.py; activations after Korthikanti et al. 2022).",
        "error = estimated / measured - 1.", "",
    ]
    rows: list[dict] = []
    t_start = time.perf_counter()
    for comp in expand_methods(args.methods):
        step = None
        for frames in parse_frames(args.frames):
            cell = CellSpec(model, comp.label, frames, batch, dtype, args.device)
            row = {"method": comp.label, "frames": frames}
            problems = estimate_problems(cell)
            if problems:
                rows.append({**row, "status": "skipped", "reason": "; ".join(problems)[:160]})
                continue
            step = step or FakeStep(cell)
            est = step.trace(frames)
            row.update(tokens=est.tokens, estimated_mib=est.estimated_peak_mib, analytic_mib=est.analytic_peak_mib,
                       estimate_phase=est.peak_phase, estimate_s=est.estimate_s)
            row.update(measure(cell, args.warmup))
            if row["status"] == "ok":
                m = row["measured_mib"]
                row.update(error=est.estimated_peak_mib / m - 1, analytic_error=est.analytic_peak_mib / m - 1)
                row["within_tolerance"] = "yes" if abs(row["error"]) <= tol else "NO"
            rows.append(row)
            print(f"[{time.perf_counter() - t_start:6.1f} s] {comp.label} {frames}: {row['status']} "
                  f"measured {row.get('measured_mib', 0):.1f} MiB, estimated {est.estimated_peak_mib:.1f} MiB", file=sys.stderr)
            write(rows, out, header + summary(rows, tol))
    write(rows, out, header + summary(rows, tol) + [f"Wall time: {time.perf_counter() - t_start:.0f} s."])
    print("\n".join(summary(rows, tol)), file=sys.stderr)
    bad = [r for r in rows if r.get("within_tolerance") == "NO"]
    return 1 if (args.strict and bad) else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Train the cells behind the proxy honesty checks and findings table; write results/proxy-honesty/.

    python benchmarks/proxy_honesty.py run PLAN [PLAN ...]   # train the plans' cells, append to cells.jsonl
    python benchmarks/proxy_honesty.py example                # time the README's accuracy example end to end
    python benchmarks/proxy_honesty.py tables                 # honesty.md from cells.jsonl

Plans (PLANS below): core (joint, frame_avg), repeat (joint seed 0 again, in an empty cache), seeds
(joint seeds 1, 2), spatial (coarse_spatial, coarse_temporal), masking / peft / extra (the findings
table, seed 0), findings1 / findings2 (the same with seeds 1 and 2), long (32-frame cells, short->long),
and budget variants (VARIANTS): direct (32 frames trained from stage 1), redundancy (4-frame events),
steps120 / steps200 / steps500. A cell already in cells.jsonl with the same budget is skipped, except in
repeat. Each line records the command, thread count, cache dir and wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from vfbench.spec import CellSpec
from vfbench.tasks.proxy import ProxyUnsupported, default_budget, measure_accuracy

OUT = Path(__file__).resolve().parent.parent / "results" / "proxy-honesty"
CELLS_FILE = OUT / "cells.jsonl"

FINDING_METHODS = (
    "joint", "mask(ratio=0.5)", "effshortvivit", "factorized_self_attention", "factorized_self_attention+mask(ratio=0.5)",
    "factorized_self_attention+mask(ratio=0.75)", "frame_avg", "frame_avg+mask(ratio=0.5)", "frame_avg+mask(ratio=0.75)",
    "adapter", "lora", "fst_temporal", "coarse_temporal", "coarse_spatial", "tubevit", "longvivit",
)
PLANS: dict[str, list[tuple[str, int, int]]] = {  # (method, frames, seed)
    "core": [("joint", 16, 0), ("frame_avg", 16, 0)],
    "repeat": [("joint", 16, 0)],
    "seeds": [("joint", 16, 1), ("joint", 16, 2)],
    "spatial": [("coarse_spatial", 16, 0), ("coarse_temporal", 16, 0)],
    "masking": [(m, 16, 0) for m in ("mask(ratio=0.5)", "effshortvivit", "factorized_self_attention",
                                     "factorized_self_attention+mask(ratio=0.5)", "factorized_self_attention+mask(ratio=0.75)",
                                     "frame_avg+mask(ratio=0.5)", "frame_avg+mask(ratio=0.75)")],
    "peft": [(m, 16, 0) for m in ("adapter", "lora", "fst_temporal")],
    "extra": [(m, 16, 0) for m in ("coarse_both", "tubevit", "longvivit", "tube_mask(ratio=0.75)", "factorized_encoder")],
    "long": [(m, 32, 0) for m in ("joint", "frame_avg", "effshortvivit")],
    "direct": [(m, 32, 0) for m in ("joint", "frame_avg", "effshortvivit")],
    "redundancy": [("joint", 16, 0), ("effshortvivit", 16, 0)],
    # the findings table's cells with two more seeds, so its verdicts rest on the mean of three
    "findings1": [(m, 16, 1) for m in FINDING_METHODS],
    "findings2": [(m, 16, 2) for m in FINDING_METHODS],
    "steps120": [("joint", 16, 0)],
    "steps200": [("joint", 16, 0)],
    "steps500": [(m, 16, 0) for m in ("joint", "coarse_spatial", "mask(ratio=0.5)")],
}
# Plans that train with a variant of the default budget: redundancy changes the task (longer events =
# more redundancy, which masking should tolerate); direct trains 32-frame cells from stage 1 for the full budget
# instead of continuing the 16-frame model (short->long), to show what the continuation changes.
# stepsN train for N steps instead of the default, to show where the honesty checks start to hold and
# which results move with the budget.
VARIANTS = {"redundancy": {"task": {"event_frames": 4}}, "direct": {"short_frames": 0},
            "steps120": {"steps": 120}, "steps200": {"steps": 200}, "steps500": {"steps": 500}}


def plan_budget(plan: str):
    budget = default_budget("cpu")
    knobs = dict(VARIANTS.get(plan, {}))
    if "task" in knobs:
        knobs["task"] = dataclasses.replace(budget.task, **knobs["task"])
    return dataclasses.replace(budget, **knobs)


def load_cells() -> list[dict]:
    text = CELLS_FILE.read_text() if CELLS_FILE.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def append_line(plan: str, method: str, frames: int, seed: int, status: str, wall_s, **fields) -> None:
    """One line of cells.jsonl: the cell, the threads and torch it ran with, then `fields`."""
    line = {"plan": plan, "method": method, "frames": frames, "seed": seed, "status": status, "wall_s": wall_s,
            "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
            "torch": torch.__version__, **fields}
    with CELLS_FILE.open("a") as f:
        f.write(json.dumps(line) + "\n")


def run(plans: list[str], model: str) -> None:
    done = {(c["method"], c["frames"], c["seed"], json.dumps(c["budget"], sort_keys=True)) for c in load_cells()}
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    OUT.mkdir(parents=True, exist_ok=True)
    for plan in plans:
        budget = plan_budget(plan)
        for method, frames, seed in PLANS[plan]:
            ident = (method, frames, seed, json.dumps(budget.to_dict(), sort_keys=True))
            if plan != "repeat" and ident in done:
                continue
            cell = CellSpec(model, method, frames, 2, "fp32", "cpu", seed)
            start = time.perf_counter()
            try:  # repeat trains everything again, stage 1 included, in an empty cache
                with tempfile.TemporaryDirectory() if plan == "repeat" else contextlib.nullcontext() as cache:
                    metrics, status = measure_accuracy(cell, budget, cache).to_dict(), "ok"
            except ProxyUnsupported as exc:
                metrics, status = {"reason": str(exc)}, "unsupported"
            wall = round(time.perf_counter() - start, 1)
            append_line(plan, method, frames, seed, status, wall, command=command,
                        cache=os.environ.get("VFBENCH_CACHE", "default"), budget=budget.to_dict(), **metrics)
            done.add(ident)
            print(f"{plan} {method} T={frames} seed={seed}: {status} {wall} s", flush=True)


EXAMPLE = ["--methods", "joint,frame_avg,effshortvivit", "--frames", "16..32", "--accuracy"]


def example() -> None:
    """Time the README's accuracy example end to end as a user runs it (measurements, proxy training, report), with an
    empty proxy cache so stage 1 is included; append one line per cell with the whole run's wall time."""
    budget = default_budget("cpu").to_dict()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "VFBENCH_CACHE": f"{tmp}/cache"}
        load = os.getloadavg()[0]
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vfbench", "run", *EXAMPLE, "--out", tmp, "--run-id", "example"],
                       env=env, check=True)
        wall = round(time.perf_counter() - start, 1)
        records = [json.loads(line) for line in Path(tmp, "example", "records.jsonl").read_text().splitlines()]
    run_id = time.strftime("%Y-%m-%dT%H:%M:%S")
    for r in records:
        append_line("example", r["method"], r["frames"], r["seed"], r["status"], r.get("cell_s"),
                    command="python benchmarks/proxy_honesty.py example",
                    user_command="vfbench run " + " ".join(shlex.quote(a) for a in EXAMPLE), cache="default",
                    budget=budget, run_id=run_id, run_wall_s=wall, load_before=round(load, 2),
                    **{k: v for k, v in r.items() if k.startswith("acc_")})
    print(f"example: {len(records)} cells in {wall} s")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("plans", nargs="+", choices=sorted(PLANS))
    r.add_argument("--model", default="small", help="the cell's preset (the proxy model is fixed; see tasks/proxy.py)")
    sub.add_parser("tables")
    sub.add_parser("example", help="time `vfbench run " + " ".join(EXAMPLE) + "` end to end; append its cells")
    args = p.parse_args(argv)
    if args.cmd == "run":
        run(args.plans, args.model)
    elif args.cmd == "example":
        example()
    else:
        from proxy_honesty_report import write_tables  # noqa: PLC0415 (the tables need nothing else)

        write_tables(load_cells())


if __name__ == "__main__":
    main()

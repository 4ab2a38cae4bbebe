"""Train the cells behind the proxy honesty checks and findings table; write results/proxy-honesty/.

    python benchmarks/proxy_honesty.py run PLAN [PLAN ...]   # train the plans' cells, append to cells.jsonl
    python benchmarks/proxy_honesty.py example                # time the README's accuracy example end to end
    python benchmarks/proxy_honesty.py tables                 # honesty.md from cells.jsonl

Plans (PLANS below): findings (the findings table's 13 methods x seeds 0-2 at T = 16, default budget),
findings2x (the same at twice the step cap), needle (the same with the earlier 2-frame events), needle2x (2-frame
events at twice the cap), repeat (joint
seed 0 again, in an empty cache), long (32-frame cells, short->long). `--shard i/n` splits the cells over n
processes. A cell already in cells.jsonl with the same budget is skipped (unless today's plateau rule would have
stopped it elsewhere: `replays`), except in repeat; under the larger cap, a cell that stopped on its plateau
before the default cap is that same run and is copied with `same_run_as`; a cell that reached the default cap
continues from the state it left there (acc_resumed_from: the same run for the cost of the steps past the cap;
tests/test_proxy.py). Each line records the command, commit, CPU, thread count, cache dir and wall time.
cells-fixed250.jsonl keeps the cells of the earlier fixed 250-step budget with 2-frame events (written by
this script's earlier plans at commit 14d47e6 and before).
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

from vfbench.measure.env import cpu_name, git_commit
from vfbench.spec import CellSpec
from vfbench.tasks.proxy import ProxyBudget, ProxyUnsupported, default_budget, measure_accuracy, plateau_rule
from vfbench.tasks.result import parse_curve
from vfbench.tasks.schedule import plateau_stop

OUT = Path(__file__).resolve().parent.parent / "results" / "proxy-honesty"
CELLS_FILE = OUT / "cells.jsonl"

# The methods the findings table needs (each finding's rule compares a method with joint or with another);
# at 0 and 75% masking, PEFT as adapters and LoRA. On this project's 2-core CPU a cell takes 3-8 min under the
# plateau rule, so the 50% masking points and fst_temporal, which no rule needs, are left out.
FINDING_METHODS = (
    "joint", "effshortvivit", "factorized_self_attention", "factorized_self_attention+mask(ratio=0.75)",
    "factorized_self_attention+mask(aligned=1,ratio=0.75)", "frame_avg", "frame_avg+mask(ratio=0.75)",
    "adapter", "lora", "coarse_temporal", "coarse_spatial", "tubevit", "longvivit",
)
SEEDS = (0, 1, 2)
FINDING_CELLS = [(m, 16, s) for s in SEEDS for m in FINDING_METHODS]  # the findings table's cells over three seeds
PLANS: dict[str, list[tuple[str, int, int]]] = {  # (method, frames, seed)
    # at the default budget (plateau rule, default redundancy)
    "findings": FINDING_CELLS,
    # the same at twice the cap; a cell that stopped on its plateau before the default cap is the same run (see run())
    "findings2x": FINDING_CELLS,
    # the same with the earlier 2-frame events (one tubelet: far less redundancy than 1-FPS video)
    "needle": FINDING_CELLS,
    # 2-frame events at twice the cap: whether the low-redundancy verdicts are those of cells stopped by the cap
    "needle2x": FINDING_CELLS,
    "repeat": [("joint", 16, 0)],
    "long": [(m, 32, 0) for m in ("joint", "frame_avg", "effshortvivit")],
}
# Plans that train with a variant of the default budget.
NEEDLE_TASK = {"event_share": 0.0, "event_frames": 2}
VARIANTS = {"findings2x": {"steps": 2 * default_budget("cpu").steps}, "needle": {"task": NEEDLE_TASK},
            "needle2x": {"steps": 2 * default_budget("cpu").steps, "task": NEEDLE_TASK}}


def plan_budget(plan: str):
    budget = default_budget("cpu")
    knobs = dict(VARIANTS.get(plan, {}))
    if "task" in knobs:
        knobs["task"] = dataclasses.replace(budget.task, **knobs["task"])
    return dataclasses.replace(budget, **knobs)


def load_cells() -> list[dict]:
    text = CELLS_FILE.read_text() if CELLS_FILE.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def replays(line: dict) -> bool:
    """Whether today's plateau rule (its floor included) makes the run a stored line records: its validation
    curve, replayed under the rule, stops where that run stopped. A line made under an earlier rule that does
    not is superseded: `run` trains the cell again and the tables leave the line out."""
    if line.get("status") != "ok" or line.get("acc_rule") != "plateau" or not line.get("acc_curve"):
        return True
    stop = plateau_stop(parse_curve(line["acc_curve"]), plateau_rule(ProxyBudget.from_dict(line["budget"])))
    return stop == (line["acc_steps_run"] if line["acc_stop"] == "plateau" else None)


def append_line(plan: str, method: str, frames: int, seed: int, status: str, wall_s, **fields) -> dict:
    """One line of cells.jsonl: the cell, the threads, CPU and torch it ran with, then `fields`."""
    line = {"plan": plan, "method": method, "frames": frames, "seed": seed, "status": status, "wall_s": wall_s,
            "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
            "cpu": cpu_name(), "torch": torch.__version__, **fields}
    with CELLS_FILE.open("a") as f:
        f.write(json.dumps(line) + "\n")
    return line


def same_run_under_default_cap(done: dict, method: str, frames: int, seed: int, budget) -> dict | None:
    """The line of this cell under the same budget with the default cap, when the larger-cap budget would train
    it identically: it stopped on its plateau before the default cap, and the learning rate does not depend on
    the cap (schedule.py, tested in tests/test_proxy.py), so the larger cap changes nothing."""
    base = dataclasses.replace(budget, steps=default_budget("cpu").steps)
    if budget.rule != "plateau" or budget.steps <= base.steps:
        return None  # only a larger cap than the default (never the repeat plan, which must train again)
    line = done.get((method, frames, seed, json.dumps(base.to_dict(), sort_keys=True)))
    return line if line and line.get("acc_stop") == "plateau" else None


def run(plans: list[str], model: str, shard: str, by_seed: bool = False) -> None:
    """Train the plans' cells; `shard` "i/n" takes every n-th cell (the same cell in every plan), so n processes
    split the plans; `by_seed` runs every plan's seed-0 cells first, then seed 1's, ..."""
    index, count = (int(x) for x in shard.split("/"))
    done = {(c["method"], c["frames"], c["seed"], json.dumps(c["budget"], sort_keys=True)): c
            for c in load_cells() if replays(c)}
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    commit = git_commit()
    OUT.mkdir(parents=True, exist_ok=True)
    queue = [(plan, *cell) for plan in plans for cell in PLANS[plan]]
    if by_seed:  # every plan's cells of seed 0, then of seed 1, ...: a stopped run still has whole seeds
        queue.sort(key=lambda q: q[3])
    cells = sorted({q[1:] for q in queue}, key=str)  # a cell's shard is the same in every plan
    for plan, method, frames, seed in queue:
        budget = plan_budget(plan)
        if cells.index((method, frames, seed)) % count != index:
            continue
        ident = (method, frames, seed, json.dumps(budget.to_dict(), sort_keys=True))
        if plan != "repeat" and ident in done:
            continue
        same = same_run_under_default_cap(done, method, frames, seed, budget)
        if same is not None:
            append_line(plan, method, frames, seed, "ok", 0.0, command=command, commit=commit, budget=budget.to_dict(),
                        same_run_as=same["plan"], **{k: v for k, v in same.items() if k.startswith("acc_")})
            print(f"{plan} {method} T={frames} seed={seed}: the {same['plan']} run (stopped on its plateau)", flush=True)
            continue
        cell = CellSpec(model, method, frames, 2, "fp32", "cpu", seed)
        start = time.perf_counter()
        try:  # repeat trains everything again, stage 1 included, in an empty cache
            with tempfile.TemporaryDirectory() if plan == "repeat" else contextlib.nullcontext() as cache:
                metrics, status = measure_accuracy(cell, budget, cache).to_dict(), "ok"
        except ProxyUnsupported as exc:
            metrics, status = {"reason": str(exc)}, "unsupported"
        wall = round(time.perf_counter() - start, 1)
        line = append_line(plan, method, frames, seed, status, wall, command=command, commit=commit,
                           cache=os.environ.get("VFBENCH_CACHE", "default"), budget=budget.to_dict(), **metrics)
        done[ident] = line
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
                    command="python benchmarks/proxy_honesty.py example", commit=git_commit(),
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
    r.add_argument("--shard", default="0/1", help="i/n: train every n-th cell from the i-th (n processes split the plans)")
    r.add_argument("--by-seed", action="store_true", help="all plans' seed-0 cells first, then seed 1's, ...")
    sub.add_parser("tables")
    sub.add_parser("example", help="time `vfbench run " + " ".join(EXAMPLE) + "` end to end; append its cells")
    args = p.parse_args(argv)
    if args.cmd == "run":
        run(args.plans, args.model, args.shard, args.by_seed)
    elif args.cmd == "example":
        example()
    else:
        from proxy_honesty_report import write_tables  # noqa: PLC0415 (the tables need nothing else)

        cells = load_cells()
        write_tables([c for c in cells if replays(c)], superseded=[c for c in cells if not replays(c)])


if __name__ == "__main__":
    main()

"""`vfbench advise`: which method or recipe to use for a memory budget and a frame count.

Every registered method and recipe, and compositions of masking ratio, last-k tuning, checkpointing and
bf16, estimated as `vfbench estimate` does (same code, same figures); ranked with one recommendation.
`--frames max` asks the inverse: the most frames each option reaches within the budget. `--from RUN`
takes measured step times and proxy accuracy from a run, and writes advice.md / advice.json into it
(`vfbench report RUN` then shows the advice as a section).
"""

from __future__ import annotations

import json
import os
import sys

from vfbench.commands.estimate_cmd import _int, resolve_setup
from vfbench.errors import UserError
from vfbench.spec import RUN_DEFAULTS

from vfbench.report.advice_section import ADVICE_JSON

ADVICE_MD = "advice.md"


def add_parser(sub):
    p = sub.add_parser(
        "advise", help="the methods and recipes that fit a memory budget at a frame count, ranked, with a recommendation",
        description="Estimate (as `vfbench estimate`, no GPU needed) every method, recipe and useful composition at one "
        "frame count, keep those that fit the budget, rank them, and recommend one; or, with --frames max, the most "
        "frames each reaches within the budget.",
    )
    p.add_argument("--budget", required=True, help="memory budget, e.g. 16GiB (2^30 B) or 80GB (10^9 B)")
    p.add_argument("--frames", required=True, help="frames per clip (a positive integer), or 'max' for the most that fit")
    p.add_argument("--model", help="model preset (default: the run's with --from, else vit-b as `vfbench estimate` on cuda)")
    p.add_argument("--batch", help="clips per step (default: the run's, else 4)")
    p.add_argument("--dtype", help="fp32 | bf16 (default: the run's, else bf16)")
    p.add_argument("--methods", help="consider only these (as `vfbench run --methods`; default: every method and recipe, "
                   "plus masking ratios, last-k with masking, checkpointing and bf16 composed)")
    p.add_argument("--device-kind", help="cuda | cpu: the device whose step is modelled (default: the run's, else cuda)")
    p.add_argument("--from", dest="run", metavar="RUN", help="a run folder: its measured step times and proxy accuracy "
                   "are used, and advice.md / advice.json are written into it")
    p.add_argument("--max-frames", default="16384", help="with --frames max: the largest frame count tried (default: 16384)")
    p.add_argument("--jobs", help="worker processes for the traces (default: up to 4, one per idle CPU core)")
    p.add_argument("--json", action="store_true", help="print the advice as one JSON object")
    return p


def _frames(text: str) -> int | None:
    if str(text).strip().lower() == "max":
        return None
    from vfbench.spec import parse_frames

    try:
        frames = parse_frames(text)
    except UserError as exc:
        raise UserError(f"--frames: {exc}; or 'max'") from None
    if len(frames) != 1:
        raise UserError(f"--frames takes one frame count or 'max', got {text!r}")
    return frames[0]


def _budget(text: str):
    from vfbench.estimate.sweep import Budget
    from vfbench.spec import parse_size

    if "," in text:
        raise UserError(f"--budget takes one memory size, got {text!r}; for several, run advise once per budget")
    nbytes, reading = parse_size(text.strip())
    return Budget(nbytes, text.strip(), reading)


def idle_cores() -> int:
    """Up to 4 worker processes, one per CPU core that other processes are not keeping busy right now: each
    worker pays its own imports and warm-up, which only pays off on a core of its own. Busy = the runnable
    tasks of /proc/loadavg other than this one (the 1-minute average would count a run that just ended)."""
    cores = os.cpu_count() or 1
    try:
        with open("/proc/loadavg") as f:
            busy = int(f.read().split()[3].split("/")[0]) - 1
    except (OSError, ValueError, IndexError):  # not Linux: assume the cores are free
        busy = 0
    return max(1, min(4, cores - busy))


def settings(args):
    """(base cell, budget, frames or None, run or None, jobs, max frames, note on defaults) from the arguments."""
    from vfbench.spec import CellSpec

    budget, frames = _budget(args.budget), _frames(args.frames)
    run, defaults, kind = None, None, args.device_kind
    if args.run:
        from vfbench.report.load import load_run

        run = load_run(args.run)
        facts = [run.describe(k) for k in ("model", "batch", "dtype", "device")]
        if facts[3] not in RUN_DEFAULTS:  # a sweep asked for --device auto: the records say where it ran
            facts[3] = ", ".join(sorted({r.device for r in run.records})) or None
        if all(f and "," not in f for f in facts):
            defaults = (facts[0], int(facts[1]), facts[2])
            kind = kind or facts[3]
    kind = kind or "cuda"
    model, batch, dtype, defaulted = resolve_setup(kind, args.model, args.batch, args.dtype, defaults)
    jobs = _int("jobs", args.jobs) if args.jobs is not None else idle_cores()
    where = "the run's" if defaults else f"as `vfbench estimate` on {kind}"
    note = f"defaults ({where}): {', '.join(defaulted)}" if defaulted else ""
    return CellSpec(model, "joint", frames or 16, batch, dtype, kind, 0), budget, frames, run, jobs, _int("max-frames", args.max_frames), note


def run(args) -> int:
    from vfbench.advice.advise import advise
    from vfbench.advice.render import document, text
    from vfbench.report import markdown

    base, budget, frames, run_, jobs, max_frames, note = settings(args)
    if note:
        print(f"vfbench advise: {note}", file=sys.stderr)
    advice = advise(base, budget, frames, run_, jobs, max_frames, args.methods)
    if run_ is not None:
        try:
            run_.home.mkdir(parents=True, exist_ok=True)
            (run_.home / ADVICE_JSON).write_text(json.dumps(advice.to_dict(), indent=1) + "\n", encoding="utf-8")
            (run_.home / ADVICE_MD).write_text(markdown.render(document(advice)), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write the advice into {run_.home}: {exc.strerror}") from None
    if args.json:
        print(json.dumps(advice.to_dict()))
    else:
        print(text(advice))
    wrote = f"; wrote {run_.home / ADVICE_MD} and {ADVICE_JSON}" if run_ is not None else ""
    print(f"vfbench advise: {len(advice.options)} options fit, {len(advice.excluded)} excluded, in {advice.seconds:.1f} s "
          f"with up to {jobs} process(es){wrote}",
          file=sys.stderr)
    return 0

"""`vfbench run`: expand a sweep, run each cell in a fresh process, store records, print a table."""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
from pathlib import Path

from vfbench.errors import UserError

# name -> (default, help). None defaults are resolved from the device (see _resolve).
OPTIONS = {
    "methods": ("all", "'all', globs, names with parameters and '+' compositions, comma-separated"),
    "frames": ("16..256", "'16..256' (doubling), '16..64:16' (a step) or '8,16,32'"),
    "model": (None, "model preset (default: vit-b on CUDA, small on CPU); see 'vfbench list --models'"),
    "image_size": (None, "frame size in pixels, e.g. 256 (default: the preset's; the model becomes NAME@<size>px)"),
    "batch": (None, "clips per step (default: 4 on CUDA, 2 on CPU)"),
    "dtype": (None, "fp32 | bf16 autocast (default: bf16 on CUDA, fp32 on CPU)"),
    "device": ("auto", "auto | cpu | cuda"),
    "out": ("results", "folder that holds run folders"),
    "run_id": (None, "name of the run folder (default: a timestamp)"),
    "seed": (0, "seed of the synthetic batch and the model init"),
    "timeout": (900.0, "seconds a cell may take before it is killed and recorded as timeout"),
    "skip_after_oom": (True, "record larger frame counts of a method as skipped once it runs out of memory"),
    "estimate": (True, "estimate each cell's peak memory under FakeTensorMode before running it (recorded as estimated_peak_mib)"),
    "skip_predicted_oom": (True, "record a cell as skipped when its estimated peak exceeds the device's free memory"),
    "executor": ("local", "local (a fresh process per cell) | inline (this process, for debugging) "
                          "| slurm (a Slurm job array per frame count, through submitit)"),
    "partition": (None, "Slurm partition of the cells' jobs (--executor slurm; default: the cluster's default)"),
    "gpus_per_cell": (None, "GPUs per cell's Slurm job (--executor slurm; default: 1 with --device cuda, else 0)"),
    "max_parallel": (None, "cells running at once on Slurm (--executor slurm; default: a whole frame count's wave)"),
    "slurm_extra": ((), "more sbatch options for --executor slurm, KEY=VALUE ... (e.g. mem=32G account=vision)"),
    "warmup": (None, "untimed steps before measuring (default: 3 on CUDA, 2 on CPU; 0 measures the first step, before the optimizer state exists)"),
    "min_repeats": (None, "timed steps at least (default: 10 on CUDA, 3 on CPU)"),
    "min_seconds": (None, "seconds of timed steps at least (default: 2 on CUDA, 1 on CPU)"),
    "accuracy": ("auto", "proxy accuracy next to memory and time: auto (on with CUDA or a --task, off on CPU) | on "
                 "(every cell on CUDA; on CPU the baseline and the recipes at up to 32 frames) | all (every cell) | off; "
                 "--accuracy alone = on, --no-accuracy = off"),
    "task": (None, "accuracy task: proxy (the synthetic task; the default) | video-folder:PATH (your clips and captions: "
                   "PATH a .csv/.jsonl captions file or a folder holding captions.csv or captions.jsonl; needs --init)"),
    "init": (None, "the image-text model a video-folder task starts from: open_clip:NAME[:WEIGHTS] (NAME an open_clip "
                   "model or a JSON model config, WEIGHTS a local state-dict file; without it, random weights)"),
    "report": (True, "write the report into the run folder at the end"),
}


def add_parser(sub):
    p = sub.add_parser(
        "run", help="measure methods across frame counts",
        description="Measure peak memory and step time of each method at each frame count, one fresh process per cell.",
    )
    for name, (default, help_text) in OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                           help=f"{help_text} (default: {'on' if default else 'off'})")
        elif name == "accuracy":
            p.add_argument(flag, dest=name, nargs="?", const="on", default=None, metavar="auto|on|all|off", help=help_text)
            p.add_argument("--no-accuracy", dest=name, action="store_const", const="off", help="no proxy accuracy")
        elif isinstance(default, tuple):  # a list: several values after one flag, or the flag repeated
            p.add_argument(flag, dest=name, nargs="+", action="extend", default=None, metavar="KEY=VALUE", help=help_text)
        else:
            p.add_argument(flag, dest=name, default=None, help=f"{help_text} (default: {default})" if default is not None else help_text)
    p.add_argument("--config", help="a sweep YAML file; any option above can be a key there (the command line wins)")
    p.add_argument("--resume", metavar="RUN_ID", help="finish an earlier run in --out: only the missing cells run")
    return p


def _checked(o: dict) -> dict:
    """Every number and switch, from the command line or YAML alike (runner/numbers.py)."""
    from vfbench.runner.numbers import BOUNDS, number, switch

    o = dict(o)
    for name in BOUNDS:
        if o.get(name) is not None:
            o[name] = number(name, o[name])
    for name, (default, _) in OPTIONS.items():
        if isinstance(default, bool) and o.get(name) is not None:
            o[name] = switch(name, o[name])
    return o


def _options(args) -> dict:
    from vfbench.config import load_config

    values = {k: d for k, (d, _) in OPTIONS.items()}
    if args.config:
        values.update(load_config(args.config, list(OPTIONS)))
    for k in OPTIONS:
        v = getattr(args, k)
        if v is not None:
            values[k] = v
    return values


def build_sweep(o: dict):
    """Validate every option and return (SweepSpec, note for the user). Raises UserError on bad input."""
    from vfbench.models import get_preset
    from vfbench.runner.executors import EXECUTORS
    from vfbench.registry import all_left_out
    from vfbench.runner.slurm import slurm_settings
    from vfbench.sweep_spec import (CPU_OFF_NOTE, CPU_SUBSET_NOTE, SweepSpec, accuracy_mode, left_out_note, method_labels,
                                    resolve_accuracy)
    from vfbench.spec import DTYPES, RUN_DEFAULTS, MeasureSettings, parse_frames
    from vfbench.step import resolve_device

    o = _checked(o)
    # On a cluster the cells run on its nodes: a login node without a GPU may still ask for --device cuda.
    device = "cuda" if o["executor"] == "slurm" and o["device"] == "cuda" else resolve_device(str(o["device"]))
    notes = []
    model = o["model"]
    if model is None:
        model = RUN_DEFAULTS[device][0]
        if device == "cpu":
            notes.append("no CUDA device: using the 'small' preset on CPU (pass --model to choose another)")
    from vfbench.models.presets import sized_model

    model = sized_model(str(model), o["image_size"])
    get_preset(model)
    dtype = o["dtype"] or RUN_DEFAULTS[device][2]
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; accepted: {', '.join(DTYPES)}")
    if str(o["executor"]) not in EXECUTORS:
        raise UserError(f"unknown executor {o['executor']!r}; accepted: {', '.join(EXECUTORS)}")
    slurm, slurm_notes = slurm_settings(o, device, str(o["executor"]))
    notes += slurm_notes
    asked = accuracy_mode(o["accuracy"])  # an unknown mode: one line, before anything else
    task, init = _task(o, asked)
    accuracy = resolve_accuracy(asked, device, task)
    if task:
        from vfbench.tasks.real_eval import check_video_task

        notes.append(check_video_task(task, init))  # before any cell runs: one line and exit 2 on bad input
    elif device == "cpu" and accuracy == "off" and asked == "auto":
        notes.append(CPU_OFF_NOTE)
    elif accuracy == "on" and device == "cpu":
        notes.append(f"proxy accuracy: {CPU_SUBSET_NOTE}")
    base = MeasureSettings.for_device(device)
    measure = MeasureSettings(
        warmup_steps=base.warmup_steps if o["warmup"] is None else o["warmup"],
        min_repeats=base.min_repeats if o["min_repeats"] is None else o["min_repeats"],
        min_seconds=base.min_seconds if o["min_seconds"] is None else o["min_seconds"],
        max_repeats=base.max_repeats,
        max_seconds=base.max_seconds,
    )
    batch = o["batch"] if o["batch"] is not None else RUN_DEFAULTS[device][1]
    # the cells of a slurm sweep run on the cluster's nodes: this machine's CPU says nothing about theirs
    on = "" if o["executor"] == "slurm" else device
    left_out = tuple(all_left_out(str(o["methods"]), on).items())
    if left_out:
        notes.append(left_out_note(left_out))
    sweep = SweepSpec(
        model=str(model),
        methods=method_labels(str(o["methods"]), on),
        frames=parse_frames(o["frames"]),
        batch=batch,
        dtype=dtype,
        device=device,
        seed=o["seed"],
        timeout_s=o["timeout"],
        skip_after_oom=o["skip_after_oom"],
        estimate=o["estimate"],
        skip_predicted_oom=o["skip_predicted_oom"],
        accuracy=accuracy,
        accuracy_asked=asked,
        executor=str(o["executor"]),
        measure=measure,
        slurm=slurm,
        task=task,
        init=init,
        left_out=left_out,
    )
    return sweep, notes


def _task(o: dict, accuracy: str) -> tuple[str, str]:
    """(task, init) with their paths made absolute ('' for the synthetic proxy), or a UserError."""
    from vfbench.tasks.clip_init import parse_init
    from vfbench.tasks.video_folder import TASK_PREFIX, task_path

    task, init = str(o.get("task") or "").strip(), str(o.get("init") or "").strip()
    if task in ("", "proxy"):
        if init:
            raise UserError(f"--init {init!r} sets the model of a video-folder task; add --task video-folder:PATH "
                            "(the synthetic proxy trains its own small model)")
        return "", ""
    task = TASK_PREFIX + str(Path(task_path(task)).expanduser().absolute())
    if accuracy == "off":
        raise UserError("--task video-folder:... measures accuracy; drop --no-accuracy / --accuracy off")
    if not init:
        raise UserError("--task video-folder:... needs --init open_clip:NAME[:WEIGHTS] (the image-text model it starts from)")
    parsed = parse_init(init)
    name = parsed.name
    if name.endswith(".json") or Path(name).expanduser().is_file():
        name = str(Path(name).expanduser().absolute())
    weights = str(Path(parsed.weights).expanduser().absolute()) if parsed.weights else ""
    return task, f"open_clip:{name}" + (f":{weights}" if weights else "")


def run(args) -> int:
    from vfbench.measure.env import collect_env
    from vfbench.runner.numbers import check_stored_sweep
    from vfbench.store import RunStore, StoreWriteError, new_run_folder
    from vfbench.sweep_spec import SweepSpec

    out = Path(args.out or "results")
    command = "vfbench " + shlex.join(sys.argv[1:]) if Path(sys.argv[0]).name in ("vfbench", "__main__.py") else None
    if args.resume:
        _refuse_dirty_reference(args.resume)
        store = RunStore(out / args.resume)
        if not store.exists():
            runs = sorted(p.name for p in out.glob("*/run.json") for p in [p.parent]) if out.is_dir() else []
            listed = f"; runs there: {', '.join(runs[-5:])}" if runs else ""
            raise UserError(f"no run {args.resume!r} under {out}/ to resume{listed}")
        store.lock()  # before anything is read for running or cleaned up
        try:
            info = store.run_info()
            sweep = SweepSpec.from_stored(info.get("sweep"), store.run_path)
            check_stored_sweep(sweep, store.run_path)
            store.clean_leftovers()
        except BaseException:
            store.unlock()
            raise
        notes = [f"resuming {store.path}"]
        report = True
    else:
        options = _options(args)
        sweep, notes = build_sweep(options)
        report = _checked(options)["report"]
        run_id = args.run_id or options.get("run_id")
        if run_id:
            _refuse_dirty_reference(str(run_id))
            store = RunStore(out / str(run_id))
            store.claim()  # folder, then the lock, then the "already exists" check: nothing written before the lock
        else:  # a timestamp; a second run in the same second gets a suffix (the folder is made atomically)
            store = RunStore(new_run_folder(out, datetime.datetime.now().strftime("%Y%m%d-%H%M%S")))
            store.lock()
        try:
            store.write_run_info({"sweep": sweep.to_dict(), "env": collect_env(sweep.device), "command": command,
                                  "started": _now()})
        except StoreWriteError as exc:
            raise UserError(f"{exc}; choose a folder with free space with --out") from None
        info = store.run_info()
    return _execute(sweep, store, info, notes, out, report)


def _refuse_dirty_reference(run_id: str) -> None:
    """reference-* runs are the numbers others compare against: only from a committed tree."""
    from vfbench.measure import env

    if run_id.startswith("reference-") and env.git_commit().endswith("+dirty"):
        raise UserError(f"run id {run_id!r}: reference-* runs must be measured from a committed tree, and this one has "
                        "uncommitted changes (git_commit ends in +dirty); commit them or choose another --run-id")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _execute(sweep, store, info, notes, out: Path, report: bool) -> int:
    from vfbench.commands.progress import TerminalProgress
    from vfbench.report.terminal import contention_note, launch_bound_note, sweep_table
    from vfbench.runner.executors import make_executor
    from vfbench.store import StoreWriteError
    from vfbench.runner.sweep import Interrupted, run_sweep

    for note in notes:
        print(note, file=sys.stderr)
    n = len(sweep.cells())
    print(
        f"vfbench: {len(sweep.methods)} methods x {len(sweep.frames)} frame counts = {n} cells; "
        f"model {sweep.model}, batch {sweep.batch}, {sweep.dtype}, {sweep.device}; results in {store.path}",
        file=sys.stderr,
    )
    executor = make_executor(sweep.executor, sweep.timeout_s, store.path, slurm=sweep.slurm)
    progress = TerminalProgress()
    try:
        records = run_sweep(sweep, store, executor, progress.callbacks())
    except Interrupted as exc:
        kept = len(store.records())
        print(
            f"\nvfbench: interrupted ({exc}); {kept} of {n} cells are recorded in {store.path}\n"
            f"resume with: vfbench run --resume {store.path.name} --out {shlex.quote(str(out))}",
            file=sys.stderr,
        )
        return 130
    except StoreWriteError as exc:  # disk full, read-only: the store stays valid, unmeasured cells stay missing
        kept = len(store.records())
        print(f"vfbench: error: {exc}; {kept} of {n} cells are recorded; fix that and resume with: "
              f"vfbench run --resume {store.path.name} --out {shlex.quote(str(out))}", file=sys.stderr)
        return 1
    finally:
        store.unlock()
    info["finished"] = _now()
    try:
        store.write_run_info({k: v for k, v in info.items() if k != "schema_version"})
    except StoreWriteError as exc:  # every record is stored; only the finish time is missing
        print(f"vfbench: warning: {exc}", file=sys.stderr)
    print(sweep_table(records))
    counts = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    print(f"\n{', '.join(f'{v} {k}' for k, v in counts.items())}; records: {store.records_path}")
    for warning in filter(None, (contention_note(records), launch_bound_note(records))):
        print(f"vfbench: warning: {warning}", file=sys.stderr)
    if report:
        _write_report(store.path)
    return 0


def _write_report(path: Path) -> None:
    try:
        from vfbench.report.build import write_report
    except ModuleNotFoundError:
        return
    try:
        written = write_report(path)
    except Exception as exc:  # the records are safe; a report bug must not end a finished sweep in a traceback
        print(f"vfbench: the report could not be written ({type(exc).__name__}: {exc}); rerun 'vfbench report {path}'",
              file=sys.stderr)
        return
    if written:
        print(f"report: {written}")

"""`write_report(run)`: summary.csv, plots/*.png|svg, report.md and a self-contained report.html.

Built only from what a run recorded (load.py); nothing is re-run. `vfbench run` calls this at the end of
every sweep and `vfbench report` calls it on any run folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from vfbench.errors import UserError
from vfbench.report import accuracy, html, kernels, markdown, plots
from vfbench.report.advice_section import advice_sections
from vfbench.report.budgets import choose_budgets, fits_table
from vfbench.report.document import Code, Document, Facts, Note, Section
from vfbench.report.load import Run, load_run
from vfbench.report.metrics import ACC_RESULT, accuracy_keys, budget_peak_key, metric_named, metrics_in
from vfbench.report.plotting import save
from vfbench.report.tables import absolute_table, baseline_method, relative_table, status_table, write_summary_csv
from vfbench.report.terminal import contention_note, launch_bound_note
from vfbench.report.video_task import video_task_note

PLOTS = "plots"


def write_report(path: str | os.PathLike, out: Optional[str | os.PathLike] = None) -> Path:
    """Write the report of the run at `path` into `out` (default: the run's folder); returns report.html."""
    run = load_run(path)
    out = Path(out) if out is not None else run.home
    try:
        return _write(run, out)
    except OSError as exc:
        raise UserError(f"cannot write the report into {out}: {exc.strerror}; choose a writable folder with --out") from None


def _write(run: Run, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    plot_dir = out / PLOTS
    for old in list(plot_dir.glob("*.png")) + list(plot_dir.glob("*.svg")):
        old.unlink()  # plots/ is the report's own folder: drop figures this run no longer has
    write_summary_csv(run, out / "summary.csv")
    doc = build_document(run, plot_dir, out)
    (out / "report.md").write_text(markdown.render(doc), encoding="utf-8")
    page = out / "report.html"
    page.write_text(html.render(doc, out), encoding="utf-8")
    return page


def _saved(drawn, plot_dir: Path, root: Path) -> tuple:
    return () if drawn is None else (save(drawn, plot_dir, root),)


def _pair(run: Run, key: str) -> tuple:
    m = metric_named(key)
    return (absolute_table(run, m), relative_table(run, m))


def build_document(run: Run, plot_dir: Path, root: Path) -> Document:
    present = {m.key for m in metrics_in(run.records)}
    peak = budget_peak_key(run.records)
    choice = choose_budgets(run)
    sections = [_run_section(run)]
    if not run.records:
        sections.append(Section("No results", (Note("This run has no records yet: nothing was measured."),)))
        return Document(_title(run), tuple(sections))

    memory = list(_saved(plots.memory_vs_frames(run, choice), plot_dir, root))
    for key in dict.fromkeys((peak, "peak_allocated_mib", "estimated_peak_mib")):
        if key in present:
            memory += _pair(run, key)
    sections.append(Section("Peak memory", tuple(memory)))

    budget = [Note(choice.note)]
    if choice.budgets:
        budget += [fits_table(run, choice), *_saved(plots.budget_fits(run, choice), plot_dir, root)]
    sections.append(Section("Frames within a memory budget", tuple(budget)))

    busy = contention_note(run.records)  # a loaded machine slows every step alike: the spread cannot show it
    speed = [Note(f"Warning: {busy}")] if busy else []
    idle = launch_bound_note(run.records)  # launch-bound steps time the host, not the method
    speed += [Note(f"Warning: {idle}")] if idle else []
    speed += _saved(plots.throughput_vs_frames(run), plot_dir, root)
    for key in ("step_ms_median", "clips_per_s", "tokens_per_s"):
        if key in present:
            speed += _pair(run, key)
    if speed:
        sections.append(Section("Step time and throughput", tuple(speed)))
    cells = kernels.by_cell(run.records)
    if kernels.uses_kernels(cells):  # eager vs compiled, per attention kernel, and what that decides
        sections.append(Section("Attention kernels and compilation",
                                (kernels.kernel_table(cells), *(Note(line) for line in kernels.summary(cells)))))

    sections.append(Section("Accuracy", _accuracy_blocks(run, plot_dir, root)))

    breakdown = _saved(plots.memory_breakdown(run), plot_dir, root)
    sections.append(Section("Memory breakdown", breakdown or (Note("The records hold no mem_*_mib breakdown."),)))

    work = [b for key in ("tokens", "params_trainable", "flops_per_step") if key in present for b in _pair(run, key)]
    if work:
        sections.append(Section("Size and work", tuple(work)))

    sections += advice_sections(run)

    missing = status_table(run)
    sections.append(Section("Cells without measurements", (missing,) if missing else (Note("Every cell ran (status ok)."),)))
    return Document(_title(run), tuple(sections))


def _accuracy_blocks(run: Run, plot_dir: Path, root: Path) -> tuple:
    keys = accuracy_keys(run.records)
    if not keys:
        why, sweep = "", run.info.sweep
        if sweep.get("accuracy") == "off" and sweep.get("accuracy_asked", "") not in ("", "auto"):
            why = f" (it was turned off: --accuracy {sweep['accuracy_asked']} / --no-accuracy)"
        elif sweep.get("accuracy") == "off" and sweep.get("device") == "cpu":  # the default on CPU (or not recorded)
            from vfbench.sweep_spec import CPU_OFF_NOTE

            why = f" ({CPU_OFF_NOTE})"
        return (Note("Accuracy was not measured in this run (no acc_* keys in its records), so there is no "
                     f"accuracy–memory plot or Pareto front; run the proxy-accuracy task to add it{why}."),)
    video = video_task_note(run)
    blocks = [video] if video else [_accuracy_coverage(run)]
    for key in keys:
        blocks += _saved(accuracy.accuracy_vs_memory(run, key), plot_dir, root)
    blocks += _saved(accuracy.accuracy_vs_compute(run), plot_dir, root)
    front = accuracy.pareto_table(run)
    if front:
        blocks.append(front)
    for key in keys:
        blocks += _pair(run, key)
    return tuple(blocks)


def _accuracy_coverage(run: Run) -> Note:
    """Which cells carry proxy accuracy, and why (the CPU default trains a documented subset)."""
    with_acc = sum(1 for r in run.records if any(ACC_RESULT.match(k) for k in r.extra))
    mode = run.info.sweep.get("accuracy")
    text = f"Proxy accuracy (vfbench/tasks: synthetic event-order retrieval) is in {with_acc} of {len(run.records)} cells"
    if mode == "on" and run.info.sweep.get("device") == "cpu":
        from vfbench.sweep_spec import CPU_SUBSET_NOTE

        text += f": {CPU_SUBSET_NOTE}."
    elif mode:
        text += f" (--accuracy {mode})."
    else:
        text += "."
    long = sorted({(r.extra["acc_short_frames"], r.extra["acc_steps"]) for r in run.records
                   if str(r.extra.get("acc_init", "")).startswith("stage2") and "acc_short_frames" in r.extra})
    for short, steps in long:
        text += (f" Cells above {short} frames trained short→long: they continue the same methods' {short}-frame "
                 f"model for {steps} steps at their own frame count (acc_init), as the paper reaches long clips.")
    return Note(text)


def _run_section(run: Run) -> Section:
    from vfbench.sweep_spec import left_out_note

    info, env = run.info, run.info.env
    sweep_measure = info.sweep.get("measure") or {}
    counts: dict[str, int] = {}
    for r in run.records:
        counts[r.status] = counts.get(r.status, 0) + 1
    pairs = [
        ("run", run.name),
        ("device", f"{info.device_name} ({run.describe('device') or env.get('device') or '?'})"),
        ("model", run.describe("model") or "?"),
        ("batch", run.describe("batch") or "?"),
        ("dtype", run.describe("dtype") or "?"),
        ("frames", ", ".join(map(str, run.frames)) or "-"),
        ("methods", str(len(run.methods))),
        *([("left out of --methods all", left_out_note(left))] if (left := info.sweep.get("left_out")) else []),
        ("cells", ", ".join(f"{n} {s}" for s, n in counts.items()) or "none"),
        ("baseline (×)", baseline_method(run)),
        ("torch", str(env.get("torch", "?"))),
        ("CUDA / driver", f"{env.get('cuda') or '-'} / {env.get('gpu_driver') or '-'}"),
        ("git commit", str(env.get("git_commit", "?"))),
        ("vfbench / python", f"{env.get('vfbench', '?')} / {env.get('python', '?')}"),
        ("CPU", f"{env.get('cpu', '?')} ({env.get('cpu_count', '?')} cores, {env.get('torch_threads', '?')} torch threads)"),
        ("timing", ", ".join(f"{k}={v}" for k, v in sweep_measure.items()) or "-"),
        ("started / finished", f"{info.started or '?'} / {info.finished or 'not finished'}"),
    ]
    command = info.command or "(the command was not recorded: the run was started from Python, not the vfbench CLI)"
    return Section("Run", (Facts(tuple(pairs)), Note("Command:"), Code(command)))


def _title(run: Run) -> str:
    setup = ", ".join(x for x in (run.describe("model"), run.info.device_name) if x)
    return f"vfbench report: {run.name}" + (f" ({setup})" if setup else "")

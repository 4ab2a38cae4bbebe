"""The report's plots: peak memory and throughput vs frames, frames within budget, memory breakdown.

Each function returns a `Drawn` (figure + notes) or None when the run has nothing to draw; the accuracy
plot lives in accuracy.py. Cells without a value (OOM, skipped, error, timeout) are status markers on
the plot and a line in its notes, never a silently missing point.
"""

from __future__ import annotations

import math
from typing import Optional

from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from vfbench.report.budgets import BudgetChoice, has_estimates, largest_fits
from vfbench.report.load import Run
from vfbench.report.metrics import budget_peak_key, metric_named, value
from vfbench.report.plotting import (
    Drawn, frames_axis, log2_axis, mark_statuses, method_styles, mib_axis, new_figure, outside_legend, status_legend_handles,
)

CATEGORIES = ("parameters", "gradients", "optimizer", "inputs", "activations", "temporaries")
_CATEGORY_COLORS = ("#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd")
MAX_BREAKDOWN_PANELS = 3


def _lines(ax, run: Run, key: str, styles) -> int:
    """One line per method through its ok cells; returns how many points were drawn."""
    drawn = 0
    for m in run.methods:
        pts = [(t, v) for t in run.frames if (r := run.cell(m, t)) and r.status == "ok" and (v := value(r, key)) is not None]
        if pts:
            s = styles[m]
            ax.plot(*zip(*pts), color=s.color, marker=s.marker, linestyle=s.linestyle, markersize=4, linewidth=1.3, label=m)
            drawn += len(pts)
    return drawn


def memory_vs_frames(run: Run, choice: BudgetChoice) -> Optional[Drawn]:
    key = budget_peak_key(run.records)
    styles = method_styles(run.methods)
    fig = new_figure(11, 6)
    ax = fig.add_subplot()
    n = _lines(ax, run, key, styles)
    est = has_estimates(run)
    if est:  # the estimate for the same cell, dashed in the method's colour (also for cells that ran out of memory)
        for m in run.methods:
            pts = [(t, v) for t in run.frames if (r := run.cell(m, t)) and (v := value(r, "estimated_peak_mib")) is not None]
            if pts:
                ax.plot(*zip(*pts), color=styles[m].color, linestyle=(0, (2, 2)), linewidth=1, alpha=0.8)
    if n == 0 and not est:
        return None
    for b in choice.budgets:
        ax.axhline(b.mib, color="0.25" if b.card else "0.55", linestyle="-." if b.card else ":", linewidth=1)
        # Labelled at the left end: memory grows with T, so the left is where lines leave room.
        ax.annotate(b.label, (0.0, b.mib), xycoords=("axes fraction", "data"), xytext=(4, 3), textcoords="offset points",
                    ha="left", fontsize=8, color="0.25")
    frames_axis(ax, run.frames)
    mib_axis(ax)
    ax.set_ylabel(f"{key} (log2)")
    ax.grid(True, which="major", alpha=0.3)
    notes = mark_statuses(ax, run, styles)
    handles = ax.get_legend_handles_labels()[0] + status_legend_handles(run)
    if est:
        handles.append(Line2D([], [], color="0.3", linestyle=(0, (2, 2)), linewidth=1, label="estimated (dashed)"))
    outside_legend(ax, handles, ncol=2 if len(run.methods) > 16 else 1)
    ax.set_title("Peak memory of one training step vs frames")
    caption = (
        f"{metric_named(key).label} of a steady train step per method, {key} (log2 axes). "
        + ("Dashed: estimated_peak_mib for the same cells. " if est else "")
        + choice.note
    )
    return Drawn("memory_vs_frames", "Peak memory vs frames", caption, fig, tuple(notes))


def throughput_vs_frames(run: Run) -> Optional[Drawn]:
    styles = method_styles(run.methods)
    fig = new_figure(11, 6)
    ax = fig.add_subplot()
    if _lines(ax, run, "clips_per_s", styles) == 0:
        return None
    frames_axis(ax, run.frames)
    ax.set_yscale("log", base=2)
    log2_axis(ax.yaxis, lambda v: f"{v:.3g}")
    ax.set_ylabel("clips/s (log2)")
    ax.grid(True, which="major", alpha=0.3)
    notes = mark_statuses(ax, run, styles)
    outside_legend(ax, ax.get_legend_handles_labels()[0] + status_legend_handles(run), ncol=2 if len(run.methods) > 16 else 1)
    ax.set_title("Training throughput vs frames")
    batch = run.describe("batch")
    caption = f"Clips per second of the train step (batch {batch} / median step time), higher is better."
    return Drawn("throughput_vs_frames", "Throughput vs frames", caption, fig, tuple(notes))


def budget_fits(run: Run, choice: BudgetChoice) -> Optional[Drawn]:
    """Horizontal bars: per method and budget, how many frames fit (bar length in doublings)."""
    if not choice.budgets or not run.frames:
        return None
    fits = {(f.method, f.budget): f for f in largest_fits(run, choice)}
    smallest, methods = min(run.frames), run.methods
    fig = new_figure(10, 1.2 + 0.28 * len(methods) * max(1, len(choice.budgets)) ** 0.5)
    ax = fig.add_subplot()
    h = 0.8 / len(choice.budgets)
    shades = ("#9ecae1", "#4292c6", "#08519c", "#08306b")
    for j, b in enumerate(choice.budgets):
        for i, m in enumerate(methods):
            f, y = fits[(m, b)], i + (j - (len(choice.budgets) - 1) / 2) * h
            if f.measured is None:
                ax.text(0.05, y, "none fits" if any(r.method == m and r.status == "ok" for r in run.records) else "no ok cell",
                        va="center", fontsize=6, color="#b22222", gid="status-none")
                continue
            width = math.log2(f.measured / smallest) + 1
            ax.barh(y, width, height=h * 0.9, color=shades[j % len(shades)])
            ax.text(width + 0.05, y, f"≥ {f.measured}" if f.measured_open else str(f.measured), va="center", fontsize=6)
    top = math.log2(max(run.frames) / smallest) + 1
    ax.set_xticks([math.log2(t / smallest) + 1 for t in run.frames], [str(t) for t in run.frames])
    ax.set_xlim(0, top + 0.8)
    ax.set_yticks(range(len(methods)), methods, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("largest frame count within the budget (one step per doubling)")
    fig.legend(handles=[Patch(color=shades[j % len(shades)], label=b.label) for j, b in enumerate(choice.budgets)],
               fontsize=8, loc="outside lower center", ncol=len(choice.budgets), frameon=False)
    ax.set_title("Largest frame count within each memory budget (measured)")
    caption = ("Bar: the largest T with status ok and measured peak within the budget; '≥ T' means it fits at the largest T "
               "this run tried. " + choice.note)
    return Drawn("frames_within_budget", "Frames within budget", caption, fig, ())


def memory_breakdown(run: Run) -> Optional[Drawn]:
    """Stacked bars of what is alive at the peak, per method, at up to three frame counts."""
    keys = [f"mem_{c}_mib" for c in CATEGORIES]
    if not any(value(r, k) is not None for r in run.records for k in keys):
        return None
    frames = run.frames
    if len(frames) > MAX_BREAKDOWN_PANELS:
        frames = tuple(dict.fromkeys((frames[0], frames[len(frames) // 2], frames[-1])))
    methods = run.methods
    fig = new_figure(12, 1.4 + 0.24 * len(methods))
    axes = fig.subplots(1, len(frames), sharey=True, squeeze=False)[0]
    notes = []
    for ax, t in zip(axes, frames):
        for i, m in enumerate(methods):
            r = run.cell(m, t)
            if r is None or r.status != "ok":
                text = "not run" if r is None else ("OOM" if r.status == "oom" else r.status)
                ax.text(0, i, f" {text}", va="center", fontsize=6.5, color="#b22222", gid=f"status-{text}")
                notes.append(f"{m} at {t} frames: {text}")
                continue
            left = 0.0
            for k, c, color in zip(keys, CATEGORIES, _CATEGORY_COLORS):
                v = value(r, k) or 0.0
                ax.barh(i, v, left=left, color=color, height=0.75, label=c if i == 0 else None)
                left += v
        ax.set_title(f"T = {t}", fontsize=9)
        ax.set_xlabel("MiB at the peak")
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(methods)), methods, fontsize=7)
    axes[0].invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=len(CATEGORIES), fontsize=8, frameon=False)
    caption = ("What is alive at the peak of the step (mem_*_mib): parameters, gradients, optimizer state, inputs, "
               f"activations saved for backward, temporaries. Shown at T = {', '.join(map(str, frames))}.")
    return Drawn("memory_breakdown", "Memory breakdown at the peak", caption, fig, tuple(notes))


"""Accuracy against peak memory at each frame count, with the Pareto front (the paper's trade-off, Fig. 3),
and the proxy's validation accuracy against training compute (a curve per method).

A method is on the front when no other method at the same T is at least as accurate with less memory.
Only drawn when the records hold acc_* keys; otherwise the report says accuracy was not measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from matplotlib.ticker import NullFormatter

from vfbench.report.document import Cell, Table
from vfbench.report.load import Run
from vfbench.report.metrics import CHANCE_PREFIX, accuracy_keys, accuracy_metric, budget_peak_key, status_text, value
from vfbench.report.plotting import Drawn, method_styles, mib_axis, new_figure
from vfbench.report.terminal import format_mib

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_COLUMNS = 3


@dataclass(frozen=True)
class Point:
    method: str
    memory_mib: float
    accuracy: float


def pareto_front(points: list[Point]) -> list[Point]:
    """Points not dominated by another (less or equal memory and higher accuracy), by memory ascending."""
    front, best = [], -math.inf
    for p in sorted(points, key=lambda p: (p.memory_mib, -p.accuracy)):
        if p.accuracy > best:
            front.append(p)
            best = p.accuracy
    return front


def points_at(run: Run, key: str, frames: int) -> list[Point]:
    peak = budget_peak_key(run.records)
    out = []
    for m in run.methods:
        r = run.cell(m, frames)
        if r is not None and r.status == "ok" and (mem := value(r, peak)) is not None and (acc := value(r, key)) is not None:
            out.append(Point(m, mem, acc))
    return out


def chance_level(run: Run, key: str) -> Optional[float]:
    """acc_chance_<task> for acc_<metric>_<task> (or acc_chance_<rest>), when the records carry it."""
    rest = key[len("acc_"):]
    names = [CHANCE_PREFIX + rest] + ([CHANCE_PREFIX + rest.split("_", 1)[1]] if "_" in rest else [])
    for name in names:
        vals = [v for r in run.records if (v := value(r, name)) is not None]
        if vals:
            return sorted(vals)[len(vals) // 2]
    return None


def accuracy_vs_memory(run: Run, key: str) -> Optional[Drawn]:
    frames = [t for t in run.frames if points_at(run, key, t)]
    if not frames:
        return None
    styles = method_styles(run.methods)
    cols = min(MAX_COLUMNS, len(frames))
    rows = math.ceil(len(frames) / cols)
    fig = new_figure(4.2 * cols + 1.5, 3.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    chance = chance_level(run, key)
    notes = []
    for ax, t in zip(axes, frames):
        pts = points_at(run, key, t)
        front = pareto_front(pts)
        for p in pts:
            ax.scatter(p.memory_mib, p.accuracy, color=styles[p.method].color, marker=styles[p.method].marker, s=28, zorder=3)
            ax.annotate(p.method, (p.memory_mib, p.accuracy), xytext=(3, 3), textcoords="offset points", fontsize=6)
        ax.step([p.memory_mib for p in front], [p.accuracy for p in front], where="post", color="black", linewidth=1.2,
                zorder=2, label="Pareto front", gid="pareto-front")
        ax.scatter([p.memory_mib for p in front], [p.accuracy for p in front], s=90, facecolors="none", edgecolors="black",
                   linewidths=1.4, zorder=4)
        if chance is not None:
            ax.axhline(chance, color="0.5", linestyle=":", linewidth=1, label="chance")
        missing = [(m, status_text(r)) for m in run.methods
                   if (r := run.cell(m, t)) is None or r.status != "ok" or value(r, key) is None]
        if missing:  # cells with no point: say so on the panel and in the notes
            counts = {}
            for _, s in missing:
                counts[s if s != "ok" else "no accuracy"] = counts.get(s if s != "ok" else "no accuracy", 0) + 1
            ax.text(0.02, 0.02, "not plotted: " + ", ".join(f"{n} {s}" for s, n in counts.items()), transform=ax.transAxes,
                    fontsize=6.5, color="#b22222", gid="status-not-plotted")
            notes.extend(f"{m} at {t} frames: {'no accuracy' if s == 'ok' else s}" for m, s in missing)
        ax.margins(x=0.12, y=0.08)  # keep the extreme points and their labels off the frame
        mib_axis(ax, "x")
        ax.set_title(f"T = {t}", fontsize=9)
        ax.set_xlabel(f"{budget_peak_key(run.records)} (log2)")
        ax.set_ylabel(key)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")  # wherever it covers the fewest points
    for ax in axes[len(frames):]:
        ax.set_visible(False)
    label = accuracy_metric(key).label
    caption = (f"{label} against peak memory at each frame count; the black step line and circled points are the "
               "Pareto front (no other method is as accurate with less memory)."
               + (f" Dotted: chance level {chance:.3f}." if chance is not None else ""))
    return Drawn(f"accuracy_vs_memory_{key[len('acc_'):]}", f"{label} vs peak memory", caption, fig, tuple(notes))


def pareto_table(run: Run) -> Optional[Table]:
    keys = accuracy_keys(run.records)
    rows = []
    for key in keys:
        for t in run.frames:
            front = pareto_front(points_at(run, key, t))
            if front:
                text = "; ".join(f"{p.method} ({format_mib(p.memory_mib)}, {p.accuracy:.3f})" for p in front)
                rows.append((Cell(key), Cell(str(t)), Cell(text)))
    if not rows:
        return None
    return Table("Pareto front: accuracy vs peak memory", ("metric", "frames", "methods on the front (memory, accuracy)"),
                 tuple(rows), "By memory ascending; each is more accurate than every method that needs less memory.")


@dataclass(frozen=True)
class ComputeCurve:
    """One method's training: validation score against training FLOPs, and the point the rule kept."""

    method: str
    points: tuple  # (training FLOPs, validation mean R@1) at each validation
    kept: tuple  # (training FLOPs, score) of the model kept, or () when not on the curve
    stop: str


def compute_curve(method: str, extra: dict) -> Optional[ComputeCurve]:
    """From a record's acc_curve and acc_step_flops (cells trained from stage 1 under a stopping rule only: a
    short->long cell's curve is its 16-frame cell's, drawn there)."""
    from vfbench.tasks.result import parse_curve  # noqa: PLC0415 (reports do not import training code at load)

    flops, text = extra.get("acc_step_flops"), extra.get("acc_curve")
    if not flops or not text or extra.get("acc_init") != "stage1":
        return None
    curve = parse_curve(text)
    points = tuple((n * flops, score) for n, score in curve)
    kept = next(((n * flops, s) for n, s in curve if n == extra.get("acc_steps")), ())
    return ComputeCurve(method, points, kept, str(extra.get("acc_stop", "")))


def compute_figure(panels: dict[str, list[ComputeCurve]], methods: tuple[str, ...]) -> Figure:
    """Validation mean R@1 against training FLOPs (log), a line per method, a panel per title; the kept model
    filled, a run stopped at its cap ringed."""
    styles = method_styles(methods)
    cols = min(MAX_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = new_figure(5.2 * cols + 1.5, 3.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (title, curves) in zip(axes, panels.items()):
        for c in curves:
            st = styles[c.method]
            xs, ys = zip(*c.points)
            ax.plot(xs, ys, color=st.color, linestyle=st.linestyle, marker=st.marker, markersize=3, linewidth=1.1,
                    label=c.method, markerfacecolor="none")
            if c.kept:
                ax.scatter(*c.kept, color=st.color, marker=st.marker, s=40, zorder=4)
            if c.stop == "cap":
                ax.scatter(*c.points[-1], s=110, facecolors="none", edgecolors=st.color, linewidths=1.2, zorder=3)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels collide at this width
        ax.set_xlabel("training FLOPs (formula, stage 2)")
        ax.set_ylabel("validation mean R@1")
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return fig


def accuracy_vs_compute(run: Run) -> Optional[Drawn]:
    """The proxy's validation curve of each method against its training compute at each frame count trained
    from stage 1 (the paper's methods differ in cost per step, so one point per method hides who is still
    learning)."""
    panels: dict[str, list[ComputeCurve]] = {}
    for t in run.frames:
        curves = [c for m in run.methods if (r := run.cell(m, t)) is not None and (c := compute_curve(m, r.extra))]
        if curves:
            panels[f"T = {t}"] = curves
    if not panels:
        return None
    caption = ("Proxy validation accuracy (mean R@1 over the random, temporal and spatial galleries, validation queries "
               "apart from the test galleries) against the training FLOPs spent, one line per method. Filled: the model "
               "the stopping rule kept (its test accuracy is in the tables); ringed: the run stopped at its step cap, "
               "still improving.")
    return Drawn("accuracy_vs_compute", "Proxy accuracy vs training compute", caption, compute_figure(panels, run.methods))

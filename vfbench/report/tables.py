"""Methods x frames tables of one metric (absolute, and relative to a baseline) and the per-cell CSV.

Relative values are ratios to the baseline method at the same frame count: the paper's comparisons are
all "this method vs joint space-time attention at T frames", so `joint` is the baseline when the run has
it, else the first method of the run.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

from vfbench.report.document import Cell, Table, status_tone
from vfbench.report.load import Run
from vfbench.report.metrics import Metric, metrics_in, status_text, value

BASELINE = "joint"
# Summary columns that come first in summary.csv (the rest follow in Record order).
LEAD_COLUMNS = ("method", "frames", "status", "reason", "model", "batch", "dtype", "device")


def baseline_method(run: Run) -> str:
    methods = run.methods
    if not methods:
        return BASELINE
    return BASELINE if BASELINE in methods else methods[0]


def _value_cell(run: Run, metric: Metric, method: str, frames: int) -> Cell:
    r = run.cell(method, frames)
    if r is None or r.status != "ok":
        # An estimate exists for cells that were never run (or ran out of memory): show it, not the status.
        v = value(r, metric.key) if r is not None and metric.key == "estimated_peak_mib" else None
        if v is not None:
            return Cell(metric.format(v))
        return Cell(status_text(r), "muted" if r is None else status_tone(r.status))
    v = value(r, metric.key)
    return Cell(metric.format(v)) if v is not None else Cell("-", "muted")


def absolute_table(run: Run, metric: Metric) -> Table:
    rows = tuple(
        (Cell(m, "base" if m == baseline_method(run) else ""),) + tuple(_value_cell(run, metric, m, t) for t in run.frames)
        for m in run.methods
    )
    return Table(metric.label, ("method \\ frames",) + tuple(str(t) for t in run.frames), rows)


def ratio(run: Run, metric: Metric, method: str, frames: int, baseline: str) -> Optional[float]:
    """value(method, T) / value(baseline, T), or None when either is missing or not ok."""
    r, b = run.cell(method, frames), run.cell(baseline, frames)
    if r is None or b is None or r.status != "ok" or b.status != "ok":
        return None
    v, bv = value(r, metric.key), value(b, metric.key)
    if v is None or bv is None or bv == 0:
        return None
    return v / bv


def _ratio_cell(run: Run, metric: Metric, method: str, frames: int, baseline: str) -> Cell:
    r, b = run.cell(method, frames), run.cell(baseline, frames)
    if r is None or r.status != "ok":
        return Cell(status_text(r), "muted" if r is None else status_tone(r.status))
    if b is None or b.status != "ok":
        return Cell(f"n/a ({baseline}: {status_text(b)})", "muted")
    x = ratio(run, metric, method, frames, baseline)
    return Cell(f"{x:.2f}×") if x is not None else Cell("-", "muted")


def relative_table(run: Run, metric: Metric, baseline: Optional[str] = None) -> Table:
    baseline = baseline or baseline_method(run)
    better = "lower" if metric.better == "lower" else "higher"
    rows = tuple(
        (Cell(m, "base" if m == baseline else ""),) + tuple(_ratio_cell(run, metric, m, t, baseline) for t in run.frames)
        for m in run.methods
    )
    return Table(
        f"{metric.label}, relative to {baseline}", ("method \\ frames",) + tuple(str(t) for t in run.frames), rows,
        caption=f"× {baseline} at the same frame count ({better} is better).",
    )


def status_table(run: Run) -> Optional[Table]:
    """Every cell without numbers, with its reason: none of them may go missing silently."""
    rows = []
    for m in run.methods:
        for t in run.frames:
            r = run.cell(m, t)
            if r is None:
                rows.append((Cell(m), Cell(str(t)), Cell("not run", "muted"), Cell("no record in this run")))
            elif r.status != "ok":
                rows.append((Cell(m), Cell(str(t)), Cell(status_text(r), status_tone(r.status)), Cell(_one_line(r.reason))))
    if not rows:
        return None
    return Table("Cells without measurements", ("method", "frames", "status", "reason"), tuple(rows))


def _one_line(text: str, limit: int = 240) -> str:
    """A reason as one line: tracebacks are long, their last line says what happened."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    if not lines:
        return "(no reason recorded)"
    line = lines[-1] if len(lines) > 1 and lines[-1] else lines[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def write_summary_csv(run: Run, path: Path) -> None:
    """One row per cell: the record's flat JSON, plus `<metric>_rel` ratios to the baseline. Columns in order
    of first appearance after LEAD_COLUMNS; a field a record lacks is an empty field."""
    baseline = baseline_method(run)
    metrics = metrics_in(run.records)
    rows = []
    for m in run.methods:
        for t in run.frames:
            r = run.cell(m, t)
            if r is None:
                continue
            row = r.to_dict()
            row["baseline"] = baseline
            for metric in metrics:
                x = ratio(run, metric, m, t, baseline)
                row[f"{metric.key}_rel"] = None if x is None else round(x, 4)
            rows.append(row)
    seen = list(dict.fromkeys(k for row in rows for k in row))
    columns = [c for c in LEAD_COLUMNS if c in seen or not rows] + [c for c in seen if c not in LEAD_COLUMNS]
    with open(path, "w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        out.writeheader()
        out.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)

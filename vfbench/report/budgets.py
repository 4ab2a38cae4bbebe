"""Memory budgets, and the largest frame count each method reaches within each one.

Card budgets are the memory of common accelerators (16 / 40 / 80 GB: V100, A100-40GB, A100/H100-80GB;
card "GB" are GiB, e.g. an 80 GB card holds 81920 MiB). A card line is drawn only when the run's peaks
come within 8x (three doublings of frames, roughly) of it: a tiny CPU run peaking at a few MiB would
otherwise squash its data against lines 10^4 times higher. When no card budget is in range the budgets
are run-scale powers of two inside the data's range, so the "largest T within budget" table still ranks
methods, and the report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from vfbench.report.document import Cell, Table
from vfbench.report.load import Run
from vfbench.report.metrics import budget_peak_key, value
from vfbench.report.terminal import format_mib

CARD_BUDGETS_GIB = (16, 40, 80)
IN_RANGE = 8.0  # a card line is drawn when the largest peak is at least 1/IN_RANGE of it
MAX_SCALE_BUDGETS = 3


@dataclass(frozen=True)
class Budget:
    mib: float
    label: str
    card: bool  # a real card size (True) or a run-scale line (False)


@dataclass(frozen=True)
class BudgetChoice:
    budgets: tuple[Budget, ...]
    note: str  # why these lines, and which were left out


def _peaks(run: Run, key: str) -> list[float]:
    return [v for r in run.records if r.status == "ok" and (v := value(r, key)) is not None and v > 0]


def choose_budgets(run: Run) -> BudgetChoice:
    key = budget_peak_key(run.records)
    peaks = _peaks(run, key) or [v for r in run.records if (v := value(r, "estimated_peak_mib"))]
    if not peaks:
        return BudgetChoice((), "No peak memory was measured, so no budget applies.")
    lo, hi = min(peaks), max(peaks)
    cards = [Budget(g * 1024.0, f"{g} GB", True) for g in CARD_BUDGETS_GIB]
    shown = tuple(b for b in cards if hi * IN_RANGE >= b.mib)
    left = [b.label for b in cards if b not in shown]
    if shown:
        note = f"Card budgets {', '.join(b.label for b in shown)} (GB as on the card label: GiB)."
        if left:
            note += f" Not drawn: {', '.join(left)}, more than {IN_RANGE:g}x above this run's largest peak ({format_mib(hi)})."
        return BudgetChoice(shown, note)
    scale = _scale_budgets(lo, hi)
    note = (
        f"This run's peaks ({format_mib(lo)} to {format_mib(hi)}) are far below card memory, so the 16 / 40 / 80 GB "
        f"lines are not drawn; the budgets here ({', '.join(format_mib(b.mib) for b in scale)}) are run-scale lines that rank "
        "methods at this scale. They do not say what fits on a card: for that, measure or estimate a larger preset."
    )
    return BudgetChoice(scale, note)


def _scale_budgets(lo: float, hi: float) -> tuple[Budget, ...]:
    """Powers of two (MiB) inside (lo, hi], at most MAX_SCALE_BUDGETS of them, spread over the range."""
    first, last = math.floor(math.log2(lo)) + 1, math.floor(math.log2(hi))
    exps = list(range(first, last + 1)) or [math.ceil(math.log2(hi))]
    if len(exps) > MAX_SCALE_BUDGETS:
        step = (len(exps) - 1) / (MAX_SCALE_BUDGETS - 1)
        exps = [exps[round(i * step)] for i in range(MAX_SCALE_BUDGETS)]
    return tuple(Budget(2.0**e, f"{format_mib(2.0 ** e)} (run scale)", False) for e in exps)


@dataclass(frozen=True)
class Fit:
    """The largest frame count of `method` within `budget`, measured and (when the run has them) estimated."""

    method: str
    budget: Budget
    measured: Optional[int]  # largest T with status ok and peak <= budget; None: no measured T fits
    measured_open: bool  # it fits at the largest T this run tried, so more frames may fit
    estimated: Optional[int] = None
    estimated_open: bool = False

    @staticmethod
    def text(frames: Optional[int], open_: bool, smallest: Optional[int]) -> str:
        if frames is None:
            return f"< {smallest}" if smallest else "none"
        return f"≥ {frames}" if open_ else str(frames)


def largest_fits(run: Run, choice: BudgetChoice) -> tuple[Fit, ...]:
    key = budget_peak_key(run.records)
    top = max(run.frames) if run.frames else None
    out = []
    for m in run.methods:
        recs = [r for r in run.records if r.method == m]
        for b in choice.budgets:
            ok = [r.frames for r in recs if r.status == "ok" and (v := value(r, key)) is not None and v <= b.mib]
            est = [r.frames for r in recs if (v := value(r, "estimated_peak_mib")) is not None and v <= b.mib]
            measured, estimated = (max(ok) if ok else None), (max(est) if est else None)
            out.append(Fit(m, b, measured, measured is not None and measured == top, estimated, estimated is not None and estimated == top))
    return tuple(out)


def has_estimates(run: Run) -> bool:
    return any(value(r, "estimated_peak_mib") is not None for r in run.records)


def fits_table(run: Run, choice: BudgetChoice) -> Table:
    """Methods x budgets: the largest frame count within each budget ("≥ T": fits at the largest T run)."""
    fits = {(f.method, f.budget): f for f in largest_fits(run, choice)}
    est = has_estimates(run)
    smallest = min(run.frames) if run.frames else None
    headers = ["method"]
    for b in choice.budgets:
        headers += [f"{b.label} measured", f"{b.label} estimated"] if est else [b.label]
    rows = []
    for m in run.methods:
        measured_any = any(r.method == m and r.status == "ok" for r in run.records)
        statuses = sorted({r.status for r in run.records if r.method == m})
        row = [Cell(m)]
        for b in choice.budgets:
            f = fits[(m, b)]
            if measured_any:
                row.append(Cell(Fit.text(f.measured, f.measured_open, smallest), "" if f.measured else "bad"))
            else:
                row.append(Cell("/".join(statuses) or "not run", "muted"))
            if est:
                row.append(Cell(Fit.text(f.estimated, f.estimated_open, smallest) if f.estimated or measured_any else "-"))
        rows.append(tuple(row))
    peak = budget_peak_key(run.records)
    caption = (
        f"Largest frame count with status ok and {peak} within the budget; '≥ T' means it fits at the largest T "
        f"this run tried (more may fit), '< T' that not even the smallest T fits."
        + (" Estimated: the same rule on estimated_peak_mib." if est else "")
    )
    return Table("Largest frame count within each memory budget", tuple(headers), tuple(rows), caption)

"""Compare two runs cell by cell (b / a) and decide whether b regressed, so CI can gate on it.

The rule (also in `vfbench compare --help` and results/README.md), with threshold X (default 5%):

- memory and the other lower-is-better metrics regress when b / a > 1 + X;
- throughput and accuracy (higher is better) regress when b / a < 1 - X;
- timed metrics (step_ms_median, clips_per_s, tokens_per_s) must in addition clear the runs' own
  noise: the step-time ranges must separate, b's p10 above a's p90 (b's fast steps slower than a's
  slow ones). Two runs of the same commit whose medians differ by more than X but whose p10-p90 ranges
  overlap are "within noise" and pass. Medians, not means, so one stalled step does not move them.
- a cell that was ok in a and is not ok in b (OOM, error, timeout, skipped) is a regression.
- a metric that is not a finite number (NaN, inf) in either ok cell is a regression: it cannot be
  judged, and a gate must not pass what it cannot judge.

Cells are matched on (model, method, frames, batch, dtype); cells in only one run are listed, not judged.
Runs from different machines (env gpu_name, cpu or device differ) are refused unless allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from vfbench.errors import UserError, closest
from vfbench.report.load import Run
from vfbench.report.metrics import COMPARED_KINDS, KNOWN, TIMED, Metric, metric_named, metrics_in, value
from vfbench.record import Record

ENV_KEYS = ("gpu_name", "cpu", "device")
MUST_COMPARE = ("peak_allocated_mib", "peak_reserved_mib", "step_ms_median", "clips_per_s")


@dataclass(frozen=True)
class Change:
    method: str
    frames: int
    metric: str
    a: Optional[float]
    b: Optional[float]
    ratio: Optional[float]
    verdict: str  # same | better | worse | noise (worse by the threshold, inside the runs' spread) | n/a

    @property
    def regression(self) -> bool:
        return self.verdict == "worse"


@dataclass(frozen=True)
class StatusChange:
    method: str
    frames: int
    a: str
    b: str

    @property
    def regression(self) -> bool:
        return self.a == "ok" and self.b != "ok"


@dataclass(frozen=True)
class Comparison:
    metrics: tuple[Metric, ...]
    threshold: float
    cells: tuple[tuple[str, int, str, str], ...]  # (method, frames, status in a, status in b), cells in both
    changes: tuple[Change, ...]
    status_changes: tuple[StatusChange, ...]
    only_a: tuple[tuple[str, int], ...]
    only_b: tuple[tuple[str, int], ...]

    @property
    def regressions(self) -> tuple:
        return tuple(c for c in (*self.status_changes, *self.changes) if c.regression)


def device_of(run: Run) -> dict[str, str]:
    env = run.info.env
    return {k: str(env.get(k) if k != "device" else (env.get("device") or run.describe("device"))) for k in ENV_KEYS}


def check_same_env(a: Run, b: Run, allow_different: bool) -> None:
    da, db = device_of(a), device_of(b)
    diffs = [f"{k}: {da[k]!r} vs {db[k]!r}" for k in ENV_KEYS if da[k] != db[k]]
    if diffs and not allow_different:
        raise UserError(
            f"{a.name} and {b.name} were measured on different machines ({'; '.join(diffs)}); compare runs from the "
            "same device, or pass --allow-different-env to compare anyway"
        )


def choose_metrics(a: Run, b: Run, asked: Optional[list[str]]) -> tuple[Metric, ...]:
    records = (*a.records, *b.records)
    if not asked:  # every outcome metric either run recorded (MUST_COMPARE among them when present)
        return metrics_in(records, COMPARED_KINDS)
    available = {m.key for m in metrics_in(records)} | {m.key for m in KNOWN}
    available |= {k for r in records for k, v in r.to_dict().items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for key in asked:
        if key not in available:
            raise UserError(f"unknown metric {key!r}{closest(key, available)}; e.g. {', '.join(MUST_COMPARE)}")
    return tuple(metric_named(k) for k in dict.fromkeys(asked))


def _match_key(r: Record) -> tuple:
    return (r.model, r.method, r.frames, r.batch, r.dtype)


def judge(metric: Metric, ra: Record, rb: Record, threshold: float) -> Change:
    va, vb = value(ra, metric.key), value(rb, metric.key)
    if va is None or vb is None or ra.status != "ok" or rb.status != "ok":
        return Change(ra.method, ra.frames, metric.key, va, vb, None, "n/a")
    if not (math.isfinite(va) and math.isfinite(vb)):  # NaN compares false both ways: never "same"
        return Change(ra.method, ra.frames, metric.key, va, vb, math.nan, "worse")
    ratio = vb / va if va else (1.0 if vb == 0 else math.inf)
    if metric.better == "lower":
        worse, better = ratio > 1 + threshold, ratio < 1 - threshold
    else:
        worse, better = ratio < 1 - threshold, ratio > 1 + threshold
    verdict = "worse" if worse else "better" if better else "same"
    if worse and metric.key in TIMED and _within_spread(ra, rb):
        verdict = "noise"
    return Change(ra.method, ra.frames, metric.key, va, vb, ratio, verdict)


def _within_spread(ra: Record, rb: Record) -> bool:
    """True when b's step-time range reaches into a's: b's p10 is not above a's p90 (both recorded)."""
    if ra.step_ms_p90 is None or rb.step_ms_p10 is None:
        return False  # no spread recorded: the threshold alone decides
    return rb.step_ms_p10 <= ra.step_ms_p90


def compare_runs(a: Run, b: Run, threshold: float = 0.05, metrics: Optional[list[str]] = None,
                 allow_different_env: bool = False) -> Comparison:
    check_same_env(a, b, allow_different_env)
    chosen = choose_metrics(a, b, metrics)
    by_a = {_match_key(r): r for r in a.records}
    by_b = {_match_key(r): r for r in b.records}
    common = [k for k in by_a if k in by_b]
    if not common:
        sa, sb = (sorted({f"{k[0]}, batch {k[3]}, {k[4]}" for k in d}) for d in (by_a, by_b))
        raise UserError(
            f"{a.name} and {b.name} have no cell in common (same model, method, frames, batch, dtype): "
            f"{a.name} has {', '.join(sa) or 'no records'}; {b.name} has {', '.join(sb) or 'no records'}"
        )
    changes, statuses = [], []
    for k in common:
        ra, rb = by_a[k], by_b[k]
        if ra.status != rb.status:
            statuses.append(StatusChange(ra.method, ra.frames, ra.status, rb.status))
        changes.extend(judge(m, ra, rb, threshold) for m in chosen)
    return Comparison(
        metrics=chosen, threshold=threshold, changes=tuple(changes),
        cells=tuple((k[1], k[2], by_a[k].status, by_b[k].status) for k in common),
        status_changes=tuple(statuses),
        only_a=tuple((k[1], k[2]) for k in by_a if k not in by_b), only_b=tuple((k[1], k[2]) for k in by_b if k not in by_a),
    )


def parse_threshold(text: str) -> float:
    """'5%' or '5' -> 0.05 (a percentage either way)."""
    raw = str(text).strip().rstrip("%").strip()
    try:
        pct = float(raw)
    except ValueError:
        raise UserError(f"--fail-above must be a percentage such as 5% or 2.5, got {text!r}") from None
    if not math.isfinite(pct) or pct < 0:
        raise UserError(f"--fail-above must be a percentage of 0 or more, such as 5%, got {text!r}")
    return pct / 100.0


MARKS = {"worse": " !", "noise": " ~", "better": "", "same": "", "n/a": ""}


def render(c: Comparison, a: Run, b: Run) -> str:
    """Per-cell ratios b / a as a table, then the regressions, one per line."""
    from tabulate import tabulate

    by = {(ch.method, ch.frames, ch.metric): ch for ch in c.changes}
    rows = []
    for m, t, sa, sb in c.cells:
        row = [m, t, sa if sa == sb else f"{sa} -> {sb}" + (" !" if StatusChange(m, t, sa, sb).regression else "")]
        for metric in c.metrics:
            ch = by[(m, t, metric.key)]
            row.append("-" if ch.ratio is None else f"{_ratio(ch.ratio)}{MARKS[ch.verdict]}")
        rows.append(row)
    pct = f"{c.threshold * 100:g}%"
    out = [
        f"compare {a.name} -> {b.name}: ratios b / a per cell; '!' regression beyond {pct}, '~' beyond {pct} but "
        "within the runs' own step-time spread (b's p10 <= a's p90), so not counted",
        tabulate(rows, headers=["method", "frames", "status"] + [m.key for m in c.metrics], disable_numparse=True),
    ]
    for label, cells in (("only in " + a.name, c.only_a), ("only in " + b.name, c.only_b)):
        if cells:
            out.append(f"{len(cells)} cells {label} (not compared): " + ", ".join(f"{m}@{t}" for m, t in cells[:10])
                       + (" ..." if len(cells) > 10 else ""))
    regs = c.regressions
    if not regs:
        out.append(f"no regression beyond {pct} in {len(c.cells)} cells ({', '.join(m.key for m in c.metrics)})")
        return "\n".join(out)
    out.append(f"{len(regs)} regressions beyond {pct}:")
    for r in regs:
        if isinstance(r, StatusChange):
            out.append(f"  {r.method} @ {r.frames} frames: status {r.a} -> {r.b}")
        else:
            m = metric_named(r.metric)
            if math.isnan(r.ratio):
                out.append(f"  {r.method} @ {r.frames} frames: {r.metric} {r.a!r} -> {r.b!r} (not a finite number)")
                continue
            out.append(f"  {r.method} @ {r.frames} frames: {r.metric} {m.format(r.a)} -> {m.format(r.b)} ({_ratio(r.ratio)}, "
                       f"{'higher' if m.better == 'lower' else 'lower'} is worse)")
    return "\n".join(out)


def _ratio(ratio: float) -> str:
    return "not a number" if math.isnan(ratio) else f"{ratio:.3f}x"

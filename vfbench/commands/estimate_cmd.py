"""`vfbench estimate`: peak memory per (method, frames) without a GPU, and how many frames fit a budget.

The very same train_step runs under FakeTensorMode (estimate/peak.py): nothing is allocated, so any
preset is estimated on a CPU-only machine. Text output is a methods x frames table plus one line per
method and budget; --json prints one JSON object per cell (the keys of `vfbench run` records) and one
per budget answer, one per line.
"""

from __future__ import annotations

import json
import os
import sys
import time

from vfbench.errors import UserError
from vfbench.spec import RUN_DEFAULTS



def add_parser(sub):
    p = sub.add_parser(
        "estimate", help="estimate peak memory without running (FakeTensorMode), and the frames that fit a budget",
        description="Estimate the peak memory of each method's training step at each frame count by tracing it "
        "under FakeTensorMode (no memory is allocated; no GPU needed), and the largest frame count within each budget.",
    )
    p.add_argument("--model", help="model preset (default: what `vfbench run` uses on --device-kind: vit-b on cuda)")
    p.add_argument("--image-size", help="frame size in pixels, e.g. 256 (default: the preset's; the model becomes NAME@<size>px)")
    p.add_argument("--methods", default="all", help="as for `vfbench run` (default: all)")
    p.add_argument("--frames", default="16..256", help="'16..256' (doubling), '16..64:16' (a step) or '8,16,32' (default: 16..256)")
    p.add_argument("--batch", help="clips per step (default: 4 for cuda, 2 for cpu, as `vfbench run`)")
    p.add_argument("--dtype", help="fp32 | bf16 (default: bf16 for cuda, fp32 for cpu, as `vfbench run`)")
    p.add_argument("--device-kind", default="cuda", help="cuda | cpu: the device whose step is modelled (default: cuda)")
    p.add_argument("--budget", help="memory budgets, comma-separated, e.g. 16GiB,80GiB (GiB = 2^30 B, GB = 10^9 B)")
    p.add_argument("--max-frames", default="16384", help="largest frame count a budget search tries (default: 16384)")
    p.add_argument("--seed", default="0", help="seed of the synthetic batch (the estimate does not depend on it)")
    p.add_argument("--jobs", help="worker processes for the traces (default: up to 4, one per CPU core)")
    p.add_argument("--json", action="store_true", help="one JSON object per line: cells, then budget answers")
    p.add_argument("--detail", action="store_true", help="also print the per-cell breakdown (text output)")
    return p


def _int(name: str, value, low: int = 1) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise UserError(f"--{name} must be an integer, got {value!r}") from None
    if out < low:
        raise UserError(f"--{name} must be >= {low}, got {value!r}")
    return out


def resolve_setup(kind: str, model, batch, dtype, defaults: tuple | None = None, image_size=None) -> tuple[str, int, str, list[str]]:
    """Model (at `image_size` px when given), batch and dtype as given, else `defaults` (default: what
    `vfbench run` uses on `kind`), checked; and 'name value' for each one defaulted (`vfbench advise`
    shares this)."""
    from vfbench.models import get_preset
    from vfbench.models.presets import sized_model
    from vfbench.spec import DTYPES

    if kind not in RUN_DEFAULTS:
        raise UserError(f"unknown --device-kind {kind!r}; accepted: cuda, cpu")
    d_model, d_batch, d_dtype = defaults or RUN_DEFAULTS[kind]
    given = (("model", d_model, model), ("batch", d_batch, batch), ("dtype", d_dtype, dtype))
    defaulted = [f"{n} {v}" for n, v, g in given if g is None]
    model, dtype = sized_model(model or d_model, image_size), dtype or d_dtype
    get_preset(model)
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; accepted: {', '.join(DTYPES)}")
    return model, _int("batch", batch if batch is not None else d_batch), dtype, defaulted


def _settings(args):
    from vfbench.estimate.sweep import Budget
    from vfbench.sweep_spec import method_labels
    from vfbench.spec import CellSpec, parse_frames, parse_size

    kind = args.device_kind
    model, batch, dtype, defaulted = resolve_setup(kind, args.model, args.batch, args.dtype, image_size=args.image_size)
    seed = _int("seed", args.seed, 0)
    budgets = []
    for text in filter(None, (t.strip() for t in (args.budget or "").split(","))):
        nbytes, reading = parse_size(text)
        budgets.append(Budget(nbytes, text, reading))
    cells = [
        CellSpec(model, m, t, batch, dtype, kind, seed)
        for m in method_labels(args.methods) for t in parse_frames(args.frames)
    ]
    jobs = _int("jobs", args.jobs) if args.jobs is not None else max(1, min(4, os.cpu_count() or 1))
    shown = kind.upper() if kind == "cuda" else kind
    note = f"defaults as `vfbench run` on {shown} (the run this plans): {', '.join(defaulted)}" if defaulted else ""
    return cells, tuple(budgets), _int("max-frames", args.max_frames), jobs, note


def run(args) -> int:
    from vfbench.estimate.sweep import estimate_grid

    cells, budgets, max_frames, jobs, note = _settings(args)
    if note:
        print(f"vfbench estimate: {note}", file=sys.stderr)
    t0 = time.perf_counter()
    results = estimate_grid(cells, budgets, max_frames, jobs)
    seconds = time.perf_counter() - t0
    records = [r for res in results for r in res.records]
    order = {(c.method, c.frames): i for i, c in enumerate(cells)}
    records.sort(key=lambda r: order[(r.method, r.frames)])
    rank = {m: i for i, m in enumerate(dict.fromkeys(c.method for c in cells))}
    answers = sorted((a for res in results for a in res.answers), key=lambda a: (rank[a.method], a.budget.nbytes))
    traces, probes = sum(r.traces for r in results), sum(r.probes for r in results)
    summary = (
        f"vfbench estimate: {len(records)} cells ({len(results)} distinct steps, {traces} traced frame counts"
        f"{f', {probes} budget-search probes' if budgets else ''}) in {seconds:.1f} s with {min(jobs, len(results))} process(es)"
    )
    if args.json:
        for r in records:
            print(json.dumps({"record": "cell", **{k: v for k, v in r.to_dict().items() if v is not None}}))
        for a in answers:
            print(json.dumps(a.to_dict(cells[0])))
        print(summary, file=sys.stderr)
        return 0
    print(peak_table(records, cells[0]))
    if args.detail:
        print()
        print(detail_table(records))
    if answers:
        print()
        print(budget_table(answers, budgets))
    print(f"\n{summary}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- text output

def peak_table(records, cell) -> str:
    from tabulate import tabulate

    from vfbench.report.terminal import SHORT, format_mib

    frames = sorted({r.frames for r in records})
    methods = list(dict.fromkeys(r.method for r in records))
    by = {(r.method, r.frames): r for r in records}
    rows = []
    for m in methods:
        row = [m]
        for t in frames:
            r = by.get((m, t))
            row.append("" if r is None else format_mib(r.extra["estimated_peak_mib"]) if r.status == "ok" else SHORT.get(r.status, r.status))
        ok = next((by[(m, t)] for t in frames if (m, t) in by and by[(m, t)].status == "ok"), None)
        row.append(f"{ok.params_total / 1e6:.1f}M / {ok.params_trainable / 1e6:.1f}M" if ok else "-")
        rows.append(row)
    ok = [r for r in records if r.status == "ok"]
    kind = ok[0].extra["estimate_kind"] if ok else "-"
    lines = [
        f"estimated peak memory of one training step: {cell.model}, batch {cell.batch}, {cell.dtype}, {cell.device} [{kind}]",
        tabulate(rows, headers=["method \\ frames"] + [str(t) for t in frames] + ["params total / trainable"]),
    ]
    if ok:
        gap = max(abs(r.extra["analytic_peak_mib"] / r.extra["estimated_peak_mib"] - 1) for r in ok)
        lines.append(f"how: {ok[0].extra['estimate_notes']}")
        lines.append(f"vfbench's analytic model is within {gap:.1%} of these traced figures; --json has both and the breakdown")
    problems = sorted({r.reason if r.reason.startswith(r.method) else f"{r.method}: {r.reason}" for r in records if r.status != "ok"})
    lines += [f"not estimated: {p}" for p in problems[:10]]
    return "\n".join(lines)


def detail_table(records) -> str:
    from tabulate import tabulate

    cols = ("est_parameters_mib", "est_gradients_mib", "est_optimizer_mib", "est_inputs_mib", "est_activations_mib",
            "est_temporaries_mib", "est_workspace_mib", "estimated_peak_mib", "analytic_peak_mib")
    rows = []
    for r in records:
        if r.status != "ok":
            continue
        e = r.extra
        rows.append([r.method, r.frames, r.tokens] + [round(e[c], 1) for c in cols] + [round(r.flops_per_step / 1e12, 3), e["est_peak_phase"]])
    heads = ["method", "frames", "tokens", "params", "grads", "optim", "inputs", "activ.", "temps", "workspace", "peak MiB",
             "analytic MiB", "TFLOP/step", "peak in"]
    return tabulate(rows, headers=heads)


def budget_table(answers, budgets) -> str:
    from tabulate import tabulate

    def mib(v: float) -> str:  # whole MiB: GiB with two decimals can print 16.00 on both sides of 16 GiB
        return f"{v:,.1f} MiB"

    def text(a) -> str:
        f = a.fit
        if f is None:
            return f"- ({a.reason[:60]})"
        if f.largest_frames is None:
            return f"none ({f.next_frames} frames: {mib(f.next_peak_mib)})"
        if f.capped:
            return f">= {f.largest_frames} ({mib(f.peak_mib)}; the search cap, --max-frames)"
        return f"{f.largest_frames} ({mib(f.peak_mib)}; {f.next_frames}: {mib(f.next_peak_mib)})"

    by = {(a.method, a.budget.text): a for a in answers}
    methods = list(dict.fromkeys(a.method for a in answers))
    rows = [[m] + [text(by[(m, b.text)]) for b in budgets] for m in methods]
    head = "largest frame count whose estimated peak fits (any multiple of the tubelet depth, not only the listed frames)"
    foot = ("budgets: " + "; ".join(f"{b.text} = {b.reading}, {b.mib:,.0f} MiB" for b in budgets) + ". The estimate is "
            "allocated tensor memory: a real card also needs room for the CUDA context (~0.3-0.5 GiB) and allocator "
            "fragmentation (reserved > allocated).")
    return "\n".join([head, tabulate(rows, headers=["method"] + [b.text for b in budgets]), foot])

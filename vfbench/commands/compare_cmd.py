"""`vfbench compare A B`: per-cell ratios B / A; exit code 1 when B regressed beyond the threshold (CI gate)."""

from __future__ import annotations

RULE = (
    "Exit code 1 when B regressed: memory (and other lower-is-better metrics) up by more than the threshold, "
    "throughput or accuracy down by more than it, or a cell ok in A and not ok in B (OOM, error, timeout, skipped). "
    "Timed metrics (step_ms_median, clips_per_s, tokens_per_s) compare medians and must also clear the runs' own "
    "noise: B's step-time p10 above A's p90; two runs of one commit within their p10-p90 spread pass. "
    "Exit code 2 on bad input, including runs from different devices unless --allow-different-env."
)


def add_parser(sub):
    p = sub.add_parser(
        "compare", help="compare two runs cell by cell; exit 1 on a regression",
        description="Ratios B / A for every cell both runs hold and every outcome metric. " + RULE,
    )
    p.add_argument("run_a", metavar="RUN_A", help="the reference run folder")
    p.add_argument("run_b", metavar="RUN_B", help="the run to check against it")
    p.add_argument("--fail-above", default="5%", metavar="PCT", help="regression threshold, a percentage (default: 5%%)")
    p.add_argument("--allow-different-env", action="store_true", help="compare runs measured on different devices")
    p.add_argument("--metrics", metavar="KEYS",
                   help="comma-separated metrics to compare (default: every memory, time, throughput and acc_* metric present)")
    return p


def run(args) -> int:
    from vfbench.report.compare import compare_runs, parse_threshold, render
    from vfbench.report.load import load_run

    threshold = parse_threshold(args.fail_above)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    a, b = load_run(args.run_a), load_run(args.run_b)
    comparison = compare_runs(a, b, threshold, metrics, args.allow_different_env)
    print(render(comparison, a, b))
    return 1 if comparison.regressions else 0
